"""Export-friendly rewrites in the Swin-backbone families against literal re-statements of the official forms.

Each `official_*` function below restates the official formulation (batch-folded convs, AdaptiveAvgPool2d,
per-forward interpolated and repeated biases, per-sample grouped convs, batch-computing window_reverse).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from vitrt.models.agent import SwinAgentAttention
from vitrt.models.backbones.swin import (
    SwinBlock,
    WindowAttention,
    relative_position_index,
    shifted_window_mask,
    window_partition,
    window_reverse,
)
from vitrt.models.flatten import SwinFocusedLinearAttention
from vitrt.models.inline import SwinInLineAttention

ATOL = 1e-5


def _randomise(module: nn.Module, std: float = 0.2) -> None:
    torch.manual_seed(1)
    with torch.no_grad():
        for p in module.parameters():
            p.normal_(0.0, std)


def official_window_reverse(windows, window, height, width):
    batch = int(windows.shape[0] / (height * width / window / window))
    x = windows.view(batch, height // window, width // window, window, window, -1)
    return x.permute(0, 1, 3, 2, 4, 5).contiguous().view(batch, height, width, -1)


def official_window_partition(x, window):
    b, h, w, c = x.shape
    x = x.view(b, h // window, window, w // window, window, c)
    return x.permute(0, 1, 3, 2, 4, 5).contiguous().view(-1, window, window, c)


def official_mask(height, width, window, shift):
    img_mask = torch.zeros((1, height, width, 1))
    slices = (slice(0, -window), slice(-window, -shift), slice(-shift, None))
    cnt = 0
    for hs in slices:
        for ws in slices:
            img_mask[:, hs, ws, :] = cnt
            cnt += 1
    mask_windows = official_window_partition(img_mask, window).view(-1, window * window)
    attn_mask = mask_windows.unsqueeze(1) - mask_windows.unsqueeze(2)
    return attn_mask.masked_fill(attn_mask != 0, -100.0).masked_fill(attn_mask == 0, 0.0)


def test_window_partition_and_reverse_match_official():
    x = torch.randn(3, 12, 12, 5)
    windows = window_partition(x, 4)
    torch.testing.assert_close(windows, official_window_partition(x, 4).view(-1, 16, 5), atol=0, rtol=0)
    torch.testing.assert_close(window_reverse(windows, 4, 12, 12), official_window_reverse(windows, 4, 12, 12))
    torch.testing.assert_close(window_reverse(windows, 4, 12, 12), x, atol=0, rtol=0)


def test_shifted_window_mask_and_relative_index_match_official():
    torch.testing.assert_close(shifted_window_mask((14, 14), 7, 3), official_mask(14, 14, 7, 3), atol=0, rtol=0)
    torch.testing.assert_close(shifted_window_mask((4, 4), 2, 1), official_mask(4, 4, 2, 1), atol=0, rtol=0)
    coords = torch.stack(torch.meshgrid([torch.arange(3), torch.arange(3)], indexing="ij")).flatten(1)
    rel = (coords[:, :, None] - coords[:, None, :]).permute(1, 2, 0).contiguous()
    rel[:, :, 0] += 2
    rel[:, :, 1] += 2
    rel[:, :, 0] *= 5
    torch.testing.assert_close(relative_position_index((3, 3)), rel.sum(-1), atol=0, rtol=0)


def official_window_attention(attn: WindowAttention, x, mask):
    b_, n, c = x.shape
    qkv = attn.qkv(x).reshape(b_, n, 3, attn.num_heads, c // attn.num_heads).permute(2, 0, 3, 1, 4)
    q, k, v = qkv[0] * attn.scale, qkv[1], qkv[2]
    logits = q @ k.transpose(-2, -1)
    bias = attn.relative_position_bias_table[attn.relative_position_index.view(-1)].view(n, n, -1)
    logits = logits + bias.permute(2, 0, 1).contiguous().unsqueeze(0)
    if mask is not None:
        nw = mask.shape[0]
        logits = logits.view(b_ // nw, nw, attn.num_heads, n, n) + mask.unsqueeze(1).unsqueeze(0)
        logits = logits.view(-1, attn.num_heads, n, n)
    return attn.proj((logits.softmax(-1) @ v).transpose(1, 2).reshape(b_, n, c))


def test_shifted_window_block_matches_official_forward():
    def make(window):
        return WindowAttention(16, window, 2)

    block = SwinBlock(16, (8, 8), 2, make, window_size=4, shift_size=2).eval()
    _randomise(block)
    x = torch.randn(3, 64, 16)
    # official block forward with the batch-computing window_reverse
    h = block.norm1(x).view(3, 8, 8, 16)
    shifted = torch.roll(h, shifts=(-2, -2), dims=(1, 2))
    windows = official_window_partition(shifted, 4).view(-1, 16, 16)
    out = official_window_attention(block.attn, windows, official_mask(8, 8, 4, 2)).view(-1, 4, 4, 16)
    h = torch.roll(official_window_reverse(out, 4, 8, 8), shifts=(2, 2), dims=(1, 2)).reshape(3, 64, 16)
    y = x + h
    expected = y + block.mlp(block.norm2(y))
    torch.testing.assert_close(block(x), expected, atol=ATOL, rtol=0)


def official_flatten_attention(attn: SwinFocusedLinearAttention, x):
    """Official FocusedLinearAttention.forward, including the batch-folded (B*h, d, H, W) depthwise conv."""
    b, n, c = x.shape
    q, k, v = attn.qkv(x).reshape(b, n, 3, c).permute(2, 0, 1, 3).unbind(0)
    k = k + attn.positional_encoding
    q, k = F.relu(q) + 1e-6, F.relu(k) + 1e-6
    scale = F.softplus(attn.scale)
    q, k = q / scale, k / scale
    q_norm, k_norm = q.norm(dim=-1, keepdim=True), k.norm(dim=-1, keepdim=True)
    q, k = q**attn.focusing_factor, k**attn.focusing_factor
    q = q / q.norm(dim=-1, keepdim=True) * q_norm
    k = k / k.norm(dim=-1, keepdim=True) * k_norm
    q, k, v = (t.reshape(b, n, attn.num_heads, -1).permute(0, 2, 1, 3) for t in (q, k, v))
    z = 1 / (q @ k.mean(dim=-2, keepdim=True).transpose(-2, -1) + 1e-6)
    kv = (k.transpose(-2, -1) * n**-0.5) @ (v * n**-0.5)
    out = (q @ kv * z).transpose(1, 2).reshape(b, n, c)
    side = int(n**0.5)
    v = v.reshape(b * attn.num_heads, side, side, -1).permute(0, 3, 1, 2)
    out = out + attn.dwc(v).reshape(b, c, n).permute(0, 2, 1)
    return attn.proj(out)


def test_flatten_attention_matches_official_batch_folded_dwc():
    attn = SwinFocusedLinearAttention(48, (7, 7), 3).eval()
    _randomise(attn, 0.1)
    x = torch.randn(4, 49, 48)
    torch.testing.assert_close(attn(x), official_flatten_attention(attn, x), atol=ATOL, rtol=0)


def official_agent_attention(attn: SwinAgentAttention, x):
    """Official AgentAttention.forward: AdaptiveAvgPool2d agents, biases interpolated and repeated per forward."""
    b, n, c = x.shape
    h = w = int(n**0.5)
    heads, d = attn.num_heads, c // attn.num_heads
    q, k, v = attn.qkv(x).reshape(b, n, 3, c).permute(2, 0, 1, 3)
    pool = nn.AdaptiveAvgPool2d(int(attn.agent_num**0.5))
    agents = pool(q.reshape(b, h, w, c).permute(0, 3, 1, 2)).reshape(b, c, -1).permute(0, 2, 1)
    q, k, v = (t.reshape(b, n, heads, d).permute(0, 2, 1, 3) for t in (q, k, v))
    agents = agents.reshape(b, attn.agent_num, heads, d).permute(0, 2, 1, 3)
    bias1 = F.interpolate(attn.an_bias, size=attn.window_size, mode="bilinear")
    bias1 = bias1.reshape(1, heads, attn.agent_num, -1).repeat(b, 1, 1, 1)
    bias2 = (attn.ah_bias + attn.aw_bias).reshape(1, heads, attn.agent_num, -1).repeat(b, 1, 1, 1)
    agent_attn = ((agents * attn.scale) @ k.transpose(-2, -1) + bias1 + bias2).softmax(-1)
    agent_v = agent_attn @ v
    abias1 = F.interpolate(attn.na_bias, size=attn.window_size, mode="bilinear")
    abias1 = abias1.reshape(1, heads, attn.agent_num, -1).permute(0, 1, 3, 2).repeat(b, 1, 1, 1)
    abias2 = (attn.ha_bias + attn.wa_bias).reshape(1, heads, -1, attn.agent_num).repeat(b, 1, 1, 1)
    q_attn = ((q * attn.scale) @ agents.transpose(-2, -1) + abias1 + abias2).softmax(-1)
    out = (q_attn @ agent_v).transpose(1, 2).reshape(b, n, c)
    v = v.transpose(1, 2).reshape(b, h, w, c).permute(0, 3, 1, 2)
    out = out + attn.dwc(v).permute(0, 2, 3, 1).reshape(b, n, c)
    return attn.proj(out)


def test_agent_attention_matches_official_in_train_and_eval():
    attn = SwinAgentAttention(48, (14, 14), 3, agent_num=16)  # 14 -> 4: overlapping (non-divisible) bins
    _randomise(attn, 0.1)
    x = torch.randn(3, 196, 48)
    with torch.no_grad():
        official = official_agent_attention(attn, x)
        torch.testing.assert_close(attn.train()(x), official, atol=ATOL, rtol=0)  # biases from parameters
        torch.testing.assert_close(attn.eval()(x), official, atol=ATOL, rtol=0)  # precomputed buffers


def test_agent_pool_matrix_equals_adaptive_pool_on_the_stage1_map():
    attn = SwinAgentAttention(12, (56, 56), 3, agent_num=9)
    q = torch.randn(2, 56 * 56, 12)
    pooled = F.adaptive_avg_pool2d(q.transpose(1, 2).reshape(2, 12, 56, 56), 3).flatten(2).transpose(1, 2)
    torch.testing.assert_close(attn.pool_matrix @ q, pooled, atol=ATOL, rtol=0)


def test_agent_bias_buffers_follow_parameters():
    attn = SwinAgentAttention(16, (8, 8), 2, agent_num=4)
    x = torch.randn(2, 64, 16)
    attn.eval()
    before = attn(x)
    # A state_dict load refreshes the eval buffers through the post-load hook ...
    state = {k: v + torch.randn_like(v) if k.endswith("an_bias") else v for k, v in attn.state_dict().items()}
    attn.load_state_dict(state)
    after_load = attn(x)
    assert (after_load - before).abs().max() > 1e-3
    torch.testing.assert_close(after_load, official_agent_attention(attn, x), atol=ATOL, rtol=0)
    # ... and so does switching to eval after training-mode updates (which use the parameters directly).
    attn.train()
    with torch.no_grad():
        attn.wa_bias.add_(torch.randn_like(attn.wa_bias))
    trained = attn(x)
    assert (trained - after_load).abs().max() > 1e-3
    attn.eval()
    torch.testing.assert_close(attn(x), trained, atol=ATOL, rtol=0)
    assert not any(name in attn.state_dict() for name in ("pool_matrix", "agent_bias", "query_bias"))


def official_inline_attention(attn: SwinInLineAttention, x):
    """Official InLineAttention.forward with its per-sample grouped conv (groups = B*C)."""
    b, n, c = x.shape
    h = w = int(n**0.5)
    heads, d = attn.num_heads, c // attn.num_heads
    q, k, v = attn.qkv(x).reshape(b, n, 3, c).permute(2, 0, 1, 3)
    q, k, v = (t.reshape(b, n, heads, d).permute(0, 2, 1, 3) for t in (q, k, v))
    res_weight = attn.residual(x.mean(dim=1).unsqueeze(dim=-1)).reshape(b * c, 1, 3, 3)
    kv = (k.transpose(-2, -1) * (attn.scale / n) ** 0.5) @ (v * (attn.scale / n) ** 0.5)
    out = q @ kv + (1 - q @ k.mean(dim=2, keepdim=True).transpose(-2, -1) * attn.scale) * v.mean(dim=2, keepdim=True)
    out = out.transpose(1, 2).reshape(b, n, c)
    v = v.transpose(1, 2).reshape(b, h, w, c).permute(0, 3, 1, 2).reshape(1, b * c, h, w)
    out = out + F.conv2d(v, res_weight, None, padding=(1, 1), groups=b * c).reshape(b, c, n).permute(0, 2, 1)
    return attn.proj(out)


def test_inline_attention_matches_official_grouped_conv():
    attn = SwinInLineAttention(48, (7, 7), 3).eval()
    _randomise(attn, 0.1)
    x = torch.randn(3, 49, 48)
    torch.testing.assert_close(attn(x), official_inline_attention(attn, x), atol=ATOL, rtol=0)
