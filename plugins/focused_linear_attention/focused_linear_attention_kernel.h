/*
 * VitrtFocusedLinearAttention kernels (FLatten; see focused_linear_attention.yaml).
 *
 * q, k, v, out: (batch, tokens, channels); positional_encoding: (1, tokens, channels), added to k; scale:
 * (1, 1, channels), the raw parameter (softplus is applied inside). All tensors of `dtype`; FP32 inside.
 */
#ifndef VITRT_FOCUSED_LINEAR_ATTENTION_KERNEL_H
#define VITRT_FOCUSED_LINEAR_ATTENTION_KERNEL_H

#include "vitrt_kernels.h"

#ifdef __cplusplus
extern "C" {
#endif

VITRT_API int32_t vitrt_focused_linear_attention_workspace_size(int64_t batch, int64_t tokens, int64_t channels,
    int64_t num_heads, int32_t dtype, size_t* bytes);

VITRT_API int32_t vitrt_focused_linear_attention(const void* q, const void* k, const void* v,
    const void* positional_encoding, const void* scale, void* out, int64_t batch, int64_t tokens, int64_t channels,
    int64_t num_heads, float focusing_factor, int32_t dtype, void* workspace, size_t workspace_bytes,
    cudaStream_t stream);

#ifdef __cplusplus
}
#endif

#endif /* VITRT_FOCUSED_LINEAR_ATTENTION_KERNEL_H */
