"""`vitrt build`: a vitrt ONNX file -> a TensorRT engine (`model.plan`) and its manifest (`model.plan.json`).

    >>> from vitrt.engines.builder import BuildOptions, build_engine
    >>> result = build_engine("agent_deit_t.onnx", "agent_deit_t.plan", BuildOptions(precision="fp16"))

`precision="int8"` builds an explicit-quantization file written by `vitrt quantize --target tensorrt` (Q/DQ on the
linear layers, symmetric INT8, attention nodes float): TensorRT fuses each DQ -> MatMul/Conv into an INT8 kernel,
the other layers run FP16 (weakly typed) or as written, FP32 (strongly typed), and the fragile FP32 islands stay
pinned as in any reduced-precision build. The engine manifest records the quantization (target, method,
calibration data and its sha256, accuracy on the held-out data).

The build is split in two: `plan_build` does everything that needs only ONNX (flavour choice, plugin resolution,
FP32 islands, the strongly typed rewrite, optimisation profiles) and runs anywhere; `build_engine` hands the
prepared graph to TensorRT. TensorRT is imported lazily: without it (or without a GPU) `build_engine` raises
`BackendUnavailableError` with a one-line reason.
"""

from __future__ import annotations

import hashlib
import logging
import os
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from vitrt import onnx_passes
from vitrt.engines import onnx_graph
from vitrt.engines.base import TensorSpec
from vitrt.engines.manifest import HARDWARE_COMPATIBILITY, EngineManifest, manifest_path, now_iso
from vitrt.engines.plugin_library import resolve_plugins
from vitrt.errors import EngineBuildError, PluginError
from vitrt.files import atomic_write, cache_dir, sha256_file
from vitrt.ops.validate import check_vitrt_nodes

if TYPE_CHECKING:
    import onnx

    from vitrt.metadata import ModelMetadata

log = logging.getLogger(__name__)

PRECISIONS = ("fp32", "fp16", "bf16", "int8")
DEFAULT_DYNAMIC_BATCH = (1, 8, 32)


@dataclass
class BuildOptions:
    """How to build an engine; every field has a CLI flag of the same name on `vitrt build`."""

    precision: str = "fp32"
    # Strongly typed network: precision comes from explicit casts in the graph (vitrt inserts them around the
    # FP32 islands) instead of builder flags; TensorRT then never picks a lower precision than written.
    strongly_typed: bool = False
    # "N" (fixed) or "min:opt:max"; None = from the ONNX metadata / input shape (dynamic default 1:8:32).
    batch: str | None = None
    workspace_mib: int | None = None
    # A file path, "default" (a per-TensorRT-version, per-GPU file in the user cache dir) or "none".
    timing_cache: str = "default"
    # "auto" (vitrt plugin library when the model has vitrt ops and it is found, else inlined ops), a path, "none".
    plugins: str = "auto"
    # fragile (default: norms, softmaxes, denominators; attention plugins in FP16/BF16) | all | none
    fp32_islands: str = onnx_graph.DEFAULT_ISLAND_MODE
    tf32: bool = False  # TF32 matmuls in FP32 builds (faster, ~1e-3 relative error)
    optimization_level: int | None = None  # TensorRT builder optimisation level 0..5 (default 3)
    hardware_compatibility: str = "none"
    version_compatible: bool = False
    progress: bool | None = None  # rich progress bars; None = when stderr is a terminal

    def validate(self) -> None:
        if self.precision not in PRECISIONS:
            raise EngineBuildError(f"unknown precision {self.precision!r}; choose from {', '.join(PRECISIONS)}")
        self.fp32_islands = onnx_graph.island_mode(self.fp32_islands)
        if self.hardware_compatibility not in HARDWARE_COMPATIBILITY:
            raise EngineBuildError(
                f"unknown hardware compatibility {self.hardware_compatibility!r}; choose from "
                f"{', '.join(HARDWARE_COMPATIBILITY)}"
            )
        if self.workspace_mib is not None and self.workspace_mib <= 0:
            raise EngineBuildError(f"workspace must be a positive number of MiB, got {self.workspace_mib}")
        if self.optimization_level is not None and not 0 <= self.optimization_level <= 5:
            raise EngineBuildError(f"optimisation level must be 0..5, got {self.optimization_level}")
        if self.batch is not None:
            parse_batch(self.batch)


