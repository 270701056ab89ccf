"""A real `vitrt serve` process on 127.0.0.1 driven with httpx and the stock Triton HTTP client."""

from __future__ import annotations

import base64
import concurrent.futures
import gzip
import io
import json

import httpx
import numpy as np
import pytest
import tritonclient.http as triton
from PIL import Image
from serve_support import (
    API_KEY,
    CORS_ORIGIN,
    DEMO_MODEL,
    HAVE_EXPORTER,
    LOOKUP_TABLE,
    MAX_BODY,
    digit_files,
    metric,
    scrape,
    torch_predictions,
)
from tritonclient.utils import InferenceServerException

# ---- health, metadata, auth -------------------------------------------------------------------------------------


def test_health_endpoints_stay_open_without_the_key(server):
    with httpx.Client(base_url=server.url) as anonymous:
        assert anonymous.get("/v2/health/live").status_code == 200
        assert anonymous.get("/v2/health/ready").status_code == 200
        assert anonymous.get("/v2/models/digits/ready").status_code == 200
        assert anonymous.get("/v2/models/arith/versions/3/ready").status_code == 200
        missing = anonymous.get("/v2/models/arith/versions/9/ready")
        assert missing.status_code == 404 and "no version '9'" in missing.json()["error"]
        for path in ("/v2", "/v2/models/digits", "/metrics", "/v1/models"):
            refused = anonymous.get(path)
            assert refused.status_code == 401, path
            assert "API key" in refused.json()["error"]
            assert refused.headers["www-authenticate"].startswith("Bearer")
        assert anonymous.get("/v2", headers={"Authorization": "Bearer wrong"}).status_code == 401
        assert anonymous.get("/v2", headers={"X-API-Key": API_KEY}).status_code == 200
        assert anonymous.get("/").status_code == 200  # the page is public; its API calls carry the key
        assert anonymous.get("/docs").status_code == 200


def test_server_and_model_metadata(client):
    server_meta = client.get("/v2").json()
    assert server_meta["name"] == "vitrt" and "binary_tensor_data" in server_meta["extensions"]
    digits = client.get("/v2/models/digits").json()
    assert digits == {
        "name": "digits",
        "versions": ["1"],
        "platform": "onnxruntime_onnx",
        "inputs": [{"name": "input", "datatype": "FP32", "shape": [-1, 3, 16, 16]}],
        "outputs": [{"name": "logits", "datatype": "FP32", "shape": [-1, 10]}],
    }
    arith = client.get("/v2/models/arith/versions/3").json()
    assert arith["versions"] == ["3"] and [t["datatype"] for t in arith["outputs"]] == ["FP32", "FP16"]
    assert client.get("/v2/models/arith/versions/4").status_code == 404
    config = client.get("/v2/models/digits/config").json()
    assert config["max_batch_size"] == 8 and config["input"][0]["dims"] == [3, 16, 16]
    assert config["dynamic_batching"]["max_queue_delay_microseconds"] == 5000
    assert json.loads(config["parameters"]["vitrt_metadata"]["string_value"])["labels"][3] == "3"
    index = client.post("/v2/repository/index", json={"ready": True}).json()
    assert {(m["name"], m["version"], m["state"]) for m in index} >= {("digits", "1", "READY"), ("arith", "3", "READY")}
    models = client.get("/v1/models").json()["models"]
    assert {m["name"]: m["classify"] for m in models}["digits"] is True
    assert {m["name"]: m["classify"] for m in models}["arith"] is False
    schema = client.get("/openapi.json").json()
    assert "InferenceRequest" in schema["components"]["schemas"]
    assert "/v2/models/{model_name}/infer" in schema["paths"]


# ---- the stock Triton client ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def triton_client(server):
    client = triton.InferenceServerClient(f"127.0.0.1:{server.port}", network_timeout=30.0)
    yield client
    client.close()


