/*
 * VitrtMllaLinearAttention kernels (MLLA; see mlla_linear_attention.yaml).
 *
 * q, k (before elu + 1), v, out: (batch, tokens, channels); rope: (tokens, channels / 2, 2) = [cos, sin] per token
 * and channel pair. All tensors of `dtype`; FP32 inside. head_dim = channels / num_heads must be even.
 */
#ifndef VITRT_MLLA_LINEAR_ATTENTION_KERNEL_H
#define VITRT_MLLA_LINEAR_ATTENTION_KERNEL_H

#include "vitrt_kernels.h"

#ifdef __cplusplus
extern "C" {
#endif

VITRT_API int32_t vitrt_mlla_linear_attention_workspace_size(int64_t batch, int64_t tokens, int64_t channels,
    int64_t num_heads, int32_t dtype, size_t* bytes);

VITRT_API int32_t vitrt_mlla_linear_attention(const void* q, const void* k, const void* v, const void* rope, void* out,
    int64_t batch, int64_t tokens, int64_t channels, int64_t num_heads, int32_t dtype, void* workspace,
    size_t workspace_bytes, cudaStream_t stream);

#ifdef __cplusplus
}
#endif

#endif /* VITRT_MLLA_LINEAR_ATTENTION_KERNEL_H */
