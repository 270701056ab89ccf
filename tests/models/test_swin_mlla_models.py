"""The Swin-backbone zoo (FLatten, Agent, InLine) and MLLA: registry, structure, checkpoints, resolutions."""

from __future__ import annotations

import pytest
import timm
import torch
import torch.nn.functional as F
from yacs.config import CfgNode

from vitrt.cli.models import count_parameters_m
from vitrt.errors import ModelConfigError
from vitrt.models import create_model, get_spec, list_models, load_checkpoint

SIZES = ("t", "s", "b")
ZOO = [f"{family}_swin_{size}" for family in ("flatten", "agent", "inline") for size in SIZES]
ZOO += [f"mlla_{size}" for size in SIZES]
DEMOS = ["agent_digits", "flatten_digits", "mlla_digits"]
TINY = ["flatten_swin_t", "agent_swin_t", "inline_swin_t", "mlla_t"]
# Narrow versions of the real architectures (same stage layout, windows and agent counts) for cheap checks.
NARROW_SWIN = dict(embed_dim=16, num_heads=(1, 2, 4, 8), depths=(2, 2, 2, 2))
NARROW_MLLA = dict(embed_dim=16, num_heads=(1, 2, 4, 8), depths=(1, 1, 2, 1))


def test_every_name_is_registered_in_vitrt():
    names = set(list_models())
    for name in ZOO + DEMOS:
        assert name in names
        spec = get_spec(name)
        assert spec.backbone == ("mlla" if spec.family == "mlla" else "swin")
        assert spec.official_name
    assert set(list_models(with_weights=True)) >= set(DEMOS)


@pytest.mark.parametrize("name", ZOO)
def test_timm_builds_it_with_the_spec_parameter_count(name):
    import vitrt.models  # noqa: F401  (registers the timm entrypoints)

    with torch.device("meta"):  # structure only: no memory, no init cost
        model = timm.create_model(name)
    assert model.vitrt_metadata.model == name
    spec = get_spec(name)
    count = sum(p.numel() for p in model.parameters()) / 1e6
    assert abs(count - spec.expected_params_m) / spec.expected_params_m < 0.005, (count, spec.expected_params_m)


@pytest.mark.parametrize("name", DEMOS)
def test_timm_loads_the_demo_weights(name):
    trained = timm.create_model(name, pretrained=True)
    reference = create_model(name)
    for key, value in reference.state_dict().items():
        torch.testing.assert_close(trained.state_dict()[key], value, atol=0, rtol=0)


@pytest.mark.parametrize("name", DEMOS)
def test_demo_models_are_small(name):
    assert count_parameters_m(name) <= 1.0


# (name, key, shape) from the official state_dicts (spec: "State_dict key layout").
OFFICIAL_KEYS = [
    ("flatten_swin_t", "layers.0.blocks.0.attn.dwc.weight", (32, 1, 5, 5)),
    ("flatten_swin_t", "layers.0.blocks.0.attn.positional_encoding", (1, 3136, 96)),
    ("flatten_swin_t", "layers.0.blocks.0.attn.scale", (1, 1, 96)),
    ("flatten_swin_t", "layers.2.blocks.1.attn.relative_position_bias_table", (169, 12)),
    ("flatten_swin_t", "layers.2.blocks.1.attn.relative_position_index", (49, 49)),
    ("flatten_swin_t", "layers.2.blocks.1.attn_mask", (4, 49, 49)),
    ("flatten_swin_t", "layers.1.downsample.reduction.weight", (384, 768)),
    ("flatten_swin_b", "layers.1.blocks.1.attn.positional_encoding", (1, 784, 256)),
    ("agent_swin_t", "layers.0.blocks.0.attn.an_bias", (3, 9, 7, 7)),
    ("agent_swin_t", "layers.0.blocks.1.attn.ah_bias", (1, 3, 9, 56, 1)),
    ("agent_swin_t", "layers.1.blocks.0.attn.wa_bias", (1, 6, 1, 28, 16)),
    ("agent_swin_t", "layers.2.blocks.5.attn.ha_bias", (1, 12, 14, 1, 49)),
    ("agent_swin_t", "layers.3.blocks.1.attn.relative_position_bias_table", (169, 24)),
    ("agent_swin_b", "layers.2.blocks.1.attn.dwc.weight", (512, 1, 3, 3)),
    ("agent_swin_b", "layers.2.blocks.3.attn_mask", (4, 49, 49)),
    ("inline_swin_t", "layers.0.blocks.0.attn.residual.0.weight", (96, 32, 1)),
    ("inline_swin_t", "layers.0.blocks.0.attn.residual.2.weight", (864, 32, 1)),
    ("inline_swin_t", "layers.3.blocks.1.attn.relative_position_bias_table", (169, 24)),
    ("inline_swin_b", "layers.2.blocks.1.attn.residual.2.bias", (4608,)),
    ("mlla_t", "patch_embed.conv1.conv.weight", (32, 3, 3, 3)),
    ("mlla_t", "patch_embed.conv2.1.norm.num_batches_tracked", ()),
    ("mlla_t", "patch_embed.conv3.0.conv.weight", (256, 32, 3, 3)),
    ("mlla_t", "layers.0.blocks.1.attn.rope.rotations", (56, 56, 32, 2)),
    ("mlla_t", "layers.0.blocks.0.attn.qk.weight", (128, 64)),
    ("mlla_t", "layers.0.downsample.conv.1.conv.weight", (512, 1, 3, 3)),
    ("mlla_t", "layers.2.downsample.conv.2.norm.running_var", (512,)),
    ("mlla_b", "layers.3.blocks.5.cpe2.weight", (768, 1, 3, 3)),
]
# Keys that must NOT be there (global blocks have no mask; precomputed eval buffers are not persistent).
ABSENT_KEYS = [
    ("flatten_swin_t", "layers.0.blocks.1.attn_mask"),
    ("flatten_swin_t", "layers.3.blocks.1.attn_mask"),
    ("agent_swin_t", "layers.0.blocks.1.attn_mask"),
    ("agent_swin_t", "layers.0.blocks.0.attn.pool_matrix"),
    ("agent_swin_t", "layers.0.blocks.0.attn.agent_bias"),
]


