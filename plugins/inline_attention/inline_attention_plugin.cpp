#include "inline_attention_plugin.h"

#include "inline_attention_kernel.h"

namespace vitrt
{
namespace plugin
{

using namespace nvinfer1;
namespace op = spec::inline_attention;

bool InLineAttentionPlugin::check_shapes(Dims const* inputs, int32_t nbInputs) const
{
    if (nbInputs != op::kNumInputs || !has_rank(inputs[0], 3, op::kName, "q"))
    {
        return false;
    }
    int64_t const tokens = attributes_.integer(op::kNumPrefixTokens)
        + static_cast<int64_t>(attributes_.integer(op::kHeight)) * attributes_.integer(op::kWidth);
    int64_t const b = inputs[0].d[0];
    int64_t const c = inputs[0].d[2];
    std::vector<int64_t> const qkv{b, tokens, c};
    if (!has_dims(inputs[0], qkv, op::kName, "q") || !has_dims(inputs[1], qkv, op::kName, "k")
        || !has_dims(inputs[2], qkv, op::kName, "v") || !has_dims(inputs[3], {b, c, 9}, op::kName, "local_kernel"))
    {
        return false;
    }
    if (c > 0 && c % attributes_.integer(op::kNumHeads) != 0)
    {
        log(ILogger::Severity::kERROR, "%s: channels %lld not divisible by num_heads %d", op::kName,
            static_cast<long long>(c), attributes_.integer(op::kNumHeads));
        return false;
    }
    return true;
}

int32_t InLineAttentionPlugin::workspace_for(Dims const* inputs, int32_t dtype, size_t* bytes) const
{
    return vitrt_inline_attention_workspace_size(inputs[0].d[0], inputs[0].d[1], inputs[0].d[2],
        attributes_.integer(op::kNumHeads), attributes_.integer(op::kHeight), attributes_.integer(op::kWidth),
        attributes_.integer(op::kNumPrefixTokens), dtype, bytes);
}

int32_t InLineAttentionPlugin::launch(PluginTensorDesc const* inputDesc, void const* const* inputs, void* output,
    int32_t dtype, void* workspace, size_t workspace_bytes, cudaStream_t stream)
{
    Dims const& q = inputDesc[0].dims;
    return vitrt_inline_attention(inputs[0], inputs[1], inputs[2], inputs[3], output, q.d[0], q.d[1], q.d[2],
        attributes_.integer(op::kNumHeads), attributes_.integer(op::kHeight), attributes_.integer(op::kWidth),
        attributes_.integer(op::kNumPrefixTokens), attributes_.real(op::kScale), dtype, workspace, workspace_bytes,
        stream);
}

VITRT_REGISTER_TENSORRT_PLUGIN(InLineAttentionPlugin, op::kSpec);

} // namespace plugin
} // namespace vitrt
