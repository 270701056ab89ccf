// TensorRT plugin VitrtAgentAttention (namespace vitrt, version 1).
#pragma once

#include "plugin_base.h"

namespace vitrt
{
namespace plugin
{

class AgentAttentionPlugin final : public Plugin
{
public:
    explicit AgentAttentionPlugin(Attributes const& attributes);

    nvinfer1::IPluginV3* clone() noexcept override;

protected:
    bool check_shapes(nvinfer1::Dims const* inputs, int32_t nbInputs) const override;
    int32_t workspace_for(nvinfer1::Dims const* inputs, int32_t dtype, size_t* bytes) const override;
    int32_t launch(nvinfer1::PluginTensorDesc const* inputDesc, void const* const* inputs, void* output, int32_t dtype,
        void* workspace, size_t workspace_bytes, cudaStream_t stream) override;
};

class AgentAttentionPluginCreator final : public Creator
{
public:
    AgentAttentionPluginCreator();

protected:
    nvinfer1::IPluginV3* make(Attributes const& attributes) const override;
};

} // namespace plugin
} // namespace vitrt
