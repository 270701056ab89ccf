"""`backend="auto"` for an ONNX file on a CPU-only machine: the faster of ONNX Runtime and OpenVINO, measured on the
model, with the reason logged; reduced precision picks OpenVINO; backend options decide or are refused."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest
from onnx_samples import save_unconvertible_for_openvino

pytest.importorskip("openvino")

from vitrt.data.digits import digits_batch
from vitrt.engines import autoselect, load
from vitrt.errors import ArtifactError
from vitrt.models import create_model

DEMO = "ca_digits"

pytestmark = pytest.mark.skipif(not autoselect.cpu_only(), reason="a GPU is usable: auto picks ONNX Runtime's GPU EPs")


@pytest.fixture(scope="module")
def demo_onnx(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from vitrt.export import export_model

    path = tmp_path_factory.mktemp("auto") / f"{DEMO}.onnx"
    export_model(create_model(DEMO), path, validate=False)
    return path


def test_auto_measures_both_cpu_backends_and_logs_the_winner_and_why(demo_onnx, caplog) -> None:
    with caplog.at_level(logging.INFO, logger="vitrt.engines"):
        backend = load(demo_onnx, cpu_probe=True, probe_batch=4)
    assert backend.name in ("onnxruntime", "openvino")
    reason = backend.selection_reason or ""
    assert reason.startswith("fastest FP32 CPU backend on this model: ") and "at batch 4" in reason
    assert "onnxruntime" in reason and "openvino" in reason and " ms vs " in reason
    assert any(r.getMessage().startswith(f"backend auto: {backend.name}") for r in caplog.records)
    assert getattr(backend, "precision", "fp32") == "fp32"
    x, _ = digits_batch(backend.metadata, "test", limit=8)
    np.testing.assert_allclose(backend.infer(x), load(demo_onnx, backend="onnxruntime").infer(x), atol=1e-3)


def test_probe_runs_interleaved_rounds_within_its_bounds(demo_onnx) -> None:
    backends = [load(demo_onnx, backend="onnxruntime"), load(demo_onnx, backend="openvino", cache=False)]
    times = autoselect.probe(backends, batch=2)
    assert times.batch == 2 and len(times.medians_ms) == 2
    assert autoselect.PROBE_MIN_ROUNDS <= len(times.rounds) <= autoselect.PROBE_ROUNDS
    assert all(len(row) == 2 and min(row) > 0 for row in times.rounds)


def test_without_the_probe_auto_stays_on_onnxruntime_unless_a_precision_is_asked(demo_onnx) -> None:
    assert load(demo_onnx).name == "onnxruntime"
    chosen = load(demo_onnx, precision="fp32", cache=False)
    assert chosen.name == "openvino" and chosen.selection_reason == "precision fp32 is an option of openvino only"


def test_reduced_precision_and_backend_options_decide_the_backend(demo_onnx) -> None:
    from vitrt.engines.openvino import device_precision_problem

    if device_precision_problem("bf16") is None:
        low = load(demo_onnx, precision="bf16", cpu_probe=True)
        assert low.name == "openvino" and low.precision == "bf16"
        assert low.selection_reason == "bf16 was asked for and only OpenVINO runs it on CPU"
    ort = load(demo_onnx, intra_op_threads=1, cpu_probe=True)
    assert (
        ort.name == "onnxruntime" and ort.selection_reason == "the backend options (intra_op_threads) are onnxruntime's"
    )
    assert load(demo_onnx, threads=1, cache=False, cpu_probe=True).name == "openvino"
    with pytest.raises(ArtifactError, match="unknown backend option 'colour'; onnxruntime takes providers"):
        load(demo_onnx, colour="red", cpu_probe=True)


def test_a_model_openvino_cannot_convert_runs_on_onnxruntime_with_the_reason(tmp_path: Path) -> None:
    save_unconvertible_for_openvino(tmp_path / "scaler.onnx")
    backend = load(tmp_path / "scaler.onnx", cpu_probe=True)
    assert backend.name == "onnxruntime"
    assert (backend.selection_reason or "").startswith("OpenVINO cannot run this model (OpenVINO cannot convert")
    np.testing.assert_array_equal(backend.infer(np.ones((2, 4), np.float32)), np.full((2, 4), 2.0, np.float32))
