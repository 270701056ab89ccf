"""Building blocks shared by several families (export-friendly forms of the official operations)."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn


def adaptive_pool_matrix(in_size: tuple[int, int], out_size: tuple[int, int]) -> Tensor:
    """AdaptiveAvgPool2d(in_size -> out_size) as a constant (out_h*out_w, in_h*in_w) matrix.

    Bins follow PyTorch: [floor(i*H/p), ceil((i+1)*H/p)), overlapping when p does not divide H. `P @ x` over the
    flattened grid equals the pooling exactly, and exports as one MatMul instead of a per-bin decomposition.
    """

    def axis(n_in: int, n_out: int) -> Tensor:
        weights = torch.zeros(n_out, n_in, dtype=torch.float64)
        for i in range(n_out):
            start, end = (i * n_in) // n_out, math.ceil((i + 1) * n_in / n_out)
            weights[i, start:end] = 1.0 / (end - start)
        return weights

    rows, cols = axis(in_size[0], out_size[0]), axis(in_size[1], out_size[1])
    return torch.kron(rows, cols).to(torch.float32)


def agent_position_biases(
    an_bias: Tensor,
    na_bias: Tensor,
    ah_bias: Tensor,
    aw_bias: Tensor,
    ha_bias: Tensor,
    wa_bias: Tensor,
    window: tuple[int, int],
    ac_bias: Tensor | None = None,
    ca_bias: Tensor | None = None,
) -> tuple[Tensor, Tensor]:
    """The agent attention position biases, summed once: (agent_bias (h, a, n), query_bias (h, n, a)).

    agent_bias = bilinear-resized an_bias + (ah + aw); query_bias = resized na_bias (transposed) + (ha + wa).
    With the DeiT cls terms, ac_bias is prepended as the cls-key column and ca_bias as the cls-query row.
    """
    heads, agents = an_bias.shape[:2]
    resized_an = F.interpolate(an_bias, size=window, mode="bilinear").reshape(heads, agents, -1)
    agent_bias = resized_an + (ah_bias + aw_bias).reshape(heads, agents, -1)
    resized_na = F.interpolate(na_bias, size=window, mode="bilinear").reshape(heads, agents, -1).transpose(1, 2)
    query_bias = resized_na + (ha_bias + wa_bias).reshape(heads, -1, agents)
    if ac_bias is not None:
        agent_bias = torch.cat([ac_bias.reshape(heads, agents, 1), agent_bias], dim=-1)
    if ca_bias is not None:
        query_bias = torch.cat([ca_bias.reshape(heads, 1, agents), query_bias], dim=-2)
    return agent_bias, query_bias


def shared_head_depthwise_conv(x: Tensor, conv: nn.Conv2d, num_heads: int) -> Tensor:
    """FLatten's DWC, whose d-channel depthwise kernel is shared by every head, on x of shape (B, C, H, W).

    The official code folds heads into the batch (B*h, d, H, W); tiling the kernel h times along the channels
    computes the same thing as one depthwise conv over C, with no batch-dependent reshape.
    """
    weight = conv.weight.repeat(num_heads, 1, 1, 1)
    bias = conv.bias.repeat(num_heads) if conv.bias is not None else None
    return F.conv2d(x, weight, bias, padding=conv.padding, groups=x.shape[1])
