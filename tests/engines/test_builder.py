"""The engine builder's ONNX half (runs anywhere) and its behaviour without TensorRT; the full build is GPU-only."""

from __future__ import annotations

from pathlib import Path

import onnx
import pytest
from tinyvit import vitrt_op_model

from vitrt.engines import builder
from vitrt.engines.availability import tensorrt_problem
from vitrt.engines.builder import BuildOptions, parse_batch, plan_build
from vitrt.engines.plugin_library import PLUGIN_DIR_ENV
from vitrt.errors import BackendUnavailableError, EngineBuildError, PluginError

NO_TENSORRT = tensorrt_problem() is not None


def save(model: onnx.ModelProto, path: Path) -> Path:
    onnx.save(model, str(path))
    return path


@pytest.mark.parametrize(("text", "expected"), [("8", (8, 8, 8)), ("1:8:32", (1, 8, 32)), (" 2:2:4 ", (2, 2, 4))])
def test_parse_batch(text: str, expected: tuple[int, int, int]) -> None:
    assert parse_batch(text) == expected


@pytest.mark.parametrize("text", ["0", "8:4:16", "a:b:c", "1:2", "1:2:3:4", "-1"])
def test_parse_batch_rejects_bad_profiles(text: str) -> None:
    with pytest.raises(EngineBuildError, match="batch"):
        parse_batch(text)


def test_dynamic_export_gets_the_default_dynamic_profile(tiny_onnx: Path) -> None:
    plan = plan_build(tiny_onnx, BuildOptions(plugins="none"))
    assert plan.profile == {"input": ((1, 3, 16, 16), (8, 3, 16, 16), (32, 3, 16, 16))}
    assert plan.metadata is not None and plan.metadata.model == "tiny_vit_test"
    assert plan.flavour == "inlined" and plan.fp32_nodes == set()  # fp32 build: nothing to pin
    explicit = plan_build(tiny_onnx, BuildOptions(batch="2:4:64"))
    assert explicit.profile["input"][2] == (64, 3, 16, 16)


def test_fixed_batch_export_gets_a_fixed_profile(tiny_onnx: Path, tmp_path: Path) -> None:
    model = onnx.load(str(tiny_onnx))
    model.graph.input[0].type.tensor_type.shape.dim[0].dim_value = 4
    fixed = save(model, tmp_path / "fixed.onnx")
    assert plan_build(fixed, BuildOptions()).profile["input"] == ((4, 3, 16, 16),) * 3
    with pytest.raises(EngineBuildError, match="fixed batch of 4; --batch 1:8:32 needs a dynamic-batch export"):
        plan_build(fixed, BuildOptions(batch="1:8:32"))


def test_dynamic_image_size_comes_from_the_metadata(tiny_onnx: Path, tmp_path: Path) -> None:
    model = onnx.load(str(tiny_onnx))
    dims = model.graph.input[0].type.tensor_type.shape.dim
    dims[2].dim_param, dims[3].dim_param = "height", "width"
    assert plan_build(save(model, tmp_path / "dyn.onnx"), BuildOptions()).profile["input"][0] == (1, 3, 16, 16)
    model.ClearField("metadata_props")
    with pytest.raises(EngineBuildError, match="dynamic dimension 2 \\(height\\)"):
        plan_build(save(model, tmp_path / "dyn_nometa.onnx"), BuildOptions())


def test_reduced_precision_plans_pin_fragile_nodes(tiny_onnx: Path) -> None:
    plan = plan_build(tiny_onnx, BuildOptions(precision="fp16"))
    ops = {n.name: n.op_type for n in plan.model.graph.node}
    assert {ops[name] for name in plan.fp32_nodes} >= {"LayerNormalization", "Softmax"}
    typed = plan_build(tiny_onnx, BuildOptions(precision="bf16", strongly_typed=True))
    assert any(n.op_type == "Cast" for n in typed.model.graph.node)
    assert any(i.data_type == onnx.TensorProto.BFLOAT16 for i in typed.model.graph.initializer)


def test_plugins_none_inlines_vitrt_ops(tmp_path: Path) -> None:
    path = save(vitrt_op_model(), tmp_path / "op.onnx")
    plan = plan_build(path, BuildOptions(plugins="none", precision="fp16"))
    assert plan.flavour == "inlined" and plan.plugin_library is None
    assert not any(n.domain == "vitrt" for n in plan.model.graph.node)
    assert any(name.startswith("attn0/") for name in plan.fp32_nodes)


