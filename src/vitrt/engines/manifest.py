"""The engine manifest: what a TensorRT plan was built with, checked before the plan is loaded.

A serialized engine only runs with the TensorRT version and GPU architecture it was built for, and with the exact
plugin library it was built against; loading it anywhere else fails deep inside TensorRT, or silently computes
garbage with a changed plugin. `vitrt build` therefore writes `model.plan.json` next to `model.plan`, and every
loader calls `verify_engine` first, which refuses a mismatched engine with a one-line reason unless the caller
explicitly allows it.
"""

from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from vitrt.engines.base import TensorSpec
from vitrt.errors import ArtifactError, ManifestMismatchError
from vitrt.files import atomic_write, sha256_file
from vitrt.metadata import ModelMetadata

log = logging.getLogger(__name__)

MANIFEST_FORMAT = "vitrt-engine-manifest"
MANIFEST_VERSION = 1
# TensorRT HardwareCompatibilityLevel names as vitrt records them.
HARDWARE_COMPATIBILITY = ("none", "ampere_plus", "same_compute_capability")


def manifest_path(engine_path: str | Path) -> Path:
    """`model.plan` -> `model.plan.json`."""
    path = Path(engine_path)
    return path.with_name(path.name + ".json")


@dataclass
class EngineManifest:
    """Everything needed to decide whether an engine can run here, and how to feed it."""

    tensorrt_version: str
    gpu_name: str
    compute_capability: str  # "major.minor", e.g. "9.0"
    precision: str  # fp32 | fp16 | bf16 | int8
    strongly_typed: bool
    # One dict per optimisation profile: input name -> {"min": shape, "opt": shape, "max": shape}.
    profiles: list[dict[str, dict[str, list[int]]]]
    onnx_sha256: str
    engine_sha256: str
    engine_size: int
    inputs: list[TensorSpec]
    outputs: list[TensorSpec]
    onnx_path: str | None = None
    onnx_flavour: str = "inlined"  # "tensorrt" (plugins) or "inlined" (standard ops only)
    plugin_library: str | None = None
    plugin_sha256: str | None = None
    plugin_ops: list[str] = field(default_factory=list)
    vitrt_version: str = ""
    metadata: dict[str, Any] | None = None
    build_options: dict[str, Any] = field(default_factory=dict)
    hardware_compatibility: str = "none"
    version_compatible: bool = False
    # The plugin library is serialized into the plan (version-compatible engines): the runtime must allow engine
    # host code, and the lean runtime inside the plan loads the plugins from there.
    plugins_serialized: bool = False
    # Plugin layers of the built network by plugin name: one per vitrt node of a `tensorrt`-flavour build.
    plugin_layers: dict[str, int] = field(default_factory=dict)
    # NGC container release the engine was built in (e.g. "25.10"): picks the matching Triton image.
    ngc_release: str | None = None
    # INT8 engines: the `vitrt quantize` record of the Q/DQ file (target, method, calibration source, count and
    # sha256, held-out accuracy drop and agreement); None for float engines.
    quantization: dict[str, Any] | None = None
    created: str = ""
    format_version: int = MANIFEST_VERSION

    def __post_init__(self) -> None:
        # Keep the JSON-facing fields in their JSON form (tuples -> lists), so a loaded manifest equals a built one.
        self.profiles = json.loads(json.dumps(self.profiles))
        self.metadata = json.loads(json.dumps(self.metadata)) if self.metadata is not None else None
        self.build_options = json.loads(json.dumps(self.build_options, default=str))

    @property
    def max_batch_size(self) -> int | None:
        """Largest batch every profile accepts for every input (None when the profiles are empty)."""
        maxima = [shapes["max"][0] for profile in self.profiles for shapes in profile.values() if shapes["max"]]
        return min(maxima) if maxima else None

    def model_metadata(self) -> ModelMetadata | None:
        return ModelMetadata.from_dict(self.metadata) if self.metadata else None

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["inputs"] = [_spec_to_dict(spec) for spec in self.inputs]
        data["outputs"] = [_spec_to_dict(spec) for spec in self.outputs]
        return {"format": MANIFEST_FORMAT, **data}

    @classmethod
    def from_dict(cls, data: dict[str, Any], *, source: str = "manifest") -> EngineManifest:
        if not isinstance(data, dict) or data.get("format") != MANIFEST_FORMAT:
            raise ArtifactError(f"{source} is not a vitrt engine manifest")
        version = data.get("format_version")
        if not isinstance(version, int) or version > MANIFEST_VERSION:
            raise ArtifactError(
                f"{source} has manifest format {version!r}; this vitrt reads up to {MANIFEST_VERSION} (upgrade vitrt)"
            )
        known = set(cls.__dataclass_fields__)
        values = {k: v for k, v in data.items() if k in known}
        try:
            values["inputs"] = [_spec_from_dict(item) for item in data["inputs"]]
            values["outputs"] = [_spec_from_dict(item) for item in data["outputs"]]
            manifest = cls(**values)
        except (KeyError, TypeError, ValueError) as err:
            raise ArtifactError(f"{source} is malformed ({type(err).__name__}: {err})") from None
        missing = [name for name in ("tensorrt_version", "compute_capability", "engine_sha256") if not values.get(name)]
        if missing:
            raise ArtifactError(f"{source} is malformed (missing {', '.join(missing)})")
        return manifest

    def save(self, path: str | Path) -> Path:
        """Write atomically (a half-written manifest must never sit next to a good engine)."""
        path = Path(path)
        atomic_write(path, (json.dumps(self.to_dict(), indent=2) + "\n").encode())
        return path

    @classmethod
    def load(cls, path: str | Path) -> EngineManifest:
        path = Path(path)
        try:
            data = json.loads(path.read_text())
        except FileNotFoundError:
            raise ArtifactError(f"manifest not found: {path}") from None
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
            raise ArtifactError(f"cannot read manifest {path} ({type(err).__name__})") from None
        return cls.from_dict(data, source=str(path))


