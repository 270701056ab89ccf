"""`vitrt triton-repo --onnx-backend openvino`: a model for Triton's OpenVINO backend from a portable export.

Checked like the other forms: config.pbtxt parsed with Triton's own schema, the files the backend reads (the IR
`model.xml` + `model.bin`), the IR's input/output names and shapes against the config, and the IR's answers
against ONNX Runtime on the portable file within the FP32 budget. The tritonserver of the nvidia-pytriton wheel has
no OpenVINO backend, so the real server is checked to stop at that missing library only (test_real_server.py).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

pytest.importorskip("torch")
ov = pytest.importorskip("openvino", reason="the openvino extra converts the ONNX file to OpenVINO IR")
export = pytest.importorskip("vitrt.export")

from vitrt.cli import main  # noqa: E402
from vitrt.errors import VitrtError  # noqa: E402
from vitrt.parity.budgets import default_budget  # noqa: E402
from vitrt.triton import RepositoryOptions, build_repository  # noqa: E402

MODEL = "ca_digits"


@pytest.fixture(scope="module")
def portable(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("openvino_repo") / f"{MODEL}.onnx"
    export.export_zoo_model(MODEL, path, validate=False)
    return path


def test_openvino_form_is_an_ir_triton_accepts(portable: Path, tmp_path: Path, parse_config: Callable) -> None:
    options = RepositoryOptions(
        onnx_backend="openvino",
        max_batch_size=8,
        backend_options={"precision": "bf16", "threads": 2, "streams": 1, "performance_hint": "throughput"},
    )
    report = build_repository([portable], tmp_path / "repo", options)
    model = report.models[0]
    assert (model.name, model.backend, model.kind, model.max_batch_size) == (MODEL, "openvino", "KIND_CPU", 8)
    assert model.files == ["config.pbtxt", "1/model.xml", "1/model.bin", "labels.txt"]
    assert "OpenVINO backend" in report.image_reason
    assert any("OpenVINO IR was written by OpenVINO" in note for note in report.notes)

    config = parse_config(tmp_path / "repo" / MODEL / "config.pbtxt")
    assert config.backend == "openvino" and not config.platform
    assert config.instance_group[0].kind == 2  # KIND_CPU
    parameters = {key: value.string_value for key, value in config.parameters.items()}
    assert parameters == {
        "HINT_BF16": "YES",
        "INFERENCE_NUM_THREADS": "2",
        "NUM_STREAMS": "1",
        "PERFORMANCE_HINT": "THROUGHPUT",
    }
    # What the backend checks at load: the IR's tensor names, and dims beyond the batch dimension.
    ir = ov.Core().read_model(str(tmp_path / "repo" / MODEL / "1" / "model.xml"))
    for configured, port in ((config.input[0], ir.inputs[0]), (config.output[0], ir.outputs[0])):
        assert configured.name in port.get_names()
        shape = port.get_partial_shape()
        assert shape[0].is_dynamic and [d.get_length() for d in list(shape)[1:]] == list(configured.dims)
    assert not any(op.get_type_name().startswith("Vitrt") for op in ir.get_ops())  # the vitrt nodes were inlined


def test_ir_answers_like_the_portable_file(portable: Path, tmp_path: Path) -> None:
    import onnxruntime as ort

    build_repository([portable], tmp_path / "repo", RepositoryOptions(onnx_backend="openvino"))
    compiled = ov.Core().compile_model(
        str(tmp_path / "repo" / MODEL / "1" / "model.xml"), "CPU", {"INFERENCE_PRECISION_HINT": "f32"}
    )
    x = np.random.default_rng(0).standard_normal((5, 3, 32, 32)).astype(np.float32)
    got = compiled(x)[compiled.outputs[0]]
    session = ort.InferenceSession(str(portable), providers=["CPUExecutionProvider"])
    expected = session.run(None, {"input": x})[0]
    budget = default_budget("fp32")
    assert float(np.abs(got - expected).max()) <= budget.max_abs
    assert (got.argmax(1) == expected.argmax(1)).all()


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"backend_options": {"precision": "fp16"}}, "fp32 or bf16"),
        ({"backend_options": {"cache": True}}, "unknown --backend-option 'cache'"),
        ({"backend_options": {"threads": 0}}, "threads must be a positive integer"),
        ({"backend_options": {"streams": "many"}}, "streams must be"),
        ({"device": "gpu"}, "CPUs only"),
        ({"runtime": "vitrt"}, "--vitrt-backend openvino"),
    ],
)
def test_what_the_openvino_backend_cannot_do_is_refused(
    portable: Path, tmp_path: Path, changes: dict[str, Any], message: str
) -> None:
    with pytest.raises(VitrtError, match=message):
        build_repository([portable], tmp_path / "repo", RepositoryOptions(onnx_backend="openvino", **changes))
    assert not (tmp_path / "repo").exists()


def test_cli_writes_the_openvino_form(portable: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    args = ["triton-repo", str(portable), "--out", str(tmp_path / "repo"), "--onnx-backend", "openvino"]
    with pytest.raises(SystemExit) as ok:
        main([*args, "--backend-option", "precision=bf16"])
    assert ok.value.code == 0
    assert f"{MODEL}: openvino KIND_CPU max_batch_size=8" in capsys.readouterr().out
    with pytest.raises(SystemExit) as bad:
        main([*args, "--force", "--backend-option", "precision=fp16"])
    assert bad.value.code != 0
    err = capsys.readouterr().err
    assert err.startswith("error: Triton's OpenVINO backend runs precision fp32 or bf16") and "Traceback" not in err
