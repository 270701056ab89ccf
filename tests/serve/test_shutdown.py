"""Graceful shutdown: SIGTERM lets every queued request finish before the process exits."""

from __future__ import annotations

import concurrent.futures
import contextlib
import fcntl
import os
import shutil
import signal
import subprocess
import sys
import termios
import threading
import time

import httpx
import numpy as np
import pytest
from serve_support import SRC, free_port, metric, scrape, start_server

from vitrt.engines import load

REPO = SRC.parent


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
    assert code == 0
    assert [r.status_code for r in responses] == [200, 200, 200]
    expected = load(onnx_path).run({"input": inputs.reshape(3, 3, 16, 16)})["logits"]
    got = np.array([r.json()["outputs"][0]["data"] for r in responses], dtype=np.float32)
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5)
    log = server.log_text()
    assert log.index("shutting down: draining queues") < log.index("shutdown complete")


def _children(pid: int) -> list[int]:
    with open(f"/proc/{pid}/task/{pid}/children") as handle:
        return [int(child) for child in handle.read().split()]


@pytest.mark.parametrize("stop", [signal.SIGINT, signal.SIGTERM])
def test_a_signal_stop_exits_0(tiny_digits, tmp_path, stop):
    """Ctrl-C or SIGTERM drains and exits 0 (uvicorn would re-raise the signal and look like a crash)."""
    server = start_server([str(tiny_digits[1]), "--name", "digits"], tmp_path / "server.log")
    server.process.send_signal(stop)
    assert server.process.wait(30) == 0, server.log_text()[-2000:]
    log = server.log_text()
    assert "shutdown complete" in log and "Traceback" not in log and "KeyboardInterrupt" not in log


@pytest.mark.skipif(shutil.which("make") is None or not os.path.isdir("/proc"), reason="needs make and /proc")
def test_stopping_the_server_of_a_make_target_ends_make_with_0(tiny_digits, tmp_path):
    """`make demo` runs `vitrt serve` last: stopping the server cleanly must not make make report a failure."""
    port = free_port()
    makefile = tmp_path / "Makefile"
    makefile.write_text(
        f"demo:\n\t{sys.executable} -m vitrt serve {tiny_digits[1]} --name digits --host 127.0.0.1 --port {port}\n"
    )
    env = {**os.environ, "PYTHONPATH": str(SRC)}
    make = subprocess.Popen(
        ["make", "-f", str(makefile), "demo"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env, text=True
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            assert make.poll() is None and time.monotonic() < deadline, "server never became ready"
            try:
                if httpx.get(f"http://127.0.0.1:{port}/v2/health/ready", timeout=1.0).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.1)
        (serve_pid,) = _children(make.pid)
        os.kill(serve_pid, signal.SIGINT)
        output, _ = make.communicate(timeout=30)
    finally:
        if make.poll() is None:
            make.kill()
            make.wait()
    assert make.returncode == 0, output[-2000:]
    assert "make: ***" not in output and "Terminated" not in output and "Interrupt" not in output


def _run_on_a_terminal(
    argv: list[str], env: dict[str, str]
) -> tuple[subprocess.Popen, int, threading.Thread, list[bytes]]:
    """Start argv as the session leader of a fresh pseudo-terminal, the way a user's shell starts `make demo`."""
    master, slave = os.openpty()

    def own_terminal() -> None:
        os.setsid()
        fcntl.ioctl(0, termios.TIOCSCTTY, 0)

    process = subprocess.Popen(
        argv, stdin=slave, stdout=slave, stderr=slave, env=env, preexec_fn=own_terminal, close_fds=True
    )
    os.close(slave)
    output: list[bytes] = []

    def drain() -> None:  # a full pty buffer would block the server's log writes
        with contextlib.suppress(OSError):
            while chunk := os.read(master, 65536):
                output.append(chunk)

    reader = threading.Thread(target=drain, daemon=True)
    reader.start()
    return process, master, reader, output


@pytest.mark.skipif(shutil.which("make") is None, reason="needs GNU make")
def test_ctrl_c_on_the_make_demo_terminal_ends_make_with_0(tiny_digits, tmp_path):
    """Ctrl-C on the terminal reaches every process of the foreground job: the real Makefile's serve-demo step must
    hand the terminal to the server alone, so make ends with the server's clean 0 instead of dying by SIGINT."""
    port = free_port()
    shutil.copy(tiny_digits[1], tmp_path / "digits.onnx")
    python = sys.executable
    argv = ["make", "-C", str(REPO), "--no-print-directory", "serve-demo", f"PY={python}", f"VITRT={python} -m vitrt"]
    argv += [f"OUT={tmp_path}", "DEMO_MODEL=digits", f"DEMO_PORT={port}"]
    make, terminal, reader, output = _run_on_a_terminal(argv, {**os.environ, "PYTHONPATH": str(SRC)})
    try:
        deadline = time.monotonic() + 60
        while True:
            assert make.poll() is None and time.monotonic() < deadline, b"".join(output).decode(errors="replace")
            try:
                if httpx.get(f"http://127.0.0.1:{port}/v2/health/ready", timeout=1.0).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.1)
        os.write(terminal, b"\x03")  # what the terminal driver turns into SIGINT for the foreground process group
        make.wait(30)
        reader.join(10)  # the terminal reads EOF once the last process holding it has exited
    finally:
        if make.poll() is None:
            make.kill()
            make.wait()
        os.close(terminal)
    text = b"".join(output).decode(errors="replace")
    assert make.returncode == 0, text[-2000:]
    assert "shutdown complete" in text and "Interrupt" not in text and "Traceback" not in text
