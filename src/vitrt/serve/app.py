"""The FastAPI application factory.

    from vitrt.serve import ServerConfig, create_app
    app = create_app(ServerConfig(models=[{"name": "digits", "artifact": "agent_digits.onnx"}]))

State lives on `app.state` (config, metrics, repository) and reaches routes through dependencies. Models load in
the lifespan unless a loaded `ModelRepository` is passed in (the CLI does that, so a bad artifact fails before the
port is bound); the app owns the repository from then on and closes it at shutdown, after draining the queues.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.middleware.cors import CORSMiddleware
from fastapi.openapi.utils import get_openapi
from fastapi.responses import JSONResponse
from fastapi.staticfiles import StaticFiles
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException

from vitrt import __version__
from vitrt.errors import ModelNotFoundError, VitrtError
from vitrt.serve.config import ServerConfig
from vitrt.serve.errors import ServeError
from vitrt.serve.metrics import ServerMetrics
from vitrt.serve.middleware import BodyLimitMiddleware, RequestContextMiddleware
from vitrt.serve.repository import ModelRepository
from vitrt.serve.routers import classify, kserve, metrics, shadow, ui
from vitrt.serve.schemas import ClassifyJsonRequest, InferenceRequest

log = logging.getLogger("vitrt.serve")


def create_app(config: ServerConfig, repository: ModelRepository | None = None) -> FastAPI:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        repo = repository if repository is not None else await run_in_threadpool(ModelRepository.load, config)
        for model in repo:
            model.metrics = app.state.metrics.bind(model)
        await repo.start()
        app.state.repository = repo
        log.info("models started", extra={"models": ",".join(repo.names)})
        try:
            yield
        finally:
            log.info("shutting down: draining queues", extra={"timeout_s": config.shutdown_timeout_s})
            await repo.stop(config.shutdown_timeout_s)
            repo.close()
            log.info("shutdown complete")

    app = FastAPI(
        title="vitrt inference server",
        version=__version__,
        description="KServe v2 / Open Inference Protocol REST with Triton extensions, plus an image endpoint.",
        lifespan=lifespan,
        redoc_url=None,
        docs_url=None,  # ui.install_docs serves /docs with local assets
    )
    app.state.config = config
    app.state.metrics = ServerMetrics(lambda: getattr(app.state, "repository", None) or [])

    app.include_router(kserve.inference)
    app.include_router(kserve.health)
    app.include_router(kserve.router)
    app.include_router(classify.router)
    app.include_router(metrics.router)
    app.include_router(shadow.router)
    app.include_router(ui.router)
    app.mount("/static", StaticFiles(directory=str(ui.STATIC_DIR)), name="static")
    ui.install_docs(app)

    _install_error_handlers(app)
    # Added innermost first: the request context wraps everything, including CORS and the body limit.
    app.add_middleware(BodyLimitMiddleware, max_bytes=config.max_body_bytes)
    if config.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=config.cors_origins,
            allow_methods=["GET", "POST", "OPTIONS"],
            allow_headers=[
                "Authorization",
                "Content-Type",
                "X-API-Key",
                "X-Request-ID",
                "Inference-Header-Content-Length",
            ],
            expose_headers=["X-Request-ID", "Inference-Header-Content-Length"],
        )
    app.add_middleware(RequestContextMiddleware, metrics=app.state.metrics, access_log=config.access_log)
    app.openapi = lambda: _openapi(app)  # type: ignore[method-assign]
    return app


def _error(request: Request, status: int, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    request_id = request.scope.get("state", {}).get("request_id")
    return JSONResponse({"error": message, "request_id": request_id}, status_code=status, headers=headers)


def _install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(ServeError)
    async def serve_error(request: Request, err: ServeError) -> JSONResponse:
        if err.status_code >= 500:
            log.error("request failed", extra={"error": str(err), "status": err.status_code})
        return _error(request, err.status_code, str(err), err.headers)

    @app.exception_handler(VitrtError)
    async def vitrt_error(request: Request, err: VitrtError) -> JSONResponse:
        return _error(request, 404 if isinstance(err, ModelNotFoundError) else 400, str(err))

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, err: RequestValidationError) -> JSONResponse:
        first = err.errors()[0] if err.errors() else {"loc": (), "msg": "invalid request"}
        location = ".".join(str(part) for part in first.get("loc", ())) or "request"
        return _error(request, 400, f"{location}: {first.get('msg', 'invalid value')}")

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, err: StarletteHTTPException) -> JSONResponse:
        message = err.detail if isinstance(err.detail, str) else "request failed"
        if err.status_code == 404 and message == "Not Found":
            message = f"no route for {request.method} {request.url.path}"
        return _error(request, err.status_code, message, dict(err.headers or {}))


def _openapi(app: FastAPI) -> dict[str, Any]:
    """FastAPI's schema plus the request bodies that routes parse themselves (binary tensors, multipart)."""
    if app.openapi_schema is None:
        schema = get_openapi(title=app.title, version=app.version, description=app.description, routes=app.routes)
        components = schema.setdefault("components", {}).setdefault("schemas", {})
        for model in (InferenceRequest, ClassifyJsonRequest):
            definition = model.model_json_schema(ref_template="#/components/schemas/{model}")
            components.update(definition.pop("$defs", {}))
            components[model.__name__] = definition
        # Request validation errors are answered 400 with the server's error body (see validation_error), never
        # FastAPI's default 422, so the schema must not promise a 422.
        for operations in schema.get("paths", {}).values():
            for operation in operations.values():
                responses = operation.get("responses", {})
                if responses.pop("422", None) is not None and "400" not in responses:
                    responses["400"] = {
                        "description": "Invalid request",
                        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorResponse"}}},
                    }
        components.pop("HTTPValidationError", None)
        components.pop("ValidationError", None)
        app.openapi_schema = schema
    return app.openapi_schema
