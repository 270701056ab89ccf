"""Write a Triton model repository for vitrt artifacts, plus the plugin library and the command that serves it.

Layout (`out` is the directory given to `tritonserver --model-repository`):

    out/<model>/config.pbtxt            one per model; labels.txt beside it when the metadata has labels
    out/<model>/1/model.onnx            ONNX Runtime backend (a directory when the ONNX has external data)
    out/<model>/1/model.plan            TensorRT backend (model_sm<cc>.plan + cc_model_filenames for several GPUs)
    out/<model>/1/model.xml + model.bin OpenVINO backend (--onnx-backend openvino): the IR of the inlined ONNX file
    out/<model>/1/model.py + artifact   Python backend running vitrt's own runtimes (--runtime vitrt)
    out/<model>_preprocess/1/model.py   Python backend: encoded image -> pixels      (--with-preprocessing)
    out/<model>_image/                  ensemble: preprocess -> classifier           (--with-preprocessing)
    <plugin_dir>/libvitrt_plugins.so    outside `out`: Triton would try to load any directory in it as a model

Everything is staged in a temporary directory next to `out` and moved into place at the end, so a refused or
failed run leaves `out` as it was.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

from vitrt.engines.manifest import manifest_path
from vitrt.errors import ArtifactError, PluginError, VitrtError
from vitrt.files import sha256_file
from vitrt.triton import releases
from vitrt.triton.artifacts import Artifact, TensorInfo, load_artifact
from vitrt.triton.pbtxt import Enum, ProtoMap, to_pbtxt
from vitrt.triton.runtime_model import ENV_POINTER, ENV_VARIABLE

TRITON_TYPES = {
    "bool": "TYPE_BOOL",
    "uint8": "TYPE_UINT8",
    "uint16": "TYPE_UINT16",
    "uint32": "TYPE_UINT32",
    "uint64": "TYPE_UINT64",
    "int8": "TYPE_INT8",
    "int16": "TYPE_INT16",
    "int32": "TYPE_INT32",
    "int64": "TYPE_INT64",
    "float16": "TYPE_FP16",
    "float32": "TYPE_FP32",
    "float64": "TYPE_FP64",
    "bfloat16": "TYPE_BF16",
    "object": "TYPE_STRING",
}
DEFAULT_ONNX_MAX_BATCH = 8
# Same variable as vitrt.engines.plugin_library: the library file, or a directory holding libvitrt_plugins.so.
PLUGIN_DIR_ENV = "VITRT_PLUGIN_DIR"
_MODEL_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]*$")
_IMAGE_INPUT = "IMAGE"
_PIXELS_OUTPUT = "PIXELS"
# vitrt runtimes a --runtime vitrt model can use, and the artifact kinds each runs.
VITRT_BACKENDS = {"onnxruntime": ("onnx",), "openvino": ("onnx",), "tensorrt": ("plan",)}
# Triton's own backends for ONNX artifacts (--runtime triton).
ONNX_BACKENDS = ("onnxruntime", "openvino")
# --backend-option keys of the OpenVINO form (the names of vitrt's OpenVINO backend) -> Triton OpenVINO parameters.
_OPENVINO_PARAMETERS = {
    "precision": "HINT_BF16",
    "threads": "INFERENCE_NUM_THREADS",
    "streams": "NUM_STREAMS",
    "performance_hint": "PERFORMANCE_HINT",
}


@dataclass
class RepositoryOptions:
    name: str | None = None
    max_batch_size: int | None = None
    preferred_batch_sizes: Sequence[int] | None = None
    max_queue_delay_us: int = 100
    instances: int = 1
    device: Literal["cpu", "gpu"] | None = None  # instance kind of ONNX models (default cpu); plans use GPUs
    gpus: Sequence[int] | None = None
    warmup: int = 0
    with_preprocessing: bool = False
    version: int = 1
    plugins: Path | None = None
    plugin_dir: Path | None = None
    triton_release: str | None = None
    force: bool = False
    # "triton": Triton's own onnxruntime / tensorrt_plan backends; "vitrt": a Python-backend model running
    # vitrt's runtimes (`vitrt_backend`: onnxruntime | openvino | tensorrt; None = by artifact kind).
    runtime: Literal["triton", "vitrt"] = "triton"
    vitrt_backend: str | None = None
    python_env: Path | None = None  # a `vitrt triton-env` directory the model puts on sys.path
    backend_options: dict[str, Any] = field(default_factory=dict)
    # With runtime "triton": the Triton backend of ONNX artifacts. "openvino" writes the OpenVINO IR of the
    # (inlined) ONNX file for Triton's OpenVINO backend (CPU; `backend_options`: precision, threads, streams,
    # performance_hint).
    onnx_backend: Literal["onnxruntime", "openvino"] = "onnxruntime"


@dataclass
class ModelReport:
    name: str
    backend: str
    kind: str
    max_batch_size: int
    inputs: list[str]
    outputs: list[str]
    files: list[str]


@dataclass
class RepositoryReport:
    repository: Path
    models: list[ModelReport]
    image: str
    image_reason: str
    triton_release: str
    commands: dict[str, str]
    plugin_library: Path | None = None
    plugin_sha256: str | None = None
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "repository": str(self.repository),
            "models": [vars(m) for m in self.models],
            "image": self.image,
            "image_reason": self.image_reason,
            "triton_release": self.triton_release,
            "plugin_library": str(self.plugin_library) if self.plugin_library else None,
            "plugin_sha256": self.plugin_sha256,
            "commands": self.commands,
            "notes": self.notes,
        }


def build_repository(artifacts: Sequence[str | Path], out: str | Path, options: RepositoryOptions) -> RepositoryReport:
    """Write the repository for `artifacts` into `out` and return what was written and how to serve it."""
    if not artifacts:
        raise VitrtError("no artifacts given")
    _check_options(options)
    out = Path(out).absolute()
    loaded = [load_artifact(path) for path in artifacts]
    groups = _group_by_model(loaded, options)
    plans = [a for group in groups.values() for a in group if a.kind == "plan"]
    if plans and options.device == "cpu":
        raise VitrtError("TensorRT plans run only on GPUs; --device cpu applies to ONNX models")

    image = _choose_image(groups, options)
    plugin_source = _plugin_library(plans, options)
    plugin_dir = (options.plugin_dir or out.parent / "plugins").absolute()
    if plugin_source is not None and (plugin_dir == out or out in plugin_dir.parents):
        raise VitrtError(
            f"the plugin directory {plugin_dir} is inside the model repository; Triton would try to load it as a "
            "model — choose a --plugin-dir outside it"
        )

    if options.runtime == "vitrt" and plugin_source is not None and "plugins" not in options.backend_options:
        # vitrt's TensorRT backend loads the library from where this run copies it.
        options = replace(
            options, backend_options={**options.backend_options, "plugins": str(plugin_dir / plugin_source.name)}
        )

    names = list(groups)
    if options.with_preprocessing:
        names += [f"{n}_preprocess" for n in groups] + [f"{n}_image" for n in groups]
    existing = [n for n in names if (out / n).exists()]
    if existing and not options.force:
        raise VitrtError(f"{out / existing[0]} already exists; pass --force to replace the models this run writes")
    if out.exists() and not out.is_dir():
        raise VitrtError(f"{out} exists and is not a directory")

    out.parent.mkdir(parents=True, exist_ok=True)
    stage = Path(tempfile.mkdtemp(prefix=".vitrt-triton-", dir=out.parent))
    try:
        reports = []
        for name, group in groups.items():
            reports.append(_write_classifier(stage / name, name, group, options))
            if options.with_preprocessing:
                reports += _write_preprocessing(stage, name, group[0], reports[-1], options)
        out.mkdir(parents=True, exist_ok=True)
        for report in reports:
            target = out / report.name
            if target.exists():
                shutil.rmtree(target)
            os.replace(stage / report.name, target)
    finally:
        shutil.rmtree(stage, ignore_errors=True)

    plugin_copy = plugin_sha = None
    if plugin_source is not None:
        plugin_dir.mkdir(parents=True, exist_ok=True)
        plugin_copy = plugin_dir / plugin_source.name
        if plugin_copy.resolve() != plugin_source.resolve():
            shutil.copyfile(plugin_source, plugin_copy)
        plugin_sha = sha256_file(plugin_copy)

    notes = []
    if options.with_preprocessing:
        notes.append(
            "the preprocessing model needs Pillow in Triton's Python backend: build docker/Dockerfile.triton "
            f"(--build-arg TRITON_RELEASE={image.release}) and run that image"
        )
    if options.runtime == "vitrt" or options.python_env is not None:
        where = str(options.python_env.absolute()) if options.python_env else f"${ENV_VARIABLE}"
        notes.append(
            "the vitrt models run in Triton's Python backend with the environment vitrt triton-env builds "
            f"(numpy < 2, the runtime, vitrt); it is read from {where}"
        )
    if any(report.backend == "openvino" for report in reports):
        import openvino

        notes.append(
            f"the OpenVINO IR was written by OpenVINO {openvino.__version__.split('-')[0]}; Triton's OpenVINO "
            "backend (CPU, x86-64 images) reads it only with the same or a newer OpenVINO, so pick a release that "
            "ships one (--triton-release)"
        )
    pinned = sorted(
        {a.compute_capability for a in plans if a.compute_capability and a.hardware_compatibility == "none"}
    )
    if pinned:
        notes.append(f"the plans run only on GPUs of compute capability {', '.join(pinned)}; rebuild them per GPU type")
    if any(a.hardware_compatibility == "ampere_plus" for a in plans):
        notes.append("hardware-compatible plans (ampere_plus) run on any GPU of compute capability 8.0 or newer")
    uses_gpu = bool(plans) or options.device == "gpu" or bool(options.gpus)
    custom_image = options.with_preprocessing or options.runtime == "vitrt"
    commands = _commands(out, image, plugin_copy, uses_gpu, custom_image)
    return RepositoryReport(
        repository=out,
        models=reports,
        image=commands.pop("image"),
        image_reason=image.reason,
        triton_release=image.release,
        commands=commands,
        plugin_library=plugin_copy,
        plugin_sha256=plugin_sha,
        notes=notes,
    )


# ------------------------------------------------------------------------------------------------------ checks
def _check_options(options: RepositoryOptions) -> None:
    if options.max_batch_size is not None and options.max_batch_size < 0:
        raise VitrtError("--max-batch-size must be >= 0")
    if options.instances < 1:
        raise VitrtError("--instances must be >= 1")
    if options.max_queue_delay_us < 0:
        raise VitrtError("--max-queue-delay-us must be >= 0")
    if options.warmup < 0:
        raise VitrtError("--warmup must be >= 0")
    if options.version < 1:
        raise VitrtError("--version must be >= 1 (Triton ignores version directories named 0)")
    if options.device not in (None, "cpu", "gpu"):
        raise VitrtError(f"--device must be cpu or gpu, got {options.device!r}")
    if options.gpus and options.device == "cpu":
        raise VitrtError("--gpus selects GPUs; it cannot be combined with --device cpu")
    if options.gpus and any(g < 0 for g in options.gpus):
        raise VitrtError("--gpus takes GPU indices >= 0")
    if options.preferred_batch_sizes is not None and any(b < 1 for b in options.preferred_batch_sizes):
        raise VitrtError("--preferred-batch-size values must be >= 1")
    if options.triton_release is not None:
        releases.check_release(options.triton_release)
    if options.runtime not in ("triton", "vitrt"):
        raise VitrtError(f"--runtime must be triton or vitrt, got {options.runtime!r}")
    if options.onnx_backend not in ONNX_BACKENDS:
        raise VitrtError(f"--onnx-backend must be onnxruntime or openvino, got {options.onnx_backend!r}")
    if options.onnx_backend == "openvino":
        if options.runtime != "triton":
            raise VitrtError(
                "--onnx-backend openvino is Triton's own OpenVINO backend (--runtime triton); for vitrt's OpenVINO "
                "runtime inside Triton use --runtime vitrt --vitrt-backend openvino"
            )
        if options.device == "gpu" or options.gpus:
            raise VitrtError("Triton's OpenVINO backend runs on CPUs only; drop --device gpu / --gpus")
        openvino_parameters(options.backend_options)
    elif options.runtime != "vitrt" and (options.vitrt_backend or options.backend_options):
        raise VitrtError(
            "--vitrt-backend applies only with --runtime vitrt, --backend-option with --runtime vitrt or "
            "--onnx-backend openvino"
        )
    if options.python_env is not None and options.runtime != "vitrt" and not options.with_preprocessing:
        raise VitrtError("--python-env applies to Python-backend models: --runtime vitrt or --with-preprocessing")
    if options.vitrt_backend is not None and options.vitrt_backend not in VITRT_BACKENDS:
        raise VitrtError(f"unknown --vitrt-backend {options.vitrt_backend!r}; choose from {', '.join(VITRT_BACKENDS)}")
    if options.python_env is not None and not Path(options.python_env).is_dir():
        raise VitrtError(f"--python-env {options.python_env} is not a directory (build it with vitrt triton-env)")


def _model_name(artifact: Artifact, options: RepositoryOptions) -> str:
    if options.name:
        name = options.name
    elif artifact.metadata is not None:
        name = artifact.metadata.model
    else:
        name = artifact.model_file.name.split(".")[0]
    if not _MODEL_NAME.match(name) or name.isdigit():
        raise VitrtError(f"{name!r} is not a usable Triton model name (letters, digits, '_', '.', '-'); pass --name")
    return name


def _group_by_model(artifacts: list[Artifact], options: RepositoryOptions) -> dict[str, list[Artifact]]:
    groups: dict[str, list[Artifact]] = {}
    for artifact in artifacts:
        groups.setdefault(_model_name(artifact, options), []).append(artifact)
    for name, group in groups.items():
        if len(group) == 1:
            continue
        # Several plans of one model for different GPUs become one model with cc_model_filenames.
        if any(a.kind != "plan" for a in group):
            raise VitrtError(f"{len(group)} artifacts map to the model name {name!r}; pass them separately with --name")
        ccs = [a.compute_capability for a in group]
        if None in ccs or len(set(ccs)) != len(ccs):
            raise VitrtError(
                f"{len(group)} plans map to the model name {name!r} without distinct compute capabilities; "
                "one model holds one plan per GPU type"
            )
        first = group[0]
        for other in group[1:]:
            if (other.inputs, other.outputs) != (first.inputs, first.outputs):
                raise VitrtError(f"the plans for {name!r} differ in their inputs or outputs ({other.source})")
            if other.tensorrt_version != first.tensorrt_version:
                raise VitrtError(
                    f"the plans for {name!r} were built with different TensorRT versions "
                    f"({first.tensorrt_version}, {other.tensorrt_version}); one Triton image cannot load both"
                )
            if other.batch_range != first.batch_range:
                raise VitrtError(f"the plans for {name!r} have different batch ranges in their profiles")
    return groups


def _choose_image(groups: dict[str, list[Artifact]], options: RepositoryOptions) -> releases.TritonImage:
    plans = [a for group in groups.values() for a in group if a.kind == "plan"]
    if not plans:
        image = releases.image_for_onnx(options.triton_release)
        if options.runtime == "triton" and options.onnx_backend == "openvino":
            reason = f"Triton {image.release}: its -py3 image (x86-64) carries the OpenVINO backend"
            return replace(image, reason=reason)
        return image
    versions = {a.tensorrt_version for a in plans}
    if len(versions) > 1:
        raise VitrtError(
            f"the plans were built with different TensorRT versions ({', '.join(sorted(map(str, versions)))}); "
            "one Triton image cannot load them all — write one repository per version"
        )
    ngc = {a.ngc_release for a in plans if a.ngc_release}
    if len(ngc) > 1:
        raise VitrtError(f"the plans were built in different NGC releases ({', '.join(sorted(ngc))})")
    return releases.image_for_plan(
        plans[0].tensorrt_version,
        ngc_release=next(iter(ngc), None),
        requested=options.triton_release,
        version_compatible=all(a.version_compatible for a in plans),
    )


def _plugin_library(plans: list[Artifact], options: RepositoryOptions) -> Path | None:
    needed = [a for a in plans if a.uses_plugins]
    candidate = options.plugins
    origin = "--plugins"
    if candidate is None and needed:
        for artifact in needed:
            if artifact.plugin_library is not None and artifact.plugin_library.is_file():
                candidate, origin = artifact.plugin_library, f"the manifest of {artifact.source.name}"
                break
    if candidate is None and needed and os.environ.get(PLUGIN_DIR_ENV):
        candidate, origin = Path(os.environ[PLUGIN_DIR_ENV]), PLUGIN_DIR_ENV
        if candidate.is_dir():
            candidate = candidate / "libvitrt_plugins.so"
    if candidate is None:
        if needed:
            ops = sorted({op for a in needed for op in a.plugin_ops}) or ["vitrt plugins"]
            raise PluginError(
                f"{needed[0].source.name} uses {', '.join(ops)} but no plugin library was found; build it "
                f"(cmake -S plugins -B build/plugins) and pass --plugins path/to/libvitrt_plugins.so"
            )
        return None
    if not candidate.is_file():
        raise PluginError(f"plugin library not found: {candidate} (from {origin})")
    digest = sha256_file(candidate)
    for artifact in needed:
        if artifact.plugin_sha256 and artifact.plugin_sha256.lower() != digest:
            raise PluginError(
                f"{candidate} (sha256 {digest[:12]}…) is not the plugin library {artifact.source.name} was built "
                f"with (sha256 {artifact.plugin_sha256[:12]}…); pass the matching --plugins"
            )
    return candidate


# ------------------------------------------------------------------------------------------------ config parts
def _triton_type(tensor: TensorInfo) -> Enum:
    try:
        return Enum(TRITON_TYPES[tensor.dtype])
    except KeyError:
        raise ArtifactError(f"tensor {tensor.name!r} has dtype {tensor.dtype}, which Triton has no type for") from None


def _batching(artifact: Artifact, options: RepositoryOptions) -> int:
    """The model's max_batch_size, refusing what the artifact cannot run."""
    requested = options.max_batch_size
    if not artifact.batched:
        if requested:
            fixed = next(t for t in (*artifact.inputs, *artifact.outputs) if not t.shape or t.shape[0] is not None)
            raise VitrtError(
                f"{artifact.source.name} has a fixed batch dimension ({fixed.name!r} shape "
                f"{[-1 if d is None else d for d in fixed.shape]}); Triton cannot batch it — re-export or rebuild "
                "with a dynamic batch axis, or pass --max-batch-size 0"
            )
        return 0
    low, high = artifact.batch_range
    if artifact.kind == "plan":
        assert high is not None  # plans with a dynamic batch have profiles (checked when loading)
        if low > 1:
            raise VitrtError(
                f"{artifact.source.name}: the engine's optimisation profiles start at batch {low}, but Triton sends "
                "any batch from 1 up to max_batch_size — rebuild the engine with a minimum batch of 1"
            )
        if requested is not None and requested > high:
            raise VitrtError(
                f"--max-batch-size {requested} exceeds the largest batch the engine's optimisation profiles allow "
                f"({high}); requests above it would fail in Triton — rebuild the engine with a larger max batch"
            )
        return high if requested is None else requested
    return DEFAULT_ONNX_MAX_BATCH if requested is None else requested


