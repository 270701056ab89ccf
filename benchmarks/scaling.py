"""Cost against resolution: every linear-attention family's `_t` model against timm's softmax baselines.

    python benchmarks/scaling.py                                    # the committed result (~30-40 min, 2 cores)
    python benchmarks/scaling.py --models agent_deit_t --sizes 224,448 --duration 1   # a quick look

One `vitrt.bench.run_bench` grid: the models and the baselines at 224/448/672/896 px, batch 1, ONNX Runtime and
OpenVINO (fp32 by default), measured interleaved (every round visits every configuration), every row checked against
PyTorch fp32, plus an ONNX Runtime profile per model and resolution that splits the time into attention core,
attention projections, MLP, norms and the rest. A resolution a family cannot take (Swin-style windows) stays in the
table as a skipped row with the model's own reason.

Writes benchmarks/results/scaling.json (the bench.json schema, `vitrt.bench/1`, plus a `summary`), scaling.md and
scaling.png (latency against resolution, log-log, one panel per runtime, fitted exponents in the legend).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from vitrt.bench import BenchResult, run_bench
from vitrt.bench.plots import latency_vs_resolution
from vitrt.bench.profile import split_exponents
from vitrt.bench.report import FIT_FROM_PX, to_markdown

RESULTS = Path(__file__).resolve().parent / "results"
# One `_t` model per linear-attention family; flatten on PVT (flatten_swin_t's 12x12 stage-3 softmax windows tile
# only 224 px). The swin/pvt/mlla models are hierarchical, so they are paired with Swin-T, the DeiT ones with DeiT-T.
MODELS = ("agent_deit_t", "inline_deit_t", "ca_deit_t", "flatten_pvt_t", "mlla_t")
BASELINES = ("deit_tiny_patch16_224", "swin_tiny_patch4_window7_224")
SIZES = "224,448,672,896"
TARGET_EXPONENT = 1.15


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--models", nargs="+", default=list(MODELS))
    parser.add_argument("--baselines", nargs="*", default=list(BASELINES))
    parser.add_argument("--sizes", default=SIZES, help="comma list of resolutions (px)")
    parser.add_argument("--backends", default="onnxruntime,openvino")
    parser.add_argument("--precisions", default="fp32")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--duration", type=float, default=2.0, help="measured seconds per configuration")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--n", type=int, default=2, help="random parity inputs per configuration")
    parser.add_argument("--out", type=Path, default=RESULTS, help="directory for scaling.{json,md,png}")
    parser.add_argument("--name", default="scaling", help="file stem of the results")
    args = parser.parse_args(argv)

    result = run_bench(
        args.models,
        baseline=args.baselines or None,
        backends=args.backends,
        precisions=args.precisions,
        batch="1",
        img_size=args.sizes,
        threads=args.threads,
        warmup=1,
        duration=args.duration,
        rounds=args.rounds,
        n=args.n,
        profile=True,
        plots=False,
    )
    summary = summarize(result)
    args.out.mkdir(parents=True, exist_ok=True)
    data = result.to_dict()
    data["summary"] = summary
    (args.out / f"{args.name}.json").write_text(json.dumps(data, indent=2) + "\n")
    (args.out / f"{args.name}.md").write_text(markdown(result, summary))
    if result.measured and len({r.img_size for r in result.measured}) > 1:
        latency_vs_resolution(
            result,
            args.out / f"{args.name}.png",
            by_backend=True,
            title="Latency against resolution, batch 1 (solid: linear attention, dashed: softmax baselines)",
        )
    print(f"wrote {args.out / args.name}.{{json,md,png}}")
    return 130 if result.interrupted else 0


def _baseline_for(model: str, baselines: list[str]) -> str | None:
    """The softmax model of the same shape: DeiT-T for a DeiT backbone, Swin-T for the hierarchical ones."""
    from vitrt.models import get_spec

    if not baselines:
        return None
    try:
        backbone = get_spec(model).backbone
    except Exception:  # a baseline or an unknown name: no pairing
        return baselines[0]
    wanted = "deit" if backbone == "deit" else "swin"
    return next((b for b in baselines if b.startswith(wanted)), baselines[0])


def summarize(result: BenchResult) -> list[dict[str, Any]]:
    """Per model: resolutions it takes, exponent per runtime, crossover against its baseline, the cost split."""
    baselines = list(dict.fromkeys(r.model for r in result.rows if r.role == "baseline"))
    models = list(dict.fromkeys(r.model for r in result.rows))
    out = []
    for model in models:
        rows = [r for r in result.rows if r.model == model]
        role = rows[0].role
        sizes = sorted({r.img_size for r in rows if r.status == "ok"})
        unsupported = {
            r.img_size: r.reason for r in rows if r.status in ("skipped", "failed") and r.backend == "onnxruntime"
        }
        fits = {
            f"{f['backend']} {f['precision']}": {"exponent": f["exponent_tokens"], "range": f["exponent_range"]}
            for f in result.scaling
            if f["model"] == model
        }
        entry: dict[str, Any] = {
            "model": model,
            "role": role,
            "family": _family(model),
            "sizes": sizes,
            "unsupported": {str(k): v for k, v in sorted(unsupported.items())},
            "exponents": fits,
        }
        if role == "model":
            entry["target_exponent"] = TARGET_EXPONENT
            entry["target_met"] = bool(fits) and all(f["exponent"] <= TARGET_EXPONENT for f in fits.values())
            base = _baseline_for(model, baselines)
            entry["baseline"] = base
            entry["crossovers"] = {
                f"{c['backend']} {c['precision']}": {
                    "crossover_img_size": c["crossover_img_size"],
                    "speedup_by_size": c["speedup_by_size"],
                }
                for c in result.crossovers
                if c["model"] == model and c["baseline"] == base
            }
        splits = [s for s in result.cost_split if s["model"] == model]
        if splits:
            largest = max(splits, key=lambda s: s["img_size"])
            entry["cost_split_at"] = largest["img_size"]
            entry["shares"] = {c: v["share"] for c, v in largest["categories"].items()}
            entry["part_exponents"] = split_exponents(splits, FIT_FROM_PX)
        fastest = _fastest(result, model)
        if fastest:
            entry["fastest_at_largest"] = fastest
        out.append(entry)
    return out


def _family(model: str) -> str:
    from vitrt.models import get_spec

    try:
        return str(get_spec(model).family)
    except Exception:  # a timm baseline
        return "softmax (timm)"


def _fastest(result: BenchResult, model: str) -> dict[str, Any] | None:
    rows = [r for r in result.measured if r.model == model]
    if not rows:
        return None
    size = max(r.img_size for r in rows)
    best = min((r for r in rows if r.img_size == size), key=lambda r: r.latency_ms["median"] if r.latency_ms else 0)
    assert best.latency_ms is not None
    return {"img_size": size, "backend": best.backend, "precision": best.precision, "ms": best.latency_ms["median"]}


def markdown(result: BenchResult, summary: list[dict[str, Any]]) -> str:
    runtimes = sorted({f"{r.backend} {r.precision}" for r in result.measured})
    lines = [
        "# Cost against resolution: linear attention vs softmax",
        "",
        f"Produced by `python benchmarks/scaling.py` (one `vitrt bench` grid). Target: every linear-attention "
        f"family's cost exponent in tokens <= {TARGET_EXPONENT} between {FIT_FROM_PX} and the largest resolution "
        "(exponent = slope of log median latency against log tokens; 1.0 linear, 2.0 quadratic).",
        "",
        "| family | model | resolutions | "
        + " | ".join(f"exponent {rt}" for rt in runtimes)
        + " | target | baseline | "
        + " | ".join(f"faster from ({rt})" for rt in runtimes)
        + " | attention / MLP / rest at largest px |",
        "|---|---|---|" + "---:|" * len(runtimes) + "---|---|" + "---:|" * len(runtimes) + "---|",
    ]
    for entry in summary:
        exps = " | ".join(_exp(entry["exponents"].get(rt)) for rt in runtimes)
        shares = entry.get("shares")
        split = ""
        if shares:
            attention = shares["attention core"] + shares["attention projections"]
            rest = 1 - attention - shares["mlp"]
            split = f"{100 * attention:.0f}% / {100 * shares['mlp']:.0f}% / {100 * rest:.0f}%"
        sizes = ", ".join(map(str, entry["sizes"])) or "none"
        if entry["unsupported"]:
            sizes += " (not " + ", ".join(entry["unsupported"]) + ")"
        if entry["role"] == "model":
            cross = " | ".join(_cross(entry["crossovers"].get(rt)) for rt in runtimes)
            met = "met" if entry["target_met"] else "missed"
            base = entry["baseline"] or ""
        else:
            cross = " | ".join("" for _ in runtimes)
            met, base = "(baseline)", ""
        lines.append(
            f"| {entry['family']} | {entry['model']} | {sizes} | {exps} | {met} | {base} | {cross} | {split} |"
        )
    lines += [
        "",
        "Where the rest of the cost goes: the per-part exponents and shares below (ONNX Runtime profile). A part "
        "whose exponent is above 1 (e.g. a softmax core, or FFT padding) is what bends the total curve.",
        "",
        "![latency against resolution](scaling.png)",
        "",
    ]
    full = "#" + to_markdown(result, "Full grid").replace("\n## ", "\n### ")  # a section of this file
    return "\n".join(lines) + "\n" + full


def _exp(fit: dict[str, Any] | None) -> str:
    return "" if fit is None else f"{fit['exponent']:.2f}"


def _cross(cross: dict[str, Any] | None) -> str:
    if cross is None:
        return ""
    size = cross["crossover_img_size"]
    return f"{size} px" if size is not None else "not in range"


if __name__ == "__main__":
    sys.exit(main())
