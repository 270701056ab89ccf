"""Loading official checkpoints into vitrt models.

The official training scripts save `{'model': state_dict, 'optimizer': ..., 'config': yacs CfgNode, ...}`;
EMA-trained runs add `state_dict_ema`. `torch.load` refuses the yacs object under `weights_only=True`, so the
safe path allow-lists that one class (read back as a plain mapping) and nothing else; `trust=True` opts in to
full unpickling for files the user trusts.
"""

from __future__ import annotations

import io
import pickle
import pickletools
import warnings
import zipfile
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
        with warnings.catch_warnings():
            # torch warns about pickle protocols its safe loader was not written for; the error below says enough.
            warnings.simplefilter("ignore", UserWarning)
            if trust:
                return torch.load(path, map_location="cpu", weights_only=False)
            with torch.serialization.safe_globals(_safe_globals()):
                return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        culprits = disallowed_globals(path)
        if culprits:
            more = f" (and {len(culprits) - 1} more)" if len(culprits) > 1 else ""
            raise CheckpointError(
                f"{path} is a checkpoint holding a disallowed global {culprits[0]}{more}: loading it could run code, "
                "so it was not loaded; if you trust this file, pass --trust-checkpoint (trust=True)"
            ) from None
        raise CheckpointError(f"{path} is not a PyTorch checkpoint ({_torch_reason(err)})") from None
    except Exception as err:
        raise CheckpointError(f"{path} is truncated or not a PyTorch checkpoint ({_one_line(err)})") from None


def disallowed_globals(path: str | Path) -> list[str]:
    """`module.name` of every global a checkpoint's pickle imports that the safe loader refuses, without running it.

    Reads the pickle opcodes (`pickletools`), never executes them: for a `torch.save` zip the `data.pkl` member,
    for a legacy or plain pickle file the pickles at the start of the file.
    """
    path = Path(path)
    streams: list[bytes] = []
    if zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as archive:
            streams = [archive.read(n) for n in archive.namelist() if n.endswith("data.pkl")]
    else:
        streams = [path.read_bytes()]
    found: list[str] = []
    for data in streams:
        for name in _pickle_globals(data):
            if not _allowed_global(name) and name not in found:
                found.append(name)
    return found


def _pickle_globals(data: bytes) -> list[str]:
    """Globals referenced by the pickles at the start of `data` (a legacy torch file holds several in a row)."""
    stream = io.BytesIO(data)
    names: list[str] = []
    for _ in range(8):
        strings: list[str] = []
        try:
            for opcode, arg, _pos in pickletools.genops(stream):
                if opcode.name in ("GLOBAL", "INST") and isinstance(arg, str):
                    names.append(arg.replace(" ", "."))
                elif opcode.name == "STACK_GLOBAL" and len(strings) >= 2:
                    names.append(f"{strings[-2]}.{strings[-1]}")
                elif isinstance(arg, str):
                    strings.append(arg)
                if opcode.name == "STOP":
                    break
            else:
                break
        except (ValueError, EOFError, pickle.UnpicklingError):
            break
        if stream.tell() >= len(data):
            break
    return names


def _allowed_global(name: str) -> bool:
    module = name.rsplit(".", 1)[0]
    if module == "torch" or module.startswith(("torch.", "torch._")):
        return True
    allowed = {f"{cls.__module__}.{cls.__qualname__}" for cls in (OrderedDict,)} | {"yacs.config.CfgNode"}
    return name in allowed or name in ("builtins.set", "builtins.frozenset", "_codecs.encode", "builtins.bytearray")


def _torch_reason(err: BaseException) -> str:
    """torch's unpickling error without its advice to turn the safety off."""
    lines = [line.strip() for line in str(err).splitlines() if line.strip()]
    useful = [
        line
        for line in lines
        if not line.startswith(("Weights only load failed", "Check the documentation", "Please file an issue"))
        and "weights_only" not in line
    ]
    text = " ".join(" ".join(useful).replace("WeightsUnpickler error:", "").split())
    return text[:200] or "unreadable pickle"


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
