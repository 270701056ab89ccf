"""OpenVINO backend: the fast CPU path for vitrt's portable ONNX files (and OpenVINO IR).

OpenVINO's ONNX frontend has no conversion rule for the `vitrt` attention nodes, so the portable file is inlined in
memory at load time with the engines' single inliner (`vitrt.onnx_passes.inline_functions`, the one the TensorRT builder
uses for its `inlined` flavour); the file on disk stays the one artifact. An IR (`model.xml` + `model.bin`, as
`save_ir` writes it for Triton's OpenVINO backend) loads directly and keeps the vitrt metadata in its rt_info.

Precision is OpenVINO's inference precision hint: fp32, bf16 or fp16 (`f32`/`f16` accepted). BF16 and FP16 need
the CPU's instructions for them (AVX512-BF16/AMX, AVX512-FP16/AMX-FP16); OpenVINO itself would silently run FP32
on a CPU without them, so the backend refuses with a one-line reason, or, with `fallback_fp32=True`, logs that it
runs FP32 instead.

The numerically fragile steps (LayerNorm (MVN), softmax, the reductions behind norm denominators, the focusing
power) can be kept in FP32 (`keep_fp32`). The default "auto" keeps them in FP32 at fp16, whose 5-bit exponent
overflows in reductions and powers (on agent_digits and flatten_digits this cuts the max logit error 1.1-1.6x), and
not at bf16: bf16 has FP32's exponent range and the CPU plugin's normalisation and reduction kernels accumulate in
FP32 already, so pinning them gave bit-identical logits on those models while making bf16 about 20% slower
(flatten_swin_t, batch 8, 2592 -> 3194 ms in one run on a busy 2-core machine); at bf16 the plugin also leaves
Softmax in bf16 when marked. The plugin honours its "precise" runtime attribute (DisablePrecisionConversion) only
as the IR reader creates it (a string set from Python is ignored), so a marked model is written to a temporary IR
and read back before compilation.
`runtime_precisions()` reports what each op type ran in, from the compiled model's runtime graph.

Thread-safety: every `run` takes an infer request from a pool (one is created per concurrent caller), so calls from
several threads run at once on as many OpenVINO streams as the compiled model has.
"""

from __future__ import annotations

import logging
import threading
from collections import Counter
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from vitrt.engines.base import InferenceBackend, TensorSpec
from vitrt.errors import ArtifactError, BackendUnavailableError
from vitrt.metadata import ModelMetadata

log = logging.getLogger(__name__)

PRECISIONS = ("fp32", "bf16", "fp16")
PERFORMANCE_HINTS = ("latency", "throughput")
_ALIASES = {"f32": "fp32", "float32": "fp32", "f16": "fp16", "float16": "fp16", "bfloat16": "bf16"}
_HINT_VALUES = {"fp32": "f32", "bf16": "bf16", "fp16": "f16"}
# OPTIMIZATION_CAPABILITIES entry a CPU must report for each reduced precision.
_CAPABILITY = {"bf16": "BF16", "fp16": "FP16"}
IR_SUFFIXES = (".xml",)
_RT_INFO_KEY = "vitrt"
# rt_info keys `vitrt quantize --target openvino` writes (JSON strings): the export metadata_props and the
# quantization record (target, calibration, budget, accuracy); read_onnx copies an INT8 ONNX file's record there too.
_RT_METADATA_JSON = "vitrt_metadata"
_RT_QUANTIZATION_JSON = "vitrt_quantization"
_ONNX_QUANTIZATION_KEY = "vitrt.quantization"
INSTALL_HINT = "pip install openvino"
# OpenVINO op types kept in FP32 at reduced precision: LayerNorm (MVN), softmax, the reductions that form norm
# denominators (FLatten/InLine/Agent normalisers), the focusing power and square roots of norms.
FRAGILE_OPS = ("MVN", "Softmax", "ReduceSum", "ReduceMean", "ReduceMax", "ReduceL2", "Power", "Sqrt", "NormalizeL2")
_PRECISE_KEY = "precise_0"  # DisableFP16Compression's rt_info name, which the IR deserialiser turns into the attribute


def normalise_precision(precision: str) -> str:
    """fp32 | bf16 | fp16 from any accepted spelling; ArtifactError names the choices otherwise."""
    name = _ALIASES.get(str(precision).lower(), str(precision).lower())
    if name not in PRECISIONS:
        raise ArtifactError(f"unknown OpenVINO precision {precision!r}; choose from fp32, bf16, fp16 (or f16)")
    return name


