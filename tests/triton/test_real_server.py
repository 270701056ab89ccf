"""The `--runtime vitrt` repository served by a real `tritonserver` (from the nvidia-pytriton wheel) on 127.0.0.1.

One server per module: the ca_digits demo model exported by vitrt, the vitrt Python-backend form with the
preprocessing ensemble, and a `vitrt triton-env` environment (linked from this interpreter, or installed by pip
where its numpy is >= 2). Its answers are compared with a `vitrt serve` of the same file. A second server loads the
native forms (Triton's onnxruntime and tensorrt_plan backends), which this wheel does not ship: they must fail for
that reason only.
"""

from __future__ import annotations

import contextlib
import importlib.util
import io
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("torch")
export = pytest.importorskip("vitrt.export")
httpclient = pytest.importorskip("tritonclient.http")
grpcclient = pytest.importorskip("tritonclient.grpc")

from vitrt.data.digits import digit_to_pil, load_digits_split  # noqa: E402
from vitrt.triton import RepositoryOptions, build_repository  # noqa: E402
from vitrt.triton.environment import build_environment  # noqa: E402
from vitrt.triton.local_server import LocalTriton, TritonUnavailableError, find_installation, free_port  # noqa: E402

MODEL = "ca_digits"
# Both servers run the same ONNX file in the same ONNX Runtime; batching may change the kernels' summation order.
FP32_ATOL = 1e-5
SRC = Path(__file__).resolve().parents[2] / "src"


def _require_triton() -> None:
    try:
        find_installation()
    except TritonUnavailableError as err:
        pytest.skip(str(err))


@pytest.fixture(scope="module")
def onnx_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("triton_model") / f"{MODEL}.onnx"
    export.export_zoo_model(MODEL, path, validate=False)
    return path