def test_triton_client_health_and_metadata(triton_client, server):
    auth = server.headers
    assert triton_client.is_server_live() and triton_client.is_server_ready()
    assert triton_client.is_model_ready("digits") and triton_client.is_model_ready("arith", "3")
    assert triton_client.get_server_metadata(headers=auth)["name"] == "vitrt"
    meta = triton_client.get_model_metadata("arith", "3", headers=auth)
    assert [i["name"] for i in meta["inputs"]] == ["INPUT0", "INPUT1"]
    assert triton_client.get_model_config("arith", headers=auth)["max_batch_size"] == 4
    names = [m["name"] for m in triton_client.get_model_repository_index(headers=auth)]
    assert {"digits", "arith", "lookup"} <= set(names)
    with pytest.raises(InferenceServerException, match="unknown model 'nope'"):
        triton_client.get_model_metadata("nope", headers=auth)
    with pytest.raises(InferenceServerException, match="API key"):
        triton_client.get_model_metadata("arith")


@pytest.mark.parametrize("binary_inputs", [True, False], ids=["binary-in", "json-in"])
@pytest.mark.parametrize("binary_outputs", [True, False], ids=["binary-out", "json-out"])
def test_triton_client_infer(triton_client, server, binary_inputs, binary_outputs):
    rng = np.random.default_rng(1)
    a = rng.standard_normal((3, 16)).astype(np.float32)
    b = rng.standard_normal((3, 16)).astype(np.float16)
    inputs = [triton.InferInput("INPUT0", [3, 16], "FP32"), triton.InferInput("INPUT1", [3, 16], "FP16")]
    inputs[0].set_data_from_numpy(a, binary_data=binary_inputs)
    inputs[1].set_data_from_numpy(b, binary_data=True)  # FP16 travels as binary (JSON has no half floats)
    outputs = [
        triton.InferRequestedOutput("OUTPUT1", binary_data=binary_outputs),
        triton.InferRequestedOutput("OUTPUT0", binary_data=binary_outputs),
    ]
    result = triton_client.infer(
        "arith", inputs, model_version="3", outputs=outputs, request_id="tc-42", headers=server.headers
    )
    response = result.get_response()
    assert response["id"] == "tc-42" and response["model_version"] == "3"
    assert [o["name"] for o in response["outputs"]] == ["OUTPUT1", "OUTPUT0"]
    np.testing.assert_allclose(result.as_numpy("OUTPUT0"), a + b.astype(np.float32), rtol=1e-6)
    diff = result.as_numpy("OUTPUT1")
    assert diff.dtype == np.float16
    np.testing.assert_allclose(diff, (a - b.astype(np.float32)).astype(np.float16), rtol=1e-3)


def test_triton_client_default_outputs_compression_and_statistics(triton_client, server):
    before = triton_client.get_inference_statistics("arith", headers=server.headers)["model_stats"][0]
    x = np.ones((4, 16), dtype=np.float32)
    inputs = [triton.InferInput("INPUT0", [4, 16], "FP32"), triton.InferInput("INPUT1", [4, 16], "FP16")]
    inputs[0].set_data_from_numpy(x)
    inputs[1].set_data_from_numpy(x.astype(np.float16))
    result = triton_client.infer(
        "arith",
        inputs,
        headers=server.headers,
        request_compression_algorithm="gzip",
        response_compression_algorithm="deflate",
    )
    np.testing.assert_array_equal(result.as_numpy("OUTPUT0"), np.full((4, 16), 2.0, np.float32))
    np.testing.assert_array_equal(result.as_numpy("OUTPUT1"), np.zeros((4, 16), np.float16))
    after = triton_client.get_inference_statistics("arith", headers=server.headers)["model_stats"][0]
    assert after["inference_count"] == before["inference_count"] + 4
    assert after["execution_count"] == before["execution_count"] + 1
    assert after["inference_stats"]["success"]["count"] == before["inference_stats"]["success"]["count"] + 1
    assert after["inference_stats"]["compute_infer"]["ns"] > before["inference_stats"]["compute_infer"]["ns"]
    assert any(entry["batch_size"] == 4 for entry in after["batch_stats"])


# ---- JSON tensors over plain HTTP -------------------------------------------------------------------------------


