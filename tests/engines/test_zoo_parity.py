"""`vitrt parity` on the trained demo models of the zoo: torch and ONNX Runtime agree, accuracy is equal.

The default suite checks one demo model end to end (CLI, checkpoints, per-block localisation, the shared runtime
interface); every family's demo model runs under `make test-all` (each export costs ~10 s of CPU).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from tinyvit import export_onnx, perturbed_onnx

from vitrt.cli import main
from vitrt.engines import load
from vitrt.models import create_model, demo_weights_path, get_spec, list_models
from vitrt.parity import run_parity

DEMO = "ca_digits"  # the cheapest demo model to export


def run_cli(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    captured = capsys.readouterr()
    return int(exit_info.value.code or 0), captured.out, captured.err


@pytest.fixture(scope="module")
def demo_onnx(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return export_onnx(create_model(DEMO), tmp_path_factory.mktemp("zoo") / f"{DEMO}.onnx")


def test_cli_parity_on_the_demo_digits(demo_onnx: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    report = tmp_path / "reports" / DEMO
    code, out, _ = run_cli(
        [
            "parity",
            "--model",
            DEMO,
            "--artifact",
            str(demo_onnx),
            "--inputs",
            "demo-digits",
            "--n",
            "64",
            "--device",
            "cpu",
            "--report",
            str(report),
        ],
        capsys,
    )
    assert code == 0 and "parity: all backends within budget" in out
    data = json.loads(report.with_suffix(".json").read_text())
    assert data["passed"] and data["n"] == 64
    assert data["reference"]["accuracy"] == data["backends"][0]["accuracy"] >= 0.9
    assert data["comparisons"][0]["top1_agreement"] == 1.0
    assert (tmp_path / "reports" / f"{DEMO}.md").read_text().startswith(f"# Parity report: {DEMO} — PASS")


def test_cli_parity_over_budget_exits_3(demo_onnx: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run_cli(
        [
            "parity",
            "--model",
            DEMO,
            "--artifact",
            str(demo_onnx),
            "--n",
            "8",
            "--device",
            "cpu",
            "--budget-max-abs",
            "0",
        ],
        capsys,
    )
    assert code == 3
    assert err.strip().splitlines() == [err.strip()] and err.startswith("error: parity over budget: onnxruntime")


def test_checkpoint_reference_takes_its_architecture_from_record_or_artifact(demo_onnx: Path, tmp_path: Path) -> None:
    weights = demo_weights_path(get_spec(DEMO))
    with_record = run_parity(weights, demo_onnx, n=8, device="cpu")  # <name>.json next to the weights
    bare = tmp_path / "renamed.safetensors"
    shutil.copy(weights, bare)
    from_artifact = run_parity(bare, demo_onnx, n=8, device="cpu")  # vitrt.model in the ONNX metadata
    assert with_record.model == from_artifact.model == DEMO
    assert with_record.passed and from_artifact.passed


def test_per_block_localises_a_corrupted_initializer(demo_onnx: Path, tmp_path: Path) -> None:
    broken = perturbed_onnx(demo_onnx, tmp_path / "broken.onnx", "blocks.2.mlp.fc1.bias", 0.5)
    report = run_parity(DEMO, broken, inputs="demo-digits", n=32, device="cpu", per_block=True)
    assert not report.passed
    (blocks,) = report.per_block
    assert [row.block for row in blocks.rows] == [f"blocks.{i}" for i in range(len(blocks.rows))]
    assert blocks.first_divergent == "blocks.2"
    assert not any(row.diverged for row in blocks.rows[:2])


def test_zoo_model_and_its_onnx_share_the_runtime_interface(demo_onnx: Path) -> None:
    from vitrt.data.digits import digits_batch

    torch_backend = load(DEMO, device="cpu")
    ort_backend = load(demo_onnx)
    assert (torch_backend.name, ort_backend.name) == ("torch", "onnxruntime")
    for backend in (torch_backend, ort_backend):
        assert backend.inputs[0].name == "input" and backend.inputs[0].shape == (None, 3, 32, 32)
        assert backend.outputs[0].shape[1:] == (10,)
        assert backend.metadata is not None and backend.metadata.model == DEMO
    x, labels = digits_batch(torch_backend.metadata, "test", limit=16)
    a, b = torch_backend.infer(x), ort_backend.infer(x)
    np.testing.assert_allclose(a, b, atol=1e-4)
    assert np.array_equal(a.argmax(1), b.argmax(1))


@pytest.mark.slow
@pytest.mark.parametrize("name", list_models(with_weights=True))
def test_every_demo_model_has_equal_accuracy_across_backends(name: str, tmp_path: Path) -> None:
    onnx_path = export_onnx(create_model(name), tmp_path / f"{name}.onnx")
    report = run_parity(name, onnx_path, inputs="demo-digits", n=None, device="cpu", per_block=True)
    assert report.passed, report.failures()
    assert report.n == 450
    assert report.reference.accuracy == report.backends[0].accuracy >= 0.9
    assert report.comparisons[0].top1_agreement == 1.0
    assert report.per_block[0].rows and report.per_block[0].first_divergent is None


def test_strongly_typed_fp16_graph_of_a_demo_model_keeps_its_predictions(demo_onnx: Path) -> None:
    """The FP16 rewrite `vitrt build --strongly-typed` hands to TensorRT, run in ONNX Runtime.

    A plain `torch.onnx.export` of circulant attention contains DFT nodes, which TensorRT cannot import: the build
    plan refuses it by name, while the rewritten graph itself still runs (in ORT) with the FFTs kept in FP32.
    """
    import onnx
    import onnxruntime as ort

    from vitrt.data.digits import digits_batch
    from vitrt.engines import onnx_graph
    from vitrt.engines.builder import BuildOptions, plan_build
    from vitrt.errors import EngineBuildError

    with pytest.raises(EngineBuildError, match=r"TensorRT cannot import node '.*' \(DFT\)"):
        plan_build(demo_onnx, BuildOptions(precision="fp16", strongly_typed=True, plugins="none"))
    model = onnx.load(str(demo_onnx))
    islands = onnx_graph.fp32_island_nodes(model)
    assert {n.name for n in model.graph.node if n.op_type == "DFT"} <= islands
    half = onnx_graph.cast_fp32_islands(model, "fp16", islands)
    x, _ = digits_batch(onnx_graph.model_metadata(model), "test", limit=128)
    fp32 = ort.InferenceSession(str(demo_onnx)).run(None, {"input": x})[0]
    fp16 = ort.InferenceSession(half.SerializeToString()).run(None, {"input": x})[0]
    assert fp16.dtype == np.float32
    assert np.abs(fp16 - fp32).max() < 2e-2
    assert np.array_equal(fp16.argmax(1), fp32.argmax(1))
    halves = [i for i in half.graph.initializer if i.data_type == onnx.TensorProto.FLOAT16]
    assert len(halves) > len(half.graph.initializer) // 2
