"""Several models and baselines in one grid, the cost split, plan mode and the scaling script (digits models)."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("torch")

from vitrt.bench import BenchInputError, run_bench
from vitrt.bench.profile import CATEGORIES, categorize, cost_split, split_exponents

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(
    ("name", "category"),
    [
        ("/blocks/blocks.3/attn/VitrtAgentAttention/MatMul_2", "attention core"),
        ("/blocks/blocks.3/attn/MatMul", "attention core"),
        ("/blocks/blocks.3/attn/qkv/MatMul", "attention projections"),
        ("/layers/layers.0/blocks/blocks.1/attn/proj/MatMul", "attention projections"),
        ("/blocks/blocks.0/mlp/fc1/MatMul", "mlp"),
        ("/blocks/blocks.0/norm1/LayerNormalization", "norm"),
        ("/blocks/blocks.0/Add_1", "other"),
        ("/layers/layers.1/downsample/norm/LayerNormalization", "other"),
        ("/patch_embed/proj/Conv", "other"),
        ("/head/Gemm", "other"),
        ("/Where", "other"),
        ("BiasGelu_token_7", "unattributed"),
    ],
)
def test_node_names_map_to_parts_of_the_network(name: str, category: str) -> None:
    calls = {"/blocks/blocks.3/attn/VitrtAgentAttention"}
    assert categorize(name, calls) == category


def _digits_onnx(tmp_path: Path, name: str = "agent_digits") -> Path:
    from vitrt.bench import sources

    prepared = sources.prepare(name, "zoo", 32)
    assert prepared.onnx is not None
    return prepared.onnx


def test_cost_split_attributes_the_profile(tmp_path: Path) -> None:
    split = cost_split(_digits_onnx(tmp_path), batch=2, threads=1, runs=3)
    cats = split["categories"]
    assert set(cats) == set(CATEGORIES)
    assert sum(c["share"] for c in cats.values()) == pytest.approx(1.0, abs=1e-3)
    # The vitrt attention op's inlined body, the MLPs and the projections all show up by name.
    assert cats["attention core"]["ms"] > 0 and cats["mlp"]["ms"] > 0 and cats["attention projections"]["ms"] > 0
    assert cats["unattributed"]["share"] < 0.2
    assert split["total_kernel_ms"] > 0 and split["runs"] == 3 and split["top_ops"]


def test_split_exponents_fit_each_part() -> None:
    def split(px: int, core: float, mlp: float) -> dict:
        cats = {c: {"ms": 0.0, "share": 0.0} for c in CATEGORIES}
        cats["attention core"]["ms"], cats["mlp"]["ms"] = core, mlp
        return {"img_size": px, "total_kernel_ms": core + mlp, "categories": cats}

    # core quadratic in tokens (x16 per 2x px), MLP linear (x4 per 2x px)
    fits = split_exponents([split(448, 1.0, 1.0), split(896, 16.0, 4.0)], 448)
    assert fits["attention core"] == pytest.approx(2.0) and fits["mlp"] == pytest.approx(1.0)
    assert 1.0 < fits["total"] < 2.0 and "norm" not in fits  # a part with no time has no exponent


def test_models_and_baseline_in_one_grid_with_cost_split(tmp_path: Path) -> None:
    out = tmp_path / "bench"
    result = run_bench(
        ["agent_digits", "ca_digits"],
        baseline="inline_digits",
        backends="onnxruntime",
        precisions="fp32",
        batch="1",
        img_size="32,64",
        iterations=2,
        rounds=2,
        n=2,
        profile=True,
        plots=True,
        out=out,
        progress=False,
    )
    report = json.loads((out / "bench.json").read_text())
    assert report["schema"] == "vitrt.bench/1" and report["source"] == "agent_digits,ca_digits"
    rows = report["rows"]
    assert {(r["model"], r["role"], r["img_size"]) for r in rows} == {
        (m, role, px)
        for m, role in (("agent_digits", "model"), ("ca_digits", "model"), ("inline_digits", "baseline"))
        for px in (32, 64)
    }
    assert all(r["status"] == "ok" and r["parity"]["passed"] for r in rows)
    # Each model against the baseline, and an exponent per model.
    assert {(c["model"], c["baseline"]) for c in report["crossovers"]} == {
        ("agent_digits", "inline_digits"),
        ("ca_digits", "inline_digits"),
    }
    assert {f["model"] for f in report["scaling"]} == {"agent_digits", "ca_digits", "inline_digits"}
    # One cost split per model and resolution, shares summing to one.
    splits = report["cost_split"]
    assert {(s["model"], s["img_size"]) for s in splits} == {(r["model"], r["img_size"]) for r in rows}
    for split in splits:
        assert sum(c["share"] for c in split["categories"].values()) == pytest.approx(1.0, abs=1e-3)
    md = (out / "bench.md").read_text()
    assert "## Where the time goes" in md and "attention core" in md
    # The recommendation is for the first model, not the comparisons.
    assert result.recommendation is not None
    assert "agent_digits" in result.recommendation["throughput"]["command"]
    assert (out / "latency_vs_resolution.png").stat().st_size > 0


def test_plan_prepares_and_estimates_without_measuring(tmp_path: Path) -> None:
    result = run_bench(
        "agent_digits",
        backends="torch,onnxruntime,tensorrt",
        precisions="fp32",
        batch="1,2",
        n=2,
        plan=True,
        out=tmp_path / "plan",
        progress=False,
    )
    planned = [r for r in result.rows if r.status == "planned"]
    assert {(r.backend, r.batch) for r in planned} == {(b, n) for b in ("torch", "onnxruntime") for n in (1, 2)}
    assert all(r.latency_ms is None and r.samples == 0 for r in planned)
    assert all(r.planned_s and r.planned_s > 0 and r.parity and r.parity["passed"] for r in planned)
    assert result.estimate_s == pytest.approx(sum(r.planned_s or 0 for r in planned), rel=1e-2)
    assert result.prepare_s is not None and result.prepare_s > 0
    report = json.loads((tmp_path / "plan" / "bench.json").read_text())
    assert {r["status"] for r in report["rows"]} == {"planned", "skipped"}
    assert any("plan only" in note for note in report["notes"])


def test_models_with_different_resolutions_need_img_size(tmp_path: Path) -> None:
    with pytest.raises(BenchInputError, match="--img-size"):
        run_bench(["agent_digits", "agent_deit_t"], backends="onnxruntime", out=tmp_path)


def test_cli_takes_several_models_and_plans(tmp_path: Path) -> None:
    proc = subprocess.run(
        [
            sys.executable, "-m", "vitrt", "bench", "agent_digits", "ca_digits",
            "--backends", "onnxruntime", "--precisions", "fp32", "--batch", "1", "--n", "2",
            "--plan", "--out", str(tmp_path / "cli"),
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert "plan: 2 of 2 configurations would be measured" in proc.stdout
    report = json.loads((tmp_path / "cli" / "bench.json").read_text())
    assert {r["model"] for r in report["rows"]} == {"agent_digits", "ca_digits"}


@pytest.mark.skipif(importlib.util.find_spec("matplotlib") is None, reason="matplotlib is not installed")
def test_scaling_script_writes_json_md_png(tmp_path: Path) -> None:
    proc = subprocess.run(
        [
            sys.executable, str(ROOT / "benchmarks" / "scaling.py"),
            "--models", "agent_digits", "--baselines", "inline_digits", "--sizes", "32,64",
            "--backends", "onnxruntime", "--duration", "0.2", "--rounds", "1", "--n", "2",
            "--out", str(tmp_path), "--name", "s",
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    data = json.loads((tmp_path / "s.json").read_text())
    assert data["schema"] == "vitrt.bench/1" and data["machine"]["cpu"] and data["versions"]["onnxruntime"]
    by_model = {entry["model"]: entry for entry in data["summary"]}
    model = by_model["agent_digits"]
    assert model["sizes"] == [32, 64] and model["baseline"] == "inline_digits"
    assert "onnxruntime fp32" in model["exponents"] and "onnxruntime fp32" in model["crossovers"]
    assert isinstance(model["target_met"], bool) and set(model["shares"]) == set(CATEGORIES)
    assert by_model["inline_digits"]["role"] == "baseline"
    md = (tmp_path / "s.md").read_text()
    assert "| agent | agent_digits | 32, 64 |" in md and "## Full grid" in md and "![latency" in md
    assert (tmp_path / "s.png").read_bytes()[:4] == b"\x89PNG"