def test_json_infer_nested_data_safe_casts_and_int64(client):
    body = {
        "id": "nested-1",
        "inputs": [
            {"name": "INPUT0", "shape": [2, 16], "datatype": "UINT8", "data": [list(range(16)), list(range(16, 32))]},
            {"name": "INPUT1", "shape": [2, 16], "datatype": "FP16", "data": [0.5] * 32},
        ],
        "outputs": [{"name": "OUTPUT0"}],
    }
    response = client.post("/v2/models/arith/infer", json=body)
    assert response.status_code == 200, response.text
    document = response.json()
    assert document["id"] == "nested-1" and document["model_name"] == "arith"
    assert [o["name"] for o in document["outputs"]] == ["OUTPUT0"]
    assert document["outputs"][0]["data"] == [float(v) + 0.5 for v in range(32)]
    lookup = client.post(
        "/v2/models/lookup/versions/1/infer",
        json={"inputs": [{"name": "INDICES", "shape": [2, 2], "datatype": "INT64", "data": [[0, 9], [3, 4]]}]},
    )
    assert lookup.status_code == 200, lookup.text
    values = lookup.json()["outputs"][0]
    assert values["datatype"] == "FP32" and values["shape"] == [2, 2]
    assert values["data"] == LOOKUP_TABLE[[0, 9, 3, 4]].tolist()


def test_large_json_responses_are_gzip_compressed_when_accepted(client):
    x = np.arange(64 * 16, dtype=np.float32).reshape(64, 16)
    body = {
        "inputs": [
            {"name": "INPUT0", "shape": [64, 16], "datatype": "FP32", "data": x.ravel().tolist()},
            {"name": "INPUT1", "shape": [64, 16], "datatype": "FP16", "data": [0] * 1024},
        ]
    }
    response = client.post("/v2/models/arith/infer", json=body, headers={"Accept-Encoding": "gzip"})
    assert response.status_code == 200 and response.headers["content-encoding"] == "gzip"
    assert response.json()["outputs"][0]["data"] == x.ravel().tolist()  # 64 > max batch 4: split and reassembled


# ---- image classification ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["png", "jpeg"])
def test_classify_predictions_equal_pytorch(client, tiny_digits, tmp_path, fmt):
    model, _ = tiny_digits
    files = digit_files(tmp_path, 24, fmt)
    expected = torch_predictions(model, [path for path, _ in files])
    got = []
    for start in range(0, len(files), 12):  # several images per request, and one request per image below
        chunk = files[start : start + 12]
        multipart = [("file", (p.name, p.read_bytes(), f"image/{fmt}")) for p, _ in chunk]
        response = client.post("/v1/models/digits/classify", files=multipart, params={"top_k": 10})
        assert response.status_code == 200, response.text
        document = response.json()
        assert [r["filename"] for r in document["results"]] == [p.name for p, _ in chunk]
        for result in document["results"]:
            scores = [p["score"] for p in result["top_k"]]
            assert scores == sorted(scores, reverse=True) and abs(sum(scores) - 1.0) < 1e-6
            got.append(int(result["top_k"][0]["label"]))
        assert document["latency"]["total_ms"] >= document["latency"]["compute_ms"] > 0
    assert got == expected
    single = client.post("/v1/models/digits/classify", files={"file": (files[5][0].name, files[5][0].read_bytes())})
    assert single.json()["results"][0]["top_k"][0]["label"] == str(expected[5])
    assert len(single.json()["results"][0]["top_k"]) == 5
    accuracy = np.mean([g == label for g, (_, label) in zip(got, files, strict=True)])
    assert accuracy > 0.7  # a meaningful model, not just equal noise


@pytest.mark.skipif(not HAVE_EXPORTER, reason="vitrt.export is not in this checkout, so no demo model can be exported")
@pytest.mark.parametrize("fmt", ["png", "jpeg"])
def test_demo_model_served_by_zoo_name_classifies_like_pytorch(client, tmp_path, fmt):
    from vitrt.models import create_model

    model = create_model(DEMO_MODEL).eval()
    files = digit_files(tmp_path, 32, fmt)
    expected = torch_predictions(model, [path for path, _ in files], model.vitrt_metadata)
    multipart = [("file", (p.name, p.read_bytes(), f"image/{fmt}")) for p, _ in files]
    response = client.post("/v1/models/demo/classify", files=multipart)
    assert response.status_code == 200, response.text
    got = [int(result["top_k"][0]["label"]) for result in response.json()["results"]]
    assert got == expected
    assert np.mean([g == label for g, (_, label) in zip(got, files, strict=True)]) > 0.9
    metadata = client.get("/v2/models/demo").json()
    assert metadata["inputs"][0]["shape"] == [-1, *model.vitrt_metadata.input_size]


