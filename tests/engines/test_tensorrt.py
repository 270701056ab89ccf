"""The TensorRT path end to end: build -> manifest -> load -> parity. Needs TensorRT and a GPU (skipped otherwise)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import helper
from tinyvit import TinyViT, perturbed_onnx

from vitrt.engines import load
from vitrt.engines.builder import BuildOptions, build_engine
from vitrt.engines.manifest import EngineManifest, manifest_path
from vitrt.errors import EngineBuildError, ManifestMismatchError
from vitrt.parity import run_parity

pytestmark = [pytest.mark.tensorrt, pytest.mark.gpu]


def build(onnx_path: Path, out: Path, **options: object) -> Path:
    options.setdefault("progress", False)
    options.setdefault("timing_cache", str(out.parent / "timing.cache"))
    return build_engine(onnx_path, out, BuildOptions(**options)).engine_path  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def fp32_engine(tiny_onnx: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build(tiny_onnx, tmp_path_factory.mktemp("trt") / "tiny_fp32.plan", batch="1:4:16")


def test_build_writes_engine_manifest_and_timing_cache(fp32_engine: Path, tiny_onnx: Path) -> None:
    import tensorrt as trt
    import torch

    manifest = EngineManifest.load(manifest_path(fp32_engine))
    assert manifest.tensorrt_version == trt.__version__
    major, minor = torch.cuda.get_device_capability()
    assert manifest.compute_capability == f"{major}.{minor}"
    assert manifest.precision == "fp32" and manifest.onnx_flavour == "inlined"
    assert manifest.profiles == [{"input": {"min": [1, 3, 16, 16], "opt": [4, 3, 16, 16], "max": [16, 3, 16, 16]}}]
    assert [s.name for s in manifest.inputs] == ["input"] and [s.name for s in manifest.outputs] == ["logits"]
    assert manifest.metadata is not None and manifest.metadata["model"] == "tiny_vit_test"
    assert (fp32_engine.parent / "timing.cache").stat().st_size > 0


def test_engine_runs_behind_the_common_interface(fp32_engine: Path, tiny_onnx: Path) -> None:
    engine = load(fp32_engine)
    ort_backend = load(tiny_onnx, backend="onnxruntime")
    assert engine.name == "tensorrt" and engine.max_batch_size == 16
    assert engine.inputs[0].name == ort_backend.inputs[0].name and engine.inputs[0].shape[1:] == (3, 16, 16)
    assert engine.metadata == ort_backend.metadata
    x = np.random.default_rng(0).standard_normal((5, 3, 16, 16), dtype=np.float32)
    np.testing.assert_allclose(engine.infer(x), ort_backend.infer(x), atol=1e-3)
    engine.warmup(iterations=2, batch_size=4)
    with pytest.raises(Exception, match="exceeds max batch 16"):
        engine.infer(np.zeros((17, 3, 16, 16), np.float32))
    graphs = load(fp32_engine, cuda_graphs=True)
    for batch in (x, x[:2], x):
        np.testing.assert_allclose(graphs.infer(batch), engine.infer(batch), atol=1e-6)
    engine.close()
    graphs.close()


def test_parity_against_the_engine_passes(tiny_vit: TinyViT, fp32_engine: Path) -> None:
    report = run_parity(tiny_vit, fp32_engine, inputs="demo-digits", n=64)
    assert report.passed, report.failures()
    assert report.backends[0].name == "tensorrt"
    assert report.reference.accuracy == report.backends[0].accuracy


@pytest.mark.parametrize(("precision", "strongly_typed"), [("fp16", False), ("bf16", True), ("fp16", True)])
def test_reduced_precision_engines_stay_within_their_budget(
    tiny_vit: TinyViT, tiny_onnx: Path, tmp_path: Path, precision: str, strongly_typed: bool
) -> None:
    result = build_engine(
        tiny_onnx,
        tmp_path / f"tiny_{precision}.plan",
        BuildOptions(precision=precision, strongly_typed=strongly_typed, progress=False, timing_cache="none"),
    )
    if not strongly_typed:
        assert result.fp32_layers > 0  # LayerNorm / softmax pinned
    report = run_parity(tiny_vit, result.engine_path, n=32)
    assert report.precision == precision and report.passed, report.failures()


def test_parity_builds_an_engine_for_an_onnx_artifact(tiny_vit: TinyViT, tiny_onnx: Path) -> None:
    report = run_parity(tiny_vit, tiny_onnx, backends=["torch", "onnxruntime", "tensorrt"], n=16)
    assert [b.name for b in report.backends] == ["onnxruntime", "tensorrt"] and report.passed


def test_per_block_localises_a_corrupted_weight_in_the_engine(
    tiny_vit: TinyViT, tiny_onnx: Path, tmp_path: Path
) -> None:
    broken = perturbed_onnx(tiny_onnx, tmp_path / "broken.onnx", "blocks.1.mlp.0.bias", 0.5)
    engine = build(broken, tmp_path / "broken.plan")
    report = run_parity(tiny_vit, engine, n=8, per_block=True)
    assert not report.passed and report.first_divergent_blocks() == {"tensorrt": "blocks.1"}


def test_mismatched_manifest_refuses_to_load(fp32_engine: Path, tmp_path: Path) -> None:
    engine = tmp_path / fp32_engine.name
    engine.write_bytes(fp32_engine.read_bytes())
    data = json.loads(manifest_path(fp32_engine).read_text())
    data["compute_capability"] = "5.2"
    manifest_path(engine).write_text(json.dumps(data))
    with pytest.raises(ManifestMismatchError, match="compute capability 5.2"):
        load(engine)
    assert load(engine, allow_mismatch=True).infer(np.zeros((1, 3, 16, 16), np.float32)).shape == (1, 10)


def test_parse_errors_name_the_node(tmp_path: Path) -> None:
    graph = helper.make_graph(
        [helper.make_node("NoSuchOp", ["input"], ["logits"], domain="example.custom", name="mystery_node")],
        "g",
        [helper.make_tensor_value_info("input", onnx.TensorProto.FLOAT, [1, 4])],
        [helper.make_tensor_value_info("logits", onnx.TensorProto.FLOAT, [1, 4])],
    )
    model = helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", 18), helper.make_opsetid("example.custom", 1)]
    )
    path = tmp_path / "bad.onnx"
    onnx.save(model, str(path))
    with pytest.raises(EngineBuildError, match=r"node 'mystery_node' \(NoSuchOp\)"):
        build(path, tmp_path / "bad.plan")
