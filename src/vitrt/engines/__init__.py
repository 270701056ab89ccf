"""Runtime backends behind one interface, and the TensorRT engine builder.

>>> from vitrt.engines import load
>>> backend = load("agent_digits.onnx")          # ONNX Runtime (GPU providers when present, else CPU)
>>> backend = load("agent_digits.onnx", cpu_probe=True)  # on a CPU-only machine: the faster of ORT and OpenVINO
>>> backend = load("agent_digits.plan")          # TensorRT, after checking model.plan.json
>>> backend = load("agent_digits.onnx", backend="openvino", precision="bf16")  # OpenVINO, the fast CPU path
>>> backend = load("agent_digits")               # PyTorch, a zoo model
>>> logits = backend.infer(batch)                 # numpy or torch (B, 3, H, W) -> numpy (B, num_classes)

Every backend implements `InferenceBackend` (see `base.py`): `infer`, `run`, `inputs`/`outputs`,
`max_batch_size`, `metadata`, `warmup`, `close`, `describe`.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

from vitrt.engines.base import InferenceBackend, InputError, TensorSpec
from vitrt.errors import ArtifactError

if TYPE_CHECKING:
    from torch import nn

__all__ = ["BACKENDS", "ENGINE_SUFFIXES", "InferenceBackend", "InputError", "TensorSpec", "artifact_kind", "load"]

log = logging.getLogger(__name__)

BACKENDS = ("auto", "torch", "onnxruntime", "openvino", "tensorrt")
ENGINE_SUFFIXES = (".plan", ".engine", ".trt")
# Which backends can run which artifact kind; the first is what "auto" picks.
_RUNNERS = {
    "engine": ("tensorrt", "onnxruntime", "openvino"),  # the CPU runtimes run the ONNX file of the manifest
    "onnx": ("onnxruntime", "openvino"),  # tensorrt needs an engine built from it (vitrt build)
    "ir": ("openvino",),  # an OpenVINO IR (model.xml + model.bin)
    "model": ("torch",),
}


def artifact_kind(artifact: str | Path | nn.Module) -> str:
    """ "engine", "onnx", "ir" (OpenVINO .xml) or "model" (a zoo name, a checkpoint file or an nn.Module)."""
    if not isinstance(artifact, str | Path):
        return "model"
    path = Path(artifact)
    if path.suffix in ENGINE_SUFFIXES:
        return "engine"
    if path.suffix == ".onnx":
        return "onnx"
    if path.suffix == ".xml":
        return "ir"
    from vitrt.errors import ModelNotFoundError
    from vitrt.files import CHECKPOINT_SUFFIXES
    from vitrt.models import get_spec

    if path.suffix in CHECKPOINT_SUFFIXES:
        return "model"
    try:
        get_spec(str(artifact))
    except ModelNotFoundError:
        if path.is_file():
            raise ArtifactError(f"cannot tell how to load {path} (expected .onnx, .plan or a checkpoint)") from None
        if path.suffix or len(path.parts) > 1:
            raise ArtifactError(f"file not found: {path}") from None
        raise
    return "model"


def load(artifact: str | Path | nn.Module, backend: str = "auto", **options: Any) -> InferenceBackend:
    """Load an artifact behind the common runtime interface.

    `artifact`: an ONNX file, a TensorRT engine (`.plan` with its `.plan.json` manifest), a zoo model name, a
    checkpoint file (with `arch=`) or an nn.Module carrying `vitrt_metadata`.
    `backend`: "auto" picks the fastest runtime for the artifact (engine -> tensorrt; ONNX -> ONNX Runtime with
    its TensorRT/CUDA providers when present, else CPU; ONNX with `precision=` -> openvino; IR -> openvino;
    model -> torch) and logs what it picked. With `cpu_probe=True` (what `vitrt serve --backend auto` uses), an
    ONNX file on a CPU-only machine runs on the faster of ONNX Runtime and OpenVINO at FP32, measured on the model
    at batch `probe_batch=` (default 1), or on OpenVINO when `precision` asks for bf16/fp16
    (`vitrt.engines.autoselect`); `selection_reason` says why.
    `options` go to the backend class: `TorchBackend`, `OnnxRuntimeBackend`, `OpenVINOBackend` (precision=,
    performance_hint=, threads=, streams=, cache=) or `TensorRTBackend`.
    """
    if backend not in BACKENDS:
        raise ArtifactError(f"unknown backend {backend!r}; choose from {', '.join(BACKENDS)}")
    kind = artifact_kind(artifact)
    cpu_probe = bool(options.pop("cpu_probe", False)) if backend == "auto" else False
    probe_batch = int(options.pop("probe_batch", 1)) if backend == "auto" else 1
    if backend == "auto" and kind == "onnx" and isinstance(artifact, str | Path):
        from vitrt.engines import autoselect

        if cpu_probe and autoselect.cpu_only():
            selection = autoselect.select_cpu_backend(Path(artifact), options, probe_batch)
            selection.backend.selection_reason = selection.reason
            log.info("backend auto: %s for %s: %s", selection.backend.describe(), artifact, selection.reason)
            return selection.backend
        if "precision" in options:  # only OpenVINO takes a precision for an ONNX file
            loaded_ov = autoselect.backend_class("openvino")(Path(artifact), **options)
            loaded_ov.selection_reason = f"precision {options['precision']} is an option of openvino only"
            log.info("backend auto: %s for %s: %s", loaded_ov.describe(), artifact, loaded_ov.selection_reason)
            return loaded_ov  # type: ignore[no-any-return]
    chosen = _RUNNERS[kind][0] if backend == "auto" else backend
    if chosen not in _RUNNERS[kind]:
        raise ArtifactError(_mismatch_message(kind, chosen, artifact))
    if "precision" in options and chosen != "openvino":
        raise ArtifactError(
            f"precision is an option of the openvino backend, not {chosen} (a TensorRT engine keeps the precision "
            "it was built with: vitrt build --precision)"
        )
    from vitrt.engines.autoselect import check_options

    check_options(chosen, options)
    if chosen == "torch":
        from vitrt.engines.pytorch import TorchBackend

        loaded: InferenceBackend = TorchBackend(artifact, **options)
    elif chosen == "onnxruntime":
        from vitrt.engines.onnxruntime import OnnxRuntimeBackend

        assert isinstance(artifact, str | Path)
        path = _onnx_of_engine(Path(artifact)) if kind == "engine" else Path(artifact)
        if backend == "auto":
            options.setdefault("providers", "auto")
        loaded = OnnxRuntimeBackend(path, **options)
    elif chosen == "openvino":
        from vitrt.engines.openvino import OpenVINOBackend

        assert isinstance(artifact, str | Path)
        loaded = OpenVINOBackend(_onnx_of_engine(Path(artifact)) if kind == "engine" else Path(artifact), **options)
    else:
        from vitrt.engines.tensorrt_runtime import TensorRTBackend

        assert isinstance(artifact, str | Path)
        loaded = TensorRTBackend(artifact, **options)
    if backend == "auto":
        loaded.selection_reason = f"the runtime for a {kind} artifact"
        log.info("loaded %s with %s", artifact if isinstance(artifact, str | Path) else "module", loaded.describe())
    return loaded


def _onnx_of_engine(engine: Path) -> Path:
    from vitrt.engines.manifest import EngineManifest, manifest_path
    from vitrt.files import sha256_file

    manifest = EngineManifest.load(manifest_path(engine))
    if not manifest.onnx_path or not Path(manifest.onnx_path).is_file():
        raise ArtifactError(f"the ONNX file {engine.name} was built from is not available ({manifest.onnx_path})")
    if sha256_file(manifest.onnx_path) != manifest.onnx_sha256:
        raise ArtifactError(f"{manifest.onnx_path} changed since {engine.name} was built from it (sha256 differs)")
    return Path(manifest.onnx_path)


def _mismatch_message(kind: str, backend: str, artifact: object) -> str:
    if kind == "ir":
        return f"{artifact} is an OpenVINO IR; run it with --backend openvino"
    if kind == "onnx" and backend == "tensorrt":
        return f"the tensorrt backend runs engines; build one first: vitrt build {artifact} --out model.plan"
    if kind == "model":
        return f"{artifact} is a PyTorch model; export it first (vitrt export) to run it with {backend}"
    return f"the {backend} backend cannot run a {kind} artifact ({artifact})"
