"""What `vitrt triton-repo` needs to know about an artifact: tensors, batch range, metadata, TensorRT facts.

Two kinds of artifact:

* an ONNX file: names, dtypes and dims come from the graph itself (loaded without its external weights), the
  deployment metadata from the `vitrt.*` entries of `metadata_props`;
* a TensorRT plan with its engine manifest (`model.plan.json` beside `model.plan`): tensors, optimisation
  profiles, TensorRT version, compute capability and plugin library from the manifest. The plan bytes are opaque
  here (no TensorRT on CPU machines) and are copied unchanged.

The manifest is the one `vitrt build` writes, read with `vitrt.engines.manifest.EngineManifest`; its
`engine_sha256` is checked against the plan, and `ngc_release` names the NGC container release the engine was
built in (the image sets `VITRT_NGC_RELEASE`).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from vitrt.engines import ENGINE_SUFFIXES
from vitrt.engines.base import TensorSpec
from vitrt.engines.manifest import EngineManifest, manifest_path
from vitrt.engines.onnx_graph import model_metadata
from vitrt.errors import ArtifactError
from vitrt.files import sha256_file
from vitrt.metadata import ModelMetadata

_NUMPY_DTYPES = {
    "float32",
    "float16",
    "bfloat16",
    "float64",
    "int8",
    "int16",
    "int32",
    "int64",
    "uint8",
    "uint16",
    "uint32",
    "uint64",
    "bool",
    "object",
}


# One input or output: numpy dtype name and full shape (batch first); None marks a dynamic dimension.
TensorInfo = TensorSpec


@dataclass(frozen=True)
class ShapeRange:
    """The min/opt/max shapes one optimisation profile allows for one input."""

    min: tuple[int, ...]
    opt: tuple[int, ...]
    max: tuple[int, ...]


@dataclass
class Artifact:
    source: Path
    kind: Literal["onnx", "plan"]
    model_file: Path
    inputs: tuple[TensorInfo, ...]
    outputs: tuple[TensorInfo, ...]
    metadata: ModelMetadata | None
    # Files the model file refers to (ONNX external data), relative to its directory.
    external_files: tuple[str, ...] = ()
    profiles: tuple[dict[str, ShapeRange], ...] = ()
    tensorrt_version: str | None = None
    compute_capability: str | None = None
    ngc_release: str | None = None
    version_compatible: bool = False
    hardware_compatibility: str = "none"  # TensorRT HardwareCompatibilityLevel: none | ampere_plus | ...
    plugin_library: Path | None = None
    plugin_sha256: str | None = None
    plugin_ops: tuple[str, ...] = field(default_factory=tuple)

    @property
    def batched(self) -> bool:
        """Whether the leading dimension of every input and output is a batch dimension Triton may vary."""
        return all(_dynamic_leading(t) for t in (*self.inputs, *self.outputs))

    @property
    def batch_range(self) -> tuple[int, int | None]:
        """(smallest, largest) batch the artifact accepts; largest is None when unbounded (ONNX)."""
        if self.kind != "plan" or not self.profiles:
            return 1, None
        # A batch size works if one profile covers it for every input: Triton picks the profile per batch.
        lows = [max(profile[t.name].min[0] for t in self.inputs) for profile in self.profiles]
        highs = [min(profile[t.name].max[0] for t in self.inputs) for profile in self.profiles]
        return min(lows), max(highs)

    @property
    def uses_plugins(self) -> bool:
        return bool(self.plugin_ops) or self.plugin_library is not None

    def dims_after_batch(self, tensor: TensorInfo) -> list[int]:
        """Triton `dims` of a batched tensor: everything after the batch dimension, -1 where it may vary."""
        dims = list(tensor.shape[1:])
        for profile in self.profiles:
            if tensor.name in profile:
                ranges = profile[tensor.name]
                for axis in range(1, len(ranges.min)):
                    if ranges.min[axis] != ranges.max[axis]:
                        dims[axis - 1] = None
        return [-1 if d is None else int(d) for d in dims]

    def full_dims(self, tensor: TensorInfo) -> list[int]:
        """Triton `dims` of an unbatched model (max_batch_size 0): the whole shape."""
        return [-1 if d is None else int(d) for d in tensor.shape]


def _dynamic_leading(tensor: TensorInfo) -> bool:
    return bool(tensor.shape) and tensor.shape[0] is None


def load_artifact(path: str | Path) -> Artifact:
    """Read an ONNX file, a plan (manifest beside it) or an engine manifest."""
    path = Path(path)
    if path.name.endswith(".json"):
        return _load_manifest(path)
    if not path.exists():
        raise ArtifactError(f"artifact not found: {path}")
    if path.is_dir():
        raise ArtifactError(f"{path} is a directory; pass an ONNX file, a plan or its manifest (model.plan.json)")
    if path.suffix == ".onnx":
        return _load_onnx(path)
    if path.suffix in ENGINE_SUFFIXES:
        manifest = manifest_path(path)
        if not manifest.is_file():
            raise ArtifactError(
                f"{path} has no engine manifest beside it ({manifest.name}); a bare plan does not say its "
                "TensorRT version, profiles or plugins — rebuild it with `vitrt build` or write the manifest"
            )
        return _load_manifest(manifest)
    raise ArtifactError(f"cannot tell what {path} is (expected a .onnx file, a .plan file or its .plan.json manifest)")


# --------------------------------------------------------------------------------------------------------- ONNX
def _load_onnx(path: Path) -> Artifact:
    import onnx
    from onnx import helper

    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception as err:  # onnx raises DecodeError, OSError, ... for unreadable files
        raise ArtifactError(f"cannot read ONNX file {path}: {' '.join(str(err).split())[:200]}") from None
    graph = model.graph
    initializers = {init.name for init in graph.initializer}

    def tensor(value_info: Any) -> TensorInfo:
        kind = value_info.type.WhichOneof("value")
        if kind != "tensor_type":
            raise ArtifactError(f"{path}: graph value {value_info.name!r} is a {kind}, not a tensor")
        elem = value_info.type.tensor_type.elem_type
        try:
            dtype = "object" if elem == onnx.TensorProto.STRING else helper.tensor_dtype_to_np_dtype(elem).name
        except (KeyError, ValueError):
            raise ArtifactError(f"{path}: tensor {value_info.name!r} has unsupported element type {elem}") from None
        if elem == onnx.TensorProto.BFLOAT16:
            dtype = "bfloat16"
        if not value_info.type.tensor_type.HasField("shape"):
            raise ArtifactError(f"{path}: tensor {value_info.name!r} has no shape (rank unknown)")
        shape = tuple(
            d.dim_value if d.HasField("dim_value") and d.dim_value > 0 else None
            for d in value_info.type.tensor_type.shape.dim
        )
        return TensorInfo(value_info.name, dtype, shape)

    inputs = tuple(tensor(v) for v in graph.input if v.name not in initializers)
    outputs = tuple(tensor(v) for v in graph.output)
    inferred = _inferred_outputs(model)
    if len(inferred) == len(outputs):
        outputs = tuple(_refine(t, shape) for t, shape in zip(outputs, inferred, strict=True))
    if not inputs or not outputs:
        raise ArtifactError(f"{path}: the graph has no inputs or no outputs")
    try:
        metadata = model_metadata(model)
    except ArtifactError as err:
        raise ArtifactError(f"{path}: {err}") from None
    return Artifact(
        source=path,
        kind="onnx",
        model_file=path,
        inputs=inputs,
        outputs=outputs,
        metadata=metadata,
        external_files=_external_files(model, path),
    )


def _inferred_outputs(model: Any) -> list[tuple[int | None, ...]]:
    """Output shapes after ONNX shape inference; exporters often leave e.g. the class dim symbolic."""
    import onnx

    try:
        inferred = onnx.shape_inference.infer_shapes(model, strict_mode=False, data_prop=True)
    except Exception:  # inference is a refinement only; the declared shapes stand when it fails
        return []
    return [
        tuple(
            d.dim_value if d.HasField("dim_value") and d.dim_value > 0 else None for d in v.type.tensor_type.shape.dim
        )
        for v in inferred.graph.output
    ]


def _refine(tensor: TensorInfo, inferred: tuple[int | None, ...]) -> TensorInfo:
    # Only dims after the batch dimension: the leading dim stays as declared (dynamic batch or fixed).
    if len(inferred) != len(tensor.shape):
        return tensor
    shape = tensor.shape[:1] + tuple(
        d if d is not None else i for d, i in zip(tensor.shape[1:], inferred[1:], strict=True)
    )
    return TensorInfo(tensor.name, tensor.dtype, shape)


def _external_files(model: Any, path: Path) -> tuple[str, ...]:
    from onnx.external_data_helper import uses_external_data

    locations: list[str] = []
    for tensor in _all_tensors(model):
        if not uses_external_data(tensor):
            continue
        entries = {entry.key: entry.value for entry in tensor.external_data}
        location = entries.get("location", "")
        target = (path.parent / location).resolve()
        if not location or Path(location).is_absolute() or path.parent.resolve() not in target.parents:
            raise ArtifactError(f"{path}: external data location {location!r} is not a file beside the model")
        if not target.is_file():
            raise ArtifactError(f"{path}: external data file {location!r} is missing")
        if location not in locations:
            locations.append(location)
    return tuple(locations)


def _all_tensors(model: Any) -> Iterator[Any]:
    def graph_tensors(graph: Any) -> Iterator[Any]:
        yield from graph.initializer
        for sparse in graph.sparse_initializer:
            yield sparse.values
            yield sparse.indices
        yield from node_tensors(graph.node)

    def node_tensors(nodes: Sequence[Any]) -> Iterator[Any]:
        for node in nodes:
            for attr in node.attribute:
                if attr.HasField("t"):
                    yield attr.t
                yield from attr.tensors
                if attr.HasField("g"):
                    yield from graph_tensors(attr.g)
                for sub in attr.graphs:
                    yield from graph_tensors(sub)

    yield from graph_tensors(model.graph)
    for function in model.functions:
        yield from node_tensors(function.node)


# ----------------------------------------------------------------------------------------------- engine manifest
def _load_manifest(path: Path) -> Artifact:
    manifest = EngineManifest.load(path)
    plan = path.with_name(path.name.removesuffix(".json"))
    if plan == path or not plan.is_file():
        raise ArtifactError(f"{path}: the plan it describes is missing ({plan})")
    if sha256_file(plan) != manifest.engine_sha256.lower():
        raise ArtifactError(f"{path.name} describes a different engine than {plan.name} (sha256 differs)")
    inputs = _tensors(path, manifest.inputs, "inputs")
    outputs = _tensors(path, manifest.outputs, "outputs")
    library = manifest.plugin_library
    return Artifact(
        source=path,
        kind="plan",
        model_file=plan,
        inputs=inputs,
        outputs=outputs,
        metadata=manifest.model_metadata(),
        profiles=_profiles(path, manifest.profiles, inputs),
        tensorrt_version=manifest.tensorrt_version,
        compute_capability=_compute_capability(path, manifest.compute_capability),
        hardware_compatibility=manifest.hardware_compatibility,
        ngc_release=manifest.ngc_release,
        version_compatible=manifest.version_compatible,
        plugin_library=(path.parent / library) if library else None,  # absolute paths stay as they are
        plugin_sha256=manifest.plugin_sha256,
        plugin_ops=tuple(manifest.plugin_ops),
    )


def _tensors(path: Path, specs: Sequence[TensorSpec], key: str) -> tuple[TensorInfo, ...]:
    """The manifest's tensors, checked for what Triton needs (shapes are validated when the manifest is read)."""
    if not specs:
        raise ArtifactError(f"{path}: '{key}' must be a non-empty list of {{name, dtype, shape}}")
    for spec in specs:
        if spec.dtype not in _NUMPY_DTYPES:
            raise ArtifactError(f"{path}: tensor {spec.name!r} has unknown dtype {spec.dtype!r}")
    names = [spec.name for spec in specs]
    if len(set(names)) != len(names):
        raise ArtifactError(f"{path}: duplicate tensor names in '{key}'")
    return tuple(specs)