def _meta_state(name, cache={}):  # noqa: B006  (memo across parametrised cases)
    if name not in cache:
        spec = get_spec(name)
        with torch.device("meta"):
            model = spec.builder(img_size=spec.default_img_size, num_classes=1000)
        cache[name] = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    return cache[name]


@pytest.mark.parametrize(("name", "key", "shape"), OFFICIAL_KEYS)
def test_official_key_layout(name, key, shape):
    assert _meta_state(name).get(key) == shape


@pytest.mark.parametrize(("name", "key"), ABSENT_KEYS)
def test_keys_absent_like_official(name, key):
    assert key not in _meta_state(name)


def _official_file(tmp_path, model, with_ema=False):
    state = {k: v.clone() for k, v in model.state_dict().items()}
    payload = {
        "model": state,
        "optimizer": {"state": {}, "param_groups": []},
        "lr_scheduler": {},
        "max_accuracy": 82.1,
        "epoch": 299,
        "config": CfgNode({"MODEL": CfgNode({"TYPE": "official"}), "DATA": CfgNode({"IMG_SIZE": 224})}),
    }
    if with_ema:
        payload["state_dict_ema"] = {k: v.clone() for k, v in state.items()}
        payload["max_accuracy_e"] = 83.0
    path = tmp_path / "ckpt_best.pth"
    torch.save(payload, path)
    return path


@pytest.mark.parametrize("name", TINY)
def test_tiny_forward_and_strict_official_layout_load(tmp_path, name):
    """Default-size forward; then an official-layout checkpoint (yacs config inside) restores every tensor."""
    torch.manual_seed(0)
    model = create_model(name)
    with torch.no_grad():
        logits = model(torch.randn(1, 3, 224, 224))
    assert logits.shape == (1, 1000) and torch.isfinite(logits).all()
    saved = {k: v.clone() for k, v in model.state_dict().items()}
    path = _official_file(tmp_path, model, with_ema=name.startswith("mlla"))
    with torch.no_grad():
        for p in model.parameters():
            p.normal_(0.0, 0.02)
    report = load_checkpoint(model, path)
    assert report.source_key == "model" and not report.adaptations
    restored = model.state_dict()
    assert restored.keys() == saved.keys()
    for key, value in saved.items():
        torch.testing.assert_close(restored[key], value, atol=0, rtol=0)


def test_mlla_loads_the_ema_weights_when_only_those_exist(tmp_path):
    model = create_model("mlla_t", **NARROW_MLLA)
    path = tmp_path / "ema.pth"
    torch.save({"state_dict_ema": model.state_dict(), "config": CfgNode({"MODEL": CfgNode({"TYPE": "mlla"})})}, path)
    assert load_checkpoint(create_model("mlla_t", **NARROW_MLLA), path).source_key == "state_dict_ema"


@pytest.mark.slow
@pytest.mark.parametrize("name", [n for n in ZOO if n not in TINY])
def test_large_forward(name):
    model = create_model(name)
    with torch.no_grad():
        logits = model(torch.randn(1, 3, 224, 224))
    assert logits.shape == (1, 1000) and torch.isfinite(logits).all()


def _official_bicubic_table(table, side_out):
    length, heads = table.shape
    side = int(length**0.5)
    grid = table.permute(1, 0).view(1, heads, side, side)
    return F.interpolate(grid, size=(side_out, side_out), mode="bicubic").view(heads, -1).permute(1, 0)


def _official_linear_agent_bias(bias, size, squeeze_dim, permute):
    b = bias.squeeze(0).squeeze(squeeze_dim)
    if permute:
        b = b.permute(0, 2, 1)
    b = F.interpolate(b, size=size, mode="linear")
    if permute:
        b = b.permute(0, 2, 1)
    return b.unsqueeze(0).unsqueeze(squeeze_dim)