def test_classify_base64_json_and_data_urls(client, tiny_digits, tmp_path):
    model, _ = tiny_digits
    files = digit_files(tmp_path, 3, "png")
    expected = torch_predictions(model, [p for p, _ in files])
    images = [base64.b64encode(p.read_bytes()).decode() for p, _ in files]
    images[1] = "data:image/png;base64," + images[1]
    response = client.post("/v1/models/digits/classify", json={"images": images, "top_k": 2})
    assert response.status_code == 200, response.text
    results = response.json()["results"]
    assert [int(r["top_k"][0]["label"]) for r in results] == expected
    assert all(len(r["top_k"]) == 2 for r in results)


# ---- batching, back-pressure, metrics ---------------------------------------------------------------------------


def _digits_body(n: int, seed: int) -> dict:
    x = np.random.default_rng(seed).standard_normal((n, 3, 16, 16)).astype(np.float32)
    return {"inputs": [{"name": "input", "shape": list(x.shape), "datatype": "FP32", "data": x.ravel().tolist()}]}


def test_concurrent_requests_are_batched_and_metrics_move(client, server):
    before = scrape(client)
    labels = {"model": "digits", "version": "1"}

    def call(i):
        with httpx.Client(base_url=server.url, headers=server.headers, timeout=30.0) as own:
            return own.post("/v2/models/digits/infer", json=_digits_body(1, i))

    with concurrent.futures.ThreadPoolExecutor(16) as pool:
        responses = list(pool.map(call, range(32)))
    assert all(r.status_code == 200 for r in responses)
    after = scrape(client)
    requests = metric(after, "nv_inference_request_success", **labels) - metric(
        before, "nv_inference_request_success", **labels
    )
    inferences = metric(after, "nv_inference_count", **labels) - metric(before, "nv_inference_count", **labels)
    executions = metric(after, "nv_inference_exec_count", **labels) - metric(
        before, "nv_inference_exec_count", **labels
    )
    assert requests == 32 and inferences == 32
    assert executions < 32  # some requests shared a batch
    batches = metric(after, "vitrt_inference_batch_size_count", **labels) - metric(
        before, "vitrt_inference_batch_size_count", **labels
    )
    assert batches == executions
    assert (
        metric(after, "vitrt_inference_batch_size_sum", **labels)
        - metric(before, "vitrt_inference_batch_size_sum", **labels)
        == 32
    )
    assert (
        metric(after, "vitrt_inference_request_duration_seconds_count", **labels)
        - metric(before, "vitrt_inference_request_duration_seconds_count", **labels)
        == 32
    )
    assert metric(after, "nv_inference_queue_duration_us", **labels) > metric(
        before, "nv_inference_queue_duration_us", **labels
    )
    route = {"method": "POST", "route": "/v2/models/{model_name}/infer", "status": "200"}
    assert (
        metric(after, "vitrt_http_requests_total", **route) - metric(before, "vitrt_http_requests_total", **route) == 32
    )
    assert metric(after, "nv_inference_pending_request_count", **labels) == 0


def test_full_queue_answers_503_with_retry_after(client, server):
    labels = {"model": "digits_small_queue", "version": "1", "reason": "REJECTED"}
    before = metric(scrape(client), "nv_inference_request_failure", **labels)

    def call(i):
        with httpx.Client(base_url=server.url, headers=server.headers, timeout=30.0) as own:
            return own.post("/v2/models/digits_small_queue/infer", json=_digits_body(1, i))

    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        waiting = [pool.submit(call, i) for i in range(2)]  # these sit in the 1.5 s queue delay
        for _ in range(100):
            if (
                metric(scrape(client), "nv_inference_pending_request_count", model="digits_small_queue", version="1")
                == 2
            ):
                break
        refused = client.post("/v2/models/digits_small_queue/infer", json=_digits_body(1, 9))
        assert refused.status_code == 503
        assert refused.headers["retry-after"] == "1" and "queue is full" in refused.json()["error"]
        assert [f.result().status_code for f in waiting] == [200, 200]
    assert metric(scrape(client), "nv_inference_request_failure", **labels) == before + 1


# ---- bad input --------------------------------------------------------------------------------------------------


def _binary(header: dict, *blobs: bytes) -> tuple[bytes, dict[str, str]]:
    head = json.dumps(header).encode()
    return head + b"".join(blobs), {"Inference-Header-Content-Length": str(len(head))}


