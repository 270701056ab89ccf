"""Pieces shared by the backbones: weight init, input checks and checkpoint resolution adaptation.

Resolution-tied parameters (DeiT/PVT position embeddings, FLatten `positional_encoding`, Agent `ah/aw/ha/wa`
biases, Swin relative position tables) have the shape of the grid or window the checkpoint was trained at, and some
recomputable buffers (`relative_position_index`, `attn_mask`, RoPE `rotations`) are saved too. `adapt_state_dict`
walks a model and lets every module that defines `adapt_checkpoint_entries(prefix, state_dict, log)` interpolate or
replace its own entries, the way the official loaders do, so a 224-px checkpoint loads into a model built for
another size.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping

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


class AdaptLog:
    """What `adapt_state_dict` changed, one note per distinct message.

    A message may contain `{count}`, replaced by how many times it was added; otherwise a count above one is
    appended as `(xN)`.
    """

    def __init__(self) -> None:
        self._counts: Counter[str] = Counter()

    def add(self, message: str) -> None:
        self._counts[message] += 1

    def notes(self) -> list[str]:
        return [self._note(message, count) for message, count in self._counts.items()]

    @staticmethod
    def _note(message: str, count: int) -> str:
        if "{count}" in message:
            return message.format(count=count)
        return f"{message} (x{count})" if count > 1 else message


def interpolated_note(label: str) -> str:
    """The AdaptLog message of a resized resolution-tied tensor, counted per `label`."""
    return f"interpolated {{count}} {label} tensor(s) to the model's resolution"


def adapt_state_dict(model: nn.Module, state_dict: Mapping[str, Tensor]) -> tuple[dict[str, Tensor], list[str]]:
    """Fit a checkpoint saved at another resolution (or window) to `model`: the `adapt_checkpoint` of every backbone.

    Runs each module's `adapt_checkpoint_entries(prefix, state, log)` (the root's with prefix "") over a copy of
    `state_dict`; returns the adapted copy and the log's notes.
    """
    state = dict(state_dict)
    log = AdaptLog()
    for name, module in model.named_modules():
        hook = getattr(module, "adapt_checkpoint_entries", None)
        if callable(hook):
            hook(f"{name}." if name else "", state, log)
    return state, log.notes()


def replace_buffer_entry(state: dict[str, Tensor], key: str, own: Tensor | None, log: AdaptLog, what: str) -> None:
    """Drop a recomputable buffer from `state` and put the model's own value in its place."""
    theirs = state.pop(key, None)
    if own is None:
        if theirs is not None:
            log.add(f"dropped {what} (not used at this resolution)")
        return
    state[key] = own.detach().clone()
    if theirs is None:
        log.add(f"added {what}")
    elif tuple(theirs.shape) != tuple(own.shape):
        log.add(f"recomputed {what} {tuple(theirs.shape)} -> {tuple(own.shape)}")
