"""TensorRT glue shared by the engine builder and the TensorRT runtime backend.

Imports `tensorrt` at module level: import this module only after `availability.require_tensorrt()` succeeded.
"""

from __future__ import annotations

import logging
import re
import threading
from collections import deque
from pathlib import Path
from typing import Any, cast

import numpy as np
import tensorrt as trt

from vitrt.errors import EngineBuildError, PluginError

log = logging.getLogger("vitrt.tensorrt")

# TensorRT data type -> numpy dtype name as vitrt reports it (bf16 tensors are exchanged as float32 on the host).
_DTYPE_NAMES: dict[trt.DataType, str] = {
    trt.DataType.FLOAT: "float32",
    trt.DataType.HALF: "float16",
    trt.DataType.BF16: "bfloat16",
    trt.DataType.INT8: "int8",
    trt.DataType.UINT8: "uint8",
    trt.DataType.INT32: "int32",
    trt.DataType.INT64: "int64",
    trt.DataType.BOOL: "bool",
}
FLOAT_TYPES = (trt.DataType.FLOAT, trt.DataType.HALF, trt.DataType.BF16)
_SEVERITY_LEVELS = {
    trt.ILogger.Severity.INTERNAL_ERROR: logging.CRITICAL,
    trt.ILogger.Severity.ERROR: logging.ERROR,
    trt.ILogger.Severity.WARNING: logging.WARNING,
    trt.ILogger.Severity.INFO: logging.INFO,
    trt.ILogger.Severity.VERBOSE: logging.DEBUG,
}
_METADATA_NODE = re.compile(r"\[ONNX Layer: ([^|\]]+)")


def dtype_name(dtype: trt.DataType) -> str:
    try:
        return _DTYPE_NAMES[dtype]
    except KeyError:
        raise PluginError(f"unsupported TensorRT tensor type {dtype}") from None


def host_dtype(dtype: trt.DataType) -> np.dtype[Any]:
    """The numpy dtype used for a tensor of this type on the host (bf16 travels as float32)."""
    name = dtype_name(dtype)
    return np.dtype("float32" if name == "bfloat16" else name)


def torch_dtype(dtype: trt.DataType) -> Any:
    import torch

    return {
        "float32": torch.float32,
        "float16": torch.float16,
        "bfloat16": torch.bfloat16,
        "int8": torch.int8,
        "uint8": torch.uint8,
        "int32": torch.int32,
        "int64": torch.int64,
        "bool": torch.bool,
    }[dtype_name(dtype)]


def dims(shape: trt.Dims) -> tuple[int | None, ...]:
    """TensorRT dims with -1 for dynamic dimensions -> a TensorSpec shape with None."""
    return tuple(None if shape[i] < 0 else int(shape[i]) for i in range(len(shape)))


class LoggingLogger(trt.ILogger):
    """Routes TensorRT's log to Python `logging` (logger "vitrt.tensorrt") and remembers the last errors."""

    def __init__(self) -> None:
        trt.ILogger.__init__(self)
        self.recent_errors: deque[str] = deque(maxlen=8)
        self._lock = threading.Lock()

    def log(self, severity: trt.ILogger.Severity, msg: str) -> None:
        level = _SEVERITY_LEVELS.get(severity, logging.INFO)
        if level >= logging.ERROR:
            with self._lock:
                self.recent_errors.append(" ".join(msg.split()))
        log.log(level, "%s", msg)

    def last_error(self) -> str | None:
        with self._lock:
            return self.recent_errors[-1] if self.recent_errors else None

    def clear_errors(self) -> None:
        with self._lock:
            self.recent_errors.clear()


_LOGGER: LoggingLogger | None = None
_LOGGER_LOCK = threading.Lock()


def get_logger() -> LoggingLogger:
    """One logger per process: TensorRT keeps a pointer to the first logger it sees."""
    global _LOGGER
    with _LOGGER_LOCK:
        if _LOGGER is None:
            _LOGGER = LoggingLogger()
        return _LOGGER


class RichProgressMonitor(trt.IProgressMonitor):
    """Shows the builder's nested phases as rich progress bars. TensorRT calls it from its own threads."""

    def __init__(self, console: Any = None) -> None:
        trt.IProgressMonitor.__init__(self)
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        self._progress = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=console or Console(stderr=True),
            transient=True,
        )
        self._tasks: dict[str, Any] = {}
        self._depth: dict[str, int] = {}
        self._lock = threading.Lock()
        self.cancelled = False

    def __enter__(self) -> RichProgressMonitor:
        self._progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._progress.stop()

    def phase_start(self, phase_name: str, parent_phase: str, num_steps: int) -> None:
        with self._lock:
            depth = self._depth.get(parent_phase, -1) + 1 if parent_phase else 0
            self._depth[phase_name] = depth
            self._tasks[phase_name] = self._progress.add_task("  " * depth + phase_name, total=max(num_steps, 1))

    def step_complete(self, phase_name: str, step: int) -> bool:
        with self._lock:
            task = self._tasks.get(phase_name)
            if task is not None:
                self._progress.update(task, completed=step + 1)
            return not self.cancelled

    def phase_finish(self, phase_name: str) -> None:
        with self._lock:
            task = self._tasks.pop(phase_name, None)
            self._depth.pop(phase_name, None)
            if task is not None:
                self._progress.remove_task(task)


