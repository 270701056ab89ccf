#!/usr/bin/env python3
"""Fused CUDA kernels vs the PyTorch references, on a GPU.

For every op and size (token grids up to those of a 1024-px input) this measures the kernel library (through
`vitrt.plugins.torch_ops`), the eager PyTorch reference and `torch.compile` of the reference, and the kernel's
achieved DRAM bandwidth (compulsory bytes: inputs read once, output written once) as a fraction of the device's
copy bandwidth, measured here with a large device-to-device copy. It also sweeps the circulant crossover between the
direct and cuFFT strategies, to recalibrate the AUTO rule.

Targets: >= 3x eager, >= 1.5x torch.compile, and >= 60% of copy bandwidth for the memory-bound linear attentions.

    PYTHONPATH=src python benchmarks/kernels_gpu.py [--dtype float16] [--quick] [--ops VitrtAgentAttention,...]

Writes benchmarks/results/kernels_<gpu>.json and .md (medians and ratios from this one run).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import platform
import re
import statistics
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from vitrt.ops import reference
from vitrt.plugins.cases import make_inputs
from vitrt.plugins.kernels import STRATEGIES, load_kernel_library
from vitrt.plugins.torch_ops import KernelRunner

RESULTS = Path(__file__).resolve().parent / "results"
LINEAR_OPS = {"VitrtFocusedLinearAttention", "VitrtMllaLinearAttention", "VitrtInLineAttention"}
TARGET_EAGER, TARGET_COMPILE, TARGET_BANDWIDTH = 3.0, 1.5, 0.60

# (label, config): backbone stage whose token grid the op sees at 224 / 512 / 1024 px.
SIZES: dict[str, list[tuple[str, dict[str, Any]]]] = {
    "VitrtCirculantAttention": [
        (f"ca_deit_s_{px}px_b{b}", {"B": b, "H": px // 16, "W": px // 16, "C": 384})
        for px in (224, 384, 512, 1024)
        for b in (1, 16)
    ],
    "VitrtFocusedLinearAttention": [
        (f"flatten_swin_t_s1_{px}px_b{b}", {"B": b, "H": px // 4, "W": px // 4, "C": 96, "attrs": {"num_heads": 3}})
        for px in (224, 512, 1024)
        for b in (1, 8)
    ],
    "VitrtMllaLinearAttention": [
        (f"mlla_t_s1_{px}px_b{b}", {"B": b, "H": px // 4, "W": px // 4, "C": 64, "attrs": {"num_heads": 2}})
        for px in (224, 512, 1024)
        for b in (1, 8)
    ],
    "VitrtInLineAttention": [
        (f"inline_swin_t_s1_{px}px_b{b}", {"B": b, "H": px // 4, "W": px // 4, "C": 96, "attrs": {"num_heads": 3}})
        for px in (224, 512, 1024)
        for b in (1, 8)
    ],
    "VitrtAgentAttention": [
        (
            f"agent_swin_t_s1_{px}px_b{b}",
            {"B": b, "H": px // 4, "W": px // 4, "C": 96, "a": 49, "attrs": {"num_heads": 3}},
        )
        for px in (224, 512, 1024)
        for b in (1, 8)
    ],
}


def median_ms(fn: Callable[[], Any], warmup: int = 5, reps: int = 25) -> float:
    """Median of `reps` CUDA-event timings of fn() after `warmup` calls."""
    for _ in range(warmup):
        fn()
    torch.cuda.synchronize()
    times = []
    for _ in range(reps):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        fn()
        end.record()
        end.synchronize()
        times.append(start.elapsed_time(end))
    return statistics.median(times)


def copy_bandwidth(gib: float = 1.0) -> float:
    """Device-to-device copy bandwidth in bytes/s (read + write counted)."""
    src = torch.empty(int(gib * 2**30), dtype=torch.uint8, device="cuda")
    dst = torch.empty_like(src)
    ms = median_ms(lambda: dst.copy_(src), warmup=3, reps=10)
    return 2 * src.numel() / (ms * 1e-3)


def machine() -> dict[str, Any]:
    props = torch.cuda.get_device_properties(0)
    library = load_kernel_library()
    return {
        "gpu": props.name,
        "sm": f"{props.major}{props.minor}",
        "multiprocessors": props.multi_processor_count,
        "memory_gib": round(props.total_memory / 2**30, 1),
        "torch": torch.__version__,
        "torch_cuda": torch.version.cuda,
        "kernel_library": str(library.path),
        "kernels_cuda": library.cuda_compiled_version,
        "cufft": library.cufft_version,
        "python": platform.python_version(),
        "host": platform.node(),
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
    }


def bench_op(runner: KernelRunner, op: str, label: str, config: dict, dtype: torch.dtype, copy_bw: float,
             strategy: int | None = None) -> dict[str, Any]:  # fmt: skip
    args, attrs = make_inputs(op, config, dtype=dtype, device="cuda")
    if strategy is not None:
        attrs["strategy"] = strategy
    kernel = runner.implementations()[op]
    ref = reference.REFERENCE[op]
    compiled = torch.compile(ref, dynamic=False)
    row: dict[str, Any] = {"op": op, "size": label, "config": config, "dtype": str(dtype).split(".")[-1]}
    if strategy is not None:
        row["strategy"] = {v: k for k, v in STRATEGIES.items()}[strategy]
    with torch.inference_mode():
        try:
            out = kernel(*args, **attrs)
        except Exception as err:  # e.g. the direct strategy on a grid that does not fit shared memory
            row["error"] = str(err)
            return row
        expected = ref(*args, **attrs)
        row["max_abs_error"] = (out.float() - expected.float()).abs().max().item()
        row["kernel_ms"] = median_ms(lambda: kernel(*args, **attrs))
        row["eager_ms"] = median_ms(lambda: ref(*args, **attrs))
        try:
            row["compile_ms"] = median_ms(lambda: compiled(*args, **attrs), warmup=3)
        except Exception as err:  # torch.compile may not support every reference (e.g. FFTs on old versions)
            row["compile_error"] = f"{type(err).__name__}: {err}"[:200]
    nbytes = sum(t.numel() * t.element_size() for t in args) + out.numel() * out.element_size()
    row["bytes"] = nbytes
    row["bandwidth_gbs"] = nbytes / (row["kernel_ms"] * 1e-3) / 1e9
    row["bandwidth_fraction"] = nbytes / (row["kernel_ms"] * 1e-3) / copy_bw
    row["speedup_eager"] = row["eager_ms"] / row["kernel_ms"]
    if "compile_ms" in row:
        row["speedup_compile"] = row["compile_ms"] / row["kernel_ms"]
    row["meets_targets"] = (
        row["speedup_eager"] >= TARGET_EAGER
        and row.get("speedup_compile", 0.0) >= TARGET_COMPILE
        and (op not in LINEAR_OPS or row["bandwidth_fraction"] >= TARGET_BANDWIDTH)
    )
    return row


def crossover(runner: KernelRunner, dtype: torch.dtype) -> list[dict[str, Any]]:
    """Direct vs cuFFT circulant attention over grid sizes and batches (C = 384), with the AUTO rule's choice."""
    op = "VitrtCirculantAttention"
    rows = []
    for side in (7, 10, 14, 18, 20, 24, 28, 32):
        for batch in (1, 4, 16, 64):
            config = {"B": batch, "H": side, "W": side, "C": 384}
            args, attrs = make_inputs(op, config, dtype=dtype, device="cuda")
            row: dict[str, Any] = {"grid": f"{side}x{side}", "batch": batch}
            auto = runner.library.circulant_auto_strategy(batch, side, side, 384)
            row["auto"] = {v: k for k, v in STRATEGIES.items()}[auto]
            with torch.inference_mode():
                for name in ("cufft", "direct"):
                    try:
                        row[f"{name}_ms"] = median_ms(
                            lambda name=name, args=args, attrs=attrs: runner.circulant_attention(
                                *args, **attrs, strategy=STRATEGIES[name]
                            )
                        )
                    except Exception as err:
                        row[f"{name}_ms"] = None
                        row[f"{name}_error"] = str(err)[:160]
            if row.get("cufft_ms") and row.get("direct_ms"):
                row["faster"] = "direct" if row["direct_ms"] < row["cufft_ms"] else "cufft"
                row["auto_is_faster"] = row["faster"] == row["auto"]
            rows.append(row)
    return rows