@dataclass
class BuildPlan:
    """The ONNX-side half of a build, ready for TensorRT's parser."""

    model: onnx.ModelProto
    flavour: str  # "tensorrt" (vitrt nodes -> plugins) or "inlined"
    plugin_library: Path | None
    # (op_type, plugin_version, plugin_namespace) of every vitrt node, for the registry check.
    plugin_ops: list[tuple[str, str, str]]
    fp32_nodes: set[str]
    # input name -> (min, opt, max) full shapes
    profile: dict[str, tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...]]]
    metadata: ModelMetadata | None
    onnx_sha256: str
    notes: list[str] = field(default_factory=list)
    # The `vitrt quantize` record of an INT8 (Q/DQ) file, for the manifest; None for a float build.
    quantization: dict[str, Any] | None = None


@dataclass
class BuildResult:
    engine_path: Path
    manifest_path: Path
    manifest: EngineManifest
    seconds: float
    fp32_layers: int
    plan: BuildPlan


def parse_batch(text: str | int) -> tuple[int, int, int]:
    """ "8" -> (8, 8, 8); "1:8:32" -> (1, 8, 32)."""
    parts = str(text).strip().split(":")
    try:
        values = [int(p) for p in parts]
    except ValueError:
        raise EngineBuildError(f"batch must be N or MIN:OPT:MAX with integers, got {text!r}") from None
    if len(values) == 1:
        values *= 3
    if len(values) != 3:
        raise EngineBuildError(f"batch must be N or MIN:OPT:MAX, got {text!r}")
    low, opt, high = values
    if low < 1 or not low <= opt <= high:
        raise EngineBuildError(f"batch profile needs 1 <= MIN <= OPT <= MAX, got {text!r}")
    return low, opt, high


def default_timing_cache(tensorrt_version: str, compute_capability: str) -> Path:
    """Timing caches are only valid for one TensorRT version and GPU architecture: one file per pair."""
    return cache_dir() / "tensorrt" / f"timing-trt{tensorrt_version}-sm{compute_capability.replace('.', '')}.cache"


def plan_build(onnx_path: str | Path, options: BuildOptions) -> BuildPlan:
    """Prepare the graph TensorRT will parse (no TensorRT needed)."""
    options.validate()
    onnx_path = Path(onnx_path)
    model = onnx_graph.load_model(onnx_path)
    onnx_passes.ensure_node_names(model)
    check_vitrt_nodes(model, onnx_path)
    metadata = onnx_graph.model_metadata(model)
    notes: list[str] = []
    quantization = _int8_check(model, onnx_path, options)
    if quantization is not None and options.strongly_typed:
        notes.append("strongly typed INT8: the layers outside the Q/DQ pairs run in FP32, as the file types them")
    calls = onnx_passes.vitrt_nodes(model)
    plugin_library = resolve_plugins(options.plugins) if calls else None
    flavour = "tensorrt" if plugin_library is not None else "inlined"
    if calls and flavour == "inlined" and options.plugins == "auto":
        notes.append("vitrt plugin library not found: building the inlined flavour (attention as standard ops)")
    if not calls and options.plugins not in ("auto", "none"):
        notes.append("the model has no vitrt ops: the plugin library is not needed")

    reduced = options.precision != "fp32" and not (options.precision == "int8" and options.strongly_typed)
    call_islands = onnx_graph.fp32_island_nodes(model, options.fp32_islands) if reduced else set()
    if reduced and options.strongly_typed:
        low = "fp16" if options.precision == "fp16" else "bf16"
        model = onnx_graph.cast_fp32_islands(model, low, call_islands)
    plugin_ops: list[tuple[str, str, str]] = []
    if flavour == "tensorrt":
        model = onnx_passes.strip_functions(model)
        for node in onnx_passes.vitrt_nodes(model):
            attrs = {a.name: a.s.decode() for a in node.attribute if a.name in ("plugin_version", "plugin_namespace")}
            op = (node.op_type, attrs.get("plugin_version", "1"), attrs.get("plugin_namespace", ""))
            if op not in plugin_ops:
                plugin_ops.append(op)
        fp32_nodes = set(call_islands)
    else:
        model, origin = onnx_passes.inline_functions(model)
        fp32_nodes = (
            onnx_graph.island_nodes_after_inlining(model, origin, call_islands, options.fp32_islands)
            if reduced
            else set()
        )
    unsupported = onnx_graph.tensorrt_unsupported_nodes(model)
    if unsupported:
        bad_node, bad_op = unsupported[0]
        hint = (
            "this op needs the vitrt plugin library (--plugins auto or PATH)"
            if calls
            else "TensorRT has no importer for it"
        )
        raise EngineBuildError(f"TensorRT cannot import node {bad_node!r} ({bad_op}): {hint}")
    profile = _profile(model, metadata, options.batch)
    return BuildPlan(
        model=model,
        flavour=flavour,
        plugin_library=plugin_library,
        plugin_ops=plugin_ops,
        fp32_nodes=fp32_nodes,
        profile=profile,
        metadata=metadata,
        onnx_sha256=sha256_file(onnx_path),
        notes=notes,
        quantization=quantization,
    )