def _dynamic_batching(max_batch: int, options: RepositoryOptions) -> dict[str, Any] | None:
    if max_batch <= 0:
        return None
    if options.preferred_batch_sizes is not None:
        preferred = sorted(set(options.preferred_batch_sizes))
        too_big = [b for b in preferred if b > max_batch]
        if too_big:
            raise VitrtError(f"--preferred-batch-size {too_big[0]} exceeds max_batch_size {max_batch}")
    else:
        preferred = [b for b in (2, 4, 8, 16, 32, 64, 128, 256) if b < max_batch] + [max_batch]
        preferred = [b for b in preferred if b > 1]
    return {"preferred_batch_size": preferred or None, "max_queue_delay_microseconds": options.max_queue_delay_us}


def _instance_group(kind: str, options: RepositoryOptions) -> list[dict[str, Any]]:
    group: dict[str, Any] = {"count": options.instances, "kind": Enum(kind)}
    if kind == "KIND_GPU" and options.gpus:
        group["gpus"] = list(options.gpus)
    return [group]


def _warmup(artifact: Artifact, max_batch: int, options: RepositoryOptions) -> list[dict[str, Any]] | None:
    if options.warmup == 0:
        return None
    inputs = {}
    for tensor in artifact.inputs:
        dims = _warmup_dims(artifact, tensor, max_batch)
        if any(d < 0 for d in dims):
            raise VitrtError(f"--warmup needs fixed input dims, but {tensor.name!r} has dims {dims}")
        inputs[tensor.name] = {"data_type": _triton_type(tensor), "dims": dims, "zero_data": True}
    batches = [1] if max_batch <= 1 else [1, max_batch]
    return [
        {"name": f"zeros_batch{b}", "batch_size": b, "inputs": ProtoMap(inputs), "count": options.warmup}
        for b in batches
    ]


