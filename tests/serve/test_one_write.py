"""Each fixed-length response leaves the server in one write (status line, headers and body together).

uvicorn writes a response's head when the app starts it and the body in a second write; on loopback each write
wakes the client once more, which on a busy machine doubled the concurrency-1 overhead. The server's protocol
(`vitrt.serve.server.http_protocol`) holds the head until the body. The writes are recorded on the real socket
transport of a real uvicorn server on 127.0.0.1.
"""

from __future__ import annotations

import socket
import threading
from typing import Any

import pytest
import uvicorn

from vitrt.serve.server import http_protocol


class _Recorder:
    def __init__(self, transport: Any, writes: list[bytes]) -> None:
        self._transport, self._writes = transport, writes

    def write(self, data: bytes) -> None:
        self._writes.append(bytes(data))
        self._transport.write(data)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)


async def _app(scope, receive, send) -> None:
    if scope["type"] != "http":
        return
    if scope["path"] == "/fixed":
        body = b"0123456789" * 100
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"1000")]})
        await send({"type": "http.response.body", "body": body})
    else:  # chunked: streamed parts are not held back
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"first", "more_body": True})
        await send({"type": "http.response.body", "body": b"second"})


@pytest.fixture(scope="module")
def recorded_server():
    protocol = http_protocol()
    if isinstance(protocol, str):
        pytest.skip("this uvicorn offers no hook for one-write responses; its default protocol is used")
    writes: list[bytes] = []

    class Recording(protocol):  # type: ignore[misc,valid-type]
        def connection_made(self, transport) -> None:  # type: ignore[override]
            super().connection_made(_Recorder(transport, writes))

    listening = threading.Event()

    class Server(uvicorn.Server):
        async def startup(self, sockets=None) -> None:  # type: ignore[override]
            await super().startup(sockets)
            listening.set()

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    server = Server(uvicorn.Config(_app, http=Recording, log_level="warning", lifespan="off"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    assert listening.wait(30) and server.started
    yield sock.getsockname()[1], writes
    server.should_exit = True
    thread.join(30)
    sock.close()


def _exchange(port: int, path: str, connection: socket.socket) -> bytes:
    connection.sendall(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode())
    response = b""
    while not (response.endswith(b"9") or response.endswith(b"0\r\n\r\n")):
        chunk = connection.recv(65536)
        assert chunk, "server closed the connection"
        response += chunk
    return response


def test_fixed_length_response_is_one_write_and_chunked_is_not(recorded_server):
    port, writes = recorded_server
    with socket.create_connection(("127.0.0.1", port)) as connection:
        for _ in range(3):  # on one keep-alive connection, every response
            writes.clear()
            response = _exchange(port, "/fixed", connection)
            assert response.startswith(b"HTTP/1.1 200") and response.endswith(b"0123456789" * 100)
            assert writes == [response]
        writes.clear()
        response = _exchange(port, "/chunked", connection)
        assert b"first" in response and b"second" in response
        assert len(writes) == 3  # head, first part, last part with the terminating chunk
