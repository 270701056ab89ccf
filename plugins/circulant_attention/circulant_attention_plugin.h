// TensorRT plugin VitrtCirculantAttention (namespace vitrt, version 1). Tactics: 1 = cuFFT, 2 = direct.
#pragma once

#include "plugin_base.h"

namespace vitrt
{
namespace plugin
{

class CirculantAttentionPlugin final : public ClonablePlugin<CirculantAttentionPlugin>
{
public:
    using ClonablePlugin::ClonablePlugin;

    int32_t configurePlugin(nvinfer1::DynamicPluginTensorDesc const* in, int32_t nbInputs,
        nvinfer1::DynamicPluginTensorDesc const* out, int32_t nbOutputs) noexcept override;
    int32_t getNbTactics() noexcept override;
    int32_t getValidTactics(int32_t* tactics, int32_t nbTactics) noexcept override;
    int32_t setTactic(int32_t tactic) noexcept override;

protected:
    bool check_shapes(nvinfer1::Dims const* inputs, int32_t nbInputs) const override;
    int32_t workspace_for(nvinfer1::Dims const* inputs, int32_t dtype, size_t* bytes) const override;
    int32_t workspace_bound(nvinfer1::Dims const* inputs, int32_t dtype, size_t* bytes) const override;
    int32_t prepare(nvinfer1::Dims const* inputs, int32_t dtype) override;
    int32_t launch(nvinfer1::PluginTensorDesc const* inputDesc, void const* const* inputs, void* output, int32_t dtype,
        void* workspace, size_t workspace_bytes, cudaStream_t stream) override;

private:
    // The strategy enqueue runs: the tactic TensorRT picked, else the `strategy` attribute (0 = auto rule).
    int32_t strategy() const;
    std::vector<int32_t> candidate_tactics() const;

    int32_t tactic_{0};
    int64_t max_batch_{1};
    int64_t channels_{1};
};

} // namespace plugin
} // namespace vitrt
