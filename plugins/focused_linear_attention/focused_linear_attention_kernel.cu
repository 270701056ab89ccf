// VitrtFocusedLinearAttention: FLatten's focusing map fused into the shared linear-attention kernels.
#include "focused_linear_attention_kernel.h"

#include <cmath>

#include "linear_attention.cuh"

using namespace vitrt;

namespace
{
constexpr char kOp[] = "focused_linear_attention";

linear::Problem problem(const void* q, const void* k, const void* v, const void* positional_encoding,
    const void* scale, void* out, int64_t batch, int64_t tokens, int64_t channels, int64_t num_heads,
    float focusing_factor)
{
    linear::Problem p
        = linear::make_problem(q, k, v, positional_encoding, out, batch, tokens, channels, num_heads);
    p.aux1 = scale;
    p.focusing_factor = focusing_factor;
    return p;
}
} // namespace

extern "C" {

VITRT_API int32_t vitrt_focused_linear_attention_workspace_size(int64_t batch, int64_t tokens, int64_t channels,
    int64_t num_heads, int32_t dtype, size_t* bytes)
{
    return linear::workspace_query<linear::Kind::kFocused>(
        problem(nullptr, nullptr, nullptr, nullptr, nullptr, nullptr, batch, tokens, channels, num_heads, 3.0f),
        dtype, kOp, bytes);
}

VITRT_API int32_t vitrt_focused_linear_attention(const void* q, const void* k, const void* v,
    const void* positional_encoding, const void* scale, void* out, int64_t batch, int64_t tokens, int64_t channels,
    int64_t num_heads, float focusing_factor, int32_t dtype, void* workspace, size_t workspace_bytes,
    cudaStream_t stream)
{
    if (!(focusing_factor > 0.0f) || !std::isfinite(focusing_factor))
    {
        return fail(VITRT_STATUS_INVALID_ARGUMENT, "%s: focusing_factor %g must be a positive finite number", kOp,
            static_cast<double>(focusing_factor));
    }
    return linear::run<linear::Kind::kFocused>(
        problem(q, k, v, positional_encoding, scale, out, batch, tokens, channels, num_heads, focusing_factor), dtype,
        workspace, workspace_bytes, stream, kOp);
}

} // extern "C"
