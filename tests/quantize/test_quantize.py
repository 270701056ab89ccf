"""`vitrt quantize` on the trained digits demo model: the budget holds, attention stays float, bad input is one line."""

from __future__ import annotations

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


def test_onnxruntime_int8_keeps_accuracy_and_attention_float(agent_onnx: Path, tmp_path: Path) -> None:
    from vitrt.engines import load
    from vitrt.onnx_passes import vitrt_nodes
    from vitrt.quantize import quantize
    from vitrt.quantize.graph import placement_problems

    out = tmp_path / "agent.int8.onnx"
    result = quantize(agent_onnx, calibration="demo-digits", n=64, holdout=200, target="onnxruntime", out=out)

    assert result.path == out and out.is_file()
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
