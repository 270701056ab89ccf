"""Fixtures for the Triton repository tests: Triton's own config schema and small artifacts."""

from __future__ import annotations

import hashlib
import importlib.util
import json
import types
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import pytest

from vitrt.metadata import ModelMetadata


def _load_model_config_pb2() -> ModuleType:
    # tritonclient.grpc's __init__ needs grpcio (whose tritonclient extra pins protobuf < 7, older than the
    # protobuf onnx uses here); the generated schema module itself needs only protobuf, so load it directly.
    spec = importlib.util.find_spec("tritonclient")
    if spec is None or not spec.submodule_search_locations:
        pytest.fail("tritonclient is not installed (dev extra); it provides Triton's ModelConfig schema")
    path = Path(next(iter(spec.submodule_search_locations))) / "grpc" / "model_config_pb2.py"
    module_spec = importlib.util.spec_from_file_location("triton_model_config_pb2", path)
    assert module_spec is not None and module_spec.loader is not None
    module = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="session")
def model_config_pb2() -> ModuleType:
    return _load_model_config_pb2()


@pytest.fixture(scope="session")
def parse_config(model_config_pb2: ModuleType) -> Callable[[Path], Any]:
    """Parse a config.pbtxt into Triton's ModelConfig protobuf (fails on any unknown field or bad syntax)."""
    from google.protobuf import text_format

    def parse(path: Path) -> Any:
        return text_format.Parse(path.read_text(encoding="utf-8"), model_config_pb2.ModelConfig())

    return parse


def _digits_metadata(name: str = "tiny_digits", size: int = 32, **overrides: Any) -> ModelMetadata:
    values: dict[str, Any] = {
        "model": name,
        "family": "agent",
        "backbone": "tiny",
        "input_size": (3, size, size),
        "mean": (0.5, 0.5, 0.5),
        "std": (0.25, 0.25, 0.25),
        "interpolation": "bicubic",
        "crop_pct": 0.875,
        "num_classes": 10,
        "labels": [f"digit {i}" for i in range(10)],
        "input_name": "input",
        "output_name": "logits",
    }
    values.update(overrides)
    return ModelMetadata(**values)


@pytest.fixture(scope="session")
def digits_metadata() -> Callable[..., ModelMetadata]:
    """Factory for the metadata of a small 10-class digits model."""
    return _digits_metadata


@pytest.fixture
def write_engine(tmp_path: Path) -> Callable[..., Path]:
    """Write dummy plan bytes plus an engine manifest; returns the manifest path."""

    def write(
        name: str = "model",
        *,
        batch: tuple[int, int, int] | None = (1, 8, 32),
        tensorrt_version: str | None = "10.8.0.43",
        compute_capability: str | None = "8.9",
        dtype: str = "float32",
        metadata: ModelMetadata | None = None,
        plan_bytes: bytes | None = None,
        **extra: Any,
    ) -> Path:
        folder = tmp_path / f"engine_{name}"
        folder.mkdir(exist_ok=True)
        plan = folder / f"{name}.plan"
        plan.write_bytes(plan_bytes if plan_bytes is not None else b"\x00vitrt dummy plan " + name.encode() * 7)
        leading = -1 if batch is not None else 1
        # The fields vitrt.engines.manifest.EngineManifest.to_dict() writes.
        manifest: dict[str, Any] = {
            "format": "vitrt-engine-manifest",
            "format_version": 1,
            "tensorrt_version": tensorrt_version,
            "gpu_name": "NVIDIA Test GPU",
            "compute_capability": compute_capability,
            "precision": "fp16" if dtype == "float16" else "fp32",
            "strongly_typed": True,
            "profiles": []
            if batch is None
            else [
                {"input": {"min": [batch[0], 3, 32, 32], "opt": [batch[1], 3, 32, 32], "max": [batch[2], 3, 32, 32]}}
            ],
            "onnx_sha256": "0" * 64,
            "engine_sha256": hashlib.sha256(plan.read_bytes()).hexdigest(),
            "engine_size": plan.stat().st_size,
            "inputs": [{"name": "input", "dtype": dtype, "shape": [leading, 3, 32, 32]}],
            "outputs": [{"name": "logits", "dtype": dtype, "shape": [leading, 10]}],
            "onnx_path": None,
            "onnx_flavour": "inlined",
            "plugin_library": None,
            "plugin_sha256": None,
            "plugin_ops": [],
            "metadata": (metadata or _digits_metadata()).to_dict(),
            "build_options": {},
            "hardware_compatibility": "none",
            "version_compatible": False,
        }
        manifest.update(extra)
        path = folder / f"{name}.plan.json"
        path.write_text(json.dumps(manifest), encoding="utf-8")
        return path

    return write


class _Tensor:
    def __init__(self, name: str, array: np.ndarray) -> None:
        self.name, self.array = name, array

    def as_numpy(self) -> np.ndarray:
        return self.array


class _Response:
    def __init__(self, output_tensors: list[_Tensor], error: Any = None) -> None:
        self.output_tensors, self.error = output_tensors, error


@pytest.fixture
def stand_in_pb_utils() -> types.ModuleType:
    """The few triton_python_backend_utils names model.py uses (Triton itself cannot run on this machine)."""
    module = types.ModuleType("triton_python_backend_utils")
    module.Tensor = _Tensor  # type: ignore[attr-defined]
    module.InferenceResponse = _Response  # type: ignore[attr-defined]
    module.TritonError = str  # type: ignore[attr-defined]
    module.TritonModelException = RuntimeError  # type: ignore[attr-defined]
    module.get_input_tensor_by_name = lambda request, name: _Tensor(name, request[name])  # type: ignore[attr-defined]
    module.triton_string_to_numpy = {"TYPE_FP32": np.float32, "TYPE_FP16": np.float16}.get  # type: ignore[attr-defined]
    return module
