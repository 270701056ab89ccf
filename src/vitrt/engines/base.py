"""One runtime interface over PyTorch, ONNX Runtime and TensorRT.

Thread-safety contract: `infer` may be called from several threads at once on every backend; a backend whose
underlying runtime is not re-entrant (TensorRT execution contexts, PyTorch modules with CUDA graphs) serialises
calls with its own lock. `warmup` and `close` must not race with `infer`.
"""

from __future__ import annotations

import abc
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from vitrt.errors import VitrtError

if TYPE_CHECKING:
    from vitrt.metadata import ModelMetadata


@dataclass(frozen=True)
class TensorSpec:
    """Name, numpy dtype name and shape of one model input or output; None marks a dynamic dimension."""

    name: str
    dtype: str
    shape: tuple[int | None, ...]

    @property
    def static_shape(self) -> tuple[int, ...]:
        """The shape without its leading (batch) dimension; raises if another dimension is dynamic."""
        rest = self.shape[1:]
        if any(d is None for d in rest):
            raise VitrtError(f"{self.name}: only the batch dimension may be dynamic, got {self.shape}")
        return tuple(int(d) for d in rest if d is not None)


class InputError(VitrtError):
    """An inference input with the wrong name, dtype or shape."""


class InferenceBackend(abc.ABC):
    """A loaded model that runs batches of inputs.

    Subclasses set `name`, `inputs`, `outputs`, `max_batch_size` (None = unbounded), `metadata` and `device`.
    """

    name: str = "base"
    inputs: list[TensorSpec]
    outputs: list[TensorSpec]
    max_batch_size: int | None = None
    metadata: ModelMetadata | None = None
    device: str = "cpu"
    # Why `load(..., backend="auto")` chose this backend; None when the caller named it.
    selection_reason: str | None = None

    def describe(self) -> str:
        """One line saying what runs the model, e.g. "onnxruntime (CPUExecutionProvider)"."""
        return f"{self.name} on {self.device}"

    @abc.abstractmethod
    def run(self, feeds: Mapping[str, np.ndarray], output_names: list[str] | None = None) -> dict[str, np.ndarray]:
        """Run validated numpy inputs; returns the requested outputs (all by default) by name."""

    def infer(self, x: Any) -> np.ndarray:
        """Run one batch through a single-input model and return its first output as numpy.

        Accepts a numpy array or a torch tensor (moved to CPU); the batch is the leading dimension.
        """
        if len(self.inputs) != 1:
            raise InputError(f"{self.name} model has {len(self.inputs)} inputs; use run() with a dict")
        array = _to_numpy(x)
        feeds = self.validate({self.inputs[0].name: array})
        return self.run(feeds, [self.outputs[0].name])[self.outputs[0].name]

    def validate(self, feeds: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Check names, dtypes (casting float inputs losslessly where safe) and shapes against `inputs`."""
        expected = {spec.name: spec for spec in self.inputs}
        unknown = sorted(set(feeds) - set(expected))
        if unknown:
            raise InputError(f"unknown input {unknown[0]!r}; expected {sorted(expected)}")
        missing = sorted(set(expected) - set(feeds))
        if missing:
            raise InputError(f"missing input {missing[0]!r}")
        checked = {}
        for name, array in feeds.items():
            spec = expected[name]
            array = np.asarray(array)
            if array.dtype != np.dtype(spec.dtype):
                if array.dtype.kind not in "fiu":
                    raise InputError(f"input {name!r} has dtype {array.dtype}, expected {spec.dtype}")
                array = array.astype(spec.dtype)
            if array.ndim != len(spec.shape):
                raise InputError(f"input {name!r} has shape {list(array.shape)}, expected {_fmt(spec.shape)}")
            for got, want in zip(array.shape, spec.shape, strict=True):
                if want is not None and got != want:
                    raise InputError(f"input {name!r} has shape {list(array.shape)}, expected {_fmt(spec.shape)}")
            if array.shape[0] == 0:
                raise InputError(f"input {name!r} has an empty batch")
            if self.max_batch_size is not None and array.shape[0] > self.max_batch_size:
                raise InputError(f"input {name!r} batch {array.shape[0]} exceeds max batch {self.max_batch_size}")
            checked[name] = np.ascontiguousarray(array)
        return checked

    def warmup(self, iterations: int = 3, batch_size: int = 1) -> None:
        """Run a few batches of zeros so first-request latency excludes lazy initialisation."""
        feeds = {spec.name: np.zeros((batch_size, *spec.static_shape), dtype=spec.dtype) for spec in self.inputs}
        for _ in range(iterations):
            self.run(feeds)

    def close(self) -> None:  # noqa: B027  (optional hook)
        """Release runtime resources; the backend is unusable afterwards."""

    def __enter__(self) -> InferenceBackend:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _to_numpy(x: Any) -> np.ndarray:
    if isinstance(x, np.ndarray):
        return x
    if hasattr(x, "detach"):  # torch.Tensor, without importing torch
        return x.detach().cpu().numpy()
    return np.asarray(x)


def _fmt(shape: tuple[int | None, ...]) -> str:
    return "[" + ", ".join("-1" if d is None else str(d) for d in shape) + "]"
