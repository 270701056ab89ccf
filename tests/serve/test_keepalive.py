"""Keep-alive clients lose nothing: the server keeps idle connections open longer than clients' own idle expiry.

The failure this guards against: with uvicorn's default 5 s keep-alive against httpx's default 5 s
`keepalive_expiry`, an `httpx.AsyncClient` reused a connection in the instant the server closed it and lost that
request with `ReadError` (0.3-0.7 % of 10,000 infers at concurrency 64).
"""

from __future__ import annotations

import asyncio
import select
import socket

import httpx
import numpy as np
import pytest
from serve_support import metric, scrape, start_server


@pytest.fixture(scope="module")
def keepalive_server(tiny_digits, tmp_path_factory):
    _, onnx_path = tiny_digits
    log = tmp_path_factory.mktemp("keepalive") / "server.log"
    server = start_server([str(onnx_path), "--name", "digits", "--max-batch", "8", "--no-access-log"], log)
    yield server
    server.stop()


def _get(sock: socket.socket, path: str) -> bytes:
    sock.sendall(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode())
    response = b""
    while b"\r\n\r\n" not in response:
        chunk = sock.recv(4096)
        assert chunk, "server closed the connection instead of answering"
        response += chunk
    return response


def test_idle_connections_outlive_the_httpx_keepalive_expiry(keepalive_server):
    client_expiry = httpx.Limits().keepalive_expiry  # what a stock httpx client allows an idle connection
    assert client_expiry is not None
    with socket.create_connection(("127.0.0.1", keepalive_server.port), timeout=10) as sock:
        assert _get(sock, "/v2/health/live").startswith(b"HTTP/1.1 200")
        # The server must not close the idle connection before the client would stop reusing it (plus a margin
        # for a busy client): wait for it to become readable (an EOF), bounded by that time.
        readable, _, _ = select.select([sock], [], [], client_expiry + 1.5)
        assert not readable, "the server closed an idle keep-alive connection that httpx would still reuse"
        assert _get(sock, "/v2/health/live").startswith(b"HTTP/1.1 200")


def test_keepalive_httpx_client_at_concurrency_64_loses_nothing(keepalive_server):
    concurrency, total = 64, 320
    rng = np.random.default_rng(0)
    bodies = [
        {
            "inputs": [
                {
                    "name": "input",
                    "shape": [1, 3, 16, 16],
                    "datatype": "FP32",
                    "data": rng.standard_normal(3 * 16 * 16).round(4).tolist(),
                }
            ]
        }
        for _ in range(8)
    ]
    with httpx.Client(base_url=keepalive_server.url) as sync:
        before = metric(scrape(sync), "nv_inference_request_success", model="digits", version="1")

    async def drive() -> tuple[list[int], list[str]]:
        limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
        statuses: list[int] = []
        failures: list[str] = []
        queue: asyncio.Queue[int] = asyncio.Queue()
        for i in range(total):
            queue.put_nowait(i)
        async with httpx.AsyncClient(base_url=keepalive_server.url, limits=limits, timeout=60.0) as client:

            async def worker() -> None:
                while not queue.empty():
                    i = queue.get_nowait()
                    try:
                        response = await client.post("/v2/models/digits/infer", json=bodies[i % len(bodies)])
                        statuses.append(response.status_code)
                    except httpx.TransportError as err:
                        failures.append(f"{type(err).__name__}: {err}")

            await asyncio.gather(*(worker() for _ in range(concurrency)))
        return statuses, failures

    statuses, failures = asyncio.run(drive())
    assert failures == [], failures[:5]
    assert statuses == [200] * total
    with httpx.Client(base_url=keepalive_server.url) as sync:
        after = metric(scrape(sync), "nv_inference_request_success", model="digits", version="1")
    assert after - before == total