def _adapt_and_load(name, size, target_kwargs=None, **kwargs):
    torch.manual_seed(0)
    source = create_model(name, **kwargs)
    state = source.state_dict()
    target = create_model(name, img_size=size, **kwargs, **(target_kwargs or {}))
    report = load_checkpoint(target, {"model": state})
    with torch.no_grad():
        logits = target(torch.randn(1, 3, size, size))
    assert logits.shape == (1, 1000) and torch.isfinite(logits).all()
    return state, target, report


def test_agent_swin_checkpoint_from_224_loads_at_288():
    state, target, report = _adapt_and_load("agent_swin_t", 288, **NARROW_SWIN)
    loaded = target.state_dict()
    # Official 288 config: window 72 (whole map), softmax window max(7, 72 // 8) = 9.
    assert loaded["layers.0.blocks.0.attn.ah_bias"].shape == (1, 1, 9, 72, 1)
    for key, squeeze_dim, permute in (("ah_bias", -1, False), ("aw_bias", -2, False), ("ha_bias", -2, True)):
        key = f"layers.0.blocks.1.attn.{key}"
        expected = _official_linear_agent_bias(state[key], 72, squeeze_dim, permute)
        torch.testing.assert_close(loaded[key], expected, atol=1e-6, rtol=0)
    key = "layers.2.blocks.0.attn.wa_bias"
    torch.testing.assert_close(loaded[key], _official_linear_agent_bias(state[key], 18, -3, True), atol=1e-6, rtol=0)
    key = "layers.3.blocks.0.attn.relative_position_bias_table"
    torch.testing.assert_close(loaded[key], _official_bicubic_table(state[key], 17), atol=1e-6, rtol=0)
    assert loaded["layers.3.blocks.0.attn.relative_position_index"].shape == (81, 81)
    assert any("ah_bias 56 -> 72" in note for note in report.adaptations)
    # Eval biases follow the interpolated parameters.
    attn = target.layers[0].blocks[0].attn
    torch.testing.assert_close(attn.agent_bias, attn.compute_position_biases()[0])


def test_flatten_swin_checkpoint_from_224_loads_at_256():
    # 256 px needs a softmax window that tiles the 16x16 stage-3 map (the official rule would give 12).
    with pytest.raises(ModelConfigError, match="softmax_window_size"):
        create_model("flatten_swin_t", img_size=256, **NARROW_SWIN)
    state, target, report = _adapt_and_load("flatten_swin_t", 256, {"softmax_window_size": 8}, **NARROW_SWIN)
    loaded = target.state_dict()
    key = "layers.1.blocks.0.attn.positional_encoding"
    grid = state[key].permute(0, 2, 1).reshape(1, 32, 28, 28)
    expected = F.interpolate(grid, size=(32, 32), mode="bicubic").reshape(1, 32, -1).permute(0, 2, 1)
    torch.testing.assert_close(loaded[key], expected, atol=1e-6, rtol=0)
    key = "layers.2.blocks.1.attn.relative_position_bias_table"
    torch.testing.assert_close(loaded[key], _official_bicubic_table(state[key], 15), atol=1e-6, rtol=0)
    assert loaded["layers.2.blocks.1.attn_mask"].shape == (4, 64, 64)
    assert any("attn_mask" in note for note in report.adaptations)


def test_inline_swin_checkpoint_from_224_loads_at_288():
    state, target, _ = _adapt_and_load("inline_swin_t", 288, **NARROW_SWIN)
    key = "layers.3.blocks.1.attn.relative_position_bias_table"
    torch.testing.assert_close(target.state_dict()[key], _official_bicubic_table(state[key], 17), atol=1e-6, rtol=0)


def test_mlla_checkpoint_from_224_loads_at_256():
    _, target, report = _adapt_and_load("mlla_t", 256, **NARROW_MLLA)
    rope = target.layers[0].blocks[0].attn.rope
    assert rope.rotations.shape == (64, 64, 8, 2)
    from vitrt.models.mlla import rope_rotations

    torch.testing.assert_close(rope.rotations, rope_rotations((64, 64), 16), atol=0, rtol=0)
    assert any("rope.rotations" in note for note in report.adaptations)


@pytest.mark.parametrize(
    ("name", "size", "match"),
    [
        ("agent_swin_t", 200, "multiple of 32"),
        ("mlla_t", 240, "multiple of 32"),
        ("inline_swin_s", 192, "softmax_window_size"),
        ("agent_swin_t", 224, "not a square number"),
    ],
)
def test_impossible_configurations_raise_model_config_error(name, size, match):
    kwargs = {"agent_num": (9, 16, 50, 49)} if match == "not a square number" else {}
    with pytest.raises(ModelConfigError, match=match), torch.device("meta"):
        get_spec(name).builder(img_size=size, num_classes=10, **kwargs)


@pytest.mark.parametrize("name", ["agent_digits", "mlla_digits"])
def test_wrong_input_size_is_a_clear_error(name):
    model = create_model(name, pretrained=False)
    with pytest.raises(ModelConfigError, match="built for 32x32"):
        model(torch.randn(1, 3, 64, 64))
