"""`vitrt serve` on the OpenVINO backend: a real server on 127.0.0.1 running the portable export of a digits demo
model, answering KServe v2 JSON and the stock Triton HTTP client; `--backend auto`; and the start-up refusals (a
model OpenVINO cannot convert, an unknown backend option, a precision the CPU cannot run, OpenVINO missing)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import httpx
import numpy as np
import pytest
import yaml
from onnx_samples import save_unconvertible_for_openvino
from serve_support import HAVE_EXPORTER, SRC, free_port, start_server

pytest.importorskip("openvino")
if not HAVE_EXPORTER:
    pytest.skip("vitrt.export is not available (export extra)", allow_module_level=True)

import tritonclient.http as triton

from vitrt.data.digits import digits_batch
from vitrt.engines import load
from vitrt.parity.budgets import budget_for

DEMO = "ca_digits"  # the cheapest demo model to export


def cpu_problem(precision: str) -> str | None:
    from vitrt.engines.openvino import device_precision_problem

    return device_precision_problem(precision)


# bf16 where this CPU runs it (AVX512-BF16/AMX), else fp32: the server test runs on every CPU.
PRECISION = "bf16" if cpu_problem("bf16") is None else "fp32"


@pytest.fixture(scope="module")
def demo_onnx(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from vitrt.export import export_model
    from vitrt.models import create_model

    path = tmp_path_factory.mktemp("ov-serve") / f"{DEMO}.onnx"
    export_model(create_model(DEMO), path, validate=False)
    return path


@pytest.fixture(scope="module")
def reference(demo_onnx: Path) -> tuple[np.ndarray, np.ndarray]:
    """16 held-out digits and ONNX Runtime's FP32 logits for them."""
    ort = load(demo_onnx, backend="onnxruntime")
    x, _ = digits_batch(ort.metadata, "test", limit=16)
    return x, ort.infer(x)


@pytest.fixture(scope="module")
def ov_server(demo_onnx: Path, tmp_path_factory: pytest.TempPathFactory):
    log = tmp_path_factory.mktemp("ov-serve-log") / "server.log"
    args = [str(demo_onnx), "--name", "digits", "--backend", "openvino", "--precision", PRECISION, "--max-batch", "8"]
    server = start_server(args, log, timeout=180)
    yield server
    assert server.stop() == 0, server.log_text()[-3000:]


def _close_to_reference(logits: np.ndarray, ref: np.ndarray) -> None:
    assert np.array_equal(logits.argmax(1), ref.argmax(1))
    assert np.abs(logits - ref).max() <= budget_for(DEMO, PRECISION).max_abs


def test_kserve_v2_infer_runs_on_openvino_at_the_asked_precision(ov_server, reference) -> None:
    x, ref = reference
    loaded = ov_server.wait_for_log(lambda e: e.get("message") == "loaded model")
    assert loaded["backend"] == "openvino" and f"CPU, {PRECISION}" in loaded["runtime"]
    with httpx.Client(base_url=ov_server.url, timeout=60.0) as client:
        meta = client.get("/v2/models/digits").json()
        assert meta["platform"] == "openvino"
        assert client.get("/v2/models/digits/config").json()["backend"] == "openvino"
        name = meta["inputs"][0]["name"]
        body = {"inputs": [{"name": name, "shape": list(x.shape), "datatype": "FP32", "data": x.ravel().tolist()}]}
        response = client.post("/v2/models/digits/infer", json=body)
    assert response.status_code == 200, response.text
    out = response.json()["outputs"][0]
    _close_to_reference(np.asarray(out["data"], dtype=np.float32).reshape(out["shape"]), ref)


def test_stock_triton_client_infer_on_openvino(ov_server, reference) -> None:
    x, ref = reference
    client = triton.InferenceServerClient(f"127.0.0.1:{ov_server.port}", network_timeout=60.0)
    try:
        meta = client.get_model_metadata("digits")
        inp = triton.InferInput(meta["inputs"][0]["name"], list(x.shape), "FP32")
        inp.set_data_from_numpy(x, binary_data=True)
        output = meta["outputs"][0]["name"]
        result = client.infer("digits", [inp], outputs=[triton.InferRequestedOutput(output, binary_data=True)])
        _close_to_reference(result.as_numpy(output), ref)
    finally:
        client.close()