def _warmup_dims(artifact: Artifact, tensor: TensorInfo, max_batch: int) -> list[int]:
    dims = artifact.dims_after_batch(tensor) if max_batch > 0 else artifact.full_dims(tensor)
    if artifact.profiles and tensor.name in artifact.profiles[0]:
        opt = artifact.profiles[0][tensor.name].opt
        dims = list(opt[1:] if max_batch > 0 else opt)
    return dims


def _io(artifact: Artifact, tensors: Sequence[TensorInfo], max_batch: int) -> list[dict[str, Any]]:
    return [
        {
            "name": t.name,
            "data_type": _triton_type(t),
            "dims": artifact.dims_after_batch(t) if max_batch > 0 else artifact.full_dims(t),
        }
        for t in tensors
    ]


def _labels(artifact: Artifact, outputs: list[dict[str, Any]]) -> list[str] | None:
    """Attach labels.txt to the first output whose last dim equals the number of labels (classification)."""
    metadata = artifact.metadata
    if metadata is None or not metadata.labels:
        return None
    for output in outputs:
        if output["dims"] and output["dims"][-1] == len(metadata.labels):
            output["label_filename"] = "labels.txt"
            return [" ".join(str(label).split()) for label in metadata.labels]
    return None


# ------------------------------------------------------------------------------------------------------ writers
def _write_classifier(model_dir: Path, name: str, group: list[Artifact], options: RepositoryOptions) -> ModelReport:
    first = group[0]
    max_batch = _batching(first, options)
    version_dir = model_dir / str(options.version)
    version_dir.mkdir(parents=True)
    config: dict[str, Any] = {"name": name}
    files: list[str] = []
    backend_label = "tensorrt" if first.kind == "plan" else "onnxruntime"
    if options.runtime == "vitrt":
        kind, backend_label = _write_vitrt_model(config, version_dir, group, options, files)
    elif first.kind == "onnx" and options.onnx_backend == "openvino":
        kind, backend_label = _write_openvino_model(config, version_dir, group, options, files), "openvino"
    elif first.kind == "plan":
        config["platform"] = "tensorrt_plan"
        kind = "KIND_GPU"
        if len(group) == 1:
            shutil.copyfile(first.model_file, version_dir / "model.plan")
            files.append(f"{options.version}/model.plan")
        else:
            mapping = {}
            for artifact in sorted(group, key=lambda a: a.compute_capability or ""):
                cc = artifact.compute_capability or ""
                filename = f"model_sm{cc.replace('.', '')}.plan"
                shutil.copyfile(artifact.model_file, version_dir / filename)
                files.append(f"{options.version}/{filename}")
                mapping[cc] = filename
            config["cc_model_filenames"] = ProtoMap(mapping)
    else:
        config["backend"] = "onnxruntime"
        kind = "KIND_GPU" if options.device == "gpu" or options.gpus else "KIND_CPU"
        if first.external_files:
            # An ONNX model with external data is a directory named model.onnx holding model.onnx and its data.
            bundle = version_dir / "model.onnx"
            bundle.mkdir()
            shutil.copyfile(first.model_file, bundle / "model.onnx")
            for location in first.external_files:
                target = bundle / location
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(first.model_file.parent / location, target)
            files += [f"{options.version}/model.onnx/model.onnx"] + [
                f"{options.version}/model.onnx/{loc}" for loc in first.external_files
            ]
        else:
            shutil.copyfile(first.model_file, version_dir / "model.onnx")
            files.append(f"{options.version}/model.onnx")
    config["max_batch_size"] = max_batch
    config["input"] = _io(first, first.inputs, max_batch)
    config["output"] = _io(first, first.outputs, max_batch)
    labels = _labels(first, config["output"])
    config["dynamic_batching"] = _dynamic_batching(max_batch, options)
    config["instance_group"] = _instance_group(kind, options)
    if options.runtime != "vitrt":
        config["model_warmup"] = _warmup(first, max_batch, options)
    if labels is not None:
        (model_dir / "labels.txt").write_text("\n".join(labels) + "\n", encoding="utf-8")
        files.append("labels.txt")
    (model_dir / "config.pbtxt").write_text(to_pbtxt(config), encoding="utf-8")
    return ModelReport(
        name=name,
        backend=backend_label,
        kind=kind,
        max_batch_size=max_batch,
        inputs=[_describe(d) for d in config["input"]],
        outputs=[_describe(d) for d in config["output"]],
        files=["config.pbtxt", *files],
    )


