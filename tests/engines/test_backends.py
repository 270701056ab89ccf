"""One runtime interface: the PyTorch and ONNX Runtime backends behave the same; load() picks and refuses clearly."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import save_file
from tinyvit import TinyViT, make_tiny_vit, tiny_metadata

from vitrt.engines import InferenceBackend, InputError, TensorSpec, artifact_kind, load
from vitrt.engines.availability import tensorrt_problem
from vitrt.engines.onnxruntime import OnnxRuntimeBackend, tensorrt_plugin_model
from vitrt.engines.pytorch import TorchBackend, resolve_model
from vitrt.errors import ArtifactError, BackendUnavailableError, ModelNotFoundError


@pytest.fixture(scope="module")
def both(tiny_vit: TinyViT, tiny_onnx: Path) -> list[InferenceBackend]:
    backends = [load(tiny_vit, backend="torch", device="cpu"), load(tiny_onnx)]
    yield backends
    for backend in backends:
        backend.close()


def test_same_interface_for_torch_and_onnxruntime(both: list[InferenceBackend]) -> None:
    torch_backend, ort_backend = both
    assert isinstance(torch_backend, TorchBackend) and isinstance(ort_backend, OnnxRuntimeBackend)
    assert torch_backend.describe() == "torch on cpu (float32)"
    assert ort_backend.describe() == "onnxruntime (CPUExecutionProvider)"
    for backend in both:
        assert backend.inputs == [TensorSpec("input", "float32", (None, 3, 16, 16))]
        assert [(o.name, o.dtype, o.shape[1:]) for o in backend.outputs] == [("logits", "float32", (10,))]
        assert backend.max_batch_size is None
        assert backend.metadata is not None and backend.metadata.model == "tiny_vit_test"
        assert backend.device == "cpu"
        backend.warmup(iterations=1, batch_size=2)


def test_both_backends_agree_on_numpy_and_torch_inputs(both: list[InferenceBackend]) -> None:
    x = np.random.default_rng(0).standard_normal((5, 3, 16, 16), dtype=np.float32)
    outputs = [backend.infer(x) for backend in both]
    for out in outputs:
        assert out.shape == (5, 10) and out.dtype == np.float32
    np.testing.assert_allclose(outputs[0], outputs[1], rtol=1e-4, atol=1e-5)
    for backend in both:
        np.testing.assert_array_equal(backend.infer(torch.from_numpy(x)), backend.infer(x))
        # float64 input is cast, like the server's JSON path
        np.testing.assert_allclose(backend.infer(x.astype(np.float64)), backend.infer(x), rtol=1e-6)


@pytest.mark.parametrize(
    ("array", "message"),
    [
        (np.zeros((2, 3, 8, 8), np.float32), r"shape \[2, 3, 8, 8\], expected \[-1, 3, 16, 16\]"),
        (np.zeros((0, 3, 16, 16), np.float32), "empty batch"),
        (np.zeros((3, 16, 16), np.float32), "expected"),
        (np.array([["a"]]), "dtype"),
    ],
)
def test_bad_inputs_raise_the_same_input_error(both: list[InferenceBackend], array: np.ndarray, message: str) -> None:
    for backend in both:
        with pytest.raises(InputError, match=message):
            backend.infer(array)


def test_concurrent_calls_give_the_sequential_results(both: list[InferenceBackend]) -> None:
    rng = np.random.default_rng(1)
    batches = [rng.standard_normal((2, 3, 16, 16), dtype=np.float32) for _ in range(8)]
    for backend in both:
        expected = [backend.infer(b) for b in batches]
        with ThreadPoolExecutor(4) as pool:
            results = list(pool.map(backend.infer, batches))
        for got, want in zip(results, expected, strict=True):
            np.testing.assert_array_equal(got, want)


def test_artifact_kinds(tiny_onnx: Path, tmp_path: Path) -> None:
    assert artifact_kind(tiny_onnx) == "onnx"
    assert artifact_kind(tmp_path / "m.plan") == "engine"
    assert artifact_kind(tmp_path / "weights.pth") == "model"
    assert artifact_kind(make_tiny_vit()) == "model"
    with pytest.raises(ModelNotFoundError, match="unknown model 'no_such_model'"):
        artifact_kind("no_such_model")
    with pytest.raises(ArtifactError, match="file not found"):
        artifact_kind(tmp_path / "missing.bin.xyz")
    text = tmp_path / "notes.txt"
    text.write_text("hello")
    with pytest.raises(ArtifactError, match="cannot tell how to load"):
        artifact_kind(text)


def test_load_refuses_mismatched_backends_with_a_hint(tiny_onnx: Path, tmp_path: Path) -> None:
    with pytest.raises(ArtifactError, match="build one first: vitrt build"):
        load(tiny_onnx, backend="tensorrt")
    with pytest.raises(ArtifactError, match="export it first"):
        load(make_tiny_vit(), backend="onnxruntime")
    with pytest.raises(ArtifactError, match="unknown backend 'tvm'"):
        load(tiny_onnx, backend="tvm")
    with pytest.raises(ArtifactError, match="ONNX file not found"):
        load(tmp_path / "missing.onnx")


@pytest.mark.skipif(tensorrt_problem() is None, reason="checks the behaviour without TensorRT")
def test_engine_without_tensorrt_is_a_clear_error(tmp_path: Path) -> None:
    engine = tmp_path / "m.plan"
    engine.write_bytes(b"plan")
    with pytest.raises(BackendUnavailableError, match="TensorRT"):
        load(engine)


def test_checkpoint_needs_an_architecture(tmp_path: Path) -> None:
    checkpoint = tmp_path / "weights.safetensors"
    save_file({k: v.contiguous() for k, v in make_tiny_vit().state_dict().items()}, str(checkpoint))
    with pytest.raises(ArtifactError, match=r"cannot tell the architecture of checkpoint weights.safetensors"):
        resolve_model(checkpoint)
    (tmp_path / "weights.json").write_text(json.dumps({"model": "no_such_arch"}))
    with pytest.raises(ModelNotFoundError, match="no_such_arch"):
        resolve_model(checkpoint)
    with pytest.raises(ArtifactError, match="checkpoint not found"):
        resolve_model(tmp_path / "missing.pth")


def test_torch_backend_options_are_validated() -> None:
    module = make_tiny_vit()
    with pytest.raises(ArtifactError, match="unknown dtype"):
        TorchBackend(module, dtype="float8")
    with pytest.raises(ArtifactError, match="unknown device"):
        TorchBackend(module, device="tpu")
    with pytest.raises(ArtifactError, match="needs deployment metadata"):
        TorchBackend(TinyViT())
    if not torch.cuda.is_available():
        with pytest.raises(BackendUnavailableError, match="CUDA"):
            TorchBackend(module, kernels="cuda")
    half = TorchBackend(make_tiny_vit(), device="cpu", dtype="bfloat16", metadata=tiny_metadata())
    x = np.random.default_rng(2).standard_normal((2, 3, 16, 16), dtype=np.float32)
    reference = TorchBackend(make_tiny_vit(), device="cpu").infer(x)
    out = half.infer(x)
    assert out.dtype == np.float32 and half.describe() == "torch on cpu (bfloat16)"
    np.testing.assert_allclose(out, reference, atol=0.15)


def test_tensorrt_ep_model_moves_vitrt_nodes_to_the_plugin_domain(tmp_path: Path) -> None:
    import onnx
    from tinyvit import vitrt_op_model

    path = tmp_path / "op.onnx"
    onnx.save(vitrt_op_model(), str(path))
    rewritten = onnx.load_from_string(tensorrt_plugin_model(path))
    assert not rewritten.functions
    assert {n.domain for n in rewritten.graph.node} == {"", "trt.plugins"}
    assert {o.domain for o in rewritten.opset_import} == {"", "trt.plugins"}


def test_vitrt_onnxruntime_sessions_keep_the_callers_denormal_floats(tiny_onnx: Path) -> None:
    """ORT applies the first session's flush-to-zero option to the creating thread; vitrt's sessions flush only on
    ORT's own threads, so the user's thread still computes with denormals. Needs a fresh process (first session)."""
    import subprocess
    import sys

    script = "; ".join(
        [
            "import numpy as np, onnxruntime as ort",
            "from vitrt.engines.onnxruntime import cpu_session_options",
            f"ort.InferenceSession(r'{tiny_onnx}', cpu_session_options(2), providers=['CPUExecutionProvider'])",
            "print(float(np.float32(1e-40) * np.float32(1.0)))",
        ]
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120, check=True)
    product = float(result.stdout.strip().splitlines()[-1])
    assert product > 0.0, "the calling thread flushes denormals to zero after a vitrt session was created"
