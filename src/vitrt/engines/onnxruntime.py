"""ONNX Runtime backend: the embedded default that runs vitrt ONNX files on any machine.

vitrt attention nodes carry standard-op function bodies, which ONNX Runtime inlines, so no custom-op library is
needed. `InferenceSession.run` is thread-safe, so this backend needs no lock.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from vitrt.engines.base import InferenceBackend, TensorSpec
from vitrt.errors import ArtifactError, BackendUnavailableError
from vitrt.metadata import ModelMetadata

_ORT_TYPES = {
    "tensor(float)": "float32",
    "tensor(float16)": "float16",
    "tensor(double)": "float64",
    "tensor(uint8)": "uint8",
    "tensor(int8)": "int8",
    "tensor(int32)": "int32",
    "tensor(int64)": "int64",
    "tensor(bool)": "bool",
}


class OnnxRuntimeBackend(InferenceBackend):
    name = "onnxruntime"

    def __init__(
        self,
        path: str | Path,
        *,
        providers: Sequence[str | tuple[str, dict[str, Any]]] | None = None,
        intra_op_threads: int | None = None,
        session_options: Any = None,
    ) -> None:
        import onnxruntime as ort

        self.path = Path(path)
        if not self.path.is_file():
            raise ArtifactError(f"ONNX file not found: {self.path}")
        options = session_options or ort.SessionOptions()
        if intra_op_threads is not None:
            options.intra_op_num_threads = intra_op_threads
        available = set(ort.get_available_providers())
        chosen = list(providers) if providers else ["CPUExecutionProvider"]
        for provider in chosen:
            provider_name = provider[0] if isinstance(provider, tuple) else provider
            if provider_name not in available:
                have = ", ".join(sorted(available))
                raise BackendUnavailableError(f"ONNX Runtime provider {provider_name} is unavailable (have: {have})")
        try:
            self.session = ort.InferenceSession(str(self.path), sess_options=options, providers=chosen)
        except Exception as err:  # ORT raises its own exception types for unreadable or invalid models
            raise ArtifactError(f"ONNX Runtime cannot load {self.path}: {' '.join(str(err).split())[:300]}") from None
        self.providers = self.session.get_providers()
        self.inputs = [_spec(node) for node in self.session.get_inputs()]
        self.outputs = [_spec(node) for node in self.session.get_outputs()]
        props = self.session.get_modelmeta().custom_metadata_map
        self.metadata = ModelMetadata.from_props(props) if "vitrt.model" in props else None
        batch_dims = {spec.shape[0] for spec in self.inputs if spec.shape}
        self.max_batch_size = None if None in batch_dims or not batch_dims else int(min(d for d in batch_dims if d))

    def run(self, feeds: Mapping[str, np.ndarray], output_names: list[str] | None = None) -> dict[str, np.ndarray]:
        names = output_names or [spec.name for spec in self.outputs]
        results = self.session.run(names, dict(feeds))
        return dict(zip(names, results, strict=True))


def _spec(node: Any) -> TensorSpec:
    dtype = _ORT_TYPES.get(node.type)
    if dtype is None:
        raise ArtifactError(f"unsupported ONNX tensor type {node.type} for {node.name}")
    shape = tuple(d if isinstance(d, int) else None for d in node.shape)
    return TensorSpec(name=node.name, dtype=dtype, shape=shape)
