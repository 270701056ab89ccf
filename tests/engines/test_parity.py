"""`vitrt parity` on a small exported ViT: metrics, budgets, labelled inputs, reports and per-block localisation."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
from tinyvit import TinyViT, perturbed_onnx, tiny_metadata

from vitrt.cli import main
from vitrt.data.digits import digit_to_pil, load_digits_split
from vitrt.errors import VitrtError
from vitrt.parity import DEFAULT_BUDGETS, run_parity
from vitrt.parity.metrics import compare


def test_faithful_export_passes_with_a_report(tiny_vit: TinyViT, tiny_onnx: Path, tmp_path: Path) -> None:
    report = run_parity(tiny_vit, tiny_onnx, n=24, batch_size=10, device="cpu", report=tmp_path / "out" / "tiny")
    assert report.passed and report.failures() == []
    assert report.n == 24 and report.batch_size == 10 and report.precision == "fp32"
    assert report.budget == DEFAULT_BUDGETS["fp32"]
    (c,) = report.comparisons
    assert c.backend == "onnxruntime" and c.output == "logits"
    assert c.max_abs < 1e-4 and c.cosine_min > 0.99999 and c.top1_agreement == 1.0 and c.top5_agreement == 1.0
    assert report.reference.accuracy is None  # random inputs carry no labels
    data = json.loads((tmp_path / "out" / "tiny.json").read_text())
    assert data["passed"] is True and data["comparisons"][0]["max_abs"] == c.max_abs
    markdown = (tmp_path / "out" / "tiny.md").read_text()
    assert markdown.startswith("# Parity report: tiny_vit_test — PASS")
    assert "| onnxruntime | logits |" in markdown


def test_demo_digits_report_accuracy_for_each_backend(tiny_vit: TinyViT, tiny_onnx: Path) -> None:
    report = run_parity(tiny_vit, tiny_onnx, inputs="demo-digits", n=60, device="cpu")
    assert report.n == 60 and report.inputs.startswith("demo digits")
    ref, ort_summary = report.reference, report.backends[0]
    assert ref.accuracy is not None and ref.accuracy == ort_summary.accuracy
    assert ref.top5_accuracy == ort_summary.top5_accuracy
    images, labels = load_digits_split("test")
    logits = tiny_vit(torch.from_numpy(_digits_inputs(60))).detach().numpy()
    assert ref.accuracy == pytest.approx(float(np.mean(logits.argmax(1) == labels[:60])))
    assert report.comparisons[0].accuracy_drop == 0.0


def _digits_inputs(n: int) -> np.ndarray:
    from vitrt.data.digits import digits_batch

    return digits_batch(tiny_metadata(), "test", limit=n)[0]


def test_image_folder_inputs_use_the_model_labels(tiny_vit: TinyViT, tiny_onnx: Path, tmp_path: Path) -> None:
    images, labels = load_digits_split("test")
    root = tmp_path / "folder"
    for digit in (3, 7):
        (root / str(digit)).mkdir(parents=True)
        for i in np.flatnonzero(labels == digit)[:3]:
            digit_to_pil(images[i]).save(root / str(digit) / f"{i}.png")
    (root / "7" / "broken.png").write_bytes(b"not a png")
    report = run_parity(tiny_vit, tiny_onnx, inputs=root, n=None, device="cpu")
    assert report.n == 6 and report.reference.accuracy is not None
    assert "skipped 1 unreadable file(s)" in report.notes
    assert report.passed


def test_corrupted_onnx_weight_is_localised_to_its_block(tiny_vit: TinyViT, tiny_onnx: Path, tmp_path: Path) -> None:
    broken = perturbed_onnx(tiny_onnx, tmp_path / "broken.onnx", "blocks.1.mlp.0.bias", 0.5)
    report = run_parity(tiny_vit, broken, n=16, device="cpu", per_block=True, report=tmp_path / "broken")
    assert not report.passed
    assert any("max abs" in f for f in report.failures())
    (blocks,) = report.per_block
    assert blocks.first_divergent == "blocks.1"
    rows = {row.block: row for row in blocks.rows}
    assert set(rows) == {"blocks.0", "blocks.1", "blocks.2"}
    assert rows["blocks.0"].rel < 1e-5 and not rows["blocks.0"].diverged
    assert rows["blocks.1"].rel > 1e-2 and rows["blocks.1"].diverged
    assert "first divergent block is blocks.1" in (tmp_path / "broken.md").read_text()


def test_changed_torch_weight_is_localised_to_its_block(tiny_vit: TinyViT, tiny_onnx: Path) -> None:
    reference = copy.deepcopy(tiny_vit)
    with torch.no_grad():
        reference.blocks[2].attn.proj.weight.mul_(1.5)
    report = run_parity(reference, tiny_onnx, n=16, device="cpu", per_block=True)
    assert not report.passed
    assert report.first_divergent_blocks() == {"onnxruntime": "blocks.2"}


def test_per_block_on_a_passing_export_finds_no_divergence(tiny_vit: TinyViT, tiny_onnx: Path) -> None:
    report = run_parity(tiny_vit, tiny_onnx, n=8, device="cpu", per_block=True)
    assert report.passed and report.per_block[0].first_divergent is None
    assert len(report.per_block[0].rows) == 3


def test_budget_overrides_apply(tiny_vit: TinyViT, tiny_onnx: Path) -> None:
    report = run_parity(tiny_vit, tiny_onnx, n=8, device="cpu", budget_overrides={"max_abs": 0.0})
    assert not report.passed and report.failures()[0].startswith("onnxruntime logits: max abs")
    loose = run_parity(tiny_vit, tiny_onnx, n=8, device="cpu", precision="fp16")
    assert loose.budget == DEFAULT_BUDGETS["fp16"]
    with pytest.raises(VitrtError, match="unknown budget field 'max_error'"):
        run_parity(tiny_vit, tiny_onnx, n=8, device="cpu", budget_overrides={"max_error": 1.0})


def test_metrics_on_known_arrays() -> None:
    ref = np.array([[3.0, 1.0, 0.0], [0.0, 2.0, 1.0]], dtype=np.float32)
    out = ref + np.array([[0.5, 0.0, 0.0], [0.0, 0.0, 1.5]], dtype=np.float32)
    c = compare("x", "logits", ref, out)
    assert c.max_abs == 0.5 * 3 and c.mean_abs == pytest.approx(2.0 / 6)
    assert c.max_rel == pytest.approx(0.75)  # sample 2: 1.5 / 2.0
    assert c.top1_agreement == 0.5 and c.top5_agreement == 1.0  # k = 3 classes: same sets
    assert c.cosine_min < c.cosine_mean < 1.0


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--model", "no_such_model", "--artifact", "{onnx}"], "unknown model 'no_such_model'"),
        (["--model", "x", "--artifact", "{tmp}/missing.onnx"], "artifact not found"),
        (["--model", "x", "--artifact", "{onnx}", "--backends", "torch"], "besides torch"),
        (["--model", "x", "--artifact", "{onnx}", "--backends", "tvm"], "unknown backend 'tvm'"),
        (
            ["--model", "x", "--artifact", "{tmp}/model.txt"],
            "must be an ONNX file, an OpenVINO IR (.xml) or a TensorRT engine",
        ),
    ],
)
def test_cli_errors_are_one_line(
    args: list[str], message: str, tiny_onnx: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "model.txt").write_text("x")
    argv = ["parity", *[a.format(onnx=tiny_onnx, tmp=tmp_path) for a in args]]
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and message in err[0]


def test_fixed_batch_export_pads_the_last_batch(tiny_vit: TinyViT, tiny_onnx: Path, tmp_path: Path) -> None:
    model = onnx.load(str(tiny_onnx))
    model.graph.input[0].type.tensor_type.shape.dim[0].dim_value = 4
    fixed = tmp_path / "fixed4.onnx"
    onnx.save(model, str(fixed))
    report = run_parity(tiny_vit, fixed, n=10, device="cpu")
    assert report.batch_size == 4 and report.n == 10 and report.passed
    with pytest.raises(VitrtError, match="fixed batch of 4; --batch-size 3 cannot run"):
        run_parity(tiny_vit, fixed, n=10, batch_size=3, device="cpu")
