#include "fft_plan_cache.h"

#include <list>
#include <tuple>

#include "kernel_utils.h"

namespace vitrt
{
namespace
{

// The key is every parameter of the cuFFT plans (device, 2-D grid, number of signals; the types, R2C + C2R, and the
// contiguous layout are fixed). Circulant attention asks only for power-of-two runs of samples (see BatchPlans), so
// a model needs about log2(max batch) + 1 plans per grid: 64 covers several models of four grids at batch 32.
// Plans own no work area (the caller passes it), so the cache holds only cuFFT's per-plan tables; the least
// recently used plans are evicted first.
constexpr size_t kMaxCachedPlans = 64;

struct PlanKey
{
    int32_t device;
    int32_t height;
    int32_t width;
    int64_t batch;

    bool operator==(PlanKey const& other) const
    {
        return std::tie(device, height, width, batch) == std::tie(other.device, other.height, other.width, other.batch);
    }
};

struct PlanCache
{
    std::mutex mutex;
    std::list<std::pair<PlanKey, std::shared_ptr<FftPlans>>> entries; // most recently used first
};

// Leaked on purpose: destroying cuFFT plans from a static destructor can run after the CUDA runtime shut down.
PlanCache& cache()
{
    static PlanCache* instance = new PlanCache();
    return *instance;
}

int32_t cufft_failure(cufftResult result, const char* what)
{
    return fail(VITRT_STATUS_CUFFT_ERROR, "%s failed: %s", what, cufft_result_name(result));
}

#define VITRT_CUFFT_TRY(expr)                                                                                          \
    do                                                                                                                 \
    {                                                                                                                  \
        cufftResult const vitrt_cufft_result_ = (expr);                                                               \
        if (vitrt_cufft_result_ != CUFFT_SUCCESS)                                                                      \
        {                                                                                                              \
            return cufft_failure(vitrt_cufft_result_, #expr);                                                          \
        }                                                                                                              \
    } while (0)

int32_t make_plan(cufftHandle* plan, bool* created, int32_t height, int32_t width, int64_t batch, cufftType type,
    size_t* work_bytes)
{
    VITRT_CUFFT_TRY(cufftCreate(plan));
    *created = true;
    // The caller provides the work area at execution time (TensorRT workspace or a torch allocation).
    VITRT_CUFFT_TRY(cufftSetAutoAllocation(*plan, 0));
    long long dims[2] = {height, width};
    // Basic contiguous layout: signal i starts at i * H * W reals / i * H * (W/2+1) complex values.
    VITRT_CUFFT_TRY(cufftMakePlanMany64(*plan, 2, dims, nullptr, 1, 0, nullptr, 1, 0, type, batch, work_bytes));
    return VITRT_STATUS_SUCCESS;
}

} // namespace

const char* cufft_result_name(cufftResult result)
{
    switch (result)
    {
    case CUFFT_SUCCESS: return "CUFFT_SUCCESS";
    case CUFFT_INVALID_PLAN: return "CUFFT_INVALID_PLAN";
    case CUFFT_ALLOC_FAILED: return "CUFFT_ALLOC_FAILED";
    case CUFFT_INVALID_VALUE: return "CUFFT_INVALID_VALUE";
    case CUFFT_INTERNAL_ERROR: return "CUFFT_INTERNAL_ERROR";
    case CUFFT_EXEC_FAILED: return "CUFFT_EXEC_FAILED";
    case CUFFT_SETUP_FAILED: return "CUFFT_SETUP_FAILED";
    case CUFFT_INVALID_SIZE: return "CUFFT_INVALID_SIZE";
    case CUFFT_INVALID_DEVICE: return "CUFFT_INVALID_DEVICE";
    case CUFFT_NO_WORKSPACE: return "CUFFT_NO_WORKSPACE";
    case CUFFT_NOT_IMPLEMENTED: return "CUFFT_NOT_IMPLEMENTED";
    case CUFFT_NOT_SUPPORTED: return "CUFFT_NOT_SUPPORTED";
    default: return "unknown cufftResult";
    }
}

FftPlans::FftPlans(int32_t height, int32_t width, int64_t batch)
{
    size_t r2c_work = 0;
    size_t c2r_work = 0;
    status_ = make_plan(&r2c_, &have_r2c_, height, width, batch, CUFFT_R2C, &r2c_work);
    if (status_ == VITRT_STATUS_SUCCESS)
    {
        status_ = make_plan(&c2r_, &have_c2r_, height, width, batch, CUFFT_C2R, &c2r_work);
    }
    work_bytes_ = r2c_work > c2r_work ? r2c_work : c2r_work;
}

FftPlans::~FftPlans()
{
    if (have_r2c_)
    {
        cufftDestroy(r2c_);
    }
    if (have_c2r_)
    {
        cufftDestroy(c2r_);
    }
}

int32_t FftPlans::bind(cufftHandle plan, void* work, cudaStream_t stream)
{
    VITRT_CUFFT_TRY(cufftSetStream(plan, stream));
    VITRT_CUFFT_TRY(cufftSetWorkArea(plan, work));
    return VITRT_STATUS_SUCCESS;
}

int32_t FftPlans::forward(float* real, cufftComplex* spectrum, void* work, cudaStream_t stream)
{
    std::lock_guard<std::mutex> lock(mutex_);
    VITRT_TRY(bind(r2c_, work, stream));
    VITRT_CUFFT_TRY(cufftExecR2C(r2c_, real, spectrum));
    return VITRT_STATUS_SUCCESS;
}

int32_t FftPlans::inverse(cufftComplex* spectrum, float* real, void* work, cudaStream_t stream)
{
    std::lock_guard<std::mutex> lock(mutex_);
    VITRT_TRY(bind(c2r_, work, stream));
    VITRT_CUFFT_TRY(cufftExecC2R(c2r_, spectrum, real));
    return VITRT_STATUS_SUCCESS;
}

std::shared_ptr<FftPlans> fft_plans(int32_t height, int32_t width, int64_t batch)
{
    int device = 0;
    cudaError_t const error = cudaGetDevice(&device);
    if (error != cudaSuccess)
    {
        cuda_failure(error, "cudaGetDevice");
        return nullptr;
    }
    PlanKey const key{device, height, width, batch};
    PlanCache& plans = cache();
    std::lock_guard<std::mutex> lock(plans.mutex);
    for (auto it = plans.entries.begin(); it != plans.entries.end(); ++it)
    {
        if (it->first == key)
        {
            plans.entries.splice(plans.entries.begin(), plans.entries, it);
            return plans.entries.front().second;
        }
    }
    auto fresh = std::make_shared<FftPlans>(height, width, batch);
    if (fresh->status() != VITRT_STATUS_SUCCESS)
    {
        return nullptr; // the failing cuFFT call left its message in vitrt_last_error()
    }
    plans.entries.emplace_front(key, fresh);
    if (plans.entries.size() > kMaxCachedPlans)
    {
        plans.entries.pop_back();
    }
    return fresh;
}

void clear_fft_plans()
{
    PlanCache& plans = cache();
    std::lock_guard<std::mutex> lock(plans.mutex);
    plans.entries.clear();
}

} // namespace vitrt
