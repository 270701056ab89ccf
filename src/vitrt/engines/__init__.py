"""Runtime backends behind one interface, and (with TensorRT) the engine builder.

>>> from vitrt.engines import load
>>> backend = load("agent_digits.onnx")          # ONNX Runtime on CPU
>>> logits = backend.infer(batch)                 # numpy (B, 3, H, W) -> numpy (B, num_classes)
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from vitrt.engines.base import InferenceBackend, InputError, TensorSpec
from vitrt.errors import ArtifactError

__all__ = ["InferenceBackend", "InputError", "TensorSpec", "load"]


def load(artifact: str | Path, backend: str = "auto", **options: Any) -> InferenceBackend:
    """Load an artifact behind the common runtime interface.

    `artifact` is an ONNX file; `backend` is "auto" or "onnxruntime".
    """
    path = Path(artifact)
    if backend not in ("auto", "onnxruntime"):
        raise ArtifactError(f"unknown backend {backend!r}")
    if path.suffix != ".onnx":
        raise ArtifactError(f"cannot tell how to load {path} (expected a .onnx file)")
    from vitrt.engines.onnxruntime import OnnxRuntimeBackend

    return OnnxRuntimeBackend(path, **options)
