"""Pydantic schemas of the KServe v2 / Open Inference Protocol bodies and of the vitrt image endpoint.

Request models are strict (no coercion of strings to numbers, unknown fields refused) so that a malformed request
fails with a message naming the field rather than being half-understood.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field

NonNegativeInt = Annotated[int, Field(ge=0)]

# KServe v2 tensor datatypes this server converts (vitrt.serve.protocol.DATATYPES maps them to numpy). Requests
# validate the name themselves (to say which input is wrong); the schema lists them so generated clients know.
DATATYPE_NAMES = (
    "BOOL",
    "UINT8",
    "UINT16",
    "UINT32",
    "UINT64",
    "INT8",
    "INT16",
    "INT32",
    "INT64",
    "FP16",
    "FP32",
    "FP64",
)
Datatype = Annotated[str, Field(json_schema_extra={"enum": list(DATATYPE_NAMES)})]


class _Strict(BaseModel):
    model_config = ConfigDict(strict=True, extra="forbid")


class RequestInput(_Strict):
    name: str
    shape: list[NonNegativeInt]
    datatype: Datatype
    parameters: dict[str, Any] | None = None
    data: list[Any] | None = None


class RequestOutput(_Strict):
    name: str
    parameters: dict[str, Any] | None = None


class InferenceRequest(_Strict):
    id: str | None = None
    parameters: dict[str, Any] | None = None
    inputs: list[RequestInput] = Field(min_length=1)
    outputs: list[RequestOutput] | None = None


class ResponseOutput(BaseModel):
    name: str
    shape: list[int]
    datatype: Datatype
    parameters: dict[str, Any] | None = None
    data: list[Any] | None = None


class InferenceResponse(BaseModel):
    model_name: str
    model_version: str | None = None
    id: str
    parameters: dict[str, Any] | None = None
    outputs: list[ResponseOutput]


class TensorMetadata(BaseModel):
    name: str
    datatype: Datatype
    shape: list[int]


class ModelMetadataResponse(BaseModel):
    name: str
    versions: list[str]
    platform: str
    inputs: list[TensorMetadata]
    outputs: list[TensorMetadata]


class ServerMetadataResponse(BaseModel):
    name: str
    version: str
    extensions: list[str]


class ErrorResponse(BaseModel):
    error: str
    request_id: str | None = None


class RepositoryIndexEntry(BaseModel):
    name: str
    version: str
    state: str
    reason: str = ""


class Prediction(BaseModel):
    label: str
    index: int
    score: float


class ImageResult(BaseModel):
    filename: str | None
    top_k: list[Prediction]
    input_image: str | None = Field(
        default=None, description="with ?include_input=true: the preprocessed input the model saw, as a PNG data URL"
    )


class ClassifyLatency(BaseModel):
    total_ms: float
    preprocess_ms: float
    queue_ms: float
    compute_ms: float


class ClassifyResponse(BaseModel):
    model_name: str
    model_version: str
    id: str
    results: list[ImageResult]
    latency: ClassifyLatency


class ClassifyJsonRequest(_Strict):
    """Base64-encoded images (plain or as `data:image/...;base64,` URLs)."""

    images: list[str] = Field(min_length=1)
    top_k: int | None = Field(default=None, ge=1)


class ModelSummary(BaseModel):
    name: str
    version: str
    platform: str
    classify: bool
    input_size: list[int] | None = None
    labels: list[str] | None = None
    max_batch_size: int


class ModelList(BaseModel):
    models: list[ModelSummary]
