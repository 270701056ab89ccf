"""Every CPU runtime a user could pick, side by side: PyTorch's own modes against vitrt's deployed CPU paths.

    python benchmarks/cpu_backends.py --compile               # the full run, torch.compile included
    python benchmarks/cpu_backends.py                         # the full run without torch.compile (faster)
    python benchmarks/cpu_backends.py --quick --batches 8     # development: inline_deit_t and mlla_t, few runs
    python benchmarks/cpu_backends.py --models agent_swin_t --extend benchmarks/results/cpu_backends.json

In one process, for each model and batch (224 px, 2 threads everywhere), interleaved in rounds so drifting machine
load hits every runtime alike:

* the peers a user would pick instead of vitrt: PyTorch eager FP32, eager under `torch.autocast("cpu", bfloat16)`,
  and `torch.compile` (inductor) at FP32 and under BF16 autocast (with `--compile`: four compilations per model
  take minutes on a 2-core machine);
* vitrt's deployed paths on the portable file: ONNX Runtime FP32 (`vitrt.engines.load(..., backend="onnxruntime")`)
  and OpenVINO FP32/BF16 (`backend="openvino", precision=...`; recorded as skipped when that backend or OpenVINO
  is missing);
* OpenVINO reading the `--flavour inlined` export by hand (`openvino.Core().read_model`), so any loss from vitrt's
  loading shows.

Each row: model, family, batch, runtime, precision, median_ms, p90_ms, speedup_vs_eager_fp32, speedup_vs_eager_bf16,
max_abs_vs_eager_fp32 (same input). The targets of issue 12 are checked per model and batch; where one is missed the
runtime is profiled (ONNX Runtime's per-op profile, OpenVINO's per-layer counters, PyTorch's profiler for the eager
reference) and the Markdown gives the op split. Writes benchmarks/results/cpu_backends.{json,md} with the CPU
flags (avx512_bf16, amx), versions and date.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import os
import platform
import statistics
import sys
import tempfile
import time
import warnings
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from vitrt import __version__
from vitrt.export import export_flavours
from vitrt.export.zoo import resolve_model

RESULTS = Path(__file__).resolve().parent / "results"
DEFAULT_MODELS = (
    "agent_swin_t",
    "flatten_swin_t",
    "inline_deit_t",
    "ca_deit_t",
    "mlla_t",
    "agent_cswin_t",
    "flatten_cswin_t",
    "inline_swin_t",
    "deit_tiny_patch16_224",
    "swin_tiny_patch4_window7_224",
)
QUICK_MODELS = ("inline_deit_t", "mlla_t")
TIMM_MODELS = ("deit_tiny_patch16_224", "swin_tiny_patch4_window7_224")
# (runtime, precision) in measurement order.
RUNTIMES = (
    ("eager", "fp32"),
    ("eager", "bf16"),
    ("torch.compile", "fp32"),
    ("torch.compile", "bf16"),
    ("onnxruntime", "fp32"),
    ("openvino", "fp32"),
    ("openvino", "bf16"),
    ("openvino-inlined", "fp32"),
    ("openvino-inlined", "bf16"),
)
VITRT_RUNTIMES = ("onnxruntime", "openvino")
TARGET_BEST_VS_BF16 = 1.5  # vitrt's best CPU path vs PyTorch eager bf16 autocast
TARGET_ORT_VS_FP32 = 1.3  # ONNX Runtime FP32 vs PyTorch eager FP32
TARGET_LOADER_SLACK = 1.03  # vitrt's OpenVINO backend vs OpenVINO on the inlined file by hand
# Op names (ONNX Runtime, OpenVINO layer types, aten) counted as GEMM / convolution time in the profiles.
GEMM_OPS = frozenset(
    {"MatMul", "FusedMatMul", "Gemm", "FullyConnected", "Convolution", "GroupConvolution", "Conv", "NchwcConv"}
    | {"addmm", "mm", "bmm", "matmul", "linear", "mkldnn_convolution", "_convolution", "convolution"}
)


@dataclass
class Runner:
    runtime: str
    precision: str
    run: Callable[[], np.ndarray] | None
    skipped: str | None = None
    samples: list[float] = field(default_factory=list)
    output: np.ndarray | None = None
    profile: Callable[[], dict[str, Any]] | None = None

    @property
    def key(self) -> tuple[str, str]:
        return self.runtime, self.precision


# --- the model and its exports -------------------------------------------------------------------------------------


def build_model(name: str) -> torch.nn.Module:
    torch.manual_seed(0)
    if name in TIMM_MODELS:
        import timm

        return timm.create_model(name).eval()
    model, _ = resolve_model(name)
    return model.eval()


def family_of(name: str, model: torch.nn.Module) -> str:
    meta = getattr(model, "vitrt_metadata", None)
    return "timm" if meta is None else str(meta.family)


def export_both(model: torch.nn.Module, name: str, workdir: Path) -> tuple[Path, Path, float]:
    """The portable and inlined files from one trace (numerics are compared per row against eager instead)."""
    paths = {"portable": workdir / f"{name}.onnx", "inlined": workdir / f"{name}.inlined.onnx"}
    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        export_flavours(model, paths, input_size=(3, 224, 224), validate=False)
    return paths["portable"], paths["inlined"], time.perf_counter() - start


# --- runners ---------------------------------------------------------------------------------------------------------


def torch_runner(model: torch.nn.Module, x: torch.Tensor, precision: str, compiled: bool) -> Runner:
    runtime = "torch.compile" if compiled else "eager"

    def forward(inp: torch.Tensor) -> torch.Tensor:
        if precision == "bf16":
            with torch.autocast("cpu", dtype=torch.bfloat16):
                out = model(inp)
        else:
            out = model(inp)
        out = out[0] if isinstance(out, tuple | list) else out
        return out

    fn: Callable[[torch.Tensor], torch.Tensor] = forward
    if compiled:
        try:
            fn = torch.compile(forward, backend="inductor", dynamic=False)
        except Exception as err:  # no compiler toolchain, unsupported Python
            return Runner(runtime, precision, None, skipped=f"torch.compile unavailable: {_one_line(err)}")

    def run() -> np.ndarray:
        with torch.inference_mode():
            return fn(x).float().numpy()

    def profile() -> dict[str, Any]:
        return torch_profile(fn, x)

    return Runner(runtime, precision, run, profile=None if compiled else profile)


def onnxruntime_runner(path: Path, x: np.ndarray, threads: int) -> Runner:
    from vitrt.engines import load

    try:
        backend = load(path, backend="onnxruntime", intra_op_threads=threads)
    except Exception as err:
        return Runner("onnxruntime", "fp32", None, skipped=f"vitrt's ONNX Runtime backend failed: {_one_line(err)}")
    name = backend.inputs[0].name
    out_name = backend.outputs[0].name

    def run() -> np.ndarray:
        return backend.run({name: x})[out_name]

    return Runner("onnxruntime", "fp32", run, profile=lambda: ort_profile(path, x, threads))


def openvino_backend_runner(path: Path, x: np.ndarray, precision: str, threads: int) -> Runner:
    try:
        from vitrt.engines import BACKENDS, load

        if "openvino" not in BACKENDS:
            return Runner("openvino", precision, None, skipped="this vitrt has no openvino backend (branch openvino)")
        backend = load(path, backend="openvino", precision=precision, threads=threads, cache=False)
    except Exception as err:  # not installed, CPU without BF16, compile failure: recorded, the run goes on
        return Runner("openvino", precision, None, skipped=f"vitrt's OpenVINO backend: {_one_line(err)}")
    name = backend.inputs[0].name
    out_name = backend.outputs[0].name

    def run() -> np.ndarray:
        return backend.run({name: x})[out_name]

    return Runner("openvino", precision, run, profile=lambda: openvino_profile(path, False, precision, x, threads))


def openvino_by_hand_runner(inlined: Path, x: np.ndarray, precision: str, threads: int) -> Runner:
    runtime = "openvino-inlined"
    try:
        import openvino as ov
    except Exception as err:
        return Runner(runtime, precision, None, skipped=f"OpenVINO is not installed ({_one_line(err)})")
    core = ov.Core()
    properties = {
        "INFERENCE_PRECISION_HINT": {"fp32": "f32", "bf16": "bf16"}[precision],
        "PERFORMANCE_HINT": "LATENCY",
        "INFERENCE_NUM_THREADS": threads,
    }
    try:
        compiled = core.compile_model(core.read_model(str(inlined)), "CPU", properties)
    except Exception as err:
        return Runner(runtime, precision, None, skipped=f"OpenVINO cannot compile the inlined file: {_one_line(err)}")
    request = compiled.create_infer_request()

    def run() -> np.ndarray:
        request.infer([x])
        return np.array(request.get_output_tensor(0).data, copy=True)

    return Runner(runtime, precision, run, profile=lambda: openvino_profile(inlined, True, precision, x, threads))


# --- profiles (only where a target is missed) ------------------------------------------------------------------------


def ort_profile(path: Path, x: np.ndarray, threads: int, runs: int = 3) -> dict[str, Any]:
    """Share of ONNX Runtime kernel time per op type (vitrt's session defaults, profiling on)."""
    import onnxruntime as ort

    from vitrt.engines.onnxruntime import cpu_session_options

    options = cpu_session_options(threads)
    options.log_severity_level = 3
    options.enable_profiling = True
    with tempfile.TemporaryDirectory() as tmp:
        options.profile_file_prefix = str(Path(tmp) / "ort")
        session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        feeds = {session.get_inputs()[0].name: x}
        for _ in range(runs):
            session.run(None, feeds)
        trace = json.loads(Path(session.end_profiling()).read_text())
    times: Counter[str] = Counter()
    for event in trace:
        if event.get("cat") == "Node" and event.get("name", "").endswith("_kernel_time"):
            times[event["args"]["op_name"]] += event["dur"]
    return _shares(times, runs, 1e-3)


def openvino_profile(path: Path, by_hand: bool, precision: str, x: np.ndarray, threads: int) -> dict[str, Any]:
    """Share of OpenVINO CPU time per layer type and kernel: the same model compiled again with PERF_COUNT."""
    import openvino as ov

    from vitrt.engines.openvino import read_onnx

    core = ov.Core()
    model = core.read_model(str(path)) if by_hand else read_onnx(path, core)[0]
    properties = {
        "INFERENCE_PRECISION_HINT": {"fp32": "f32", "bf16": "bf16"}[precision],
        "PERFORMANCE_HINT": "LATENCY",
        "INFERENCE_NUM_THREADS": threads,
        "PERF_COUNT": True,
    }
    request = core.compile_model(model, "CPU", properties).create_infer_request()
    request.infer([x])
    times: Counter[str] = Counter()
    runs = 3
    for _ in range(runs):
        request.infer([x])
        for item in request.profiling_info:
            times[f"{item.node_type} ({item.exec_type})"] += item.real_time.total_seconds() * 1e6
    return _shares(times, runs, 1e-3)


def torch_profile(fn: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor) -> dict[str, Any]:
    """Share of PyTorch CPU self time per aten op (one profiled call after warm-up)."""
    with torch.inference_mode():
        fn(x)
        with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as prof:
            fn(x)
    times: Counter[str] = Counter()
    for event in prof.key_averages():
        if event.key.startswith("aten::"):
            times[event.key.removeprefix("aten::")] += event.self_cpu_time_total
    return _shares(times, 1, 1e-3)


def _shares(times: Counter[str], runs: int, to_ms: float) -> dict[str, Any]:
    total = sum(times.values()) or 1.0
    gemm = sum(v for k, v in times.items() if k.split(" ")[0] in GEMM_OPS)
    return {
        "total_ms": round(total / runs * to_ms, 2),
        "gemm_share": round(gemm / total, 3),
        "top": [[op, round(v / total, 3), round(v / runs * to_ms, 2)] for op, v in times.most_common(6)],
    }


# --- measurement ----------------------------------------------------------------------------------------------------


def measure(runners: list[Runner], repeats: int, rounds: int, warmup: int) -> None:
    active = [r for r in runners if r.run is not None]
    for runner in active:
        try:
            runner.output = runner.run()  # type: ignore[misc]  # first call: compiles / allocates
            for _ in range(warmup):
                runner.run()  # type: ignore[misc]
        except Exception as err:  # an inductor or runtime failure on this model: recorded, others go on
            runner.skipped, runner.run = f"failed at run time: {_one_line(err)}", None
    active = [r for r in active if r.run is not None]
    per_round = max(1, repeats // rounds)
    for _ in range(rounds):
        for runner in active:
            for _ in range(per_round):
                start = time.perf_counter()
                runner.run()  # type: ignore[misc]
                runner.samples.append((time.perf_counter() - start) * 1e3)


def rows_for(name: str, family: str, batch: int, runners: list[Runner]) -> list[dict[str, Any]]:
    by_key = {r.key: r for r in runners}
    eager32, eager16 = by_key[("eager", "fp32")], by_key[("eager", "bf16")]
    base32 = statistics.median(eager32.samples) if eager32.samples else None
    base16 = statistics.median(eager16.samples) if eager16.samples else None
    rows = []
    for runner in runners:
        row: dict[str, Any] = {
            "model": name,
            "family": family,
            "batch": batch,
            "runtime": runner.runtime,
            "precision": runner.precision,
            "median_ms": None,
            "p90_ms": None,
            "speedup_vs_eager_fp32": None,
            "speedup_vs_eager_bf16": None,
            "max_abs_vs_eager_fp32": None,
        }
        if runner.samples:
            median = statistics.median(runner.samples)
            row["median_ms"] = round(median, 2)
            row["p90_ms"] = round(float(np.percentile(runner.samples, 90)), 2)
            row["speedup_vs_eager_fp32"] = round(base32 / median, 3) if base32 else None
            row["speedup_vs_eager_bf16"] = round(base16 / median, 3) if base16 else None
            if runner.output is not None and eager32.output is not None:
                row["max_abs_vs_eager_fp32"] = float(np.abs(runner.output - eager32.output).max())
        else:
            row["skipped"] = runner.skipped or "not measured"
        rows.append(row)
    return rows


def check_targets(rows: list[dict[str, Any]], runners: list[Runner], profile: bool) -> dict[str, Any]:
    """The three speed targets of issue 12 for one model and batch, with profiles of what misses them."""
    by = {(r["runtime"], r["precision"]): r for r in rows}
    by_runner = {r.key: r for r in runners}
    result: dict[str, Any] = {"model": rows[0]["model"], "batch": rows[0]["batch"]}
    ort = by.get(("onnxruntime", "fp32"))
    if ort and ort["median_ms"] is not None and ort["speedup_vs_eager_fp32"] is not None:
        met = ort["speedup_vs_eager_fp32"] >= TARGET_ORT_VS_FP32
        result["ort_vs_eager_fp32"] = {"value": ort["speedup_vs_eager_fp32"], "met": met}
        if not met and profile:
            result["ort_vs_eager_fp32"]["profile_onnxruntime"] = _safe_profile(by_runner[("onnxruntime", "fp32")])
            result["ort_vs_eager_fp32"]["profile_eager"] = _safe_profile(by_runner[("eager", "fp32")])
    vitrt_rows = [r for r in rows if r["runtime"] in VITRT_RUNTIMES and r["speedup_vs_eager_bf16"] is not None]
    if vitrt_rows:
        best = max(vitrt_rows, key=lambda r: r["speedup_vs_eager_bf16"])
        met = best["speedup_vs_eager_bf16"] >= TARGET_BEST_VS_BF16
        result["best_vs_eager_bf16"] = {
            "value": best["speedup_vs_eager_bf16"],
            "path": f"{best['runtime']} {best['precision']}",
            "met": met,
        }
        if not met and profile:
            result["best_vs_eager_bf16"]["profile_best"] = _safe_profile(
                by_runner[(best["runtime"], best["precision"])]
            )
            result["best_vs_eager_bf16"]["profile_eager_bf16"] = _safe_profile(by_runner[("eager", "bf16")])
    loaders = {}
    for precision in ("fp32", "bf16"):
        mine, hand = by.get(("openvino", precision)), by.get(("openvino-inlined", precision))
        if mine and hand and mine["median_ms"] and hand["median_ms"]:
            ratio = mine["median_ms"] / hand["median_ms"]
            loaders[precision] = {"ratio": round(ratio, 3), "met": ratio <= TARGET_LOADER_SLACK}
    if loaders:
        result["openvino_loader"] = loaders
    return result


def _safe_profile(runner: Runner) -> dict[str, Any] | None:
    if runner.profile is None:
        return None
    try:
        return runner.profile()
    except Exception as err:
        return {"error": _one_line(err)}


def bench_model(name: str, args: argparse.Namespace, workdir: Path) -> tuple[list[dict], list[dict], dict]:
    model = build_model(name)
    family = family_of(name, model)
    portable, inlined, export_s = export_both(model, name, workdir)
    info: dict[str, Any] = {"export_s": round(export_s, 1)}
    rows: list[dict] = []
    targets: list[dict] = []
    wanted = [rt for rt in RUNTIMES if rt[0] in args.runtimes or rt in (("eager", "fp32"), ("eager", "bf16"))]
    for batch in args.batches:
        x = torch.randn((batch, 3, 224, 224), generator=torch.Generator().manual_seed(batch))
        xn = x.numpy()
        runners: list[Runner] = []
        for runtime, precision in wanted:
            if runtime == "eager":
                runners.append(torch_runner(model, x, precision, compiled=False))
            elif runtime == "torch.compile":
                runners.append(torch_runner(model, x, precision, compiled=True))
            elif runtime == "onnxruntime":
                runners.append(onnxruntime_runner(portable, xn, args.threads))
            elif runtime == "openvino":
                runners.append(openvino_backend_runner(portable, xn, precision, args.threads))
            else:
                runners.append(openvino_by_hand_runner(inlined, xn, precision, args.threads))
        start = time.perf_counter()
        measure(runners, args.repeats, args.rounds, args.warmup)
        batch_rows = rows_for(name, family, batch, runners)
        rows.extend(batch_rows)
        targets.append(check_targets(batch_rows, runners, profile=not args.no_profile))
        info[f"batch_{batch}_s"] = round(time.perf_counter() - start, 1)
        summary = "  ".join(
            f"{r['runtime']}/{r['precision']} {r['median_ms']:.1f}ms x{r['speedup_vs_eager_fp32']:.2f}"
            for r in batch_rows
            if r["median_ms"] is not None
        )
        print(f"{name} b{batch}: {summary}", flush=True)
        torch._dynamo.reset()  # compiled graphs of this model are not reused
    return rows, targets, info


# --- machine, report ------------------------------------------------------------------------------------------------


def machine() -> dict[str, Any]:
    cpu, flags = platform.processor() or platform.machine(), set()
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name") and cpu == (platform.processor() or platform.machine()):
                cpu = line.split(":", 1)[1].strip()
            elif line.startswith("flags"):
                flags = set(line.split(":", 1)[1].split())
    wanted = ("avx2", "avx512f", "avx512_vnni", "avx512_bf16", "avx512_fp16", "amx_tile", "amx_bf16", "amx_int8")
    info: dict[str, Any] = {
        "cpu": cpu,
        "logical_cores": os.cpu_count(),
        "platform": platform.platform(),
        "flags": {flag: flag in flags for flag in wanted},
        "load_average": [round(v, 2) for v in os.getloadavg()],
    }
    with contextlib.suppress(Exception):
        import openvino as ov

        info["openvino_capabilities"] = list(ov.Core().get_property("CPU", "OPTIMIZATION_CAPABILITIES"))
    return info


def versions() -> dict[str, str]:
    found = {"vitrt": __version__, "python": sys.version.split()[0], "torch": torch.__version__}
    for module in ("onnxruntime", "openvino", "onnx", "numpy", "timm"):
        with contextlib.suppress(Exception):
            found[module] = __import__(module).__version__
    return found


def _fmt(row: dict[str, Any] | None) -> str:
    if row is None:
        return "-"
    if row["median_ms"] is None:
        return "skipped"
    return f"{row['median_ms']:.1f} ({row['speedup_vs_eager_fp32']:.2f}x)"


def _profile_text(profile: dict[str, Any] | None) -> str:
    if not profile:
        return "no profile"
    if "error" in profile:
        return f"profile failed ({profile['error']})"
    top = ", ".join(f"{op} {share:.0%}" for op, share, _ in profile["top"][:4])
    return f"{profile['total_ms']:.0f} ms, GEMM/conv {profile['gemm_share']:.0%}; {top}"


def write_markdown(result: dict[str, Any], path: Path) -> None:
    m = result["machine"]
    flags = ", ".join(f"{k} {'yes' if v else 'no'}" for k, v in m["flags"].items())
    lines = [
        "# CPU backends: vitrt's deployed paths against PyTorch's own CPU modes",
        "",
        f"Date {result['date']}; {m['cpu']} ({m['logical_cores']} logical cores; {flags}); load average at start "
        f"{m['load_average']}. {result['threads']} threads for every runtime; 224 px; median of {result['repeats']} "
        f"timed runs per row after {result['warmup']} warm-up runs, interleaved in {result['rounds']} rounds in one "
        f"process{' (quick mode)' if result['quick'] else ''}. "
        + ", ".join(f"{k} {v}" for k, v in result["versions"].items())
        + ".",
        "",
        f"Command: `{result['command']}`",
        "",
        "Cells: median ms (speed-up vs PyTorch eager FP32). `OV` = vitrt's OpenVINO backend on the portable file; "
        "`OV by hand` = `openvino.Core().read_model` on the `--flavour inlined` export.",
        "",
        "| model | family | batch | eager fp32 | eager bf16 | compile fp32 | compile bf16 | ORT fp32 | OV fp32 "
        "| OV bf16 | OV by hand fp32 | OV by hand bf16 | max abs (ORT, OV fp32, OV bf16) |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    groups: dict[tuple[str, int], dict[tuple[str, str], dict]] = {}
    for row in result["rows"]:
        groups.setdefault((row["model"], row["batch"]), {})[(row["runtime"], row["precision"])] = row
    for (model, batch), by in groups.items():
        family = next(iter(by.values()))["family"]
        cells = [_fmt(by.get(key)) for key in RUNTIMES]
        errs = []
        for key in (("onnxruntime", "fp32"), ("openvino", "fp32"), ("openvino", "bf16")):
            value = by.get(key, {}).get("max_abs_vs_eager_fp32")
            errs.append("-" if value is None else f"{value:.1e}")
        lines.append(f"| {model} | {family} | {batch} | " + " | ".join(cells) + f" | {', '.join(errs)} |")
    lines += ["", "## Targets", ""]
    lines.append(
        f"* ONNX Runtime FP32 >= {TARGET_ORT_VS_FP32}x eager FP32; vitrt's best CPU path >= "
        f"{TARGET_BEST_VS_BF16}x eager BF16 autocast; vitrt's OpenVINO backend <= {TARGET_LOADER_SLACK:.2f}x "
        "OpenVINO on the inlined file by hand."
    )
    lines += [
        "",
        "| model | batch | ORT / eager fp32 | best vitrt path / eager bf16 | OV backend / by hand (fp32, bf16) |",
    ]
    lines.append("|---|---|---|---|---|")
    missed: list[str] = []
    for target in result["targets"]:
        ort = target.get("ort_vs_eager_fp32")
        best = target.get("best_vs_eager_bf16")
        loader = target.get("openvino_loader", {})
        ort_cell = "-" if not ort else f"{ort['value']:.2f}x {'met' if ort['met'] else 'missed'}"
        best_cell = "-" if not best else f"{best['value']:.2f}x ({best['path']}) {'met' if best['met'] else 'missed'}"
        loader_cell = (
            ", ".join(f"{p} {v['ratio']:.2f} {'met' if v['met'] else 'missed'}" for p, v in loader.items()) or "-"
        )
        lines.append(f"| {target['model']} | {target['batch']} | {ort_cell} | {best_cell} | {loader_cell} |")
        where = f"{target['model']} batch {target['batch']}"
        if ort and not ort["met"]:
            missed.append(
                f"* {where}, ORT {ort['value']:.2f}x eager FP32. ONNX Runtime: "
                f"{_profile_text(ort.get('profile_onnxruntime'))}. "
                f"Eager FP32: {_profile_text(ort.get('profile_eager'))}."
            )
        if best and not best["met"]:
            missed.append(
                f"* {where}, best path {best['path']} {best['value']:.2f}x eager BF16. That path: "
                f"{_profile_text(best.get('profile_best'))}. "
                f"Eager BF16: {_profile_text(best.get('profile_eager_bf16'))}."
            )
        for precision, value in loader.items():
            if not value["met"]:
                missed.append(
                    f"* {where}, OpenVINO {precision}: the backend on the portable file took {value['ratio']:.2f}x the "
                    "time of the inlined file read by hand (both compile the same inlined graph; see the p90 columns "
                    "of the JSON for the run-to-run spread)."
                )
    lines += ["", "## Where a target is missed, profiled", ""]
    lines += missed or ["Every target is met."]
    skipped = sorted({f"{r['runtime']} {r['precision']}: {r['skipped']}" for r in result["rows"] if r.get("skipped")})
    if skipped:
        lines += ["", "## Skipped", "", *[f"* {s}" for s in skipped]]
    if result.get("notes"):
        lines += ["", "## Notes", "", *[f"* {note}" for note in result["notes"]]]
    path.write_text("\n".join(lines) + "\n")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", nargs="*", help=f"zoo or timm names (default: {' '.join(DEFAULT_MODELS)})")
    parser.add_argument("--batches", nargs="*", type=int, default=[1, 8])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=12, help="timed runs per row (split over the rounds)")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds")
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument(
        "--runtimes",
        nargs="*",
        default=sorted({rt for rt, _ in RUNTIMES} - {"torch.compile"}),
        help="runtimes to measure besides eager (eager fp32/bf16 always run: they are the reference)",
    )
    parser.add_argument(
        "--compile",
        action="store_true",
        help="also measure torch.compile (inductor) at fp32 and bf16; off by default: compiling 4 graphs per model "
        "takes minutes on a 2-core machine",
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help=f"development mode: {' '.join(QUICK_MODELS)} unless --models is given; 4 runs in 2 rounds, 1 warm-up",
    )
    parser.add_argument("--no-profile", action="store_true", help="skip the profiles of missed targets")
    parser.add_argument("--note", action="append", default=[], help="a note for the Markdown report")
    parser.add_argument("--out", type=Path, default=RESULTS / "cpu_backends")
    parser.add_argument("--extend", type=Path, help="keep the rows of an earlier JSON for models not measured now")
    args = parser.parse_args(argv)
    if args.compile and "torch.compile" not in args.runtimes:
        args.runtimes = [*args.runtimes, "torch.compile"]
    if args.models is None:
        args.models = list(QUICK_MODELS if args.quick else DEFAULT_MODELS)
    if args.quick:
        args.repeats, args.rounds, args.warmup = 4, 2, 1
    known = {rt for rt, _ in RUNTIMES}
    unknown = set(args.runtimes) - known
    if unknown:
        parser.error(f"unknown runtimes {sorted(unknown)}; choose from {sorted(known)}")
    if args.repeats < 1 or args.rounds < 1 or args.repeats < args.rounds:
        parser.error("--repeats must be >= --rounds >= 1")
    torch.set_num_threads(args.threads)
    started = dt.datetime.now(dt.UTC)
    rows: list[dict] = []
    targets: list[dict] = []
    timings: dict[str, Any] = {}
    host = machine()
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.models:
            tick = time.perf_counter()
            model_rows, model_targets, info = bench_model(name, args, Path(tmp))
            rows.extend(model_rows)
            targets.extend(model_targets)
            timings[name] = {**info, "total_s": round(time.perf_counter() - tick, 1)}
    if args.extend is not None and args.extend.is_file():
        earlier = json.loads(args.extend.read_text())
        measured = {row["model"] for row in rows}
        rows = [r for r in earlier["rows"] if r["model"] not in measured] + rows
        targets = [t for t in earlier["targets"] if t["model"] not in measured] + targets
        timings = {**{k: v for k, v in earlier.get("timings", {}).items() if k not in measured}, **timings}
    result = {
        "date": started.isoformat(timespec="seconds"),
        "command": "python benchmarks/cpu_backends.py " + " ".join(argv if argv is not None else sys.argv[1:]),
        "machine": host,
        "versions": versions(),
        "threads": args.threads,
        "repeats": args.repeats,
        "rounds": args.rounds,
        "warmup": args.warmup,
        "quick": args.quick,
        "targets_definition": {
            "ort_vs_eager_fp32": TARGET_ORT_VS_FP32,
            "best_vs_eager_bf16": TARGET_BEST_VS_BF16,
            "openvino_loader_max_ratio": TARGET_LOADER_SLACK,
        },
        "timings": timings,
        "rows": rows,
        "targets": targets,
        "notes": args.note,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.with_suffix(".json").write_text(json.dumps(result, indent=2) + "\n")
    write_markdown(result, args.out.with_suffix(".md"))
    print(f"wrote {args.out.with_suffix('.json')} and {args.out.with_suffix('.md')}")
    return 0


def _one_line(err: BaseException) -> str:
    text = " ".join(str(err).split())
    return (text[:220] + "...") if len(text) > 220 else text or type(err).__name__


if __name__ == "__main__":
    raise SystemExit(main())
