"""TensorRT backend: a `vitrt build` engine, checked against its manifest before TensorRT ever sees it.

Loading order matters: the manifest is verified first (TensorRT version, GPU compute capability, plugin library
hash; `allow_mismatch=True` downgrades refusals to warnings), then the plugin library the engine was built with
is registered, and only then is the plan deserialised, so a missing plugin is reported by vitrt instead of as
"IPluginCreator not found" from inside TensorRT (deploy spec §1.9).

I/O goes through torch CUDA tensors on a private stream. With `cuda_graphs=True` each input shape is captured
once as a CUDA graph and replayed afterwards (static buffers per shape).

Thread-safety: one execution context per backend, guarded by a lock; concurrent `run` calls are serialised.
"""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from vitrt.engines.base import InferenceBackend, InputError, TensorSpec
from vitrt.engines.manifest import EngineManifest, RuntimeEnvironment, manifest_path, verify_engine
from vitrt.engines.plugin_library import find_plugin_library, resolve_plugins
from vitrt.errors import ArtifactError, BackendUnavailableError

if TYPE_CHECKING:
    import tensorrt as trt

log = logging.getLogger(__name__)

MAX_CUDA_GRAPHS = 8


@dataclass
class _CapturedGraph:
    graph: Any  # torch.cuda.CUDAGraph
    inputs: dict[str, Any]  # name -> static torch tensor
    outputs: dict[str, Any]


