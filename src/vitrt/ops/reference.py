"""Plain-PyTorch reference implementations of the vitrt attention ops.

These define the semantics of each op (see the YAML contracts under `plugins/`). They compute in FP32 whatever the
input dtype (norm denominators, the focusing power and softmaxes are the numerically fragile steps) and return the
input dtype. Tensors are (B, N, C) with tokens in row-major grid order; heads split C head-major.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor


def _heads(x: Tensor, num_heads: int) -> Tensor:
    b, n, c = x.shape
    return x.reshape(b, n, num_heads, c // num_heads).transpose(1, 2)


def _merge_heads(x: Tensor) -> Tensor:
    b, h, n, d = x.shape
    return x.transpose(1, 2).reshape(b, n, h * d)


def _focus(x: Tensor, power: float) -> Tensor:
    """FLatten's focusing map ||x|| * x^p / ||x^p||, norms over the full channel axis."""
    norm = x.norm(dim=-1, keepdim=True)
    powered = x**power
    return powered / powered.norm(dim=-1, keepdim=True) * norm


def focused_linear_attention(
    q: Tensor,
    k: Tensor,
    v: Tensor,
    positional_encoding: Tensor,
    scale: Tensor,
    *,
    num_heads: int,
    focusing_factor: float = 3.0,
) -> Tensor:
    dtype = q.dtype
    q, k, v = q.float(), k.float(), v.float()
    n = q.shape[1]
    k = k + positional_encoding.float()
    q = F.relu(q) + 1e-6
    k = F.relu(k) + 1e-6
    softplus_scale = F.softplus(scale.float())
    q = _focus(q / softplus_scale, focusing_factor)
    k = _focus(k / softplus_scale, focusing_factor)
    q, k, v = _heads(q, num_heads), _heads(k, num_heads), _heads(v, num_heads)
    z = 1.0 / (q @ k.mean(dim=-2, keepdim=True).transpose(-2, -1) + 1e-6)
    kv = (k.transpose(-2, -1) * n**-0.5) @ (v * n**-0.5)
    return _merge_heads((q @ kv) * z).to(dtype)


def agent_attention(
    q: Tensor,
    k: Tensor,
    v: Tensor,
    agents: Tensor,
    agent_bias: Tensor,
    query_bias: Tensor,
    *,
    num_heads: int,
    scale: float,
) -> Tensor:
    dtype = q.dtype
    q, k, v, agents = (_heads(t.float(), num_heads) for t in (q, k, v, agents))
    agent_attn = torch.softmax((agents * scale) @ k.transpose(-2, -1) + agent_bias.float(), dim=-1)
    agent_v = agent_attn @ v
    query_attn = torch.softmax((q * scale) @ agents.transpose(-2, -1) + query_bias.float(), dim=-1)
    return _merge_heads(query_attn @ agent_v).to(dtype)


def depthwise3x3_per_sample(x: Tensor, taps: Tensor) -> Tensor:
    """Per-sample, per-channel 3x3 cross-correlation with zero padding 1.

    x is (B, C, H, W), taps (B, C, 9) in row-major (ky, kx) order. Written as nine shifted multiply-adds so the
    batch stays dynamic in exported graphs (a grouped conv would bake groups = B*C into the graph).
    """
    height, width = x.shape[-2:]
    padded = F.pad(x, (1, 1, 1, 1))
    out = torch.zeros_like(x)
    for ky in range(3):
        for kx in range(3):
            tap = taps[:, :, 3 * ky + kx, None, None]
            out = out + padded[:, :, ky : ky + height, kx : kx + width] * tap
    return out


def inline_attention(
    q: Tensor,
    k: Tensor,
    v: Tensor,
    local_kernel: Tensor,
    *,
    num_heads: int,
    height: int,
    width: int,
    num_prefix_tokens: int = 0,
    scale: float,
) -> Tensor:
    dtype = q.dtype
    b, n, c = q.shape
    v_tokens = v.float()
    q, k, v = _heads(q.float(), num_heads), _heads(k.float(), num_heads), _heads(v_tokens, num_heads)
    factor = (scale / n) ** 0.5
    kv = (k.transpose(-2, -1) * factor) @ (v * factor)
    mean_term = 1.0 - (q @ k.mean(dim=2, keepdim=True).transpose(-2, -1)) * scale
    out = _merge_heads(q @ kv + mean_term * v.mean(dim=2, keepdim=True))
    patches = v_tokens[:, num_prefix_tokens:].transpose(1, 2).reshape(b, c, height, width)
    local = depthwise3x3_per_sample(patches, local_kernel.float()).reshape(b, c, height * width).transpose(1, 2)
    out = torch.cat([out[:, :num_prefix_tokens], out[:, num_prefix_tokens:] + local], dim=1)
    return out.to(dtype)


def apply_rope(x: Tensor, rope: Tensor) -> Tensor:
    """Rotate channel pairs (2m, 2m+1) of x (B, N, C) by rope (N, C/2, 2) = [cos, sin], in real arithmetic."""
    b, n, c = x.shape
    pairs = x.reshape(b, n, c // 2, 2)
    even, odd = pairs[..., 0], pairs[..., 1]
    cos, sin = rope[..., 0], rope[..., 1]
    return torch.stack([even * cos - odd * sin, even * sin + odd * cos], dim=-1).reshape(b, n, c)


def mlla_linear_attention(q: Tensor, k: Tensor, v: Tensor, rope: Tensor, *, num_heads: int) -> Tensor:
    dtype = q.dtype
    n = q.shape[1]
    q = F.elu(q.float()) + 1.0
    k = F.elu(k.float()) + 1.0
    rope = rope.float()
    q_rope, k_rope = _heads(apply_rope(q, rope), num_heads), _heads(apply_rope(k, rope), num_heads)
    q, k, v = _heads(q, num_heads), _heads(k, num_heads), _heads(v.float(), num_heads)
    z = 1.0 / (q @ k.mean(dim=-2, keepdim=True).transpose(-2, -1) + 1e-6)
    kv = (k_rope.transpose(-2, -1) * n**-0.5) @ (v * n**-0.5)
    return _merge_heads((q_rope @ kv) * z).to(dtype)


def circulant_attention(q: Tensor, k: Tensor, v: Tensor, *, height: int, width: int, strategy: int = 0) -> Tensor:
    """Circulant attention in the official FFT form (`strategy` only steers GPU kernels)."""
    del strategy
    dtype = q.dtype
    b, n, c = q.shape
    grid = (height, width)
    spectra = [torch.fft.rfft2(t.float().reshape(b, height, width, c), dim=(1, 2), norm="ortho") for t in (q, k, v)]
    q_f, k_f, v_f = spectra
    logits = torch.fft.irfft2(torch.conj(q_f) * k_f, s=grid, dim=(1, 2), norm="ortho")
    weights = logits.reshape(b, n, c).softmax(dim=1).reshape(b, height, width, c)
    weights_f = torch.fft.rfft2(weights, dim=(1, 2))
    out = torch.fft.irfft2(torch.conj(weights_f) * v_f, s=grid, dim=(1, 2), norm="ortho")
    return out.reshape(b, n, c).to(dtype)


REFERENCE: dict[str, Callable[..., Tensor]] = {
    "VitrtCirculantAttention": circulant_attention,
    "VitrtFocusedLinearAttention": focused_linear_attention,
    "VitrtAgentAttention": agent_attention,
    "VitrtInLineAttention": inline_attention,
    "VitrtMllaLinearAttention": mlla_linear_attention,
}
