// CUDA runtime and cuFFT entry points the kernel library calls, implemented on the host for the emulation build.
// The cuFFT part is a separable DFT in double precision over the basic (contiguous) batched 2-D layout, the only
// layout the library plans; it rejects anything else so a change of layout cannot pass unnoticed.
#include <cuda_runtime_api.h>
#include <cufft.h>

#include <array>
#include <complex>
#include <cstring>
#include <map>
#include <mutex>
#include <vector>

extern "C" {

cudaError_t cudaGetDevice(int* device)
{
    *device = 0;
    return cudaSuccess;
}

cudaError_t cudaDeviceGetAttribute(int* value, cudaDeviceAttr attr, int)
{
    switch (attr)
    {
    case cudaDevAttrMultiProcessorCount: *value = 84; return cudaSuccess;
    case cudaDevAttrMaxSharedMemoryPerBlockOptin: *value = 101376; return cudaSuccess;
    default: return cudaErrorInvalidValue;
    }
}

cudaError_t cudaFuncSetAttribute(const void*, cudaFuncAttribute attr, int value)
{
    // Same limit as sm_86/sm_89, the smallest of the supported architectures.
    return attr == cudaFuncAttributeMaxDynamicSharedMemorySize && value <= 101376 ? cudaSuccess : cudaErrorInvalidValue;
}

cudaError_t cudaGetLastError(void)
{
    return cudaSuccess;
}

const char* cudaGetErrorName(cudaError_t error)
{
    return error == cudaSuccess ? "cudaSuccess" : "cudaErrorEmulated";
}

const char* cudaGetErrorString(cudaError_t error)
{
    return error == cudaSuccess ? "no error" : "emulated CUDA error";
}

cudaError_t cudaRuntimeGetVersion(int* version)
{
    *version = CUDART_VERSION;
    return cudaSuccess;
}

cudaError_t cudaMemsetAsync(void* pointer, int value, size_t bytes, cudaStream_t)
{
    std::memset(pointer, value, bytes);
    return cudaSuccess;
}

} // extern "C"

namespace
{

struct Plan
{
    bool made = false;
    bool auto_allocate = true;
    int height = 0;
    int width = 0;
    long long batch = 0;
    cufftType type = CUFFT_R2C;
    void* work = nullptr;
    size_t work_size = 0;
};

std::mutex gMutex;
std::map<cufftHandle, Plan> gPlans;
std::vector<std::array<long long, 3>> gMade; // (height, width, batch) of each plan made
cufftHandle gNext = 1;

constexpr double kTwoPi = 6.283185307179586476925286766559;

Plan* find(cufftHandle handle)
{
    auto it = gPlans.find(handle);
    return it == gPlans.end() ? nullptr : &it->second;
}

// Copies the plan of `handle` out (the transform runs without the lock) if it can execute a `type` transform.
cufftResult ready(cufftHandle handle, cufftType type, Plan* copy)
{
    std::lock_guard<std::mutex> lock(gMutex);
    Plan const* plan = find(handle);
    if (plan == nullptr || !plan->made || plan->type != type)
    {
        return CUFFT_INVALID_PLAN;
    }
    if (!plan->auto_allocate && plan->work_size > 0 && plan->work == nullptr)
    {
        return CUFFT_EXEC_FAILED; // no work area bound, as real cuFFT would fail
    }
    *copy = *plan;
    return CUFFT_SUCCESS;
}

} // namespace

