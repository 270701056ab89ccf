"""Test models and a real `vitrt serve` process on 127.0.0.1 for the server tests.

Models:
* `tiny_digits`: a small MLP trained for a few seconds on the digits train split, exported with torch.onnx and
  carrying vitrt `ModelMetadata` in `metadata_props`, so /classify has real preprocessing and meaningful labels.
* `arith`: Triton's classic "simple" model with FP32 and FP16 inputs and outputs (built with onnx.helper).
* `lookup`: an INT64 Gather into a constant table; an out-of-range index makes ONNX Runtime fail at run time,
  which exercises the server's 500 path without any mock.
"""

from __future__ import annotations

import importlib.util
import io
import json
import os
import signal
import socket
import subprocess
import sys
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import httpx
import numpy as np

from vitrt.data.digits import LABELS, digit_to_pil, digits_batch, load_digits_split
from vitrt.metadata import ModelMetadata

SRC = Path(__file__).resolve().parents[2] / "src"

# Settings of the shared session server (conftest.py); here rather than in conftest.py because tests cannot import
# `conftest` reliably: with tests/triton collected in the same run, that name is tests/triton/conftest.py.
API_KEY = "test-key-7d1f"
CORS_ORIGIN = "http://allowed.example"
MAX_BODY = 2 * 1024 * 1024
MAX_IMAGE_PIXELS = 1_000_000
# The circulant-attention demo model, served by zoo name (exported by vitrt.export at server start-up).
DEMO_MODEL = "ca_digits"
HAVE_EXPORTER = importlib.util.find_spec("vitrt.export") is not None

TINY_METADATA = ModelMetadata(
    model="tiny_digits_cnn",
    family="test",
    backbone="cnn",
    input_size=(3, 16, 16),
    mean=(0.5, 0.5, 0.5),
    std=(0.5, 0.5, 0.5),
    interpolation="bilinear",
    crop_pct=1.0,
    num_classes=10,
    labels=list(LABELS),
    input_name="input",
    output_name="logits",
)


def train_tiny_digits(epochs: int = 10):
    """A small MLP trained on the digits train split (about 97% test accuracy); returns the eval-mode module."""
    import torch
    from torch import nn

    # One thread: for a model this small, a second OpenMP thread only adds synchronisation (10-100x slower on a
    # busy 2-core machine).
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(3 * 16 * 16, 128), nn.ReLU(), nn.Linear(128, 10))
    x, y = (torch.from_numpy(a) for a in digits_batch(TINY_METADATA, "train"))
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    generator = torch.Generator().manual_seed(0)
    for _ in range(epochs):
        order = torch.randperm(len(x), generator=generator)
        for i in range(0, len(x), 64):
            idx = order[i : i + 64]
            loss = nn.functional.cross_entropy(model(x[idx]), y[idx])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    torch.set_num_threads(threads)
    return model.eval()


def export_with_metadata(model, path: Path, metadata: ModelMetadata = TINY_METADATA, batch: int | None = None) -> Path:
    """torch.onnx export (dynamic batch unless `batch` is given) plus vitrt metadata_props."""
    import onnx
    import torch

    example = torch.zeros(batch or 2, *metadata.input_size)
    dynamic = None if batch else {"input": {0: "batch"}, "logits": {0: "batch"}}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # the TorchScript exporter: 10x faster for a tiny MLP
        torch.onnx.export(
            model,
            (example,),
            str(path),
            input_names=["input"],
            output_names=["logits"],
            dynamic_axes=dynamic,
            opset_version=17,
            dynamo=False,
        )
    proto = onnx.load(str(path))
    for key, value in metadata.to_props().items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, value
    onnx.save(proto, str(path))
    return path


def build_arith(path: Path, batch: int | str = "batch", width: int | str = 16) -> Path:
    """OUTPUT0 = INPUT0 + INPUT1 (FP32), OUTPUT1 = INPUT0 - INPUT1 (FP16); INPUT1 is FP16; shapes [batch, width]
    (a string makes that dimension dynamic)."""
    import onnx
    from onnx import TensorProto, helper

    nodes = [
        helper.make_node("Cast", ["INPUT1"], ["in1_f32"], to=TensorProto.FLOAT),
        helper.make_node("Add", ["INPUT0", "in1_f32"], ["OUTPUT0"]),
        helper.make_node("Sub", ["INPUT0", "in1_f32"], ["diff"]),
        helper.make_node("Cast", ["diff"], ["OUTPUT1"], to=TensorProto.FLOAT16),
    ]
    graph = helper.make_graph(
        nodes,
        "arith",
        [
            helper.make_tensor_value_info("INPUT0", TensorProto.FLOAT, [batch, width]),
            helper.make_tensor_value_info("INPUT1", TensorProto.FLOAT16, [batch, width]),
        ],
        [
            helper.make_tensor_value_info("OUTPUT0", TensorProto.FLOAT, [batch, width]),
            helper.make_tensor_value_info("OUTPUT1", TensorProto.FLOAT16, [batch, width]),
        ],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, str(path))
    return path


