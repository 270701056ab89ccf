"""The export-friendly DeiT-backbone attentions against literal re-statements of the official formulations.

Each `official_*` function below re-states the official forward (complex Linear after the FFT for CA; AdaptiveAvgPool2d,
per-forward bias interpolation, `.repeat` and in-place cls handling for Agent-DeiT; the grouped conv with
groups = B*C and the in-place slice write for InLine-DeiT) using the vitrt module's own parameters. Whole models are
compared by swapping these forwards in.
"""

from __future__ import annotations

import copy
import types

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from vitrt.models.agent import AgentDeiT, DeiTAgentAttention
from vitrt.models.backbones.deit import Attention
from vitrt.models.circulant import CABlock, CADeiT, CirculantAttention
from vitrt.models.inline import DeiTInLineAttention, InLineDeiT

ATOL = 1e-5


def official_circulant_attention(attn: CirculantAttention, x: torch.Tensor) -> torch.Tensor:
    b, n, c = x.shape
    h = w = int(n**0.5)
    gate = attn.gate(x)
    spectrum = torch.fft.rfft2(x.reshape(b, h, w, c), dim=(1, 2), norm="ortho")
    # The official complex Linear: the real, bias-free weight applied to real and imaginary parts separately.
    qkv = torch.complex(F.linear(spectrum.real, attn.qkv.weight), F.linear(spectrum.imag, attn.qkv.weight))
    q, k, v = torch.chunk(qkv, 3, dim=-1)
    logits = torch.fft.irfft2(torch.conj(q) * k, s=(h, w), dim=(1, 2), norm="ortho")
    weights = logits.reshape(b, n, c).softmax(dim=1).reshape(b, h, w, c)
    out = torch.fft.irfft2(torch.conj(torch.fft.rfft2(weights, dim=(1, 2))) * v, s=(h, w), dim=(1, 2), norm="ortho")
    return attn.proj(out.reshape(b, n, c) * gate)


def official_ca_block(block: CABlock, x: torch.Tensor) -> torch.Tensor:
    b, n, c = x.shape
    h = w = int(n**0.5)
    x = x + block.cpe(x.reshape(b, h, w, c).permute(0, 3, 1, 2)).flatten(2).transpose(1, 2)
    x = x + official_circulant_attention(block.attn, block.norm1(x))
    return x + block.mlp(block.norm2(x))


