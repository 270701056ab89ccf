"""What `vitrt triton-repo` needs to know about an artifact: tensors, batch range, metadata, TensorRT facts.

Two kinds of artifact:

* an ONNX file: names, dtypes and dims come from the graph itself (loaded without its external weights), the
  deployment metadata from the `vitrt.*` entries of `metadata_props`;
* a TensorRT plan with its engine manifest (`model.plan.json` beside `model.plan`): tensors, optimisation
  profiles, TensorRT version, compute capability and plugin library from the manifest. The plan bytes are opaque
  here (no TensorRT on CPU machines) and are copied unchanged.

The manifest is the one `vitrt build` writes (`vitrt.engines.manifest.EngineManifest`, format
"vitrt-engine-manifest" version 1); this reader follows that schema field for field: `tensorrt_version`,
`compute_capability`, `hardware_compatibility`, `version_compatible`, `engine_sha256` (checked against the plan),
`inputs`/`outputs` (`name`, numpy `dtype`, `shape` with -1 for dynamic dims), `profiles` (one
`{input: {min, opt, max}}` per optimisation profile), `metadata`, `plugin_library`/`plugin_sha256`/`plugin_ops`,
and `ngc_release` (top level or in `build_options`): the NGC container release the engine was built in.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from vitrt.errors import ArtifactError
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


@dataclass(frozen=True)
class TensorInfo:
    """One input or output: numpy dtype name and full shape (batch first); None marks a dynamic dimension."""

    name: str
    dtype: str
    shape: tuple[int | None, ...]


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
    if path.suffix in (".plan", ".engine", ".trt"):
        manifest = path.with_name(path.name + ".json")
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
    props = {p.key: p.value for p in model.metadata_props}
    metadata = None
    if "vitrt.model" in props:
        try:
            metadata = ModelMetadata.from_props(props)
        except (ValueError, TypeError) as err:
            raise ArtifactError(f"{path}: unreadable vitrt metadata ({err})") from None
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
MANIFEST_FORMAT = "vitrt-engine-manifest"
MANIFEST_VERSION = 1


def _load_manifest(path: Path) -> Artifact:
    if not path.is_file():
        raise ArtifactError(f"engine manifest not found: {path}")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ArtifactError(f"cannot read engine manifest {path}: {err}") from None
    if not isinstance(data, dict) or data.get("format") != MANIFEST_FORMAT:
        raise ArtifactError(f"{path} is not a vitrt engine manifest")
    version = data.get("format_version")
    if not isinstance(version, int) or version > MANIFEST_VERSION:
        raise ArtifactError(f"{path} has manifest format {version!r}; this vitrt reads up to {MANIFEST_VERSION}")
    plan = path.with_name(path.name.removesuffix(".json"))
    if plan == path or not plan.is_file():
        raise ArtifactError(f"{path}: the plan it describes is missing ({plan})")
    expected_sha = data.get("engine_sha256")
    if not expected_sha:
        raise ArtifactError(f"{path} is malformed (missing engine_sha256)")
    if _sha256(plan) != str(expected_sha).lower():
        raise ArtifactError(f"{path.name} describes a different engine than {plan.name} (sha256 differs)")

    inputs = _tensors(path, data, "inputs")
    outputs = _tensors(path, data, "outputs")
    metadata_raw = data.get("metadata")
    metadata = None
    if metadata_raw is not None:
        if not isinstance(metadata_raw, dict) or "model" not in metadata_raw or "family" not in metadata_raw:
            raise ArtifactError(f"{path}: 'metadata' must be a ModelMetadata object with 'model' and 'family'")
        metadata = ModelMetadata.from_dict(metadata_raw)
    library = data.get("plugin_library")
    raw_options = data.get("build_options")
    build_options: dict[str, Any] = raw_options if isinstance(raw_options, dict) else {}
    return Artifact(
        source=path,
        kind="plan",
        model_file=plan,
        inputs=inputs,
        outputs=outputs,
        metadata=metadata,
        profiles=_profiles(path, data, inputs),
        tensorrt_version=_opt_str(data.get("tensorrt_version")),
        compute_capability=_compute_capability(path, data.get("compute_capability")),
        hardware_compatibility=str(data.get("hardware_compatibility") or "none"),
        ngc_release=_opt_str(data.get("ngc_release") or build_options.get("ngc_release")),
        version_compatible=bool(data.get("version_compatible")),
        plugin_library=(path.parent / library) if library else None,  # absolute paths stay as they are
        plugin_sha256=_opt_str(data.get("plugin_sha256")),
        plugin_ops=tuple(str(op) for op in data.get("plugin_ops") or ()),
    )


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _opt_str(value: Any) -> str | None:
    return None if value in (None, "") else str(value)


def _tensors(path: Path, data: Mapping[str, Any], key: str) -> tuple[TensorInfo, ...]:
    raw = data.get(key)
    if not isinstance(raw, list) or not raw:
        raise ArtifactError(f"{path}: '{key}' must be a non-empty list of {{name, dtype, shape}}")
    tensors = []
    for item in raw:
        if not isinstance(item, dict) or not {"name", "dtype", "shape"} <= set(item):
            raise ArtifactError(f"{path}: every entry of '{key}' needs name, dtype and shape, got {item!r}")
        dtype = str(item["dtype"])
        if dtype not in _NUMPY_DTYPES:
            raise ArtifactError(f"{path}: tensor {item['name']!r} has unknown dtype {dtype!r}")
        shape = item["shape"]
        if not isinstance(shape, list) or not all(isinstance(d, int) and d >= -1 for d in shape):
            raise ArtifactError(f"{path}: tensor {item['name']!r} has an invalid shape {shape!r}")
        tensors.append(TensorInfo(str(item["name"]), dtype, tuple(None if d == -1 else d for d in shape)))
    names = [t.name for t in tensors]
    if len(set(names)) != len(names):
        raise ArtifactError(f"{path}: duplicate tensor names in '{key}'")
    return tuple(tensors)


def _profiles(path: Path, data: Mapping[str, Any], inputs: tuple[TensorInfo, ...]) -> tuple[dict[str, ShapeRange], ...]:
    raw = data.get("profiles") or []
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
