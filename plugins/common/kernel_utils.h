/*
 * Host-side helpers of the kernel library: status reporting, device limits and workspace carving.
 */
#pragma once

#include <cstddef>
#include <cstdint>
#include <initializer_list>

#include <cuda_runtime_api.h>

#include "vitrt_kernels.h"

namespace vitrt
{

// Records a printf-style explanation for vitrt_last_error() and returns `status`, so callers can
// `return fail(VITRT_STATUS_INVALID_ARGUMENT, "...")`.
int32_t fail(int32_t status, const char* format, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;

// The thread's last explanation ("" after a success).
const char* last_error();

// Clears the thread's last error; every launcher calls it first so a success leaves no stale message.
void clear_error();

// Translates a CUDA error into a status with the failing step named.
int32_t cuda_failure(cudaError_t error, const char* what);

#define VITRT_CUDA_TRY(expr)                                                                                           \
    do                                                                                                                 \
    {                                                                                                                  \
        cudaError_t const vitrt_cuda_status_ = (expr);                                                                 \
        if (vitrt_cuda_status_ != cudaSuccess)                                                                         \
        {                                                                                                              \
            return ::vitrt::cuda_failure(vitrt_cuda_status_, #expr);                                                   \
        }                                                                                                              \
    } while (0)

#define VITRT_TRY(expr)                                                                                                \
    do                                                                                                                 \
    {                                                                                                                  \
        int32_t const vitrt_status_ = (expr);                                                                          \
        if (vitrt_status_ != VITRT_STATUS_SUCCESS)                                                                     \
        {                                                                                                              \
            return vitrt_status_;                                                                                      \
        }                                                                                                              \
    } while (0)

struct DeviceLimits
{
    int32_t device{0};
    int32_t sm_count{0};
    size_t max_shared_per_block{0}; // with opt-in
};

// Limits of the current device, cached per device.
int32_t current_device_limits(DeviceLimits* limits);

// Opts `kernel` into `bytes` of dynamic shared memory on the current device; remembered per (kernel, device), so
// steady-state launches (and CUDA-graph captures) make no attribute call.
cudaError_t allow_dynamic_shared(const void* kernel, size_t bytes);

// Lays out sub-buffers in one workspace; the same code computes the size (base == nullptr) and the pointers.
class WorkspaceLayout
{
public:
    explicit WorkspaceLayout(void* base) : base_(static_cast<unsigned char*>(base)) {}

    template <typename T>
    T* take(int64_t count)
    {
        size_t const offset = (size_ + kAlignment - 1) / kAlignment * kAlignment;
        size_ = offset + static_cast<size_t>(count) * sizeof(T);
        return base_ == nullptr ? nullptr : reinterpret_cast<T*>(base_ + offset);
    }

    size_t size() const
    {
        return size_;
    }

private:
    static constexpr size_t kAlignment = 256;
    unsigned char* base_;
    size_t size_{0};
};

// Shared argument checks of the launchers.
int32_t check_dtype(int32_t dtype);
int32_t check_workspace(const void* workspace, size_t available, size_t required);
int32_t check_pointers(std::initializer_list<const void*> pointers);

} // namespace vitrt
