"""Triton repositories for TensorRT plans (crafted manifests + dummy plan bytes; no TensorRT needed)."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from pathlib import Path

import pytest

from vitrt.errors import ArtifactError, PluginError, VitrtError
from vitrt.triton import NoMatchingReleaseError, RepositoryOptions, build_repository, image_for_plan, load_artifact
from vitrt.triton.releases import TENSORRT_IN_TRITON_PY3, versions_match


def test_plan_config_follows_the_profile(write_engine: Callable, tmp_path: Path, parse_config: Callable) -> None:
    manifest = write_engine(batch=(1, 8, 32), ngc_release="25.01", dtype="float16")
    repo = tmp_path / "repo"
    report = build_repository([manifest], repo, RepositoryOptions(warmup=1))
    config = parse_config(repo / "tiny_digits" / "config.pbtxt")
    assert config.platform == "tensorrt_plan" and config.max_batch_size == 32
    assert config.input[0].name == "input" and config.input[0].data_type == 10  # TYPE_FP16
    assert list(config.input[0].dims) == [3, 32, 32] and list(config.output[0].dims) == [10]
    assert list(config.dynamic_batching.preferred_batch_size) == [2, 4, 8, 16, 32]
    assert config.instance_group[0].kind == 1  # KIND_GPU
    assert [w.batch_size for w in config.model_warmup] == [1, 32]
    plan = manifest.with_name("model.plan")
    copied = repo / "tiny_digits" / "1" / "model.plan"
    assert hashlib.sha256(copied.read_bytes()).digest() == hashlib.sha256(plan.read_bytes()).digest()
    assert report.image == "nvcr.io/nvidia/tritonserver:25.01-py3"
    assert "NGC release the engine was built in" in report.image_reason
    assert "--gpus all" in report.commands["docker"] and "compute capability 8.9" in " ".join(report.notes)

    smaller = build_repository([manifest], tmp_path / "r2", RepositoryOptions(max_batch_size=4))
    assert smaller.models[0].max_batch_size == 4


def test_batch_beyond_the_profile_is_refused(write_engine: Callable, tmp_path: Path) -> None:
    manifest = write_engine(batch=(1, 8, 16), ngc_release="25.01")
    with pytest.raises(VitrtError, match=r"--max-batch-size 64 exceeds .* profiles allow \(16\)"):
        build_repository([manifest], tmp_path / "repo", RepositoryOptions(max_batch_size=64))
    starts_at_four = write_engine("min4", batch=(4, 8, 16), ngc_release="25.01")
    with pytest.raises(VitrtError, match="profiles start at batch 4"):
        build_repository([starts_at_four], tmp_path / "repo", RepositoryOptions())
    assert not (tmp_path / "repo").exists()


def test_static_engine_has_no_batching(write_engine: Callable, tmp_path: Path, parse_config: Callable) -> None:
    manifest = write_engine(batch=None, ngc_release="25.01")
    build_repository([manifest], tmp_path / "repo", RepositoryOptions())
    config = parse_config(tmp_path / "repo" / "tiny_digits" / "config.pbtxt")
    assert config.max_batch_size == 0 and list(config.input[0].dims) == [1, 3, 32, 32]
    with pytest.raises(VitrtError, match="fixed batch dimension"):
        build_repository([manifest], tmp_path / "r2", RepositoryOptions(max_batch_size=8))


def test_plans_for_several_gpus_share_one_model(write_engine: Callable, tmp_path: Path, parse_config: Callable) -> None:
    ampere = write_engine("a100", compute_capability="8.0", ngc_release="25.01")
    hopper = write_engine("h100", compute_capability="9.0", ngc_release="25.01")
    build_repository([hopper, ampere], tmp_path / "repo", RepositoryOptions())
    config = parse_config(tmp_path / "repo" / "tiny_digits" / "config.pbtxt")
    assert dict(config.cc_model_filenames) == {"8.0": "model_sm80.plan", "9.0": "model_sm90.plan"}
    version_dir = tmp_path / "repo" / "tiny_digits" / "1"
    assert (version_dir / "model_sm90.plan").read_bytes() == hopper.with_name("h100.plan").read_bytes()

    other_trt = write_engine("old", compute_capability="8.6", tensorrt_version="10.7.0.23", ngc_release="25.01")
    with pytest.raises(VitrtError, match="different TensorRT versions"):
        build_repository([ampere, other_trt], tmp_path / "r2", RepositoryOptions())
    same_cc = write_engine("again", compute_capability="8.0", ngc_release="25.01")
    with pytest.raises(VitrtError, match="without distinct compute capabilities"):
        build_repository([ampere, same_cc], tmp_path / "r3", RepositoryOptions())


def test_plugin_library_travels_outside_the_repository(
    write_engine: Callable, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("VITRT_PLUGIN_DIR", raising=False)
    library = tmp_path / "build" / "libvitrt_plugins.so"
    library.parent.mkdir()
    library.write_bytes(b"\x7fELF not really a library, copied byte for byte")
    digest = hashlib.sha256(library.read_bytes()).hexdigest()
    manifest = write_engine(
        ngc_release="25.01",
        plugin_library=str(library),
        plugin_sha256=digest,
        plugin_ops=["VitrtAgentAttention"],
        onnx_flavour="tensorrt",
    )
    repo = tmp_path / "deploy" / "models"
    report = build_repository([manifest], repo, RepositoryOptions())
    copy = tmp_path / "deploy" / "plugins" / "libvitrt_plugins.so"
    assert report.plugin_library == copy and copy.read_bytes() == library.read_bytes()
    assert report.plugin_sha256 == digest
    assert "--backend-config=tensorrt,plugins=/plugins/libvitrt_plugins.so" in report.commands["docker"]
    assert f"-v {copy.parent}:/plugins:ro" in report.commands["docker"]
    assert report.commands["ld_preload"].startswith(f"LD_PRELOAD={copy} tritonserver")
    assert not (repo / "plugins").exists()

    with pytest.raises(VitrtError, match="inside the model repository"):
        build_repository([manifest], tmp_path / "r2", RepositoryOptions(plugin_dir=tmp_path / "r2" / "plugins"))
    impostor = tmp_path / "other.so"
    impostor.write_bytes(b"a different build")
    with pytest.raises(PluginError, match="is not the plugin library model.plan.json was built with"):
        build_repository([manifest], tmp_path / "r3", RepositoryOptions(plugins=impostor))
    needs_plugins = write_engine("bare", ngc_release="25.01", plugin_ops=["VitrtAgentAttention"])
    with pytest.raises(PluginError, match="uses VitrtAgentAttention but no plugin library was found"):
        build_repository([needs_plugins], tmp_path / "r4", RepositoryOptions())
    monkeypatch.setenv("VITRT_PLUGIN_DIR", str(library.parent))  # as docker/Dockerfile.gpu sets it
    found = build_repository([needs_plugins], tmp_path / "r4", RepositoryOptions())
    assert found.plugin_library is not None and found.plugin_library.read_bytes() == library.read_bytes()


def test_triton_image_needs_a_documented_tensorrt_match(write_engine: Callable, tmp_path: Path) -> None:
    unknown = write_engine(tensorrt_version="10.13.3.9")
    with pytest.raises(NoMatchingReleaseError, match="no Triton release in vitrt's table is documented with"):
        build_repository([unknown], tmp_path / "repo", RepositoryOptions())
    assert not (tmp_path / "repo").exists()
    report = build_repository([unknown], tmp_path / "repo", RepositoryOptions(triton_release="25.10"))
    assert report.image == "nvcr.io/nvidia/tritonserver:25.10-py3" and "as requested" in report.image_reason

    # Documented -py3 releases: exact TensorRT (build numbers included) or refusal.
    assert image_for_plan("8.6.1.2").release == "23.05"
    assert image_for_plan("8.6.3.1").release == "24.02"
    with pytest.raises(NoMatchingReleaseError, match="Triton 23.05 carries TensorRT 8.6.1.2"):
        image_for_plan("8.6.1.6", requested="23.05")
    assert image_for_plan("8.6.1.6", requested="24.02", version_compatible=True).release == "24.02"
    with pytest.raises(NoMatchingReleaseError, match="does not record the TensorRT version"):
        image_for_plan(None)
    with pytest.raises(VitrtError, match="must look like YY.MM"):
        build_repository([unknown], tmp_path / "r2", RepositoryOptions(triton_release="latest"))
    assert all(versions_match(f.tensorrt, f.tensorrt + ".0") for f in TENSORRT_IN_TRITON_PY3.values())
    assert not versions_match("8.6.1.2", "8.6.1.6") and not versions_match("10.8", "10.9.0.34")


def test_broken_manifests_are_explained(write_engine: Callable, tmp_path: Path) -> None:
    manifest = write_engine()
    manifest.with_name("model.plan").unlink()
    with pytest.raises(ArtifactError, match="the plan it describes is missing"):
        load_artifact(manifest)
    lone = tmp_path / "lone.plan"
    lone.write_bytes(b"plan")
    with pytest.raises(ArtifactError, match="has no engine manifest beside it"):
        load_artifact(lone)
    bad = write_engine("bad", inputs=[{"name": "input", "dtype": "complex64", "shape": [-1, 3]}])
    with pytest.raises(ArtifactError, match="unknown dtype 'complex64'"):
        load_artifact(bad)
    no_profile = write_engine("noprof", profiles=[])
    with pytest.raises(ArtifactError, match="lists no optimisation profiles"):
        load_artifact(no_profile)
    changed = write_engine("changed")
    changed.with_name("changed.plan").write_bytes(b"rebuilt since the manifest was written")
    with pytest.raises(ArtifactError, match="describes a different engine than changed.plan"):
        load_artifact(changed)
    foreign = write_engine("foreign", format="something-else")
    with pytest.raises(ArtifactError, match="is not a vitrt engine manifest"):
        load_artifact(foreign)
    newer = write_engine("newer", format_version=2)
    with pytest.raises(ArtifactError, match="manifest format 2; this vitrt reads up to 1"):
        load_artifact(newer)