def _nan_body():
    x = np.zeros((1, 3, 16, 16), dtype=np.float32)
    x[0, 1, 2, 3] = np.nan
    meta = {"name": "input", "shape": [1, 3, 16, 16], "datatype": "FP32", "parameters": {"binary_data_size": x.nbytes}}
    return _binary({"inputs": [meta]}, x.tobytes())


def _truncated_body():
    x = np.zeros((1, 3, 16, 16), dtype=np.float32)
    meta = {"name": "input", "shape": [1, 3, 16, 16], "datatype": "FP32", "parameters": {"binary_data_size": x.nbytes}}
    return _binary({"inputs": [meta]}, x.tobytes()[:100])


def _png(size: tuple[int, int]) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, (200, 10, 10)).save(buffer, format="PNG")
    return buffer.getvalue()


def _digits_json(shape, datatype="FP32", name="input", value=0.0):
    return json.dumps(
        {"inputs": [{"name": name, "shape": shape, "datatype": datatype, "data": [value] * int(np.prod(shape))}]}
    ).encode()


BAD_REQUESTS = {
    "wrong-shape": (
        "/v2/models/digits/infer",
        _digits_json([1, 3, 8, 8]),
        {},
        400,
        "shape [1, 3, 8, 8] does not match",
    ),
    "wrong-dtype": ("/v2/models/digits/infer", _digits_json([1, 3, 16, 16], "FP64"), {}, 400, "datatype FP64"),
    "int-for-float": ("/v2/models/digits/infer", _digits_json([1, 3, 16, 16], "INT32", value=1), {}, 400, "INT32"),
    "unknown-input": ("/v2/models/digits/infer", _digits_json([1, 3, 16, 16], name="pixels"), {}, 400, "'pixels'"),
    "unknown-model": ("/v2/models/nope/infer", _digits_json([1, 3, 16, 16]), {}, 404, "unknown model 'nope'"),
    "unknown-version": ("/v2/models/digits/versions/7/infer", _digits_json([1, 3, 16, 16]), {}, 404, "version '7'"),
    "unknown-output": (
        "/v2/models/digits/infer",
        json.dumps({**json.loads(_digits_json([1, 3, 16, 16])), "outputs": [{"name": "probs"}]}).encode(),
        {},
        400,
        "unknown output 'probs'",
    ),
    "malformed-json": ("/v2/models/digits/infer", b'{"inputs": [', {}, 400, "malformed JSON"),
    "schema-violation": ("/v2/models/digits/infer", b'{"inputs": {"name": 1}}', {}, 400, "inputs: Input should be"),
    "truncated-binary": ("/v2/models/digits/infer", *_truncated_body(), 400, "truncated binary payload"),
    "header-length-too-big": (
        "/v2/models/digits/infer",
        b"{}",
        {"Inference-Header-Content-Length": "50"},
        400,
        "exceeds the body",
    ),
    "nan-rejected": ("/v2/models/digits/infer", *_nan_body(), 400, "NaN or infinite"),
    "oversized-body": ("/v2/models/digits/infer", b"0" * (MAX_BODY + 1), {}, 413, "exceeds the limit"),
    "gzip-bomb": (
        "/v2/models/digits/infer",
        gzip.compress(b" " * (MAX_BODY * 4)),
        {"Content-Encoding": "gzip"},
        413,
        "decompressed request body exceeds",
    ),
    "unknown-encoding": ("/v2/models/digits/infer", b"{}", {"Content-Encoding": "br"}, 415, "Content-Encoding"),
    "corrupt-image": (
        "/v1/models/digits/classify",
        {"file": ("broken.png", b"\x89PNG\r\n\x1a\nnot really")},
        {},
        400,
        "image 'broken.png': not a readable image",
    ),
    "truncated-image": ("/v1/models/digits/classify", {"file": ("cut.png", _png((16, 16))[:60])}, {}, 400, "'cut.png'"),
    "oversized-image": (
        "/v1/models/digits/classify",
        {"file": ("big.png", _png((1500, 1000)))},
        {},
        400,
        "exceeds the limit of 1000000 pixels",
    ),
    "empty-image": ("/v1/models/digits/classify", {"file": ("empty.png", b"")}, {}, 400, "'empty.png' is empty"),
    "bad-base64": (
        "/v1/models/digits/classify",
        json.dumps({"images": ["***"]}).encode(),
        {"Content-Type": "application/json"},
        400,
        "images[0]: not valid base64",
    ),
    "bad-top-k": ("/v1/models/digits/classify?top_k=zero", {"file": ("a.png", _png((8, 8)))}, {}, 400, "top_k"),
    "wrong-content-type": ("/v1/models/digits/classify", b"abc", {"Content-Type": "text/plain"}, 415, "Content-Type"),
    "classify-non-image-model": (
        "/v1/models/arith/classify",
        {"file": ("a.png", _png((8, 8)))},
        {},
        400,
        "no image preprocessing metadata",
    ),
    "unknown-route": ("/v2/nothing/here", b"{}", {}, 404, "no route for POST /v2/nothing/here"),
}


