"""PVT- and CSwin-backbone models of the FLatten, Agent and InLine families.

The export-friendly rewrites are checked against literal re-statements of the official formulations (batch-folded
DWC, AdaptiveAvgPool2d, per-forward interpolated and repeated agent biases, per-sample grouped conv, CSwin's
img2windows/windows2img with the batch computed from shapes), written out below.
"""

from __future__ import annotations

import math

import pytest
import timm
import torch
import torch.nn.functional as F
from torch import Tensor, nn
from yacs.config import CfgNode

from vitrt.errors import ModelConfigError
from vitrt.models import LoadReport, create_model, get_spec, list_models, load_checkpoint
from vitrt.models.agent import AgentCSwinAttention, AgentPvtAttention
from vitrt.models.backbones.cswin import CSWinBlock, LePEAttention, stripe_partition, stripe_reverse
from vitrt.models.flatten import FLattenCSwinAttention, FLattenPvtAttention
from vitrt.models.inline import InLineCSwinAttention, InLinePvtAttention

NAMES = [
    f"{family}_{backbone}_{size}"
    for family in ("flatten", "agent", "inline")
    for backbone, sizes in (("pvt", "tsml"), ("cswin", "tsb"))
    for size in sizes
]
TINY = [name for name in NAMES if name.endswith("_t")]
ATOL = 1e-5


