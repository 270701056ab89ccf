// VitrtCirculantAttention: cuFFT and direct (shared-memory circular correlation) strategies.
#include "circulant_attention_kernel.h"

#include <algorithm>
#include <cmath>
#include <memory>
#include <utility>
#include <vector>

#include "cuda_utils.cuh"
#include "fft_plan_cache.h"
#include "kernel_utils.h"

namespace vitrt
{
namespace
{

// ---------------------------------------------------------------------------------------------------------------
// Direct strategy: one block per (8 channels, sample). Shared memory holds three (H, W, 8) FP32 planes: q then the
// logits/weights, k then v. Each thread produces kRun consecutive dx outputs of one (channel, dy) with a sliding
// window over the rolled row, so every step costs one x and one y load for kRun FMAs.
// ---------------------------------------------------------------------------------------------------------------
constexpr int kDirectChannels = 8;
constexpr int kDirectThreads = 256;
constexpr int kDirectRun = 4;
// Margin for the kernel's static shared memory when checking the dynamic amount against the device limit.
constexpr size_t kDirectStaticShared = 1024;

// Pads each grid row so the 4 dy rows one warp reads in lockstep fall into different banks (row stride = 8 or 24
// banks mod 32).
__host__ __device__ inline int direct_row_stride(int width)
{
    return width * kDirectChannels + (width % 2 == 1 ? 0 : 8);
}

size_t direct_shared_bytes(int64_t height, int64_t width)
{
    return 3 * static_cast<size_t>(height) * static_cast<size_t>(direct_row_stride(static_cast<int>(width)))
        * sizeof(float);
}

// r[d][c] = scale * sum_t x[t][c] * y[t + d][c] over the circular H x W grid, for this thread's items. With
// `out` null the result goes to shared plane r; otherwise to global memory (channel-tail masked) times
// inv_sum[c].
template <typename T>
__device__ void correlate(const float* x, const float* y, float* r, int height, int width, int row_stride,
    float scale, T* out, const float* inv_sum, int channels, int c0)
{
    int const tiles = (width + kDirectRun - 1) / kDirectRun;
    int const items = kDirectChannels * height * tiles;
    for (int item = threadIdx.x; item < items; item += blockDim.x)
    {
        int const c = item % kDirectChannels;
        int const rest = item / kDirectChannels;
        int const dy = rest % height;
        int const dx0 = (rest / height) * kDirectRun;

        float acc[kDirectRun];
#pragma unroll
        for (int j = 0; j < kDirectRun; ++j)
        {
            acc[j] = 0.0f;
        }
        for (int ty = 0; ty < height; ++ty)
        {
            int yrow = ty + dy;
            yrow = yrow >= height ? yrow - height : yrow;
            const float* xs = x + ty * row_stride + c;
            const float* ys = y + yrow * row_stride + c;
            // window[j] == y[yrow][(tx + dx0 + j) mod W] at step tx.
            float window[kDirectRun];
#pragma unroll
            for (int j = 0; j < kDirectRun; ++j)
            {
                window[j] = ys[((dx0 + j) % width) * kDirectChannels];
            }
            int next = (dx0 + kDirectRun) % width;
            for (int tx = 0; tx < width; ++tx)
            {
                float const xv = xs[tx * kDirectChannels];
#pragma unroll
                for (int j = 0; j < kDirectRun; ++j)
                {
                    acc[j] = fmaf(xv, window[j], acc[j]);
                }
#pragma unroll
                for (int j = 0; j + 1 < kDirectRun; ++j)
                {
                    window[j] = window[j + 1];
                }
                window[kDirectRun - 1] = ys[next * kDirectChannels];
                next = next + 1 == width ? 0 : next + 1;
            }
        }
#pragma unroll
        for (int j = 0; j < kDirectRun; ++j)
        {
            int const dx = dx0 + j;
            if (dx >= width)
            {
                break;
            }
            if (out == nullptr)
            {
                r[dy * row_stride + dx * kDirectChannels + c] = acc[j] * scale;
            }
            else if (c0 + c < channels)
            {
                out[static_cast<size_t>(dy * width + dx) * channels + c0 + c] = from_float<T>(acc[j] * inv_sum[c]);
            }
        }
    }
}

template <typename T>
__device__ void load_plane(const T* src, float* plane, int tokens, int width, int row_stride, int channels, int c0)
{
    for (int e = threadIdx.x; e < tokens * kDirectChannels; e += blockDim.x)
    {
        int const t = e / kDirectChannels;
        int const c = e % kDirectChannels;
        int const ty = t / width;
        int const tx = t - ty * width;
        plane[ty * row_stride + tx * kDirectChannels + c]
            = c0 + c < channels ? load(src + static_cast<size_t>(t) * channels + c0 + c) : 0.0f;
    }
}

template <typename T>
__global__ void __launch_bounds__(kDirectThreads) circulant_direct_kernel(
    const T* q, const T* k, const T* v, T* out, int height, int width, int channels)
{
    VITRT_DYNAMIC_SMEM(float, smem);
    __shared__ float partial[kDirectThreads / kWarpSize][kDirectChannels];
    __shared__ float inv_sum[kDirectChannels];

    int const tokens = height * width;
    int const row_stride = direct_row_stride(width);
    int const plane = height * row_stride;
    float* qs = smem;             // q
    float* kvs = smem + plane;    // k, later v
    float* ws = smem + 2 * plane; // logits, later softmax numerators
    int const b = blockIdx.x;
    int const c0 = blockIdx.y * kDirectChannels;
    size_t const sample = static_cast<size_t>(b) * tokens * channels;

    load_plane(q + sample, qs, tokens, width, row_stride, channels, c0);
    load_plane(k + sample, kvs, tokens, width, row_stride, channels, c0);
    __syncthreads();
    correlate<T>(qs, kvs, ws, height, width, row_stride, rsqrtf(static_cast<float>(tokens)), nullptr, nullptr,
        channels, c0);
    __syncthreads();

    // Softmax over the N logits of each channel: thread (c = tid % 8, part = tid / 8) strides over positions; the
    // four parts of a channel inside a warp combine by shuffles, the eight warps through shared memory.
    int const c = threadIdx.x % kDirectChannels;
    int const part = threadIdx.x / kDirectChannels;
    int const parts = blockDim.x / kDirectChannels;
    int const warp = threadIdx.x / kWarpSize;
    int const warps = blockDim.x / kWarpSize;
    float best = -INFINITY;
    for (int t = part; t < tokens; t += parts)
    {
        int const ty = t / width;
        best = fmaxf(best, ws[ty * row_stride + (t - ty * width) * kDirectChannels + c]);
    }
    best = fmaxf(best, __shfl_xor_sync(kFullMask, best, 8));
    best = fmaxf(best, __shfl_xor_sync(kFullMask, best, 16));
    if (threadIdx.x % kWarpSize < kDirectChannels)
    {
        partial[warp][c] = best;
    }
    __syncthreads();
    best = partial[0][c];
    for (int w = 1; w < warps; ++w)
    {
        best = fmaxf(best, partial[w][c]);
    }
    __syncthreads();
    float sum = 0.0f;
    for (int t = part; t < tokens; t += parts)
    {
        int const ty = t / width;
        float* slot = ws + ty * row_stride + (t - ty * width) * kDirectChannels + c;
        float const e = expf(*slot - best);
        *slot = e;
        sum += e;
    }
    sum += __shfl_xor_sync(kFullMask, sum, 8);
    sum += __shfl_xor_sync(kFullMask, sum, 16);
    if (threadIdx.x % kWarpSize < kDirectChannels)
    {
        partial[warp][c] = sum;
    }
    __syncthreads();
    if (threadIdx.x < kDirectChannels)
    {
        float total = 0.0f;
        for (int w = 0; w < warps; ++w)
        {
            total += partial[w][threadIdx.x];
        }
        inv_sum[threadIdx.x] = 1.0f / total;
    }
    load_plane(v + sample, kvs, tokens, width, row_stride, channels, c0);
    __syncthreads();
    correlate<T>(ws, kvs, nullptr, height, width, row_stride, 1.0f, out + sample, inv_sum, channels, c0);
}

// ---------------------------------------------------------------------------------------------------------------
// cuFFT strategy: signals are made contiguous per (sample, channel) so one batched plan covers the whole call.
// ---------------------------------------------------------------------------------------------------------------
constexpr int kTile = 32;
constexpr int kTileRows = 8;

// (B, N, C) of T -> (B, C, N) FP32.
template <typename T>
__global__ void tokens_to_signals_kernel(const T* in, float* out, int tokens, int channels)
{
    __shared__ float tile[kTile][kTile + 1];
    size_t const b = blockIdx.z;
    int const t0 = blockIdx.x * kTile;
    int const c0 = blockIdx.y * kTile;
    for (int j = threadIdx.y; j < kTile; j += kTileRows)
    {
        int const t = t0 + j;
        int const c = c0 + threadIdx.x;
        if (t < tokens && c < channels)
        {
            tile[j][threadIdx.x] = load(in + (b * tokens + t) * channels + c);
        }
    }
    __syncthreads();
    for (int j = threadIdx.y; j < kTile; j += kTileRows)
    {
        int const c = c0 + j;
        int const t = t0 + threadIdx.x;
        if (t < tokens && c < channels)
        {
            out[(b * channels + c) * tokens + t] = tile[threadIdx.x][j];
        }
    }
}

// (B, C, N) FP32 -> (B, N, C) of T.
template <typename T>
__global__ void signals_to_tokens_kernel(const float* in, T* out, int tokens, int channels)
{
    __shared__ float tile[kTile][kTile + 1];
    size_t const b = blockIdx.z;
    int const t0 = blockIdx.x * kTile;
    int const c0 = blockIdx.y * kTile;
    for (int j = threadIdx.y; j < kTile; j += kTileRows)
    {
        int const c = c0 + j;
        int const t = t0 + threadIdx.x;
        if (t < tokens && c < channels)
        {
            tile[j][threadIdx.x] = in[(b * channels + c) * tokens + t];
        }
    }
    __syncthreads();
    for (int j = threadIdx.y; j < kTile; j += kTileRows)
    {
        int const t = t0 + j;
        int const c = c0 + threadIdx.x;
        if (t < tokens && c < channels)
        {
            out[(b * tokens + t) * channels + c] = from_float<T>(tile[threadIdx.x][j]);
        }
    }
}

// a = conj(a) * b * scale: the spectrum of the scaled circular cross-correlation of a's and b's signals.
__global__ void conj_multiply_kernel(cufftComplex* a, const cufftComplex* b, int64_t count, float scale)
{
    for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < count;
         i += static_cast<int64_t>(gridDim.x) * blockDim.x)
    {
        cufftComplex const x = a[i];
        cufftComplex const y = b[i];
        cufftComplex r;
        r.x = (x.x * y.x + x.y * y.y) * scale;
        r.y = (x.x * y.y - x.y * y.x) * scale;
        a[i] = r;
    }
}

// In-place softmax of each contiguous row of length n.
__global__ void row_softmax_kernel(float* rows, int n)
{
    __shared__ float scratch[kWarpSize];
    float* row = rows + static_cast<size_t>(blockIdx.x) * n;
    float best = -INFINITY;
    for (int i = threadIdx.x; i < n; i += blockDim.x)
    {
        best = fmaxf(best, row[i]);
    }
    best = block_max(best, scratch);
    float sum = 0.0f;
    for (int i = threadIdx.x; i < n; i += blockDim.x)
    {
        sum += expf(row[i] - best);
    }
    float const inv = 1.0f / block_sum(sum, scratch);
    for (int i = threadIdx.x; i < n; i += blockDim.x)
    {
        row[i] = expf(row[i] - best) * inv;
    }
}

struct FftBuffers
{
    float* signals;
    cufftComplex* first;
    cufftComplex* second;
    void* work;
};

FftBuffers fft_layout(WorkspaceLayout& layout, int64_t batch, int64_t height, int64_t width, int64_t channels,
    size_t work_bytes)
{
    int64_t const signals = batch * channels;
    FftBuffers buffers;
    buffers.signals = layout.take<float>(signals * height * width);
    buffers.first = layout.take<cufftComplex>(signals * height * (width / 2 + 1));
    buffers.second = layout.take<cufftComplex>(signals * height * (width / 2 + 1));
    buffers.work = layout.take<unsigned char>(static_cast<int64_t>(work_bytes));
    return buffers;
}

// cuFFT plans for a dynamic batch. A plan transforms a fixed number of signals, so instead of one plan per batch
// size (a dynamic batch would churn the plan cache) every batch is cut into power-of-two runs of samples: batch b
// needs at most log2(b) + 1 executions and the plans of runs 1, 2, 4, ... samples, shared by all batches. The work
// area is the largest of the plans of every run up to the batch, so the workspace sized at a profile's largest
// batch holds at every smaller one.
struct BatchPlans
{
    std::vector<std::pair<int64_t, std::shared_ptr<FftPlans>>> runs; // (samples, plans) that sum to the batch
    size_t work_bytes{0};
};

int32_t batch_plans(int64_t batch, int64_t height, int64_t width, int64_t channels, BatchPlans* out)
{
    for (int64_t samples = 1; samples <= batch; samples <<= 1)
    {
        std::shared_ptr<FftPlans> plans
            = fft_plans(static_cast<int32_t>(height), static_cast<int32_t>(width), samples * channels);
        if (!plans)
        {
            return VITRT_STATUS_CUFFT_ERROR;
        }
        out->work_bytes = std::max(out->work_bytes, plans->work_bytes());
        if (batch & samples)
        {
            out->runs.emplace_back(samples, std::move(plans));
        }
    }
    return VITRT_STATUS_SUCCESS;
}

// Runs the forward (R2C) or inverse (C2R) transform over the whole batch, one run of samples at a time.
int32_t transform_batch(BatchPlans const& plans, bool forward, float* signals, cufftComplex* spectra, void* work,
    int64_t height, int64_t width, int64_t channels, cudaStream_t stream)
{
    int64_t const real_per_sample = channels * height * width;
    int64_t const bins_per_sample = channels * height * (width / 2 + 1);
    int64_t done = 0;
    for (auto const& [samples, run] : plans.runs)
    {
        float* real = signals + done * real_per_sample;
        cufftComplex* spectrum = spectra + done * bins_per_sample;
        VITRT_TRY(forward ? run->forward(real, spectrum, work, stream) : run->inverse(spectrum, real, work, stream));
        done += samples;
    }
    return VITRT_STATUS_SUCCESS;
}

int32_t check_shape(int64_t batch, int64_t height, int64_t width, int64_t channels)
{
    if (batch < 1 || height < 1 || width < 1 || channels < 1)
    {
        return fail(VITRT_STATUS_INVALID_ARGUMENT,
            "circulant_attention: batch=%lld, height=%lld, width=%lld and channels=%lld must all be >= 1",
            static_cast<long long>(batch), static_cast<long long>(height), static_cast<long long>(width),
            static_cast<long long>(channels));
    }
    if (height > 4096 || width > 4096 || batch > 65535 || channels > 65535 * kDirectChannels)
    {
        return fail(VITRT_STATUS_UNSUPPORTED_SHAPE,
            "circulant_attention: grid %lldx%lld, batch %lld or channels %lld exceed the kernel limits (4096, 4096, "
            "65535, 524280)",
            static_cast<long long>(height), static_cast<long long>(width), static_cast<long long>(batch),
            static_cast<long long>(channels));
    }
    return VITRT_STATUS_SUCCESS;
}

template <typename T>
int32_t run_fft(const T* q, const T* k, const T* v, T* out, int64_t batch, int64_t height, int64_t width,
    int64_t channels, void* workspace, size_t workspace_bytes, cudaStream_t stream)
{
    BatchPlans plans;
    VITRT_TRY(batch_plans(batch, height, width, channels, &plans));
    WorkspaceLayout sizing(nullptr);
    fft_layout(sizing, batch, height, width, channels, plans.work_bytes);
    VITRT_TRY(check_workspace(workspace, workspace_bytes, sizing.size()));
    WorkspaceLayout layout(workspace);
    FftBuffers const buf = fft_layout(layout, batch, height, width, channels, plans.work_bytes);
    auto const transform = [&](bool forward, float* real, cufftComplex* spectrum) {
        return transform_batch(plans, forward, real, spectrum, buf.work, height, width, channels, stream);
    };

    int const tokens = static_cast<int>(height * width);
    int const chans = static_cast<int>(channels);
    dim3 const tile_block(kTile, kTileRows);
    // Token tiles on x (up to 2^31 - 1 blocks), channel tiles on y, samples on z.
    dim3 const tile_grid(static_cast<unsigned>(ceil_div(tokens, kTile)),
        static_cast<unsigned>(ceil_div(channels, kTile)), static_cast<unsigned>(batch));
    int64_t const bins = batch * channels * height * (width / 2 + 1);
    unsigned const multiply_blocks = static_cast<unsigned>(ceil_div(bins, 256) < 65535 ? ceil_div(bins, 256) : 65535);
    double const n = static_cast<double>(tokens);
    // Unnormalised transforms (C2R(R2C(x)) = N x): logits = N^-1/2 sum_t q k = N^-3/2 C2R(conj(Q) K),
    // out = sum_t alpha v = N^-1 C2R(conj(A) V).
    float const logit_scale = static_cast<float>(1.0 / (n * std::sqrt(n)));
    float const output_scale = static_cast<float>(1.0 / n);

    VITRT_CUDA_TRY(launch(tokens_to_signals_kernel<T>, tile_grid, tile_block, 0, stream, q, buf.signals, tokens, chans));
    VITRT_TRY(transform(true, buf.signals, buf.first));
    VITRT_CUDA_TRY(launch(tokens_to_signals_kernel<T>, tile_grid, tile_block, 0, stream, k, buf.signals, tokens, chans));
    VITRT_TRY(transform(true, buf.signals, buf.second));
    VITRT_CUDA_TRY(launch(conj_multiply_kernel, dim3(multiply_blocks), dim3(256), 0, stream, buf.first, buf.second,
        bins, logit_scale));
    VITRT_TRY(transform(false, buf.signals, buf.first));
    VITRT_CUDA_TRY(launch(row_softmax_kernel, dim3(static_cast<unsigned>(batch * channels)), dim3(256), 0, stream,
        buf.signals, tokens));
    VITRT_TRY(transform(true, buf.signals, buf.first));
    VITRT_CUDA_TRY(launch(tokens_to_signals_kernel<T>, tile_grid, tile_block, 0, stream, v, buf.signals, tokens, chans));
    VITRT_TRY(transform(true, buf.signals, buf.second));
    VITRT_CUDA_TRY(launch(conj_multiply_kernel, dim3(multiply_blocks), dim3(256), 0, stream, buf.first, buf.second,
        bins, output_scale));
    VITRT_TRY(transform(false, buf.signals, buf.first));
    VITRT_CUDA_TRY(
        launch(signals_to_tokens_kernel<T>, tile_grid, tile_block, 0, stream, buf.signals, out, tokens, chans));
    return VITRT_STATUS_SUCCESS;
}

template <typename T>
int32_t run_direct(const T* q, const T* k, const T* v, T* out, int64_t batch, int64_t height, int64_t width,
    int64_t channels, cudaStream_t stream)
{
    dim3 const grid(static_cast<unsigned>(batch), static_cast<unsigned>(ceil_div(channels, kDirectChannels)));
    VITRT_CUDA_TRY(launch(circulant_direct_kernel<T>, grid, dim3(kDirectThreads), direct_shared_bytes(height, width),
        stream, q, k, v, out, static_cast<int>(height), static_cast<int>(width), static_cast<int>(channels)));
    return VITRT_STATUS_SUCCESS;
}

// Paper cost model of the two strategies (H100-class numbers; see plugins/README.md for how to recalibrate from
// benchmarks/kernels_gpu.py). Direct: 2 N^2 FMAs per (sample, channel) at an effective 10 TFMA/s. cuFFT: a fixed
// ~40 us of launches plus ~120 bytes of traffic per element at an effective 2 TB/s.
constexpr double kDirectFmaPerMicrosecond = 1.0e7;
constexpr double kFftFixedMicroseconds = 40.0;
constexpr double kFftBytesPerElement = 120.0;
constexpr double kFftBytesPerMicrosecond = 2.0e6;
// Shared memory every supported architecture grants one block (sm_86/sm_89: 99 KiB).
constexpr size_t kPortableSharedPerBlock = 99 * 1024;

} // namespace
} // namespace vitrt