def _write_vitrt_model(
    config: dict[str, Any], version_dir: Path, group: list[Artifact], options: RepositoryOptions, files: list[str]
) -> tuple[str, str]:
    """The Python-backend form: runtime_model.py as model.py, the artifact beside it, settings in a parameter.

    Returns the instance kind and the report's backend label (python/<vitrt backend>)."""
    first = group[0]
    if len(group) > 1:
        raise VitrtError("--runtime vitrt takes one artifact per model (one engine per GPU type is a native form)")
    backend = options.vitrt_backend or ("tensorrt" if first.kind == "plan" else "onnxruntime")
    if first.kind not in VITRT_BACKENDS[backend]:
        runs = "TensorRT plans" if backend == "tensorrt" else "ONNX files"
        raise VitrtError(f"the {backend} runtime runs {runs}; {first.source.name} is not one")
    if first.external_files:
        raise VitrtError(f"{first.source.name} has external data; --runtime vitrt takes self-contained ONNX files")
    shutil.copyfile(Path(__file__).with_name("runtime_model.py"), version_dir / "model.py")
    files.append(f"{options.version}/model.py")
    artifact_name = "model.plan" if first.kind == "plan" else "model.onnx"
    shutil.copyfile(first.model_file, version_dir / artifact_name)
    files.append(f"{options.version}/{artifact_name}")
    if first.kind == "plan":
        # The manifest travels with the plan: vitrt's TensorRT backend verifies the engine against it.
        shutil.copyfile(manifest_path(first.model_file), version_dir / f"{artifact_name}.json")
        files.append(f"{options.version}/{artifact_name}.json")
    gpu = backend == "tensorrt" or options.device == "gpu" or bool(options.gpus)
    settings: dict[str, Any] = {
        "backend": backend,
        "artifact": artifact_name,
        "options": dict(options.backend_options),
        "warmup": options.warmup,
    }
    _write_env_pointer(version_dir, options, files)
    config["backend"] = "python"
    config["parameters"] = ProtoMap({"vitrt": {"string_value": json.dumps(settings, sort_keys=True)}})
    return ("KIND_GPU" if gpu else "KIND_CPU"), f"python/{backend}"


