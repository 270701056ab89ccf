/*
 * Host-side emulation of the small CUDA subset the vitrt kernels use, so the CPU test suite can run the real kernel
 * sources against the PyTorch references (there is no GPU in CI).
 *
 * Every CUDA thread of a block is a fiber (ucontext) on the calling OS thread; blocks of a launch run one after
 * another, so static __shared__ variables can be plain statics. __syncthreads() and the warp barriers behind
 * __syncwarp()/shuffles park a fiber until all members arrived; a barrier that can never complete (a thread that
 * returned early, divergent barriers) aborts with a message instead of hanging. Dynamic shared memory is filled
 * with NaN before each block, so reading shared memory that was never written poisons the output.
 *
 * Runnable fibers are resumed in a pseudo-random order that changes every scheduling round and every block
 * (seeded from the block index and a launch counter; VITRT_EMULATION_SEED picks another sequence), so a kernel
 * that reads another thread's result without a barrier sees it missing in some round instead of always finding
 * it by luck of a fixed thread order.
 */
#pragma once

#define __global__
#define __device__
#define __host__
#define __shared__ static
#define __launch_bounds__(...)

#include <cuda_runtime_api.h>
#include <ucontext.h>

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <limits>
#include <memory>
#include <utility>
#include <vector>

namespace vitrt::emulation
{

constexpr size_t kStackBytes = 256 * 1024;

struct Fiber
{
    ucontext_t context;
    std::unique_ptr<char[]> stack; // uninitialised: zeroing 256 stacks per launch dominated the run time
    bool done = false;
    bool waiting = false;
};

struct Block
{
    std::vector<Fiber> fibers;
    ucontext_t scheduler;
    unsigned current = 0;
    unsigned block_arrived = 0;
    unsigned block_generation = 0;
    std::vector<unsigned> warp_arrived;
    std::vector<float> exchange; // 32 slots per warp
    std::vector<float> shared;   // dynamic shared memory, as floats for alignment
    std::function<void()> body;
};

inline thread_local Block* tls_block = nullptr;
inline thread_local uint64_t tls_launches = 0;

// xorshift64*: a small deterministic generator for the fiber order.
inline uint64_t next_random(uint64_t& state)
{
    state ^= state >> 12;
    state ^= state << 25;
    state ^= state >> 27;
    return state * 0x2545F4914F6CDD1DULL;
}

inline uint64_t order_seed()
{
    static uint64_t const seed = [] {
        char const* text = std::getenv("VITRT_EMULATION_SEED");
        return text != nullptr ? std::strtoull(text, nullptr, 10) : 0x9E3779B97F4A7C15ULL;
    }();
    return seed;
}

inline void* dynamic_shared_memory()
{
    return tls_block->shared.data();
}

void arrive(bool whole_block);

} // namespace vitrt::emulation

inline thread_local uint3 threadIdx;
inline thread_local uint3 blockIdx;
inline thread_local dim3 blockDim;
inline thread_local dim3 gridDim;

