"""`/v1` image endpoints: upload JPEG/PNG/WebP images (multipart or base64 JSON), get the top-k labels."""

from __future__ import annotations

import base64
import binascii
import time
from dataclasses import dataclass
from typing import Annotated

import numpy as np
from fastapi import APIRouter, Depends, Query, Request
from pydantic import ValidationError
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile

from vitrt.errors import VitrtError
from vitrt.metadata import ModelMetadata
from vitrt.serve.config import ServerConfig
from vitrt.serve.dependencies import (
    ConfigDep,
    ModelDep,
    RepositoryDep,
    RequestIdDep,
    request_id_of,
    require_api_key,
)
from vitrt.serve.errors import InvalidRequestError, PayloadTooLargeError, UnsupportedMediaTypeError
from vitrt.serve.protocol import parse_json, validation_message
from vitrt.serve.schemas import (
    ClassifyJsonRequest,
    ClassifyLatency,
    ClassifyResponse,
    ErrorResponse,
    ImageResult,
    ModelList,
    Prediction,
)

router = APIRouter(
    tags=["images"],
    dependencies=[Depends(require_api_key)],
    responses={code: {"model": ErrorResponse} for code in (400, 401, 404, 413, 415, 503)},
)

_CLASSIFY_DOC = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "properties": {"file": {"type": "array", "items": {"type": "string", "format": "binary"}}},
                    "required": ["file"],
                }
            },
            "application/json": {"schema": {"$ref": "#/components/schemas/ClassifyJsonRequest"}},
        },
    }
}


@dataclass(frozen=True)
class _Upload:
    name: str  # file name, or images[i] for base64 input
    data: bytes


@router.get("/v1/models", response_model=ModelList, summary="Served models and whether they take images")
async def list_models(repository: RepositoryDep) -> ModelList:
    return ModelList(models=[model.summary() for model in repository])


@router.post(
    "/v1/models/{model_name}/classify",
    response_model=ClassifyResponse,
    summary="Classify images: multipart uploads (field 'file', repeatable) or JSON base64",
    openapi_extra=_CLASSIFY_DOC,
)
async def classify(
    request: Request,
    model: ModelDep,
    config: ConfigDep,
    request_id: RequestIdDep,
    top_k: Annotated[int | None, Query(ge=1, le=1000, description="labels per image (default 5)")] = None,
    include_input: Annotated[
        bool, Query(description="also return each preprocessed input as the model sees it (PNG data URL)")
    ] = False,
) -> ClassifyResponse:
    started = time.perf_counter()
    metadata = model.image_metadata
    if metadata is None:
        raise InvalidRequestError(
            f"model {model.name!r} carries no image preprocessing metadata; use /v2/models/{model.name}/infer"
        )
    try:
        uploads, body_top_k = await _read_uploads(request, config)
        preprocess_start = time.perf_counter()
        batch = await run_in_threadpool(_preprocess, uploads, metadata, config.max_image_pixels)
        preprocess_s = time.perf_counter() - preprocess_start
    except VitrtError:
        model.record_failure("OTHER", started)
        raise
    input_name = next(iter(model.inputs))
    output_name = next(iter(model.outputs))
    result = await model.infer({input_name: batch}, [output_name], started=started, request_id=request_id_of(request))
    logits = np.asarray(result.outputs[output_name], dtype=np.float64).reshape(len(uploads), -1)
    probabilities = _softmax(logits)
    labels = model.labels(probabilities.shape[1])
    k = min(top_k or body_top_k or 5, probabilities.shape[1])
    order = np.argsort(-probabilities, axis=1, kind="stable")[:, :k]
    results = [
        ImageResult(
            filename=upload.name,
            top_k=[Prediction(label=labels[i], index=int(i), score=float(row[i])) for i in ranks],
            input_image=_input_png(sample, metadata) if include_input else None,
        )
        for upload, row, ranks, sample in zip(uploads, probabilities, order, batch, strict=True)
    ]
    latency = ClassifyLatency(
        total_ms=round((time.perf_counter() - started) * 1000, 3),
        preprocess_ms=round(preprocess_s * 1000, 3),
        queue_ms=round(result.queue_s * 1000, 3),
        compute_ms=round(result.compute_s * 1000, 3),
    )
    return ClassifyResponse(
        model_name=model.name, model_version=model.version, id=request_id, results=results, latency=latency
    )


async def _read_uploads(request: Request, config: ServerConfig) -> tuple[list[_Upload], int | None]:
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    limit = config.max_images_per_request
    if content_type == "multipart/form-data":
        form = await request.form(max_files=limit, max_fields=16)
        try:
            files = [item for _, item in form.multi_items() if isinstance(item, UploadFile)]
            if not files:
                raise InvalidRequestError("no image in the multipart body (send files in the field 'file')")
            uploads = []
            for index, item in enumerate(files):
                uploads.append(_Upload(item.filename or f"file[{index}]", await item.read()))
        finally:
            await form.close()
        return uploads, None
    if content_type == "application/json":
        document = parse_json(await request.body(), "classify request")
        try:
            parsed = ClassifyJsonRequest.model_validate(document)
        except ValidationError as err:
            raise InvalidRequestError(validation_message(err)) from None
        if len(parsed.images) > limit:
            raise PayloadTooLargeError(f"{len(parsed.images)} images in one request exceed the limit of {limit}")
        return [_Upload(f"images[{i}]", _b64decode(text, i)) for i, text in enumerate(parsed.images)], parsed.top_k
    raise UnsupportedMediaTypeError(
        f"unsupported Content-Type {content_type or '(none)'!r}; send multipart/form-data or application/json"
    )


def _b64decode(text: str, index: int) -> bytes:
    if text.startswith("data:"):
        header, _, text = text.partition(",")
        if ";base64" not in header:
            raise InvalidRequestError(f"images[{index}]: data URL is not base64-encoded")
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise InvalidRequestError(f"images[{index}]: not valid base64") from None


def _preprocess(uploads: list[_Upload], metadata: ModelMetadata, max_pixels: int) -> np.ndarray:
    from vitrt.preprocess import ImageDecodeError, decode_image, preprocess_images

    images = []
    for upload in uploads:
        if not upload.data:
            raise InvalidRequestError(f"image {upload.name!r} is empty")
        try:
            images.append(decode_image(upload.data, max_pixels=max_pixels))
        except ImageDecodeError as err:
            raise InvalidRequestError(f"image {upload.name!r}: {err}") from None
    return preprocess_images(images, metadata)


def _input_png(sample: np.ndarray, metadata: ModelMetadata) -> str:
    """One preprocessed (C, H, W) input, un-normalised back to pixels, as a PNG data URL."""
    import io

    from PIL import Image

    mean = np.asarray(metadata.mean, dtype=np.float32).reshape(-1, 1, 1)
    std = np.asarray(metadata.std, dtype=np.float32).reshape(-1, 1, 1)
    pixels = np.clip((sample * std + mean) * 255.0 + 0.5, 0, 255).astype(np.uint8).transpose(1, 2, 0)
    buffer = io.BytesIO()
    Image.fromarray(pixels[..., 0] if pixels.shape[2] == 1 else pixels).save(buffer, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()


def _softmax(logits: np.ndarray) -> np.ndarray:
    shifted = logits - logits.max(axis=1, keepdims=True)
    exp = np.exp(shifted)
    return exp / exp.sum(axis=1, keepdims=True)