LOOKUP_TABLE = np.arange(10, dtype=np.float32) * 1.5


def build_lookup(path: Path) -> Path:
    """VALUES = TABLE[INDICES] for INT64 INDICES [-1, 2]; an index >= 10 fails inside ONNX Runtime."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    graph = helper.make_graph(
        [helper.make_node("Gather", ["TABLE", "INDICES"], ["VALUES"], axis=0)],
        "lookup",
        [helper.make_tensor_value_info("INDICES", TensorProto.INT64, ["batch", 2])],
        [helper.make_tensor_value_info("VALUES", TensorProto.FLOAT, ["batch", 2])],
        initializer=[numpy_helper.from_array(LOOKUP_TABLE, "TABLE")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, str(path))
    return path


def digit_files(directory: Path, count: int, fmt: str) -> list[tuple[Path, int]]:
    """The first `count` test-split digits written as PNG or JPEG files, with their true labels."""
    images, labels = load_digits_split("test")
    directory.mkdir(parents=True, exist_ok=True)
    files = []
    for i in range(count):
        path = directory / f"digit_{i:03d}.{fmt}"
        digit_to_pil(images[i]).save(path, format="PNG" if fmt == "png" else "JPEG", quality=95)
        files.append((path, int(labels[i])))
    return files


def torch_predictions(model, paths: list[Path], metadata: ModelMetadata = TINY_METADATA) -> list[int]:
    """What the PyTorch model predicts for image files decoded and preprocessed exactly as the server does."""
    import torch

    from vitrt.preprocess import decode_image, preprocess_images

    batch = preprocess_images([decode_image(p.read_bytes()) for p in paths], metadata)
    with torch.no_grad():
        return model(torch.from_numpy(batch)).argmax(dim=1).tolist()


def png_bytes(image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class ServerProcess:
    process: subprocess.Popen
    port: int
    log_path: Path
    api_key: str | None = None

    @property
    def headers(self) -> dict[str, str]:
        """Fresh each time: tritonclient adds its own entries to the dict it is given."""
        return {"Authorization": f"Bearer {self.api_key}"} if self.api_key else {}

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace")

    def log_entries(self) -> list[dict]:
        text = self.log_text()
        complete = text[: text.rfind("\n") + 1]  # the server may be mid-way through writing the last line
        # JSON lines end at "\n" only: str.splitlines would also split inside strings holding U+0085 or U+2028.
        return [json.loads(line) for line in complete.split("\n") if line.startswith("{")]

    def wait_for_log(self, predicate, timeout: float = 10.0) -> dict:
        """The first JSON log entry matching `predicate`, waiting (bounded) for the server to write it: the access
        log line is written after the response has gone out, so a client can see the response first."""
        deadline = time.monotonic() + timeout
        while True:
            for entry in self.log_entries():
                if predicate(entry):
                    return entry
            if time.monotonic() > deadline or self.process.poll() is not None:
                raise AssertionError(f"no matching log line within {timeout} s:\n{self.log_text()[-3000:]}")
            time.sleep(0.02)

    def stop(self, timeout: float = 30.0) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return self.process.returncode


def start_server(
    args: list[str],
    log_path: Path,
    *,
    env: dict[str, str] | None = None,
    api_key: str | None = None,
    timeout: float = 60.0,
) -> ServerProcess:
    """`python -m vitrt serve ARGS --port FREE` in a subprocess; returns once /v2/health/ready answers 200."""
    port = free_port()
    full_env = {**os.environ, "PYTHONPATH": f"{SRC}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    full_env.pop("VITRT_API_KEY", None)
    full_env.update(env or {})
    log = log_path.open("wb")
    process = subprocess.Popen(
        [sys.executable, "-m", "vitrt", "serve", *args, "--host", "127.0.0.1", "--port", str(port)],
        stdout=log,
        stderr=subprocess.STDOUT,
        env=full_env,
    )
    log.close()
    server = ServerProcess(process, port, log_path, api_key)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited with {process.returncode}:\n{server.log_text()[-3000:]}")
        try:
            if httpx.get(f"{server.url}/v2/health/ready", timeout=1.0).status_code == 200:
                return server
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    server.stop()
    raise RuntimeError(f"server not ready after {timeout} s:\n{server.log_text()[-3000:]}")


def scrape(client: httpx.Client) -> dict[tuple[str, frozenset], float]:
    """Every sample of GET /metrics, keyed by (sample name, labels)."""
    from prometheus_client.parser import text_string_to_metric_families

    response = client.get("/metrics")
    response.raise_for_status()
    values = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            values[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return values


def metric(values: dict[tuple[str, frozenset], float], name: str, **labels: str) -> float:
    return values.get((name, frozenset(labels.items())), 0.0)
