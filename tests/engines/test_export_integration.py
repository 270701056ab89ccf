"""The builder and `vitrt parity` on files written by `vitrt.export.export_model` (vitrt nodes + function bodies)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from tinyvit import perturbed_onnx

from vitrt import export, onnx_passes
from vitrt.engines.builder import BuildOptions, plan_build
from vitrt.engines.plugin_library import PLUGIN_DIR_ENV
from vitrt.errors import PluginError
from vitrt.models import create_model, list_models
from vitrt.parity import run_parity
from vitrt.plugins.paths import find_plugin_library

DEMO = "ca_digits"


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("export") / f"{DEMO}.onnx"
    report = export.export_model(create_model(DEMO), path)
    assert report.validated
    return path


def test_exported_vitrt_nodes_build_in_both_flavours(
    exported: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    model = onnx.load(str(exported))
    calls = onnx_passes.vitrt_nodes(model)
    assert calls and {n.op_type for n in calls} == {"VitrtCirculantAttention"}
    inlined = plan_build(exported, BuildOptions(plugins="none", precision="fp16"))
    assert inlined.flavour == "inlined" and not any(n.domain == "vitrt" for n in inlined.model.graph.node)
    ops = {n.name: n.op_type for n in inlined.model.graph.node}
    for call in calls:  # default islands: the fragile steps of each body (named after the call) stay FP32 ...
        body = {name: op for name, op in ops.items() if name.startswith(call.name + "/")}
        pinned = {name for name in body if name in inlined.fp32_nodes}
        assert pinned and {body[name] for name in pinned} >= {"Softmax"}
        assert not any(body[name] == "MatMul" for name in pinned)  # ... its matmuls run in FP16
    debug = plan_build(exported, BuildOptions(plugins="none", precision="fp16", fp32_islands="all"))
    for call in calls:  # "all": the whole body
        body = [n.name for n in debug.model.graph.node if n.name.startswith(call.name + "/")]
        assert body and set(body) <= debug.fp32_nodes
    try:
        library = find_plugin_library()
    except PluginError as err:
        pytest.skip(f"the tensorrt flavour half needs the built plugin library: {err}")
    monkeypatch.setenv(PLUGIN_DIR_ENV, str(library.parent))
    plugins = plan_build(exported, BuildOptions(plugins="auto", precision="fp16"))
    assert plugins.flavour == "tensorrt" and not plugins.model.functions and plugins.plugin_library == library
    assert plugins.plugin_ops == [("VitrtCirculantAttention", "1", "vitrt")]
    assert not plugins.fp32_nodes & {call.name for call in calls}  # the plugin runs in FP16 by default


def test_strongly_typed_fp16_plan_of_an_export_keeps_predictions(exported: Path) -> None:
    from vitrt.data.digits import digits_batch

    plan = plan_build(exported, BuildOptions(plugins="none", precision="fp16", strongly_typed=True))
    x, _ = digits_batch(plan.metadata, "test", limit=128)
    fp32 = ort.InferenceSession(str(exported)).run(None, {"input": x})[0]
    fp16 = ort.InferenceSession(plan.model.SerializeToString()).run(None, {"input": x})[0]
    assert np.abs(fp16 - fp32).max() < 2e-2 and np.array_equal(fp16.argmax(1), fp32.argmax(1))


def test_parity_and_per_block_on_an_export(exported: Path, tmp_path: Path) -> None:
    good = run_parity(DEMO, exported, inputs="demo-digits", n=64, device="cpu", per_block=True)
    assert good.passed and good.reference.accuracy == good.backends[0].accuracy
    assert len(good.per_block[0].rows) == 4 and good.per_block[0].first_divergent is None
    broken = perturbed_onnx(exported, tmp_path / "broken.onnx", "blocks.1.mlp.fc1.bias", 0.5)
    bad = run_parity(DEMO, broken, n=16, device="cpu", per_block=True)
    assert not bad.passed and bad.first_divergent_blocks() == {"onnxruntime": "blocks.1"}


@pytest.mark.slow
@pytest.mark.parametrize("name", list_models(with_weights=True))
def test_every_exported_demo_model_has_equal_accuracy(name: str, tmp_path: Path) -> None:
    path = tmp_path / f"{name}.onnx"
    export.export_model(create_model(name), path)
    report = run_parity(name, path, inputs="demo-digits", n=None, device="cpu", per_block=True)
    assert report.passed, report.failures()
    assert report.reference.accuracy == report.backends[0].accuracy >= 0.9
    assert report.per_block[0].rows and report.per_block[0].first_divergent is None
