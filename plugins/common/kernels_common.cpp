// Library-wide C entry points: versions, status names, last error, cached resources.
#include <cufft.h>

#include "fft_plan_cache.h"
#include "kernel_utils.h"
#include "vitrt_kernels.h"

extern "C" {

VITRT_API int32_t vitrt_kernels_version(void)
{
    return 10000; // 1.0.0
}

VITRT_API int32_t vitrt_cuda_compiled_version(void)
{
    return CUDART_VERSION;
}

VITRT_API int32_t vitrt_cuda_runtime_version(void)
{
    int version = 0;
    return cudaRuntimeGetVersion(&version) == cudaSuccess ? version : 0;
}

VITRT_API int32_t vitrt_cufft_version(void)
{
    int version = 0;
    return cufftGetVersion(&version) == CUFFT_SUCCESS ? version : 0;
}

VITRT_API const char* vitrt_status_string(int32_t status)
{
    switch (status)
    {
    case VITRT_STATUS_SUCCESS: return "success";
    case VITRT_STATUS_INVALID_ARGUMENT: return "invalid argument";
    case VITRT_STATUS_UNSUPPORTED_DTYPE: return "unsupported dtype";
    case VITRT_STATUS_UNSUPPORTED_SHAPE: return "unsupported shape";
    case VITRT_STATUS_WORKSPACE_TOO_SMALL: return "workspace too small";
    case VITRT_STATUS_CUDA_ERROR: return "CUDA error";
    case VITRT_STATUS_CUFFT_ERROR: return "cuFFT error";
    default: return "unknown status";
    }
}

VITRT_API const char* vitrt_last_error(void)
{
    return vitrt::last_error();
}

VITRT_API void vitrt_release_cached_resources(void)
{
    vitrt::clear_fft_plans();
}

} // extern "C"