def precision_problem(precision: str, capabilities: tuple[str, ...] | list[str]) -> str | None:
    """Why a CPU reporting `capabilities` (OpenVINO's OPTIMIZATION_CAPABILITIES) cannot run `precision`, or None."""
    needed = _CAPABILITY.get(precision)
    if needed is None or needed in capabilities:
        return None
    instructions = "AVX512-BF16 or AMX" if precision == "bf16" else "AVX512-FP16 or AMX-FP16"
    return (
        f"this CPU cannot run OpenVINO at {precision} (it lacks {instructions}; OpenVINO reports "
        f"{', '.join(capabilities) or 'no capabilities'}); use --precision fp32, or allow the FP32 fallback "
        "with backend option fallback_fp32=true"
    )


def device_precision_problem(precision: str, device: str = "CPU") -> str | None:
    """Why this machine's OpenVINO `device` cannot run `precision`, or None (asks OpenVINO's capabilities)."""
    ov = require_openvino()
    return precision_problem(
        normalise_precision(precision), tuple(ov.Core().get_property(device, "OPTIMIZATION_CAPABILITIES"))
    )


def fp32_op_types(keep_fp32: str | Sequence[str] | None) -> tuple[str, ...]:
    """The OpenVINO op types `keep_fp32` names: "fragile" (FRAGILE_OPS), "none"/None/empty, or a list of types
    ("auto" is resolved by the backend, which knows the precision)."""
    if keep_fp32 is None:
        return ()
    if isinstance(keep_fp32, str):
        word = keep_fp32.strip().lower()
        if word == "fragile":
            return FRAGILE_OPS
        if word in ("none", ""):
            return ()
        keep_fp32 = [part for part in keep_fp32.split(",") if part.strip()]
    types = tuple(dict.fromkeys(str(t).strip() for t in keep_fp32))
    bad = [t for t in types if not t.isidentifier()]
    if bad:
        raise ArtifactError(
            f"keep_fp32: {bad[0]!r} is not an OpenVINO op type; give auto, fragile, none or e.g. MVN,Softmax"
        )
    return types


def require_openvino() -> Any:
    """The `openvino` module, or BackendUnavailableError saying how to install it."""
    try:
        import openvino
    except ImportError:
        raise BackendUnavailableError(f"OpenVINO is not installed ({INSTALL_HINT}, or pip install vitrt)") from None
    except Exception as err:  # a broken install (missing shared libraries)
        detail = " ".join(str(err).split())[:160]
        raise BackendUnavailableError(f"OpenVINO cannot be imported ({type(err).__name__}: {detail})") from None
    return openvino


def openvino_available() -> bool:
    """True when `openvino` imports (a package that is present but broken counts as unavailable)."""
    try:
        require_openvino()
    except BackendUnavailableError:
        return False
    return True


