// VitrtMllaLinearAttention: elu + 1 feature map and 2-D RoPE fused into the shared linear-attention kernels.
#include "mlla_linear_attention_kernel.h"

#include "linear_attention.cuh"

using namespace vitrt;

namespace
{
constexpr char kOp[] = "mlla_linear_attention";
} // namespace

extern "C" {

VITRT_API int32_t vitrt_mlla_linear_attention_workspace_size(int64_t batch, int64_t tokens, int64_t channels,
    int64_t num_heads, int32_t dtype, size_t* bytes)
{
    linear::Problem const shape
        = linear::make_problem(nullptr, nullptr, nullptr, nullptr, nullptr, batch, tokens, channels, num_heads);
    return linear::workspace_query<linear::Kind::kMlla>(shape, dtype, kOp, bytes);
}

VITRT_API int32_t vitrt_mlla_linear_attention(const void* q, const void* k, const void* v, const void* rope, void* out,
    int64_t batch, int64_t tokens, int64_t channels, int64_t num_heads, int32_t dtype, void* workspace,
    size_t workspace_bytes, cudaStream_t stream)
{
    return linear::run<linear::Kind::kMlla>(
        linear::make_problem(q, k, v, rope, out, batch, tokens, channels, num_heads), dtype, workspace,
        workspace_bytes, stream, kOp);
}

} // extern "C"
