/*
 * Shared skeleton of the three linear attentions (FLatten focused, MLLA with RoPE, InLine injective).
 *
 * Each is "per head: kv = c * sum_t phi(k_t)^T v_t, per-token normaliser from mean_t k, out = phi(q) kv (...)", so
 * all three run as
 *   1. partial kernel: each block transforms the k (and v) rows of a token chunk in shared memory and accumulates
 *      its share of kv in registers (4x4 micro-tiles per thread) plus the channel sums for the means;
 *   2. reduce kernel: sums the chunk partials in a fixed order (deterministic) and applies the kv/mean scales;
 *   3. output kernel: transforms a tile of q rows, computes the per-(token, head) normaliser and writes out with the
 *      op's epilogue (InLine adds its mean correction and per-sample 3x3 local residual here, reading v once more
 *      from L2 instead of a separate pass).
 * q, k and v are read exactly once from DRAM (v twice for InLine's residual, mostly L2 hits) and out written once.
 * Row transforms that need whole-token norms (FLatten's focusing map) use one warp per token; all reductions and
 * the focusing power run in FP32.
 */
#pragma once

#include <cstdint>

#include "cuda_utils.cuh"
#include "kernel_utils.h"

namespace vitrt
{
// Internal linkage: each op's translation unit instantiates its own copy of the kernels.
namespace
{
namespace linear
{

enum class Kind
{
    kFocused, // VitrtFocusedLinearAttention
    kMlla,    // VitrtMllaLinearAttention
    kInLine   // VitrtInLineAttention
};

struct Problem
{
    const void* q;
    const void* k;
    const void* v;
    const void* aux0; // FLatten: positional_encoding (1, N, C); MLLA: rope (N, C/2, 2); InLine: local_kernel (B, C, 9)
    const void* aux1; // FLatten: scale (1, 1, C)
    void* out;
    int64_t batch;
    int64_t tokens;
    int64_t channels;
    int64_t heads;
    float focusing_factor; // FLatten
    float scale;           // InLine
    int64_t height;        // InLine
    int64_t width;         // InLine
    int64_t prefix;        // InLine
};

// The fields every kind reads; a launcher sets its kind's extra ones on the result.
Problem make_problem(const void* q, const void* k, const void* v, const void* aux0, void* out, int64_t batch,
    int64_t tokens, int64_t channels, int64_t heads)
{
    Problem p{};
    p.q = q;
    p.k = k;
    p.v = v;
    p.aux0 = aux0;
    p.out = out;
    p.batch = batch;
    p.tokens = tokens;
    p.channels = channels;
    p.heads = heads;
    return p;
}

constexpr int kThreads = 256;
constexpr int kWarps = kThreads / kWarpSize;
constexpr int kTileEdge = 4;                             // kv micro-tile is 4 x 4 per thread
constexpr int kTilesPerThread = 2;                       // 32 FP32 accumulators: ~100 registers, 2 blocks per SM
constexpr int kTilesPerBlock = kThreads * kTilesPerThread;
constexpr int kPartialRows = kWarps;                     // k/v token rows per step of the partial kernel
constexpr int kOutputGroup = 8;                          // tokens per thread item in the output kernel
constexpr int kMaxOutputRows = 32;
constexpr int64_t kTargetPartialBlocks = 256;            // device-independent, so workspace sizes are too
constexpr int64_t kMinChunkTokens = 64;
constexpr size_t kSharedBudget = 96 * 1024;              // below the 99 KiB opt-in limit of sm_86/sm_89

template <Kind K>
__host__ __device__ constexpr int sums_of()
{
    return K == Kind::kInLine ? 2 : 1; // mean of k (and of v for InLine)
}

__host__ __device__ inline int64_t padded_channels(int64_t channels)
{
    return round_up(channels, 4);
}

struct Plan
{
    int64_t head_dim;
    int64_t groups;      // blocks per (chunk, sample) splitting the kv micro-tiles
    int64_t chunks;      // token chunks per sample
    int64_t chunk_tokens;
    size_t partial_shared;
    int64_t output_rows;
    size_t output_shared;
};

template <Kind K>
Plan make_plan(int64_t batch, int64_t tokens, int64_t channels, int64_t heads)
{
    Plan plan;
    plan.head_dim = channels / heads;
    int64_t const tiles_per_head = ceil_div(plan.head_dim, kTileEdge) * ceil_div(plan.head_dim, kTileEdge);
    plan.groups = ceil_div(heads * tiles_per_head, kTilesPerBlock);
    int64_t chunks = ceil_div(kTargetPartialBlocks, batch * plan.groups);
    int64_t const max_chunks = ceil_div(tokens, kMinChunkTokens);
    chunks = chunks < 1 ? 1 : (chunks > max_chunks ? max_chunks : chunks);
    plan.chunk_tokens = round_up(ceil_div(tokens, chunks), kPartialRows);
    plan.chunks = ceil_div(tokens, plan.chunk_tokens); // no empty chunk
    int64_t const cp = padded_channels(channels);
    // k and v rows, channel sums, per-channel constants (FLatten's 1 / softplus(scale)).
    plan.partial_shared = sizeof(float) * (2 * kPartialRows * cp + sums_of<K>() * cp + cp);
    // q rows and one normaliser per (row, head), plus per-channel constants; prefer blocks that fit 48 KiB.
    size_t const row_bytes = sizeof(float) * (cp + heads);
    size_t const fixed = sizeof(float) * cp;
    size_t budget = kDefaultSharedMemory;
    if ((budget - fixed) / row_bytes < static_cast<size_t>(kOutputGroup))
    {
        budget = kSharedBudget;
    }
    int64_t rows = budget > fixed ? static_cast<int64_t>((budget - fixed) / row_bytes) : 0;
    rows = rows > kMaxOutputRows ? kMaxOutputRows : rows / kOutputGroup * kOutputGroup;
    plan.output_rows = rows;
    plan.output_shared = fixed + row_bytes * static_cast<size_t>(rows);
    return plan;
}

struct Buffers
{
    float* partial_kv;   // (B, chunks, heads, d, d)
    float* partial_sums; // (B, chunks, sums, C)
    float* kv;           // (B, heads, d, d), scaled
    float* means;        // (B, sums, C)
};

template <Kind K>
Buffers layout_buffers(WorkspaceLayout& layout, Plan const& plan, int64_t batch, int64_t channels, int64_t heads)
{
    int64_t const kv_size = heads * plan.head_dim * plan.head_dim;
    Buffers buffers;
    buffers.partial_kv = layout.take<float>(batch * plan.chunks * kv_size);
    buffers.partial_sums = layout.take<float>(batch * plan.chunks * sums_of<K>() * channels);
    buffers.kv = layout.take<float>(batch * kv_size);
    buffers.means = layout.take<float>(batch * sums_of<K>() * channels);
    return buffers;
}

// Workspace for any batch up to `batch` (TensorRT sizes it once for the profile's largest shape).
template <Kind K>
size_t workspace_bytes(int64_t batch, int64_t tokens, int64_t channels, int64_t heads)
{
    size_t best = 0;
    for (int64_t b = 1; b <= batch; ++b)
    {
        Plan const plan = make_plan<K>(b, tokens, channels, heads);
        WorkspaceLayout sizing(nullptr);
        layout_buffers<K>(sizing, plan, b, channels, heads);
        best = sizing.size() > best ? sizing.size() : best;
    }
    return best;
}

// ---------------------------------------------------------------------------------------------------------------
// Row transforms (one warp per token row of C channels).
// ---------------------------------------------------------------------------------------------------------------

// FLatten: x = (relu(x + pe) + 1e-6) / softplus(scale); x <- ||x|| * x^p / ||x^p||. The power is taken of x / max(x)
// so large activations cannot overflow FP32 (the ratio x^p / ||x^p|| is unchanged).
template <typename T>
__device__ void focus_row(const T* x, const T* positional, const float* inv_softplus, float* row, int channels,
    float power)
{
    int const lane = threadIdx.x % kWarpSize;
    float sum_sq = 0.0f;
    float largest = 0.0f;
    for (int c = lane; c < channels; c += kWarpSize)
    {
        float value = load(x + c);
        if (positional != nullptr)
        {
            value += load(positional + c);
        }
        value = (fmaxf(value, 0.0f) + 1e-6f) * inv_softplus[c];
        row[c] = value;
        sum_sq += value * value;
        largest = fmaxf(largest, value);
    }
    sum_sq = warp_sum(sum_sq);
    largest = warp_max(largest);
    float const inv_largest = 1.0f / largest;
    float powered_sq = 0.0f;
    for (int c = lane; c < channels; c += kWarpSize)
    {
        float const powered = powf(row[c] * inv_largest, power);
        row[c] = powered;
        powered_sq += powered * powered;
    }
    powered_sq = warp_sum(powered_sq);
    float const factor = sqrtf(sum_sq) / sqrtf(powered_sq);
    for (int c = lane; c < channels; c += kWarpSize)
    {
        row[c] *= factor;
    }
}

// MLLA: elu(x) + 1.
template <typename T>
__device__ void elu_row(const T* x, float* row, int channels)
{
    for (int c = threadIdx.x % kWarpSize; c < channels; c += kWarpSize)
    {
        float const value = load(x + c);
        row[c] = value > 0.0f ? value + 1.0f : expf(value);
    }
}

template <typename T>
__device__ void copy_row(const T* x, float* row, int channels)
{
    for (int c = threadIdx.x % kWarpSize; c < channels; c += kWarpSize)
    {
        row[c] = load(x + c);
    }
}

__device__ inline void zero_row(float* row, int channels)
{
    for (int c = threadIdx.x % kWarpSize; c < channels; c += kWarpSize)
    {
        row[c] = 0.0f;
    }
}

// MLLA RoPE on `rows` shared rows in place: pair (2m, 2m+1) of token `first + r` rotates by rope[t, m] = (cos, sin).
template <typename T>
__device__ void rotate_rows(float* rows, int row_stride, int count, int64_t first, int64_t tokens, const T* rope,
    int channels)
{
    int const pairs = channels / 2;
    for (int e = threadIdx.x; e < count * pairs; e += blockDim.x)
    {
        int const r = e / pairs;
        int const m = e - r * pairs;
        int64_t const t = first + r;
        if (t >= tokens)
        {
            continue;
        }
        const T* angle = rope + (t * pairs + m) * 2;
        float const cos_v = load(angle);
        float const sin_v = load(angle + 1);
        float* pair = rows + r * row_stride + 2 * m;
        float const even = pair[0];
        float const odd = pair[1];
        pair[0] = even * cos_v - odd * sin_v;
        pair[1] = even * sin_v + odd * cos_v;
    }
}

template <typename T>
__device__ void load_inv_softplus(const T* scale, float* inv_softplus, int channels)
{
    for (int c = threadIdx.x; c < channels; c += blockDim.x)
    {
        inv_softplus[c] = 1.0f / softplus(load(scale + c));
    }
}

// ---------------------------------------------------------------------------------------------------------------
// 1. Partial kv and channel sums of one token chunk. grid = (chunks, batch, groups).
// ---------------------------------------------------------------------------------------------------------------
template <Kind K, typename T>
__global__ void __launch_bounds__(kThreads) partial_kernel(Problem problem, int64_t head_dim, int64_t chunk_tokens,
    float* partial_kv, float* partial_sums)
{
    VITRT_DYNAMIC_SMEM(float, smem);
    int const channels = static_cast<int>(problem.channels);
    int const cp = static_cast<int>(padded_channels(problem.channels));
    int const d = static_cast<int>(head_dim);
    int const heads = static_cast<int>(problem.heads);
    constexpr int kSums = sums_of<K>();
    float* ks = smem;                               // (kPartialRows, cp)
    float* vs = ks + kPartialRows * cp;             // (kPartialRows, cp)
    float* sums = vs + kPartialRows * cp;           // (kSums, cp)
    float* inv_softplus = sums + kSums * cp;        // (cp)

    int64_t const tokens = problem.tokens;
    int const chunk = blockIdx.x;
    int64_t const b = blockIdx.y;
    int const group = blockIdx.z;
    int const chunks = gridDim.x;
    int64_t const begin = chunk * chunk_tokens;
    int64_t const end = begin + chunk_tokens < tokens ? begin + chunk_tokens : tokens;
    bool const owns_sums = group == 0;

    auto const* k = static_cast<const T*>(problem.k) + b * tokens * channels;
    auto const* v = static_cast<const T*>(problem.v) + b * tokens * channels;

    if constexpr (K == Kind::kFocused)
    {
        load_inv_softplus(static_cast<const T*>(problem.aux1), inv_softplus, channels);
    }
    for (int c = threadIdx.x; c < kSums * cp; c += blockDim.x)
    {
        sums[c] = 0.0f;
    }

    // This thread's micro-tiles: (head, ti, tj) of the kv matrices, 4 x 4 each.
    int const tiles_edge = (d + kTileEdge - 1) / kTileEdge;
    int const tiles_per_head = tiles_edge * tiles_edge;
    int tile_row[kTilesPerThread]; // first channel of the k side (head * d + 4 ti), -1 if unused
    int tile_col[kTilesPerThread]; // first channel of the v side
    int tile_i[kTilesPerThread];
    int tile_j[kTilesPerThread];
#pragma unroll
    for (int r = 0; r < kTilesPerThread; ++r)
    {
        int const index = group * kTilesPerBlock + r * kThreads + static_cast<int>(threadIdx.x);
        if (index < heads * tiles_per_head)
        {
            int const h = index / tiles_per_head;
            int const rest = index - h * tiles_per_head;
            tile_i[r] = (rest / tiles_edge) * kTileEdge;
            tile_j[r] = (rest % tiles_edge) * kTileEdge;
            tile_row[r] = h * d + tile_i[r];
            tile_col[r] = h * d + tile_j[r];
        }
        else
        {
            tile_i[r] = tile_j[r] = tile_row[r] = tile_col[r] = -1;
        }
    }
    float acc[kTilesPerThread][kTileEdge][kTileEdge];
#pragma unroll
    for (int r = 0; r < kTilesPerThread; ++r)
    {
#pragma unroll
        for (int i = 0; i < kTileEdge; ++i)
        {
#pragma unroll
            for (int j = 0; j < kTileEdge; ++j)
            {
                acc[r][i][j] = 0.0f;
            }
        }
    }
    bool const vector_ok = d % kTileEdge == 0;
    __syncthreads();

    int const warp = threadIdx.x / kWarpSize;
    for (int64_t first = begin; first < end; first += kPartialRows)
    {
        // Transform one token row per warp.
        {
            int64_t const t = first + warp;
            float* krow = ks + warp * cp;
            float* vrow = vs + warp * cp;
            if (t < end)
            {
                if constexpr (K == Kind::kFocused)
                {
                    focus_row(k + t * channels, static_cast<const T*>(problem.aux0) + t * channels, inv_softplus,
                        krow, channels, problem.focusing_factor);
                }
                else if constexpr (K == Kind::kMlla)
                {
                    elu_row(k + t * channels, krow, channels);
                }
                else
                {
                    copy_row(k + t * channels, krow, channels);
                }
                copy_row(v + t * channels, vrow, channels);
            }
            else
            {
                zero_row(krow, channels);
                zero_row(vrow, channels);
            }
        }
        __syncthreads();
        if (owns_sums)
        {
            for (int c = threadIdx.x; c < channels; c += blockDim.x)
            {
                float k_total = 0.0f;
                float v_total = 0.0f;
                for (int r = 0; r < kPartialRows; ++r)
                {
                    k_total += ks[r * cp + c];
                    v_total += vs[r * cp + c];
                }
                sums[c] += k_total;
                if constexpr (kSums == 2)
                {
                    sums[cp + c] += v_total;
                }
            }
        }
        if constexpr (K == Kind::kMlla)
        {
            // The normaliser uses the non-rotated k (summed above); kv uses the rotated one.
            __syncthreads();
            rotate_rows(ks, cp, kPartialRows, first, end, static_cast<const T*>(problem.aux0), channels);
            __syncthreads();
        }
        else
        {
            __syncthreads();
        }
#pragma unroll
        for (int r = 0; r < kTilesPerThread; ++r)
        {
            if (tile_row[r] < 0)
            {
                continue;
            }
            for (int row = 0; row < kPartialRows; ++row)
            {
                float kx[kTileEdge];
                float vx[kTileEdge];
                const float* krow = ks + row * cp;
                const float* vrow = vs + row * cp;
                if (vector_ok)
                {
                    float4 const k4 = *reinterpret_cast<const float4*>(krow + tile_row[r]);
                    float4 const v4 = *reinterpret_cast<const float4*>(vrow + tile_col[r]);
                    kx[0] = k4.x, kx[1] = k4.y, kx[2] = k4.z, kx[3] = k4.w;
                    vx[0] = v4.x, vx[1] = v4.y, vx[2] = v4.z, vx[3] = v4.w;
                }
                else
                {
#pragma unroll
                    for (int e = 0; e < kTileEdge; ++e)
                    {
                        kx[e] = tile_i[r] + e < d ? krow[tile_row[r] + e] : 0.0f;
                        vx[e] = tile_j[r] + e < d ? vrow[tile_col[r] + e] : 0.0f;
                    }
                }
#pragma unroll
                for (int i = 0; i < kTileEdge; ++i)
                {
#pragma unroll
                    for (int j = 0; j < kTileEdge; ++j)
                    {
                        acc[r][i][j] = fmaf(kx[i], vx[j], acc[r][i][j]);
                    }
                }
            }
        }
        __syncthreads(); // before the next rows overwrite ks / vs
    }

    size_t const slot = static_cast<size_t>(b) * chunks + chunk;
    float* kv_out = partial_kv + slot * heads * d * d;
#pragma unroll
    for (int r = 0; r < kTilesPerThread; ++r)
    {
        if (tile_row[r] < 0)
        {
            continue;
        }
        int const h = tile_row[r] / d;
#pragma unroll
        for (int i = 0; i < kTileEdge; ++i)
        {
#pragma unroll
            for (int j = 0; j < kTileEdge; ++j)
            {
                if (tile_i[r] + i < d && tile_j[r] + j < d)
                {
                    kv_out[(static_cast<size_t>(h) * d + tile_i[r] + i) * d + tile_j[r] + j] = acc[r][i][j];
                }
            }
        }
    }
    if (owns_sums)
    {
        float* sums_out = partial_sums + slot * kSums * channels;
        for (int c = threadIdx.x; c < channels; c += blockDim.x)
        {
            sums_out[c] = sums[c];
            if constexpr (kSums == 2)
            {
                sums_out[channels + c] = sums[cp + c];
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------------------------
// 2. Sum the chunk partials in order; kv *= kv_scale, means = sums / N. grid = (ceil(E / 256), batch).
// ---------------------------------------------------------------------------------------------------------------
__global__ void __launch_bounds__(kThreads) reduce_kernel(const float* partial_kv, const float* partial_sums,
    float* kv, float* means, int64_t kv_size, int64_t sums_size, int chunks, float kv_scale, float mean_scale)
{
    int64_t const e = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
    int64_t const b = blockIdx.y;
    if (e < kv_size)
    {
        float total = 0.0f;
        for (int c = 0; c < chunks; ++c)
        {
            total += partial_kv[(b * chunks + c) * kv_size + e];
        }
        kv[b * kv_size + e] = total * kv_scale;
    }
    else if (e < kv_size + sums_size)
    {
        int64_t const s = e - kv_size;
        float total = 0.0f;
        for (int c = 0; c < chunks; ++c)
        {
            total += partial_sums[(b * chunks + c) * sums_size + s];
        }
        means[b * sums_size + s] = total * mean_scale;
    }
}

// ---------------------------------------------------------------------------------------------------------------
// 3. Output rows. grid = (ceil(N / rows), batch).
// ---------------------------------------------------------------------------------------------------------------
template <Kind K, typename T>
__global__ void __launch_bounds__(kThreads) output_kernel(
    Problem problem, int64_t head_dim, int rows, const float* kv, const float* means)
{
    VITRT_DYNAMIC_SMEM(float, smem);
    int const channels = static_cast<int>(problem.channels);
    int const cp = static_cast<int>(padded_channels(problem.channels));
    int const d = static_cast<int>(head_dim);
    int const heads = static_cast<int>(problem.heads);
    constexpr int kSums = sums_of<K>();
    float* qs = smem;                     // (rows, cp)
    float* norms = qs + rows * cp;        // (rows, heads)
    float* inv_softplus = norms + rows * heads; // (cp)

    int64_t const tokens = problem.tokens;
    int64_t const b = blockIdx.y;
    int64_t const first = static_cast<int64_t>(blockIdx.x) * rows;
    auto const* q = static_cast<const T*>(problem.q) + b * tokens * channels;
    auto const* v = static_cast<const T*>(problem.v) + b * tokens * channels;
    auto* out = static_cast<T*>(problem.out) + b * tokens * channels;
    const float* kv_b = kv + b * heads * d * d;
    const float* k_mean = means + b * kSums * channels;

    if constexpr (K == Kind::kFocused)
    {
        load_inv_softplus(static_cast<const T*>(problem.aux1), inv_softplus, channels);
        __syncthreads();
    }
    int const warp = threadIdx.x / kWarpSize;
    for (int r = warp; r < rows; r += kWarps)
    {
        int64_t const t = first + r;
        float* row = qs + r * cp;
        if (t >= tokens)
        {
            zero_row(row, channels);
        }
        else if constexpr (K == Kind::kFocused)
        {
            focus_row<T>(q + t * channels, nullptr, inv_softplus, row, channels, problem.focusing_factor);
        }
        else if constexpr (K == Kind::kMlla)
        {
            elu_row(q + t * channels, row, channels);
        }
        else
        {
            copy_row(q + t * channels, row, channels);
        }
    }
    __syncthreads();
    // Per (row, head): FLatten / MLLA z = 1 / (q . mean(k) + 1e-6) (MLLA on the non-rotated q);
    // InLine 1 - scale * q . mean(k), the weight of mean(v).
    for (int e = threadIdx.x; e < rows * heads; e += blockDim.x)
    {
        int const r = e / heads;
        int const h = e - r * heads;
        const float* row = qs + r * cp + h * d;
        const float* mean = k_mean + h * d;
        float dot = 0.0f;
        for (int i = 0; i < d; ++i)
        {
            dot = fmaf(row[i], mean[i], dot);
        }
        norms[e] = K == Kind::kInLine ? 1.0f - problem.scale * dot : 1.0f / (dot + 1e-6f);
    }
    if constexpr (K == Kind::kMlla)
    {
        __syncthreads();
        rotate_rows(qs, cp, rows, first, tokens, static_cast<const T*>(problem.aux0), channels);
    }
    __syncthreads();

    bool const vector_ok = d % 4 == 0;
    int const groups = rows / kOutputGroup;
    for (int item = threadIdx.x; item < channels * groups; item += blockDim.x)
    {
        int const c = item % channels;
        int const g = item / channels;
        int const h = c / d;
        int const j = c - h * d;
        const float* base = qs + g * kOutputGroup * cp + h * d;
        const float* kv_col = kv_b + static_cast<size_t>(h) * d * d + j;
        float acc[kOutputGroup];
#pragma unroll
        for (int u = 0; u < kOutputGroup; ++u)
        {
            acc[u] = 0.0f;
        }
        if (vector_ok)
        {
            for (int i = 0; i < d; i += 4)
            {
                float const w0 = kv_col[(i + 0) * d];
                float const w1 = kv_col[(i + 1) * d];
                float const w2 = kv_col[(i + 2) * d];
                float const w3 = kv_col[(i + 3) * d];
#pragma unroll
                for (int u = 0; u < kOutputGroup; ++u)
                {
                    float4 const x = *reinterpret_cast<const float4*>(base + u * cp + i);
                    acc[u] = fmaf(x.x, w0, fmaf(x.y, w1, fmaf(x.z, w2, fmaf(x.w, w3, acc[u]))));
                }
            }
        }
        else
        {
            for (int i = 0; i < d; ++i)
            {
                float const w = kv_col[i * d];
#pragma unroll
                for (int u = 0; u < kOutputGroup; ++u)
                {
                    acc[u] = fmaf(base[u * cp + i], w, acc[u]);
                }
            }
        }
        float taps[9] = {};
        float v_mean = 0.0f;
        if constexpr (K == Kind::kInLine)
        {
            v_mean = k_mean[channels + c];
            const T* local = static_cast<const T*>(problem.aux0) + (b * channels + c) * 9;
#pragma unroll
            for (int tap = 0; tap < 9; ++tap)
            {
                taps[tap] = load(local + tap);
            }
        }
#pragma unroll
        for (int u = 0; u < kOutputGroup; ++u)
        {
            int const r = g * kOutputGroup + u;
            int64_t const t = first + r;
            if (t >= tokens)
            {
                break;
            }
            float const norm = norms[r * heads + h];
            float value;
            if constexpr (K == Kind::kInLine)
            {
                value = acc[u] + norm * v_mean;
                int64_t const patch = t - problem.prefix;
                if (patch >= 0)
                {
                    int64_t const width = problem.width;
                    int64_t const height = problem.height;
                    int64_t const y = patch / width;
                    int64_t const x = patch - y * width;
                    float local = 0.0f;
#pragma unroll
                    for (int dy = -1; dy <= 1; ++dy)
                    {
#pragma unroll
                        for (int dx = -1; dx <= 1; ++dx)
                        {
                            int64_t const yy = y + dy;
                            int64_t const xx = x + dx;
                            if (yy >= 0 && yy < height && xx >= 0 && xx < width)
                            {
                                local = fmaf(taps[(dy + 1) * 3 + dx + 1],
                                    load(v + (problem.prefix + yy * width + xx) * channels + c), local);
                            }
                        }
                    }
                    value += local;
                }
            }
            else
            {
                value = acc[u] * norm;
            }
            out[t * channels + c] = from_float<T>(value);
        }
    }
}

template <Kind K>
int32_t check_problem(Problem const& p, const char* op)
{
    if (p.batch < 1 || p.tokens < 1 || p.channels < 1 || p.heads < 1)
    {
        return fail(VITRT_STATUS_INVALID_ARGUMENT, "%s: batch=%lld, tokens=%lld, channels=%lld, num_heads=%lld must be >= 1",
            op, static_cast<long long>(p.batch), static_cast<long long>(p.tokens), static_cast<long long>(p.channels),
            static_cast<long long>(p.heads));
    }
    if (p.channels % p.heads != 0)
    {
        return fail(VITRT_STATUS_INVALID_ARGUMENT, "%s: channels %lld are not divisible by num_heads %lld", op,
            static_cast<long long>(p.channels), static_cast<long long>(p.heads));
    }
    if constexpr (K == Kind::kMlla)
    {
        if ((p.channels / p.heads) % 2 != 0)
        {
            return fail(VITRT_STATUS_INVALID_ARGUMENT, "%s: head_dim %lld must be even for RoPE", op,
                static_cast<long long>(p.channels / p.heads));
        }
    }
    if constexpr (K == Kind::kInLine)
    {
        if (p.height < 1 || p.width < 1 || p.prefix < 0 || p.prefix + p.height * p.width != p.tokens)
        {
            return fail(VITRT_STATUS_INVALID_ARGUMENT,
                "%s: tokens %lld != num_prefix_tokens %lld + height %lld * width %lld", op,
                static_cast<long long>(p.tokens), static_cast<long long>(p.prefix), static_cast<long long>(p.height),
                static_cast<long long>(p.width));
        }
    }
    if (p.batch > 65535 || p.tokens > (int64_t{1} << 30) || p.channels > 65536)
    {
        return fail(VITRT_STATUS_UNSUPPORTED_SHAPE, "%s: batch %lld, tokens %lld or channels %lld exceed the kernel "
            "limits (65535, 2^30, 65536)", op, static_cast<long long>(p.batch), static_cast<long long>(p.tokens),
            static_cast<long long>(p.channels));
    }
    Plan const plan = make_plan<K>(p.batch, p.tokens, p.channels, p.heads);
    if (plan.partial_shared > kSharedBudget || plan.output_rows < kOutputGroup)
    {
        return fail(VITRT_STATUS_UNSUPPORTED_SHAPE, "%s: %lld channels do not fit the kernels' shared memory", op,
            static_cast<long long>(p.channels));
    }
    return VITRT_STATUS_SUCCESS;
}

template <Kind K>
int32_t workspace_query(Problem const& p, int32_t dtype, const char* op, size_t* bytes)
{
    clear_error();
    if (bytes == nullptr)
    {
        return fail(VITRT_STATUS_INVALID_ARGUMENT, "%s: `bytes` is a null pointer", op);
    }
    VITRT_TRY(check_dtype(dtype));
    VITRT_TRY(check_problem<K>(p, op));
    *bytes = workspace_bytes<K>(p.batch, p.tokens, p.channels, p.heads);
    return VITRT_STATUS_SUCCESS;
}

template <Kind K>
int32_t run(Problem const& p, int32_t dtype, void* workspace, size_t available, cudaStream_t stream, const char* op)
{
    clear_error();
    VITRT_TRY(check_dtype(dtype));
    VITRT_TRY(check_problem<K>(p, op));
    if constexpr (K == Kind::kFocused)
    {
        VITRT_TRY(check_pointers({p.q, p.k, p.v, p.aux0, p.aux1, p.out}));
    }
    else
    {
        VITRT_TRY(check_pointers({p.q, p.k, p.v, p.aux0, p.out}));
    }
    Plan const plan = make_plan<K>(p.batch, p.tokens, p.channels, p.heads);
    WorkspaceLayout sizing(nullptr);
    layout_buffers<K>(sizing, plan, p.batch, p.channels, p.heads);
    VITRT_TRY(check_workspace(workspace, available, sizing.size()));
    WorkspaceLayout layout(workspace);
    Buffers const buf = layout_buffers<K>(layout, plan, p.batch, p.channels, p.heads);

    int64_t const kv_size = p.heads * plan.head_dim * plan.head_dim;
    int64_t const sums_size = sums_of<K>() * p.channels;
    double const n = static_cast<double>(p.tokens);
    // FLatten / MLLA: kv = (k^T N^-1/2)(v N^-1/2); InLine: kv = (k^T sqrt(scale/n))(v sqrt(scale/n)).
    float const kv_scale = static_cast<float>(K == Kind::kInLine ? p.scale / n : 1.0 / n);
    float const mean_scale = static_cast<float>(1.0 / n);
    int32_t status = VITRT_STATUS_SUCCESS;
    dispatch_dtype(dtype, [&](auto tag) {
        using T = decltype(tag);
        cudaError_t error = launch(partial_kernel<K, T>,
            dim3(static_cast<unsigned>(plan.chunks), static_cast<unsigned>(p.batch), static_cast<unsigned>(plan.groups)),
            dim3(kThreads), plan.partial_shared, stream, p, plan.head_dim, plan.chunk_tokens, buf.partial_kv,
            buf.partial_sums);
        if (error != cudaSuccess)
        {
            status = cuda_failure(error, "linear attention partial kernel launch");
            return;
        }
        error = launch(reduce_kernel,
            dim3(static_cast<unsigned>(ceil_div(kv_size + sums_size, kThreads)), static_cast<unsigned>(p.batch)),
            dim3(kThreads), 0, stream, buf.partial_kv, buf.partial_sums, buf.kv, buf.means, kv_size, sums_size,
            static_cast<int>(plan.chunks), kv_scale, mean_scale);
        if (error != cudaSuccess)
        {
            status = cuda_failure(error, "linear attention reduce kernel launch");
            return;
        }
        error = launch(output_kernel<K, T>,
            dim3(static_cast<unsigned>(ceil_div(p.tokens, plan.output_rows)), static_cast<unsigned>(p.batch)),
            dim3(kThreads), plan.output_shared, stream, p, plan.head_dim, static_cast<int>(plan.output_rows), buf.kv,
            buf.means);
        if (error != cudaSuccess)
        {
            status = cuda_failure(error, "linear attention output kernel launch");
        }
    });
    return status;
}

} // namespace linear
} // namespace
} // namespace vitrt
