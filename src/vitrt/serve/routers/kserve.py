"""KServe v2 / Open Inference Protocol REST endpoints plus the Triton extensions stock clients call."""

from __future__ import annotations

import gzip
import time
import zlib
from typing import Any

from fastapi import APIRouter, Depends, Request, Response

from vitrt import __version__
from vitrt.serve.config import ServerConfig
from vitrt.serve.dependencies import ModelDep, RepositoryDep, request_id_of, require_api_key
from vitrt.serve.errors import InvalidRequestError, PayloadTooLargeError, ServeError, UnsupportedMediaTypeError
from vitrt.serve.protocol import HEADER_LENGTH, decode_request, encode_response, parse_json
from vitrt.serve.schemas import (
    ErrorResponse,
    InferenceResponse,
    ModelMetadataResponse,
    RepositoryIndexEntry,
    ServerMetadataResponse,
)

EXTENSIONS = ["binary_tensor_data", "model_configuration", "statistics", "model_repository(index)"]
_COMPRESS_MIN_BYTES = 1024
_ERRORS: dict[int | str, dict[str, Any]] = {code: {"model": ErrorResponse} for code in (400, 401, 404, 413, 415, 503)}
_VERSION_PARAM = {
    "parameters": [{"name": "model_version", "in": "path", "required": True, "schema": {"type": "string"}}]
}

health = APIRouter(tags=["health"])
router = APIRouter(tags=["kserve v2"], dependencies=[Depends(require_api_key)], responses=_ERRORS)
# The hot path, included first so that routing tries it before everything else.
inference = APIRouter(tags=["kserve v2"], dependencies=[Depends(require_api_key)], responses=_ERRORS)


# ---- health (open even when an API key is set) ------------------------------------------------------------------


# Health answers carry no body (KServe v2: the status code is the answer; 4xx means "no").
_Responses = dict[int | str, dict[str, Any]]
_LIVE: _Responses = {200: {"description": "The server is live (empty body)", "content": {}}}
_READY: _Responses = {
    200: {"description": "Ready (empty body)", "content": {}},
    400: {"description": "Not ready (empty body)", "content": {}},
}
_MODEL_READY: _Responses = {**_READY, 404: {"description": "Unknown model or version", "model": ErrorResponse}}


@health.get("/v2/health/live", summary="Server liveness", response_class=Response, responses=_LIVE)
async def server_live() -> Response:
    return Response(status_code=200)


@health.get(
    "/v2/health/ready",
    summary="Server readiness: every model is ready",
    response_class=Response,
    responses=_READY,
)
async def server_ready(request: Request) -> Response:
    repository = getattr(request.app.state, "repository", None)
    return Response(status_code=200 if repository is not None and repository.ready else 400)


@health.get("/v2/models/{model_name}/ready", summary="Model readiness", response_class=Response, responses=_MODEL_READY)
@health.get(
    "/v2/models/{model_name}/versions/{model_version}/ready",
    summary="Model readiness (one version)",
    response_class=Response,
    responses=_MODEL_READY,
    openapi_extra=_VERSION_PARAM,
)
async def model_ready(model: ModelDep) -> Response:
    return Response(status_code=200 if model.ready else 400)


# ---- metadata ---------------------------------------------------------------------------------------------------


@router.get("/v2", response_model=ServerMetadataResponse, summary="Server metadata")
async def server_metadata() -> ServerMetadataResponse:
    return ServerMetadataResponse(name="vitrt", version=__version__, extensions=EXTENSIONS)


@router.get("/v2/models/stats", summary="Statistics of every model (Triton extension)")
async def all_stats(repository: RepositoryDep) -> dict[str, Any]:
    return {"model_stats": [model.stats.to_triton(model.name, model.version) for model in repository]}


@router.post("/v2/repository/index", response_model=list[RepositoryIndexEntry], summary="Repository index (Triton)")
async def repository_index(request: Request, repository: RepositoryDep) -> list[RepositoryIndexEntry]:
    body = await request.body()
    ready_only = False
    if body.strip():
        document = parse_json(body, "repository index request")
        if not isinstance(document, dict) or not isinstance(document.get("ready", False), bool):
            raise InvalidRequestError("repository index request must be an object with an optional boolean 'ready'")
        ready_only = document.get("ready", False)
    return [
        RepositoryIndexEntry(name=m.name, version=m.version, state="READY" if m.ready else "UNAVAILABLE")
        for m in repository
        if m.ready or not ready_only
    ]


@router.get("/v2/models/{model_name}", response_model=ModelMetadataResponse, summary="Model metadata")
async def model_metadata(model: ModelDep) -> ModelMetadataResponse:
    return model.metadata_response()


router.add_api_route(
    "/v2/models/{model_name}/versions/{model_version}",
    model_metadata,
    methods=["GET"],
    response_model=ModelMetadataResponse,
    summary="Model metadata (one version)",
    openapi_extra=_VERSION_PARAM,
)


@router.get("/v2/models/{model_name}/config", summary="Model configuration (Triton extension)")
async def model_config(model: ModelDep) -> dict[str, Any]:
    return model.triton_config()


router.add_api_route(
    "/v2/models/{model_name}/versions/{model_version}/config",
    model_config,
    methods=["GET"],
    summary="Model configuration (one version)",
    openapi_extra=_VERSION_PARAM,
)


