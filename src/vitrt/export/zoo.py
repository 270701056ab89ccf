"""`export_zoo_model`: export a zoo model by name or from a checkpoint file.

What MODEL_OR_CHECKPOINT may be:

* a zoo name (`vitrt models`): `*_digits` demo models export their bundled trained weights; other names export
  random weights (for benchmarking) with a warning unless `checkpoint=` is given;
* a checkpoint file (`.pth`, `.pt`, `.bin`, `.safetensors`). The model is then `model_name=` (CLI `--model`) or,
  failing that, read from the file: a `vitrt_model` entry (or `vitrt.model` in safetensors metadata), the official
  training config stored in the checkpoint (`config.MODEL.NAME`, e.g. `agent_swin_small_288` -> `agent_swin_s` at
  288 px; `config.DATA.IMG_SIZE` sets the input size), or a `<file>.json` sidecar with a `model` key (the format
  of vitrt's own demo weights). If none of these names a registered model, the export stops and asks for --model.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from vitrt.errors import CheckpointError, ModelConfigError, ModelNotFoundError, VitrtError
from vitrt.files import CHECKPOINT_SUFFIXES

if TYPE_CHECKING:
    from torch import nn

    from vitrt.export.exporter import ExportReport
    from vitrt.metadata import ModelMetadata

MAX_IMG_SIZE = 4096
_SIZE_WORDS = {"tiny": "t", "small": "s", "medium": "m", "large": "l", "base": "b"}
_RESOLUTIONS = ("224", "256", "288", "384", "448", "512")


def export_zoo_model(
    name_or_checkpoint: str | os.PathLike[str],
    path: str | os.PathLike[str],
    *,
    checkpoint: str | os.PathLike[str] | None = None,
    img_size: int | None = None,
    model_name: str | None = None,
    trust_checkpoint: bool = False,
    **export_kwargs: Any,
) -> ExportReport:
    """Build a zoo model (see the module docstring for what `name_or_checkpoint` may be) and `export_model` it.

    Extra keyword arguments go to `vitrt.export.export_model` (flavour, opset, batch, fp16_safe, ...). Warnings
    about the weights (random init) are added to the report's `warnings`.
    """
    from vitrt.export.exporter import export_model

    model, notes = resolve_model(
        name_or_checkpoint,
        checkpoint=checkpoint,
        img_size=img_size,
        model_name=model_name,
        trust_checkpoint=trust_checkpoint,
    )
    report = export_model(model, path, **export_kwargs)
    report.warnings[:0] = notes
    return report


def resolve_model(
    name_or_checkpoint: str | os.PathLike[str],
    *,
    checkpoint: str | os.PathLike[str] | None = None,
    img_size: int | None = None,
    model_name: str | None = None,
    trust_checkpoint: bool = False,
) -> tuple[nn.Module, list[str]]:
    """The model `export_zoo_model` would export, in eval mode with `vitrt_metadata`, and notes for the user."""
    from vitrt.models import get_spec, list_models

    if img_size is not None and (isinstance(img_size, bool) or not isinstance(img_size, int)):
        raise ModelConfigError(f"img_size must be an integer, got {img_size!r}")
    if img_size is not None and not 1 <= img_size <= MAX_IMG_SIZE:
        raise ModelConfigError(f"img_size {img_size} is out of range (1..{MAX_IMG_SIZE})")
    target = str(name_or_checkpoint)
    notes: list[str] = []
    state: Mapping[str, Any] | None = None
    checkpoint_path: Path | None = None
    if target in list_models():
        name = target
        if model_name is not None and model_name != name:
            raise ModelConfigError(f"--model {model_name} contradicts the model name {name}")
        if checkpoint is not None:
            checkpoint_path = Path(checkpoint)
    elif _looks_like_file(target):
        if checkpoint is not None:
            raise CheckpointError("give the checkpoint either as MODEL_OR_CHECKPOINT or with --checkpoint, not both")
        checkpoint_path = Path(target)
        if not checkpoint_path.is_file():
            raise CheckpointError(f"checkpoint not found: {checkpoint_path}")
    else:
        raise _unknown_model(target)

    config_size = None
    if checkpoint_path is not None:
        state = _read(checkpoint_path, trust_checkpoint)
        if target not in list_models():
            name, config_size = _model_from_checkpoint(checkpoint_path, state, model_name)
    size = img_size if img_size is not None else config_size
    model = _build(name, size, state, checkpoint_path)
    spec = get_spec(name)
    if checkpoint_path is None and not spec.has_weights:
        notes.append(
            f"{name} has no bundled weights and no checkpoint was given: exporting RANDOM weights "
            "(fine for benchmarking, useless for predictions)"
        )
    if checkpoint_path is not None:
        from vitrt.files import sha256_file

        metadata: ModelMetadata = model.vitrt_metadata  # type: ignore[assignment]
        metadata.checkpoint_sha256 = sha256_file(checkpoint_path)
        metadata.weights, metadata.weights_seed = "checkpoint", None
    return model, notes


def _unknown_model(name: str) -> ModelNotFoundError:
    from vitrt.models import get_spec

    try:
        get_spec(name)
    except ModelNotFoundError as err:  # carries the "did you mean" suggestions
        return err
    return ModelNotFoundError(f"unknown model {name!r}")


def _looks_like_file(target: str) -> bool:
    return os.sep in target or target.lower().endswith(CHECKPOINT_SUFFIXES) or Path(target).is_file()


def _read(path: Path, trust: bool) -> Any:
    from vitrt.models.checkpoint import read_checkpoint

    obj = read_checkpoint(path, trust=trust)
    if path.suffix == ".safetensors":
        return {"state_dict": obj, "__safetensors_metadata__": _safetensors_metadata(path)}
    return obj


def _safetensors_metadata(path: Path) -> dict[str, str]:
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as handle:
        return dict(handle.metadata() or {})


def _model_from_checkpoint(path: Path, state: Mapping[str, Any], model_name: str | None) -> tuple[str, int | None]:
    """(registered model name, input size from the training config or None)."""
    from vitrt.models import list_models

    known = set(list_models())
    if model_name is not None:
        if model_name not in known:
            raise _unknown_model(model_name)
        return model_name, _config_img_size(state)
    candidates: list[tuple[str, int | None]] = []
    explicit = state.get("vitrt_model") if isinstance(state, Mapping) else None
    meta = state.get("__safetensors_metadata__") if isinstance(state, Mapping) else None
    if isinstance(explicit, str):
        candidates.append((explicit, None))
    if isinstance(meta, Mapping) and isinstance(meta.get("vitrt.model"), str):
        candidates.append((_json_or_text(meta["vitrt.model"]), None))
    official = _config_model_name(state)
    if official is not None:
        name, size = normalise_official_name(official)
        candidates.append((name, size or _config_img_size(state)))
    sidecar = path.with_suffix(".json")
    if sidecar.is_file():
        try:
            record = json.loads(sidecar.read_text())
        except (OSError, ValueError):
            record = {}
        if isinstance(record, dict) and isinstance(record.get("model"), str):
            candidates.append((record["model"], None))
    for name, size in candidates:
        if name in known:
            return name, size
    seen = ", ".join(sorted({name for name, _ in candidates})) or "none"
    raise CheckpointError(
        f"cannot tell which model {path} holds (names found: {seen}); pass --model NAME (`vitrt models` lists them)"
    )


def normalise_official_name(official: str) -> tuple[str, int | None]:
    """Official `MODEL.NAME` -> (vitrt name, resolution or None), e.g. `flatten_swin_tiny_patch4_224` ->
    (`flatten_swin_t`, 224), `FLatten_CSWin_base_384` -> (`flatten_cswin_b`, 384)."""
    parts = [p for p in official.lower().replace("-", "_").split("_") if p and p not in ("patch4", "finetune")]
    size = None
    kept = []
    for part in parts:
        if part in _RESOLUTIONS:
            size = int(part)
        else:
            kept.append(_SIZE_WORDS.get(part, part))
    name = "_".join(kept)
    name = re.sub(r"_+", "_", name)
    return name, size


def _config_model_name(state: Any) -> str | None:
    config = state.get("config") if isinstance(state, Mapping) else None
    model_cfg = config.get("MODEL") if isinstance(config, Mapping) else None
    name = model_cfg.get("NAME") if isinstance(model_cfg, Mapping) else None
    return name if isinstance(name, str) else None


def _config_img_size(state: Any) -> int | None:
    config = state.get("config") if isinstance(state, Mapping) else None
    data_cfg = config.get("DATA") if isinstance(config, Mapping) else None
    size = data_cfg.get("IMG_SIZE") if isinstance(data_cfg, Mapping) else None
    return size if isinstance(size, int) and not isinstance(size, bool) else None


def _json_or_text(value: str) -> str:
    try:
        decoded = json.loads(value)
    except ValueError:
        return value
    return decoded if isinstance(decoded, str) else value


def _build(name: str, img_size: int | None, state: Mapping[str, Any] | None, path: Path | None) -> nn.Module:
    from vitrt.models import create_model, get_spec, load_checkpoint

    spec = get_spec(name)
    try:
        model = create_model(name, img_size=img_size, pretrained=False if state is not None else None)
    except VitrtError:
        raise
    except Exception as err:  # the architecture cannot be built at this size (e.g. not divisible by the patches)
        if img_size is None or img_size == spec.default_img_size:
            raise
        text = " ".join(str(err).split())[:200]
        raise ModelConfigError(f"{name} cannot be built for img_size {img_size}: {text}") from None
    if state is not None:
        weights = state["state_dict"] if "__safetensors_metadata__" in state else state
        report = load_checkpoint(model, weights)
        report.path = str(path)
        model.eval()
    return model