@pytest.fixture(scope="module")
def python_env(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """`vitrt triton-env`: this interpreter's packages linked (`--source host`) where its numpy is < 2, as Triton's
    Python backend needs; otherwise the same versions with numpy < 2 installed from the package index (`--source pip`).
    """
    _require_triton()
    source = "host" if int(np.__version__.split(".")[0]) < 2 else "pip"
    return build_environment(tmp_path_factory.mktemp("triton_env") / "env", ["onnxruntime"], source=source).path


@pytest.fixture(scope="module")
def triton(onnx_path: Path, python_env: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalTriton]:
    work = tmp_path_factory.mktemp("triton_server")
    options = RepositoryOptions(
        runtime="vitrt", python_env=python_env, with_preprocessing=True, max_batch_size=8, max_queue_delay_us=20_000
    )
    build_repository([onnx_path], work / "repo", options)
    server = LocalTriton(work / "repo", log_file=work / "tritonserver.log")
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def vitrt_serve(onnx_path: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """`vitrt serve` of the same ONNX file on a free 127.0.0.1 port; yields its host:port, stopped by its PID."""
    port = free_port()
    log_path = tmp_path_factory.mktemp("vitrt_serve") / "serve.log"
    env = {**os.environ, "PYTHONPATH": f"{SRC}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    env.pop("VITRT_API_KEY", None)
    command = [sys.executable, "-m", "vitrt", "serve", str(onnx_path), "--name", MODEL, "--backend", "onnxruntime"]
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [*command, "--host", "127.0.0.1", "--port", str(port)], stdout=log, stderr=subprocess.STDOUT, env=env
        )
    url = f"127.0.0.1:{port}"
    client = httpclient.InferenceServerClient(url)
    try:
        while True:
            if process.poll() is not None:
                pytest.fail(f"vitrt serve exited with {process.returncode}: {log_path.read_text()[-2000:]}")
            try:
                if client.is_server_ready():
                    break
            except Exception:  # connection refused until uvicorn listens
                pass
            with contextlib.suppress(subprocess.TimeoutExpired):  # until the next poll; returns if it exits
                process.wait(timeout=0.2)
        yield url
    finally:
        process.terminate()
        process.wait(timeout=30)


def test_http_and_grpc_match_vitrt_serve(triton: LocalTriton, vitrt_serve: str) -> None:
    x = np.random.default_rng(0).standard_normal((3, 3, 32, 32)).astype(np.float32)
    reference = httpclient.InferenceServerClient(vitrt_serve)
    tensor = httpclient.InferInput("input", list(x.shape), "FP32")
    tensor.set_data_from_numpy(x, binary_data=True)
    expected = reference.infer(MODEL, [tensor]).as_numpy("logits")
    assert expected.shape == (3, 10)
    http = httpclient.InferenceServerClient(triton.http_url)
    for binary in (True, False):
        tensor = httpclient.InferInput("input", list(x.shape), "FP32")
        tensor.set_data_from_numpy(x, binary_data=binary)
        out = http.infer(MODEL, [tensor]).as_numpy("logits")
        np.testing.assert_allclose(out, expected, atol=FP32_ATOL, rtol=0)
    grpc = grpcclient.InferenceServerClient(triton.grpc_url)
    tensor = grpcclient.InferInput("input", list(x.shape), "FP32")
    tensor.set_data_from_numpy(x)
    np.testing.assert_allclose(grpc.infer(MODEL, [tensor]).as_numpy("logits"), expected, atol=FP32_ATOL, rtol=0)


def test_ensemble_classifies_digit_pngs(triton: LocalTriton) -> None:
    images, labels = load_digits_split("test")
    encoded = []
    for image in images[:8]:
        buffer = io.BytesIO()
        digit_to_pil(image).save(buffer, format="PNG")
        encoded.append(buffer.getvalue())
    batch = np.array(encoded, dtype=np.object_).reshape(-1, 1)
    tensor = httpclient.InferInput("IMAGE", list(batch.shape), "BYTES")
    tensor.set_data_from_numpy(batch)
    logits = httpclient.InferenceServerClient(triton.http_url).infer(f"{MODEL}_image", [tensor]).as_numpy("logits")
    assert (logits.argmax(1) == labels[:8]).mean() >= 0.75


def test_dynamic_batcher_forms_batches(triton: LocalTriton) -> None:
    http = httpclient.InferenceServerClient(triton.http_url, concurrency=32)

    def counts() -> tuple[int, int]:
        stats = http.get_inference_statistics(MODEL)["model_stats"][0]
        return int(stats["inference_count"]), int(stats["execution_count"])

    before = counts()
    x = np.zeros((1, 3, 32, 32), dtype=np.float32)

    tensor = httpclient.InferInput("input", list(x.shape), "FP32")
    tensor.set_data_from_numpy(x)
    # tritonclient.http is not thread-safe (gevent); async_infer keeps up to `concurrency` requests in flight.
    pending = [http.async_infer(MODEL, [tensor]) for _ in range(32)]
    results = [request.get_result().as_numpy("logits") for request in pending]
    after = counts()
    assert all(r.shape == (1, 10) for r in results)
    assert after[0] - before[0] == 32
    assert after[1] - before[1] < 32


def test_metadata_readiness_and_bad_request(triton: LocalTriton) -> None:
    http = httpclient.InferenceServerClient(triton.http_url)
    assert http.is_server_ready() and http.is_model_ready(MODEL)
    metadata = http.get_model_metadata(MODEL)
    assert [(i["name"], i["shape"]) for i in metadata["inputs"]] == [("input", [-1, 3, 32, 32])]
    assert [(o["name"], o["shape"]) for o in metadata["outputs"]] == [("logits", [-1, 10])]
    tensor = httpclient.InferInput("input", [1, 3, 16, 16], "FP32")
    tensor.set_data_from_numpy(np.zeros((1, 3, 16, 16), dtype=np.float32))
    with pytest.raises(httpclient.InferenceServerException, match="shape"):
        http.infer(MODEL, [tensor])
    assert not triton.errors()


def test_native_forms_fail_only_for_the_missing_backends(
    onnx_path: Path, python_env: Path, write_engine: Callable[..., Path], tmp_path: Path
) -> None:
    """Triton's own onnxruntime, tensorrt_plan and openvino forms: the real server parses and accepts their configs
    and stops only at the backend libraries this wheel does not ship."""
    _require_triton()
    repo = tmp_path / "repo"
    build_repository([onnx_path], repo, RepositoryOptions(name="digits_onnx", max_batch_size=8))
    build_repository([write_engine("digits", ngc_release="25.01")], repo, RepositoryOptions(name="digits_plan"))
    forms = {"digits_onnx": "onnxruntime", "digits_plan": "tensorrt"}
    if importlib.util.find_spec("openvino") is not None:  # the IR is written with the openvino extra
        options = RepositoryOptions(name="digits_openvino", onnx_backend="openvino", backend_options={"threads": 1})
        build_repository([onnx_path], repo, options)
        forms["digits_openvino"] = "openvino"
    # And a vitrt-runtime model without python_env.txt: it finds the environment through $VITRT_TRITON_ENV of the
    # server process (how docker/Dockerfile.triton and the KServe manifest hand it over).
    build_repository([onnx_path], repo, RepositoryOptions(name="digits_vitrt", runtime="vitrt"))
    environment = {"VITRT_TRITON_ENV": str(python_env)}
    with LocalTriton(repo, log_file=tmp_path / "tritonserver.log", strict=False, environment=environment) as server:
        client = httpclient.InferenceServerClient(server.http_url)
        index = {m["name"]: m for m in client.get_model_repository_index()}
        assert set(index) == {*forms, "digits_vitrt"}
        assert index["digits_vitrt"]["state"] == "READY", index["digits_vitrt"]
        tensor = httpclient.InferInput("input", [2, 3, 32, 32], "FP32")
        tensor.set_data_from_numpy(np.zeros((2, 3, 32, 32), dtype=np.float32))
        assert client.infer("digits_vitrt", [tensor]).as_numpy("logits").shape == (2, 10)
        for name, backend in forms.items():
            assert index[name]["state"] == "UNAVAILABLE"
            assert f"unable to find backend library for backend '{backend}'" in index[name]["reason"], index[name]
        expected = ("unable to find backend library", "failed to load all models")
        other = [line for line in server.errors() if not any(text in line for text in expected)]
        assert not other, other