def _randomize(module: nn.Module, seed: int = 0) -> None:
    """Perturb every parameter so zero-initialised ones (scale, positional_encoding, biases) matter."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for param in module.parameters():
            param.add_(torch.randn(param.shape, generator=generator) * 0.05)


def _tokens(batch: int, side: int, dim: int, seed: int = 1) -> Tensor:
    return torch.randn(batch, side * side, dim, generator=torch.Generator().manual_seed(seed))


# ----------------------------------------------------------------------------------------------------------------
# Literal official formulations
# ----------------------------------------------------------------------------------------------------------------


def official_heads(x: Tensor, heads: int) -> Tensor:
    b, n, c = x.shape
    return x.reshape(b, n, heads, c // heads).permute(0, 2, 1, 3)


def official_focused(q, k, v, positional_encoding, scale_param, heads, side, dwc):
    """FLatten core + batch-folded DWC: v as (B*h, d, H, W) through the d-channel conv."""
    b, n, c = q.shape
    k = k + positional_encoding
    scale = nn.Softplus()(scale_param)
    q, k = nn.ReLU()(q) + 1e-6, nn.ReLU()(k) + 1e-6
    q, k = q / scale, k / scale
    q_norm, k_norm = q.norm(dim=-1, keepdim=True), k.norm(dim=-1, keepdim=True)
    q, k = q**3, k**3
    q = q / q.norm(dim=-1, keepdim=True) * q_norm
    k = k / k.norm(dim=-1, keepdim=True) * k_norm
    q, k, v = official_heads(q, heads), official_heads(k, heads), official_heads(v, heads)
    z = 1 / (q @ k.mean(dim=-2, keepdim=True).transpose(-2, -1) + 1e-6)
    kv = (k.transpose(-2, -1) * n**-0.5) @ (v * n**-0.5)
    out = (q @ kv * z).transpose(1, 2).reshape(b, n, c)
    folded = v.reshape(b * heads, side, side, -1).permute(0, 3, 1, 2)
    return out + dwc(folded).reshape(b, c, n).permute(0, 2, 1)


def official_agent(q, k, v, attn, side):
    """Agent core: AdaptiveAvgPool2d agents, biases interpolated and `.repeat`ed on every call."""
    b, n, c = q.shape
    heads, agents_n = attn.num_heads, attn.agent_num
    scale = (c // heads) ** -0.5
    pool = nn.AdaptiveAvgPool2d(int(agents_n**0.5))
    agents = pool(q.reshape(b, side, side, c).permute(0, 3, 1, 2)).reshape(b, c, -1).permute(0, 2, 1)
    q, k, v, agents = (official_heads(t, heads) for t in (q, k, v, agents))
    bias1 = F.interpolate(attn.an_bias, size=(side, side), mode="bilinear")
    bias1 = bias1.reshape(1, heads, agents_n, -1).repeat(b, 1, 1, 1)
    bias2 = (attn.ah_bias + attn.aw_bias).reshape(1, heads, agents_n, -1).repeat(b, 1, 1, 1)
    agent_v = torch.softmax((agents * scale) @ k.transpose(-2, -1) + (bias1 + bias2), dim=-1) @ v
    qbias1 = F.interpolate(attn.na_bias, size=(side, side), mode="bilinear")
    qbias1 = qbias1.reshape(1, heads, agents_n, -1).permute(0, 1, 3, 2).repeat(b, 1, 1, 1)
    qbias2 = (attn.ha_bias + attn.wa_bias).reshape(1, heads, -1, agents_n).repeat(b, 1, 1, 1)
    out = torch.softmax((q * scale) @ agents.transpose(-2, -1) + (qbias1 + qbias2), dim=-1) @ agent_v
    return out.transpose(1, 2).reshape(b, n, c)


def official_inline(q, k, v, residual, mean_source, heads, side):
    """InLine core + the local residual as a per-sample grouped conv (groups = B*C)."""
    b, n, c = q.shape
    weight = residual(mean_source.unsqueeze(-1)).reshape(b * c, 1, 3, 3)
    scale = (c // heads) ** -0.5
    q, k, v = official_heads(q, heads), official_heads(k, heads), official_heads(v, heads)
    kv = (k.transpose(-2, -1) * (scale / n) ** 0.5) @ (v * (scale / n) ** 0.5)
    out = q @ kv + (1 - q @ k.mean(dim=2, keepdim=True).transpose(-2, -1) * scale) * v.mean(dim=2, keepdim=True)
    out = out.transpose(1, 2).reshape(b, n, c)
    v = v.transpose(1, 2).reshape(b, side, side, c).permute(0, 3, 1, 2).reshape(1, b * c, side, side)
    return out + F.conv2d(v, weight, None, padding=(1, 1), groups=b * c).reshape(b, c, n).permute(0, 2, 1)


def official_img2windows(img: Tensor, hs: int, ws: int) -> Tensor:
    b, c, h, w = img.shape
    return img.view(b, c, h // hs, hs, w // ws, ws).permute(0, 2, 4, 3, 5, 1).contiguous().reshape(-1, hs * ws, c)


def official_windows2img(windows: Tensor, hs: int, ws: int, h: int, w: int) -> Tensor:
    b = int(windows.shape[0] / (h * w / hs / ws))
    img = windows.view(b, h // hs, w // ws, hs, ws, -1)
    return img.permute(0, 1, 3, 2, 4, 5).contiguous().view(b, h, w, -1)


def official_im2cswin(x: Tensor, hs: int, ws: int) -> Tensor:
    b, n, c = x.shape
    side = math.isqrt(n)
    return official_img2windows(x.transpose(-2, -1).contiguous().view(b, c, side, side), hs, ws)


def official_get_lepe(x: Tensor, conv: nn.Conv2d, hs: int, ws: int) -> tuple[Tensor, Tensor]:
    b, n, c = x.shape
    side = math.isqrt(n)
    x = x.transpose(-2, -1).contiguous().view(b, c, side, side).view(b, c, side // hs, hs, side // ws, ws)
    x = x.permute(0, 2, 4, 1, 3, 5).contiguous().reshape(-1, c, hs, ws)
    lepe = conv(x).reshape(-1, c, hs * ws).permute(0, 2, 1)
    return x.reshape(-1, c, hs * ws).permute(0, 2, 1), lepe


def official_lepe_attention(attn: LePEAttention, qkv: Tensor) -> Tensor:
    q, k, v = qkv[0], qkv[1], qkv[2]
    b, length, c = q.shape
    (hs, ws), side, heads = attn.window, attn.resolution, attn.num_heads

    def windows_heads(t: Tensor) -> Tensor:
        return t.reshape(-1, hs * ws, heads, c // heads).permute(0, 2, 1, 3)

    q, k = windows_heads(official_im2cswin(q, hs, ws)), windows_heads(official_im2cswin(k, hs, ws))
    v, lepe = official_get_lepe(v, attn.get_v, hs, ws)
    v, lepe = windows_heads(v), windows_heads(lepe)
    weights = torch.softmax((q * (c // heads) ** -0.5) @ k.transpose(-2, -1), dim=-1)
    out = ((weights @ v) + lepe).transpose(1, 2).reshape(-1, hs * ws, c)
    return official_windows2img(out, hs, ws, side, side).view(b, -1, c)


def official_global_branch(attn: nn.Module, qkv: Tensor, block_mean: Tensor) -> Tensor:
    """The official CSwin global linear-attention branches (window = whole map, idx -1)."""
    side = attn.grid[0]
    q, k = official_im2cswin(qkv[0], side, side), official_im2cswin(qkv[1], side, side)
    v, lepe = official_get_lepe(qkv[2], attn.get_v, side, side)
    if isinstance(attn, FLattenCSwinAttention):
        out = official_focused(q, k, v, attn.positional_encoding, attn.scale, attn.num_heads, side, attn.dwc) + lepe
    elif isinstance(attn, AgentCSwinAttention):
        out = official_agent(q, k, v, attn, side) + lepe
    else:
        out = official_inline(q, k, v, attn.residual, block_mean, attn.num_heads, side) + lepe
    return official_windows2img(out, side, side, side, side).view(q.shape[0], -1, q.shape[-1])


def official_cswin_block(block: CSWinBlock, x: Tensor) -> Tensor:
    b, length, c = x.shape
    qkv = block.qkv(block.norm1(x)).reshape(b, -1, 3, c).permute(2, 0, 1, 3)

    def branch(attn: nn.Module, part: slice) -> Tensor:
        if isinstance(attn, LePEAttention):
            return official_lepe_attention(attn, qkv[:, :, :, part])
        return official_global_branch(attn, qkv[:, :, :, part], x.mean(dim=1)[:, part])

    if len(block.attns) == 2:
        attended = torch.cat([branch(block.attns[0], slice(0, c // 2)), branch(block.attns[1], slice(c // 2, c))], 2)
    else:
        attended = branch(block.attns[0], slice(0, c))
    x = x + block.proj(attended)
    return x + block.mlp(block.norm2(x))


# ----------------------------------------------------------------------------------------------------------------
# Registry, structure, parameter counts
# ----------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", NAMES)
def test_registered_with_spec_params_and_timm(name):
    assert name in list_models()
    spec = get_spec(name)
    family, backbone, _ = name.split("_")
    assert (spec.family, spec.backbone, spec.default_img_size) == (family, backbone, 224)
    assert spec.official_name
    with torch.device("meta"):  # no memory, no initialisation cost
        model = timm.create_model(name)
    assert model.vitrt_metadata.model == name
    params = sum(p.numel() for p in model.parameters()) / 1e6
    assert abs(params / spec.expected_params_m - 1) < 0.005, (params, spec.expected_params_m)


def test_module_trees_follow_the_official_layout():
    with torch.device("meta"):
        flatten_pvt = create_model("flatten_pvt_t")
        agent_pvt = create_model("agent_pvt_t")
        flatten_cswin = create_model("flatten_cswin_t")
        inline_cswin = create_model("inline_cswin_t")
    keys = flatten_pvt.state_dict()
    for key in ("patch_embed1.proj.weight", "pos_embed4", "block1.0.attn.kv.weight", "block1.0.attn.dwc.weight"):
        assert key in keys
    assert tuple(keys["block1.0.attn.positional_encoding"].shape) == (1, 3136, 64)
    assert tuple(keys["block1.0.attn.dwc.weight"].shape) == (64, 1, 5, 5)
    assert "norm.weight" in keys and "norm.weight" not in agent_pvt.state_dict()
    agent_keys = agent_pvt.state_dict()
    assert tuple(agent_keys["block1.0.attn.ah_bias"].shape) == (1, 1, 9, 56, 1)
    assert not any(k.endswith(("agent_bias", "query_bias", "pool_matrix")) for k in agent_keys)
    cswin_keys = flatten_cswin.state_dict()
    for key in (
        "stage1_conv_embed.0.weight",
        "stage1_conv_embed.2.weight",
        "stage1.0.attns.0.get_v.weight",
        "stage3.0.attns.1.get_v.weight",
        "merge3.conv.weight",
        "stage4.0.attns.0.get_v.weight",
    ):
        assert key in cswin_keys
    assert not any(k.startswith("stage1_conv_embed.1") for k in cswin_keys)
    assert "stage3.0.attns.2.get_v.weight" not in cswin_keys and "stage4.0.attns.1.get_v.weight" not in cswin_keys
    assert tuple(inline_cswin.state_dict()["stage2.0.attns.0.residual.2.weight"].shape) == (128 * 9, 32, 1)
    eps = {m.eps for n, m in flatten_pvt.named_modules() if isinstance(m, nn.LayerNorm) and "patch_embed" not in n}
    assert eps == {1e-6} and flatten_pvt.patch_embed1.norm.eps == 1e-5
    assert {m.eps for m in flatten_cswin.modules() if isinstance(m, nn.LayerNorm)} == {1e-5}
    assert all(m.approximate == "none" for m in flatten_cswin.modules() if isinstance(m, nn.GELU))


# ----------------------------------------------------------------------------------------------------------------
# Export-friendly forms against the official formulations
# ----------------------------------------------------------------------------------------------------------------


def test_flatten_pvt_attention_matches_official_form():
    side, dim, heads = 6, 32, 2
    attn = FLattenPvtAttention(dim, heads, (side, side)).eval()
    _randomize(attn)
    x = _tokens(3, side, dim)
    q = attn.q(x)
    k, v = attn.kv(x).reshape(3, -1, 2, dim).permute(2, 0, 1, 3)
    expected = attn.proj(official_focused(q, k, v, attn.positional_encoding, attn.scale, heads, side, attn.dwc))
    torch.testing.assert_close(attn(x), expected, atol=ATOL, rtol=0)


@pytest.mark.parametrize("training", [False, True])
def test_agent_pvt_attention_matches_official_form(training):
    side, dim, heads = 8, 32, 2  # 8 -> 3 pooling is non-divisible (overlapping bins), like 56 -> 3
    attn = AgentPvtAttention(dim, heads, (side, side), agent_num=9)
    _randomize(attn)
    attn.train(training)
    x = _tokens(3, side, dim)
    q = attn.q(x)
    k, v = attn.kv(x).reshape(3, -1, 2, dim).permute(2, 0, 1, 3)
    conv = attn.dwc(v.reshape(3, side, side, dim).permute(0, 3, 1, 2))
    expected = attn.proj(official_agent(q, k, v, attn, side) + conv.permute(0, 2, 3, 1).reshape(3, -1, dim))
    torch.testing.assert_close(attn(x), expected, atol=ATOL, rtol=0)


def test_agent_bias_buffers_follow_eval_switch_and_load():
    side, dim, heads = 7, 32, 2
    attn = AgentPvtAttention(dim, heads, (side, side), agent_num=16).eval()
    x = _tokens(2, side, dim)
    stale = attn(x)
    _randomize(attn)  # parameters change behind the buffers' back...
    attn.train()
    attn.eval()  # ...and switching to eval refreshes them
    fresh = attn(x)
    assert (fresh - stale).abs().max() > 1e-3
    source = AgentPvtAttention(dim, heads, (side, side), agent_num=16)
    _randomize(source, seed=7)
    attn.load_state_dict(source.state_dict())  # stays in eval mode: the post-load hook refreshes
    torch.testing.assert_close(attn(x), source.eval()(x), atol=ATOL, rtol=0)
    assert set(attn.state_dict()) == set(source.state_dict())


def test_inline_pvt_attention_matches_official_form():
    side, dim, heads = 6, 32, 2
    attn = InLinePvtAttention(dim, heads, (side, side)).eval()
    _randomize(attn)
    x = _tokens(3, side, dim)
    q = attn.q(x)
    k, v = attn.kv(x).reshape(3, -1, 2, dim).permute(2, 0, 1, 3)
    expected = attn.proj(official_inline(q, k, v, attn.residual, x.mean(dim=1), heads, side))
    torch.testing.assert_close(attn(x), expected, atol=ATOL, rtol=0)


@pytest.mark.parametrize(
    ("grid", "window"), [((8, 8), (8, 2)), ((8, 8), (2, 8)), ((6, 6), (6, 6)), ((14, 14), (7, 14)), ((4, 6), (1, 3))]
)
def test_stripe_partition_and_reverse_match_official(grid, window):
    x = torch.randn(3, grid[0] * grid[1], 5)
    img = x.transpose(1, 2).reshape(3, 5, *grid)
    windows = stripe_partition(x, grid, window)
    torch.testing.assert_close(windows, official_img2windows(img, *window), atol=0, rtol=0)
    reversed_official = official_windows2img(windows, *window, *grid).reshape(3, -1, 5)
    torch.testing.assert_close(stripe_reverse(windows, grid, window), reversed_official, atol=0, rtol=0)
    torch.testing.assert_close(stripe_reverse(windows, grid, window), x, atol=0, rtol=0)


def _block(dim: int, attns: list[nn.Module]) -> CSWinBlock:
    block = CSWinBlock(dim, attns, mlp_ratio=2.0, qkv_bias=True, drop=0.0, drop_path=0.0).eval()
    _randomize(block)
    return block


@pytest.mark.parametrize(
    "make_attns",
    [
        pytest.param(lambda: [LePEAttention(16, 8, idx, 4, 2) for idx in (0, 1)], id="lepe_two_stripes"),
        pytest.param(lambda: [LePEAttention(32, 8, -1, 8, 4)], id="lepe_full_map"),
        pytest.param(lambda: [FLattenCSwinAttention(32, 2, 8)], id="flatten"),
        pytest.param(lambda: [AgentCSwinAttention(32, 2, 8, 9)], id="agent"),
        pytest.param(lambda: [InLineCSwinAttention(32, 2, 8)], id="inline_block_input_mean"),
    ],
)
def test_cswin_blocks_match_official_form(make_attns):
    block = _block(32, make_attns())
    block.eval()  # refresh agent biases after the perturbation
    x = _tokens(3, 8, 32) * 2 + 0.5  # a non-zero mean makes InLine's block-input-mean (before norm1) matter
    torch.testing.assert_close(block(x), official_cswin_block(block, x), atol=ATOL, rtol=0)


# ----------------------------------------------------------------------------------------------------------------
# Whole models: forward, batch consistency, official checkpoint layouts, resolution changes, bad configurations
# ----------------------------------------------------------------------------------------------------------------


def _official_file(tmp_path, state: dict[str, Tensor], name: str, ema: bool):
    """A checkpoint in the official training scripts' layout (CSwin runs are EMA-trained: also state_dict_ema)."""
    config = CfgNode({"MODEL": CfgNode({"TYPE": get_spec(name).official_name}), "DATA": CfgNode({"IMG_SIZE": 224})})
    payload = {
        "model": state,
        "optimizer": {},
        "lr_scheduler": {},
        "max_accuracy": 80.0,
        "epoch": 299,
        "config": config,
    }
    if ema:
        payload |= {"state_dict_ema": {k: v + 1.0 for k, v in state.items()}, "max_accuracy_e": 80.1}
    path = tmp_path / f"{name}.pth"
    torch.save(payload, path)
    return path


