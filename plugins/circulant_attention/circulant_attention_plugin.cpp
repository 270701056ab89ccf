#include "circulant_attention_plugin.h"

#include "circulant_attention_kernel.h"

namespace vitrt
{
namespace plugin
{

using namespace nvinfer1;
namespace op = spec::circulant_attention;

bool CirculantAttentionPlugin::check_shapes(Dims const* inputs, int32_t nbInputs) const
{
    if (nbInputs != op::kNumInputs || !has_rank(inputs[0], 3, op::kName, "q"))
    {
        return false;
    }
    int64_t const tokens = static_cast<int64_t>(attributes_.integer(op::kHeight)) * attributes_.integer(op::kWidth);
    std::vector<int64_t> const qkv{inputs[0].d[0], tokens, inputs[0].d[2]};
    return has_dims(inputs[0], qkv, op::kName, "q") && has_dims(inputs[1], qkv, op::kName, "k")
        && has_dims(inputs[2], qkv, op::kName, "v");
}

int32_t CirculantAttentionPlugin::configurePlugin(
    DynamicPluginTensorDesc const* in, int32_t nbInputs, DynamicPluginTensorDesc const* out, int32_t nbOutputs) noexcept
{
    int32_t const status = Plugin::configurePlugin(in, nbInputs, out, nbOutputs);
    if (status != 0)
    {
        return status;
    }
    max_batch_ = in[0].max.d[0] > 0 ? in[0].max.d[0] : 1;
    channels_ = in[0].max.d[2] > 0 ? in[0].max.d[2] : 1;
    if (attributes_.integer(op::kStrategy) == VITRT_CIRCULANT_DIRECT)
    {
        int32_t selected = 0;
        int32_t const check = vitrt_circulant_attention_select_strategy(max_batch_, attributes_.integer(op::kHeight),
            attributes_.integer(op::kWidth), channels_, VITRT_CIRCULANT_DIRECT, &selected);
        if (check != VITRT_STATUS_SUCCESS)
        {
            return report(check, "configure");
        }
    }
    return 0;
}

std::vector<int32_t> CirculantAttentionPlugin::candidate_tactics() const
{
    if (attributes_.integer(op::kStrategy) != VITRT_CIRCULANT_AUTO)
    {
        return {}; // a fixed strategy: only the default tactic
    }
    std::vector<int32_t> tactics{VITRT_CIRCULANT_CUFFT};
    int32_t selected = 0;
    if (vitrt_circulant_attention_select_strategy(max_batch_, attributes_.integer(op::kHeight),
            attributes_.integer(op::kWidth), channels_, VITRT_CIRCULANT_DIRECT, &selected)
        == VITRT_STATUS_SUCCESS)
    {
        tactics.push_back(VITRT_CIRCULANT_DIRECT); // the grid fits this device's shared memory
    }
    return tactics;
}

int32_t CirculantAttentionPlugin::getNbTactics() noexcept
{
    return static_cast<int32_t>(candidate_tactics().size());
}

int32_t CirculantAttentionPlugin::getValidTactics(int32_t* tactics, int32_t nbTactics) noexcept
{
    std::vector<int32_t> const candidates = candidate_tactics();
    if (tactics == nullptr || nbTactics != static_cast<int32_t>(candidates.size()))
    {
        return -1;
    }
    for (size_t i = 0; i < candidates.size(); ++i)
    {
        tactics[i] = candidates[i];
    }
    return 0;
}

int32_t CirculantAttentionPlugin::setTactic(int32_t tactic) noexcept
{
    if (tactic != 0 && tactic != VITRT_CIRCULANT_CUFFT && tactic != VITRT_CIRCULANT_DIRECT)
    {
        log(ILogger::Severity::kERROR, "%s: unknown tactic %d", op::kName, tactic);
        return -1;
    }
    tactic_ = tactic;
    return 0;
}

int32_t CirculantAttentionPlugin::strategy() const
{
    return tactic_ != 0 ? tactic_ : attributes_.integer(op::kStrategy);
}

int32_t CirculantAttentionPlugin::workspace_for(Dims const* inputs, int32_t dtype, size_t* bytes) const
{
    return vitrt_circulant_attention_workspace_size(inputs[0].d[0], attributes_.integer(op::kHeight),
        attributes_.integer(op::kWidth), inputs[0].d[2], dtype, strategy(), bytes);
}

int32_t CirculantAttentionPlugin::workspace_bound(Dims const* inputs, int32_t dtype, size_t* bytes) const
{
    // Before a tactic is chosen, AUTO may still become cuFFT, the strategy with the workspace.
    int32_t const planned = strategy() == VITRT_CIRCULANT_DIRECT ? VITRT_CIRCULANT_DIRECT : VITRT_CIRCULANT_CUFFT;
    return vitrt_circulant_attention_workspace_size(inputs[0].d[0], attributes_.integer(op::kHeight),
        attributes_.integer(op::kWidth), inputs[0].d[2], dtype, planned, bytes);
}

int32_t CirculantAttentionPlugin::prepare(Dims const* inputs, int32_t dtype)
{
    size_t bytes = 0;
    return workspace_for(inputs, dtype, &bytes); // creates and caches the cuFFT plans of this shape
}

int32_t CirculantAttentionPlugin::launch(PluginTensorDesc const* inputDesc, void const* const* inputs, void* output,
    int32_t dtype, void* workspace, size_t workspace_bytes, cudaStream_t stream)
{
    Dims const& q = inputDesc[0].dims;
    return vitrt_circulant_attention(inputs[0], inputs[1], inputs[2], output, q.d[0], attributes_.integer(op::kHeight),
        attributes_.integer(op::kWidth), q.d[2], dtype, strategy(), workspace, workspace_bytes, stream);
}

VITRT_REGISTER_TENSORRT_PLUGIN(CirculantAttentionPlugin, op::kSpec);

} // namespace plugin
} // namespace vitrt