def _int8_check(model: onnx.ModelProto, onnx_path: Path, options: BuildOptions) -> dict[str, Any] | None:
    """The quantization record of a Q/DQ file, refusing an INT8 build of a float file and vice versa."""
    from vitrt.quantize.base import onnx_record
    from vitrt.quantize.graph import QDQ_OPS, placement_problems

    has_qdq = any(node.op_type in QDQ_OPS for node in model.graph.node)
    record = onnx_record(model)
    if options.precision != "int8":
        if has_qdq:
            raise EngineBuildError(
                f"{onnx_path.name} is quantized (Q/DQ nodes); build it with --precision int8, or build the float file"
            )
        return None
    if not has_qdq:
        raise EngineBuildError(
            f"--precision int8 needs an explicit-quantization file; {onnx_path.name} has no Q/DQ nodes: run "
            f"`vitrt quantize {onnx_path.name} --target tensorrt` first"
        )
    if record is not None and record.get("target") != "tensorrt":
        raise EngineBuildError(
            f"{onnx_path.name} was quantized for {record.get('target')!r}, not for TensorRT; quantize the float file "
            "with --target tensorrt"
        )
    problems = placement_problems(model, symmetric=True)
    if problems:
        raise EngineBuildError(f"{onnx_path.name} has Q/DQ that TensorRT cannot use: {problems[0]}")
    if record is None:
        return {"precision": "int8", "target": "tensorrt", "method": "external Q/DQ file (not from vitrt quantize)"}
    return record


