"""The benchmark grid: which configurations to measure, and why a configuration cannot run here.

A configuration is (model, runtime, precision, batch, resolution). Runtimes are the PyTorch peers a user would
reach for without vitrt (`torch`: eager, reduced precision through autocast; `torch-compile`) and every vitrt
backend in `vitrt.engines.BACKENDS` (so a backend added there is benchmarked without touching this module).
Whatever cannot run on this machine stays in the grid as a skipped row with its reason.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
from collections.abc import Sequence
from dataclasses import dataclass

from vitrt.errors import VitrtError

PRECISIONS = ("fp32", "bf16", "fp16", "int8")
# The PyTorch peers; the vitrt backends come from vitrt.engines.BACKENDS.
TORCH_PEERS = ("torch", "torch-compile")
DEFAULT_BACKENDS = ("torch", "onnxruntime", "openvino", "tensorrt")
MAX_BATCH = 4096
MAX_IMG_SIZE = 4096


class BenchInputError(VitrtError):
    """A benchmark grid that cannot be measured as asked (unknown backend, bad batch list, ...)."""


@dataclass(frozen=True)
class Config:
    """One measured configuration; `role` is "model" or "baseline" (the softmax reference architecture)."""

    model: str
    role: str
    backend: str
    precision: str
    batch: int
    img_size: int

    @property
    def key(self) -> str:
        return f"{self.model}/{self.backend}/{self.precision}/b{self.batch}/{self.img_size}px"

    @property
    def runtime_key(self) -> tuple[str, str, str, int]:
        """Configurations with the same runtime key share one loaded backend (batch is only the input shape)."""
        return (self.model, self.backend, self.precision, self.img_size)


def known_backends() -> tuple[str, ...]:
    """Every runtime the grid can name: the PyTorch peers and vitrt's own backends (without "auto")."""
    from vitrt.engines import BACKENDS

    vitrt_backends = [b for b in BACKENDS if b not in ("auto", "torch")]
    # openvino and tensorrt are always nameable: when this build or machine lacks them the rows say so.
    extra = [b for b in ("openvino", "tensorrt") if b not in vitrt_backends]
    return (*TORCH_PEERS, *vitrt_backends, *extra)


def parse_list(text: str | Sequence[str] | None, what: str) -> list[str]:
    if text is None:
        return []
    items = text.split(",") if isinstance(text, str) else [str(t) for t in text]
    values = [item.strip().lower() for item in items if item.strip()]
    if not values:
        raise BenchInputError(f"--{what} is empty")
    return list(dict.fromkeys(values))


def parse_backends(text: str | Sequence[str] | None, extra: Sequence[str] = ()) -> list[str]:
    """The backends asked for; `extra` names runtimes the caller adds (`run_bench(extra_runtimes=...)`)."""
    names = parse_list(text, "backends") if text is not None else list(DEFAULT_BACKENDS)
    known = (*known_backends(), *(name.lower() for name in extra))
    if names == ["all"]:
        return list(known)
    for name in names:
        if name not in known:
            raise BenchInputError(f"unknown backend {name!r}; choose from {', '.join(known)} (or all)")
    return names


def parse_precisions(text: str | Sequence[str] | None) -> list[str]:
    names = parse_list(text, "precisions") if text is not None else default_precisions()
    aliases = {"f16": "fp16", "float16": "fp16", "half": "fp16", "bfloat16": "bf16", "float32": "fp32"}
    names = list(dict.fromkeys(aliases.get(n, n) for n in names))
    for name in names:
        if name not in PRECISIONS:
            raise BenchInputError(f"unknown precision {name!r}; choose from {', '.join(PRECISIONS)}")
    return names


def default_precisions() -> list[str]:
    """fp32 and the reduced precision this machine is fast at: fp16 on a GPU, bf16 on a CPU."""
    from vitrt.engines.availability import cuda_available

    return ["fp32", "fp16"] if cuda_available() else ["fp32", "bf16"]


def parse_ints(text: str | Sequence[int] | None, what: str, limit: int) -> list[int]:
    if text is None:
        raise BenchInputError(f"--{what} is empty")
    items = text.split(",") if isinstance(text, str) else [str(t) for t in text]
    values = []
    for item in items:
        item = item.strip()
        if not item:
            continue
        try:
            value = int(item)
        except ValueError:
            raise BenchInputError(f"--{what} must be comma-separated integers, got {item!r}") from None
        if not 1 <= value <= limit:
            raise BenchInputError(f"--{what} value {value} is out of range (1..{limit})")
        values.append(value)
    if not values:
        raise BenchInputError(f"--{what} is empty")
    return list(dict.fromkeys(values))


def support_problem(backend: str, precision: str, device: str) -> str | None:
    """Why `backend` cannot run `precision` on this machine (None when it can); INT8 artifacts are checked later."""
    from vitrt.engines import BACKENDS
    from vitrt.engines.availability import tensorrt_problem

    if backend in TORCH_PEERS:
        if importlib.util.find_spec("torch") is None:
            return "PyTorch is not installed (pip install 'vitrt[models]')"
        if precision == "int8":
            return "PyTorch eager has no INT8 path for these models; INT8 runs on onnxruntime/openvino/tensorrt"
        if precision == "fp16" and device == "cpu":
            return "fp16 autocast is not a fast path on CPU; use bf16"
        if backend == "torch-compile" and device == "cpu":
            return compile_problem()
        return None
    if backend == "onnxruntime":
        if precision in ("bf16", "fp16"):
            return f"ONNX Runtime runs the fp32 (or INT8) file; {precision} needs the openvino or tensorrt backend"
        return None
    if backend == "openvino":
        if "openvino" not in BACKENDS:
            return "this vitrt has no openvino backend yet (not in vitrt.engines.BACKENDS)"
        if importlib.util.find_spec("openvino") is None:
            return "OpenVINO is not installed (pip install openvino)"
        return None
    if backend == "tensorrt":
        return tensorrt_problem()
    if backend not in BACKENDS:
        return f"{backend} is not a vitrt backend here"
    return None


def compile_problem() -> str | None:
    """Why torch.compile (inductor) cannot compile for the CPU here: it needs a C++ compiler (None when found)."""
    candidates = [os.environ.get("CXX", ""), "g++", "clang++", "c++"]
    if any(name and shutil.which(name) for name in candidates):
        return None
    return "torch.compile (inductor) needs a C++ compiler on PATH for the CPU (install g++ or clang++, or set CXX)"


def expand(
    models: Sequence[tuple[str, str]],
    backends: Sequence[str],
    precisions: Sequence[str],
    batches: Sequence[int],
    img_sizes: Sequence[int],
) -> list[Config]:
    """Every configuration, in a stable order (model, resolution, backend, precision, batch)."""
    return [
        Config(model, role, backend, precision, batch, size)
        for model, role in models
        for size in img_sizes
        for backend in backends
        for precision in precisions
        for batch in batches
    ]
