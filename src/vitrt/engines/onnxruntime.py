"""ONNX Runtime backend: the embedded default that runs vitrt ONNX files on any machine.

vitrt attention nodes carry standard-op function bodies, which ONNX Runtime inlines, so no custom-op library is
needed on CPU or with the CUDA execution provider. With the TensorRT execution provider and the vitrt plugin
library, the attention nodes are handed to TensorRT as plugins: ORT registers every TensorRT plugin as a custom op
in its `trt.plugins` domain (`trt_extra_plugin_lib_paths`), so the session gets a copy of the model whose vitrt
nodes live in that domain, without their function bodies.

CPU session defaults (`cpu_session_options`): denormal floats flushed to zero on ORT's intra-op threads. Swin-style
shifted-window masks add -100 before a softmax, whose exp(-100) ~ 3.7e-44 weights are denormal; the next MatMul on
them runs ~50x slower on x86 (microcode assists), which made every shifted-window block of a Swin backbone the slowest
op of the graph. Flushing changes no result above 1.2e-38. (With `intra_op_threads=1` ORT runs on the caller's thread,
which this setting does not reach.) ORT also applies the option of the process's *first* session to the thread that
creates it, which would switch the user's own thread (numpy, Python floats) to flush-to-zero for good; so before its
first session vitrt lets ORT record "off" with a one-node session (`_keep_caller_denormals`).

`InferenceSession.run` is thread-safe, so this backend needs no lock.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from vitrt.engines.base import InferenceBackend, TensorSpec
from vitrt.errors import ArtifactError, BackendUnavailableError
from vitrt.metadata import ModelMetadata

log = logging.getLogger(__name__)

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
TRT_PLUGIN_DOMAIN = "trt.plugins"
_TRT_EP = "TensorrtExecutionProvider"
_CUDA_EP = "CUDAExecutionProvider"
_CPU_EP = "CPUExecutionProvider"

Provider = str | tuple[str, dict[str, Any]]


class OnnxRuntimeBackend(InferenceBackend):
    """An ONNX file in an `onnxruntime.InferenceSession`.

    `providers`: None (CPU only), "auto" (TensorRT EP, then CUDA EP, then CPU, as far as this ORT build and
    machine have them; falls back when a GPU provider cannot take the model) or an explicit list.
    `plugins`: the vitrt TensorRT plugin library for the TensorRT EP ("auto", a path, or None).
    """

    name = "onnxruntime"

    def __init__(
        self,
        path: str | Path,
        *,
        providers: Sequence[Provider] | str | None = None,
        intra_op_threads: int | None = None,
        session_options: Any = None,
        plugins: str | Path | None = None,
    ) -> None:
        import onnxruntime as ort

        self.path = Path(path)
        if not self.path.is_file():
            raise ArtifactError(f"ONNX file not found: {self.path}")
        _check_nodes(self.path)
        options = session_options or cpu_session_options(intra_op_threads)
        if session_options is not None and intra_op_threads is not None:
            options.intra_op_num_threads = intra_op_threads
        available = set(ort.get_available_providers())
        auto = isinstance(providers, str)
        if isinstance(providers, str):
            if providers != "auto":
                raise ArtifactError(f"providers must be 'auto' or a list, got {providers!r}")
            chosen: list[Provider] = auto_providers(plugins)
        else:
            chosen = list(providers) if providers else [_CPU_EP]
        for provider in chosen:
            provider_name = provider[0] if isinstance(provider, tuple) else provider
            if provider_name not in available:
                have = ", ".join(sorted(available))
                raise BackendUnavailableError(f"ONNX Runtime provider {provider_name} is unavailable (have: {have})")
        self.session = self._create_session(ort, options, chosen, fallback=auto)
        self.providers = self.session.get_providers()
        self.device = "cuda" if {_TRT_EP, _CUDA_EP} & set(self.providers) else "cpu"
        self.inputs = [_spec(node) for node in self.session.get_inputs()]
        self.outputs = [_spec(node) for node in self.session.get_outputs()]
        props = self.session.get_modelmeta().custom_metadata_map
        self.metadata = ModelMetadata.from_props(props) if "vitrt.model" in props else None
        batch_dims = {spec.shape[0] for spec in self.inputs if spec.shape}
        self.max_batch_size = None if None in batch_dims or not batch_dims else int(min(d for d in batch_dims if d))

    def _create_session(self, ort: Any, options: Any, chosen: list[Provider], *, fallback: bool) -> Any:
        """A session on `chosen`; with `fallback`, drop GPU providers one by one when they cannot take the model."""
        while True:
            model: str | bytes = str(self.path)
            trt_options = next((p[1] for p in chosen if isinstance(p, tuple) and p[0] == _TRT_EP), None)
            if trt_options and trt_options.get("trt_extra_plugin_lib_paths"):
                model = tensorrt_plugin_model(self.path)
            try:
                return ort.InferenceSession(model, sess_options=options, providers=chosen)
            except Exception as err:  # ORT raises its own exception types for unreadable or invalid models
                message = " ".join(str(err).split())[:300]
                gpu = [p for p in chosen if (p[0] if isinstance(p, tuple) else p) != _CPU_EP]
                if fallback and gpu:
                    dropped = gpu[0][0] if isinstance(gpu[0], tuple) else gpu[0]
                    log.warning(
                        "ONNX Runtime provider %s cannot run %s (%s); trying without it", dropped, self.path, message
                    )
                    chosen = [p for p in chosen if p is not gpu[0]]
                    continue
                raise ArtifactError(f"ONNX Runtime cannot load {self.path}: {message}") from None

    def describe(self) -> str:
        return f"onnxruntime ({', '.join(self.providers)})"

    def run(self, feeds: Mapping[str, np.ndarray], output_names: list[str] | None = None) -> dict[str, np.ndarray]:
        names = output_names or [spec.name for spec in self.outputs]
        results = self.session.run(names, dict(feeds))
        return dict(zip(names, results, strict=True))


def cpu_session_options(intra_op_threads: int | None = None) -> Any:
    """vitrt's default `onnxruntime.SessionOptions`: denormals flushed to zero (see the module docstring)."""
    import onnxruntime as ort

    _keep_caller_denormals()
    options = ort.SessionOptions()
    options.add_session_config_entry("session.set_denormal_as_zero", "1")
    if intra_op_threads is not None:
        options.intra_op_num_threads = intra_op_threads
        options.inter_op_num_threads = 1
    return options