def build_engine(
    onnx_path: str | Path, out: str | Path | None = None, options: BuildOptions | None = None
) -> BuildResult:
    """Build `onnx_path` into a TensorRT engine at `out` (default: next to it, `.plan`) plus its manifest."""
    from vitrt.engines.availability import require_tensorrt

    options = options or BuildOptions()
    options.validate()
    onnx_path = Path(onnx_path)
    if not onnx_path.is_file():
        raise EngineBuildError(f"ONNX file not found: {onnx_path}")
    engine_path = Path(out) if out is not None else onnx_path.with_suffix(".plan")
    require_tensorrt()
    import tensorrt as trt

    from vitrt.engines import _trt

    started = time.perf_counter()
    plan = plan_build(onnx_path, options)
    for note in plan.notes:
        log.warning("%s", note)
    if plan.plugin_library is not None:
        _trt.load_plugin_library(plan.plugin_library)
        missing = _trt.missing_plugin_creators(plan.plugin_ops)
        if missing:
            raise PluginError(f"{plan.plugin_library} does not register the plugin {missing[0]} that the model uses")

    import torch

    device = torch.cuda.current_device()
    major, minor = torch.cuda.get_device_capability(device)
    compute_capability = f"{major}.{minor}"
    logger = _trt.get_logger()
    logger.clear_errors()
    builder = trt.Builder(logger)
    flags = 0
    if options.strongly_typed:
        flags |= 1 << int(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED)
    network = builder.create_network(flags)
    parser = trt.OnnxParser(network, logger)
    override = getattr(trt.OnnxParserFlag, "ENABLE_PLUGIN_OVERRIDE", None)
    if override is not None and plan.flavour == "tensorrt":
        parser.set_flag(override)
    if not parser.parse(plan.model.SerializeToString(), str(onnx_path)):
        errors = _trt.parser_errors(parser)
        more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
        raise EngineBuildError(f"TensorRT cannot import {onnx_path.name}: {errors[0] if errors else '?'}{more}")

    plugin_layers = _trt.plugin_layer_counts(network)
    if plan.flavour == "tensorrt":
        # Every vitrt node must have become one of our plugin layers (not a local function, not another importer).
        expected = onnx_passes.vitrt_op_counts(plan.model)
        if plugin_layers != expected:
            raise EngineBuildError(
                f"TensorRT's parser did not turn every vitrt node into a vitrt plugin layer: the model has {expected}, "
                f"the network has {plugin_layers or 'no plugin layers'}"
            )

    config = builder.create_builder_config()
    fp32_layers = 0
    if not options.strongly_typed and options.precision != "fp32":
        # Weakly typed precision flags are deprecated since TensorRT 10.12; where they are gone, say what to do.
        # INT8 (explicit quantization): the INT8 flag lets TensorRT run the Q/DQ-fused layers in INT8, FP16 the
        # float layers between them.
        wanted = ("INT8", "FP16") if options.precision == "int8" else (options.precision.upper(),)
        for name in wanted:
            flag = getattr(trt.BuilderFlag, name, None)
            if flag is None:
                raise EngineBuildError(
                    f"TensorRT {trt.__version__} has no {name} builder flag; build with --strongly-typed"
                )
            config.set_flag(flag)
        if plan.fp32_nodes:
            fp32_layers = _trt.constrain_fp32(network, plan.fp32_nodes)
            prefer = getattr(trt.BuilderFlag, "PREFER_PRECISION_CONSTRAINTS", None)
            if prefer is not None:
                config.set_flag(prefer)
    tf32 = getattr(trt.BuilderFlag, "TF32", None)
    if tf32 is not None and not options.tf32 and not options.strongly_typed:
        config.clear_flag(tf32)
    if options.workspace_mib is not None:
        config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, options.workspace_mib << 20)
    if options.optimization_level is not None:
        config.builder_optimization_level = options.optimization_level
    if options.hardware_compatibility != "none":
        config.hardware_compatibility_level = _trt.hardware_compatibility_level(options.hardware_compatibility)
    plugins_serialized = False
    if options.version_compatible:
        config.set_flag(trt.BuilderFlag.VERSION_COMPATIBLE)
        if plan.plugin_library is not None:
            # A version-compatible plan runs on the lean runtime it carries, with its own plugin registry: the
            # plugin library travels inside the plan and is loaded there (through getCreators).
            config.plugins_to_serialize = [str(plan.plugin_library.resolve())]
            plugins_serialized = True
    profile = builder.create_optimization_profile()
    for index in range(network.num_inputs):
        tensor = network.get_input(index)
        if tensor.name not in plan.profile:
            raise EngineBuildError(f"no optimisation profile for network input {tensor.name!r}")
        low, opt, high = plan.profile[tensor.name]
        profile.set_shape(tensor.name, trt.Dims(list(low)), trt.Dims(list(opt)), trt.Dims(list(high)))
    config.add_optimization_profile(profile)

    cache_path = _timing_cache_path(options.timing_cache, str(trt.__version__), compute_capability)
    if cache_path is not None:
        cache_bytes = cache_path.read_bytes() if cache_path.is_file() else b""
        timing_cache = config.create_timing_cache(cache_bytes)
        if timing_cache is None and cache_bytes:
            log.warning("timing cache %s is unreadable; starting a new one", cache_path)
            timing_cache = config.create_timing_cache(b"")
        config.set_timing_cache(timing_cache, ignore_mismatch=False)

    show_progress = sys.stderr.isatty() if options.progress is None else options.progress
    monitor = _trt.RichProgressMonitor() if show_progress else None
    if monitor is not None:
        config.progress_monitor = monitor
        with monitor:
            serialized = builder.build_serialized_network(network, config)
    else:
        serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        reason = logger.last_error() or "see the TensorRT log"
        raise EngineBuildError(f"TensorRT could not build {onnx_path.name}: {reason}")
    if cache_path is not None:
        atomic_write(cache_path, bytes(memoryview(config.get_timing_cache().serialize())))
    engine_bytes = bytes(memoryview(serialized))
    atomic_write(engine_path, engine_bytes)

    inputs = [network.get_input(i) for i in range(network.num_inputs)]
    outputs = [network.get_output(i) for i in range(network.num_outputs)]
    manifest = EngineManifest(
        tensorrt_version=str(trt.__version__),
        gpu_name=torch.cuda.get_device_name(device),
        compute_capability=compute_capability,
        precision=options.precision,
        strongly_typed=options.strongly_typed,
        profiles=[
            {
                name: {"min": list(low), "opt": list(opt), "max": list(high)}
                for name, (low, opt, high) in plan.profile.items()
            }
        ],
        onnx_sha256=plan.onnx_sha256,
        engine_sha256=hashlib.sha256(engine_bytes).hexdigest(),
        engine_size=len(engine_bytes),
        inputs=[TensorSpec(t.name, _trt.dtype_name(t.dtype), _trt.dims(t.shape)) for t in inputs],
        outputs=[TensorSpec(t.name, _trt.dtype_name(t.dtype), _trt.dims(t.shape)) for t in outputs],
        onnx_path=str(onnx_path.resolve()),
        onnx_flavour=plan.flavour,
        plugin_library=str(plan.plugin_library.resolve()) if plan.plugin_library else None,
        plugin_sha256=sha256_file(plan.plugin_library) if plan.plugin_library else None,
        plugin_ops=[op for op, _, _ in plan.plugin_ops],
        vitrt_version=_vitrt_version(),
        metadata=plan.metadata.to_dict() if plan.metadata else None,
        build_options={**asdict(options), "fp32_layers": fp32_layers, "timing_cache": str(cache_path or "none")},
        hardware_compatibility=options.hardware_compatibility,
        version_compatible=options.version_compatible,
        plugins_serialized=plugins_serialized,
        plugin_layers=plugin_layers,
        ngc_release=os.environ.get("VITRT_NGC_RELEASE") or None,
        quantization=plan.quantization,
        created=now_iso(),
    )
    manifest.save(manifest_path(engine_path))
    seconds = time.perf_counter() - started
    log.info("built %s in %.1f s (%s, %s flavour)", engine_path, seconds, options.precision, plan.flavour)
    return BuildResult(engine_path, manifest_path(engine_path), manifest, seconds, fp32_layers, plan)


