"""`vitrt quantize` on the trained digits demo model: the budget holds, attention stays float, bad input is one line."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest

pytest.importorskip("torch")


@pytest.fixture(scope="module")
def agent_onnx(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from vitrt.export import export_zoo_model

    path = tmp_path_factory.mktemp("quantize") / "agent_digits.onnx"
    export_zoo_model("agent_digits", path)
    return path


@pytest.fixture(scope="module")
def agent_int8(agent_onnx: Path, tmp_path_factory: pytest.TempPathFactory):
    from vitrt.quantize import quantize

    out = tmp_path_factory.mktemp("quantize-int8") / "agent.int8.onnx"
    return quantize(agent_onnx, calibration="demo-digits", n=64, holdout=200, target="onnxruntime", out=out)


def test_onnxruntime_int8_keeps_accuracy_and_attention_float(agent_onnx: Path, agent_int8) -> None:
    from vitrt.engines import load
    from vitrt.onnx_passes import vitrt_nodes
    from vitrt.quantize.graph import placement_problems

    result = agent_int8
    out = result.path
    assert out.is_file() and out.name == "agent.int8.onnx"
    report = result.report
    assert report.passed
    assert report.final.accuracy_drop is not None and report.final.accuracy_drop <= 0.5
    assert report.quantized_nodes > 0
    model = onnx.load(out)
    assert any(n.op_type == "QuantizeLinear" for n in model.graph.node)
    # The attention calls survive as vitrt nodes, with no dequantized input and float bodies.
    original_calls = len(vitrt_nodes(onnx.load(agent_onnx)))
    assert len(vitrt_nodes(model)) == original_calls > 0
    assert placement_problems(model) == []
    assert "vitrt.quantization" in {p.key for p in model.metadata_props}
    # The INT8 file runs on the ONNX Runtime backend and agrees with FP32 on real held-out digits.
    from vitrt.data.digits import digits_batch

    fp32_backend = load(agent_onnx, backend="onnxruntime")
    assert fp32_backend.metadata is not None
    images, _ = digits_batch(fp32_backend.metadata, "test", limit=16)
    fp32 = fp32_backend.infer(images)
    int8 = load(out, backend="onnxruntime").infer(images)
    assert (fp32.argmax(1) == int8.argmax(1)).mean() >= 0.9
    assert not np.array_equal(fp32, int8)  # a different (quantized) graph really ran


def _vitrt(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "vitrt", *args], capture_output=True, text=True, timeout=600)


def test_parity_checks_an_int8_file_on_every_cpu_runtime_at_its_int8_budget(agent_int8, tmp_path: Path) -> None:
    from vitrt.parity.budgets import budget_for

    report = tmp_path / "int8.parity"
    proc = _vitrt(
        "parity", "--model", "agent_digits", "--artifact", str(agent_int8.path), "--inputs", "demo-digits",
        "--n", "120", "--backends", "torch,onnxruntime,openvino", "--report", str(report),
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr
    result = json.loads(report.with_name(report.name + ".json").read_text())
    assert result["precision"] == "int8"
    # The model's own INT8 budget, not the FP32 one an INT8 file could never meet on logits.
    int8_budget = budget_for("agent_digits", "int8")
    assert int8_budget != budget_for("agent_digits", "fp32")
    assert result["budget"]["min_top1_agreement"] == int8_budget.min_top1_agreement
    assert result["budget"]["max_abs"] == int8_budget.max_abs
    assert any("INT8 artifact (vitrt quantize for onnxruntime" in note for note in result["notes"])
    assert {c["backend"] for c in result["comparisons"]} == {"onnxruntime", "openvino"}
    assert all(c["passed"] for c in result["comparisons"])


def test_parity_refuses_a_precision_the_artifact_does_not_have(agent_onnx: Path, agent_int8) -> None:
    common = ["parity", "--model", "agent_digits", "--inputs", "random", "--n", "4"]
    cases = {
        "is INT8 (vitrt quantize)": [*common, "--artifact", str(agent_int8.path), "--precision", "fp32"],
        "is not INT8": [*common, "--artifact", str(agent_onnx), "--precision", "int8"],
    }
    for expected, args in cases.items():
        proc = _vitrt(*args)
        assert proc.returncode == 2, (args, proc.stderr)
        lines = [line for line in proc.stderr.splitlines() if line.strip()]
        assert len(lines) == 1 and lines[0].startswith("error:") and expected in lines[0], proc.stderr


def test_bad_input_is_one_line_error(agent_onnx: Path, tmp_path: Path) -> None:
    cases = [
        [str(tmp_path / "missing.onnx")],
        [str(agent_onnx), "--target", "tflite"],
        [str(agent_onnx), "--exclude", "no-such-node-.*", "--out", str(tmp_path / "x.onnx")],
    ]
    for args in cases:
        proc = subprocess.run(
            [sys.executable, "-m", "vitrt", "quantize", *args], capture_output=True, text=True, timeout=300
        )
        assert proc.returncode != 0, args
        lines = [line for line in proc.stderr.splitlines() if line.strip()]
        assert lines and lines[-1].startswith("error:"), (args, proc.stderr)
        assert "Traceback" not in proc.stderr, args
