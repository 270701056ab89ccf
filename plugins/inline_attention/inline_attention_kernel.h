/*
 * VitrtInLineAttention kernels (InLine; see inline_attention.yaml).
 *
 * q, k, v, out: (batch, tokens, channels) with tokens = num_prefix_tokens + height * width; local_kernel:
 * (batch, channels, 9), the per-sample 3x3 taps of the local residual on the patch tokens of v. All tensors of
 * `dtype`; FP32 inside.
 */
#ifndef VITRT_INLINE_ATTENTION_KERNEL_H
#define VITRT_INLINE_ATTENTION_KERNEL_H

#include "vitrt_kernels.h"

#ifdef __cplusplus
extern "C" {
#endif

VITRT_API int32_t vitrt_inline_attention_workspace_size(int64_t batch, int64_t tokens, int64_t channels,
    int64_t num_heads, int64_t height, int64_t width, int64_t num_prefix_tokens, int32_t dtype, size_t* bytes);

VITRT_API int32_t vitrt_inline_attention(const void* q, const void* k, const void* v, const void* local_kernel,
    void* out, int64_t batch, int64_t tokens, int64_t channels, int64_t num_heads, int64_t height, int64_t width,
    int64_t num_prefix_tokens, float scale, int32_t dtype, void* workspace, size_t workspace_bytes,
    cudaStream_t stream);

#ifdef __cplusplus
}
#endif

#endif /* VITRT_INLINE_ATTENTION_KERNEL_H */