extern "C" {

cufftResult cufftGetVersion(int* version)
{
    *version = CUFFT_VERSION;
    return CUFFT_SUCCESS;
}

cufftResult cufftCreate(cufftHandle* handle)
{
    std::lock_guard<std::mutex> lock(gMutex);
    *handle = gNext++;
    gPlans[*handle] = Plan{};
    return CUFFT_SUCCESS;
}

cufftResult cufftDestroy(cufftHandle handle)
{
    std::lock_guard<std::mutex> lock(gMutex);
    return gPlans.erase(handle) == 1 ? CUFFT_SUCCESS : CUFFT_INVALID_PLAN;
}

cufftResult cufftSetAutoAllocation(cufftHandle handle, int auto_allocate)
{
    std::lock_guard<std::mutex> lock(gMutex);
    Plan* plan = find(handle);
    if (plan == nullptr || plan->made)
    {
        return CUFFT_INVALID_PLAN; // must precede plan creation
    }
    plan->auto_allocate = auto_allocate != 0;
    return CUFFT_SUCCESS;
}

cufftResult cufftMakePlanMany64(cufftHandle handle, int rank, long long int* n, long long int* inembed,
    long long int, long long int, long long int* onembed, long long int, long long int, cufftType type,
    long long int batch, size_t* work_size)
{
    std::lock_guard<std::mutex> lock(gMutex);
    Plan* plan = find(handle);
    if (plan == nullptr)
    {
        return CUFFT_INVALID_PLAN;
    }
    if (rank != 2 || inembed != nullptr || onembed != nullptr || (type != CUFFT_R2C && type != CUFFT_C2R)
        || n[0] < 1 || n[1] < 1 || batch < 1)
    {
        return CUFFT_NOT_SUPPORTED;
    }
    plan->made = true;
    plan->height = static_cast<int>(n[0]);
    plan->width = static_cast<int>(n[1]);
    plan->batch = batch;
    plan->type = type;
    // Like real cuFFT, the work area does not grow with the batch (here it shrinks), so a workspace sized at one
    // batch need not hold at another unless the library accounts for it.
    plan->work_size = 4096 + (size_t{1} << 20) / static_cast<size_t>(batch);
    *work_size = plan->work_size;
    gMade.push_back({plan->height, plan->width, batch});
    return CUFFT_SUCCESS;
}

// Test hook: the (height, width, batch) of every plan made so far, in order; returns how many there are.
int vitrt_emulated_cufft_plans(long long* out, int capacity)
{
    std::lock_guard<std::mutex> lock(gMutex);
    int const count = static_cast<int>(gMade.size());
    for (int i = 0; i < count && i < capacity; ++i)
    {
        out[3 * i] = gMade[static_cast<size_t>(i)][0];
        out[3 * i + 1] = gMade[static_cast<size_t>(i)][1];
        out[3 * i + 2] = gMade[static_cast<size_t>(i)][2];
    }
    return count;
}

cufftResult cufftSetStream(cufftHandle handle, cudaStream_t)
{
    std::lock_guard<std::mutex> lock(gMutex);
    return find(handle) == nullptr ? CUFFT_INVALID_PLAN : CUFFT_SUCCESS;
}

cufftResult cufftSetWorkArea(cufftHandle handle, void* work)
{
    std::lock_guard<std::mutex> lock(gMutex);
    Plan* plan = find(handle);
    if (plan == nullptr)
    {
        return CUFFT_INVALID_PLAN;
    }
    plan->work = work;
    return CUFFT_SUCCESS;
}

cufftResult cufftExecR2C(cufftHandle handle, cufftReal* input, cufftComplex* output)
{
    Plan plan;
    cufftResult const status = ready(handle, CUFFT_R2C, &plan);
    if (status != CUFFT_SUCCESS)
    {
        return status;
    }
    int const h = plan.height;
    int const w = plan.width;
    int const half = w / 2 + 1;
    std::vector<std::complex<double>> rows(static_cast<size_t>(h) * half);
    for (long long s = 0; s < plan.batch; ++s)
    {
        const cufftReal* in = input + s * h * w;
        cufftComplex* out = output + s * h * half;
        for (int y = 0; y < h; ++y)
        {
            for (int kx = 0; kx < half; ++kx)
            {
                std::complex<double> acc = 0.0;
                for (int x = 0; x < w; ++x)
                {
                    acc += static_cast<double>(in[y * w + x]) * std::polar(1.0, -kTwoPi * kx * x / w);
                }
                rows[static_cast<size_t>(y) * half + kx] = acc;
            }
        }
        for (int ky = 0; ky < h; ++ky)
        {
            for (int kx = 0; kx < half; ++kx)
            {
                std::complex<double> acc = 0.0;
                for (int y = 0; y < h; ++y)
                {
                    acc += rows[static_cast<size_t>(y) * half + kx] * std::polar(1.0, -kTwoPi * ky * y / h);
                }
                out[ky * half + kx].x = static_cast<float>(acc.real());
                out[ky * half + kx].y = static_cast<float>(acc.imag());
            }
        }
    }
    return CUFFT_SUCCESS;
}

cufftResult cufftExecC2R(cufftHandle handle, cufftComplex* input, cufftReal* output)
{
    Plan plan;
    cufftResult const status = ready(handle, CUFFT_C2R, &plan);
    if (status != CUFFT_SUCCESS)
    {
        return status;
    }
    int const h = plan.height;
    int const w = plan.width;
    int const half = w / 2 + 1;
    std::vector<std::complex<double>> columns(static_cast<size_t>(h) * half);
    for (long long s = 0; s < plan.batch; ++s)
    {
        cufftComplex* in = input + s * h * half;
        cufftReal* out = output + s * h * w;
        for (int y = 0; y < h; ++y)
        {
            for (int kx = 0; kx < half; ++kx)
            {
                std::complex<double> acc = 0.0;
                for (int ky = 0; ky < h; ++ky)
                {
                    std::complex<double> const value(in[ky * half + kx].x, in[ky * half + kx].y);
                    acc += value * std::polar(1.0, kTwoPi * ky * y / h);
                }
                columns[static_cast<size_t>(y) * half + kx] = acc;
            }
        }
        // Each row is Hermitian along x: expand the half spectrum, keep the real part.
        for (int y = 0; y < h; ++y)
        {
            for (int x = 0; x < w; ++x)
            {
                double acc = 0.0;
                for (int kx = 0; kx < w; ++kx)
                {
                    std::complex<double> const value = kx < half
                        ? columns[static_cast<size_t>(y) * half + kx]
                        : std::conj(columns[static_cast<size_t>(y) * half + (w - kx)]);
                    acc += (value * std::polar(1.0, kTwoPi * kx * x / w)).real();
                }
                out[y * w + x] = static_cast<float>(acc);
            }
        }
        // Real C2R destroys its input; mimic that so no code relies on the spectrum surviving.
        std::memset(in, 0xff, sizeof(cufftComplex) * h * half);
    }
    return CUFFT_SUCCESS;
}

} // extern "C"