class TensorRTBackend(InferenceBackend):
    name = "tensorrt"

    def __init__(
        self,
        path: str | Path,
        *,
        device: int | None = None,
        plugins: str | Path | None = None,
        allow_mismatch: bool = False,
        cuda_graphs: bool = False,
    ) -> None:
        """`plugins`: None = the library recorded in the manifest (else the one vitrt finds), "auto", "none" or a
        path. `device`: CUDA device index (default: the current device)."""
        from vitrt.engines.availability import require_tensorrt

        require_tensorrt()
        import tensorrt as trt
        import torch

        from vitrt.engines import _trt

        self.path = Path(path)
        if not self.path.is_file():
            raise ArtifactError(f"engine not found: {self.path}")
        self.device_index = torch.cuda.current_device() if device is None else int(device)
        if self.device_index >= torch.cuda.device_count():
            raise BackendUnavailableError(f"CUDA device {self.device_index} does not exist")
        self.device = f"cuda:{self.device_index}"
        library = _plugin_library_for(self.path, plugins)
        env = RuntimeEnvironment.current(library, self.device_index)
        self.manifest: EngineManifest | None = verify_engine(self.path, env, allow_mismatch=allow_mismatch)
        if library is not None:
            _trt.load_plugin_library(library)
        self.plugin_library = library

        self._logger = _trt.get_logger()
        self._logger.clear_errors()
        with torch.cuda.device(self.device_index):
            self._runtime = trt.Runtime(self._logger)
            if self.manifest is not None and self.manifest.version_compatible:
                # Version-compatible plans carry their lean runtime (and, built by vitrt, the plugin library).
                self._runtime.engine_host_code_allowed = True
            engine = self._runtime.deserialize_cuda_engine(self.path.read_bytes())
            if engine is None:
                reason = self._logger.last_error() or "see the TensorRT log"
                raise ArtifactError(f"TensorRT cannot deserialise {self.path.name}: {reason}")
            self._engine: trt.ICudaEngine | None = engine
            self._context: trt.IExecutionContext | None = engine.create_execution_context()
            self._stream = torch.cuda.Stream(device=self.device_index)
        self._dtypes: dict[str, trt.DataType] = {}
        inputs, outputs = [], []
        for index in range(engine.num_io_tensors):
            name = engine.get_tensor_name(index)
            dtype = engine.get_tensor_dtype(name)
            self._dtypes[name] = dtype
            spec = TensorSpec(name, _trt.host_dtype(dtype).name, _trt.dims(engine.get_tensor_shape(name)))
            if engine.get_tensor_mode(name) == trt.TensorIOMode.INPUT:
                inputs.append(spec)
            else:
                outputs.append(spec)
        self.inputs, self.outputs = inputs, outputs
        profiles = [engine.get_tensor_profile_shape(spec.name, 0) for spec in inputs if spec.shape]
        self.max_batch_size = min(int(p[2][0]) for p in profiles) if profiles else None
        # Smallest batch the profile accepts (callers pad short batches up to it).
        self.min_batch_size = max(int(p[0][0]) for p in profiles) if profiles else 1
        self.metadata = self.manifest.model_metadata() if self.manifest else None
        self.precision = self.manifest.precision if self.manifest else "unknown"
        self.cuda_graphs = cuda_graphs
        self._graphs: OrderedDict[tuple[tuple[int, ...], ...], _CapturedGraph] = OrderedDict()
        self._lock = threading.Lock()
        self._closed = False

    def describe(self) -> str:
        graphs = ", CUDA graphs" if self.cuda_graphs else ""
        plugins = f", plugins {self.plugin_library.name}" if self.plugin_library else ""
        return f"tensorrt on {self.device} ({self.precision}{plugins}{graphs})"

    def run(self, feeds: Mapping[str, np.ndarray], output_names: list[str] | None = None) -> dict[str, np.ndarray]:
        import torch

        names = output_names or [spec.name for spec in self.outputs]
        unknown = sorted(set(names) - {spec.name for spec in self.outputs})
        if unknown:
            raise InputError(f"unknown output {unknown[0]!r}")
        with self._lock:
            if self._closed:
                raise ArtifactError(f"{self.path.name}: the backend is closed")
            with torch.cuda.device(self.device_index), torch.cuda.stream(self._stream):
                device_inputs = {name: self._to_device(name, array) for name, array in feeds.items()}
                run_once = self._run_graph if self.cuda_graphs else self._execute
                device_outputs = run_once(device_inputs)
                results = {
                    name: device_outputs[name].float() if self._is_bf16(name) else device_outputs[name]
                    for name in names
                }
                host = {name: tensor.cpu() for name, tensor in results.items()}
            self._stream.synchronize()
        return {name: tensor.numpy() for name, tensor in host.items()}

    def _to_device(self, name: str, array: np.ndarray) -> Any:
        import torch

        from vitrt.engines import _trt

        tensor = torch.from_numpy(np.ascontiguousarray(array)).to(f"cuda:{self.device_index}", non_blocking=True)
        return tensor.to(_trt.torch_dtype(self._dtypes[name])).contiguous()

    def _is_bf16(self, name: str) -> bool:
        import tensorrt as trt

        return self._dtypes[name] == trt.DataType.BF16

    def _live_context(self) -> trt.IExecutionContext:
        if self._context is None:
            raise ArtifactError(f"{self.path.name}: the backend is closed")
        return self._context

    def _bind(self, inputs: Mapping[str, Any]) -> dict[str, Any]:
        """Set input shapes and addresses, allocate outputs for the resulting shapes, bind them."""
        import torch

        from vitrt.engines import _trt

        context = self._live_context()
        for name, tensor in inputs.items():
            if not context.set_input_shape(name, tuple(tensor.shape)):
                raise InputError(f"input {name!r} shape {list(tensor.shape)} is outside the engine's profile")
            context.set_tensor_address(name, tensor.data_ptr())
        outputs = {}
        for spec in self.outputs:
            shape = context.get_tensor_shape(spec.name)
            dims = tuple(int(shape[i]) for i in range(len(shape)))
            out = torch.empty(dims, dtype=_trt.torch_dtype(self._dtypes[spec.name]), device=f"cuda:{self.device_index}")
            context.set_tensor_address(spec.name, out.data_ptr())
            outputs[spec.name] = out
        return outputs

    def _execute(self, inputs: Mapping[str, Any]) -> dict[str, Any]:
        outputs = self._bind(inputs)
        if not self._live_context().execute_async_v3(self._stream.cuda_stream):
            raise ArtifactError(f"TensorRT execution failed: {self._logger.last_error() or 'see the TensorRT log'}")
        return outputs

    def _run_graph(self, inputs: Mapping[str, Any]) -> dict[str, Any]:
        import torch

        key = tuple(tuple(inputs[spec.name].shape) for spec in self.inputs)
        captured = self._graphs.get(key)
        if captured is None:
            static_inputs = {name: tensor.clone() for name, tensor in inputs.items()}
            outputs = self._execute(static_inputs)  # flushes TensorRT's deferred setup before capture
            graph = torch.cuda.CUDAGraph()
            with torch.cuda.graph(graph, stream=self._stream):
                self._live_context().execute_async_v3(self._stream.cuda_stream)
            captured = _CapturedGraph(graph, static_inputs, outputs)
            self._graphs[key] = captured
            if len(self._graphs) > MAX_CUDA_GRAPHS:
                self._graphs.popitem(last=False)
        else:
            self._graphs.move_to_end(key)
        for name, tensor in inputs.items():
            captured.inputs[name].copy_(tensor)
        captured.graph.replay()
        return {name: tensor.clone() for name, tensor in captured.outputs.items()}

    def close(self) -> None:
        with self._lock:
            self._graphs.clear()
            self._context = None
            self._engine = None
            self._closed = True


def _plugin_library_for(engine_path: Path, plugins: str | Path | None) -> Path | None:
    """The plugin library to load for an engine (see TensorRTBackend)."""
    if plugins is not None:
        return resolve_plugins(plugins)
    path = manifest_path(engine_path)
    if not path.is_file():
        return resolve_plugins("auto")
    manifest = EngineManifest.load(path)
    if not manifest.plugin_library:
        return None
    recorded = Path(manifest.plugin_library)
    if recorded.is_file():
        return recorded
    found, where = find_plugin_library()
    if found is None:
        log.warning("plugin library %s from the manifest is gone and no other was found: %s", recorded, where)
    return found