class OpenVINOBackend(InferenceBackend):
    """A portable vitrt ONNX file (inlined in memory) or an OpenVINO IR, compiled for the CPU.

    precision: fp32 (default), bf16 or fp16: OpenVINO's inference precision hint.
    performance_hint: "latency" (default; few streams, all threads on one request) or "throughput".
    threads: INFERENCE_NUM_THREADS (default: OpenVINO's choice, all physical cores).
    streams: NUM_STREAMS (default: chosen by the performance hint).
    cache: OpenVINO's compiled-model cache directory: True (default) = <vitrt cache dir>/openvino, a path, or
        False for none; a second load of the same model skips compilation. Entries live in a sub-folder per
        artifact content (sha256), compile properties (precision, hint, threads, ...) and FP32 pin set.
    fallback_fp32: on a CPU without the instructions for `precision`, log a warning and run FP32 instead of
        raising BackendUnavailableError.
    keep_fp32: at bf16/fp16, op types that stay FP32: "auto" (default: "fragile" at fp16, "none" at bf16),
        "fragile" (FRAGILE_OPS), "none", or a list such as ["MVN", "ReduceSum"] (OpenVINO op type names).
    device: the OpenVINO device (default "CPU").
    config: extra OpenVINO properties, e.g. {"ENABLE_HYPER_THREADING": "NO"}.
    """

    name = "openvino"

    def __init__(
        self,
        path: str | Path,
        *,
        precision: str = "fp32",
        performance_hint: str = "latency",
        threads: int | None = None,
        streams: int | str | None = None,
        cache: bool | str | Path = True,
        fallback_fp32: bool = False,
        keep_fp32: str | Sequence[str] | None = "auto",
        device: str = "CPU",
        config: Mapping[str, Any] | None = None,
    ) -> None:
        ov = require_openvino()
        self.path = Path(path)
        if not self.path.is_file():
            raise ArtifactError(
                f"{'OpenVINO IR' if self.path.suffix in IR_SUFFIXES else 'ONNX file'} not found: {path}"
            )
        requested = normalise_precision(precision)
        hint = str(performance_hint).lower()
        if hint not in PERFORMANCE_HINTS:
            raise ArtifactError(f"unknown OpenVINO performance_hint {performance_hint!r}; choose latency or throughput")
        if threads is not None and (not isinstance(threads, int) or threads < 1):
            raise ArtifactError(f"OpenVINO threads must be a positive integer, got {threads!r}")
        core = ov.Core()
        if device not in core.available_devices:
            have = ", ".join(core.available_devices) or "none"
            raise BackendUnavailableError(f"OpenVINO device {device!r} is not available (have: {have})")
        self.requested_precision = requested
        self.precision = self._supported_precision(core, device, requested, fallback_fp32)
        self.performance_hint = hint
        model, self.metadata = self._read(core, ov)
        # The INT8 provenance of a quantized model (`vitrt quantize`): None for a float model.
        self.quantization = _quantization_record(model)
        if isinstance(keep_fp32, str) and keep_fp32.strip().lower() == "auto":
            keep_fp32 = "fragile" if self.precision == "fp16" else "none"
        self.fp32_ops = fp32_op_types(keep_fp32) if self.precision != "fp32" else ()
        properties: dict[str, Any] = {
            "INFERENCE_PRECISION_HINT": _HINT_VALUES[self.precision],
            "PERFORMANCE_HINT": hint.upper(),
        }
        if threads is not None:
            properties["INFERENCE_NUM_THREADS"] = int(threads)
        if streams is not None:
            properties["NUM_STREAMS"] = str(streams)
        properties.update(dict(config or {}))
        self.cache_dir = _cache_dir(cache)
        if self.cache_dir is not None:
            # One folder per artifact content, compile properties and FP32 pin set: OpenVINO 2026.4's cache key for
            # an in-memory model ignores the precision hint, and a bf16 compile then imports the fp32 blob and
            # returns wrong logits (max error 2 on flatten_digits), so vitrt's key carries what OpenVINO's lacks.
            self.cache_dir = self.cache_dir / _artifact_key(self.path, properties, self.fp32_ops)
            self.cache_dir.mkdir(parents=True, exist_ok=True)
            properties["CACHE_DIR"] = str(self.cache_dir)
        try:
            self.compiled = _compile(core, ov, model, device, properties, self.fp32_ops)
        except Exception as err:  # OpenVINO raises RuntimeError subclasses with multi-line messages
            raise ArtifactError(
                f"OpenVINO cannot compile {self.path} for {device}: {_one_line(err)}; check the backend options, "
                "or serve it with --backend onnxruntime"
            ) from None
        self.device = device.lower()
        self.inputs = [_spec(port) for port in self.compiled.inputs]
        self.outputs = [_spec(port) for port in self.compiled.outputs]
        batch_dims = {spec.shape[0] for spec in self.inputs if spec.shape}
        self.max_batch_size = None if None in batch_dims or not batch_dims else int(min(d for d in batch_dims if d))
        self.streams = int(self.compiled.get_property("NUM_STREAMS"))
        self._pool: list[Any] = []
        self._lock = threading.Lock()

    @staticmethod
    def _supported_precision(core: Any, device: str, precision: str, fallback_fp32: bool) -> str:
        capabilities = tuple(core.get_property(device, "OPTIMIZATION_CAPABILITIES"))
        problem = precision_problem(precision, capabilities)
        if problem is None:
            return precision
        if not fallback_fp32:
            raise BackendUnavailableError(problem)
        log.warning("OpenVINO runs FP32 instead of %s: %s", precision, problem.split(";")[0])
        return "fp32"

    def _read(self, core: Any, ov: Any) -> tuple[Any, ModelMetadata | None]:
        if self.path.suffix in IR_SUFFIXES:
            try:
                model = core.read_model(str(self.path))
            except Exception as err:
                raise ArtifactError(f"OpenVINO cannot read the IR {self.path}: {_one_line(err)}") from None
            return model, _ir_metadata(model)
        return read_onnx(self.path, core)

    def describe(self) -> str:
        fallback = f", fell back from {self.requested_precision}" if self.precision != self.requested_precision else ""
        hint = f"{self.performance_hint}, {self.streams} streams"
        int8 = ""
        if self.quantization is not None:
            int8 = f", int8 by vitrt quantize for {self.quantization.get('target', '?')}"
        pinned = f", {'/'.join(self.fp32_ops[:2])}... in fp32" if self.fp32_ops else ""
        return f"openvino ({self.device.upper()}, {self.precision}{fallback}{int8}{pinned}, {hint})"

    def run(self, feeds: Mapping[str, np.ndarray], output_names: list[str] | None = None) -> dict[str, np.ndarray]:
        names = output_names or [spec.name for spec in self.outputs]
        request = self._acquire()
        try:
            results = request.infer(dict(feeds))
            by_name = {alias: value for port, value in results.items() for alias in port.get_names()}
            out = {}
            for name in names:
                if name not in by_name:
                    raise ArtifactError(f"the OpenVINO model has no output {name!r}")
                out[name] = np.array(by_name[name], copy=True)  # the request reuses its output buffers
            return out
        finally:
            with self._lock:
                self._pool.append(request)

    def _acquire(self) -> Any:
        with self._lock:
            if self._pool:
                return self._pool.pop()
        return self.compiled.create_infer_request()

    def runtime_precisions(self) -> dict[str, dict[str, int]]:
        """{runtime precision: {op type: count}} of the compiled graph's compute ops, as OpenVINO reports them."""
        counts: Counter[tuple[str, str]] = Counter()
        for op in self.compiled.get_runtime_model().get_ordered_ops():
            info = op.get_rt_info()
            layer = str(info["layerType"].astype(str)) if "layerType" in info else op.get_type_name()
            if layer in _NON_COMPUTE_LAYERS:
                continue
            precision = str(info["runtimePrecision"].astype(str)) if "runtimePrecision" in info else "?"
            counts[(precision, layer)] += 1
        table: dict[str, dict[str, int]] = {}
        for (precision, layer), count in sorted(counts.items()):
            table.setdefault(precision, {})[layer] = count
        return table

    def close(self) -> None:
        with self._lock:
            self._pool.clear()
        self.compiled = None


