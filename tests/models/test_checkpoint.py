"""Checkpoint loading: the official file layouts, safe unpickling, clear errors."""

from __future__ import annotations

import pytest
import torch
from safetensors.torch import save_file
from torch import nn
from yacs.config import CfgNode

from vitrt.errors import CheckpointError
from vitrt.models.checkpoint import load_checkpoint


class Tiny(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.proj = nn.Linear(4, 3)
        self.norm = nn.LayerNorm(3)
        self.register_buffer("table", torch.arange(6.0).reshape(2, 3))


def _official_file(tmp_path, key, state):
    config = CfgNode({"MODEL": CfgNode({"TYPE": "tiny"})})
    payload = {key: state, "optimizer": {}, "epoch": 3, "max_accuracy": 81.0, "config": config}
    path = tmp_path / f"{key}.pth"
    torch.save(payload, path)
    return path


@pytest.mark.parametrize("key", ["model", "state_dict_ema", "model_ema", "state_dict"])
def test_official_layouts_load_strictly_and_safely(tmp_path, key):
    source = Tiny()
    nn.init.normal_(source.proj.weight)
    path = _official_file(tmp_path, key, source.state_dict())
    target = Tiny()
    report = load_checkpoint(target, path)
    assert report.source_key == key
    torch.testing.assert_close(target.proj.weight, source.proj.weight)


def test_model_key_wins_over_ema(tmp_path):
    a, b = Tiny(), Tiny()
    nn.init.constant_(a.proj.weight, 1.0)
    nn.init.constant_(b.proj.weight, 2.0)
    path = tmp_path / "both.pth"
    torch.save({"state_dict_ema": b.state_dict(), "model": a.state_dict()}, path)
    target = Tiny()
    assert load_checkpoint(target, path).source_key == "model"
    assert float(target.proj.weight[0, 0]) == 1.0


def test_raw_state_dict_and_safetensors(tmp_path):
    source = Tiny()
    raw = tmp_path / "raw.pt"
    torch.save(source.state_dict(), raw)
    assert load_checkpoint(Tiny(), raw).source_key == "<root>"
    st = tmp_path / "w.safetensors"
    save_file({k: v.contiguous() for k, v in source.state_dict().items()}, str(st))
    assert load_checkpoint(Tiny(), st).num_tensors == len(source.state_dict())


def test_mismatch_lists_missing_unexpected_and_misshaped(tmp_path):
    state = Tiny().state_dict()
    state.pop("norm.bias")
    state["extra.weight"] = torch.zeros(1)
    state["proj.weight"] = torch.zeros(5, 4)
    path = tmp_path / "bad.pth"
    torch.save({"model": state}, path)
    with pytest.raises(CheckpointError) as info:
        load_checkpoint(Tiny(), path)
    message = str(info.value)
    assert "missing keys: norm.bias" in message
    assert "unexpected keys: extra.weight" in message
    assert "proj.weight (5, 4) vs model (3, 4)" in message
    assert "\n" not in message


def test_truncated_and_foreign_files_give_one_line_errors(tmp_path):
    good = tmp_path / "good.pth"
    torch.save({"model": Tiny().state_dict()}, good)
    truncated = tmp_path / "truncated.pth"
    truncated.write_bytes(good.read_bytes()[:300])
    text = tmp_path / "notes.txt"
    text.write_text("hello")
    for path in (truncated, text, tmp_path / "missing.pth"):
        with pytest.raises(CheckpointError) as info:
            load_checkpoint(Tiny(), path)
        assert "\n" not in str(info.value)
    bad_st = tmp_path / "bad.safetensors"
    bad_st.write_bytes(b"\x00" * 16)
    with pytest.raises(CheckpointError, match="safetensors"):
        load_checkpoint(Tiny(), bad_st)


class _Arbitrary:
    pass


def test_unsafe_pickles_need_trust(tmp_path):
    path = tmp_path / "unsafe.pth"
    torch.save({"model": Tiny().state_dict(), "extra": _Arbitrary()}, path)
    with pytest.raises(CheckpointError, match="trust-checkpoint"):
        load_checkpoint(Tiny(), path)
    assert load_checkpoint(Tiny(), path, trust=True).source_key == "model"


def test_no_state_dict_inside(tmp_path):
    path = tmp_path / "meta.pth"
    torch.save({"epoch": 1, "model": {"not": "tensors"}}, path)
    with pytest.raises(CheckpointError, match="no state dict found"):
        load_checkpoint(Tiny(), path)
