"""FastAPI dependencies: everything a route needs comes from `app.state`, never from module globals.

All are `async def`: FastAPI runs plain `def` dependencies in a worker thread, a hop that costs more than the
dependency itself on every request. `require_api_key` and `get_model` read `app.state` themselves rather than
depending on other dependencies: each dependency node costs FastAPI tens of microseconds per request, and these
two run on every inference.
"""

from __future__ import annotations

import secrets
from typing import Annotated

from fastapi import Depends, Request

from vitrt.serve.config import ServerConfig
from vitrt.serve.errors import ServiceUnavailableError, UnauthorizedError
from vitrt.serve.metrics import ServerMetrics
from vitrt.serve.model import ServedModel
from vitrt.serve.repository import ModelRepository


async def get_config(request: Request) -> ServerConfig:
    return request.app.state.config


async def get_metrics(request: Request) -> ServerMetrics:
    return request.app.state.metrics


def repository_of(request: Request) -> ModelRepository:
    repository = getattr(request.app.state, "repository", None)
    if repository is None:
        raise ServiceUnavailableError("the server is still loading its models")
    return repository


def request_id_of(request: Request) -> str:
    """The id the request middleware assigned (the client's X-Request-ID when it sent a valid one)."""
    return request.scope.get("state", {}).get("request_id", "")


async def get_repository(request: Request) -> ModelRepository:
    return repository_of(request)


async def get_request_id(request: Request) -> str:
    return request_id_of(request)


RepositoryDep = Annotated[ModelRepository, Depends(get_repository)]
ConfigDep = Annotated[ServerConfig, Depends(get_config)]
MetricsDep = Annotated[ServerMetrics, Depends(get_metrics)]
RequestIdDep = Annotated[str, Depends(get_request_id)]


async def get_model(request: Request, model_name: str) -> ServedModel:
    """The model named in the path; routes under `/versions/{model_version}` also check the version."""
    return repository_of(request).get(model_name, request.path_params.get("model_version"))


ModelDep = Annotated[ServedModel, Depends(get_model)]


async def require_api_key(request: Request) -> None:
    """Accept `Authorization: Bearer <key>` or `X-API-Key: <key>` when the server has a key."""
    config: ServerConfig = request.app.state.config
    if config.api_key is None:
        return
    supplied = request.headers.get("x-api-key")
    authorization = request.headers.get("authorization", "")
    scheme, _, credentials = authorization.partition(" ")
    if supplied is None and scheme.lower() == "bearer":
        supplied = credentials.strip()
    expected = config.api_key.get_secret_value().encode()
    if not supplied or not secrets.compare_digest(supplied.encode(), expected):
        raise UnauthorizedError("missing or invalid API key (send 'Authorization: Bearer <key>' or 'X-API-Key: <key>')")
