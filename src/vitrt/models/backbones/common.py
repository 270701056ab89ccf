"""Pieces shared by the backbones: weight init, input checks and checkpoint resolution adaptation.

Resolution-tied parameters (PVT `pos_embed{i}`, FLatten `positional_encoding`, Agent `ah/aw/ha/wa` biases) have
the shape of the stage grid the checkpoint was trained at. `adapt_resolution_tied` walks a model and lets every
module that defines `resize_checkpoint_entries(prefix, state_dict)` interpolate its own entries, the way the
official loaders do, so a 224-px checkpoint loads into a model built for another size.
"""

from __future__ import annotations

from collections import Counter

import torch
import torch.nn.functional as F
from timm.layers import trunc_normal_
from torch import Tensor, nn

from vitrt.errors import CheckpointError, ModelConfigError


def trunc_normal_init(tensor: Tensor, std: float = 0.02) -> None:
    """timm's truncated-normal init, skipped on the meta device (shape-only builds, e.g. parameter counting)."""
    if not tensor.is_meta:
        trunc_normal_(tensor, std=std)


def init_weights(module: nn.Module) -> None:
    """The official init of every backbone: truncated-normal Linear weights, zero biases, unit LayerNorms."""
    if isinstance(module, nn.Linear):
        trunc_normal_init(module.weight)
        if module.bias is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, nn.LayerNorm):
        nn.init.ones_(module.weight)
        nn.init.zeros_(module.bias)


def check_image_batch(x: Tensor, in_chans: int, img_size: int, model_name: str) -> None:
    """Reject inputs the model was not built for (its resolution-tied parameters fix the input size)."""
    expected = (in_chans, img_size, img_size)
    if x.ndim != 4 or tuple(x.shape[1:]) != expected:
        got = "x".join(str(int(s)) for s in x.shape[1:]) if x.ndim == 4 else f"a {x.ndim}-D tensor"
        raise ModelConfigError(
            f"{model_name} was built for (B, {in_chans}, {img_size}, {img_size}) inputs, got (B, {got}); "
            f"build it with img_size matching the input"
        )


def resize_token_grid(tokens: Tensor, size: tuple[int, int], mode: str) -> Tensor:
    """Resize (1, H*W, C) square-grid tokens to (1, size[0]*size[1], C) by 2-D interpolation."""
    side = int(round(tokens.shape[1] ** 0.5))
    if side * side != tokens.shape[1]:
        raise CheckpointError(f"cannot resize {tuple(tokens.shape)} tokens: {tokens.shape[1]} is not a square grid")
    grid = tokens.transpose(1, 2).reshape(1, -1, side, side).float()
    resized = F.interpolate(grid, size=size, mode=mode, align_corners=False)
    return resized.flatten(2).transpose(1, 2).to(tokens.dtype)


def adapt_resolution_tied(model: nn.Module, state_dict: dict[str, Tensor]) -> tuple[dict[str, Tensor], list[str]]:
    """Interpolate every resolution-tied entry of `state_dict` whose shape differs from `model`'s.

    Modules opt in by defining `resize_checkpoint_entries(prefix, state_dict) -> list[str]`, which rewrites the
    entries under `prefix` in place and returns a short label per resized tensor. Returns the adapted copy of the
    state dict and one note per label (with counts).
    """
    state = dict(state_dict)
    labels: Counter[str] = Counter()
    for name, module in model.named_modules():
        hook = getattr(module, "resize_checkpoint_entries", None)
        if callable(hook):
            labels.update(hook(f"{name}." if name else "", state))
    notes = [f"interpolated {count} {label} tensor(s) to the model's resolution" for label, count in labels.items()]
    return state, notes


def resize_entry(state: dict[str, Tensor], key: str, target: Tensor, resize) -> bool:
    """Replace state[key] by resize(state[key]) when its shape differs from `target`'s; True if it did."""
    value = state.get(key)
    if value is None or tuple(value.shape) == tuple(target.shape):
        return False
    with torch.no_grad():
        state[key] = resize(value)
    return True
