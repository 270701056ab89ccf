"""Open one configuration's runtime: the PyTorch peers, or a vitrt backend at a precision.

Each opener returns an `InferenceBackend`; a runtime that cannot run here raises `VitrtError` with the reason,
which the runner records as a skipped row.
"""

from __future__ import annotations

import hashlib
import inspect
import logging
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from vitrt.bench.grid import Config
from vitrt.bench.sources import Prepared, cache_root
from vitrt.engines.pytorch import TorchBackend
from vitrt.errors import BackendUnavailableError, VitrtError

if TYPE_CHECKING:
    from vitrt.engines.base import InferenceBackend

log = logging.getLogger(__name__)

_TORCH_AUTOCAST = {"bf16": "bfloat16", "fp16": "float16"}
# vitrt precision names -> the names OpenVINO's inference precision hint uses, tried when the backend refuses ours.
_OPENVINO_ALIASES = {"fp16": "f16", "fp32": "f32"}


class AutocastTorchBackend(TorchBackend):
    """PyTorch eager (or compiled) FP32 weights run under `torch.autocast` - what a user does for bf16/fp16."""

    def __init__(self, *args: Any, autocast: str | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.autocast = autocast

    def describe(self) -> str:
        base = super().describe()
        return base if self.autocast is None else f"{base[:-1]}, {self.autocast} autocast)"

    def run(self, feeds: Mapping[str, np.ndarray], output_names: list[str] | None = None) -> dict[str, np.ndarray]:
        if self.autocast is None:
            return super().run(feeds, output_names)
        import torch

        device_type = "cuda" if self.device.startswith("cuda") else "cpu"
        with torch.autocast(device_type=device_type, dtype=getattr(torch, self.autocast)):
            return super().run(feeds, output_names)


def open_runtime(
    config: Config,
    prepared: Prepared,
    *,
    threads: int | None,
    device: str,
    int8: Path | None,
    max_batch: int,
) -> InferenceBackend:
    """The backend that runs `config` (a fresh one per runtime key; batches share it)."""
    backend = config.backend
    if backend in ("torch", "torch-compile"):
        if prepared.module is None:
            raise BackendUnavailableError("no PyTorch model to run (pass --reference MODEL_OR_CHECKPOINT)")
        _torch_threads(threads)
        return AutocastTorchBackend(
            prepared.module,
            metadata=prepared.metadata,
            device=device,
            compile=backend == "torch-compile",
            autocast=_TORCH_AUTOCAST.get(config.precision),
        )
    onnx_path = _onnx_for(config, prepared, int8)
    from vitrt.engines import load

    if backend == "onnxruntime":
        providers: Any = "auto" if device != "cpu" else None
        return load(onnx_path, backend="onnxruntime", providers=providers, intra_op_threads=threads)
    if backend == "tensorrt":
        engine = prepared.engine if prepared.engine is not None and config.precision != "int8" else None
        if engine is None:
            engine = _cached_engine(onnx_path, config.precision, max_batch)
        return load(engine, backend="tensorrt")
    precision = "fp32" if config.precision == "int8" else config.precision  # INT8 comes from the QDQ file
    return _load_with_options(onnx_path, backend, precision, threads)


def _onnx_for(config: Config, prepared: Prepared, int8: Path | None) -> Path:
    if config.precision == "int8":
        if int8 is None:
            raise VitrtError("no INT8 artifact: quantize the ONNX file (vitrt quantize) and pass --int8 FILE")
        from vitrt.bench.sources import artifact_img_size

        own = artifact_img_size(str(int8))
        if own != config.img_size:
            raise VitrtError(f"the INT8 artifact {int8.name} is {own} px, not {config.img_size} px")
        return int8
    if prepared.onnx is None:
        raise VitrtError("the ONNX file behind the engine is not available")
    return prepared.onnx


def _load_with_options(path: Path, backend: str, precision: str, threads: int | None) -> InferenceBackend:
    """`vitrt.engines.load` for a backend whose options this module does not know in advance (openvino, ...).

    Passes `precision` (retrying with the runtime's own spelling) and a thread count when the backend class takes
    one of the usual keyword names.
    """
    from vitrt.engines import load

    options: dict[str, Any] = {"precision": precision}
    if threads is not None:
        name = _thread_option(backend)
        if name is not None:
            options[name] = threads
    try:
        return load(path, backend=backend, **options)
    except VitrtError:
        alias = _OPENVINO_ALIASES.get(precision)
        if alias is None:
            raise
        return load(path, backend=backend, **{**options, "precision": alias})


def _thread_option(backend: str) -> str | None:
    import importlib

    try:
        module = importlib.import_module(f"vitrt.engines.{backend}")
    except ImportError:
        return None
    for obj in vars(module).values():
        if inspect.isclass(obj) and getattr(obj, "name", None) == backend:
            params = inspect.signature(obj.__init__).parameters
            for candidate in ("threads", "num_threads", "intra_op_threads", "inference_num_threads"):
                if candidate in params:
                    return candidate
    return None


def _cached_engine(onnx_path: Path, precision: str, max_batch: int) -> Path:
    """A TensorRT engine for the file at `precision`, built once (with the default timing cache) and reused."""
    from vitrt.engines.builder import BuildOptions, build_engine
    from vitrt.files import sha256_file

    build_precision = "fp32" if precision == "int8" else precision  # explicit QDQ: TensorRT reads INT8 from Q/DQ
    digest = hashlib.sha256(f"{sha256_file(onnx_path)}:{build_precision}:{max_batch}".encode()).hexdigest()[:16]
    engine = cache_root() / "engines" / f"{onnx_path.stem}-{build_precision}-{digest}.plan"
    if engine.is_file():
        return engine
    options = BuildOptions(precision=build_precision, batch=f"1:{max_batch}:{max_batch}", progress=False)
    log.info("building a %s TensorRT engine for %s", build_precision, onnx_path.name)
    return Path(build_engine(onnx_path, engine, options).engine_path)


def _torch_threads(threads: int | None) -> None:
    if threads is not None:
        import torch

        torch.set_num_threads(threads)