def openvino_parameters(backend_options: dict[str, Any]) -> dict[str, str]:
    """Triton OpenVINO backend parameters from vitrt's OpenVINO option names; VitrtError for what it cannot do."""
    unknown = sorted(set(backend_options) - set(_OPENVINO_PARAMETERS))
    if unknown:
        raise VitrtError(
            f"unknown --backend-option {unknown[0]!r} for Triton's OpenVINO backend; choose from "
            f"{', '.join(_OPENVINO_PARAMETERS)}"
        )
    parameters: dict[str, str] = {}
    precision = str(backend_options.get("precision", "fp32")).lower()
    if precision in ("bf16", "bfloat16"):
        parameters["HINT_BF16"] = "YES"
    elif precision not in ("fp32", "f32", "float32"):
        raise VitrtError(
            f"Triton's OpenVINO backend runs precision fp32 or bf16 (HINT_BF16), not {precision!r}; for fp16 use "
            "--runtime vitrt --vitrt-backend openvino"
        )
    if "threads" in backend_options:
        threads = backend_options["threads"]
        if not isinstance(threads, int) or isinstance(threads, bool) or threads < 1:
            raise VitrtError(f"--backend-option threads must be a positive integer, got {threads!r}")
        parameters["INFERENCE_NUM_THREADS"] = str(threads)
    if "streams" in backend_options:
        streams = backend_options["streams"]
        valid = (isinstance(streams, int) and not isinstance(streams, bool) and streams >= 1) or str(
            streams
        ).lower() in ("auto", "numa")
        if not valid:
            raise VitrtError(f"--backend-option streams must be a positive integer, auto or numa, got {streams!r}")
        parameters["NUM_STREAMS"] = str(streams).upper()
    if "performance_hint" in backend_options:
        hint = str(backend_options["performance_hint"]).lower()
        if hint not in ("latency", "throughput"):
            raise VitrtError(f"--backend-option performance_hint must be latency or throughput, got {hint!r}")
        parameters["PERFORMANCE_HINT"] = hint.upper()
    return parameters


