"""What a benchmark measures: a PyTorch reference and an ONNX file per resolution, exported once and cached.

A zoo name or checkpoint is exported at every requested resolution (random zoo weights are seeded so the cached
file and a fresh PyTorch model agree); a timm name (the softmax baseline) is built with timm at each resolution;
an ONNX file or TensorRT engine is measured as it is, at its own resolution.
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from vitrt.bench.grid import BenchInputError
from vitrt.errors import ModelNotFoundError, VitrtError

if TYPE_CHECKING:
    from torch import nn

    from vitrt.metadata import ModelMetadata

log = logging.getLogger(__name__)

SEED = 0


@dataclass
class Prepared:
    """One model at one resolution: its ONNX file, its PyTorch module (None when only an artifact is known)."""

    name: str
    img_size: int
    onnx: Path | None
    module: nn.Module | None
    metadata: ModelMetadata
    engine: Path | None = None  # a TensorRT engine the user gave
    notes: list[str] = field(default_factory=list)


def cache_root() -> Path:
    from vitrt.files import cache_dir

    return cache_dir() / "bench"


def source_kind(source: str) -> str:
    """ "onnx", "engine", "zoo" (a vitrt model or checkpoint) or "timm" (a timm architecture name)."""
    from vitrt.engines import ENGINE_SUFFIXES
    from vitrt.export.zoo import CHECKPOINT_SUFFIXES
    from vitrt.models import get_spec

    path = Path(source)
    if path.suffix == ".onnx":
        _require_file(path)
        return "onnx"
    if path.suffix in ENGINE_SUFFIXES:
        _require_file(path)
        return "engine"
    if path.suffix in CHECKPOINT_SUFFIXES:
        _require_file(path)
        return "zoo"
    try:
        get_spec(source)
        return "zoo"
    except ModelNotFoundError:
        pass
    if path.suffix or len(path.parts) > 1:
        raise BenchInputError(f"file not found: {path}")
    if _is_timm_model(source):
        return "timm"
    raise BenchInputError(f"unknown model {source!r}: not a vitrt zoo name (vitrt models), a timm name or a file")


def artifact_img_size(source: str) -> int:
    """The resolution an ONNX file or engine was exported at."""
    meta = artifact_metadata(Path(source))
    return int(meta.input_size[1])


def artifact_metadata(path: Path) -> ModelMetadata:
    from vitrt.engines import ENGINE_SUFFIXES
    from vitrt.metadata import ModelMetadata

    if path.suffix in ENGINE_SUFFIXES:
        from vitrt.engines.manifest import EngineManifest, manifest_path

        meta = EngineManifest.load(manifest_path(path)).model_metadata()
    else:
        import onnx

        from vitrt.engines.onnx_graph import model_metadata

        try:
            proto = onnx.load(str(path), load_external_data=False)
        except Exception as err:  # onnx raises DecodeError and friends for a file that is not ONNX
            raise BenchInputError(f"cannot read ONNX file {path} ({type(err).__name__})") from None
        meta = model_metadata(proto)
        if meta is None:
            shape = [d.dim_value for d in proto.graph.input[0].type.tensor_type.shape.dim]
            if len(shape) != 4 or not all(shape[1:]):
                raise BenchInputError(f"{path} has no vitrt metadata and no static (C, H, W) input shape")
            meta = ModelMetadata(model=path.stem, family="onnx", input_size=(shape[1], shape[2], shape[3]))
    if meta is None:
        raise BenchInputError(f"{path} carries no vitrt model metadata")
    return meta


def prepare(
    source: str,
    kind: str,
    img_size: int,
    *,
    arch: str | None = None,
    reference: str | None = None,
    workdir: Path | None = None,
) -> Prepared:
    """The ONNX file and PyTorch module of `source` at `img_size` (exported into the cache when needed)."""
    if kind in ("onnx", "engine"):
        return _prepare_artifact(source, kind, img_size, reference, arch)
    module, meta, notes = _build_module(source, kind, img_size, arch)
    onnx_path = _cached_export(source, kind, img_size, module, meta, workdir)
    return Prepared(meta.model, img_size, onnx_path, module, meta, notes=notes)


def _prepare_artifact(source: str, kind: str, img_size: int, reference: str | None, arch: str | None) -> Prepared:
    path = Path(source)
    meta = artifact_metadata(path)
    own = int(meta.input_size[1])
    if img_size != own:
        raise BenchInputError(f"{path.name} was exported at {own} px; pass a model name to benchmark other resolutions")
    onnx_path: Path | None = path
    engine = None
    if kind == "engine":
        from vitrt.engines.manifest import EngineManifest, manifest_path

        engine = path
        recorded = EngineManifest.load(manifest_path(path)).onnx_path
        onnx_path = Path(recorded) if recorded and Path(recorded).is_file() else None
    notes: list[str] = []
    module = None
    ref_name = reference or (meta.model if meta.model.endswith("_digits") else None)
    if ref_name is not None:
        module, _, notes = _build_module(ref_name, "zoo", img_size, arch)
    else:
        notes.append(
            f"no PyTorch model for {path.name} (pass --reference MODEL_OR_CHECKPOINT): parity is against "
            "ONNX Runtime fp32 and the PyTorch peers are skipped"
        )
    return Prepared(meta.model, img_size, onnx_path, module, meta, engine=engine, notes=notes)


def _build_module(source: str, kind: str, img_size: int, arch: str | None) -> tuple[nn.Module, ModelMetadata, list]:
    import torch

    torch.manual_seed(SEED)  # random zoo weights: the same module every run, so cached exports stay valid
    if kind == "timm":
        import timm

        from vitrt.metadata import ModelMetadata

        kwargs: dict[str, Any] = {"img_size": img_size} if img_size else {}
        try:
            model = timm.create_model(source, pretrained=False, **kwargs).eval()
        except Exception as err:  # timm raises AssertionError/ValueError/TypeError for impossible geometries
            raise VitrtError(
                f"timm cannot build {source} at {img_size} px ({' '.join(str(err).split())[:160]})"
            ) from None
        meta = ModelMetadata(
            model=source, family="softmax (timm)", backbone=source.split("_")[0], input_size=(3, img_size, img_size)
        )
        model.vitrt_metadata = meta  # type: ignore[assignment]
        return model, meta, [f"{source}: timm architecture with random weights (a speed baseline)"]
    from vitrt.export.zoo import resolve_model

    model, notes = resolve_model(source, img_size=img_size, model_name=arch)
    return model, model.vitrt_metadata, list(notes)  # type: ignore[return-value]


def _cached_export(
    source: str, kind: str, img_size: int, module: nn.Module, meta: ModelMetadata, workdir: Path | None
) -> Path:
    import torch

    from vitrt import __version__

    ident: dict[str, Any] = {"source": source, "kind": kind, "img_size": img_size, "vitrt": __version__}
    ident["torch"] = torch.__version__
    if Path(source).is_file():
        from vitrt.files import sha256_file

        ident["sha256"] = sha256_file(source)
    digest = hashlib.sha256(json.dumps(ident, sort_keys=True).encode()).hexdigest()[:16]
    root = workdir or cache_root() / "onnx"
    path = root / f"{Path(source).stem}-{img_size}-{digest}.onnx"
    if path.is_file():
        return path
    from vitrt.export import export_model

    log.info("exporting %s at %d px to %s", source, img_size, path)
    partial = path.with_name(path.stem + ".partial.onnx")
    export_model(module, partial, metadata=meta, validation_batch_sizes=(1,))
    partial.replace(path)  # an interrupted export never leaves a file the cache would trust
    return path


def _require_file(path: Path) -> None:
    if not path.is_file():
        raise BenchInputError(f"file not found: {path}")


def _is_timm_model(name: str) -> bool:
    import importlib.util

    if importlib.util.find_spec("timm") is None:
        return False
    import timm

    return bool(timm.list_models(name))