# Runtime graph nodes that only move or hold data.
_NON_COMPUTE_LAYERS = frozenset({"Input", "Output", "Const", "Reorder", "Reshape", "ShapeOf", "Convert"})


def _compile(core: Any, ov: Any, model: Any, device: str, properties: dict[str, Any], fp32_ops: tuple[str, ...]) -> Any:
    """compile_model, with the ops of `fp32_ops` types marked precise (through the IR serialiser, see the module
    docstring) so the plugin keeps them in FP32 at a reduced inference precision."""
    import tempfile

    marked = 0
    wanted = set(fp32_ops)
    for op in model.get_ordered_ops() if wanted else ():
        if op.get_type_name() in wanted:
            op.get_rt_info()[_PRECISE_KEY] = ""
            marked += 1
    if not marked:
        return core.compile_model(model, device, properties)
    log.debug("OpenVINO keeps %d ops (%s) in FP32", marked, ", ".join(fp32_ops))
    # Compiled inside the folder: the read model may map model.bin (on Linux an unlinked mapping stays valid).
    with tempfile.TemporaryDirectory(prefix="vitrt-ov-", ignore_cleanup_errors=True) as tmp:
        xml = Path(tmp) / "model.xml"
        ov.serialize(model, str(xml), str(xml.with_suffix(".bin")))
        return core.compile_model(core.read_model(str(xml)), device, properties)


def read_onnx(path: Path, core: Any = None) -> tuple[Any, ModelMetadata | None]:
    """An `openvino.Model` of a vitrt ONNX file (vitrt nodes inlined in memory) and the file's vitrt metadata."""
    from vitrt import onnx_passes
    from vitrt.engines import onnx_graph

    ov = require_openvino()
    proto = onnx_graph.load_model(path)
    metadata = onnx_graph.model_metadata(proto)
    if onnx_passes.vitrt_nodes(proto):
        proto, _ = onnx_passes.inline_functions(proto)
    core = core or ov.Core()
    try:
        model = core.read_model(proto.SerializeToString(), b"")
    except Exception as err:
        raise ArtifactError(
            f"OpenVINO cannot convert {path}: {_one_line(err)}; serve it with --backend onnxruntime instead"
        ) from None
    record = next((p.value for p in proto.metadata_props if p.key == _ONNX_QUANTIZATION_KEY), None)
    if record is not None:
        model.set_rt_info(record, [_RT_QUANTIZATION_JSON])
    return model, metadata


