/*
 * VitrtAgentAttention kernels (Agent attention; see agent_attention.yaml).
 *
 * q, k, v, out: (batch, tokens, channels); agents: (batch, num_agents, channels); agent_bias:
 * (num_heads, num_agents, tokens); query_bias: (num_heads, tokens, num_agents). All tensors of `dtype`; logits,
 * softmaxes and accumulations in FP32.
 */
#ifndef VITRT_AGENT_ATTENTION_KERNEL_H
#define VITRT_AGENT_ATTENTION_KERNEL_H

#include "vitrt_kernels.h"

#ifdef __cplusplus
extern "C" {
#endif

VITRT_API int32_t vitrt_agent_attention_workspace_size(int64_t batch, int64_t tokens, int64_t channels,
    int64_t num_agents, int64_t num_heads, int32_t dtype, size_t* bytes);

VITRT_API int32_t vitrt_agent_attention(const void* q, const void* k, const void* v, const void* agents,
    const void* agent_bias, const void* query_bias, void* out, int64_t batch, int64_t tokens, int64_t channels,
    int64_t num_agents, int64_t num_heads, float scale, int32_t dtype, void* workspace, size_t workspace_bytes,
    cudaStream_t stream);

#ifdef __cplusplus
}
#endif

#endif /* VITRT_AGENT_ATTENTION_KERNEL_H */