@dataclass(frozen=True)
class RuntimeEnvironment:
    """What is present on the loading machine, compared against a manifest."""

    tensorrt_version: str
    gpu_name: str
    compute_capability: str
    plugin_library: str | None = None
    plugin_sha256: str | None = None

    @classmethod
    def current(cls, plugin_library: str | Path | None = None, device: int | None = None) -> RuntimeEnvironment:
        """The environment of this process: the imported TensorRT, the selected CUDA device and a plugin library."""
        import tensorrt as trt
        import torch

        index = torch.cuda.current_device() if device is None else device
        major, minor = torch.cuda.get_device_capability(index)
        plugin = str(plugin_library) if plugin_library is not None else None
        return cls(
            tensorrt_version=str(trt.__version__),
            gpu_name=torch.cuda.get_device_name(index),
            compute_capability=f"{major}.{minor}",
            plugin_library=plugin,
            plugin_sha256=sha256_file(plugin) if plugin is not None else None,
        )


def check_compatibility(manifest: EngineManifest, env: RuntimeEnvironment) -> list[str]:
    """Reasons why the engine described by `manifest` cannot run in `env` (empty when it can)."""
    problems = []
    built, here = _version_tuple(manifest.tensorrt_version), _version_tuple(env.tensorrt_version)
    if manifest.version_compatible:
        if built[:1] != here[:1] or here < built:
            problems.append(
                f"engine built with TensorRT {manifest.tensorrt_version} (version-compatible) cannot run on "
                f"TensorRT {env.tensorrt_version}; it needs the same major version, at least as new"
            )
    elif built[:3] != here[:3]:
        problems.append(
            f"engine built with TensorRT {manifest.tensorrt_version}, this machine has {env.tensorrt_version}"
        )
    built_cc, here_cc = _cc_tuple(manifest.compute_capability), _cc_tuple(env.compute_capability)
    level = manifest.hardware_compatibility
    if level == "ampere_plus":
        if here_cc < (8, 0):
            problems.append(
                f"engine built for Ampere or newer GPUs, this GPU ({env.gpu_name}) has compute capability "
                f"{env.compute_capability}"
            )
    elif built_cc != here_cc:
        problems.append(
            f"engine built for compute capability {manifest.compute_capability} ({manifest.gpu_name}), this GPU "
            f"({env.gpu_name}) has {env.compute_capability}"
        )
    if manifest.plugin_sha256:
        if env.plugin_sha256 is None:
            problems.append(
                f"engine needs the vitrt plugin library it was built with ({manifest.plugin_library}); none is loaded"
            )
        elif env.plugin_sha256 != manifest.plugin_sha256:
            problems.append(
                f"plugin library {env.plugin_library} (sha256 {env.plugin_sha256[:12]}) differs from the one the "
                f"engine was built with ({manifest.plugin_library}, sha256 {manifest.plugin_sha256[:12]})"
            )
    return problems


def verify_engine(
    engine_path: str | Path,
    env: RuntimeEnvironment,
    *,
    allow_mismatch: bool = False,
) -> EngineManifest | None:
    """Load and check the manifest of `engine_path`; raise on any mismatch unless `allow_mismatch`.

    Returns the manifest, or None when it is missing and `allow_mismatch` is set.
    """
    engine_path = Path(engine_path)
    if not engine_path.is_file():
        raise ArtifactError(f"engine not found: {engine_path}")
    path = manifest_path(engine_path)
    if not path.is_file():
        if allow_mismatch:
            log.warning("no manifest next to %s; loading it unchecked", engine_path)
            return None
        raise ArtifactError(
            f"no manifest next to {engine_path} (expected {path.name}); rebuild it with `vitrt build`, or pass "
            "--ignore-manifest-mismatch / allow_mismatch=True to load it unchecked"
        )
    manifest = EngineManifest.load(path)
    problems = []
    if sha256_file(engine_path) != manifest.engine_sha256:
        problems.append(f"{path.name} describes a different engine than {engine_path.name} (sha256 differs)")
    problems += check_compatibility(manifest, env)
    if problems:
        more = f" (and {len(problems) - 1} more problem(s))" if len(problems) > 1 else ""
        if allow_mismatch:
            for problem in problems:
                log.warning("ignoring manifest mismatch: %s", problem)
            return manifest
        raise ManifestMismatchError(
            f"refusing to load {engine_path.name}: {problems[0]}{more}; rebuild the engine on this machine or pass "
            "--ignore-manifest-mismatch"
        )
    if manifest.gpu_name and manifest.gpu_name != env.gpu_name:
        log.info("engine tuned on %s, running on %s (same compute capability)", manifest.gpu_name, env.gpu_name)
    return manifest


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def _spec_to_dict(spec: TensorSpec) -> dict[str, Any]:
    return {"name": spec.name, "dtype": spec.dtype, "shape": [-1 if d is None else d for d in spec.shape]}


def _spec_from_dict(data: dict[str, Any]) -> TensorSpec:
    shape = tuple(None if int(d) < 0 else int(d) for d in data["shape"])
    return TensorSpec(name=str(data["name"]), dtype=str(data["dtype"]), shape=shape)


def _version_tuple(version: str) -> tuple[int, ...]:
    parts = []
    for part in version.split("."):
        digits = "".join(ch for ch in part if ch.isdigit())
        parts.append(int(digits) if digits else 0)
    return tuple(parts)


def _cc_tuple(cc: str) -> tuple[int, int]:
    major, _, minor = cc.partition(".")
    return int(major or 0), int(minor or 0)