def save_ir(onnx_path: str | Path, xml_path: str | Path) -> list[Path]:
    """Write the OpenVINO IR (`.xml` + `.bin`, FP32 weights) of a vitrt ONNX file; returns the files written.

    The vitrt metadata goes into the IR's rt_info, so `OpenVINOBackend` (and `vitrt serve`) read it back.
    """
    ov = require_openvino()
    xml = Path(xml_path)
    model, metadata = read_onnx(Path(onnx_path))
    if metadata is not None:
        for key, value in metadata.to_props().items():
            model.set_rt_info(value, [_RT_INFO_KEY, key])
    xml.parent.mkdir(parents=True, exist_ok=True)
    ov.save_model(model, str(xml), compress_to_fp16=False)
    return [xml, xml.with_suffix(".bin")]


def read_ir_records(xml_path: str | Path) -> tuple[ModelMetadata | None, dict[str, Any] | None]:
    """The vitrt export metadata and the `vitrt quantize` record of an OpenVINO IR, read without compiling it."""
    ov = require_openvino()
    try:
        model = ov.Core().read_model(str(xml_path))
    except Exception as err:
        raise ArtifactError(f"OpenVINO cannot read {xml_path}: {_one_line(err)}") from None
    return _ir_metadata(model), _quantization_record(model)


def _ir_metadata(model: Any) -> ModelMetadata | None:
    if model.has_rt_info([_RT_INFO_KEY, "vitrt.model"]):
        info = model.get_rt_info()[_RT_INFO_KEY]
        props = {str(key): str(info[key].astype(str)) for key in info.keys()}  # noqa: SIM118  (OVAny mapping)
    elif model.has_rt_info([_RT_METADATA_JSON]):
        loaded = _rt_json(model, _RT_METADATA_JSON)
        if not isinstance(loaded, dict) or "vitrt.model" not in loaded:
            return None
        props = {str(key): str(value) for key, value in loaded.items()}
    else:
        return None
    try:
        return ModelMetadata.from_props(props)
    except (ValueError, TypeError) as err:
        raise ArtifactError(f"the IR's vitrt metadata is malformed ({err})") from None


def _rt_json(model: Any, key: str) -> Any:
    """A JSON string stored in the model's rt_info under `key`, decoded; ArtifactError when it is not JSON."""
    import json

    raw = str(model.get_rt_info()[key].astype(str))
    try:
        return json.loads(raw)
    except ValueError as err:
        raise ArtifactError(f"the model's rt_info {key} is not valid JSON ({err})") from None


def _quantization_record(model: Any) -> dict[str, Any] | None:
    """The `vitrt quantize` record of an INT8 model (rt_info `vitrt_quantization`), or None for a float model."""
    if not model.has_rt_info([_RT_QUANTIZATION_JSON]):
        return None
    record = _rt_json(model, _RT_QUANTIZATION_JSON)
    return record if isinstance(record, dict) else None


def _artifact_key(path: Path, properties: Mapping[str, Any], fp32_ops: tuple[str, ...]) -> str:
    import hashlib

    from vitrt.files import sha256_file

    digest = hashlib.sha256(sha256_file(path).encode())
    if path.suffix in IR_SUFFIXES and path.with_suffix(".bin").is_file():
        digest.update(sha256_file(path.with_suffix(".bin")).encode())
    digest.update(repr(sorted((str(k), str(v)) for k, v in properties.items() if k != "CACHE_DIR")).encode())
    digest.update(",".join(fp32_ops).encode())
    return digest.hexdigest()[:20]


def _cache_dir(cache: bool | str | Path) -> Path | None:
    if cache is False or cache is None:
        return None
    if cache is True:
        from vitrt.files import cache_dir

        return cache_dir() / "openvino"
    return Path(cache).expanduser()


def _spec(port: Any) -> TensorSpec:
    shape = tuple(d.get_length() if d.is_static else None for d in port.get_partial_shape())
    try:
        dtype = np.dtype(port.get_element_type().to_dtype()).name
    except Exception:
        raise ArtifactError(
            f"unsupported OpenVINO tensor type {port.get_element_type()} for {port.get_any_name()}"
        ) from None
    return TensorSpec(name=port.get_any_name(), dtype=dtype, shape=shape)


def _one_line(err: BaseException) -> str:
    lines = [line.strip() for line in str(err).splitlines() if line.strip()]
    # OpenVINO puts the useful sentence after its "Check ... failed at ..." location lines.
    useful = [line for line in lines if not line.startswith(("Check ", "Exception from", "../", "/"))]
    text = " ".join(useful or lines)
    text = text.split(" To facilitate the conversion")[0]  # the frontend's pointer to its extension docs
    return text[:300] or type(err).__name__