def _write_openvino_model(
    config: dict[str, Any], version_dir: Path, group: list[Artifact], options: RepositoryOptions, files: list[str]
) -> str:
    """Triton's OpenVINO backend: model.xml + model.bin (the IR `vitrt.engines.openvino.save_ir` writes from the
    ONNX file, vitrt nodes inlined), settings as the backend's parameters. Returns the instance kind (CPU)."""
    from vitrt.engines.openvino import save_ir

    if len(group) > 1:
        raise VitrtError("--onnx-backend openvino takes one ONNX file per model")
    for path in save_ir(group[0].model_file, version_dir / "model.xml"):
        files.append(f"{options.version}/{path.name}")
    config["backend"] = "openvino"
    parameters = openvino_parameters(options.backend_options)
    if parameters:
        config["parameters"] = ProtoMap({key: {"string_value": value} for key, value in parameters.items()})
    return "KIND_CPU"


def _write_env_pointer(version_dir: Path, options: RepositoryOptions, files: list[str]) -> None:
    """python_env.txt: the `vitrt triton-env` directory the Python-backend model puts on sys.path at import."""
    if options.python_env is not None:
        (version_dir / ENV_POINTER).write_text(f"{Path(options.python_env).absolute()}\n", encoding="utf-8")
        files.append(f"{options.version}/{ENV_POINTER}")


