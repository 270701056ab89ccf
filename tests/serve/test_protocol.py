"""KServe v2 wire format: JSON tensors, Triton binary tensors, requested outputs and the errors for bad bodies."""

from __future__ import annotations

import json

import numpy as np
import pytest

from vitrt.serve.errors import InvalidRequestError
from vitrt.serve.protocol import DATATYPES, decode_request, encode_response


def _body(inputs, outputs=None, **extra):
    document = {"inputs": inputs, **extra}
    if outputs is not None:
        document["outputs"] = outputs
    return json.dumps(document).encode()


def _binary_body(inputs_meta, blobs, **extra):
    header = json.dumps({"inputs": inputs_meta, **extra}).encode()
    return header + b"".join(blobs), str(len(header))


def test_flat_and_nested_json_data_give_the_same_tensor():
    flat = decode_request(_body([{"name": "x", "shape": [2, 3], "datatype": "FP32", "data": [1, 2, 3, 4, 5, 6]}]), None)
    nested = decode_request(
        _body([{"name": "x", "shape": [2, 3], "datatype": "FP32", "data": [[1, 2, 3], [4, 5, 6]]}]), None
    )
    assert flat.inputs["x"].dtype == np.float32
    np.testing.assert_array_equal(flat.inputs["x"], nested.inputs["x"])
    np.testing.assert_array_equal(flat.inputs["x"], np.arange(1, 7, dtype=np.float32).reshape(2, 3))


@pytest.mark.parametrize("datatype", sorted(DATATYPES))
def test_every_datatype_round_trips_through_json_and_binary(datatype):
    dtype = DATATYPES[datatype]
    values = np.array([[0, 1, 1, 0], [1, 0, 1, 1]], dtype=dtype) if dtype.kind == "b" else np.arange(8).reshape(2, 4)
    array = values.astype(dtype)
    as_json = decode_request(
        _body([{"name": "t", "shape": [2, 4], "datatype": datatype, "data": array.ravel().tolist()}]), None
    )
    body, header = _binary_body(
        [{"name": "t", "shape": [2, 4], "datatype": datatype, "parameters": {"binary_data_size": array.nbytes}}],
        [array.astype(dtype.newbyteorder("<")).tobytes()],
    )
    as_binary = decode_request(body, header)
    for decoded in (as_json, as_binary):
        assert decoded.inputs["t"].dtype == dtype
        np.testing.assert_array_equal(decoded.inputs["t"], array)


def test_two_binary_inputs_are_read_in_order_and_mixed_with_json():
    a = np.random.default_rng(0).standard_normal((3, 5)).astype(np.float16)
    b = np.arange(6, dtype=np.int64).reshape(3, 2)
    body, header = _binary_body(
        [
            {"name": "a", "shape": [3, 5], "datatype": "FP16", "parameters": {"binary_data_size": a.nbytes}},
            {"name": "c", "shape": [1], "datatype": "INT32", "data": [7]},
            {"name": "b", "shape": [3, 2], "datatype": "INT64", "parameters": {"binary_data_size": b.nbytes}},
        ],
        [a.tobytes(), b.tobytes()],
    )
    decoded = decode_request(body, header)
    np.testing.assert_array_equal(decoded.inputs["a"], a)
    np.testing.assert_array_equal(decoded.inputs["b"], b)
    assert decoded.inputs["c"].tolist() == [7]


def test_requested_outputs_and_binary_flags():
    inputs = [{"name": "x", "shape": [1], "datatype": "FP32", "data": [1.0]}]
    everything = decode_request(_body(inputs, parameters={"binary_data_output": True}), None)
    assert everything.outputs is None and everything.binary_output
    chosen = decode_request(
        _body(
            inputs,
            outputs=[{"name": "a", "parameters": {"binary_data": False}}, {"name": "b"}],
            parameters={"binary_data_output": True},
            id="req-1",
        ),
        None,
    )
    assert [(o.name, o.binary) for o in chosen.outputs] == [("a", False), ("b", True)]
    assert chosen.id == "req-1"


