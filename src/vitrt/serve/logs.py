"""Structured JSON logs, one object per line, carrying the id of the request being served."""

from __future__ import annotations

import json
import logging
import time
from contextvars import ContextVar
from typing import Any

# The id of the request the current task serves; set by the request middleware, read by the formatter.
current_request_id: ContextVar[str | None] = ContextVar("vitrt_request_id", default=None)

# LogRecord's own attributes, plus uvicorn's ANSI-coloured duplicate of the message.
_SKIP = set(logging.LogRecord("", 0, "", 0, "", None, None).__dict__) | {
    "message",
    "asctime",
    "taskName",
    "color_message",
}


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        request_id = getattr(record, "request_id", None) or current_request_id.get()
        if request_id:
            entry["request_id"] = request_id
        for key, value in record.__dict__.items():
            if key not in _SKIP and key not in entry and not key.startswith("_"):
                entry[key] = value if isinstance(value, str | int | float | bool | type(None)) else str(value)
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False)


def logging_config(level: str = "info") -> dict[str, Any]:
    """`logging.config.dictConfig` settings for uvicorn and vitrt: JSON lines on stderr, uvicorn's access log off
    (the request middleware writes its own, with request ids)."""
    upper = level.upper()
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"json": {"()": JsonFormatter}},
        "handlers": {"stderr": {"class": "logging.StreamHandler", "formatter": "json", "stream": "ext://sys.stderr"}},
        "loggers": {
            "uvicorn": {"handlers": ["stderr"], "level": upper, "propagate": False},
            "uvicorn.error": {"level": upper},
            "uvicorn.access": {"handlers": [], "level": "WARNING", "propagate": False},
            "vitrt": {"handlers": ["stderr"], "level": upper, "propagate": False},
        },
    }