@functools.cache
def _keep_caller_denormals() -> None:
    """Create one plain session, so ORT's once-per-process flush-to-zero choice for the calling thread is "off"."""
    import onnxruntime as ort
    from onnx import TensorProto, helper

    tensor = [helper.make_tensor_value_info(name, TensorProto.FLOAT, [1]) for name in ("x", "y")]
    graph = helper.make_graph([helper.make_node("Identity", ["x"], ["y"])], "identity", tensor[:1], tensor[1:])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
    ort.InferenceSession(model.SerializeToString(), ort.SessionOptions(), providers=["CPUExecutionProvider"])


def auto_providers(plugins: str | Path | None = "auto") -> list[Provider]:
    """The fastest providers this ORT build and machine offer: TensorRT EP, CUDA EP, then CPU."""
    from vitrt.engines.availability import cuda_available, onnxruntime_providers
    from vitrt.engines.plugin_library import resolve_plugins
    from vitrt.files import cache_dir

    available = onnxruntime_providers()
    chosen: list[Provider] = []
    gpu = (_TRT_EP in available or _CUDA_EP in available) and cuda_available()
    if gpu and _TRT_EP in available:
        trt_options: dict[str, Any] = {
            "trt_engine_cache_enable": True,
            "trt_engine_cache_path": str(cache_dir() / "ort-tensorrt"),
            "trt_timing_cache_enable": True,
            "trt_timing_cache_path": str(cache_dir() / "ort-tensorrt"),
        }
        library = resolve_plugins(plugins if plugins is not None else "none")
        if library is not None:
            trt_options["trt_extra_plugin_lib_paths"] = str(library)
        chosen.append((_TRT_EP, trt_options))
    if gpu and _CUDA_EP in available:
        chosen.append(_CUDA_EP)
    chosen.append(_CPU_EP)
    return chosen


def tensorrt_plugin_model(path: Path) -> bytes:
    """The model with its vitrt nodes moved to ORT's `trt.plugins` domain and their function bodies removed."""
    from onnx import helper

    from vitrt import onnx_passes
    from vitrt.engines import onnx_graph

    model = onnx_passes.strip_functions(onnx_graph.load_model(path))
    for node in model.graph.node:
        if node.domain == onnx_passes.VITRT_DOMAIN:
            node.domain = TRT_PLUGIN_DOMAIN
    imports = [o for o in model.opset_import if o.domain != onnx_passes.VITRT_DOMAIN]
    del model.opset_import[:]
    model.opset_import.extend([*imports, helper.make_opsetid(TRT_PLUGIN_DOMAIN, 1)])
    return bytes(model.SerializeToString())


def _spec(node: Any) -> TensorSpec:
    dtype = _ORT_TYPES.get(node.type)
    if dtype is None:
        raise ArtifactError(f"unsupported ONNX tensor type {node.type} for {node.name}")
    shape = tuple(d if isinstance(d, int) else None for d in node.shape)
    return TensorSpec(name=node.name, dtype=dtype, shape=shape)


def _check_nodes(path: Path) -> None:
    """vitrt nodes against their op contracts, before ONNX Runtime turns a bad attribute into a shape error."""
    import onnx

    from vitrt.ops.validate import check_vitrt_nodes

    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception:  # not readable as ONNX: ONNX Runtime's own error below says so
        return
    check_vitrt_nodes(model, path)
