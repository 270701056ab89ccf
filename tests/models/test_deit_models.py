"""The DeiT-backbone zoo models: registry, sizes, forward, official checkpoint layouts, resolution changes."""

from __future__ import annotations

import pytest
import timm
import torch
import torch.nn.functional as F
from yacs.config import CfgNode

from vitrt.cli.models import count_parameters_m
from vitrt.errors import ModelConfigError
from vitrt.models import create_model, get_spec, list_models, load_checkpoint
from vitrt.models.agent import AgentDeiT, DeiTAgentAttention

FAMILIES = {"ca": "ca_deit", "agent": "agent_deit", "inline": "inline_deit"}
ZOO = [f"{prefix}_{size}" for prefix in FAMILIES.values() for size in "tsb"]
DEMOS = ["ca_digits", "inline_digits"]


def _perturbed(name: str, img_size: int | None = None, seed: int = 0) -> torch.nn.Module:
    """A randomly initialised model whose biases, norms and agent biases are far from their init values."""
    torch.manual_seed(seed)
    model = create_model(name, img_size=img_size)
    with torch.no_grad():
        for param_name, param in model.named_parameters():
            param.add_(torch.randn_like(param) * (0.3 if param_name.endswith("_bias") else 0.02))
    return model.train().eval()  # eval() refreshes the agent bias buffers


def _official_checkpoint(path, model: torch.nn.Module, name: str):
    """The layout the official training scripts save: weights under 'model' next to a yacs config."""
    config = CfgNode({"MODEL": CfgNode({"TYPE": get_spec(name).official_name}), "DATA": CfgNode({"IMG_SIZE": 224})})
    payload = {
        "model": model.state_dict(),
        "optimizer": {"state": {}, "param_groups": []},
        "lr_scheduler": {"last_epoch": 300},
        "max_accuracy": 75.0,
        "epoch": 299,
        "config": config,
    }
    torch.save(payload, path)
    return path


def test_names_are_registered_with_their_family_and_in_timm():
    names = set(list_models())
    for name in ZOO + DEMOS:
        assert name in names
        spec = get_spec(name)
        assert spec.backbone == "deit"
        assert FAMILIES[spec.family] == name.rsplit("_", 1)[0] or name in DEMOS
        assert timm.is_model(name)
    for name in ["ca_deit_t", "agent_deit_t", "inline_deit_t", *DEMOS]:
        model = timm.create_model(name)
        assert model.num_classes == get_spec(name).num_classes


@pytest.mark.parametrize("name", ZOO)
def test_parameter_count_matches_spec(name):
    expected = get_spec(name).expected_params_m
    assert abs(count_parameters_m(name) / expected - 1) < 0.005


@pytest.mark.parametrize("name", DEMOS)
def test_demo_models_are_small(name):
    assert count_parameters_m(name) <= 1.0


def _forward_check(name: str) -> None:
    model = create_model(name)
    size = get_spec(name).default_img_size
    with torch.no_grad():
        logits = model(torch.randn(2, 3, size, size))
    assert logits.shape == (2, 1000)
    assert torch.isfinite(logits).all()


@pytest.mark.parametrize("name", ["ca_deit_t", "agent_deit_t", "inline_deit_t"])
def test_forward_at_default_size(name):
    _forward_check(name)


@pytest.mark.slow
@pytest.mark.parametrize("name", [n for n in ZOO if not n.endswith("_t")])
def test_forward_at_default_size_large(name):
    _forward_check(name)


def test_img_size_must_be_a_multiple_of_the_patch_size():
    with pytest.raises(ModelConfigError, match="not a multiple of the patch size 16"):
        create_model("agent_deit_t", img_size=230)
    model = create_model("ca_deit_t", img_size=160)
    with pytest.raises(ModelConfigError, match="built for 160x160 inputs, got 224x224"):
        model(torch.randn(1, 3, 224, 224))


@pytest.mark.parametrize("name", ["ca_deit_t", "agent_deit_t", "inline_deit_t"])
def test_official_checkpoint_layout_loads_strictly(tmp_path, name):
    source = _perturbed(name)
    path = _official_checkpoint(tmp_path / f"{name}.pth", source, name)
    model = create_model(name, checkpoint=path)  # strict; the yacs config goes through the safe unpickler
    x = torch.randn(2, 3, 224, 224)
    with torch.no_grad():
        torch.testing.assert_close(model(x), source(x), atol=1e-5, rtol=0)


