"""Session fixtures: the test models (trained once) and one shared server with every feature switched on."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
import yaml
from serve_support import (
    API_KEY,
    CORS_ORIGIN,
    DEMO_MODEL,
    HAVE_EXPORTER,
    MAX_BODY,
    MAX_IMAGE_PIXELS,
    build_arith,
    build_lookup,
    export_with_metadata,
    start_server,
    train_tiny_digits,
)


@pytest.fixture(scope="session")
def model_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("serve-models")


@pytest.fixture(scope="session")
def tiny_digits(model_dir):
    """(torch model, ONNX path) of the tiny digits CNN."""
    model = train_tiny_digits()
    return model, export_with_metadata(model, model_dir / "tiny_digits.onnx")


@pytest.fixture(scope="session")
def arith_onnx(model_dir) -> Path:
    return build_arith(model_dir / "arith.onnx")


@pytest.fixture(scope="session")
def lookup_onnx(model_dir) -> Path:
    return build_lookup(model_dir / "lookup.onnx")


@pytest.fixture(scope="session")
def server(tiny_digits, arith_onnx, lookup_onnx, model_dir, tmp_path_factory):
    """One `vitrt serve --config` process for the whole session: API key, CORS, a 2 MiB body limit, models with
    different batching set-ups (including a tiny queue that fills up) and, where vitrt.export exists, a real demo
    model given by its zoo name."""
    config = {
        "max_body_bytes": MAX_BODY,
        "cors_origins": [CORS_ORIGIN],
        "nonfinite": "reject",
        "max_image_pixels": MAX_IMAGE_PIXELS,
        "models": [
            # ONNX Runtime named where tests rely on it (platform names, ORT's out-of-range Gather error); the demo
            # model stays on auto, which measures onnxruntime against openvino on a CPU-only machine.
            {
                "name": "digits",
                "artifact": str(tiny_digits[1]),
                "backend": "onnxruntime",
                "max_batch_size": 8,
                "max_queue_delay_ms": 5,
            },
            {
                "name": "digits_small_queue",
                "artifact": str(tiny_digits[1]),
                "backend": "onnxruntime",
                "max_batch_size": 4,
                "max_queue_delay_ms": 1500,
                "max_queue_size": 2,
            },
            {
                "name": "arith",
                "artifact": str(arith_onnx),
                "backend": "onnxruntime",
                "max_batch_size": 4,
                "version": "3",
                "nonfinite": "allow",
            },
            {"name": "lookup", "artifact": str(lookup_onnx), "backend": "onnxruntime", "max_batch_size": 4},
        ],
    }
    if HAVE_EXPORTER:
        config["models"].append({"name": "demo", "artifact": DEMO_MODEL, "max_batch_size": 8})
    path = model_dir / "serve.yaml"
    path.write_text(yaml.safe_dump(config))
    log_path = tmp_path_factory.mktemp("serve-logs") / "server.log"
    # Generous: the demo model is exported at start-up and auto times onnxruntime against openvino on it.
    process = start_server(
        ["--config", str(path)], log_path, env={"VITRT_API_KEY": API_KEY}, api_key=API_KEY, timeout=180
    )
    yield process
    code = process.stop()
    assert code == 0, process.log_text()[-3000:]
    assert "shutdown complete" in process.log_text()


@pytest.fixture(scope="session")
def client(server):
    with httpx.Client(base_url=server.url, headers=server.headers, timeout=30.0) as http:
        yield http
