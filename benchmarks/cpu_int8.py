"""FP32 vs INT8 (`vitrt quantize`) on the CPU runtimes: accuracy on the digits demo models, speed on the `_t` models.

    python benchmarks/cpu_int8.py            # every digits demo model x target, every family's _t model
    python benchmarks/cpu_int8.py --quick    # one digits model, one _t model, few runs (development)

Part 1, accuracy: every trained digits demo model is quantized for every target (onnxruntime static QDQ, openvino
NNCF, tensorrt explicit-quantization QDQ, the last run in ONNX Runtime since no GPU is needed to check its numbers),
calibrated on the digits training split, judged on the held-out digits: FP32 and INT8 top-1 accuracy, top-1
agreement, blocks the sensitivity search kept float, and FP32 vs INT8 latency on the target's CPU runtime.

Part 2, speed: each family's `_t` model with random weights, calibrated on random images (so the INT8 accuracy of
these rows means nothing; part 1 is the accuracy evidence), timed at batch 8 in one interleaved run against the
peers: PyTorch eager FP32 and BF16 autocast, ONNX Runtime FP32 and INT8, OpenVINO FP32, BF16 and INT8 (INT8 with
the non-quantized ops in FP32, and in BF16 as OpenVINO runs them by default on AMX CPUs). Targets from the quantize
issue: OpenVINO INT8 >= 2x eager BF16 autocast and >= 1.3x OpenVINO BF16.

Writes benchmarks/results/cpu_int8.json and .md (machine with CPU flags, versions, date).
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
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

RESULTS = Path(__file__).resolve().parent / "results"
TARGETS = ("onnxruntime", "openvino", "tensorrt")
DIGITS_MODELS = ("agent_digits", "flatten_digits", "inline_digits", "mlla_digits", "ca_digits")
SPEED_MODELS = ("agent_swin_t", "ca_deit_t", "flatten_swin_t", "inline_swin_t", "mlla_t")
TARGET_VS_EAGER_BF16 = 2.0
TARGET_VS_OPENVINO_BF16 = 1.3
CPU_FLAGS = ("avx2", "avx512f", "avx512_vnni", "avx_vnni", "avx512_bf16", "amx_bf16", "amx_int8", "avx512_fp16")


def interleaved_medians(fns: dict[str, Callable[[], Any]], runs: int, rounds: int, warmup: int) -> dict[str, float]:
    """Median ms per function; the runs are split into rounds that alternate between the functions."""
    for fn in fns.values():
        for _ in range(warmup):
            fn()
    samples: dict[str, list[float]] = {name: [] for name in fns}
    per_round = max(1, runs // rounds)
    for _ in range(rounds):
        for name, fn in fns.items():
            for _ in range(per_round):
                start = time.perf_counter()
                fn()
                samples[name].append((time.perf_counter() - start) * 1e3)
    return {name: statistics.median(values) for name, values in samples.items()}


def ort_backend(path: Path, threads: int) -> Any:
    from vitrt.engines.onnxruntime import OnnxRuntimeBackend

    return OnnxRuntimeBackend(path, providers=["CPUExecutionProvider"], intra_op_threads=threads)


def openvino_backend(path: Path, threads: int, precision: str = "fp32") -> Any:
    from vitrt.engines.openvino import OpenVINOBackend

    return OpenVINOBackend(path, precision=precision, threads=threads, cache=False)


def openvino_profile(path: Path, threads: int, batch: int, input_size: tuple[int, ...]) -> dict[str, Any]:
    """Where the OpenVINO INT8 model (float ops in BF16) spends its time: per-op counters, grouped by op kind.

    Groups: INT8 kernels (exec type i8), the attention bodies (nodes of a Vitrt*Attention call, float by design),
    standalone FakeQuantize and Reorder/Convert ops (quantization overhead that did not fuse), and the other float ops.
    """
    import openvino as ov

    core = ov.Core()
    config = {"INFERENCE_PRECISION_HINT": "bf16", "INFERENCE_NUM_THREADS": threads, "NUM_STREAMS": 1}
    compiled = core.compile_model(core.read_model(str(path)), "CPU", {**config, "PERF_COUNT": True})
    request = compiled.create_infer_request()
    x = np.random.default_rng(0).standard_normal((batch, *input_size), dtype=np.float32)
    for _ in range(2):
        request.infer([x])
    groups: dict[str, float] = {}
    for item in request.get_profiling_info():
        us = item.real_time.total_seconds() * 1e6
        if us <= 0:
            continue
        if "i8" in item.exec_type.lower():
            group = "int8 kernels"
        elif "/Vitrt" in item.node_name and "Attention/" in item.node_name:
            group = "attention bodies (float)"
        elif item.node_type in ("FakeQuantize", "Reorder", "Convert"):
            group = "FakeQuantize / Reorder / Convert"
        else:
            group = f"float {item.node_type}"
        groups[group] = groups.get(group, 0.0) + us
    total = sum(groups.values()) or 1.0
    top = sorted(groups.items(), key=lambda kv: -kv[1])[:6]
    return {"batch": batch, "share_percent": {k: round(100 * v / total, 1) for k, v in top}}


def digits_rows(name: str, workdir: Path, args: argparse.Namespace) -> list[dict[str, Any]]:
    from vitrt.export import export_zoo_model
    from vitrt.quantize import get_target, quantize

    source = workdir / f"{name}.onnx"
    export_zoo_model(name, source)
    rows = []
    for target in args.targets:
        chosen = get_target(target)
        out = workdir / f"{name}.{target}.int8{chosen.suffix}"
        started = time.perf_counter()
        result = quantize(
            source, calibration="demo-digits", n=args.calibration, holdout=args.holdout, target=target, out=out
        )
        seconds = time.perf_counter() - started
        rep = result.report
        if target == "openvino":
            fp32, int8, runtime = openvino_backend(source, args.threads), openvino_backend(out, args.threads), target
        else:
            fp32, int8 = ort_backend(source, args.threads), ort_backend(out, args.threads)
            runtime = "onnxruntime" if target == "onnxruntime" else "onnxruntime (TensorRT QDQ file)"
        assert fp32.metadata is not None
        x = np.random.default_rng(0).standard_normal((args.batch, *fp32.metadata.input_size), dtype=np.float32)
        ms = interleaved_medians(
            {"fp32": lambda b=fp32, x=x: b.infer(x), "int8": lambda b=int8, x=x: b.infer(x)},
            args.runs,
            args.rounds,
            args.warmup,
        )
        row = {
            "model": name,
            "target": target,
            "runtime": runtime,
            "batch": args.batch,
            "fp32_ms": round(ms["fp32"], 3),
            "int8_ms": round(ms["int8"], 3),
            "speedup": round(ms["fp32"] / ms["int8"], 2),
            "fp32_accuracy": rep.final.fp32_accuracy,
            "int8_accuracy": rep.final.int8_accuracy,
            "accuracy_drop": rep.final.accuracy_drop,
            "agreement": rep.final.agreement,
            "passed": rep.passed,
            "kept_float": rep.kept_float,
            "quantized_nodes": f"{rep.quantized_nodes}/{rep.quantizable_nodes}",
            "holdout": rep.final.n,
            "quantize_s": round(seconds, 1),
        }
        rows.append(row)
        print(
            f"{name:16s} {target:12s} acc {row['fp32_accuracy']:.2f} -> {row['int8_accuracy']:.2f} %, agreement "
            f"{row['agreement']:.1f} %, {ms['fp32']:.2f} -> {ms['int8']:.2f} ms ({seconds:.0f} s to quantize)",
            flush=True,
        )
    return rows


def speed_rows(name: str, workdir: Path, args: argparse.Namespace, notes: list[str]) -> list[dict[str, Any]]:
    from vitrt.engines.openvino import precision_problem, require_openvino
    from vitrt.export import export_model
    from vitrt.export.zoo import resolve_model
    from vitrt.quantize import quantize

    torch.manual_seed(0)
    model, _ = resolve_model(name)
    meta = model.vitrt_metadata
    source = workdir / f"{name}.onnx"
    export_model(model, source, validate=False)
    quantized: dict[str, Path] = {}
    seconds: dict[str, float] = {}
    for target, suffix in (("onnxruntime", ".onnx"), ("openvino", ".xml")):
        out = workdir / f"{name}.int8{suffix}"
        started = time.perf_counter()
        # Random weights and random calibration: the budget says nothing here, so it is not enforced.
        quantize(
            source, calibration="random", n=args.speed_calibration, holdout=16, target=target, out=out, force=True,
            search=False,
        )  # fmt: skip
        seconds[target] = time.perf_counter() - started
        quantized[target] = out
    x = torch.randn((args.batch, *meta.input_size), generator=torch.Generator().manual_seed(1))
    xn = x.numpy()

    def eager(bf16: bool) -> Callable[[], Any]:
        def run() -> Any:
            with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
                return model(x)

        return run

    fns: dict[str, Callable[[], Any]] = {"torch eager fp32": eager(False), "torch eager bf16 autocast": eager(True)}
    ort32, ort8 = ort_backend(source, args.threads), ort_backend(quantized["onnxruntime"], args.threads)
    fns["onnxruntime fp32"] = lambda: ort32.infer(xn)
    fns["onnxruntime int8"] = lambda: ort8.infer(xn)
    ov = require_openvino()
    capabilities = tuple(ov.Core().get_property("CPU", "OPTIMIZATION_CAPABILITIES"))
    has_bf16 = precision_problem("bf16", capabilities) is None
    backends = {"openvino fp32": (source, "fp32"), "openvino int8": (quantized["openvino"], "fp32")}
    if has_bf16:
        backends["openvino bf16"] = (source, "bf16")
        backends["openvino int8 (bf16 rest)"] = (quantized["openvino"], "bf16")
    elif "OpenVINO BF16 rows" not in " ".join(notes):
        notes.append("OpenVINO BF16 rows missing: this CPU lacks AVX512-BF16/AMX")
    for label, (path, precision) in backends.items():
        backend = openvino_backend(path, args.threads, precision)
        fns[label] = lambda b=backend: b.infer(xn)
    ms = interleaved_medians(fns, args.runs, args.rounds, args.warmup)
    eager_bf16 = ms["torch eager bf16 autocast"]
    ov_bf16 = ms.get("openvino bf16")
    rows = []
    for label, value in ms.items():
        runtime, _, precision = label.partition(" ")
        if label.startswith("torch eager"):
            runtime, precision = "torch eager", label.removeprefix("torch eager ")
        rows.append(
            {
                "model": name,
                "family": meta.family,
                "batch": args.batch,
                "runtime": runtime,
                "precision": precision,
                "ms": round(value, 2),
                "vs_eager_bf16": round(eager_bf16 / value, 2),
                "vs_openvino_bf16": round(ov_bf16 / value, 2) if ov_bf16 else None,
            }
        )
    best_int8 = min(v for k, v in ms.items() if k.startswith("openvino int8"))
    summary = {
        "model": name,
        "family": meta.family,
        "openvino_int8_ms": round(best_int8, 2),
        "vs_eager_bf16": round(eager_bf16 / best_int8, 2),
        "vs_openvino_bf16": round(ov_bf16 / best_int8, 2) if ov_bf16 else None,
        "quantize_s": {k: round(v, 1) for k, v in seconds.items()},
    }
    summary["meets_targets"] = summary["vs_eager_bf16"] >= TARGET_VS_EAGER_BF16 and (
        summary["vs_openvino_bf16"] is None or summary["vs_openvino_bf16"] >= TARGET_VS_OPENVINO_BF16
    )
    if has_bf16 and not summary["meets_targets"]:
        summary["profile"] = openvino_profile(quantized["openvino"], args.threads, args.batch, meta.input_size)
    timings = "  ".join(f"{k} {v:.1f}" for k, v in ms.items())
    print(
        f"{name:16s} {timings}  -> OpenVINO INT8 x{summary['vs_eager_bf16']} vs eager bf16, "
        f"x{summary['vs_openvino_bf16']} vs OpenVINO bf16",
        flush=True,
    )
    return rows + [{"summary": summary}]


def machine() -> dict[str, Any]:
    cpu, flags = platform.machine(), set()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            if key.strip() == "model name":
                cpu = value.strip()
            elif key.strip() == "flags":
                flags = set(value.split())
    except OSError:
        pass
    return {
        "cpu": cpu,
        "logical_cores": os.cpu_count(),
        "cpu_flags": [flag for flag in CPU_FLAGS if flag in flags],
        "platform": platform.platform(),
    }


def versions() -> dict[str, str]:
    import importlib.metadata as md

    found = {"python": sys.version.split()[0]}
    for package in ("vitrt", "torch", "onnx", "onnxruntime", "openvino", "nncf", "numpy"):
        try:
            found[package] = md.version(package)
        except md.PackageNotFoundError:
            continue
    return found


def write_markdown(result: dict[str, Any], path: Path) -> None:
    m = result["machine"]
    lines = [
        "# INT8 on CPU: `vitrt quantize` accuracy and speed",
        "",
        f"Date {result['date']}; {m['cpu']} ({m['logical_cores']} logical cores; {', '.join(m['cpu_flags'])}); "
        f"{result['threads']} threads for every runtime; medians of {result['runs']} runs per runtime after warm-up, "
        "interleaved in one process. " + ", ".join(f"{k} {v}" for k, v in result["versions"].items()) + ".",
        f"Command: `{result['command']}`.",
        "",
        "## Accuracy on the held-out digits (trained demo models)",
        "",
        f"Calibration: {result['calibration']} digits training images; budget: accuracy drop <= 0.5 pt and top-1 "
        "agreement >= 98 %. Latency: batch "
        f"{result['batch']} on the target's CPU runtime (tiny 32x32 models: mostly per-op overhead).",
        "",
        "| model | target | runtime | FP32 acc % | INT8 acc % | drop pt | agreement % | kept float | INT8 layers "
        "| FP32 ms | INT8 ms | speed-up | quantize s |",
        "|---|---|---|---:|---:|---:|---:|---|---|---:|---:|---:|---:|",
    ]
    for r in result["digits"]:
        lines.append(
            f"| {r['model']} | {r['target']} | {r['runtime']} | {r['fp32_accuracy']:.2f} | {r['int8_accuracy']:.2f} | "
            f"{r['accuracy_drop']:+.2f} | {r['agreement']:.2f} | {', '.join(r['kept_float']) or '–'} | "
            f"{r['quantized_nodes']} | {r['fp32_ms']:.2f} | {r['int8_ms']:.2f} | {r['speedup']:.2f}x | "
            f"{r['quantize_s']:.0f} |"
        )
    lines += [
        "",
        f"## Speed at batch {result['batch']} (`_t` models, random weights, calibrated on "
        f"{result['speed_calibration']} random images)",
        "",
        f"Targets: OpenVINO INT8 >= {TARGET_VS_EAGER_BF16}x PyTorch eager BF16 autocast and >= "
        f"{TARGET_VS_OPENVINO_BF16}x OpenVINO BF16 (best OpenVINO INT8 row).",
        "",
        "| model | family | runtime | precision | ms | vs eager bf16 | vs OpenVINO bf16 |",
        "|---|---|---|---|---:|---:|---:|",
    ]
    for r in result["rows"]:
        vs_ov = "–" if r["vs_openvino_bf16"] is None else f"{r['vs_openvino_bf16']:.2f}x"
        lines.append(
            f"| {r['model']} | {r['family']} | {r['runtime']} | {r['precision']} | {r['ms']:.2f} | "
            f"{r['vs_eager_bf16']:.2f}x | {vs_ov} |"
        )
    lines += [
        "",
        "| model | OpenVINO INT8 ms | vs eager bf16 | vs OpenVINO bf16 | targets | quantize s |",
        "|---|---:|---:|---:|---|---|",
    ]
    for s in result["summaries"]:
        vs_ov = "–" if s["vs_openvino_bf16"] is None else f"{s['vs_openvino_bf16']:.2f}x"
        took = ", ".join(f"{k} {v:.0f}" for k, v in s["quantize_s"].items())
        lines.append(
            f"| {s['model']} | {s['openvino_int8_ms']:.2f} | {s['vs_eager_bf16']:.2f}x | {vs_ov} | "
            f"{'met' if s['meets_targets'] else 'missed'} | {took} |"
        )
    profiled = [s for s in result["summaries"] if "profile" in s]
    if profiled:
        lines += [
            "",
            "## Why a target is missed: OpenVINO INT8 per-op profile",
            "",
            "Share of the OpenVINO INT8 model's op time (float ops in BF16, `PERF_COUNT` counters, batch "
            f"{result['batch']}). Only the linear layers run in INT8; the attention bodies stay float by design, "
            "so the INT8 gain over BF16 is bounded by the linear layers' share.",
            "",
            "| model | largest shares |",
            "|---|---|",
        ]
        for s in profiled:
            shares = ", ".join(f"{k} {v:.1f} %" for k, v in s["profile"]["share_percent"].items())
            lines.append(f"| {s['model']} | {shares} |")
    if result["notes"]:
        lines += ["", "## Notes", "", *[f"* {note}" for note in result["notes"]]]
    path.write_text("\n".join(lines) + "\n")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="one digits model, one _t model, few runs")
    parser.add_argument("--digits-models", nargs="*", default=list(DIGITS_MODELS))
    parser.add_argument("--speed-models", "--models", nargs="*", default=list(SPEED_MODELS), help="_t models to time")
    parser.add_argument("--targets", nargs="*", default=list(TARGETS), choices=TARGETS)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--calibration", type=int, default=128, help="digits calibration images")
    parser.add_argument("--holdout", type=int, default=500, help="held-out digits")
    parser.add_argument("--speed-calibration", type=int, default=32, help="random calibration images (_t models)")
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--note", action="append", default=[])
    parser.add_argument("--out", type=Path, default=RESULTS / "cpu_int8")
    args = parser.parse_args(argv)
    if args.quick:
        args.digits_models, args.speed_models = args.digits_models[:1], ["ca_deit_t"]
        args.runs, args.rounds, args.warmup, args.calibration, args.holdout = 4, 2, 1, 32, 200
        args.speed_calibration = 8
    torch.set_num_threads(args.threads)
    notes = list(args.note)
    digits: list[dict[str, Any]] = []
    rows: list[dict[str, Any]] = []
    summaries: list[dict[str, Any]] = []
    notes.append(
        "the tensorrt target's numbers are its Q/DQ file run in ONNX Runtime on CPU; the TensorRT INT8 engine "
        "(vitrt build --precision int8) needs a GPU"
    )
    # The result is rewritten after every model, so an interrupted run keeps what it measured.
    with tempfile.TemporaryDirectory(prefix="vitrt-int8-bench-") as tmp:
        workdir = Path(tmp)
        for name in args.digits_models:
            digits += digits_rows(name, workdir, args)
            save(args, argv, digits, rows, summaries, notes)
        for name in args.speed_models:
            for row in speed_rows(name, workdir, args, notes):
                if "summary" in row:
                    summaries.append(row["summary"])
                else:
                    rows.append(row)
            save(args, argv, digits, rows, summaries, notes)
    print(f"wrote {args.out.with_suffix('.json')} and {args.out.with_suffix('.md')}")
    return 0


def save(
    args: argparse.Namespace,
    argv: list[str] | None,
    digits: list[dict[str, Any]],
    rows: list[dict[str, Any]],
    summaries: list[dict[str, Any]],
    notes: list[str],
) -> None:
    measured = [s["model"] for s in summaries]
    missing = [name for name in args.speed_models if name not in measured]
    result = {
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "command": "python benchmarks/cpu_int8.py " + " ".join(argv if argv is not None else sys.argv[1:]),
        "machine": machine(),
        "versions": versions(),
        "threads": args.threads,
        "runs": args.runs,
        "batch": args.batch,
        "calibration": args.calibration,
        "speed_calibration": args.speed_calibration,
        "quick": args.quick,
        "digits": digits,
        "rows": rows,
        "summaries": summaries,
        "notes": notes + ([f"not measured in this run: {', '.join(missing)}"] if missing else []),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.with_suffix(".json").write_text(json.dumps(result, indent=2) + "\n")
    write_markdown(result, args.out.with_suffix(".md"))


if __name__ == "__main__":
    raise SystemExit(main())
