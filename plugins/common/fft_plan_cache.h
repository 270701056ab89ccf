/*
 * Thread-safe cache of batched 2-D real cuFFT plans (R2C + C2R for one grid and batch) on contiguous
 * (batch, height, width) real data and (batch, height, width / 2 + 1) spectra.
 *
 * Plans are created without auto-allocated work areas: the caller passes its own workspace, so one cached plan can
 * serve several TensorRT execution contexts. Executions of one plan are serialised by its mutex only for as long as
 * it takes to bind the stream and work area and enqueue the transform.
 */
#pragma once

#include <cufft.h>

#include <cstdint>
#include <memory>
#include <mutex>

namespace vitrt
{

class FftPlans
{
public:
    FftPlans(int32_t height, int32_t width, int64_t batch);
    ~FftPlans();
    FftPlans(FftPlans const&) = delete;
    FftPlans& operator=(FftPlans const&) = delete;

    // Status of construction (VITRT_STATUS_*); the object is usable only when this is success.
    int32_t status() const
    {
        return status_;
    }
    size_t work_bytes() const
    {
        return work_bytes_;
    }

    int32_t forward(float* real, cufftComplex* spectrum, void* work, cudaStream_t stream);
    int32_t inverse(cufftComplex* spectrum, float* real, void* work, cudaStream_t stream);

private:
    int32_t bind(cufftHandle plan, void* work, cudaStream_t stream);

    cufftHandle r2c_{};
    cufftHandle c2r_{};
    bool have_r2c_{false};
    bool have_c2r_{false};
    size_t work_bytes_{0};
    int32_t status_{0};
    std::mutex mutex_;
};

// Plans for `batch` signals of height x width on the current device, created on first use and cached (LRU). Null on failure (see
// vitrt_last_error()).
std::shared_ptr<FftPlans> fft_plans(int32_t height, int32_t width, int64_t batch);

// Forgets every cached plan; plans still held by a caller die with its last reference.
void clear_fft_plans();

const char* cufft_result_name(cufftResult result);

} // namespace vitrt
