"""ONNX Runtime CPU vs PyTorch eager CPU latency of the exported vitrt models.

    python benchmarks/export_cpu.py                      # the _t model of every family/backbone
    python benchmarks/export_cpu.py --models agent_deit_t mlla_t --runs 30 --timm-baselines

For each model: export the portable flavour (validated against PyTorch, as `vitrt export` does), then time the eager
PyTorch model (op references) and the ONNX file in ONNX Runtime's CPU provider in the same process, interleaved, at
batch 1 and 8 with 2 threads each (median of >= 20 runs after warm-up). Where ONNX Runtime is not at least 1.5x
faster, an ONNX Runtime profile names the op types that take the time. Writes benchmarks/results/cpu_latency.json
and .md (machine, versions, date).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import numpy as np
import onnxruntime as ort
import torch

from vitrt import __version__
from vitrt.export import export_model
from vitrt.export.zoo import resolve_model
from vitrt.models import get_spec, list_models

RESULTS = Path(__file__).resolve().parent / "results"
TARGET_SPEEDUP = 1.5
TIMM_BASELINES = ("deit_tiny_patch16_224", "swin_tiny_patch4_window7_224")


def tiny_models() -> list[str]:
    """The `_t` model of every family/backbone in the registry."""
    return [name for name in list_models() if name.endswith("_t")]


def median_ms(fn, runs: int, warmup: int) -> float:
    for _ in range(warmup):
        fn()
    samples = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - start) * 1e3)
    return statistics.median(samples)


def ort_session(path: Path, threads: int, profile: bool = False) -> ort.InferenceSession:
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.log_severity_level = 3
    if profile:
        options.enable_profiling = True
        options.profile_file_prefix = str(path.with_suffix(""))
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def hot_ops(path: Path, feeds: dict, threads: int, top: int = 3) -> list[tuple[str, float]]:
    """The op types with the largest share of ONNX Runtime kernel time (one profiled run after warm-up)."""
    session = ort_session(path, threads, profile=True)
    for _ in range(3):
        session.run(None, feeds)
    profile = Path(session.end_profiling())
    trace = json.loads(profile.read_text())
    profile.unlink()  # read once; never left beside the model or in the working directory
    times: Counter[str] = Counter()
    for event in trace:
        if event.get("cat") == "Node" and event.get("name", "").endswith("_kernel_time"):
            times[event["args"]["op_name"]] += event["dur"]
    total = sum(times.values()) or 1
    return [(op, count / total) for op, count in times.most_common(top)]


def bench_model(name: str, model: torch.nn.Module, path: Path, args: argparse.Namespace) -> list[dict]:
    meta = getattr(model, "vitrt_metadata", None)
    input_size = meta.input_size if meta is not None else (3, 224, 224)
    session = ort_session(path, args.threads)
    input_name = session.get_inputs()[0].name
    rows = []
    for batch in args.batches:
        x = torch.randn((batch, *input_size), generator=torch.Generator().manual_seed(batch))
        feeds = {input_name: x.numpy()}
        with torch.inference_mode():
            eager = model(x)
            eager = eager[0] if isinstance(eager, tuple | list) else eager
            onnx_out = session.run(None, feeds)[0]
            max_abs = float(np.abs(onnx_out - eager.numpy()).max())

            def run_eager(x=x):
                model(x)

            def run_ort(feeds=feeds):
                session.run(None, feeds)

            # Interleave the two measurements so drifting machine load hits both alike.
            eager_ms, ort_ms = [], []
            for _ in range(args.rounds):
                eager_ms.append(median_ms(run_eager, args.runs // args.rounds, args.warmup))
                ort_ms.append(median_ms(run_ort, args.runs // args.rounds, args.warmup))
        eager_median, ort_median = statistics.median(eager_ms), statistics.median(ort_ms)
        speedup = eager_median / ort_median
        row = {
            "model": name,
            "family": getattr(meta, "family", "timm"),
            "backbone": getattr(meta, "backbone", name.split("_")[0]),
            "batch": batch,
            "eager_ms": round(eager_median, 2),
            "onnxruntime_ms": round(ort_median, 2),
            "speedup": round(speedup, 2),
            "meets_target": speedup >= TARGET_SPEEDUP,
            "max_abs_vs_eager": max_abs,
        }
        if speedup < TARGET_SPEEDUP:
            row["onnxruntime_hot_ops"] = [[op, round(share, 3)] for op, share in hot_ops(path, feeds, args.threads)]
        rows.append(row)
        print(
            f"{name:24s} batch {batch}: eager {eager_median:8.2f} ms  onnxruntime {ort_median:8.2f} ms  x{speedup:.2f}",
            flush=True,
        )
    return rows


def export_vitrt(name: str, workdir: Path) -> tuple[torch.nn.Module, Path, dict]:
    model, _ = resolve_model(name)
    path = workdir / f"{name}.onnx"
    report = export_model(model, path)
    return model, path, {"exporter": report.exporter, "opset": report.opset, "export_s": report.timings["total"]}


def export_timm(name: str, workdir: Path) -> tuple[torch.nn.Module, Path, dict]:
    import timm

    model = timm.create_model(name).eval()
    path = workdir / f"{name}.onnx"
    report = export_model(model, path, input_size=(3, 224, 224))
    return model, path, {"exporter": report.exporter, "opset": report.opset, "export_s": report.timings["total"]}


def machine() -> dict:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {"cpu": cpu, "logical_cores": os.cpu_count(), "platform": platform.platform()}


def write_markdown(result: dict, path: Path) -> None:
    lines = [
        "# ONNX Runtime vs PyTorch eager on CPU",
        "",
        f"Date {result['date']}; {result['machine']['cpu']} ({result['machine']['logical_cores']} logical cores); "
        f"{result['threads']} threads for both runtimes; median of {result['runs']} runs after warm-up, measured "
        "interleaved in one process. " + ", ".join(f"{k} {v}" for k, v in result["versions"].items()) + ".",
        "",
        f"Target: ONNX Runtime at least {TARGET_SPEEDUP}x faster than eager. Speed-up = eager / ONNX Runtime.",
        "",
        "| model | family | backbone | batch | eager ms | ONNX Runtime ms | speed-up | target | max abs vs eager |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for row in result["rows"]:
        lines.append(
            f"| {row['model']} | {row['family']} | {row['backbone']} | {row['batch']} | {row['eager_ms']:.2f} | "
            f"{row['onnxruntime_ms']:.2f} | {row['speedup']:.2f}x | {'met' if row['meets_target'] else 'missed'} | "
            f"{row['max_abs_vs_eager']:.1e} |"
        )
    missed = [row for row in result["rows"] if not row["meets_target"]]
    lines += ["", "## Where the target is missed", ""]
    if not missed:
        lines.append("Every model meets the target.")
    for row in missed:
        hot = ", ".join(f"{op} {share:.0%}" for op, share in row["onnxruntime_hot_ops"])
        lines.append(f"* {row['model']} batch {row['batch']}: x{row['speedup']:.2f}; ONNX Runtime kernel time: {hot}.")
    if result.get("notes"):
        lines += ["", "## Notes", "", *[f"* {note}" for note in result["notes"]]]
    path.write_text("\n".join(lines) + "\n")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", nargs="*", help="zoo names (default: the _t model of every family/backbone)")
    parser.add_argument("--batches", nargs="*", type=int, default=[1, 8])
    parser.add_argument("--runs", type=int, default=30, help="timed runs per runtime and batch (>= 20)")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds the runs are split into")
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--timm-baselines", action="store_true", help=f"also time {', '.join(TIMM_BASELINES)}")
    parser.add_argument("--note", action="append", default=[], help="a note for the Markdown report")
    parser.add_argument("--out", type=Path, default=RESULTS / "cpu_latency")
    parser.add_argument(
        "--extend",
        type=Path,
        help="keep the rows of an earlier result JSON (same machine) for models not measured in this run",
    )
    args = parser.parse_args(argv)
    if args.runs < 20:
        parser.error("--runs must be at least 20")
    names = args.models or tiny_models()
    for name in names:
        get_spec(name)
    torch.set_num_threads(args.threads)
    rows, exports = [], {}
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        jobs = [(name, export_vitrt) for name in names]
        if args.timm_baselines:
            jobs += [(name, export_timm) for name in TIMM_BASELINES]
        for name, export in jobs:
            torch.manual_seed(0)
            model, path, info = export(name, workdir)
            exports[name] = info
            rows.extend(bench_model(name, model, path, args))
    if args.extend is not None:
        earlier = json.loads(args.extend.read_text())
        measured = {row["model"] for row in rows}
        rows = [row for row in earlier["rows"] if row["model"] not in measured] + rows
        exports = {**{k: v for k, v in earlier["exports"].items() if k not in measured}, **exports}
    result = {
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "machine": machine(),
        "versions": {
            "vitrt": __version__,
            "python": sys.version.split()[0],
            "torch": torch.__version__,
            "onnxruntime": ort.__version__,
            "numpy": np.__version__,
        },
        "threads": args.threads,
        "runs": args.runs,
        "target_speedup": TARGET_SPEEDUP,
        "exports": exports,
        "rows": rows,
        "notes": args.note,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.with_suffix(".json").write_text(json.dumps(result, indent=2) + "\n")
    write_markdown(result, args.out.with_suffix(".md"))
    print(f"wrote {args.out.with_suffix('.json')} and {args.out.with_suffix('.md')}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
