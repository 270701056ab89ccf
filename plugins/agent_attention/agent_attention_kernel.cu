// VitrtAgentAttention: agent aggregation (softmax over the keys, split over token chunks with online-softmax
// partials) and agent broadcast (softmax over the agents) as three kernels; no a x n or n x a attention matrix
// ever reaches global memory.
#include "agent_attention_kernel.h"

#include <cmath>

#include "cuda_utils.cuh"
#include "kernel_utils.h"

namespace vitrt
{
namespace
{

constexpr char kOp[] = "agent_attention";
constexpr int kThreads = 256;
constexpr int kWarps = kThreads / kWarpSize;
constexpr int64_t kTargetBlocks = 256; // device-independent, so the workspace size is too
constexpr size_t kSharedBudget = 96 * 1024;

struct Problem
{
    const void* q;
    const void* k;
    const void* v;
    const void* agents;
    const void* agent_bias;
    const void* query_bias;
    void* out;
    int64_t batch;
    int64_t tokens;
    int64_t channels;
    int64_t agents_count;
    int64_t heads;
    float scale;
};

// Shared floats of the aggregation kernel for `keys` keys per step.
size_t aggregate_floats(int64_t a, int64_t d, int64_t keys)
{
    // agents (padded rows), keys (padded rows), values, probabilities, accumulators, max/sum/correction.
    return static_cast<size_t>(a * (d + 1) + keys * (d + 1) + keys * d + a * keys + a * d + 3 * a);
}

size_t broadcast_floats(int64_t a, int64_t d, int64_t rows)
{
    // agents (padded rows), agent values, query rows, probabilities.
    return static_cast<size_t>(a * (d + 1) + a * d + rows * d + rows * a);
}

struct Plan
{
    int64_t head_dim;
    int64_t keys;        // keys per step of the aggregation kernel (<= 32: one lane per key)
    int64_t chunks;      // key chunks per (sample, head)
    int64_t chunk_keys;
    size_t aggregate_shared;
    int64_t rows;        // query rows per block of the broadcast kernel
    size_t broadcast_shared;
};

Plan make_plan(int64_t batch, int64_t tokens, int64_t channels, int64_t a, int64_t heads)
{
    Plan plan{};
    plan.head_dim = channels / heads;
    int64_t const d = plan.head_dim;
    for (int64_t keys = 32; keys >= 8; keys /= 2)
    {
        plan.keys = keys;
        plan.aggregate_shared = sizeof(float) * aggregate_floats(a, d, keys);
        if (plan.aggregate_shared <= kSharedBudget)
        {
            break;
        }
    }
    int64_t chunks = ceil_div(kTargetBlocks, batch * heads);
    int64_t const max_chunks = ceil_div(tokens, plan.keys);
    chunks = chunks < 1 ? 1 : (chunks > max_chunks ? max_chunks : chunks);
    plan.chunk_keys = round_up(ceil_div(tokens, chunks), plan.keys);
    plan.chunks = ceil_div(tokens, plan.chunk_keys);
    for (int64_t rows = 32; rows >= 8; rows /= 2)
    {
        plan.rows = rows;
        plan.broadcast_shared = sizeof(float) * broadcast_floats(a, d, rows);
        if (plan.broadcast_shared <= kSharedBudget)
        {
            break;
        }
    }
    return plan;
}

struct Buffers
{
    float* part_max;  // (B, h, chunks, a)
    float* part_sum;  // (B, h, chunks, a)
    float* part_acc;  // (B, h, chunks, a, d)
    float* agent_v;   // (B, h, a, d)
};

Buffers layout_buffers(WorkspaceLayout& layout, Plan const& plan, int64_t batch, int64_t a, int64_t heads)
{
    int64_t const slots = batch * heads * plan.chunks * a;
    Buffers buffers;
    buffers.part_max = layout.take<float>(slots);
    buffers.part_sum = layout.take<float>(slots);
    buffers.part_acc = layout.take<float>(slots * plan.head_dim);
    buffers.agent_v = layout.take<float>(batch * heads * a * plan.head_dim);
    return buffers;
}

// Loads `rows` rows of one head (d channels starting at column h * d) of a (.., rows_total, C) tensor into shared
// memory with row stride `stride`, pre-multiplied by `factor`; rows past `valid` become zero.
template <typename T>
__device__ void load_head_rows(const T* src, float* dst, int rows, int valid, int d, int stride, int channels,
    float factor)
{
    for (int e = threadIdx.x; e < rows * d; e += blockDim.x)
    {
        int const r = e / d;
        int const j = e - r * d;
        dst[r * stride + j] = r < valid ? load(src + static_cast<size_t>(r) * channels + j) * factor : 0.0f;
    }
}

// 1. Agent aggregation partials: for a chunk of keys, running max m, sum l and sum_t exp(logit - m) v_t per agent.
// grid = (chunks, heads, batch).
template <typename T>
__global__ void __launch_bounds__(kThreads) aggregate_kernel(Problem p, int d, int keys, int64_t chunk_keys,
    float* part_max, float* part_sum, float* part_acc)
{
    VITRT_DYNAMIC_SMEM(float, smem);
    int const a = static_cast<int>(p.agents_count);
    int const channels = static_cast<int>(p.channels);
    int64_t const tokens = p.tokens;
    float* as = smem;                     // (a, d + 1), scaled agents
    float* ks = as + a * (d + 1);         // (keys, d + 1)
    float* vs = ks + keys * (d + 1);      // (keys, d)
    float* probs = vs + keys * d;         // (a, keys)
    float* acc = probs + a * keys;        // (a, d)
    float* run_max = acc + a * d;         // (a)
    float* run_sum = run_max + a;         // (a)
    float* correction = run_sum + a;      // (a)

    int const chunk = blockIdx.x;
    int const h = blockIdx.y;
    int64_t const b = blockIdx.z;
    int const chunks = gridDim.x;
    int const heads = gridDim.y;
    int64_t const begin = chunk * chunk_keys;
    int64_t const end = begin + chunk_keys < tokens ? begin + chunk_keys : tokens;
    size_t const column = static_cast<size_t>(h) * d;

    load_head_rows(static_cast<const T*>(p.agents) + b * a * channels + column, as, a, a, d, d + 1, channels, p.scale);
    for (int e = threadIdx.x; e < a * d; e += blockDim.x)
    {
        acc[e] = 0.0f;
    }
    for (int e = threadIdx.x; e < a; e += blockDim.x)
    {
        run_max[e] = -INFINITY;
        run_sum[e] = 0.0f;
    }
    const T* k = static_cast<const T*>(p.k) + b * tokens * channels + column;
    const T* v = static_cast<const T*>(p.v) + b * tokens * channels + column;
    const T* bias = static_cast<const T*>(p.agent_bias) + static_cast<size_t>(h) * a * tokens;
    int const lane = threadIdx.x % kWarpSize;
    int const warp = threadIdx.x / kWarpSize;

    for (int64_t first = begin; first < end; first += keys)
    {
        int const valid = static_cast<int>(end - first < keys ? end - first : keys);
        load_head_rows(k + first * channels, ks, keys, valid, d, d + 1, channels, 1.0f);
        load_head_rows(v + first * channels, vs, keys, valid, d, d, channels, 1.0f);
        __syncthreads();
        for (int e = threadIdx.x; e < a * keys; e += blockDim.x)
        {
            int const ag = e / keys;
            int const t = e - ag * keys;
            float logit = -INFINITY;
            if (t < valid)
            {
                const float* x = as + ag * (d + 1);
                const float* y = ks + t * (d + 1);
                float dot = 0.0f;
                for (int j = 0; j < d; ++j)
                {
                    dot = fmaf(x[j], y[j], dot);
                }
                logit = dot + load(bias + static_cast<size_t>(ag) * tokens + first + t);
            }
            probs[e] = logit;
        }
        __syncthreads();
        // Online softmax per agent, one warp per agent; every step has at least one valid key, so the new max is
        // finite and exp(-inf - max) = 0 handles both the first step and the padded keys.
        for (int ag = warp; ag < a; ag += kWarps)
        {
            float* row = probs + ag * keys;
            float step_max = -INFINITY;
            for (int t = lane; t < keys; t += kWarpSize)
            {
                step_max = fmaxf(step_max, row[t]);
            }
            step_max = warp_max(step_max);
            float const previous = run_max[ag];
            float const fresh = fmaxf(previous, step_max);
            float step_sum = 0.0f;
            for (int t = lane; t < keys; t += kWarpSize)
            {
                float const e = expf(row[t] - fresh);
                row[t] = e;
                step_sum += e;
            }
            step_sum = warp_sum(step_sum);
            if (lane == 0)
            {
                float const scale_old = expf(previous - fresh);
                correction[ag] = scale_old;
                run_sum[ag] = run_sum[ag] * scale_old + step_sum;
                run_max[ag] = fresh;
            }
        }
        __syncthreads();
        for (int e = threadIdx.x; e < a * d; e += blockDim.x)
        {
            int const ag = e / d;
            int const j = e - ag * d;
            const float* row = probs + ag * keys;
            float total = acc[e] * correction[ag];
            for (int t = 0; t < valid; ++t)
            {
                total = fmaf(row[t], vs[t * d + j], total);
            }
            acc[e] = total;
        }
        __syncthreads();
    }
    size_t const slot = ((static_cast<size_t>(b) * heads + h) * chunks + chunk) * a;
    for (int e = threadIdx.x; e < a; e += blockDim.x)
    {
        part_max[slot + e] = run_max[e];
        part_sum[slot + e] = run_sum[e];
    }
    for (int e = threadIdx.x; e < a * d; e += blockDim.x)
    {
        part_acc[slot * d + e] = acc[e];
    }
}

// 2. Merge the chunk partials (log-sum-exp) into the agent values V_A = softmax(...) V. grid = (a, heads, batch).
__global__ void __launch_bounds__(kThreads) combine_kernel(const float* part_max, const float* part_sum,
    const float* part_acc, float* agent_v, int d, int chunks)
{
    int const a = gridDim.x;
    int const ag = blockIdx.x;
    size_t const bh = static_cast<size_t>(blockIdx.z) * gridDim.y + blockIdx.y;
    size_t const first = bh * chunks * a + ag; // slot of chunk c: first + c * a
    float best = -INFINITY;
    for (int c = 0; c < chunks; ++c)
    {
        best = fmaxf(best, part_max[first + static_cast<size_t>(c) * a]);
    }
    float total = 0.0f;
    for (int c = 0; c < chunks; ++c)
    {
        size_t const slot = first + static_cast<size_t>(c) * a;
        total += part_sum[slot] * expf(part_max[slot] - best);
    }
    float const inv_total = 1.0f / total;
    for (int j = threadIdx.x; j < d; j += blockDim.x)
    {
        float value = 0.0f;
        for (int c = 0; c < chunks; ++c)
        {
            size_t const slot = first + static_cast<size_t>(c) * a;
            value = fmaf(part_acc[slot * d + j], expf(part_max[slot] - best), value);
        }
        agent_v[(bh * a + ag) * d + j] = value * inv_total;
    }
}

// 3. Agent broadcast: out = softmax(scale q A^T + query_bias) V_A per head. grid = (ceil(n / rows), heads, batch).
template <typename T>
__global__ void __launch_bounds__(kThreads) broadcast_kernel(Problem p, int d, int rows, const float* agent_v)
{
    VITRT_DYNAMIC_SMEM(float, smem);
    int const a = static_cast<int>(p.agents_count);
    int const channels = static_cast<int>(p.channels);
    int64_t const tokens = p.tokens;
    float* as = smem;                  // (a, d + 1), scaled agents
    float* avs = as + a * (d + 1);     // (a, d)
    float* qs = avs + a * d;           // (rows, d)
    float* probs = qs + rows * d;      // (rows, a)

    int const h = blockIdx.y;
    int const heads = gridDim.y;
    int64_t const b = blockIdx.z;
    int64_t const first = static_cast<int64_t>(blockIdx.x) * rows;
    int const valid = static_cast<int>(tokens - first < rows ? tokens - first : rows);
    size_t const column = static_cast<size_t>(h) * d;

    load_head_rows(static_cast<const T*>(p.agents) + b * a * channels + column, as, a, a, d, d + 1, channels, p.scale);
    const float* values = agent_v + (static_cast<size_t>(b) * heads + h) * a * d;
    for (int e = threadIdx.x; e < a * d; e += blockDim.x)
    {
        avs[e] = values[e];
    }
    load_head_rows(static_cast<const T*>(p.q) + (b * tokens + first) * channels + column, qs, rows, valid, d, d,
        channels, 1.0f);
    __syncthreads();
    const T* bias = static_cast<const T*>(p.query_bias) + (static_cast<size_t>(h) * tokens + first) * a;
    for (int e = threadIdx.x; e < valid * a; e += blockDim.x)
    {
        int const r = e / a;
        int const ag = e - r * a;
        const float* x = qs + r * d;
        const float* y = as + ag * (d + 1);
        float dot = 0.0f;
        for (int j = 0; j < d; ++j)
        {
            dot = fmaf(x[j], y[j], dot);
        }
        probs[e] = dot + load(bias + e);
    }
    __syncthreads();
    int const lane = threadIdx.x % kWarpSize;
    for (int r = threadIdx.x / kWarpSize; r < valid; r += kWarps)
    {
        float* row = probs + r * a;
        float best = -INFINITY;
        for (int ag = lane; ag < a; ag += kWarpSize)
        {
            best = fmaxf(best, row[ag]);
        }
        best = warp_max(best);
        float total = 0.0f;
        for (int ag = lane; ag < a; ag += kWarpSize)
        {
            float const e = expf(row[ag] - best);
            row[ag] = e;
            total += e;
        }
        float const inv_total = 1.0f / warp_sum(total);
        for (int ag = lane; ag < a; ag += kWarpSize)
        {
            row[ag] *= inv_total;
        }
    }
    __syncthreads();
    T* out = static_cast<T*>(p.out) + (b * tokens + first) * channels + column;
    for (int e = threadIdx.x; e < valid * d; e += blockDim.x)
    {
        int const r = e / d;
        int const j = e - r * d;
        const float* row = probs + r * a;
        float total = 0.0f;
        for (int ag = 0; ag < a; ++ag)
        {
            total = fmaf(row[ag], avs[ag * d + j], total);
        }
        out[static_cast<size_t>(r) * channels + j] = from_float<T>(total);
    }
}

int32_t check_problem(Problem const& p)
{
    if (p.batch < 1 || p.tokens < 1 || p.channels < 1 || p.agents_count < 1 || p.heads < 1)
    {
        return fail(VITRT_STATUS_INVALID_ARGUMENT,
            "%s: batch=%lld, tokens=%lld, channels=%lld, agents=%lld, num_heads=%lld must be >= 1", kOp,
            static_cast<long long>(p.batch), static_cast<long long>(p.tokens), static_cast<long long>(p.channels),
            static_cast<long long>(p.agents_count), static_cast<long long>(p.heads));
    }
    if (p.channels % p.heads != 0)
    {
        return fail(VITRT_STATUS_INVALID_ARGUMENT, "%s: channels %lld are not divisible by num_heads %lld", kOp,
            static_cast<long long>(p.channels), static_cast<long long>(p.heads));
    }
    if (p.batch > 65535 || p.heads > 65535 || p.tokens > (int64_t{1} << 30) || p.agents_count > 65535)
    {
        return fail(VITRT_STATUS_UNSUPPORTED_SHAPE, "%s: batch %lld, heads %lld, tokens %lld or agents %lld exceed "
            "the kernel limits", kOp, static_cast<long long>(p.batch), static_cast<long long>(p.heads),
            static_cast<long long>(p.tokens), static_cast<long long>(p.agents_count));
    }
    Plan const plan = make_plan(p.batch, p.tokens, p.channels, p.agents_count, p.heads);
    if (plan.aggregate_shared > kSharedBudget || plan.broadcast_shared > kSharedBudget)
    {
        return fail(VITRT_STATUS_UNSUPPORTED_SHAPE,
            "%s: %lld agents of head_dim %lld do not fit the kernels' shared memory", kOp,
            static_cast<long long>(p.agents_count), static_cast<long long>(plan.head_dim));
    }
    return VITRT_STATUS_SUCCESS;
}

template <typename T>
int32_t run(Problem const& p, Plan const& plan, Buffers const& buf, cudaStream_t stream)
{
    int const d = static_cast<int>(plan.head_dim);
    VITRT_CUDA_TRY(launch(aggregate_kernel<T>,
        dim3(static_cast<unsigned>(plan.chunks), static_cast<unsigned>(p.heads), static_cast<unsigned>(p.batch)),
        dim3(kThreads), plan.aggregate_shared, stream, p, d, static_cast<int>(plan.keys), plan.chunk_keys,
        buf.part_max, buf.part_sum, buf.part_acc));
    VITRT_CUDA_TRY(launch(combine_kernel,
        dim3(static_cast<unsigned>(p.agents_count), static_cast<unsigned>(p.heads), static_cast<unsigned>(p.batch)),
        dim3(d < kThreads ? static_cast<unsigned>(round_up(d, kWarpSize)) : kThreads), 0, stream, buf.part_max,
        buf.part_sum, buf.part_acc, buf.agent_v, d, static_cast<int>(plan.chunks)));
    VITRT_CUDA_TRY(launch(broadcast_kernel<T>,
        dim3(static_cast<unsigned>(ceil_div(p.tokens, plan.rows)), static_cast<unsigned>(p.heads),
            static_cast<unsigned>(p.batch)),
        dim3(kThreads), plan.broadcast_shared, stream, p, d, static_cast<int>(plan.rows), buf.agent_v));
    return VITRT_STATUS_SUCCESS;
}

} // namespace
} // namespace vitrt

