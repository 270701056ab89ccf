"""The op references against literal re-statements of the official formulations, and the spec files."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from vitrt import ops
from vitrt.ops import reference
from vitrt.ops.spec import load_op_specs, op_spec

torch.manual_seed(0)


def _official_heads(x, h):
    b, n, c = x.shape
    return x.reshape(b, n, h, c // h).permute(0, 2, 1, 3)


def test_focused_linear_attention_matches_official():
    b, n, c, h = 2, 49, 48, 3
    q, k, v = (torch.randn(b, n, c) for _ in range(3))
    pos, scale = torch.randn(1, n, c) * 0.1, torch.randn(1, 1, c) * 0.1
    # Official FocusedLinearAttention.forward, from the projected q, k, v to before the DWC branch.
    kk = k + pos
    qq = F.relu(q) + 1e-6
    kk = F.relu(kk) + 1e-6
    s = F.softplus(scale)
    qq, kk = qq / s, kk / s
    qn, kn = qq.norm(dim=-1, keepdim=True), kk.norm(dim=-1, keepdim=True)
    qq, kk = qq**3, kk**3
    qq = (qq / qq.norm(dim=-1, keepdim=True)) * qn
    kk = (kk / kk.norm(dim=-1, keepdim=True)) * kn
    qq, kk, vv = _official_heads(qq, h), _official_heads(kk, h), _official_heads(v, h)
    z = 1 / (qq @ kk.mean(dim=-2, keepdim=True).transpose(-2, -1) + 1e-6)
    kv = (kk.transpose(-2, -1) * (n**-0.5)) @ (vv * (n**-0.5))
    expected = (qq @ kv * z).transpose(1, 2).reshape(b, n, c)
    got = ops.focused_linear_attention(q, k, v, pos, scale, num_heads=h, focusing_factor=3)
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-5)


def test_agent_attention_matches_official_with_cls_and_repeat():
    b, side, c, h, a = 2, 7, 32, 2, 9
    n = side * side + 1
    q, k, v = (torch.randn(b, n, c) for _ in range(3))
    scale = (c // h) ** -0.5
    agents = F.adaptive_avg_pool2d(q[:, 1:].reshape(b, side, side, c).permute(0, 3, 1, 2), 3)
    agents = agents.reshape(b, c, -1).permute(0, 2, 1)
    an, na = torch.randn(h, a, 7, 7) * 0.1, torch.randn(h, a, 7, 7) * 0.1
    ah, aw = torch.randn(1, h, a, side, 1) * 0.1, torch.randn(1, h, a, 1, side) * 0.1
    ha, wa = torch.randn(1, h, side, 1, a) * 0.1, torch.randn(1, h, 1, side, a) * 0.1
    ac, ca = torch.randn(1, h, a, 1) * 0.1, torch.randn(1, h, 1, a) * 0.1
    # Official Agent-DeiT: biases built per forward and .repeat()ed over the batch.
    pb1 = F.interpolate(an, size=(side, side), mode="bilinear").reshape(1, h, a, -1).repeat(b, 1, 1, 1)
    pb2 = (ah + aw).reshape(1, h, a, -1).repeat(b, 1, 1, 1)
    pb = torch.cat([ac.repeat(b, 1, 1, 1), pb1 + pb2], dim=-1)
    qh, kh, vh, ag = (_official_heads(t, h) for t in (q, k, v, agents))
    agent_v = torch.softmax((ag * scale) @ kh.transpose(-2, -1) + pb, dim=-1) @ vh
    ab1 = F.interpolate(na, size=(side, side), mode="bilinear").reshape(1, h, a, -1).permute(0, 1, 3, 2)
    ab2 = (ha + wa).reshape(1, h, -1, a)
    ab = torch.cat([ca.repeat(b, 1, 1, 1), (ab1 + ab2).repeat(b, 1, 1, 1)], dim=-2)
    expected = torch.softmax((qh * scale) @ ag.transpose(-2, -1) + ab, dim=-1) @ agent_v
    expected = expected.transpose(1, 2).reshape(b, n, c)
    # vitrt: the same biases precomputed once, without the batch axis.
    agent_bias = torch.cat(
        [
            ac[0],
            (
                F.interpolate(an, size=(side, side), mode="bilinear").reshape(1, h, a, -1)
                + (ah + aw).reshape(1, h, a, -1)
            )[0],
        ],
        dim=-1,
    )
    query_bias = torch.cat([ca[0], (ab1 + ab2)[0]], dim=-2)
    got = ops.agent_attention(q, k, v, agents, agent_bias, query_bias, num_heads=h, scale=scale)
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("prefix", [0, 1])
def test_inline_attention_matches_official_grouped_conv(prefix):
    b, height, width, c, h = 3, 5, 6, 24, 3
    n = prefix + height * width
    q, k, v = (torch.randn(b, n, c) for _ in range(3))
    taps = torch.randn(b, c, 9)
    scale = (c // h) ** -0.5
    qh, kh, vh = (_official_heads(t, h) for t in (q, k, v))
    kv = (kh.transpose(-2, -1) * (scale / n) ** 0.5) @ (vh * (scale / n) ** 0.5)
    x = qh @ kv + (1 - qh @ kh.mean(dim=2, keepdim=True).transpose(-2, -1) * scale) * vh.mean(dim=2, keepdim=True)
    x = x.transpose(1, 2).reshape(b, n, c)
    v_ = vh[:, :, prefix:, :].transpose(1, 2).reshape(b, height, width, c).permute(0, 3, 1, 2)
    residual = F.conv2d(
        v_.reshape(1, b * c, height, width), taps.reshape(b * c, 1, 3, 3), None, padding=(1, 1), groups=b * c
    )
    x[:, prefix:, :] = x[:, prefix:, :] + residual.reshape(b, c, height * width).permute(0, 2, 1)
    got = ops.inline_attention(
        q, k, v, taps, num_heads=h, height=height, width=width, num_prefix_tokens=prefix, scale=scale
    )
    torch.testing.assert_close(got, x, atol=1e-5, rtol=1e-5)


def test_mlla_linear_attention_matches_official_complex_rope():
    b, height, width, c, h = 2, 4, 6, 32, 4
    n = height * width
    q, k, v = (torch.randn(b, n, c) for _ in range(3))
    k_max = c // 4
    theta = 1 / (10000 ** (torch.arange(k_max) / k_max))
    grids = torch.meshgrid([torch.arange(height), torch.arange(width)], indexing="ij")
    angles = torch.cat([t.unsqueeze(-1) * theta for t in grids], dim=-1)
    rotations = torch.stack([torch.cos(angles), torch.sin(angles)], dim=-1)  # (H, W, C/2, 2)

    def official_rope(x):
        x = torch.view_as_complex(x.reshape(*x.shape[:-1], -1, 2))
        return torch.view_as_real(torch.view_as_complex(rotations) * x).flatten(-2)

    qq, kk = F.elu(q) + 1.0, F.elu(k) + 1.0
    q_rope = _official_heads(official_rope(qq.reshape(b, height, width, c)).reshape(b, n, c), h)
    k_rope = _official_heads(official_rope(kk.reshape(b, height, width, c)).reshape(b, n, c), h)
    qq, kk, vv = _official_heads(qq, h), _official_heads(kk, h), _official_heads(v, h)
    z = 1 / (qq @ kk.mean(dim=-2, keepdim=True).transpose(-2, -1) + 1e-6)
    kv = (k_rope.transpose(-2, -1) * (n**-0.5)) @ (vv * (n**-0.5))
    expected = (q_rope @ kv * z).transpose(1, 2).reshape(b, n, c)
    got = ops.mlla_linear_attention(q, k, v, rotations.reshape(n, c // 2, 2), num_heads=h)
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize(("height", "width"), [(14, 14), (3, 5)])
def test_circulant_attention_is_the_circular_correlation_of_the_spec(height, width):
    b, c = 2, 6
    n = height * width
    q, k, v = (torch.randn(b, n, c, dtype=torch.float64) for _ in range(3))
    grid = [t.reshape(b, height, width, c) for t in (q, k, v)]
    logits = torch.stack(
        [
            (grid[0] * torch.roll(grid[1], shifts=(-dy, -dx), dims=(1, 2))).sum((1, 2)) / n**0.5
            for dy in range(height)
            for dx in range(width)
        ],
        dim=1,
    )
    alpha = logits.softmax(dim=1).reshape(b, height, width, c)
    expected = torch.stack(
        [
            (alpha * torch.roll(grid[2], shifts=(-sy, -sx), dims=(1, 2))).sum((1, 2))
            for sy in range(height)
            for sx in range(width)
        ],
        dim=1,
    )
    got = ops.circulant_attention(q, k, v, height=height, width=width)
    torch.testing.assert_close(got.double(), expected, atol=1e-5, rtol=1e-5)


def test_references_compute_in_fp32_and_return_input_dtype():
    q, k, v = (torch.randn(1, 16, 8).half() for _ in range(3))
    out = ops.circulant_attention(q, k, v, height=4, width=4)
    assert out.dtype == torch.float16
    full = ops.circulant_attention(q.float(), k.float(), v.float(), height=4, width=4)
    torch.testing.assert_close(out.float(), full, atol=2e-3, rtol=2e-3)


def test_specs_cover_every_reference_op_with_consistent_fields():
    specs = load_op_specs()
    assert set(specs) == set(reference.REFERENCE)
    for name, spec in specs.items():
        assert spec.domain == "vitrt" and spec.plugin_namespace == "vitrt" and spec.plugin_version == "1"
        assert spec.torch_op.startswith("vitrt::")
        assert name.startswith("Vitrt")
        assert {"float32", "float16"} <= set(spec.dtypes)
        assert all(attr.type in ("int", "float") for attr in spec.attributes)
        assert spec.test_configs, name
        for dtype in spec.dtypes:
            atol, rtol = spec.tolerance(dtype)
            assert 0 < atol < 0.1 and 0 < rtol < 0.1


def test_spec_attribute_validation():
    spec = op_spec("inline_attention")
    resolved = spec.resolve_attributes({"num_heads": 3, "height": 7, "width": 7, "scale": 0.25})
    assert resolved["num_prefix_tokens"] == 0
    with pytest.raises(ValueError, match="required"):
        spec.resolve_attributes({"num_heads": 3})
    with pytest.raises(ValueError, match="below its minimum"):
        spec.resolve_attributes({"num_heads": 0, "height": 7, "width": 7, "scale": 0.25})
    with pytest.raises(ValueError, match="unknown attributes"):
        spec.resolve_attributes({"num_heads": 1, "height": 1, "width": 1, "scale": 1.0, "eps": 1.0})


def test_unregistered_implementation_fails_loudly():
    q = torch.randn(1, 4, 2)
    with ops.use_implementation("nonexistent"), pytest.raises(RuntimeError, match="no 'nonexistent'"):
        ops.circulant_attention(q, q, q, height=2, width=2)
