"""Graceful shutdown: SIGTERM lets every queued request finish before the process exits."""

from __future__ import annotations

import concurrent.futures
import signal
import time

import httpx
import numpy as np
from serve_support import metric, scrape, start_server

from vitrt.engines import load


def test_sigterm_drains_queued_requests(tiny_digits, tmp_path):
    _, onnx_path = tiny_digits
    server = start_server(
        [str(onnx_path), "--name", "digits", "--max-batch", "8", "--max-queue-delay-ms", "1500", "--api-key", "k1"],
        tmp_path / "server.log",
        api_key="k1",
    )
    try:
        inputs = np.random.default_rng(3).standard_normal((3, 1, 3, 16, 16)).astype(np.float32)

        def call(x):
            body = {
                "inputs": [{"name": "input", "shape": [1, 3, 16, 16], "datatype": "FP32", "data": x.ravel().tolist()}]
            }
            with httpx.Client(base_url=server.url, headers=server.headers, timeout=30.0) as client:
                return client.post("/v2/models/digits/infer", json=body)

        with concurrent.futures.ThreadPoolExecutor(3) as pool:
            futures = [pool.submit(call, x) for x in inputs]
            with httpx.Client(base_url=server.url, headers=server.headers) as client:
                deadline = time.monotonic() + 10
                while metric(scrape(client), "nv_inference_pending_request_count", model="digits", version="1") < 3:
                    assert time.monotonic() < deadline, "requests never queued"
                    time.sleep(0.02)
            server.process.send_signal(signal.SIGTERM)
            responses = [future.result() for future in futures]
        code = server.process.wait(30)
    finally:
        server.stop()
    assert code in (0, -signal.SIGTERM)
    assert [r.status_code for r in responses] == [200, 200, 200]
    expected = load(onnx_path).run({"input": inputs.reshape(3, 3, 16, 16)})["logits"]
    got = np.array([r.json()["outputs"][0]["data"] for r in responses], dtype=np.float32)
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5)
    log = server.log_text()
    assert log.index("shutting down: draining queues") < log.index("shutdown complete")
