"""Running the app under uvicorn: bind the port first, say "ready" only once it listens, exit 0 on a clean stop.

`vitrt serve` binds its socket before anything else (before models load), so a busy port is one `error:` line and
exit 2 with nothing logged. uvicorn then listens on that socket; "server ready" is logged after it does. A SIGINT
or SIGTERM drains the queues and ends the process with status 0 (uvicorn would re-raise the signal, which makes
`make demo` and process supervisors report a crash after a clean stop).

Responses leave in one write: uvicorn writes the status line and headers as soon as the app starts a response and
the body in a second write. On loopback each write wakes the client, which reads the head, blocks again and must be
woken a second time for the body, and on a busy machine each of those wake-ups can cost milliseconds of scheduler
latency (the concurrency-1 overhead doubled). `http_protocol()` holds the head of a response that announces its
Content-Length until its first body bytes and writes both together. Streaming (chunked) responses are untouched.
"""

from __future__ import annotations

import errno
import logging
import socket
from types import FrameType
from typing import Any

import uvicorn
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol, RequestResponseCycle

from vitrt.errors import VitrtError

log = logging.getLogger("vitrt.serve")


class PortInUseError(VitrtError):
    """The address the server should listen on cannot be bound."""


def bind_socket(host: str, port: int) -> socket.socket:
    """A bound (not yet listening) TCP socket for `host:port`, or a `PortInUseError` saying why not."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as err:
        raise PortInUseError(f"cannot listen on {host}:{port}: unknown host ({err.strerror})") from None
    family, kind, proto, _, address = infos[0]
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if family == socket.AF_INET6 and host in ("::", ""):
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
        sock.bind(address)
    except OSError as err:
        sock.close()
        if err.errno == errno.EADDRINUSE:
            raise PortInUseError(
                f"port {port} on {host} is already in use (another vitrt serve?); stop it or choose --port"
            ) from None
        if err.errno == errno.EACCES:
            raise PortInUseError(
                f"no permission to listen on {host}:{port} (ports below 1024 need privileges)"
            ) from None
        raise PortInUseError(f"cannot listen on {host}:{port}: {err.strerror}") from None
    sock.set_inheritable(True)
    return sock


class _HeldHeadTransport:
    """The cycle's transport, except that the response head is held and sent with the first body write."""

    def __init__(self, transport: Any) -> None:
        self._transport = transport
        self._head: bytes | None = None
        self.holding = False

    def write(self, data: bytes) -> None:
        if self.holding:
            self._head, self.holding = data, False
            return
        if self._head is not None:
            data, self._head = self._head + data, None
        self._transport.write(data)

    def flush(self) -> None:
        if self._head is not None:
            head, self._head = self._head, None
            self._transport.write(head)

    def close(self) -> None:
        self.flush()
        self._transport.close()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)


def _announces_length(message: Any) -> bool:
    return any(name.lower() == b"content-length" for name, _ in message.get("headers", ()))


class _OneWriteProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol, sending each fixed-length response's head and body in one write."""

    def _start_asgi_task(self, cycle: RequestResponseCycle, app: Any) -> None:
        transport = _HeldHeadTransport(cycle.transport)
        cycle.transport = transport  # type: ignore[assignment]
        send = cycle.send

        async def send_in_one_write(message: Any) -> None:
            transport.holding = message["type"] == "http.response.start" and _announces_length(message)
            try:
                await send(message)
            finally:
                if transport.holding:  # the head was not written (client gone, or refused by uvicorn)
                    transport.holding = False
                if message["type"] == "http.response.body" and not message.get("more_body", False):
                    transport.flush()

        cycle.send = send_in_one_write  # type: ignore[method-assign]
        super()._start_asgi_task(cycle, app)


def http_protocol() -> type[HttpToolsProtocol] | str:
    """The HTTP protocol for uvicorn: one write per response where this uvicorn allows it, else its default."""
    if callable(getattr(HttpToolsProtocol, "_start_asgi_task", None)):
        return _OneWriteProtocol
    return "auto"


class Server(uvicorn.Server):
    """uvicorn's server, logging readiness after it listens and exiting normally after a signal-initiated stop."""

    def __init__(self, config: uvicorn.Config, models: list[str]) -> None:
        super().__init__(config)
        self.models = models
        self.stop_signal: int | None = None

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        if self.started and not self.should_exit:
            listening = [s.getsockname() for s in sockets or []]
            where = ", ".join(f"http://{_host(a)}:{a[1]}" for a in listening) or "uvicorn's socket"
            log.info("server ready", extra={"models": ",".join(self.models), "url": where})

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        self.stop_signal = sig
        super().handle_exit(sig, frame)
        # uvicorn re-raises captured signals once shut down; a drained, clean stop should end with status 0.
        captured: Any = getattr(self, "_captured_signals", None)
        if isinstance(captured, list):
            captured.clear()


def _host(address: Any) -> str:
    host = str(address[0])
    return f"[{host}]" if ":" in host else host
