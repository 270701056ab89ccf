#include "kernel_utils.h"

#include <cstdarg>
#include <cstdio>
#include <initializer_list>
#include <mutex>
#include <vector>

namespace vitrt
{
namespace
{
thread_local char gLastError[512] = "";
} // namespace

int32_t fail(int32_t status, const char* format, ...)
{
    va_list args;
    va_start(args, format);
    std::vsnprintf(gLastError, sizeof(gLastError), format, args);
    va_end(args);
    return status;
}

void clear_error()
{
    gLastError[0] = '\0';
}

const char* last_error()
{
    return gLastError;
}

int32_t cuda_failure(cudaError_t error, const char* what)
{
    return fail(VITRT_STATUS_CUDA_ERROR, "%s failed: %s (%s)", what, cudaGetErrorName(error), cudaGetErrorString(error));
}

int32_t current_device_limits(DeviceLimits* limits)
{
    static std::mutex mutex;
    static std::vector<DeviceLimits> cache;
    int device = 0;
    VITRT_CUDA_TRY(cudaGetDevice(&device));
    std::lock_guard<std::mutex> lock(mutex);
    for (DeviceLimits const& cached : cache)
    {
        if (cached.device == device)
        {
            *limits = cached;
            return VITRT_STATUS_SUCCESS;
        }
    }
    int sm_count = 0;
    int shared_optin = 0;
    VITRT_CUDA_TRY(cudaDeviceGetAttribute(&sm_count, cudaDevAttrMultiProcessorCount, device));
    VITRT_CUDA_TRY(cudaDeviceGetAttribute(&shared_optin, cudaDevAttrMaxSharedMemoryPerBlockOptin, device));
    DeviceLimits fresh;
    fresh.device = device;
    fresh.sm_count = sm_count;
    fresh.max_shared_per_block = static_cast<size_t>(shared_optin);
    cache.push_back(fresh);
    *limits = fresh;
    return VITRT_STATUS_SUCCESS;
}

cudaError_t allow_dynamic_shared(const void* kernel, size_t bytes)
{
    struct Granted
    {
        const void* kernel;
        int device;
        size_t bytes;
    };
    static std::mutex mutex;
    static std::vector<Granted> granted;
    int device = 0;
    cudaError_t status = cudaGetDevice(&device);
    if (status != cudaSuccess)
    {
        return status;
    }
    std::lock_guard<std::mutex> lock(mutex);
    for (Granted& entry : granted)
    {
        if (entry.kernel == kernel && entry.device == device)
        {
            if (entry.bytes >= bytes)
            {
                return cudaSuccess;
            }
            status = cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(bytes));
            if (status == cudaSuccess)
            {
                entry.bytes = bytes;
            }
            return status;
        }
    }
    status = cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(bytes));
    if (status == cudaSuccess)
    {
        granted.push_back({kernel, device, bytes});
    }
    return status;
}

int32_t check_dtype(int32_t dtype)
{
    if (dtype != VITRT_DTYPE_FLOAT32 && dtype != VITRT_DTYPE_FLOAT16 && dtype != VITRT_DTYPE_BFLOAT16)
    {
        return fail(VITRT_STATUS_UNSUPPORTED_DTYPE, "dtype %d is not float32 (0), float16 (1) or bfloat16 (2)",
            static_cast<int>(dtype));
    }
    return VITRT_STATUS_SUCCESS;
}

int32_t check_workspace(const void* workspace, size_t available, size_t required)
{
    if (available < required)
    {
        return fail(VITRT_STATUS_WORKSPACE_TOO_SMALL, "workspace of %zu bytes is smaller than the %zu bytes needed",
            available, required);
    }
    if (required > 0 && workspace == nullptr)
    {
        return fail(VITRT_STATUS_INVALID_ARGUMENT, "workspace pointer is null but %zu bytes are needed", required);
    }
    return VITRT_STATUS_SUCCESS;
}

int32_t check_pointers(std::initializer_list<const void*> pointers)
{
    int index = 0;
    for (const void* pointer : pointers)
    {
        if (pointer == nullptr)
        {
            return fail(VITRT_STATUS_INVALID_ARGUMENT, "tensor argument %d is a null pointer", index);
        }
        ++index;
    }
    return VITRT_STATUS_SUCCESS;
}

} // namespace vitrt
