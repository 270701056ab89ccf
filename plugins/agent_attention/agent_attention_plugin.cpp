#include "agent_attention_plugin.h"

#include "agent_attention_kernel.h"

namespace vitrt
{
namespace plugin
{

using namespace nvinfer1;
namespace op = spec::agent_attention;

bool AgentAttentionPlugin::check_shapes(Dims const* inputs, int32_t nbInputs) const
{
    if (nbInputs != op::kNumInputs || !has_rank(inputs[0], 3, op::kName, "q")
        || !has_rank(inputs[3], 3, op::kName, "agents"))
    {
        return false;
    }
    int64_t const b = inputs[0].d[0];
    int64_t const n = inputs[0].d[1];
    int64_t const c = inputs[0].d[2];
    int64_t const a = inputs[3].d[1];
    int64_t const heads = attributes_.integer(op::kNumHeads);
    std::vector<int64_t> const qkv{b, n, c};
    if (!has_dims(inputs[1], qkv, op::kName, "k") || !has_dims(inputs[2], qkv, op::kName, "v")
        || !has_dims(inputs[3], {b, a, c}, op::kName, "agents")
        || !has_dims(inputs[4], {heads, a, n}, op::kName, "agent_bias")
        || !has_dims(inputs[5], {heads, n, a}, op::kName, "query_bias"))
    {
        return false;
    }
    if (c > 0 && c % heads != 0)
    {
        log(ILogger::Severity::kERROR, "%s: channels %lld not divisible by num_heads %lld", op::kName,
            static_cast<long long>(c), static_cast<long long>(heads));
        return false;
    }
    return true;
}

int32_t AgentAttentionPlugin::workspace_for(Dims const* inputs, int32_t dtype, size_t* bytes) const
{
    return vitrt_agent_attention_workspace_size(inputs[0].d[0], inputs[0].d[1], inputs[0].d[2], inputs[3].d[1],
        attributes_.integer(op::kNumHeads), dtype, bytes);
}

int32_t AgentAttentionPlugin::launch(PluginTensorDesc const* inputDesc, void const* const* inputs, void* output,
    int32_t dtype, void* workspace, size_t workspace_bytes, cudaStream_t stream)
{
    Dims const& q = inputDesc[0].dims;
    return vitrt_agent_attention(inputs[0], inputs[1], inputs[2], inputs[3], inputs[4], inputs[5], output, q.d[0],
        q.d[1], q.d[2], inputDesc[3].dims.d[1], attributes_.integer(op::kNumHeads), attributes_.real(op::kScale), dtype,
        workspace, workspace_bytes, stream);
}

VITRT_REGISTER_TENSORRT_PLUGIN(AgentAttentionPlugin, op::kSpec);

} // namespace plugin
} // namespace vitrt