namespace vitrt::emulation
{

inline unsigned linear_thread()
{
    return threadIdx.x + blockDim.x * (threadIdx.y + blockDim.y * threadIdx.z);
}

// Parks the current fiber until every member of the barrier (the block, or the current warp) arrived.
inline void arrive(bool whole_block)
{
    Block& block = *tls_block;
    unsigned const me = block.current;
    unsigned const threads = static_cast<unsigned>(block.fibers.size());
    unsigned const first = whole_block ? 0 : me / 32 * 32;
    unsigned const members = whole_block ? threads : 32;
    unsigned& arrived = whole_block ? block.block_arrived : block.warp_arrived[me / 32];
    if (++arrived == members)
    {
        arrived = 0;
        for (unsigned i = first; i < first + members; ++i)
        {
            block.fibers[i].waiting = false;
        }
        return;
    }
    block.fibers[me].waiting = true;
    swapcontext(&block.fibers[me].context, &block.scheduler);
}

inline void fiber_entry()
{
    Block& block = *tls_block;
    block.body();
    block.fibers[block.current].done = true;
}

// Runs every thread of the current block (blockIdx already set) to completion.
__attribute__((noinline)) inline void run_block(Block& block, dim3 block_dim)
{
    unsigned const threads = static_cast<unsigned>(block.fibers.size());
    std::fill(block.shared.begin(), block.shared.end(), std::numeric_limits<float>::quiet_NaN());
    for (Fiber& fiber : block.fibers)
    {
        fiber.done = false;
        fiber.waiting = false;
        getcontext(&fiber.context);
        fiber.context.uc_stack.ss_sp = fiber.stack.get();
        fiber.context.uc_stack.ss_size = kStackBytes;
        fiber.context.uc_link = &block.scheduler;
        makecontext(&fiber.context, fiber_entry, 0);
    }
    uint64_t state = order_seed() ^ (uint64_t{blockIdx.x} * 0x9E3779B1ULL) ^ (uint64_t{blockIdx.y} << 21)
        ^ (uint64_t{blockIdx.z} << 42) ^ (++tls_launches * 0xD1B54A32D192ED03ULL);
    state = state != 0 ? state : 1;
    std::vector<unsigned> order(threads);
    for (unsigned i = 0; i < threads; ++i)
    {
        order[i] = i;
    }
    unsigned finished = 0;
    while (finished < threads)
    {
        bool progressed = false;
        finished = 0;
        for (unsigned k = threads; k > 1; --k) // Fisher-Yates: a fresh order every round
        {
            std::swap(order[k - 1], order[next_random(state) % k]);
        }
        for (unsigned const i : order)
        {
            Fiber& fiber = block.fibers[i];
            if (!fiber.done && !fiber.waiting)
            {
                block.current = i;
                threadIdx = uint3{i % block_dim.x, (i / block_dim.x) % block_dim.y, i / (block_dim.x * block_dim.y)};
                swapcontext(&block.scheduler, &fiber.context);
                progressed = true;
            }
            finished += fiber.done ? 1 : 0;
        }
        if (!progressed && finished < threads)
        {
            std::fprintf(stderr, "vitrt emulation: barrier deadlock in block (%u, %u, %u): %u of %u threads finished\n",
                blockIdx.x, blockIdx.y, blockIdx.z, finished, threads);
            std::abort();
        }
    }
}

template <typename... Params, typename... Args>
cudaError_t launch(void (*kernel)(Params...), dim3 grid, dim3 block_dim, size_t shared_bytes, cudaStream_t, Args... args)
{
    unsigned const threads = block_dim.x * block_dim.y * block_dim.z;
    if (threads == 0 || threads > 1024 || threads % 32 != 0 || shared_bytes > 101376 || grid.x == 0 || grid.y == 0
        || grid.z == 0 || grid.y > 65535 || grid.z > 65535)
    {
        return cudaErrorInvalidConfiguration;
    }
    Block block;
    block.fibers.resize(threads);
    for (Fiber& fiber : block.fibers)
    {
        fiber.stack.reset(new char[kStackBytes]);
    }
    block.warp_arrived.assign(threads / 32, 0);
    block.exchange.assign(threads, 0.0f);
    block.shared.assign(shared_bytes / sizeof(float) + 4, 0.0f);
    block.body = [&]() { kernel(args...); };
    Block* const outer = tls_block;
    tls_block = &block;
    blockDim = block_dim;
    gridDim = grid;
    for (unsigned z = 0; z < grid.z; ++z)
    {
        for (unsigned y = 0; y < grid.y; ++y)
        {
            for (unsigned x = 0; x < grid.x; ++x)
            {
                blockIdx = uint3{x, y, z};
                run_block(block, block_dim);
            }
        }
    }
    tls_block = outer;
    return cudaSuccess;
}

} // namespace vitrt::emulation

inline void __syncthreads()
{
    vitrt::emulation::arrive(true);
}

inline void __syncwarp(unsigned = 0xffffffffu)
{
    vitrt::emulation::arrive(false);
}

template <typename T>
inline T __shfl_xor_sync(unsigned, T value, int lane_mask, int = 32)
{
    static_assert(sizeof(T) == sizeof(float), "emulated shuffles move 32-bit values");
    auto& block = *vitrt::emulation::tls_block;
    unsigned const me = block.current;
    float* slots = block.exchange.data() + me / 32 * 32;
    std::memcpy(&slots[me % 32], &value, sizeof(T));
    vitrt::emulation::arrive(false);
    T result;
    std::memcpy(&result, &slots[(me % 32) ^ static_cast<unsigned>(lane_mask)], sizeof(T));
    vitrt::emulation::arrive(false);
    return result;
}

template <typename T>
inline T __ldg(const T* pointer)
{
    return *pointer;
}

inline float rsqrtf(float x)
{
    return 1.0f / std::sqrt(x);
}

inline float __expf(float x)
{
    return std::exp(x);
}

inline float __fdividef(float a, float b)
{
    return a / b;
}