using namespace vitrt;

extern "C" {

VITRT_API size_t vitrt_circulant_attention_direct_shared_bytes(int64_t height, int64_t width)
{
    return direct_shared_bytes(height, width);
}

VITRT_API int32_t vitrt_circulant_attention_auto_strategy(int64_t batch, int64_t height, int64_t width,
    int64_t channels)
{
    if (direct_shared_bytes(height, width) + kDirectStaticShared > kPortableSharedPerBlock)
    {
        return VITRT_CIRCULANT_CUFFT;
    }
    double const tokens = static_cast<double>(height) * static_cast<double>(width);
    double const elements = static_cast<double>(batch) * static_cast<double>(channels) * tokens;
    double const direct_us = 2.0 * elements * tokens / kDirectFmaPerMicrosecond;
    double const fft_us = kFftFixedMicroseconds + elements * kFftBytesPerElement / kFftBytesPerMicrosecond;
    return direct_us <= fft_us ? VITRT_CIRCULANT_DIRECT : VITRT_CIRCULANT_CUFFT;
}

VITRT_API int32_t vitrt_circulant_attention_select_strategy(int64_t batch, int64_t height, int64_t width,
    int64_t channels, int32_t requested, int32_t* selected)
{
    clear_error();
    VITRT_TRY(check_shape(batch, height, width, channels));
    if (selected == nullptr)
    {
        return fail(VITRT_STATUS_INVALID_ARGUMENT, "circulant_attention: `selected` is a null pointer");
    }
    switch (requested)
    {
    case VITRT_CIRCULANT_AUTO:
        *selected = vitrt_circulant_attention_auto_strategy(batch, height, width, channels);
        return VITRT_STATUS_SUCCESS;
    case VITRT_CIRCULANT_CUFFT: *selected = VITRT_CIRCULANT_CUFFT; return VITRT_STATUS_SUCCESS;
    case VITRT_CIRCULANT_DIRECT:
    {
        DeviceLimits limits;
        VITRT_TRY(current_device_limits(&limits));
        size_t const needed = direct_shared_bytes(height, width) + kDirectStaticShared;
        if (needed > limits.max_shared_per_block)
        {
            return fail(VITRT_STATUS_UNSUPPORTED_SHAPE,
                "circulant_attention: the direct strategy needs %zu bytes of shared memory for a %lldx%lld grid; "
                "device %d allows %zu (use strategy 1, cuFFT)",
                needed, static_cast<long long>(height), static_cast<long long>(width), limits.device,
                limits.max_shared_per_block);
        }
        *selected = VITRT_CIRCULANT_DIRECT;
        return VITRT_STATUS_SUCCESS;
    }
    default:
        return fail(VITRT_STATUS_INVALID_ARGUMENT,
            "circulant_attention: strategy %d is not 0 (auto), 1 (cuFFT) or 2 (direct)", static_cast<int>(requested));
    }
}

VITRT_API int32_t vitrt_circulant_attention_workspace_size(int64_t batch, int64_t height, int64_t width,
    int64_t channels, int32_t dtype, int32_t strategy, size_t* bytes)
{
    clear_error();
    if (bytes == nullptr)
    {
        return fail(VITRT_STATUS_INVALID_ARGUMENT, "circulant_attention: `bytes` is a null pointer");
    }
    VITRT_TRY(check_dtype(dtype));
    int32_t selected = 0;
    VITRT_TRY(vitrt_circulant_attention_select_strategy(batch, height, width, channels, strategy, &selected));
    if (selected == VITRT_CIRCULANT_DIRECT)
    {
        *bytes = 0;
        return VITRT_STATUS_SUCCESS;
    }
    BatchPlans plans;
    VITRT_TRY(batch_plans(batch, height, width, channels, &plans));
    WorkspaceLayout sizing(nullptr);
    fft_layout(sizing, batch, height, width, channels, plans.work_bytes);
    *bytes = sizing.size(); // non-decreasing in batch: valid for every batch up to this one
    return VITRT_STATUS_SUCCESS;
}

VITRT_API int32_t vitrt_circulant_attention(const void* q, const void* k, const void* v, void* out, int64_t batch,
    int64_t height, int64_t width, int64_t channels, int32_t dtype, int32_t strategy, void* workspace,
    size_t workspace_bytes, cudaStream_t stream)
{
    clear_error();
    VITRT_TRY(check_dtype(dtype));
    VITRT_TRY(check_pointers({q, k, v, out}));
    int32_t selected = 0;
    VITRT_TRY(vitrt_circulant_attention_select_strategy(batch, height, width, channels, strategy, &selected));
    int32_t status = VITRT_STATUS_SUCCESS;
    dispatch_dtype(dtype, [&](auto tag) {
        using T = decltype(tag);
        auto const* qt = static_cast<const T*>(q);
        auto const* kt = static_cast<const T*>(k);
        auto const* vt = static_cast<const T*>(v);
        auto* ot = static_cast<T*>(out);
        status = selected == VITRT_CIRCULANT_DIRECT
            ? run_direct(qt, kt, vt, ot, batch, height, width, channels, stream)
            : run_fft(qt, kt, vt, ot, batch, height, width, channels, workspace, workspace_bytes, stream);
    });
    return status;
}

} // extern "C"