@router.get("/v2/models/{model_name}/stats", summary="Model statistics (Triton extension)")
async def model_stats(model: ModelDep) -> dict[str, Any]:
    return {"model_stats": [model.stats.to_triton(model.name, model.version)]}


router.add_api_route(
    "/v2/models/{model_name}/versions/{model_version}/stats",
    model_stats,
    methods=["GET"],
    summary="Model statistics (one version)",
    openapi_extra=_VERSION_PARAM,
)


# ---- inference --------------------------------------------------------------------------------------------------

_INFER_DOC = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {"schema": {"$ref": "#/components/schemas/InferenceRequest"}},
            "application/octet-stream": {
                "schema": {"type": "string", "format": "binary"},
                "description": "JSON header of Inference-Header-Content-Length bytes, then binary tensors",
            },
        },
    }
}


@inference.post(
    "/v2/models/{model_name}/infer",
    response_model=InferenceResponse,
    summary="Inference (JSON tensors or Triton binary tensors)",
    openapi_extra=_INFER_DOC,
)
async def infer(request: Request, model: ModelDep) -> Response:
    started = time.perf_counter()
    config: ServerConfig = request.app.state.config
    try:
        _check_infer_content_type(request.headers.get("content-type"))
        body = _decompress(await request.body(), request.headers.get("content-encoding"), config.max_body_bytes)
        decoded = decode_request(body, request.headers.get(HEADER_LENGTH))
    except ServeError:
        model.record_failure("OTHER", started)
        raise
    wanted = None if decoded.outputs is None else [out.name for out in decoded.outputs]
    timeout_s = decoded.timeout_us / 1e6 if decoded.timeout_us else None
    result = await model.infer(
        decoded.inputs, wanted, started=started, timeout_s=timeout_s, request_id=decoded.id or request_id_of(request)
    )
    if decoded.outputs is None:
        chosen = [(name, result.outputs[name], decoded.binary_output) for name in model.outputs]
    else:
        chosen = [(out.name, result.outputs[out.name], out.binary) for out in decoded.outputs]
    encoded = encode_response(model.name, model.version, decoded.id or request_id_of(request), chosen)
    headers = {}
    media_type = "application/json"
    if encoded.header_length is not None:
        headers[HEADER_LENGTH] = str(encoded.header_length)
        media_type = "application/octet-stream"
    body = encoded.body
    encoding = (
        _accepted_encoding(request.headers.get("accept-encoding", "")) if len(body) >= _COMPRESS_MIN_BYTES else None
    )
    if encoding == "gzip":
        body = gzip.compress(body, compresslevel=5)
    elif encoding == "deflate":
        body = zlib.compress(body, 5)
    if encoding:
        headers["Content-Encoding"] = encoding
        headers["Vary"] = "Accept-Encoding"
    return Response(content=body, media_type=media_type, headers=headers)


inference.add_api_route(
    "/v2/models/{model_name}/versions/{model_version}/infer",
    infer,
    methods=["POST"],
    response_model=InferenceResponse,
    summary="Inference (one version)",
    openapi_extra={**_INFER_DOC, **_VERSION_PARAM},
)


# What an infer body may be labelled as. No Content-Type at all is accepted because Triton's own HTTP client
# (tritonclient.http) sends none, and Triton accepts that; its aiohttp client labels every body octet-stream.
INFER_CONTENT_TYPES = ("application/json", "application/octet-stream")


def _check_infer_content_type(header: str | None) -> None:
    if header is None or not header.strip():
        return
    media_type = header.split(";")[0].strip().lower()
    if media_type not in INFER_CONTENT_TYPES:
        raise UnsupportedMediaTypeError(
            f"unsupported Content-Type {media_type[:60]!r} for inference; send application/json (JSON tensors) or "
            "application/octet-stream (binary tensors after an Inference-Header-Content-Length JSON header)"
        )


def _accepted_encoding(header: str) -> str | None:
    offered = {}
    for part in header.lower().split(","):
        name, _, params = part.strip().partition(";")
        quality = 1.0
        if params.strip().startswith("q="):
            try:
                quality = float(params.strip()[2:])
            except ValueError:
                quality = 0.0
        offered[name.strip()] = quality
    for name in ("gzip", "deflate"):
        if offered.get(name, 0.0) > 0:
            return name
    return None


def _decompress(body: bytes, encoding: str | None, limit: int) -> bytes:
    if encoding is None or encoding.strip().lower() in ("", "identity"):
        return body
    name = encoding.strip().lower()
    if name not in ("gzip", "deflate"):
        raise UnsupportedMediaTypeError(f"unsupported Content-Encoding {encoding!r} (gzip, deflate or identity)")
    decompressor = zlib.decompressobj(wbits=31 if name == "gzip" else 15)
    try:
        data = decompressor.decompress(body, limit + 1)
    except zlib.error as err:
        raise InvalidRequestError(f"request body is not valid {name} data ({err})") from None
    if len(data) > limit or decompressor.unconsumed_tail:
        raise PayloadTooLargeError(f"decompressed request body exceeds the limit of {limit} bytes")
    if not decompressor.eof:
        raise InvalidRequestError(f"request body is truncated {name} data")
    return data