def test_yaml_config_serves_openvino_and_auto_says_which_backend_and_why(demo_onnx, reference, tmp_path) -> None:
    x, ref = reference
    config = {
        "models": [
            {"name": "ov", "artifact": str(demo_onnx), "backend": "openvino", "precision": PRECISION},
            {"name": "picked", "artifact": str(demo_onnx), "backend": "auto", "max_batch_size": 4},
        ]
    }
    path = tmp_path / "serve.yaml"
    path.write_text(yaml.safe_dump(config))
    server = start_server(["--config", str(path)], tmp_path / "server.log", timeout=180)
    try:
        chosen = server.wait_for_log(lambda e: e.get("message") == "backend chosen")
        assert chosen["model"] == "picked" and chosen["backend"] in ("onnxruntime", "openvino")
        assert chosen["why"], chosen  # e.g. "fastest FP32 CPU backend on this model: openvino 1.2 ms vs ..."
        with httpx.Client(base_url=server.url, timeout=60.0) as client:
            for model in ("ov", "picked"):
                name = client.get(f"/v2/models/{model}").json()["inputs"][0]["name"]
                data = {"name": name, "shape": [4, *x.shape[1:]], "datatype": "FP32", "data": x[:4].ravel().tolist()}
                response = client.post(f"/v2/models/{model}/infer", json={"inputs": [data]})
                assert response.status_code == 200, response.text
                out = response.json()["outputs"][0]
                logits = np.asarray(out["data"], dtype=np.float32).reshape(out["shape"])
                assert np.array_equal(logits.argmax(1), ref[:4].argmax(1))
    finally:
        assert server.stop() == 0, server.log_text()[-3000:]


# ---- refusals: one error line, exit 2, no server ----------------------------------------------------------------


def _serve(args: list[str], *, hide_openvino: Path | None = None) -> subprocess.CompletedProcess[str]:
    path = str(SRC) if hide_openvino is None else f"{hide_openvino}{os.pathsep}{SRC}"
    return subprocess.run(
        [sys.executable, "-m", "vitrt", "serve", *args, "--host", "127.0.0.1", "--port", str(free_port())],
        capture_output=True,
        text=True,
        timeout=180,
        env={**os.environ, "PYTHONPATH": path},
    )


def _refused(result: subprocess.CompletedProcess[str], message: str) -> None:
    assert result.returncode == 2, result.stderr[-2000:]
    errors = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and message in errors[0], result.stderr[-2000:]
    assert "Traceback" not in result.stderr and "server ready" not in result.stderr


@pytest.fixture(scope="module")
def unconvertible_onnx(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return save_unconvertible_for_openvino(tmp_path_factory.mktemp("unconvertible") / "scaler.onnx")


@pytest.fixture(scope="module")
def without_openvino(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder that, first on PYTHONPATH, makes `import openvino` fail as it does where it is not installed."""
    folder = tmp_path_factory.mktemp("no-openvino")
    (folder / "openvino").mkdir()
    (folder / "openvino" / "__init__.py").write_text("raise ImportError(\"No module named 'openvino'\")\n")
    return folder


def test_a_model_openvino_cannot_convert_is_refused(unconvertible_onnx: Path) -> None:
    _refused(_serve([str(unconvertible_onnx), "--backend", "openvino"]), "OpenVINO cannot convert")


def test_an_unknown_backend_option_is_refused(demo_onnx: Path) -> None:
    result = _serve([str(demo_onnx), "--backend", "openvino", "--backend-option", "colour=red"])
    _refused(result, "unknown option 'colour' for the openvino backend; it takes: precision")


def test_precision_on_a_backend_without_it_is_refused(demo_onnx: Path) -> None:
    result = _serve([str(demo_onnx), "--backend", "onnxruntime", "--precision", "bf16"])
    _refused(result, "precision is an option of the openvino backend")


def test_openvino_not_installed_is_refused_with_the_install_command(demo_onnx: Path, without_openvino: Path) -> None:
    result = _serve([str(demo_onnx), "--backend", "openvino"], hide_openvino=without_openvino)
    _refused(result, "OpenVINO is not installed (pip install openvino")
    # auto asked for bf16, which only OpenVINO runs on CPU: refused too, rather than a silent FP32 server.
    result = _serve([str(demo_onnx), "--precision", "bf16"], hide_openvino=without_openvino)
    _refused(result, "needs the openvino backend, which is not installed (pip install openvino)")


@pytest.mark.parametrize("precision", ["bf16", "fp16"])
def test_a_precision_this_cpu_cannot_run_is_refused(demo_onnx: Path, precision: str) -> None:
    problem = cpu_problem(precision)
    if problem is None:
        pytest.skip(f"this CPU runs OpenVINO at {precision}; the refusal is checked on CPUs without it")
    result = _serve([str(demo_onnx), "--backend", "openvino", "--precision", precision])
    _refused(result, f"this CPU cannot run OpenVINO at {precision}")