def markdown(report: dict[str, Any]) -> str:
    m = report["machine"]
    lines = [
        f"# vitrt kernels on {m['gpu']} (sm_{m['sm']})",
        "",
        f"{m['date']} · torch {m['torch']} (CUDA {m['torch_cuda']}) · kernels built with CUDA {m['kernels_cuda']} · "
        f"cuFFT {m['cufft']} · dtype {report['dtype']}",
        "",
        f"Device copy bandwidth (measured): **{report['copy_bandwidth_gbs']:.0f} GB/s**. Targets: >= {TARGET_EAGER}x "
        f"eager, >= {TARGET_COMPILE}x torch.compile, >= {TARGET_BANDWIDTH:.0%} of copy bandwidth for the linear "
        "attentions. Times are medians of CUDA-event timings.",
        "",
        "| op | size | strategy | kernel ms | eager ms | compile ms | x eager | x compile | GB/s | % copy BW | "
        "max abs err | targets |",
        "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for r in report["rows"]:
        if "error" in r:
            lines.append(f"| {r['op']} | {r['size']} | {r.get('strategy', '')} | error: {r['error'][:80]} |" + " |" * 8)
            continue
        lines.append(
            f"| {r['op']} | {r['size']} | {r.get('strategy', '')} | {r['kernel_ms']:.3f} | {r['eager_ms']:.3f} | "
            f"{r.get('compile_ms', float('nan')):.3f} | {r['speedup_eager']:.1f} | "
            f"{r.get('speedup_compile', float('nan')):.1f} | {r['bandwidth_gbs']:.0f} | "
            f"{100 * r['bandwidth_fraction']:.0f}% | {r['max_abs_error']:.1e} | "
            f"{'yes' if r['meets_targets'] else 'no'} |"
        )
    if report.get("crossover"):
        lines += [
            "",
            "## Circulant attention: direct vs cuFFT (C = 384)",
            "",
            "| grid | batch | cuFFT ms | direct ms | faster | AUTO picks | AUTO right |",
            "|---|---:|---:|---:|---|---|---|",
        ]
        for r in report["crossover"]:
            cufft = f"{r['cufft_ms']:.3f}" if r.get("cufft_ms") else "n/a"
            direct = f"{r['direct_ms']:.3f}" if r.get("direct_ms") else "n/a"
            right = {True: "yes", False: "no"}.get(r.get("auto_is_faster"), "")
            lines.append(
                f"| {r['grid']} | {r['batch']} | {cufft} | {direct} | {r.get('faster', '')} | {r['auto']} | {right} |"
            )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dtype", default="float16", choices=["float32", "float16", "bfloat16"])
    parser.add_argument("--ops", default=",".join(SIZES), help="comma-separated ONNX op types")
    parser.add_argument("--quick", action="store_true", help="only the smallest and largest size per op")
    parser.add_argument("--no-crossover", action="store_true", help="skip the circulant strategy sweep")
    parser.add_argument("--output-dir", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    if not torch.cuda.is_available():
        print("error: no CUDA GPU; this benchmark runs on a GPU machine", file=sys.stderr)
        return 2
    dtype = getattr(torch, args.dtype)
    runner = KernelRunner(load_kernel_library())
    copy_bw = copy_bandwidth()
    rows = []
    for op in args.ops.split(","):
        sizes = SIZES[op]
        if args.quick:
            sizes = [sizes[0], sizes[-1]]
        for label, config in sizes:
            strategies = [0, 1, 2] if op == "VitrtCirculantAttention" else [None]
            for strategy in strategies:
                row = bench_op(runner, op, label, config, dtype, copy_bw, strategy)
                rows.append(row)
                print(json.dumps({k: v for k, v in row.items() if k != "config"}), flush=True)
    report = {
        "machine": machine(),
        "dtype": args.dtype,
        "copy_bandwidth_gbs": copy_bw / 1e9,
        "targets": {"eager": TARGET_EAGER, "compile": TARGET_COMPILE, "bandwidth_fraction": TARGET_BANDWIDTH},
        "rows": rows,
        "crossover": [] if args.no_crossover else crossover(runner, dtype),
    }
    gpu = re.sub(r"[^a-z0-9]+", "_", report["machine"]["gpu"].lower()).strip("_")
    args.output_dir.mkdir(parents=True, exist_ok=True)
    (args.output_dir / f"kernels_{gpu}.json").write_text(json.dumps(report, indent=2) + "\n")
    (args.output_dir / f"kernels_{gpu}.md").write_text(markdown(report))
    print(f"wrote {args.output_dir / f'kernels_{gpu}.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