using namespace vitrt;

extern "C" {

VITRT_API int32_t vitrt_agent_attention_workspace_size(int64_t batch, int64_t tokens, int64_t channels,
    int64_t num_agents, int64_t num_heads, int32_t dtype, size_t* bytes)
{
    clear_error();
    if (bytes == nullptr)
    {
        return fail(VITRT_STATUS_INVALID_ARGUMENT, "%s: `bytes` is a null pointer", kOp);
    }
    VITRT_TRY(check_dtype(dtype));
    Problem p{};
    p.batch = batch;
    p.tokens = tokens;
    p.channels = channels;
    p.agents_count = num_agents;
    p.heads = num_heads;
    VITRT_TRY(check_problem(p));
    size_t best = 0;
    for (int64_t b = 1; b <= batch; ++b) // any batch up to the profile's largest fits
    {
        WorkspaceLayout sizing(nullptr);
        layout_buffers(sizing, make_plan(b, tokens, channels, num_agents, num_heads), b, num_agents, num_heads);
        best = sizing.size() > best ? sizing.size() : best;
    }
    *bytes = best;
    return VITRT_STATUS_SUCCESS;
}

VITRT_API int32_t vitrt_agent_attention(const void* q, const void* k, const void* v, const void* agents,
    const void* agent_bias, const void* query_bias, void* out, int64_t batch, int64_t tokens, int64_t channels,
    int64_t num_agents, int64_t num_heads, float scale, int32_t dtype, void* workspace, size_t workspace_bytes,
    cudaStream_t stream)
{
    clear_error();
    VITRT_TRY(check_dtype(dtype));
    VITRT_TRY(check_pointers({q, k, v, agents, agent_bias, query_bias, out}));
    if (!std::isfinite(scale))
    {
        return fail(VITRT_STATUS_INVALID_ARGUMENT, "%s: scale %g is not finite", kOp, static_cast<double>(scale));
    }
    Problem const p{q, k, v, agents, agent_bias, query_bias, out, batch, tokens, channels, num_agents, num_heads, scale};
    VITRT_TRY(check_problem(p));
    Plan const plan = make_plan(batch, tokens, channels, num_agents, num_heads);
    WorkspaceLayout sizing(nullptr);
    layout_buffers(sizing, plan, batch, num_agents, num_heads);
    VITRT_TRY(check_workspace(workspace, workspace_bytes, sizing.size()));
    WorkspaceLayout layout(workspace);
    Buffers const buf = layout_buffers(layout, plan, batch, num_agents, num_heads);
    int32_t status = VITRT_STATUS_SUCCESS;
    dispatch_dtype(dtype, [&](auto tag) { status = run<decltype(tag)>(p, plan, buf, stream); });
    return status;
}

} // extern "C"
