"""Running the app under uvicorn: bind the port first, say "ready" only once it listens, exit 0 on a clean stop.

`vitrt serve` binds its socket before anything else (before models load), so a busy port is one `error:` line and
exit 2 with nothing logged. uvicorn then listens on that socket; "server ready" is logged after it does. A SIGINT
or SIGTERM drains the queues and ends the process with status 0 (uvicorn would re-raise the signal, which makes
`make demo` and process supervisors report a crash after a clean stop).
"""

from __future__ import annotations

import errno
import logging
import socket
from types import FrameType
from typing import Any

import uvicorn

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
