"""Pure ASGI middleware (no per-request task or body buffering, unlike BaseHTTPMiddleware).

`RequestContextMiddleware` is the outer boundary: request id in and out, access log, HTTP metrics, and the
last-resort handler that turns an unexpected exception into a generic 500 JSON carrying only the request id.
`BodyLimitMiddleware` refuses bodies over the configured size, whether announced by Content-Length or streamed.
"""

from __future__ import annotations

import json
import logging
import re
import time
import uuid
from typing import TYPE_CHECKING

from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from vitrt.serve.errors import PayloadTooLargeError
from vitrt.serve.logs import current_request_id

if TYPE_CHECKING:
    from vitrt.serve.metrics import ServerMetrics

log = logging.getLogger("vitrt.serve")
access_log = logging.getLogger("vitrt.serve.access")

REQUEST_ID_HEADER = "X-Request-ID"
_VALID_ID = re.compile(r"[A-Za-z0-9._:\-]{1,128}")


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", ()):
        if key == name:
            return value.decode("latin-1")
    return None


async def send_json(send: Send, scope: Scope, status: int, message: str, headers: dict[str, str] | None = None) -> None:
    """An error response in the server's `{"error", "request_id"}` shape, sent before routing."""
    body = json.dumps({"error": message, "request_id": scope.get("state", {}).get("request_id")}).encode()
    raw_headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    raw_headers += [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in (headers or {}).items()]
    await send({"type": "http.response.start", "status": status, "headers": raw_headers})
    await send({"type": "http.response.body", "body": body})


class RequestContextMiddleware:
    def __init__(self, app: ASGIApp, *, metrics: ServerMetrics, access_log: bool = True) -> None:
        self.app = app
        self.metrics = metrics
        self.access_log = access_log

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        incoming = _header(scope, b"x-request-id")
        request_id = incoming if incoming and _VALID_ID.fullmatch(incoming) else uuid.uuid4().hex
        scope.setdefault("state", {})["request_id"] = request_id
        token = current_request_id.set(request_id)
        started = time.perf_counter()
        status = 500
        response_started = False

        async def send_with_id(message: Message) -> None:
            nonlocal status, response_started
            if message["type"] == "http.response.start":
                status = message["status"]
                response_started = True
                headers = MutableHeaders(scope=message)
                headers[REQUEST_ID_HEADER] = request_id
                headers["X-Content-Type-Options"] = "nosniff"
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        except Exception:
            log.exception("unhandled error", extra={"method": scope["method"], "path": scope["path"]})
            if response_started:
                raise
            status = 500
            await send_json(send, scope, 500, "internal server error", {REQUEST_ID_HEADER: request_id})
        finally:
            route = scope.get("route")
            template = getattr(route, "path", None) or "unmatched"
            self.metrics.observe_http(scope["method"], template, status)
            if self.access_log and access_log.isEnabledFor(logging.INFO):
                client = scope.get("client")
                access_log.info(
                    "request",
                    extra={
                        "method": scope["method"],
                        "path": scope["path"],
                        "status": status,
                        "duration_ms": round((time.perf_counter() - started) * 1000, 3),
                        "client": f"{client[0]}:{client[1]}" if client else None,
                    },
                )
            current_request_id.reset(token)


class BodyLimitMiddleware:
    def __init__(self, app: ASGIApp, *, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = _header(scope, b"content-length")
        if declared is not None:
            if not declared.strip().isdigit():
                await send_json(send, scope, 400, f"invalid Content-Length header {declared[:40]!r}")
                return
            if int(declared) > self.max_bytes:
                await send_json(
                    send,
                    scope,
                    413,
                    f"request body of {int(declared)} bytes exceeds the limit of {self.max_bytes} bytes",
                    {"Connection": "close"},
                )
                return
        limit = self.max_bytes
        received = 0

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise PayloadTooLargeError(f"request body exceeds the limit of {limit} bytes")
            return message

        await self.app(scope, limited_receive, send)
