"""`vitrt bench` end to end on a tiny grid of the trained digits demo model, and its one-line errors."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("torch")


def _bench(*args: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "vitrt", "bench", *args], capture_output=True, text=True, timeout=timeout
    )


def test_tiny_grid_measures_checks_parity_and_recommends(tmp_path: Path) -> None:
    out = tmp_path / "bench"
    proc = _bench(
        "agent_digits",
        "--backends", "torch,onnxruntime,tensorrt",
        "--precisions", "fp32",
        "--batch", "1,2",
        "--inputs", "demo-digits",
        "--n", "8",
        "--iterations", "3",
        "--rounds", "1",
        "--recommend",
        "--no-plots",
        "--out", str(out),
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    report = json.loads((out / "bench.json").read_text())
    rows = report["rows"]
    measured = [r for r in rows if r.get("status") == "ok"]
    skipped = [r for r in rows if r.get("status") == "skipped"]
    assert {(r["backend"], r["batch"]) for r in measured} >= {("torch", 1), ("onnxruntime", 2)}
    assert all(r["latency_ms"]["median"] > 0 for r in measured)
    # Every measured configuration was checked against PyTorch fp32 on real digits, and passed.
    assert all(r["parity"] and r["parity"]["passed"] for r in measured)
    # TensorRT cannot run here: its rows are kept, skipped with the reason.
    assert skipped and all(r["backend"] == "tensorrt" and r.get("reason") for r in skipped)
    assert (out / "bench.md").read_text().count("onnxruntime") >= 1
    assert "vitrt serve" in proc.stdout


@pytest.mark.parametrize(
    "args",
    [
        ["agent_digits", "--backends", "tflite"],
        ["agent_digits", "--precisions", "fp7"],
        ["agent_digits", "--batch", "1,x"],
        ["agent_digits", "--batch", "0"],
        ["missing_model.onnx"],
    ],
)
def test_bad_input_is_one_line_error(args: list[str], tmp_path: Path) -> None:
    proc = _bench(*args, "--out", str(tmp_path / "b"), timeout=120)
    assert proc.returncode != 0
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert lines and lines[-1].startswith("error:"), proc.stderr
    assert "Traceback" not in proc.stderr
