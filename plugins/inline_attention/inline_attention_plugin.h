// TensorRT plugin VitrtInLineAttention (namespace vitrt, version 1).
#pragma once

#include "plugin_base.h"

namespace vitrt
{
namespace plugin
{

class InLineAttentionPlugin final : public ClonablePlugin<InLineAttentionPlugin>
{
public:
    using ClonablePlugin::ClonablePlugin;

protected:
    bool check_shapes(nvinfer1::Dims const* inputs, int32_t nbInputs) const override;
    int32_t workspace_for(nvinfer1::Dims const* inputs, int32_t dtype, size_t* bytes) const override;
    int32_t launch(nvinfer1::PluginTensorDesc const* inputDesc, void const* const* inputs, void* output, int32_t dtype,
        void* workspace, size_t workspace_bytes, cudaStream_t stream) override;
};

} // namespace plugin
} // namespace vitrt