def official_agent_attention(attn: DeiTAgentAttention, x: torch.Tensor) -> torch.Tensor:
    b, n, c = x.shape
    side = int(n**0.5)
    heads, agents_n = attn.num_heads, attn.agent_num
    qkv = attn.qkv(x).reshape(b, n, 3, c).permute(2, 0, 1, 3)
    q, k, v = qkv[0], qkv[1], qkv[2]
    pool = nn.AdaptiveAvgPool2d(int(agents_n**0.5))
    agents = pool(q[:, 1:, :].reshape(b, side, side, c).permute(0, 3, 1, 2)).reshape(b, c, -1).permute(0, 2, 1)

    def split(t: torch.Tensor) -> torch.Tensor:
        return t.reshape(b, t.shape[1], heads, c // heads).permute(0, 2, 1, 3)

    q, k, v, agents = split(q), split(k), split(v), split(agents)
    bias1 = F.interpolate(attn.an_bias, size=(side, side), mode="bilinear")
    bias1 = bias1.reshape(1, heads, agents_n, -1).repeat(b, 1, 1, 1)
    bias2 = (attn.ah_bias + attn.aw_bias).reshape(1, heads, agents_n, -1).repeat(b, 1, 1, 1)
    position_bias = torch.cat([attn.ac_bias.repeat(b, 1, 1, 1), bias1 + bias2], dim=-1)
    agent_v = torch.softmax((agents * attn.scale) @ k.transpose(-2, -1) + position_bias, dim=-1) @ v
    bias1 = F.interpolate(attn.na_bias, size=(side, side), mode="bilinear")
    bias1 = bias1.reshape(1, heads, agents_n, -1).permute(0, 1, 3, 2).repeat(b, 1, 1, 1)
    bias2 = (attn.ha_bias + attn.wa_bias).reshape(1, heads, -1, agents_n).repeat(b, 1, 1, 1)
    agent_bias = torch.cat([attn.ca_bias.repeat(b, 1, 1, 1), bias1 + bias2], dim=-2)
    out = torch.softmax((q * attn.scale) @ agents.transpose(-2, -1) + agent_bias, dim=-1) @ agent_v
    out = out.transpose(1, 2).reshape(b, n, c)
    v_patches = v[:, :, 1:, :].transpose(1, 2).reshape(b, side, side, c).permute(0, 3, 1, 2)
    out[:, 1:, :] = out[:, 1:, :] + attn.dwc(v_patches).permute(0, 2, 3, 1).reshape(b, n - 1, c)
    return attn.proj(out)


def official_inline_attention(attn: DeiTInLineAttention, x: torch.Tensor) -> torch.Tensor:
    b, n, c = x.shape
    side = int(n**0.5)
    heads = attn.num_heads
    qkv = attn.qkv(x).reshape(b, n, 3, c).permute(2, 0, 1, 3)
    q, k, v = (t.reshape(b, n, heads, c // heads).permute(0, 2, 1, 3) for t in (qkv[0], qkv[1], qkv[2]))
    kernel = attn.residual(x.mean(dim=1).unsqueeze(dim=-1)).reshape(b * c, 1, 3, 3)
    factor = (attn.scale / n) ** 0.5
    kv = (k.transpose(-2, -1) * factor) @ (v * factor)
    out = q @ kv + (1 - q @ k.mean(dim=2, keepdim=True).transpose(-2, -1) * attn.scale) * v.mean(dim=2, keepdim=True)
    out = out.transpose(1, 2).reshape(b, n, c)
    v_patches = (
        v[:, :, 1:, :].transpose(1, 2).reshape(b, side, side, c).permute(0, 3, 1, 2).reshape(1, b * c, side, side)
    )
    local = F.conv2d(v_patches, kernel, None, padding=(1, 1), groups=b * c)
    out[:, 1:, :] = out[:, 1:, :] + local.reshape(b, c, n - 1).permute(0, 2, 1)
    return attn.proj(out)


def official_softmax_attention(attn: Attention, x: torch.Tensor) -> torch.Tensor:
    b, n, c = x.shape
    qkv = attn.qkv(x).reshape(b, n, 3, attn.num_heads, c // attn.num_heads).permute(2, 0, 3, 1, 4)
    q, k, v = qkv[0], qkv[1], qkv[2]
    attn_weights = ((q @ k.transpose(-2, -1)) * attn.scale).softmax(dim=-1)
    return attn.proj((attn_weights @ v).transpose(1, 2).reshape(b, n, c))


def _perturb(model: nn.Module, bias_std: float = 0.3) -> nn.Module:
    """Move parameters off their init (zero biases, unit norms) so every term of the forward matters."""
    torch.manual_seed(1)
    with torch.no_grad():
        for name, param in model.named_parameters():
            std = bias_std if name.endswith("_bias") else 0.05
            param.add_(torch.randn_like(param) * std)
    for module in model.modules():
        if isinstance(module, DeiTAgentAttention):
            module.refresh_position_biases()
    return model


def _with_official_forwards(model: nn.Module) -> nn.Module:
    official = copy.deepcopy(model)
    for module in official.modules():
        if isinstance(module, CABlock):
            module.forward = types.MethodType(official_ca_block, module)
        elif isinstance(module, DeiTAgentAttention):
            module.forward = types.MethodType(official_agent_attention, module)
        elif isinstance(module, DeiTInLineAttention):
            module.forward = types.MethodType(official_inline_attention, module)
        elif isinstance(module, Attention):
            module.forward = types.MethodType(official_softmax_attention, module)
    return official


def _compare(model: nn.Module, img_size: int, batch: int = 3) -> None:
    model = _perturb(model).eval()
    official = _with_official_forwards(model)
    x = torch.randn(batch, 3, img_size, img_size)
    with torch.no_grad():
        expected, got = official(x), model(x)
    assert expected.std() > 0.05  # the comparison is not between near-zero logits
    torch.testing.assert_close(got, expected, atol=ATOL, rtol=0)


def test_circulant_real_linear_before_fft_equals_complex_linear_after():
    attn = _perturb(CirculantAttention(24, grid_size=6)).eval()
    x = torch.randn(2, 36, 24)
    with torch.no_grad():
        torch.testing.assert_close(attn(x), official_circulant_attention(attn, x), atol=ATOL, rtol=0)


def test_ca_deit_equals_official_formulation():
    _compare(CADeiT(img_size=48, patch_size=8, embed_dim=32, depth=2, num_classes=7), 48)


@pytest.mark.parametrize(
    ("grid", "agents"),
    [(14, 81), (8, 16), (6, 49)],  # 14 -> 9 overlapping bins (DeiT-B), divisible, and more agents than patches
)
def test_agent_attention_equals_official_formulation(grid, agents):
    attn = _perturb(DeiTAgentAttention(24, num_heads=3, grid_size=grid, agent_num=agents))
    x = torch.randn(2, 1 + grid * grid, 24)
    for mode in (False, True):  # eval: precomputed buffers; train: biases from the parameters
        attn.train(mode)
        with torch.no_grad():
            torch.testing.assert_close(attn(x), official_agent_attention(attn, x), atol=ATOL, rtol=0)


def test_agent_deit_with_plain_blocks_equals_official_formulation():
    model = AgentDeiT(img_size=56, patch_size=8, embed_dim=24, depth=3, num_heads=3, agent_num=9, agent_layers=2)
    assert [type(block.attn).__name__ for block in model.blocks] == ["DeiTAgentAttention"] * 2 + ["Attention"]
    _compare(model, 56)


def test_inline_attention_equals_official_grouped_conv_form():
    attn = _perturb(DeiTInLineAttention(24, num_heads=4, grid_size=5)).eval()
    x = torch.randn(3, 26, 24)
    with torch.no_grad():
        torch.testing.assert_close(attn(x), official_inline_attention(attn, x), atol=ATOL, rtol=0)


def test_inline_deit_equals_official_formulation():
    _compare(InLineDeiT(img_size=40, patch_size=8, embed_dim=32, depth=2, num_heads=4, num_classes=5), 40)
