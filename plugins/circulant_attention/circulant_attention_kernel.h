/*
 * VitrtCirculantAttention kernels (see circulant_attention.yaml).
 *
 * q, k, v, out: (batch, height * width, channels), tokens in row-major grid order, all of `dtype`.
 * Per sample and channel: a[d] = N^-1/2 sum_t q[t] k[t + d] (2-D circular cross-correlation), alpha = softmax over
 * the N positions, out[s] = sum_t alpha[t] v[t + s]. Two strategies:
 *   VITRT_CIRCULANT_CUFFT  batched R2C/C2R 2-D FFTs over every (sample, channel) signal; O(N log N) per channel,
 *                          about a dozen launches and memory passes, so it wins on large grids.
 *   VITRT_CIRCULANT_DIRECT one fused kernel that correlates in shared memory; O(N^2) per channel, a single launch
 *                          and one read of q, k, v, so it wins on small grids. Needs 3 * N * 8 floats of shared
 *                          memory per block (grids up to about 32 x 31 on every architecture, larger on sm_80/sm_90).
 *   VITRT_CIRCULANT_AUTO   picks one with the cost model of vitrt_circulant_attention_auto_strategy().
 */
#ifndef VITRT_CIRCULANT_ATTENTION_KERNEL_H
#define VITRT_CIRCULANT_ATTENTION_KERNEL_H

#include "vitrt_kernels.h"

#ifdef __cplusplus
extern "C" {
#endif

/* The strategy AUTO resolves to for this problem (host-only arithmetic, no device needed). */
VITRT_API int32_t vitrt_circulant_attention_auto_strategy(int64_t batch, int64_t height, int64_t width,
    int64_t channels);

/* Bytes of shared memory one block of the direct strategy needs for this grid. */
VITRT_API size_t vitrt_circulant_attention_direct_shared_bytes(int64_t height, int64_t width);

/* Resolves `requested` (AUTO/CUFFT/DIRECT) to the strategy that will run on the current device; fails when DIRECT
 * is requested but the grid does not fit the device's shared memory. */
VITRT_API int32_t vitrt_circulant_attention_select_strategy(int64_t batch, int64_t height, int64_t width,
    int64_t channels, int32_t requested, int32_t* selected);

/* Workspace bytes for one call. For CUFFT this also creates and caches the cuFFT plans of the shape, so calling it
 * ahead of time (e.g. in TensorRT's onShapeChange) keeps plan creation out of the timed / captured enqueue. */
VITRT_API int32_t vitrt_circulant_attention_workspace_size(int64_t batch, int64_t height, int64_t width,
    int64_t channels, int32_t dtype, int32_t strategy, size_t* bytes);

VITRT_API int32_t vitrt_circulant_attention(const void* q, const void* k, const void* v, void* out, int64_t batch,
    int64_t height, int64_t width, int64_t channels, int32_t dtype, int32_t strategy, void* workspace,
    size_t workspace_bytes, cudaStream_t stream);

#ifdef __cplusplus
}
#endif

#endif /* VITRT_CIRCULANT_ATTENTION_KERNEL_H */