def _official_window_resize(bias: torch.Tensor, name: str, window: int) -> torch.Tensor:
    """The official `load_pretrained` steps for ah/aw/ha/wa: squeeze to (h, a, w), linear resize, restore."""
    squeeze_dim, permute = {
        "ah_bias": (-1, False),
        "aw_bias": (-2, False),
        "ha_bias": (-2, True),
        "wa_bias": (-3, True),
    }[name]
    rows = bias.squeeze(0).squeeze(squeeze_dim)
    rows = rows.permute(0, 2, 1) if permute else rows
    rows = F.interpolate(rows, size=window, mode="linear")
    rows = rows.permute(0, 2, 1) if permute else rows
    return rows.unsqueeze(0).unsqueeze(squeeze_dim)


def _official_pos_embed_resize(pos_embed: torch.Tensor, side: int) -> torch.Tensor:
    old = int((pos_embed.shape[1] - 1) ** 0.5)
    grid = pos_embed[:, 1:].reshape(1, old, old, -1).permute(0, 3, 1, 2)
    grid = F.interpolate(grid, size=(side, side), mode="bicubic").permute(0, 2, 3, 1).flatten(1, 2)
    return torch.cat([pos_embed[:, :1], grid], dim=1)


@pytest.mark.parametrize("name", ["agent_deit_t", "inline_deit_t", "ca_deit_t"])
def test_checkpoint_at_224_loads_into_a_288_model(tmp_path, name):
    source = _perturbed(name)
    state = {k: v.clone() for k, v in source.state_dict().items()}
    path = _official_checkpoint(tmp_path / "ckpt.pth", source, name)
    model = create_model(name, img_size=288)
    report = load_checkpoint(model, path)
    loaded = model.state_dict()
    if name.startswith("ca"):  # no resolution-sized parameters
        assert report.adaptations == []
        assert all(torch.equal(loaded[k], v) for k, v in state.items())
    else:
        assert any("pos_embed resized 14x14 -> 18x18" in note for note in report.adaptations)
        torch.testing.assert_close(loaded["pos_embed"], _official_pos_embed_resize(state["pos_embed"], 18))
    if name.startswith("agent"):
        assert any("48 agent window biases" in note for note in report.adaptations)
        for index in (0, 11):
            for bias in ("ah_bias", "aw_bias", "ha_bias", "wa_bias"):
                key = f"blocks.{index}.attn.{bias}"
                torch.testing.assert_close(loaded[key], _official_window_resize(state[key], bias, 18))
            for bias in ("an_bias", "na_bias", "ac_bias", "ca_bias"):  # fixed-size: untouched
                key = f"blocks.{index}.attn.{bias}"
                assert torch.equal(loaded[key], state[key])
    # Sane outputs: finite, and the same image seen at 288 is classified much like at 224.
    image = torch.randn(4, 3, 224, 224)
    with torch.no_grad():
        at_224 = source(image)
        at_288 = model(F.interpolate(image, size=(288, 288), mode="bilinear", align_corners=False))
    assert torch.isfinite(at_288).all()
    assert F.cosine_similarity(at_224, at_288, dim=1).min() > 0.5


def _small_agent_model() -> AgentDeiT:
    torch.manual_seed(0)
    return AgentDeiT(img_size=32, patch_size=8, embed_dim=24, depth=2, num_heads=3, agent_num=4, num_classes=3)


def test_agent_bias_buffers_are_derived_not_saved():
    model = _small_agent_model()
    keys = model.state_dict().keys()
    assert not any(k.endswith(("agent_bias", "query_bias", "pool_matrix")) for k in keys)
    assert "blocks.0.attn.an_bias" in keys


def test_agent_bias_buffers_refresh_on_eval_and_after_loading():
    model = _small_agent_model().eval()
    attn: DeiTAgentAttention = model.blocks[0].attn
    before = attn.agent_bias.clone()
    model.train()
    with torch.no_grad():
        attn.an_bias.add_(1.0)
    assert torch.equal(attn.agent_bias, before)  # train mode reads the parameters, not the buffers
    model.eval()
    torch.testing.assert_close(attn.agent_bias[..., 1:], before[..., 1:] + 1.0)  # patch-key columns moved
    torch.testing.assert_close(attn.agent_bias[..., 0], before[..., 0])  # the cls column is ac_bias

    fresh = _small_agent_model().eval()
    fresh.load_state_dict(model.state_dict())
    torch.testing.assert_close(fresh.blocks[0].attn.query_bias, attn.query_bias)
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(fresh(x), model(x))


def test_agent_biases_train_through_the_parameters():
    model = _small_agent_model().train()
    model(torch.randn(2, 3, 32, 32)).sum().backward()
    attn = model.blocks[0].attn
    for bias in attn.bias_parameters():
        assert bias.grad is not None and bias.grad.abs().sum() > 0
