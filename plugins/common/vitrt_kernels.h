/*
 * vitrt kernel library: the C ABI shared by every op launcher.
 *
 * Launchers take device pointers, shapes, attributes, a dtype, a caller-owned workspace and a stream; they only
 * enqueue work and return a status code (no exceptions cross the ABI). A non-zero status leaves a one-line,
 * thread-local explanation in vitrt_last_error().
 */
#ifndef VITRT_KERNELS_H
#define VITRT_KERNELS_H

#include <stddef.h>
#include <stdint.h>

#include <cuda_runtime_api.h>

#if defined(_WIN32)
#define VITRT_API __declspec(dllexport)
#else
#define VITRT_API __attribute__((visibility("default")))
#endif

#ifdef __cplusplus
extern "C" {
#endif

/* Element type of every input and output of one call (all tensors share it). */
typedef enum vitrt_dtype
{
    VITRT_DTYPE_FLOAT32 = 0,
    VITRT_DTYPE_FLOAT16 = 1,
    VITRT_DTYPE_BFLOAT16 = 2
} vitrt_dtype;

typedef enum vitrt_status
{
    VITRT_STATUS_SUCCESS = 0,
    VITRT_STATUS_INVALID_ARGUMENT = 1,   /* shapes/attributes violate the op contract */
    VITRT_STATUS_UNSUPPORTED_DTYPE = 2,
    VITRT_STATUS_UNSUPPORTED_SHAPE = 3,  /* valid for the op, but beyond what this kernel/device can run */
    VITRT_STATUS_WORKSPACE_TOO_SMALL = 4,
    VITRT_STATUS_CUDA_ERROR = 5,
    VITRT_STATUS_CUFFT_ERROR = 6
} vitrt_status;

/* Strategies of VitrtCirculantAttention (the op's `strategy` attribute and the plugin's tactic ids). */
typedef enum vitrt_circulant_strategy
{
    VITRT_CIRCULANT_AUTO = 0,
    VITRT_CIRCULANT_CUFFT = 1,
    VITRT_CIRCULANT_DIRECT = 2
} vitrt_circulant_strategy;

/* Library version as major * 10000 + minor * 100 + patch; bump when a launcher signature changes. */
VITRT_API int32_t vitrt_kernels_version(void);
/* CUDA runtime version the library was compiled against (CUDART_VERSION) and runs with (0 if unavailable). */
VITRT_API int32_t vitrt_cuda_compiled_version(void);
VITRT_API int32_t vitrt_cuda_runtime_version(void);
/* cuFFT version the library runs with (0 if unavailable). */
VITRT_API int32_t vitrt_cufft_version(void);
/* Human-readable name of a status code. */
VITRT_API const char* vitrt_status_string(int32_t status);
/* Explanation of the last failing call on this thread ("" if none). */
VITRT_API const char* vitrt_last_error(void);
/* Drop every cached cuFFT plan (plans are otherwise kept for the life of the process). */
VITRT_API void vitrt_release_cached_resources(void);

#ifdef __cplusplus
}
#endif

#endif /* VITRT_KERNELS_H */