def _write_preprocessing(
    stage: Path, name: str, artifact: Artifact, classifier: ModelReport, options: RepositoryOptions
) -> list[ModelReport]:
    metadata = artifact.metadata
    if metadata is None:
        raise VitrtError(
            f"--with-preprocessing needs the model's metadata (input size, mean, std), but {artifact.source.name} "
            "has none; export it with vitrt"
        )
    if len(artifact.inputs) != 1 or len(artifact.outputs) != 1:
        raise VitrtError("--with-preprocessing supports classifiers with one input and one output")
    pixels = artifact.inputs[0]
    expected = [*metadata.input_size]
    if classifier.max_batch_size <= 0:
        raise VitrtError("--with-preprocessing needs a batched classifier (max_batch_size > 0)")
    dims = artifact.dims_after_batch(pixels)
    if dims != expected:
        raise VitrtError(
            f"--with-preprocessing: input {pixels.name!r} has dims {dims} but the metadata says {expected}"
        )
    max_batch = classifier.max_batch_size
    version = str(options.version)
    settings = {
        "size": list(metadata.image_size),
        "crop_pct": metadata.crop_pct,
        "interpolation": metadata.interpolation,
        "mean": list(metadata.mean),
        "std": list(metadata.std),
    }
    pixel_type = _triton_type(pixels)

    pre_name = f"{name}_preprocess"
    pre_dir = stage / pre_name
    (pre_dir / version).mkdir(parents=True)
    shutil.copyfile(Path(__file__).with_name("preprocess_model.py"), pre_dir / version / "model.py")
    pre_files = ["config.pbtxt", f"{version}/model.py"]
    _write_env_pointer(pre_dir / version, options, pre_files)
    pixels_output = {"name": _PIXELS_OUTPUT, "data_type": pixel_type, "dims": expected}
    pre_config = {
        "name": pre_name,
        "backend": "python",
        "max_batch_size": max_batch,
        "input": [{"name": _IMAGE_INPUT, "data_type": Enum("TYPE_STRING"), "dims": [1]}],
        "output": [pixels_output],
        "dynamic_batching": {"max_queue_delay_microseconds": options.max_queue_delay_us},
        "instance_group": [{"count": options.instances, "kind": Enum("KIND_CPU")}],
        "parameters": ProtoMap({"preprocess": {"string_value": json.dumps(settings)}}),
    }
    (pre_dir / "config.pbtxt").write_text(to_pbtxt(pre_config), encoding="utf-8")

    output = artifact.outputs[0]
    ens_name = f"{name}_image"
    ens_dir = stage / ens_name
    (ens_dir / version).mkdir(parents=True)  # ensembles have an empty version directory
    ens_output = {"name": output.name, "data_type": _triton_type(output), "dims": artifact.dims_after_batch(output)}
    labels = _labels(artifact, [ens_output])
    ens_config = {
        "name": ens_name,
        "platform": "ensemble",
        "max_batch_size": max_batch,
        "input": [{"name": _IMAGE_INPUT, "data_type": Enum("TYPE_STRING"), "dims": [1]}],
        "output": [ens_output],
        "ensemble_scheduling": {
            "step": [
                {
                    "model_name": pre_name,
                    "model_version": -1,
                    "input_map": ProtoMap({_IMAGE_INPUT: _IMAGE_INPUT}),
                    "output_map": ProtoMap({_PIXELS_OUTPUT: "pixels"}),
                },
                {
                    "model_name": name,
                    "model_version": -1,
                    "input_map": ProtoMap({pixels.name: "pixels"}),
                    "output_map": ProtoMap({output.name: output.name}),
                },
            ]
        },
    }
    if labels is not None:
        (ens_dir / "labels.txt").write_text("\n".join(labels) + "\n", encoding="utf-8")
    (ens_dir / "config.pbtxt").write_text(to_pbtxt(ens_config), encoding="utf-8")
    return [
        ModelReport(
            name=pre_name,
            backend="python",
            kind="KIND_CPU",
            max_batch_size=max_batch,
            inputs=[f"{_IMAGE_INPUT}[1] TYPE_STRING"],
            outputs=[_describe(pixels_output)],
            files=pre_files,
        ),
        ModelReport(
            name=ens_name,
            backend="ensemble",
            kind="-",
            max_batch_size=max_batch,
            inputs=[f"{_IMAGE_INPUT}[1] TYPE_STRING"],
            outputs=[_describe(ens_output)],
            files=["config.pbtxt"] + (["labels.txt"] if labels else []),
        ),
    ]


