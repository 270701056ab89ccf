"""MLLA's real-arithmetic RoPE and attention against literal re-statements of the official complex forms."""

from __future__ import annotations

import torch
from torch import nn

from vitrt.models.mlla import LinearAttention, MLLABlock, RoPE, rope_rotations
from vitrt.ops.reference import apply_rope

ATOL = 1e-5


def official_rotations(shape, base=10000):
    channel_dims, feature_dim = shape[:-1], shape[-1]
    k_max = feature_dim // (2 * len(channel_dims))
    theta_ks = 1 / (base ** (torch.arange(k_max) / k_max))
    grids = torch.meshgrid([torch.arange(d) for d in channel_dims], indexing="ij")
    angles = torch.cat([t.unsqueeze(-1) * theta_ks for t in grids], dim=-1)
    return torch.cat([torch.cos(angles).unsqueeze(-1), torch.sin(angles).unsqueeze(-1)], dim=-1)


def official_rope(rotations, x):
    """Official RoPE.forward: complex multiply of channel pairs, x of shape (B, H, W, C)."""
    x = torch.view_as_complex(x.float().reshape(*x.shape[:-1], -1, 2))
    return torch.view_as_real(torch.view_as_complex(rotations) * x).flatten(-2)


def official_linear_attention(attn: LinearAttention, x):
    b, n, c = x.shape
    h = w = int(n**0.5)
    heads, d = attn.num_heads, c // attn.num_heads
    qk = attn.qk(x).reshape(b, n, 2, c).permute(2, 0, 1, 3)
    q, k, v = qk[0], qk[1], x
    q, k = nn.functional.elu(q) + 1.0, nn.functional.elu(k) + 1.0
    rotations = attn.rope.rotations
    q_rope = official_rope(rotations, q.reshape(b, h, w, c)).reshape(b, n, heads, d).permute(0, 2, 1, 3)
    k_rope = official_rope(rotations, k.reshape(b, h, w, c)).reshape(b, n, heads, d).permute(0, 2, 1, 3)
    q, k, v = (t.reshape(b, n, heads, d).permute(0, 2, 1, 3) for t in (q, k, v))
    z = 1 / (q @ k.mean(dim=-2, keepdim=True).transpose(-2, -1) + 1e-6)
    kv = (k_rope.transpose(-2, -1) * n**-0.5) @ (v * n**-0.5)
    out = (q_rope @ kv * z).transpose(1, 2).reshape(b, n, c)
    v = v.transpose(1, 2).reshape(b, h, w, c).permute(0, 3, 1, 2)
    return out + attn.lepe(v).permute(0, 2, 3, 1).reshape(b, n, c)


def test_rotations_match_official_table():
    torch.testing.assert_close(rope_rotations((7, 9), 64), official_rotations((7, 9, 64)), atol=0, rtol=0)
    assert RoPE((4, 4), 32).state_dict()["rotations"].shape == (4, 4, 16, 2)


def test_real_rope_equals_complex_rope():
    rope = RoPE((6, 6), 48)
    x = torch.randn(3, 6, 6, 48)
    real = apply_rope(x.reshape(3, 36, 48), rope.table()).reshape(3, 6, 6, 48)
    torch.testing.assert_close(real, official_rope(rope.rotations, x), atol=ATOL, rtol=0)


def test_linear_attention_matches_official():
    torch.manual_seed(0)
    attn = LinearAttention(64, (7, 7), 4)
    x = torch.randn(2, 49, 64)
    with torch.no_grad():
        torch.testing.assert_close(attn(x), official_linear_attention(attn, x), atol=ATOL, rtol=0)


def test_block_matches_official_forward():
    torch.manual_seed(0)
    block = MLLABlock(32, (6, 6), 2).eval()
    x = torch.randn(2, 36, 32)
    b, n, c = x.shape

    def conv_tokens(conv, t):
        return conv(t.reshape(b, 6, 6, c).permute(0, 3, 1, 2)).flatten(2).permute(0, 2, 1)

    with torch.no_grad():
        h = x + conv_tokens(block.cpe1, x)
        shortcut = h
        h = block.norm1(h)
        gate = nn.functional.silu(block.act_proj(h))
        h = block.in_proj(h).view(b, 6, 6, c)
        h = nn.functional.silu(block.dwc(h.permute(0, 3, 1, 2))).permute(0, 2, 3, 1).reshape(b, n, c)
        h = shortcut + block.out_proj(official_linear_attention(block.attn, h) * gate)
        h = h + conv_tokens(block.cpe2, h)
        expected = h + block.mlp(block.norm2(h))
        torch.testing.assert_close(block(x), expected, atol=ATOL, rtol=0)
