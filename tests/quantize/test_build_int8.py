"""`vitrt build --precision int8` on a TensorRT explicit-quantization file from `vitrt quantize --target tensorrt`.

The ONNX half of the build (validation, FP32 islands, the quantization record for the manifest) and the CLI run
here; the engine build itself needs TensorRT and a GPU and skips with the reason where they are absent.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import onnx
import pytest

pytest.importorskip("torch")

from vitrt.engines.builder import BuildOptions, plan_build
from vitrt.engines.manifest import EngineManifest
from vitrt.errors import EngineBuildError

NAME = "flatten_digits"


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    from vitrt.export import export_zoo_model
    from vitrt.quantize import quantize

    root = tmp_path_factory.mktemp("int8build")
    paths = {"float": root / f"{NAME}.onnx", "tensorrt": root / "trt.int8.onnx", "onnxruntime": root / "ort.int8.onnx"}
    export_zoo_model(NAME, paths["float"])
    for target in ("tensorrt", "onnxruntime"):
        quantize(paths["float"], n=16, holdout=50, target=target, out=paths[target], search=False)
    return paths


def vitrt_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "vitrt", *args], capture_output=True, text=True, timeout=300)


def test_int8_plan_carries_the_quantization_record(files: dict[str, Path]) -> None:
    from vitrt.quantize.base import onnx_record

    record = onnx_record(onnx.load(files["tensorrt"]))
    assert record is not None
    plan = plan_build(files["tensorrt"], BuildOptions(precision="int8", plugins="none"))
    assert plan.quantization == record
    assert record["target"] == "tensorrt" and record["method"].startswith("explicit-quantization QDQ")
    assert len(record["calibration_sha256"]) == 64 and record["calibration_count"] == 16
    assert any(n.op_type == "QuantizeLinear" for n in plan.model.graph.node)  # the Q/DQ reach TensorRT's parser
    ops = {n.name: n.op_type for n in plan.model.graph.node}
    assert {"LayerNormalization", "Softmax"} & {ops[name] for name in plan.fp32_nodes}  # fragile steps pinned FP32
    typed = plan_build(files["tensorrt"], BuildOptions(precision="int8", strongly_typed=True, plugins="none"))
    casts = sum(n.op_type == "Cast" for n in plan.model.graph.node)
    assert typed.fp32_nodes == set()  # no FP16 rewrite: the file's own types (FP32 around the Q/DQ) are kept
    assert sum(n.op_type == "Cast" for n in typed.model.graph.node) == casts
    assert any("strongly typed INT8" in note for note in typed.notes)


@pytest.mark.parametrize(
    ("which", "precision", "message"),
    [
        ("float", "int8", "has no Q/DQ nodes: run `vitrt quantize"),
        ("onnxruntime", "int8", "was quantized for 'onnxruntime', not for TensorRT"),
        ("tensorrt", "fp16", "is quantized (Q/DQ nodes); build it with --precision int8"),
    ],
)
def test_int8_build_refuses_the_wrong_file(files: dict[str, Path], which: str, precision: str, message: str) -> None:
    with pytest.raises(EngineBuildError, match=message.replace("(", "\\(").replace(")", "\\)")):
        plan_build(files[which], BuildOptions(precision=precision, plugins="none"))


def test_build_cli_int8(files: dict[str, Path]) -> None:
    dry = vitrt_cli("build", str(files["tensorrt"]), "--precision", "int8", "--plugins", "none", "--dry-run")
    assert dry.returncode == 0, dry.stderr
    plan = json.loads(dry.stdout)
    assert plan["quantization"]["target"] == "tensorrt" and plan["fp32_nodes"] > 0
    bad = vitrt_cli("build", str(files["float"]), "--precision", "int8", "--dry-run")
    assert bad.returncode != 0 and "Traceback" not in bad.stderr
    assert bad.stderr.strip().splitlines()[-1].startswith("error: --precision int8 needs an explicit-quantization")
    from vitrt.engines.availability import tensorrt_problem

    if tensorrt_problem() is not None:  # without TensorRT the real build is one line and writes nothing
        out = files["tensorrt"].with_suffix(".plan")
        proc = vitrt_cli("build", str(files["tensorrt"]), "--precision", "int8", "--out", str(out))
        assert proc.returncode != 0 and proc.stderr.strip().splitlines()[-1].startswith("error:")
        assert not out.exists() and not Path(f"{out}.json").exists()


def test_manifest_round_trips_the_quantization(tmp_path: Path) -> None:
    from vitrt.engines.base import TensorSpec

    record = {"precision": "int8", "target": "tensorrt", "method": "QDQ", "calibration_sha256": "ab" * 32}
    manifest = EngineManifest(
        tensorrt_version="10.13.0",
        gpu_name="GPU",
        compute_capability="9.0",
        precision="int8",
        strongly_typed=False,
        profiles=[{"input": {"min": [1, 3, 32, 32], "opt": [8, 3, 32, 32], "max": [32, 3, 32, 32]}}],
        onnx_sha256="0" * 64,
        engine_sha256="1" * 64,
        engine_size=1,
        inputs=[TensorSpec("input", "float32", (None, 3, 32, 32))],
        outputs=[TensorSpec("logits", "float32", (None, 10))],
        quantization=record,
    )
    loaded = EngineManifest.load(manifest.save(tmp_path / "m.plan.json"))
    assert loaded.quantization == record and loaded == manifest
    data = manifest.to_dict()
    del data["quantization"]  # manifests written before INT8 support load as float engines
    assert EngineManifest.from_dict(data).quantization is None


@pytest.mark.tensorrt
@pytest.mark.gpu
def test_int8_engine_builds_and_meets_the_budget(files: dict[str, Path], tmp_path: Path) -> None:
    from vitrt.data.digits import digits_batch
    from vitrt.engines import load
    from vitrt.engines.builder import build_engine
    from vitrt.parity.budgets import budget_for
    from vitrt.parity.metrics import accuracy, check_budget, compare
    from vitrt.quantize.base import onnx_record, run_batched

    engine = tmp_path / "trt.int8.plan"
    result = build_engine(files["tensorrt"], engine, BuildOptions(precision="int8", batch="1:8:32"))
    manifest = result.manifest
    assert manifest.precision == "int8" and manifest.quantization == onnx_record(onnx.load(files["tensorrt"]))
    assert EngineManifest.load(result.manifest_path).quantization == manifest.quantization
    backend = load(engine, backend="tensorrt")
    assert backend.metadata is not None
    images, labels = digits_batch(backend.metadata, "test", limit=256)
    fp32 = run_batched(load(files["float"], backend="onnxruntime").infer, images, 32)
    int8 = run_batched(backend.infer, images, 32)
    comparison = compare("tensorrt-int8", "logits", fp32, int8)
    comparison.accuracy_drop = accuracy(fp32, labels) - accuracy(int8, labels)
    check_budget(comparison, budget_for(NAME, "int8"))
    assert comparison.passed, comparison.failures
