"""Loading official checkpoints into vitrt models.

The official training scripts save `{'model': state_dict, 'optimizer': ..., 'config': yacs CfgNode, ...}`;
EMA-trained runs add `state_dict_ema`. `torch.load` refuses the yacs object under `weights_only=True`, so the
safe path allow-lists that one class (read back as a plain mapping) and nothing else; `trust=True` opts in to
full unpickling for files the user trusts.
"""

from __future__ import annotations

import pickle
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from vitrt.errors import CheckpointError

if TYPE_CHECKING:
    import torch
    from torch import nn

# Where the weights live inside a checkpoint dict, in the order vitrt tries them.
STATE_DICT_KEYS = ("model", "state_dict_ema", "model_ema", "state_dict")
_MAX_LISTED = 8


@dataclass
class LoadReport:
    """What `load_checkpoint` did."""

    path: str
    source_key: str  # one of STATE_DICT_KEYS, or "<root>" for a raw state dict
    num_tensors: int
    adaptations: list[str] = field(default_factory=list)

    def __str__(self) -> str:
        extra = f"; {'; '.join(self.adaptations)}" if self.adaptations else ""
        return f"loaded {self.num_tensors} tensors from {self.path} [{self.source_key}]{extra}"


def _safe_globals() -> list[Any]:
    # The weights-only unpickler can only fill plain mapping types, so the config object is rebuilt as an
    # OrderedDict (its content is informational; vitrt never reads it). Works whether or not yacs is installed.
    return [(OrderedDict, "yacs.config.CfgNode")]


def read_checkpoint(path: str | Path, *, trust: bool = False) -> Any:
    """Read a checkpoint file (`.pth`/`.pt`/`.bin` via torch.load, or `.safetensors`) without a model."""
    import torch

    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint not found: {path}")
    if path.suffix == ".safetensors":
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        try:
            return load_file(str(path))
        except (SafetensorError, OSError, ValueError) as err:
            raise CheckpointError(f"{path} is not a readable safetensors file ({_one_line(err)})") from None
    try:
        if trust:
            return torch.load(path, map_location="cpu", weights_only=False)
        with torch.serialization.safe_globals(_safe_globals()):
            return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        full = " ".join(str(err).split())
        if "Unsupported global" in full:
            culprit = full.split("Unsupported global:")[-1].split()[1] if "GLOBAL" in full else ""
            what = f" ({culprit})" if culprit else ""
            raise CheckpointError(
                f"{path} holds Python objects outside the safe allow-list{what}; "
                "if you trust this file, pass --trust-checkpoint (trust=True)"
            ) from None
        raise CheckpointError(f"{path} is not a PyTorch checkpoint ({_one_line(err)})") from None
    except Exception as err:
        raise CheckpointError(f"{path} is truncated or not a PyTorch checkpoint ({_one_line(err)})") from None


def extract_state_dict(obj: Any) -> tuple[dict[str, torch.Tensor], str]:
    """Find the weights inside a loaded checkpoint object; returns them and the key they came from."""
    import torch

    if not isinstance(obj, Mapping):
        raise CheckpointError(f"checkpoint holds a {type(obj).__name__}, not a dict of tensors")
    for key in STATE_DICT_KEYS:
        inner = obj.get(key)
        if isinstance(inner, Mapping) and inner and all(isinstance(v, torch.Tensor) for v in inner.values()):
            return dict(inner), key
    if obj and all(isinstance(v, torch.Tensor) for v in obj.values()):
        return dict(obj), "<root>"
    keys = ", ".join(sorted(map(str, obj.keys()))[:_MAX_LISTED])
    raise CheckpointError(
        f"no state dict found in checkpoint (looked for {', '.join(STATE_DICT_KEYS)} or a raw dict of tensors; "
        f"top-level keys: {keys})"
    )


def load_checkpoint(
    model: nn.Module,
    checkpoint: str | Path | Mapping[str, Any],
    *,
    trust: bool = False,
    strict: bool = True,
) -> LoadReport:
    """Load an official checkpoint (file or already-loaded dict) into `model`.

    Models may define `adapt_checkpoint(state_dict) -> (state_dict, notes)` to interpolate resolution-tied
    parameters and drop buffers they recompute; it runs before the strict comparison.
    Raises `CheckpointError` listing missing, unexpected and mis-shaped keys.
    """
    label = "<dict>" if isinstance(checkpoint, Mapping) else str(checkpoint)
    obj = checkpoint if isinstance(checkpoint, Mapping) else read_checkpoint(checkpoint, trust=trust)
    state, source = extract_state_dict(obj)
    state = _strip_prefix(state, "module.")
    notes: list[str] = []
    adapt = getattr(model, "adapt_checkpoint", None)
    if callable(adapt):
        state, notes = adapt(state)
    expected = model.state_dict()
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    misshaped = [
        f"{k} {tuple(state[k].shape)} vs model {tuple(expected[k].shape)}"
        for k in expected
        if k in state and tuple(state[k].shape) != tuple(expected[k].shape)
    ]
    problems = []
    if missing and strict:
        problems.append(f"missing keys: {_listing(missing)}")
    if unexpected and strict:
        problems.append(f"unexpected keys: {_listing(unexpected)}")
    if misshaped:
        problems.append(f"mis-shaped keys: {_listing(misshaped)}")
    if problems:
        name = type(model).__name__
        raise CheckpointError(f"checkpoint {label} [{source}] does not fit {name}: " + "; ".join(problems))
    model.load_state_dict(state, strict=strict)
    return LoadReport(path=label, source_key=source, num_tensors=len(state), adaptations=list(notes))


def _strip_prefix(state: dict[str, Any], prefix: str) -> dict[str, Any]:
    if state and all(k.startswith(prefix) for k in state):
        return {k[len(prefix) :]: v for k, v in state.items()}
    return state


def _listing(items: list[str]) -> str:
    shown = ", ".join(items[:_MAX_LISTED])
    more = len(items) - _MAX_LISTED
    return f"{shown} (+{more} more)" if more > 0 else shown


def _one_line(err: BaseException) -> str:
    text = " ".join(str(err).split())
    return text[:200] + ("..." if len(text) > 200 else "")