def _profile(
    model: onnx.ModelProto, metadata: ModelMetadata | None, batch: str | None
) -> dict[str, tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...]]]:
    """min/opt/max shapes of every graph input: batch from `batch`, else metadata, else the file's shape."""
    initializers = {init.name for init in model.graph.initializer}
    inputs = [value for value in model.graph.input if value.name not in initializers]
    profile = {}
    for value in inputs:
        dims = value.type.tensor_type.shape.dim
        if not dims:
            raise EngineBuildError(f"input {value.name!r} has no shape; vitrt needs at least the non-batch dimensions")
        static_batch = dims[0].dim_value if dims[0].HasField("dim_value") else None
        rest = []
        for axis, dim in enumerate(dims[1:], start=1):
            if dim.HasField("dim_value"):
                rest.append(int(dim.dim_value))
            elif metadata is not None and len(dims) == 4 and value.name == metadata.input_name:
                rest.append(int(metadata.input_size[axis - 1]))
            else:
                raise EngineBuildError(
                    f"input {value.name!r} has a dynamic dimension {axis} ({dim.dim_param or '?'}); export it with a "
                    "fixed image size"
                )
        if batch is not None:
            low, opt, high = parse_batch(batch)
            if static_batch is not None and (low, opt, high) != (static_batch,) * 3:
                raise EngineBuildError(
                    f"input {value.name!r} has a fixed batch of {static_batch}; --batch {batch} needs a dynamic-batch "
                    "export"
                )
        elif static_batch is not None:
            low = opt = high = static_batch
        elif metadata is not None and metadata.batch.isdigit():
            low = opt = high = int(metadata.batch)
        else:
            low, opt, high = DEFAULT_DYNAMIC_BATCH
        profile[value.name] = ((low, *rest), (opt, *rest), (high, *rest))
    return profile


def _timing_cache_path(choice: str, tensorrt_version: str, compute_capability: str) -> Path | None:
    if choice == "none":
        return None
    if choice == "default":
        return default_timing_cache(tensorrt_version, compute_capability)
    return Path(choice)


def _vitrt_version() -> str:
    from vitrt import __version__

    return __version__


def describe_plan(plan: BuildPlan) -> dict[str, Any]:
    """A JSON-able summary of a build plan (`vitrt build --dry-run`)."""
    return {
        "flavour": plan.flavour,
        "plugin_library": str(plan.plugin_library) if plan.plugin_library else None,
        "plugin_ops": [op for op, _, _ in plan.plugin_ops],
        "fp32_nodes": len(plan.fp32_nodes),
        "profile": {name: {"min": list(a), "opt": list(b), "max": list(c)} for name, (a, b, c) in plan.profile.items()},
        "model": plan.metadata.model if plan.metadata else None,
        "nodes": len(plan.model.graph.node),
        "quantization": plan.quantization,
        "notes": plan.notes,
    }
