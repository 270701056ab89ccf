"""`vitrt parity` with the OpenVINO backend: precision selection, the per-model BF16/FP16 budgets of the digits
demo models (checked on all 450 labelled held-out digits), and which ops ran in which precision in the report.

ca_digits (the cheapest export) runs in the default suite; the other demo models run under `make test-all`.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

pytest.importorskip("openvino")

from vitrt.cli import main
from vitrt.engines.openvino import device_precision_problem
from vitrt.errors import VitrtError
from vitrt.models import list_models
from vitrt.parity import MODEL_BUDGETS, budget_for, run_parity

DEMO = "ca_digits"
DEMOS = [pytest.param(n, marks=() if n == DEMO else pytest.mark.slow) for n in list_models(with_weights=True)]


def _need(precision: str) -> None:
    problem = device_precision_problem(precision)
    if problem is not None:
        pytest.skip(problem.split(";")[0])


def test_every_digits_demo_model_has_explicit_reduced_precision_budgets() -> None:
    for name in list_models(with_weights=True):
        for precision in ("bf16", "fp16"):
            budget = MODEL_BUDGETS[(name, precision)]
            assert budget.min_top1_agreement >= 0.99 and budget.max_accuracy_drop <= 0.005
            assert budget_for(name, precision) is budget
            assert budget_for(name, precision, real_inputs=False) is not budget  # random inputs: the default


@pytest.mark.parametrize("precision", ["bf16", "fp16"])
@pytest.mark.parametrize("name", DEMOS)
def test_demo_model_meets_its_budget_on_openvino(name: str, precision: str, portable) -> None:
    _need(precision)
    report = run_parity(
        name, portable(name), backends=["openvino"], precision=precision, inputs="demo-digits", n=None, device="cpu"
    )
    assert report.budget == MODEL_BUDGETS[(name, precision)]
    assert report.passed, report.failures()
    (comparison,) = report.comparisons
    assert report.n == 450 and comparison.top1_agreement is not None and comparison.top1_agreement >= 0.99
    assert comparison.accuracy_drop is not None and comparison.accuracy_drop <= 0.005
    (summary,) = report.backends
    hint = "bf16" if precision == "bf16" else "f16"
    assert summary.runtime_precisions and hint in summary.runtime_precisions
    if precision == "fp16":  # the default keep_fp32 ("auto") pins LayerNorm to FP32 at fp16
        assert "MVN" in summary.runtime_precisions["f32"] and "MVN" not in summary.runtime_precisions[hint]


def test_cli_parity_with_torch_onnxruntime_openvino(portable, tmp_path: Path, capsys) -> None:
    precision = "bf16" if device_precision_problem("bf16") is None else "fp32"
    report = tmp_path / "report"
    argv = ["parity", "--model", DEMO, "--artifact", str(portable(DEMO)), "--backends", "torch,onnxruntime,openvino"]
    argv += ["--precision", precision, "--inputs", "demo-digits", "--n", "64", "--device", "cpu"]
    argv += ["--openvino-option", "cache=false", "--report", str(report)]
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    out = capsys.readouterr().out
    assert exit_info.value.code in (0, None) and "parity: all backends within budget" in out
    data = json.loads(report.with_suffix(".json").read_text())
    assert [b["name"] for b in data["backends"]] == ["onnxruntime", "openvino"]
    ov = data["backends"][1]
    assert f", {precision}" in ov["description"] and ov["runtime_precisions"]
    assert data["budget"] == budget_for(DEMO, precision).to_dict()
    markdown = report.with_suffix(".md").read_text()
    assert "## Runtime precisions: openvino" in markdown and "| MVN |" in markdown
    if precision != "fp32":
        assert "onnxruntime runs fp32: it is checked against the fp32 budget" in data["notes"]


def test_per_block_runs_openvino_itself(portable) -> None:
    report = run_parity(DEMO, portable(DEMO), backends=["openvino"], inputs="demo-digits", n=8, per_block=True)
    (blocks,) = report.per_block
    assert blocks.backend == "openvino" and blocks.rows and blocks.first_divergent is None
    assert max(row.max_abs for row in blocks.rows) < 1e-3  # fp32: OpenVINO's own block outputs, not ORT's


def test_parity_refuses_bad_backend_and_precision_choices(portable) -> None:
    with pytest.raises(VitrtError, match="choose from torch, onnxruntime, openvino, tensorrt"):
        run_parity(DEMO, portable(DEMO), backends=["openvin"], n=4)
    with pytest.raises(VitrtError, match="check bf16 with --backends openvino"):
        run_parity(DEMO, portable(DEMO), backends=["tensorrt"], precision="bf16", n=4)
    with pytest.raises(VitrtError, match="unknown precision 'int4'"):
        run_parity(DEMO, portable(DEMO), backends=["openvino"], precision="int4", n=4)