def _describe(io: dict[str, Any]) -> str:
    return f"{io['name']}[{','.join(str(d) for d in io['dims'])}] {io['data_type']}"


def _commands(
    out: Path, image: releases.TritonImage, plugin: Path | None, uses_gpu: bool, custom_image: bool
) -> dict[str, str]:
    container_image = f"vitrt-triton:{image.release}" if custom_image else image.image
    server = ["tritonserver", "--model-repository=/models"]
    docker = ["docker", "run", "--rm"]
    if uses_gpu:
        docker += ["--gpus", "all"]
    docker += ["-p", "8000:8000", "-p", "8001:8001", "-p", "8002:8002", "-v", f"{out}:/models:ro"]
    host = ["tritonserver", f"--model-repository={out}"]
    commands = {"image": container_image}
    if plugin is not None:
        docker += ["-v", f"{plugin.parent}:/plugins:ro"]
        server.append(f"--backend-config=tensorrt,plugins=/plugins/{plugin.name}")
        host.append(f"--backend-config=tensorrt,plugins={plugin}")
        commands["ld_preload"] = f"LD_PRELOAD={shlex.quote(str(plugin))} " + shlex.join(host[:2])
    commands["docker"] = shlex.join([*docker, container_image, *server])
    commands["tritonserver"] = shlex.join(host)
    if custom_image:
        commands["build_image"] = shlex.join(
            [
                "docker",
                "build",
                "-f",
                "docker/Dockerfile.triton",
                "--build-arg",
                f"TRITON_RELEASE={image.release}",
                "-t",
                container_image,
                ".",
            ]
        )
    return commands
