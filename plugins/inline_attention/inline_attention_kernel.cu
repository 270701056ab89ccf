// VitrtInLineAttention: injective linear attention with its mean correction and per-sample 3x3 local residual
// fused into the output kernel of the shared linear-attention kernels.
#include "inline_attention_kernel.h"

#include <cmath>

#include "linear_attention.cuh"

using namespace vitrt;

namespace
{
constexpr char kOp[] = "inline_attention";

linear::Problem problem(const void* q, const void* k, const void* v, const void* local_kernel, void* out,
    int64_t batch, int64_t tokens, int64_t channels, int64_t num_heads, int64_t height, int64_t width,
    int64_t num_prefix_tokens, float scale)
{
    linear::Problem p = linear::make_problem(q, k, v, local_kernel, out, batch, tokens, channels, num_heads);
    p.height = height;
    p.width = width;
    p.prefix = num_prefix_tokens;
    p.scale = scale;
    return p;
}
} // namespace

extern "C" {

VITRT_API int32_t vitrt_inline_attention_workspace_size(int64_t batch, int64_t tokens, int64_t channels,
    int64_t num_heads, int64_t height, int64_t width, int64_t num_prefix_tokens, int32_t dtype, size_t* bytes)
{
    return linear::workspace_query<linear::Kind::kInLine>(problem(nullptr, nullptr, nullptr, nullptr, nullptr, batch,
                                                              tokens, channels, num_heads, height, width,
                                                              num_prefix_tokens, 1.0f),
        dtype, kOp, bytes);
}

VITRT_API int32_t vitrt_inline_attention(const void* q, const void* k, const void* v, const void* local_kernel,
    void* out, int64_t batch, int64_t tokens, int64_t channels, int64_t num_heads, int64_t height, int64_t width,
    int64_t num_prefix_tokens, float scale, int32_t dtype, void* workspace, size_t workspace_bytes,
    cudaStream_t stream)
{
    if (!(scale >= 0.0f) || !std::isfinite(scale))
    {
        return fail(VITRT_STATUS_INVALID_ARGUMENT, "%s: scale %g must be a non-negative finite number", kOp,
            static_cast<double>(scale));
    }
    return linear::run<linear::Kind::kInLine>(problem(q, k, v, local_kernel, out, batch, tokens, channels, num_heads,
                                                  height, width, num_prefix_tokens, scale),
        dtype, workspace, workspace_bytes, stream, kOp);
}

} // extern "C"