@pytest.mark.parametrize(
    ("body", "header", "message"),
    [
        (b"{not json", None, "malformed JSON"),
        (b"[1, 2]", None, "must be a JSON object"),
        (b'{"inputs": []}', None, "inputs: List should have at least 1 item"),
        (b'{"inputs": [{"name": "x", "shape": [1], "datatype": "FP32"}]}', None, "neither 'data'"),
        (b'{"inputs": [{"name": "x", "shape": ["1"], "datatype": "FP32", "data": [1]}]}', None, "inputs.0.shape.0"),
        (b'{"inputs": [{"name": "x", "shape": [1], "datatype": "FP99", "data": [1]}]}', None, "unsupported datatype"),
        (b'{"inputs": [{"name": "x", "shape": [2], "datatype": "FP32", "data": [1]}]}', None, "needs 2 values"),
        (b'{"inputs": [{"name": "x", "shape": [1], "datatype": "FP32", "data": ["a"]}]}', None, "not FP32"),
        (b'{"inputs": [{"name": "x", "shape": [1], "datatype": "INT32", "data": [1.5]}]}', None, "not INT32"),
        (b'{"inputs": [{"name": "x", "shape": [1], "datatype": "UINT8", "data": [300]}]}', None, "UINT8 range"),
        (b'{"inputs": [{"name": "x", "shape": [2, 2], "datatype": "FP32", "data": [[1, 2], [3]]}]}', None, "ragged"),
        (b'{"inputs": [{"name": "x", "shape": [1], "datatype": "FP32", "data": [1], "extra": 1}]}', None, "extra"),
        (
            b'{"inputs": [{"name": "x", "shape": [1], "datatype": "FP32", "data": [1]},'
            b' {"name": "x", "shape": [1], "datatype": "FP32", "data": [1]}]}',
            None,
            "given twice",
        ),
        (b'{"inputs": [{"name": "x", "shape": [1], "datatype": "FP32", "data": [1]}]}', "999", "exceeds the body"),
        (b'{"inputs": [{"name": "x", "shape": [1], "datatype": "FP32", "data": [1]}]}', "-4", "non-negative integer"),
    ],
)
def test_malformed_requests_name_the_problem(body, header, message):
    with pytest.raises(InvalidRequestError, match=message):
        decode_request(body, header)


def test_truncated_and_oversized_binary_payloads_are_refused():
    x = np.zeros((2, 4), dtype=np.float32)
    meta = [{"name": "x", "shape": [2, 4], "datatype": "FP32", "parameters": {"binary_data_size": x.nbytes}}]
    body, header = _binary_body(meta, [x.tobytes()[:-5]])
    with pytest.raises(InvalidRequestError, match="truncated binary payload: input 'x' declares 32 bytes but only 27"):
        decode_request(body, header)
    body, header = _binary_body(meta, [x.tobytes() + b"junk"])
    with pytest.raises(InvalidRequestError, match="4 bytes beyond"):
        decode_request(body, header)
    wrong_size = [{"name": "x", "shape": [2, 4], "datatype": "FP32", "parameters": {"binary_data_size": 16}}]
    body, header = _binary_body(wrong_size, [x.tobytes()[:16]])
    with pytest.raises(InvalidRequestError, match="does not match shape"):
        decode_request(body, header)


def test_encode_response_json_and_binary_outputs():
    a = np.array([[1.5, -2.0]], dtype=np.float32)
    b = np.array([[1, 2, 3]], dtype=np.float16)
    encoded = encode_response("m", "1", "rid", [("a", a, False), ("b", b, True)])
    header = json.loads(encoded.body[: encoded.header_length])
    assert header["id"] == "rid" and header["model_version"] == "1"
    assert header["outputs"][0] == {"name": "a", "datatype": "FP32", "shape": [1, 2], "data": [1.5, -2.0]}
    assert header["outputs"][1]["parameters"] == {"binary_data_size": b.nbytes}
    tail = encoded.body[encoded.header_length :]
    np.testing.assert_array_equal(np.frombuffer(tail, dtype="<f2").reshape(1, 3), b)
    plain = encode_response("m", "1", "rid", [("a", a, False)])
    assert plain.header_length is None and json.loads(plain.body)["outputs"][0]["data"] == [1.5, -2.0]