def load_plugin_library(path: str | Path) -> None:
    """Register the creators of the vitrt plugin library with TensorRT's global registry (once per process)."""
    from vitrt.plugins.registry import load_into_tensorrt

    load_into_tensorrt(path)
    log.info("loaded TensorRT plugin library %s", Path(path).resolve())


def hardware_compatibility_level(name: str) -> trt.HardwareCompatibilityLevel:
    """TensorRT's HardwareCompatibilityLevel for a vitrt name (ampere_plus, same_compute_capability)."""
    level = getattr(trt.HardwareCompatibilityLevel, name.upper(), None)
    if level is None:
        offered = sorted(n.lower() for n in dir(trt.HardwareCompatibilityLevel) if n.isupper() and n != "NONE")
        raise EngineBuildError(
            f"TensorRT {trt.__version__} has no hardware compatibility level {name!r}; it offers: "
            f"{', '.join(offered) or 'none'}"
        )
    return level


def plugin_layer_counts(network: trt.INetworkDefinition) -> dict[str, int]:
    """The plugin layers of a parsed network, counted by plugin (creator) name, e.g. {"VitrtAgentAttention": 4}."""
    counts: dict[str, int] = {}
    for index in range(network.num_layers):
        layer = network.get_layer(index)
        if layer.type != trt.LayerType.PLUGIN_V3:
            continue
        layer.__class__ = trt.IPluginV3Layer  # the bindings hand out the ILayer base; this exposes `.plugin`
        plugin_layer = cast("trt.IPluginV3Layer", layer)
        core = plugin_layer.plugin.get_capability_interface(trt.PluginCapabilityType.CORE)
        name = str(core.plugin_name)
        counts[name] = counts.get(name, 0) + 1
    return dict(sorted(counts.items()))


def missing_plugin_creators(ops: list[tuple[str, str, str]]) -> list[str]:
    """The (op_type, version, namespace) triples without a registered creator, formatted for an error."""
    registry = trt.get_plugin_registry()
    missing = []
    for op_type, version, namespace in ops:
        if registry.get_creator(op_type, version, namespace) is None:
            missing.append(f"{op_type} (version {version}, namespace {namespace!r})")
    return missing


def layer_onnx_node(layer: trt.ILayer) -> str | None:
    """The ONNX node a layer was imported from, read from the metadata the ONNX parser attaches."""
    match = _METADATA_NODE.search(layer.metadata or "")
    return match.group(1).strip() if match else None


def constrain_fp32(network: trt.INetworkDefinition, island_nodes: set[str]) -> int:
    """Pin the layers of FP32-island ONNX nodes (and all normalisation/softmax/reduce layers) to FP32.

    Only layers with float outputs are touched; returns how many were constrained.
    """
    always = {trt.LayerType.NORMALIZATION, trt.LayerType.SOFTMAX, trt.LayerType.REDUCE}
    count = 0
    for index in range(network.num_layers):
        layer = network.get_layer(index)
        node = layer_onnx_node(layer)
        # Without parser metadata, fall back to the layer name: the node name, possibly with a "_<n>" suffix.
        names = {node} if node is not None else {layer.name, layer.name.rsplit("_", 1)[0]}
        if layer.type not in always and not names & island_nodes:
            continue
        outputs = [i for i in range(layer.num_outputs) if layer.get_output(i).dtype in FLOAT_TYPES]
        if not outputs:
            continue
        layer.precision = trt.DataType.FLOAT
        for i in outputs:
            layer.set_output_type(i, trt.DataType.FLOAT)
        count += 1
    return count


def parser_errors(parser: trt.OnnxParser) -> list[str]:
    """One line per parser error, naming the ONNX node and its op type."""
    lines = []
    for index in range(parser.num_errors):
        error: Any = parser.get_error(index)
        name = error.node_name() or "<graph>"
        op = error.node_operator() or "?"
        stack = list(error.local_function_stack())
        inside = f" inside function {' > '.join(stack)}" if stack else ""
        lines.append(f"node {name!r} ({op}){inside}: {' '.join(str(error.desc()).split())}")
    return lines
