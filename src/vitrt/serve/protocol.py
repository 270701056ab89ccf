"""KServe v2 tensors on the wire: JSON `data` (flat or nested) and Triton's binary-tensor extension.

Binary extension (Triton `extension_binary_data`): the body is the JSON header of `Inference-Header-Content-Length`
bytes followed by the raw little-endian bytes of every input that carries `parameters.binary_data_size`, in input
order. Outputs come back the same way when the request asks for `binary_data` (per output) or `binary_data_output`
(request-wide default).
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from pydantic import ValidationError

from vitrt.serve.errors import InvalidRequestError
from vitrt.serve.schemas import InferenceRequest, RequestInput

HEADER_LENGTH = "Inference-Header-Content-Length"

DATATYPES: dict[str, np.dtype] = {
    "BOOL": np.dtype(np.bool_),
    "UINT8": np.dtype(np.uint8),
    "UINT16": np.dtype(np.uint16),
    "UINT32": np.dtype(np.uint32),
    "UINT64": np.dtype(np.uint64),
    "INT8": np.dtype(np.int8),
    "INT16": np.dtype(np.int16),
    "INT32": np.dtype(np.int32),
    "INT64": np.dtype(np.int64),
    "FP16": np.dtype(np.float16),
    "FP32": np.dtype(np.float32),
    "FP64": np.dtype(np.float64),
}
_BY_NUMPY = {dtype.name: name for name, dtype in DATATYPES.items()}


def datatype_of(dtype: str | np.dtype) -> str:
    """KServe datatype name of a numpy dtype (or numpy dtype name)."""
    name = np.dtype(dtype).name
    if name not in _BY_NUMPY:
        raise InvalidRequestError(f"numpy dtype {name} has no KServe v2 datatype")
    return _BY_NUMPY[name]


def triton_config_type(datatype: str) -> str:
    """`FP32` -> `TYPE_FP32` (Triton model configuration spelling)."""
    return "TYPE_STRING" if datatype == "BYTES" else f"TYPE_{datatype}"


@dataclass(frozen=True)
class WantedOutput:
    name: str
    binary: bool


@dataclass
class DecodedRequest:
    id: str | None
    inputs: dict[str, np.ndarray]
    datatypes: dict[str, str]
    outputs: list[WantedOutput] | None  # None: every model output
    binary_output: bool  # request-wide default for outputs not listed explicitly
    timeout_us: int | None


def split_body(body: bytes, header_length: str | None) -> tuple[bytes, memoryview]:
    """Separate the JSON header from the binary tail using `Inference-Header-Content-Length`."""
    if header_length is None:
        return body, memoryview(b"")
    text = header_length.strip()
    if not text.isdigit():
        raise InvalidRequestError(f"{HEADER_LENGTH} must be a non-negative integer, got {header_length[:40]!r}")
    length = int(text)
    if length > len(body):
        raise InvalidRequestError(f"{HEADER_LENGTH} {length} exceeds the body of {len(body)} bytes")
    view = memoryview(body)
    return body[:length], view[length:]


def parse_json(raw: bytes | str, what: str = "request body") -> Any:
    try:
        return json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        detail = err.msg if isinstance(err, json.JSONDecodeError) else "not UTF-8"
        position = f" at position {err.pos}" if isinstance(err, json.JSONDecodeError) else ""
        raise InvalidRequestError(f"malformed JSON in {what}: {detail}{position}") from None
    except RecursionError:
        raise InvalidRequestError(f"malformed JSON in {what}: nested too deeply") from None


def validation_message(err: ValidationError) -> str:
    """The first pydantic error as `field.path: message`."""
    first = err.errors(include_url=False)[0]
    location = ".".join(str(part) for part in first["loc"]) or "body"
    return f"{location}: {first['msg']}"


def decode_request(body: bytes, header_length: str | None) -> DecodedRequest:
    """Parse an infer request (JSON or JSON + binary tail) into numpy arrays in their declared datatypes."""
    header, binary = split_body(body, header_length)
    document = parse_json(header, "inference request")
    if not isinstance(document, dict):
        raise InvalidRequestError("inference request must be a JSON object")
    try:
        request = InferenceRequest.model_validate(document)
    except ValidationError as err:
        raise InvalidRequestError(validation_message(err)) from None

    inputs: dict[str, np.ndarray] = {}
    datatypes: dict[str, str] = {}
    offset = 0
    for item in request.inputs:
        if item.name in inputs:
            raise InvalidRequestError(f"input {item.name!r} is given twice")
        dtype = DATATYPES.get(item.datatype)
        if dtype is None:
            supported = ", ".join(DATATYPES)
            raise InvalidRequestError(f"input {item.name!r}: unsupported datatype {item.datatype!r} ({supported})")
        params = item.parameters or {}
        if "shared_memory_region" in params:
            raise InvalidRequestError(f"input {item.name!r}: shared-memory tensors are not supported by this server")
        size = params.get("binary_data_size")
        if size is not None:
            array, offset = _binary_tensor(item, dtype, size, binary, offset)
        else:
            array = _json_tensor(item, dtype)
        inputs[item.name] = array
        datatypes[item.name] = item.datatype
    if offset != len(binary):
        raise InvalidRequestError(
            f"binary payload has {len(binary) - offset} bytes beyond the inputs' binary_data_size total of {offset}"
        )

    request_params = request.parameters or {}
    binary_output = _flag(request_params, "binary_data_output", "request parameters")
    outputs = None
    if request.outputs is not None:
        outputs = []
        seen = set()
        for out in request.outputs:
            if out.name in seen:
                raise InvalidRequestError(f"output {out.name!r} is requested twice")
            seen.add(out.name)
            params = out.parameters or {}
            for unsupported in ("classification", "shared_memory_region"):
                if unsupported in params:
                    raise InvalidRequestError(f"output {out.name!r}: parameter {unsupported!r} is not supported")
            flag = params.get("binary_data")
            binary_flag = binary_output if flag is None else _flag(params, "binary_data", f"output {out.name!r}")
            outputs.append(WantedOutput(out.name, binary_flag))
    timeout = request_params.get("timeout")
    if timeout is not None and (isinstance(timeout, bool) or not isinstance(timeout, int) or timeout < 0):
        raise InvalidRequestError("parameters.timeout must be a non-negative integer (microseconds)")
    return DecodedRequest(request.id, inputs, datatypes, outputs, binary_output, timeout or None)


def _flag(params: dict[str, Any], key: str, where: str) -> bool:
    value = params.get(key, False)
    if not isinstance(value, bool):
        raise InvalidRequestError(f"{where}: {key} must be true or false")
    return value


def _binary_tensor(
    item: RequestInput, dtype: np.dtype, size: Any, binary: memoryview, offset: int
) -> tuple[np.ndarray, int]:
    name = item.name
    if isinstance(size, bool) or not isinstance(size, int) or size < 0:
        raise InvalidRequestError(f"input {name!r}: binary_data_size must be a non-negative integer")
    if item.data is not None:
        raise InvalidRequestError(f"input {name!r} has both 'data' and binary_data_size")
    expected = math.prod(item.shape) * dtype.itemsize
    if size != expected:
        raise InvalidRequestError(
            f"input {name!r}: binary_data_size {size} does not match shape {item.shape} of {item.datatype} "
            f"({expected} bytes)"
        )
    remaining = len(binary) - offset
    if remaining < size:
        raise InvalidRequestError(
            f"truncated binary payload: input {name!r} declares {size} bytes but only {max(remaining, 0)} remain"
        )
    chunk = binary[offset : offset + size]
    array = np.frombuffer(chunk, dtype=dtype.newbyteorder("<")).reshape(item.shape)
    return array.astype(dtype, copy=False), offset + size


def _json_tensor(item: RequestInput, dtype: np.dtype) -> np.ndarray:
    name = item.name
    if item.data is None:
        raise InvalidRequestError(f"input {name!r} has neither 'data' nor parameters.binary_data_size")
    try:
        values = np.array(item.data)
    except (ValueError, TypeError):
        raise InvalidRequestError(f"input {name!r}: 'data' is a ragged or too deeply nested list") from None
    kind = values.dtype.kind
    if values.size == 0:
        kind = dtype.kind  # an empty list has no element type to check
    if dtype.kind == "b":
        compatible = kind == "b"
    elif dtype.kind in "iu":
        compatible = kind in "iu"
    else:
        compatible = kind in "iuf"
    if not compatible:
        raise InvalidRequestError(f"input {name!r}: 'data' holds values that are not {item.datatype}")
    if dtype.kind in "iu" and values.size:
        info = np.iinfo(dtype)
        if values.min() < info.min or values.max() > info.max:
            raise InvalidRequestError(f"input {name!r}: 'data' has values outside the {item.datatype} range")
    expected = math.prod(item.shape)
    if values.size != expected:
        raise InvalidRequestError(
            f"input {name!r}: shape {item.shape} needs {expected} values, 'data' has {values.size}"
        )
    if values.ndim > 1 and list(values.shape) != item.shape:
        raise InvalidRequestError(
            f"input {name!r}: nested 'data' has shape {list(values.shape)}, declared shape is {item.shape}"
        )
    return values.astype(dtype, copy=False).reshape(item.shape)


@dataclass(frozen=True)
class EncodedResponse:
    body: bytes
    header_length: int | None  # set when binary outputs follow the JSON header


def encode_response(
    model_name: str,
    model_version: str,
    request_id: str,
    outputs: Sequence[tuple[str, np.ndarray, bool]],
) -> EncodedResponse:
    """Build the infer response; outputs flagged binary go after the JSON header as raw little-endian bytes."""
    entries = []
    blobs = []
    for name, array, binary in outputs:
        entry: dict[str, Any] = {"name": name, "datatype": datatype_of(array.dtype), "shape": list(array.shape)}
        if binary:
            raw = np.ascontiguousarray(array, dtype=array.dtype.newbyteorder("<")).tobytes()
            entry["parameters"] = {"binary_data_size": len(raw)}
            blobs.append(raw)
        else:
            entry["data"] = array.ravel().tolist()
        entries.append(entry)
    document = {"model_name": model_name, "model_version": model_version, "id": request_id, "outputs": entries}
    header = json.dumps(document, separators=(",", ":")).encode()
    if not blobs:
        return EncodedResponse(header, None)
    return EncodedResponse(b"".join([header, *blobs]), len(header))