def _profiles(path: Path, raw: Any, inputs: tuple[TensorInfo, ...]) -> tuple[dict[str, ShapeRange], ...]:
    raw = raw or []
    if not isinstance(raw, list):
        raise ArtifactError(f"{path}: 'profiles' must be a list (one entry per optimisation profile)")
    profiles = []
    for index, entry in enumerate(raw):
        if not isinstance(entry, dict):
            raise ArtifactError(f"{path}: profile {index} is not an object")
        profile = {}
        for tensor in inputs:
            shapes = entry.get(tensor.name)
            if not isinstance(shapes, dict) or not {"min", "opt", "max"} <= set(shapes):
                raise ArtifactError(f"{path}: profile {index} has no min/opt/max shapes for input {tensor.name!r}")
            try:
                ranges = ShapeRange(*(tuple(int(d) for d in shapes[k]) for k in ("min", "opt", "max")))
            except (TypeError, ValueError):
                raise ArtifactError(f"{path}: profile {index} shapes for {tensor.name!r} are not integers") from None
            if not len(ranges.min) == len(ranges.opt) == len(ranges.max) == len(tensor.shape):
                raise ArtifactError(f"{path}: profile {index} shapes for {tensor.name!r} do not match its rank")
            if any(not 0 < lo <= op <= hi for lo, op, hi in zip(ranges.min, ranges.opt, ranges.max, strict=True)):
                raise ArtifactError(f"{path}: profile {index} for {tensor.name!r} is not min <= opt <= max")
            profile[tensor.name] = ranges
        profiles.append(profile)
    if not profiles and any(d is None for t in inputs for d in t.shape):
        raise ArtifactError(f"{path}: inputs have dynamic dimensions but the manifest lists no optimisation profiles")
    return tuple(profiles)


def _compute_capability(path: Path, value: Any) -> str | None:
    if value in (None, ""):
        return None
    major, dot, minor = str(value).partition(".")
    if not (dot and major.isdigit() and minor.isdigit()):
        raise ArtifactError(f"{path}: compute capability must be 'major.minor', got {value!r}")
    return f"{int(major)}.{int(minor)}"