@pytest.mark.parametrize("case", list(BAD_REQUESTS))
def test_bad_requests_get_4xx_json_naming_the_problem(client, case):
    path, payload, headers, status, message = BAD_REQUESTS[case]
    if isinstance(payload, dict):
        response = client.post(path, files=payload, headers=headers)
    else:
        response = client.post(path, content=payload, headers=headers)
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    document = response.json()
    assert message in document["error"], document
    assert document["request_id"] == response.headers["x-request-id"]
    assert "Traceback" not in response.text


@pytest.mark.parametrize(
    ("content_type", "status"),
    [
        ("text/plain", 415),
        ("application/xml", 415),
        ("application/x-www-form-urlencoded", 415),  # what `curl -d @body.json` sends without -H
        ("multipart/form-data; boundary=x", 415),
        (None, 200),  # tritonclient.http sends no Content-Type, and Triton accepts that
        ("application/json", 200),
        ("application/json; charset=utf-8", 200),
        ("application/octet-stream", 200),  # tritonclient.http.aio labels every body octet-stream
    ],
)
def test_infer_content_types_are_checked_as_the_docs_say(server, content_type, status):
    body = _digits_json([1, 3, 16, 16])
    headers = {**server.headers, **({"Content-Type": content_type} if content_type else {})}
    request = httpx.Request("POST", f"{server.url}/v2/models/digits/infer", content=body, headers=headers)
    assert content_type is not None or "content-type" not in request.headers
    with httpx.Client() as http:
        response = http.send(request)
    assert response.status_code == status, response.text
    if status == 415:
        error = response.json()["error"]
        assert content_type.split(";")[0] in error and "application/json" in error


def test_server_keeps_serving_after_bad_requests(client, tiny_digits, tmp_path):
    for case in BAD_REQUESTS:
        path, payload, headers, status, _ = BAD_REQUESTS[case]
        sent = (
            client.post(path, files=payload)
            if isinstance(payload, dict)
            else client.post(path, content=payload, headers=headers)
        )
        assert sent.status_code == status
    ((path, _),) = digit_files(tmp_path, 1, "png")
    ok = client.post("/v1/models/digits/classify", files={"file": (path.name, path.read_bytes())})
    assert ok.status_code == 200
    assert ok.json()["results"][0]["top_k"][0]["label"] == str(torch_predictions(tiny_digits[0], [path])[0])


def test_nonfinite_inputs_pass_where_the_policy_allows(client):
    x = np.full((1, 16), np.inf, dtype=np.float32)
    y = np.zeros((1, 16), dtype=np.float16)
    meta = [
        {"name": "INPUT0", "shape": [1, 16], "datatype": "FP32", "parameters": {"binary_data_size": x.nbytes}},
        {"name": "INPUT1", "shape": [1, 16], "datatype": "FP16", "parameters": {"binary_data_size": y.nbytes}},
    ]
    body, headers = _binary({"inputs": meta, "parameters": {"binary_data_output": True}}, x.tobytes(), y.tobytes())
    response = client.post("/v2/models/arith/infer", content=body, headers=headers)
    assert response.status_code == 200, response.text
    header_length = int(response.headers["inference-header-content-length"])
    header = json.loads(response.content[:header_length])
    assert header["outputs"][0]["parameters"]["binary_data_size"] == 64
    out0 = np.frombuffer(response.content[header_length : header_length + 64], dtype="<f4")
    assert np.isinf(out0).all()