def _random_state(model: nn.Module, seed: int = 3) -> dict[str, Tensor]:
    """A state dict of the model's shapes filled with random values (cheaper than building a second model)."""
    generator = torch.Generator().manual_seed(seed)
    return {k: torch.randn(v.shape, generator=generator) * 0.05 for k, v in model.state_dict().items()}


@pytest.fixture(scope="module")
def loaded_tiny(tmp_path_factory):
    """Each `_t` model, built once and loaded strictly from a random checkpoint in the official file layout."""
    cache: dict[str, tuple[nn.Module, dict[str, Tensor], LoadReport]] = {}

    def get(name: str) -> tuple[nn.Module, dict[str, Tensor], LoadReport]:
        if name not in cache:
            model = create_model(name)
            state = _random_state(model)
            path = _official_file(tmp_path_factory.mktemp(name), state, name, ema="cswin" in name)
            cache[name] = (model, state, load_checkpoint(model, path))
        return cache[name]

    return get


@pytest.mark.parametrize("name", TINY)
def test_tiny_models_load_official_checkpoints_and_are_batch_consistent(loaded_tiny, name):
    model, state, report = loaded_tiny(name)
    assert report.source_key == "model" and not report.adaptations
    for key, value in model.state_dict().items():
        assert torch.equal(value, state[key]), key
    # Batch 5 for FLatten-CSwin, whose stock export froze the batch (agent_pvt_t's export test covers batch 5).
    batch = 5 if name == "flatten_cswin_t" else 2
    x = torch.randn(batch, 3, 224, 224, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        logits = model(x)
        single = model(x[-1:])
    assert logits.shape == (batch, 1000) and torch.isfinite(logits).all()
    torch.testing.assert_close(single, logits[-1:], atol=ATOL, rtol=0)


def test_agent_pvt_exports_with_a_dynamic_batch(loaded_tiny):
    """torch.export with a symbolic batch: no Python-level shape arithmetic may freeze it (spec section 11)."""
    model = loaded_tiny("agent_pvt_t")[0]
    batch = torch.export.Dim("batch", min=1, max=64)
    example = torch.randn(2, 3, 224, 224)
    exported = torch.export.export(model, (example,), dynamic_shapes=({0: batch},), strict=False).module()
    x = torch.randn(5, 3, 224, 224)
    with torch.no_grad():
        expected = model(x)
        torch.testing.assert_close(exported(x), expected, atol=ATOL, rtol=0)
        torch.testing.assert_close(exported(x[:1]), expected[:1], atol=ATOL, rtol=0)


@pytest.mark.slow
@pytest.mark.parametrize("name", [n for n in NAMES if not n.endswith("_t")])
def test_bigger_models_forward_at_default_size(name):
    model = create_model(name)
    with torch.no_grad():
        logits = model(torch.randn(1, 3, 224, 224))
    assert logits.shape == (1, 1000) and torch.isfinite(logits).all()


def _official_linear_bias_resize(bias: Tensor, squeeze_dim: int, permute: bool, size: int) -> Tensor:
    """The official agent loader: squeeze to (h, a, w) (transposed for ha/wa), 1-D linear resize, restore."""
    x = bias.squeeze(dim=0).squeeze(dim=squeeze_dim)
    x = x.permute(0, 2, 1) if permute else x
    x = F.interpolate(x, size=size, mode="linear")
    x = x.permute(0, 2, 1) if permute else x
    return x.unsqueeze(dim=0).unsqueeze(dim=squeeze_dim)


def _random_224_state(name: str) -> dict[str, Tensor]:
    with torch.device("meta"):
        shapes = create_model(name).state_dict()
    generator = torch.Generator().manual_seed(5)
    return {k: torch.randn(v.shape, generator=generator) * 0.05 for k, v in shapes.items()}


def test_agent_pvt_checkpoint_at_224_loads_into_256_model():
    state = _random_224_state("agent_pvt_t")
    model = create_model("agent_pvt_t", img_size=256)
    report = load_checkpoint(model, {"model": state})
    assert any("pos_embed" in note for note in report.adaptations)
    assert any("ah/aw/ha/wa" in note for note in report.adaptations)
    grid = state["pos_embed1"].reshape(1, 56, 56, 64).permute(0, 3, 1, 2)
    pos_embed = F.interpolate(grid, size=(64, 64), mode="bilinear").flatten(2).transpose(1, 2)
    torch.testing.assert_close(model.pos_embed1, pos_embed, atol=1e-6, rtol=0)
    attn = model.block1[0].attn
    for name, squeeze_dim, permute in (
        ("ah_bias", -1, False),
        ("aw_bias", -2, False),
        ("ha_bias", -2, True),
        ("wa_bias", -3, True),
    ):
        expected = _official_linear_bias_resize(state[f"block1.0.attn.{name}"], squeeze_dim, permute, 64)
        torch.testing.assert_close(getattr(attn, name), expected, atol=1e-6, rtol=0)
    with torch.no_grad():
        assert torch.isfinite(model(torch.randn(1, 3, 256, 256))).all()


def test_flatten_cswin_checkpoint_at_224_loads_into_256_model():
    state = _random_224_state("flatten_cswin_t")
    model = create_model("flatten_cswin_t", img_size=256)
    report = load_checkpoint(model, {"model": state})
    assert report.adaptations == [
        "interpolated 6 FLatten positional_encoding (bicubic) tensor(s) to the model's resolution"
    ]
    encoding = state["stage2.1.attns.0.positional_encoding"]
    grid = encoding.permute(0, 2, 1).reshape(1, 128, 28, 28)
    expected = F.interpolate(grid, size=(32, 32), mode="bicubic").reshape(1, 128, -1).permute(0, 2, 1)
    torch.testing.assert_close(model.stage2[1].attns[0].positional_encoding, expected, atol=1e-6, rtol=0)
    with torch.no_grad():
        assert torch.isfinite(model(torch.randn(1, 3, 256, 256))).all()


def test_impossible_sizes_and_inputs_raise_config_errors():
    with pytest.raises(ModelConfigError, match="multiple of 32"):
        create_model("agent_cswin_t", img_size=200)
    with pytest.raises(ModelConfigError, match="at least 32"):
        create_model("inline_pvt_t", img_size=16)
    with pytest.raises(ModelConfigError, match="perfect square"):
        create_model("agent_pvt_t", img_size=64, agent_num=(9, 16, 50, 49))
    with pytest.raises(ModelConfigError, match="split_size 5 must divide"):
        create_model("flatten_cswin_t", img_size=224, split_size=5)
    model = create_model("flatten_pvt_t", img_size=64)
    with pytest.raises(ModelConfigError, match=r"built for \(B, 3, 64, 64\) inputs, got \(B, 3x96x96\)"):
        model(torch.randn(1, 3, 96, 96))
