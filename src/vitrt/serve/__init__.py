"""`vitrt serve`: a KServe v2 (Open Inference Protocol) REST server with dynamic batching, metrics and an image
endpoint, over any `vitrt.engines` backend.

    from vitrt.serve import ServerConfig, create_app

Submodules import FastAPI and numpy; this package itself stays import-cheap.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from vitrt.serve.app import create_app
    from vitrt.serve.config import ModelConfig, ServerConfig
    from vitrt.serve.repository import ModelRepository

__all__ = ["ModelConfig", "ModelRepository", "ServerConfig", "create_app"]

_EXPORTS = {
    "create_app": "vitrt.serve.app",
    "ModelConfig": "vitrt.serve.config",
    "ServerConfig": "vitrt.serve.config",
    "ModelRepository": "vitrt.serve.repository",
}


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        import importlib

        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'vitrt.serve' has no attribute {name!r}")
