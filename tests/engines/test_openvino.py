"""The OpenVINO backend on vitrt's portable export: real OpenVINO, compared with real ONNX Runtime.

One demo family (ca_digits, the cheapest export) runs in the default suite; every family's demo model runs under
`make test-all`.
"""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("openvino")

from vitrt.data.digits import digits_batch
from vitrt.engines import load
from vitrt.engines.openvino import normalise_precision, precision_problem, save_ir
from vitrt.errors import ArtifactError, VitrtError
from vitrt.models import list_models

DEMO = "ca_digits"
FAMILIES = [pytest.param(n, marks=() if n == DEMO else pytest.mark.slow) for n in list_models(with_weights=True)]


@pytest.mark.parametrize("name", FAMILIES)
def test_portable_export_matches_onnxruntime_at_fp32_and_bf16(name: str, portable, tmp_path: Path) -> None:
    path = portable(name)
    ort = load(path, backend="onnxruntime")
    x, labels = digits_batch(ort.metadata, "test", limit=None)
    ref = ort.infer(x)
    fp32 = load(path, backend="openvino", cache=tmp_path / "cache")
    assert fp32.metadata is not None and fp32.metadata.model == name
    assert fp32.inputs[0].shape == (None, 3, 32, 32)
    out = fp32.infer(x)
    assert np.abs(out - ref).max() <= 1e-3
    assert np.array_equal(out.argmax(1), ref.argmax(1))
    bf16 = load(path, backend="openvino", precision="bf16", fallback_fp32=True, cache=False)
    low = bf16.infer(x)
    assert (low.argmax(1) == ref.argmax(1)).mean() >= 0.99
    assert (ref.argmax(1) == labels).mean() - (low.argmax(1) == labels).mean() <= 0.005
    assert bf16.runtime_precisions()


def test_ir_round_trip_keeps_metadata_and_outputs(portable, tmp_path: Path) -> None:
    path = portable(DEMO)
    xml, binary = save_ir(path, tmp_path / "ir" / "model.xml")
    assert xml.is_file() and binary.is_file()
    ir = load(xml)  # auto: an IR runs with openvino
    assert ir.name == "openvino" and ir.metadata is not None and ir.metadata.model == DEMO
    x, _ = digits_batch(ir.metadata, "test", limit=8)
    np.testing.assert_allclose(ir.infer(x), load(path, backend="openvino", cache=False).infer(x), atol=1e-5)


def test_concurrent_infer_from_threads(portable) -> None:
    backend = load(portable(DEMO), backend="openvino", performance_hint="throughput", cache=False)
    x, _ = digits_batch(backend.metadata, "test", limit=4)
    expected = backend.infer(x)
    results: list[np.ndarray] = []
    threads = [threading.Thread(target=lambda: results.append(backend.infer(x))) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(results) == 6 and all(np.array_equal(r, expected) for r in results)


def test_bad_inputs_are_one_line_errors(portable, tmp_path: Path) -> None:
    path = portable(DEMO)
    with pytest.raises(ArtifactError, match="unknown OpenVINO precision 'int4'"):
        load(path, backend="openvino", precision="int4")
    with pytest.raises(ArtifactError, match="performance_hint"):
        load(path, backend="openvino", performance_hint="fastest")
    with pytest.raises(ArtifactError, match="precision is an option of the openvino backend"):
        load(path, backend="onnxruntime", precision="bf16")
    with pytest.raises(ArtifactError, match="unknown option 'no_such_option' for the openvino backend; it takes: "):
        load(path, backend="openvino", no_such_option=1)
    with pytest.raises(ArtifactError, match="keep_fp32: 'not-an-op'"):
        load(path, backend="openvino", precision="fp16", keep_fp32=["MVN", "not-an-op"], fallback_fp32=True)
    broken = tmp_path / "broken.onnx"
    broken.write_bytes(b"not an onnx file")
    with pytest.raises(ArtifactError, match="cannot read ONNX file"):
        load(broken, backend="openvino")
    with pytest.raises(VitrtError, match="OpenVINO IR"):
        load(tmp_path / "missing.xml")


def test_precision_the_cpu_lacks_is_refused_with_the_fix() -> None:
    assert normalise_precision("f16") == "fp16" and normalise_precision("F32") == "fp32"
    assert precision_problem("bf16", ("FP32", "BF16")) is None
    problem = precision_problem("bf16", ("FP32", "INT8"))  # what OpenVINO reports on an AVX2-only CPU
    assert problem is not None and "lacks AVX512-BF16 or AMX" in problem and "--precision fp32" in problem
    assert precision_problem("fp32", ()) is None


def _ran_in(backend, layer: str) -> set[str]:
    return {precision for precision, ops in backend.runtime_precisions().items() if layer in ops}


def test_fragile_ops_stay_fp32_where_openvino_honours_it(portable) -> None:
    """keep_fp32 marks LayerNorm (MVN), reductions and the softmax precise; the compiled graph reports them FP32."""
    from vitrt.engines.openvino import FRAGILE_OPS, device_precision_problem

    path = portable(DEMO)
    if device_precision_problem("fp16") is not None:
        pytest.skip("this CPU cannot run OpenVINO at fp16 (no AVX512-FP16/AMX-FP16)")
    pinned = load(path, backend="openvino", precision="fp16", cache=False)  # default keep_fp32="auto": fragile
    assert pinned.fp32_ops == FRAGILE_OPS and "in fp32" in pinned.describe()
    assert _ran_in(pinned, "MVN") == {"f32"} and _ran_in(pinned, "Softmax") == {"f32"}
    free = load(path, backend="openvino", precision="fp16", keep_fp32="none", cache=False)
    assert free.fp32_ops == () and _ran_in(free, "MVN") == {"f16"}
    x, _ = digits_batch(pinned.metadata, "test", limit=64)
    ref = load(path, backend="onnxruntime").infer(x)
    assert np.abs(pinned.infer(x) - ref).max() <= np.abs(free.infer(x) - ref).max()
    only_norms = load(path, backend="openvino", precision="fp16", keep_fp32="MVN", cache=False)
    assert _ran_in(only_norms, "MVN") == {"f32"} and _ran_in(only_norms, "Softmax") == {"f16"}
    # bf16's default pins nothing (bf16 keeps FP32's range; the CPU kernels accumulate in FP32 already).
    assert load(path, backend="openvino", precision="bf16", fallback_fp32=True, cache=False).fp32_ops == ()


def test_compiled_model_cache_never_mixes_precisions_or_weights(portable, tmp_path: Path) -> None:
    """OpenVINO's own cache key ignores the precision hint (a bf16 load got the fp32 blob back and wrong logits);
    vitrt keys the cache folder by artifact content and compile properties."""
    path = portable(DEMO)
    x, _ = digits_batch(load(path, backend="onnxruntime").metadata, "test", limit=16)
    cache = tmp_path / "shared-cache"
    fp32 = load(path, backend="openvino", cache=cache).infer(x)
    bf16_cached = load(path, backend="openvino", precision="bf16", fallback_fp32=True, cache=cache).infer(x)
    bf16_fresh = load(path, backend="openvino", precision="bf16", fallback_fp32=True, cache=False).infer(x)
    np.testing.assert_array_equal(bf16_cached, bf16_fresh)
    np.testing.assert_array_equal(load(path, backend="openvino", cache=cache).infer(x), fp32)
    assert len([p for p in cache.iterdir() if p.is_dir()]) == 2
