"""Engine manifests: round trip, and refusal of engines built for another TensorRT, GPU or plugin library."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest
from tinyvit import tiny_metadata

from vitrt.engines.base import TensorSpec
from vitrt.engines.manifest import EngineManifest, RuntimeEnvironment, check_compatibility, manifest_path, verify_engine
from vitrt.errors import ArtifactError, ManifestMismatchError
from vitrt.files import sha256_file

H100 = RuntimeEnvironment(tensorrt_version="10.13.0.35", gpu_name="NVIDIA H100 80GB HBM3", compute_capability="9.0")


def crafted_engine(tmp_path: Path, **overrides: object) -> tuple[Path, EngineManifest]:
    """A plan file (arbitrary bytes: the manifest check runs before TensorRT reads it) and its manifest."""
    engine = tmp_path / "model.plan"
    engine.write_bytes(b"serialized engine bytes")
    values: dict[str, object] = dict(
        tensorrt_version="10.13.0.35",
        gpu_name="NVIDIA H100 80GB HBM3",
        compute_capability="9.0",
        precision="fp16",
        strongly_typed=False,
        profiles=[{"input": {"min": [1, 3, 16, 16], "opt": [8, 3, 16, 16], "max": [32, 3, 16, 16]}}],
        onnx_sha256="0" * 64,
        engine_sha256=sha256_file(engine),
        engine_size=engine.stat().st_size,
        inputs=[TensorSpec("input", "float32", (None, 3, 16, 16))],
        outputs=[TensorSpec("logits", "float32", (None, 10))],
        metadata=tiny_metadata().to_dict(),
        created="2026-01-01T00:00:00+00:00",
    )
    values.update(overrides)
    manifest = EngineManifest(**values)  # type: ignore[arg-type]
    manifest.save(manifest_path(engine))
    return engine, manifest


def test_manifest_round_trips_through_json(tmp_path: Path) -> None:
    engine, manifest = crafted_engine(tmp_path, plugin_library="/opt/libvitrt_plugins.so", plugin_sha256="ab" * 32)
    path = manifest_path(engine)
    assert path.name == "model.plan.json"
    data = json.loads(path.read_text())
    assert data["format"] == "vitrt-engine-manifest" and data["inputs"][0]["shape"] == [-1, 3, 16, 16]
    loaded = EngineManifest.load(path)
    assert loaded == manifest
    assert loaded.max_batch_size == 32
    assert loaded.inputs[0].shape == (None, 3, 16, 16)
    assert loaded.model_metadata() == tiny_metadata()


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("{not json", "cannot read manifest"),
        ('{"format": "something-else"}', "not a vitrt engine manifest"),
        ('{"format": "vitrt-engine-manifest", "format_version": 99}', "upgrade vitrt"),
        ('{"format": "vitrt-engine-manifest", "format_version": 1, "inputs": []}', "malformed"),
    ],
)
def test_unreadable_manifests_are_refused_in_one_line(tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "bad.plan.json"
    path.write_text(content)
    with pytest.raises(ArtifactError, match=message) as err:
        EngineManifest.load(path)
    assert "\n" not in str(err.value)


def test_matching_environment_has_no_problems(tmp_path: Path) -> None:
    engine, manifest = crafted_engine(tmp_path)
    assert check_compatibility(manifest, H100) == []
    # Same architecture, other board: accepted (TensorRT plans are per compute capability).
    h100_pcie = RuntimeEnvironment("10.13.0.35", "NVIDIA H100 PCIe", "9.0")
    assert verify_engine(engine, h100_pcie) == manifest


@pytest.mark.parametrize(
    ("env", "fragment"),
    [
        (
            RuntimeEnvironment("10.15.1.29", "NVIDIA H100 80GB HBM3", "9.0"),
            "TensorRT 10.13.0.35, this machine has 10.15",
        ),
        (RuntimeEnvironment("10.13.0.35", "NVIDIA A100-SXM4-80GB", "8.0"), "compute capability 9.0"),
        (RuntimeEnvironment("10.13.0.35", "NVIDIA L4", "8.9"), r"this GPU \(NVIDIA L4\) has 8\.9"),
    ],
)
def test_engine_for_another_tensorrt_or_gpu_is_refused(tmp_path: Path, env: RuntimeEnvironment, fragment: str) -> None:
    engine, _ = crafted_engine(tmp_path)
    with pytest.raises(ManifestMismatchError, match=fragment) as err:
        verify_engine(engine, env)
    message = str(err.value)
    assert "\n" not in message and message.startswith("refusing to load model.plan")
    assert "--ignore-manifest-mismatch" in message


def test_plugin_library_hash_must_match(tmp_path: Path) -> None:
    library = tmp_path / "libvitrt_plugins.so"
    library.write_bytes(b"plugin library v1")
    engine, _ = crafted_engine(
        tmp_path, plugin_library=str(library), plugin_sha256=sha256_file(library), onnx_flavour="tensorrt"
    )
    same = RuntimeEnvironment("10.13.0.35", "NVIDIA H100", "9.0", str(library), sha256_file(library))
    assert verify_engine(engine, same) is not None
    library.write_bytes(b"plugin library v2, rebuilt")
    changed = RuntimeEnvironment("10.13.0.35", "NVIDIA H100", "9.0", str(library), sha256_file(library))
    with pytest.raises(ManifestMismatchError, match="differs from the one the engine was built with"):
        verify_engine(engine, changed)
    without = RuntimeEnvironment("10.13.0.35", "NVIDIA H100", "9.0")
    with pytest.raises(ManifestMismatchError, match="needs the vitrt plugin library"):
        verify_engine(engine, without)


def test_several_problems_are_summarised_on_one_line(tmp_path: Path) -> None:
    engine, _ = crafted_engine(tmp_path)
    with pytest.raises(ManifestMismatchError, match=r"and 1 more problem") as err:
        verify_engine(engine, RuntimeEnvironment("9.3.0.1", "Tesla T4", "7.5"))
    assert "\n" not in str(err.value)


def test_override_loads_a_mismatched_engine_with_warnings(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    engine, manifest = crafted_engine(tmp_path)
    with caplog.at_level(logging.WARNING):
        loaded = verify_engine(engine, RuntimeEnvironment("10.15.1.29", "Tesla T4", "7.5"), allow_mismatch=True)
    assert loaded == manifest
    assert sum("ignoring manifest mismatch" in r.message for r in caplog.records) == 2


def test_hardware_and_version_compatible_engines(tmp_path: Path) -> None:
    _, manifest = crafted_engine(tmp_path, hardware_compatibility="ampere_plus", version_compatible=True)
    assert check_compatibility(manifest, RuntimeEnvironment("10.15.1.29", "NVIDIA L4", "8.9")) == []
    problems = check_compatibility(manifest, RuntimeEnvironment("10.13.0.35", "Tesla T4", "7.5"))
    assert problems == ["engine built for Ampere or newer GPUs, this GPU (Tesla T4) has compute capability 7.5"]
    older = check_compatibility(manifest, RuntimeEnvironment("10.8.0.43", "NVIDIA H100", "9.0"))
    assert len(older) == 1 and "at least as new" in older[0]
    next_major = check_compatibility(manifest, RuntimeEnvironment("11.1.0.1", "NVIDIA H100", "9.0"))
    assert len(next_major) == 1 and "same major version" in next_major[0]


def test_missing_manifest_is_an_error_unless_overridden(tmp_path: Path) -> None:
    engine = tmp_path / "orphan.plan"
    engine.write_bytes(b"engine without manifest")
    with pytest.raises(ArtifactError, match=r"no manifest next to .*orphan\.plan \(expected orphan\.plan\.json\)"):
        verify_engine(engine, H100)
    assert verify_engine(engine, H100, allow_mismatch=True) is None


def test_manifest_of_another_engine_is_detected(tmp_path: Path) -> None:
    engine, _ = crafted_engine(tmp_path)
    engine.write_bytes(b"a different engine rebuilt in place")
    with pytest.raises(ManifestMismatchError, match="describes a different engine"):
        verify_engine(engine, H100)