def test_plugins_auto_without_a_library_falls_back_to_inlined(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(PLUGIN_DIR_ENV, str(tmp_path / "empty"))
    plan = plan_build(save(vitrt_op_model(), tmp_path / "op.onnx"), BuildOptions(plugins="auto"))
    assert plan.flavour == "inlined"
    assert plan.notes == ["vitrt plugin library not found: building the inlined flavour (attention as standard ops)"]


def test_plugin_library_selects_the_tensorrt_flavour(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from vitrt.plugins.paths import find_plugin_library

    try:  # the library `make kernels` built against the shared TensorRT headers (CI has them)
        library = find_plugin_library()
    except PluginError as err:
        pytest.skip(str(err))
    plugin_dir = library.parent
    path = save(vitrt_op_model(), tmp_path / "op.onnx")
    monkeypatch.setenv(PLUGIN_DIR_ENV, str(plugin_dir))
    for choice in ("auto", str(library), str(plugin_dir)):
        plan = plan_build(path, BuildOptions(plugins=choice))
        assert plan.flavour == "tensorrt" and plan.plugin_library == library
        assert not plan.model.functions
        assert plan.plugin_ops == [("VitrtScaledSoftmax", "1", "vitrt")]
    with pytest.raises(PluginError, match="plugin library not found: .*missing.so"):
        plan_build(path, BuildOptions(plugins=str(tmp_path / "missing.so")))


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (BuildOptions(precision="int4"), "unknown precision 'int4'"),
        (BuildOptions(fp32_islands="some"), "unknown FP32 island mode"),
        (BuildOptions(workspace_mib=0), "workspace must be a positive"),
        (BuildOptions(optimization_level=7), "optimisation level must be 0..5"),
        (BuildOptions(hardware_compatibility="any"), "unknown hardware compatibility"),
        (BuildOptions(batch="4:2:1"), "batch profile needs"),
    ],
)
def test_bad_build_options_are_refused(tiny_onnx: Path, options: BuildOptions, message: str) -> None:
    with pytest.raises(EngineBuildError, match=message):
        plan_build(tiny_onnx, options)


def test_unreadable_onnx_is_refused(tmp_path: Path) -> None:
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"definitely not protobuf")
    with pytest.raises(Exception, match="cannot read ONNX file") as err:
        plan_build(bad, BuildOptions())
    assert "\n" not in str(err.value)


def test_timing_cache_is_per_tensorrt_version_and_gpu(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VITRT_CACHE_DIR", str(tmp_path))
    path = builder.default_timing_cache("10.13.0.35", "9.0")
    assert path == tmp_path / "tensorrt" / "timing-trt10.13.0.35-sm90.cache"


@pytest.mark.skipif(not NO_TENSORRT, reason="checks the behaviour without TensorRT")
def test_build_without_tensorrt_explains_why(tiny_onnx: Path, tmp_path: Path) -> None:
    with pytest.raises(BackendUnavailableError, match="TensorRT") as err:
        builder.build_engine(tiny_onnx, tmp_path / "m.plan")
    assert "\n" not in str(err.value)
    assert not (tmp_path / "m.plan").exists()


def test_build_cli_dry_run_and_errors(tiny_onnx: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import json

    from vitrt.cli import main

    def run(*argv: str) -> tuple[int, str, str]:
        with pytest.raises(SystemExit) as exit_info:
            main(["build", *argv])
        captured = capsys.readouterr()
        return int(exit_info.value.code or 0), captured.out, captured.err

    code, out, _ = run(str(tiny_onnx), "--dry-run", "--precision", "fp16", "--batch", "1:2:4", "--plugins", "none")
    plan = json.loads(out)
    assert code == 0 and plan["flavour"] == "inlined" and plan["fp32_nodes"] > 0
    assert plan["profile"]["input"]["max"] == [4, 3, 16, 16] and plan["model"] == "tiny_vit_test"
    for argv, message in [
        ((str(tmp_path / "missing.onnx"), "--dry-run"), "ONNX file not found"),
        ((str(tiny_onnx), "--dry-run", "--precision", "fp8"), "unknown precision 'fp8'"),
        ((str(tiny_onnx), "--dry-run", "--batch", "8:1:2"), "batch profile needs"),
    ]:
        code, _, err = run(*argv)
        assert code == 2 and err.count("\n") == 1 and err.startswith("error: ") and message in err
    if NO_TENSORRT:
        code, _, err = run(str(tiny_onnx), "--out", str(tmp_path / "m.plan"))
        assert code == 2 and err.startswith("error: TensorRT is not installed")
