"""What every quantization target provides: availability, the quantization itself, and a way to run the result."""

from __future__ import annotations

import abc
import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    import onnx

    from vitrt.quantize.calibration import CalibrationData

Tick = Callable[[int], None]
QUANTIZATION_KEY = "vitrt.quantization"  # metadata_props key (ONNX) / rt_info key (OpenVINO) with the JSON record


class Target(abc.ABC):
    """One deployment target: how to quantize for it and how to run what it produced on this machine."""

    name: str
    suffix: str  # file suffix of the quantized artifact
    library: str  # the Python package doing the work, for messages and reports
    method: str  # how it quantizes, in words (recorded in the artifact and the engine manifest)

    @abc.abstractmethod
    def check_available(self) -> None:
        """Raise BackendUnavailableError (one line, with the install command) when the library is missing."""

    @abc.abstractmethod
    def quantize(
        self, model: onnx.ModelProto, source: Path, out: Path, data: CalibrationData, exclude: set[str], tick: Tick
    ) -> None:
        """Write the INT8 artifact for `model` (read from `source`) to `out`, keeping `exclude` (node names) float."""

    @abc.abstractmethod
    def runner(self, path: Path) -> Callable[[np.ndarray], np.ndarray]:
        """A function running float32 (N, C, H, W) batches through the artifact at `path` on this CPU."""

    def artifact_files(self, path: Path) -> list[Path]:
        """Every file making up the artifact at `path` (OpenVINO: .xml and .bin)."""
        return [path]

    @abc.abstractmethod
    def record(self, path: Path, info: dict[str, Any]) -> None:
        """Store the quantization record `info` inside the artifact."""


def require(module: str, package: str, install: str) -> None:
    """Raise a one-line BackendUnavailableError when `module` cannot be imported."""
    import importlib

    from vitrt.errors import BackendUnavailableError

    try:
        importlib.import_module(module)
    except ImportError as err:
        raise BackendUnavailableError(
            f"this target needs {package}, which is not installed or does not import ({err}): pip install {install}"
        ) from None


def run_batched(fn: Callable[[np.ndarray], np.ndarray], images: np.ndarray, batch_size: int = 64) -> np.ndarray:
    return np.concatenate([fn(images[i : i + batch_size]) for i in range(0, len(images), batch_size)])


def counted(batches: Iterator[np.ndarray], tick: Tick) -> Iterator[np.ndarray]:
    for batch in batches:
        yield batch
        tick(len(batch))


def set_onnx_record(model: onnx.ModelProto, info: dict[str, Any]) -> None:
    for prop in list(model.metadata_props):
        if prop.key == QUANTIZATION_KEY:
            model.metadata_props.remove(prop)
    entry = model.metadata_props.add()
    entry.key, entry.value = QUANTIZATION_KEY, json.dumps(info)


def onnx_record(model: onnx.ModelProto) -> dict[str, Any] | None:
    """The quantization record of a vitrt INT8 ONNX file (None for a float file)."""
    for prop in model.metadata_props:
        if prop.key == QUANTIZATION_KEY:
            value = json.loads(prop.value)
            return value if isinstance(value, dict) else None
    return None