def test_backend_failure_is_a_generic_500_with_request_id_and_a_logged_traceback(client, server):
    body = {"inputs": [{"name": "INDICES", "shape": [1, 2], "datatype": "INT64", "data": [1, 99]}]}
    response = client.post("/v2/models/lookup/infer", json=body, headers={"X-Request-ID": "fail-me-1"})
    assert response.status_code == 500
    assert response.json() == {"error": "model 'lookup' failed to run a batch of 1", "request_id": "fail-me-1"}
    assert response.headers["x-request-id"] == "fail-me-1"
    server.wait_for_log(
        lambda e: (
            (e.get("request_id") == "fail-me-1" or "batch of 1 failed" in e["message"])
            and "Traceback" in e.get("exception", "")
        )
    )
    assert (
        client.post(
            "/v2/models/lookup/infer", json={**body, "inputs": [{**body["inputs"][0], "data": [1, 2]}]}
        ).status_code
        == 200
    )


# ---- request ids, logs, CORS, the page --------------------------------------------------------------------------


def test_request_ids_are_echoed_or_generated_and_logged(client, server):
    echoed = client.get("/v2/models/digits", headers={"X-Request-ID": "trace-abc.123"})
    assert echoed.headers["x-request-id"] == "trace-abc.123"
    replaced = client.get("/v2/models/digits", headers={"X-Request-ID": "bad id with spaces"})
    assert replaced.headers["x-request-id"] != "bad id with spaces" and len(replaced.headers["x-request-id"]) == 32
    inferred = client.post(
        "/v2/models/arith/infer",
        content=_digits_json([1, 16], name="INPUT0"),
        headers={"X-Request-ID": "trace-infer-9"},
    )
    assert inferred.status_code == 400  # INPUT1 missing: still logged with its id
    access = server.wait_for_log(
        lambda e: e.get("request_id") == "trace-infer-9" and e["logger"] == "vitrt.serve.access"
    )
    assert access["status"] == 400 and access["path"] == "/v2/models/arith/infer"
    assert all(isinstance(e["ts"], str) and e["level"] for e in server.log_entries())


def test_cors_only_for_the_configured_origin(server):
    preflight = {"Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "authorization"}
    allowed = httpx.options(f"{server.url}/v2/models/digits/infer", headers={"Origin": CORS_ORIGIN, **preflight})
    assert allowed.status_code == 200 and allowed.headers["access-control-allow-origin"] == CORS_ORIGIN
    other = httpx.options(
        f"{server.url}/v2/models/digits/infer", headers={"Origin": "http://evil.example", **preflight}
    )
    assert "access-control-allow-origin" not in other.headers
    simple = httpx.get(f"{server.url}/v2/health/live", headers={"Origin": "http://evil.example"})
    assert "access-control-allow-origin" not in simple.headers


def test_web_page_and_assets(server):
    page = httpx.get(f"{server.url}/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert "script-src 'self'" in page.headers["content-security-policy"]
    assert 'id="file"' in page.text and 'id="api-key"' in page.text and "/static/app.js" in page.text
    script = httpx.get(f"{server.url}/static/app.js")
    assert script.status_code == 200 and "/v1/models/" in script.text


def test_streamed_body_over_the_limit_is_refused(client):
    chunks = (b"x" * (512 * 1024) for _ in range(5))  # chunked transfer encoding: no Content-Length to check up front
    response = client.post("/v2/models/digits/infer", content=chunks)
    assert response.status_code == 413 and "exceeds the limit" in response.json()["error"]


def test_classify_can_return_what_the_model_sees(client, tmp_path):
    (path, _), *_ = digit_files(tmp_path / "seen", 1, "png")
    response = client.post(
        "/v1/models/digits/classify?include_input=true", files={"file": ("d.png", path.read_bytes())}
    )
    assert response.status_code == 200, response.text
    url = response.json()["results"][0]["input_image"]
    assert url.startswith("data:image/png;base64,")
    image = Image.open(io.BytesIO(base64.b64decode(url.split(",", 1)[1])))
    assert image.size == (16, 16)  # the model's input size, not the upload's
    plain = client.post("/v1/models/digits/classify", files={"file": ("d.png", path.read_bytes())})
    assert plain.json()["results"][0].get("input_image") is None
