"""Errors the server turns into `{"error": "..."}` responses, each with its HTTP status.

All are `VitrtError`s with a one-line message naming the problem. Anything that is not a `VitrtError` is a bug
and becomes a generic 500 carrying only the request id (the traceback goes to the log).
"""

from __future__ import annotations

from vitrt.errors import VitrtError


class ServeError(VitrtError):
    """A request the server refuses; `status_code` is the HTTP status it answers with."""

    status_code = 400
    headers: dict[str, str] | None = None


class InvalidRequestError(ServeError):
    """Malformed JSON, an unknown datatype, a wrong shape or dtype, a truncated binary payload, ..."""


class UnauthorizedError(ServeError):
    status_code = 401
    headers = {"WWW-Authenticate": 'Bearer realm="vitrt"'}


class NotFoundError(ServeError):
    """An unknown model, model version or output."""

    status_code = 404


class PayloadTooLargeError(ServeError):
    status_code = 413


class UnsupportedMediaTypeError(ServeError):
    status_code = 415


class ServiceUnavailableError(ServeError):
    """The model's queue is full, the request timed out in the queue, or the server is shutting down."""

    status_code = 503

    def __init__(self, message: str, retry_after_s: int = 1) -> None:
        super().__init__(message)
        self.headers = {"Retry-After": str(retry_after_s)}


class InferenceFailedError(ServeError):
    """The backend raised while running a batch (logged with its traceback; the client gets this message)."""

    status_code = 500
