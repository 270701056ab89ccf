/*
 * Device-side helpers shared by the vitrt kernels: dtype conversion, warp reductions, the launch helper and the
 * dynamic shared-memory declaration. Kernels use only these wrappers for launches and shared memory so that the
 * same sources also compile for the host-side emulation used by the CPU test suite (VITRT_HOST_EMULATION).
 */
#pragma once

#if defined(VITRT_HOST_EMULATION)
#include "vitrt_cuda_emulation.h"
#else
#include <cuda_runtime.h>
#endif

#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <cmath>
#include <cstdint>

#include "kernel_utils.h"
#include "vitrt_kernels.h"

namespace vitrt
{

constexpr int kWarpSize = 32;
constexpr unsigned kFullMask = 0xffffffffu;
// Dynamic shared memory above this needs an explicit opt-in (cudaFuncAttributeMaxDynamicSharedMemorySize).
constexpr size_t kDefaultSharedMemory = 48 * 1024;

template <typename T>
__device__ __forceinline__ float to_float(T x);
template <>
__device__ __forceinline__ float to_float<float>(float x)
{
    return x;
}
template <>
__device__ __forceinline__ float to_float<__half>(__half x)
{
    return __half2float(x);
}
template <>
__device__ __forceinline__ float to_float<__nv_bfloat16>(__nv_bfloat16 x)
{
    return __bfloat162float(x);
}

template <typename T>
__device__ __forceinline__ T from_float(float x);
template <>
__device__ __forceinline__ float from_float<float>(float x)
{
    return x;
}
template <>
__device__ __forceinline__ __half from_float<__half>(float x)
{
    return __float2half_rn(x);
}
template <>
__device__ __forceinline__ __nv_bfloat16 from_float<__nv_bfloat16>(float x)
{
    return __float2bfloat16_rn(x);
}

// Read-only load through the non-coherent cache, converted to FP32.
template <typename T>
__device__ __forceinline__ float load(const T* p)
{
    return to_float<T>(__ldg(p));
}

__device__ __forceinline__ float warp_sum(float x)
{
#pragma unroll
    for (int offset = kWarpSize / 2; offset > 0; offset /= 2)
    {
        x += __shfl_xor_sync(kFullMask, x, offset);
    }
    return x;
}

__device__ __forceinline__ float warp_max(float x)
{
#pragma unroll
    for (int offset = kWarpSize / 2; offset > 0; offset /= 2)
    {
        x = fmaxf(x, __shfl_xor_sync(kFullMask, x, offset));
    }
    return x;
}

// Block-wide reductions for blocks whose size is a multiple of 32 (at most 1024 threads). `scratch` holds 32
// floats of shared memory; every thread gets the result. The trailing barrier lets callers reuse `scratch`.
__device__ __forceinline__ float block_sum(float x, float* scratch)
{
    int const lane = threadIdx.x % kWarpSize;
    int const warp = threadIdx.x / kWarpSize;
    int const warps = blockDim.x / kWarpSize;
    x = warp_sum(x);
    if (lane == 0)
    {
        scratch[warp] = x;
    }
    __syncthreads();
    float total = lane < warps ? scratch[lane] : 0.0f;
    total = warp_sum(total);
    __syncthreads();
    return total;
}

__device__ __forceinline__ float block_max(float x, float* scratch)
{
    int const lane = threadIdx.x % kWarpSize;
    int const warp = threadIdx.x / kWarpSize;
    int const warps = blockDim.x / kWarpSize;
    x = warp_max(x);
    if (lane == 0)
    {
        scratch[warp] = x;
    }
    __syncthreads();
    float best = lane < warps ? scratch[lane] : -INFINITY;
    best = warp_max(best);
    __syncthreads();
    return best;
}

// Softplus as torch.nn.functional.softplus (beta 1, threshold 20).
__device__ __forceinline__ float softplus(float x)
{
    return x > 20.0f ? x : log1pf(expf(x));
}

__host__ __device__ constexpr int64_t ceil_div(int64_t a, int64_t b)
{
    return (a + b - 1) / b;
}

__host__ __device__ constexpr int64_t round_up(int64_t a, int64_t b)
{
    return ceil_div(a, b) * b;
}

// Launch with dynamic shared memory, opting in above the 48 KiB default. Returns the launch error, if any.
template <typename... KernelArgs, typename... Args>
cudaError_t launch(void (*kernel)(KernelArgs...), dim3 grid, dim3 block, size_t shared_bytes, cudaStream_t stream,
    Args... args)
{
    if (shared_bytes > kDefaultSharedMemory)
    {
        cudaError_t const status = allow_dynamic_shared(reinterpret_cast<const void*>(kernel), shared_bytes);
        if (status != cudaSuccess)
        {
            return status;
        }
    }
#if defined(VITRT_HOST_EMULATION)
    return emulation::launch(kernel, grid, block, shared_bytes, stream, static_cast<KernelArgs>(args)...);
#else
    kernel<<<grid, block, shared_bytes, stream>>>(static_cast<KernelArgs>(args)...);
    return cudaGetLastError();
#endif
}

// Calls fn(T{}) with T the element type named by `dtype`; returns false for an unknown dtype.
template <typename Fn>
bool dispatch_dtype(int32_t dtype, Fn&& fn)
{
    switch (dtype)
    {
    case VITRT_DTYPE_FLOAT32: fn(float{}); return true;
    case VITRT_DTYPE_FLOAT16: fn(__half{}); return true;
    case VITRT_DTYPE_BFLOAT16: fn(__nv_bfloat16{}); return true;
    default: return false;
    }
}

} // namespace vitrt

// One dynamic shared-memory buffer per kernel, 16-byte aligned so float4 views of it are legal.
#if defined(VITRT_HOST_EMULATION)
#define VITRT_DYNAMIC_SMEM(type, name) type* name = reinterpret_cast<type*>(::vitrt::emulation::dynamic_shared_memory())
#else
#define VITRT_DYNAMIC_SMEM(type, name)                                                                                 \
    extern __shared__ __align__(16) unsigned char vitrt_dynamic_smem_[];                                               \
    type* name = reinterpret_cast<type*>(vitrt_dynamic_smem_)
#endif
