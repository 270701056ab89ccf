"""Every CPU runtime a user could pick, side by side: PyTorch's own modes against vitrt's deployed CPU paths.

    python benchmarks/cpu_backends.py --compile               # the full run, torch.compile included
    python benchmarks/cpu_backends.py                         # the full run without torch.compile (faster)
    python benchmarks/cpu_backends.py --quick --batches 8     # development: inline_deit_t and mlla_t, few runs
    python benchmarks/cpu_backends.py --models agent_swin_t --extend benchmarks/results/cpu_backends.json

A thin script over `vitrt.bench.run_bench` (the engine of `vitrt bench`): one grid per model (224 px, 2 threads
everywhere, batch 1 and 8), measured interleaved in rounds so drifting machine load hits every runtime alike, every
row checked against PyTorch eager FP32 on the same inputs. The runtimes:

* the peers a user would pick instead of vitrt: PyTorch eager FP32 and under `torch.autocast("cpu", bfloat16)`
  (`vitrt bench` backend `torch`), and `torch.compile` (inductor) at FP32 and BF16 autocast (backend
  `torch-compile`, with `--compile`: four compilations per model take minutes on a 2-core machine);
* vitrt's deployed paths on the portable file: ONNX Runtime FP32 and OpenVINO FP32/BF16 (backends `onnxruntime`,
  `openvino`; skipped rows with the reason where OpenVINO is missing);
* OpenVINO reading the `--flavour inlined` export by hand (`openvino.Core().read_model`; the one runtime this
  script adds to the grid, `openvino-inlined`), so any loss from vitrt's loading shows.

Each row: model, family, batch, runtime, precision, median_ms, p90_ms, speedup_vs_eager_fp32, speedup_vs_eager_bf16,
max_abs_vs_eager_fp32 (plus status/reason and top-1 agreement). The targets of issue 12 are checked per model and
batch; where one is missed the runtimes are profiled (ONNX Runtime's per-op profile, OpenVINO's per-layer counters,
PyTorch's profiler for the eager reference) and the Markdown gives the op split. Writes
benchmarks/results/cpu_backends.{json,md} with the CPU flags (avx512_bf16, amx), versions and date.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
import tempfile
import warnings
from collections import Counter
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from vitrt.bench import BenchResult, Config, run_bench
from vitrt.bench.sources import Prepared
from vitrt.engines.base import InferenceBackend, TensorSpec
from vitrt.errors import BackendUnavailableError, VitrtError

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
BY_HAND = "openvino-inlined"
# `vitrt bench` backend -> the runtime name of the committed rows, in table order (precisions fp32, bf16 each).
RUNTIMES = {
    "torch": "eager",
    "torch-compile": "torch.compile",
    "onnxruntime": "onnxruntime",
    "openvino": "openvino",
    BY_HAND: BY_HAND,
}
VITRT_RUNTIMES = ("onnxruntime", "openvino")
TARGET_BEST_VS_BF16 = 1.5  # vitrt's best CPU path vs PyTorch eager bf16 autocast
TARGET_ORT_VS_FP32 = 1.3  # ONNX Runtime FP32 vs PyTorch eager FP32
TARGET_LOADER_SLACK = 1.03  # vitrt's OpenVINO backend vs OpenVINO on the inlined file by hand
# Op names (ONNX Runtime, OpenVINO layer types, aten) counted as GEMM / convolution time in the profiles.
GEMM_OPS = frozenset(
    {"MatMul", "FusedMatMul", "Gemm", "FullyConnected", "Convolution", "GroupConvolution", "Conv", "NchwcConv"}
    | {"addmm", "mm", "bmm", "matmul", "linear", "mkldnn_convolution", "_convolution", "convolution"}
)
_OV_PRECISION = {"fp32": "f32", "bf16": "bf16"}


# --- the one runtime the grid does not have: OpenVINO on the inlined export, by hand --------------------------------


class OpenVINOByHand(InferenceBackend):
    """`openvino.Core().read_model` on the `--flavour inlined` file, compiled as a user would, no vitrt in between."""

    name = BY_HAND

    def __init__(self, inlined: Path, precision: str, threads: int | None) -> None:
        import openvino as ov

        properties: dict[str, Any] = {
            "INFERENCE_PRECISION_HINT": _OV_PRECISION[precision],
            "PERFORMANCE_HINT": "LATENCY",
        }
        if threads is not None:
            properties["INFERENCE_NUM_THREADS"] = threads
        core = ov.Core()
        try:
            compiled = core.compile_model(core.read_model(str(inlined)), "CPU", properties)
        except Exception as err:
            raise VitrtError(f"OpenVINO cannot compile the inlined file: {_one_line(err)}") from None
        self.path, self.precision = inlined, precision
        self._request = compiled.create_infer_request()
        port_in, port_out = compiled.inputs[0], compiled.outputs[0]
        shape = tuple(None if d.is_dynamic else d.get_length() for d in port_in.get_partial_shape())
        self.inputs = [TensorSpec(port_in.get_any_name(), "float32", shape)]
        self.outputs = [TensorSpec(port_out.get_any_name(), "float32", (None, None))]
        self.max_batch_size = None

    def describe(self) -> str:
        return f"openvino by hand on {self.path.name} ({self.precision})"

    def run(self, feeds: Mapping[str, np.ndarray], output_names: list[str] | None = None) -> dict[str, np.ndarray]:
        self._request.infer([feeds[self.inputs[0].name]])
        return {self.outputs[0].name: np.array(self._request.get_output_tensor(0).data, copy=True)}


def by_hand_opener(workdir: Path) -> Any:
    """The `extra_runtimes` opener: exports the inlined flavour of the grid's PyTorch model once per model."""

    def open_by_hand(config: Config, prepared: Prepared, threads: int | None) -> InferenceBackend:
        import importlib.util

        if importlib.util.find_spec("openvino") is None:
            raise BackendUnavailableError("OpenVINO is not installed (pip install openvino)")
        if config.precision not in _OV_PRECISION:
            raise VitrtError(f"OpenVINO by hand is measured at fp32 and bf16, not {config.precision}")
        if prepared.module is None:
            raise VitrtError("no PyTorch model to export the inlined flavour from")
        inlined = workdir / f"{prepared.name}-{prepared.img_size}.inlined.onnx"
        if not inlined.is_file():
            from vitrt.export import export_flavours

            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                size = (3, prepared.img_size, prepared.img_size)
                export_flavours(prepared.module, {"inlined": inlined}, input_size=size, validate=False)
        return OpenVINOByHand(inlined, config.precision, threads)

    return open_by_hand


# --- rows and targets from the engine's result ----------------------------------------------------------------------


def family_of(name: str) -> str:
    from vitrt.models import get_spec

    try:
        return str(get_spec(name).family)
    except Exception:  # a timm architecture: the softmax baselines
        return "timm"


def rows_of(result: BenchResult, family: str) -> list[dict[str, Any]]:
    """The committed rows (issue 12's fields) of one model's grid; speed-ups against eager in the same run."""
    medians = {
        (row.backend, row.precision, row.batch): row.latency_ms["median"]
        for row in result.rows
        if row.latency_ms is not None
    }
    rows = []
    for row in result.rows:
        if row.backend == "onnxruntime" and row.precision != "fp32":
            continue  # ONNX Runtime runs the fp32 file; the grid's bf16 row only says so
        base32 = medians.get(("torch", "fp32", row.batch))
        base16 = medians.get(("torch", "bf16", row.batch))
        median = row.latency_ms["median"] if row.latency_ms is not None else None
        rows.append(
            {
                "model": row.model,
                "family": family,
                "batch": row.batch,
                "runtime": RUNTIMES[row.backend],
                "precision": row.precision,
                "median_ms": _round(median),
                "p90_ms": _round(row.latency_ms["p90"] if row.latency_ms is not None else None),
                "speedup_vs_eager_fp32": _ratio(base32, median),
                "speedup_vs_eager_bf16": _ratio(base16, median),
                "max_abs_vs_eager_fp32": None if row.parity is None else row.parity["max_abs"],
                "top1_agreement": None if row.parity is None else row.parity["top1_agreement"],
                "status": row.status,
                "runtime_detail": row.runtime,
                **({"skipped": row.reason} if row.status != "ok" else {}),
            }
        )
    return rows


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 2)


def _ratio(base: float | None, value: float | None) -> float | None:
    return None if base is None or value is None else round(base / value, 3)


def check_targets(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """The three speed targets of issue 12 for one model and batch (profiles are added for the missed ones)."""
    by = {(r["runtime"], r["precision"]): r for r in rows}
    result: dict[str, Any] = {"model": rows[0]["model"], "batch": rows[0]["batch"]}
    ort = by.get(("onnxruntime", "fp32"))
    if ort and ort["speedup_vs_eager_fp32"] is not None:
        result["ort_vs_eager_fp32"] = {
            "value": ort["speedup_vs_eager_fp32"],
            "met": ort["speedup_vs_eager_fp32"] >= TARGET_ORT_VS_FP32,
        }
    vitrt_rows = [r for r in rows if r["runtime"] in VITRT_RUNTIMES and r["speedup_vs_eager_bf16"] is not None]
    if vitrt_rows:
        best = max(vitrt_rows, key=lambda r: r["speedup_vs_eager_bf16"])
        result["best_vs_eager_bf16"] = {
            "value": best["speedup_vs_eager_bf16"],
            "path": f"{best['runtime']} {best['precision']}",
            "met": best["speedup_vs_eager_bf16"] >= TARGET_BEST_VS_BF16,
        }
    loaders = {}
    for precision in ("fp32", "bf16"):
        mine, hand = by.get(("openvino", precision)), by.get((BY_HAND, precision))
        if mine and hand and mine["median_ms"] and hand["median_ms"]:
            ratio = mine["median_ms"] / hand["median_ms"]
            loaders[precision] = {"ratio": round(ratio, 3), "met": ratio <= TARGET_LOADER_SLACK}
    if loaders:
        result["openvino_loader"] = loaders
    return result


# --- profiles (only where a target is missed; profiling, not timing: the medians come from the grid) ----------------


def add_profiles(target: dict[str, Any], prepared: Prepared, inlined: Path, threads: int) -> None:
    """Op-type splits of the runtimes behind a missed speed target."""
    import torch

    assert prepared.onnx is not None and prepared.module is not None
    x = torch.randn(
        (target["batch"], 3, prepared.img_size, prepared.img_size), generator=torch.Generator().manual_seed(0)
    )
    xn = x.numpy()
    ort = target.get("ort_vs_eager_fp32")
    if ort and not ort["met"]:
        ort["profile_onnxruntime"] = _safe(lambda: ort_profile(prepared.onnx, xn, threads))  # type: ignore[arg-type]
        ort["profile_eager"] = _safe(lambda: torch_profile(prepared.module, x, None))  # type: ignore[arg-type]
    best = target.get("best_vs_eager_bf16")
    if best and not best["met"]:
        runtime, precision = best["path"].split(" ")
        if runtime == "openvino":
            best["profile_best"] = _safe(lambda: openvino_profile(prepared.onnx, False, precision, xn, threads))  # type: ignore[arg-type]
        else:
            best["profile_best"] = _safe(lambda: ort_profile(prepared.onnx, xn, threads))  # type: ignore[arg-type]
        best["profile_eager_bf16"] = _safe(lambda: torch_profile(prepared.module, x, torch.bfloat16))  # type: ignore[arg-type]


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
    return _shares(times, runs)


def openvino_profile(path: Path, by_hand: bool, precision: str, x: np.ndarray, threads: int) -> dict[str, Any]:
    """Share of OpenVINO CPU time per layer type and kernel: the same model compiled again with PERF_COUNT."""
    import openvino as ov

    from vitrt.engines.openvino import read_onnx

    core = ov.Core()
    model = core.read_model(str(path)) if by_hand else read_onnx(path, core)[0]
    properties = {
        "INFERENCE_PRECISION_HINT": _OV_PRECISION[precision],
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
    return _shares(times, runs)


def torch_profile(model: Any, x: Any, autocast: Any) -> dict[str, Any]:
    """Share of PyTorch CPU self time per aten op (one profiled eager call after warm-up, autocast if given)."""
    import contextlib

    import torch

    context = torch.autocast("cpu", dtype=autocast) if autocast is not None else contextlib.nullcontext()
    with torch.inference_mode(), context:
        model(x)
        with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as prof:
            model(x)
    times: Counter[str] = Counter()
    for event in prof.key_averages():
        if event.key.startswith("aten::"):
            times[event.key.removeprefix("aten::")] += event.self_cpu_time_total
    return _shares(times, 1)


def _shares(times: Counter[str], runs: int) -> dict[str, Any]:
    total = sum(times.values()) or 1.0
    gemm = sum(v for k, v in times.items() if k.split(" ")[0] in GEMM_OPS)
    return {
        "total_ms": round(total / runs * 1e-3, 2),
        "gemm_share": round(gemm / total, 3),
        "top": [[op, round(v / total, 3), round(v / runs * 1e-3, 2)] for op, v in times.most_common(6)],
    }


def _safe(profile: Any) -> dict[str, Any]:
    try:
        return dict(profile())
    except Exception as err:  # a profile that cannot be taken is reported, the benchmark stands
        return {"error": _one_line(err)}


# --- one model, the report ------------------------------------------------------------------------------------------


def bench_model(name: str, args: argparse.Namespace, workdir: Path) -> tuple[list[dict], list[dict], dict]:
    backends = ["torch", *(["torch-compile"] if args.compile else []), "onnxruntime", "openvino", BY_HAND]
    result = run_bench(
        name,
        backends=[b for b in backends if b == "torch" or RUNTIMES[b] in args.runtimes],
        precisions="fp32,bf16",
        batch=",".join(str(b) for b in args.batches),
        img_size="224",
        threads=args.threads,
        warmup=args.warmup,
        iterations=args.repeats,
        rounds=args.rounds,
        n=args.n,
        device="cpu",
        plots=False,
        extra_runtimes={BY_HAND: by_hand_opener(workdir)},
    )
    family = family_of(name)
    rows = rows_of(result, family)
    targets = []
    for batch in args.batches:
        batch_rows = [r for r in rows if r["batch"] == batch]
        if batch_rows:
            targets.append(check_targets(batch_rows))
        summary = "  ".join(
            f"{r['runtime']}/{r['precision']} {r['median_ms']:.1f}ms x{r['speedup_vs_eager_fp32']:.2f}"
            for r in batch_rows
            if r["median_ms"] is not None and r["speedup_vs_eager_fp32"] is not None
        )
        print(f"{name} b{batch}: {summary}", flush=True)
    missed = [t for t in targets if not _all_met(t)]
    if missed and not args.no_profile:
        from vitrt.bench import sources

        prepared = sources.prepare(name, sources.source_kind(name), 224)
        for target in missed:
            add_profiles(target, prepared, workdir / f"{prepared.name}-224.inlined.onnx", args.threads)
    if args.compile:
        import torch

        torch._dynamo.reset()  # compiled graphs of this model are not reused
    info = {"wall_s": round(result.wall_s or 0.0, 1), "prepare_s": round(result.prepare_s or 0.0, 1)}
    return rows, targets, {"info": info, "machine": result.machine, "versions": result.versions, "notes": result.notes}


def _all_met(target: dict[str, Any]) -> bool:
    checks = [target.get("ort_vs_eager_fp32"), target.get("best_vs_eager_bf16")]
    return all(c is None or c["met"] for c in checks)


def _fmt(row: dict[str, Any] | None) -> str:
    if row is None:
        return "-"
    if row["median_ms"] is None:
        return "skipped" if row["status"] == "skipped" else row["status"]
    speedup = row["speedup_vs_eager_fp32"]
    return f"{row['median_ms']:.1f}" + ("" if speedup is None else f" ({speedup:.2f}x)")


def _profile_text(profile: dict[str, Any] | None) -> str:
    if not profile:
        return "no profile"
    if "error" in profile:
        return f"profile failed ({profile['error']})"
    top = ", ".join(f"{op} {share:.0%}" for op, share, _ in profile["top"][:4])
    return f"{profile['total_ms']:.0f} ms, GEMM/conv {profile['gemm_share']:.0%}; {top}"


def _missed_lines(target: dict[str, Any]) -> list[str]:
    where = f"{target['model']} batch {target['batch']}"
    ort, best = target.get("ort_vs_eager_fp32"), target.get("best_vs_eager_bf16")
    lines = []
    if ort and not ort["met"]:
        lines.append(
            f"* {where}, ORT {ort['value']:.2f}x eager FP32. ONNX Runtime: "
            f"{_profile_text(ort.get('profile_onnxruntime'))}. Eager FP32: {_profile_text(ort.get('profile_eager'))}."
        )
    if best and not best["met"]:
        lines.append(
            f"* {where}, best path {best['path']} {best['value']:.2f}x eager BF16. That path: "
            f"{_profile_text(best.get('profile_best'))}. Eager BF16: {_profile_text(best.get('profile_eager_bf16'))}."
        )
    for precision, value in target.get("openvino_loader", {}).items():
        if not value["met"]:
            lines.append(
                f"* {where}, OpenVINO {precision}: the backend on the portable file took {value['ratio']:.2f}x the "
                "time of the inlined file read by hand (both compile the same inlined graph; see the p90 columns "
                "of the JSON for the run-to-run spread)."
            )
    return lines


def write_markdown(result: dict[str, Any], path: Path) -> None:
    m = result["machine"]
    flags = set(m.get("cpu_flags", []))
    flag_text = ", ".join(
        f"{f} {'yes' if f in flags else 'no'}" for f in ("avx2", "avx512f", "avx512_bf16", "amx_bf16", "amx_int8")
    )
    lines = [
        "# CPU backends: vitrt's deployed paths against PyTorch's own CPU modes",
        "",
        f"Date {result['date']}; {m['cpu']} ({m['logical_cores']} logical cores; {flag_text}). {result['threads']} "
        f"threads for every runtime; 224 px; median of {result['repeats']} timed runs per row after "
        f"{result['warmup']} warm-up runs, interleaved in {result['rounds']} rounds in one `vitrt.bench` grid per "
        f"model{' (quick mode)' if result['quick'] else ''}. "
        + ", ".join(f"{k} {v}" for k, v in result["versions"].items())
        + ".",
        "",
        f"Command: `{result['command']}`",
        "",
        "Cells: median ms (speed-up vs PyTorch eager FP32). `OV` = vitrt's OpenVINO backend on the portable file; "
        "`OV by hand` = `openvino.Core().read_model` on the `--flavour inlined` export. Max abs: against eager FP32 "
        f"on the same {result['parity_inputs']} random inputs.",
        "",
        "| model | family | batch | eager fp32 | eager bf16 | compile fp32 | compile bf16 | ORT fp32 | OV fp32 "
        "| OV bf16 | OV by hand fp32 | OV by hand bf16 | max abs (ORT, OV fp32, OV bf16) |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    order = [(rt, p) for rt in RUNTIMES.values() for p in ("fp32", "bf16") if not (rt == "onnxruntime" and p == "bf16")]
    groups: dict[tuple[str, int], dict[tuple[str, str], dict]] = {}
    for row in result["rows"]:
        groups.setdefault((row["model"], row["batch"]), {})[(row["runtime"], row["precision"])] = row
    for (model, batch), by in groups.items():
        family = next(iter(by.values()))["family"]
        cells = [_fmt(by.get(key)) for key in order]
        errs = []
        for key in (("onnxruntime", "fp32"), ("openvino", "fp32"), ("openvino", "bf16")):
            value = by.get(key, {}).get("max_abs_vs_eager_fp32")
            errs.append("-" if value is None else f"{value:.1e}")
        lines.append(f"| {model} | {family} | {batch} | " + " | ".join(cells) + f" | {', '.join(errs)} |")
    lines += [
        "",
        "## Targets",
        "",
        f"* ONNX Runtime FP32 >= {TARGET_ORT_VS_FP32}x eager FP32; vitrt's best CPU path >= {TARGET_BEST_VS_BF16}x "
        f"eager BF16 autocast; vitrt's OpenVINO backend <= {TARGET_LOADER_SLACK:.2f}x OpenVINO on the inlined file "
        "by hand.",
        "",
        "| model | batch | ORT / eager fp32 | best vitrt path / eager bf16 | OV backend / by hand (fp32, bf16) |",
        "|---|---|---|---|---|",
    ]
    missed: list[str] = []
    for target in result["targets"]:
        ort, best = target.get("ort_vs_eager_fp32"), target.get("best_vs_eager_bf16")
        loader = target.get("openvino_loader", {})
        ort_cell = "-" if not ort else f"{ort['value']:.2f}x {'met' if ort['met'] else 'missed'}"
        best_cell = "-" if not best else f"{best['value']:.2f}x ({best['path']}) {'met' if best['met'] else 'missed'}"
        loader_cell = (
            ", ".join(f"{p} {v['ratio']:.2f} {'met' if v['met'] else 'missed'}" for p, v in loader.items()) or "-"
        )
        lines.append(f"| {target['model']} | {target['batch']} | {ort_cell} | {best_cell} | {loader_cell} |")
        missed += _missed_lines(target)
    lines += ["", "## Where a target is missed, profiled", "", *(missed or ["Every target is met."])]
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
    parser.add_argument("--n", type=int, default=8, help="random parity inputs per row (max abs vs eager FP32)")
    parser.add_argument(
        "--runtimes",
        nargs="*",
        default=["onnxruntime", "openvino", BY_HAND],
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
    args.compile = args.compile or "torch.compile" in args.runtimes
    if args.models is None:
        args.models = list(QUICK_MODELS if args.quick else DEFAULT_MODELS)
    if args.quick:
        args.repeats, args.rounds, args.warmup = 4, 2, 1
    unknown = set(args.runtimes) - set(RUNTIMES.values())
    if unknown:
        parser.error(f"unknown runtimes {sorted(unknown)}; choose from {sorted(set(RUNTIMES.values()))}")
    if args.repeats < 1 or args.rounds < 1 or args.repeats < args.rounds:
        parser.error("--repeats must be >= --rounds >= 1")
    started = dt.datetime.now(dt.UTC)
    rows: list[dict] = []
    targets: list[dict] = []
    timings: dict[str, Any] = {}
    context: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.models:
            try:
                model_rows, model_targets, context = bench_model(name, args, Path(tmp))
            except VitrtError as err:
                print(f"error: {name}: {err}", file=sys.stderr)
                return 2
            rows.extend(model_rows)
            targets.extend(model_targets)
            timings[name] = context["info"]
    if args.extend is not None and args.extend.is_file():
        earlier = json.loads(args.extend.read_text())
        measured = {row["model"] for row in rows}
        rows = [r for r in earlier["rows"] if r["model"] not in measured] + rows
        targets = [t for t in earlier["targets"] if t["model"] not in measured] + targets
        timings = {**{k: v for k, v in earlier.get("timings", {}).items() if k not in measured}, **timings}
    result = {
        "date": started.isoformat(timespec="seconds"),
        "command": "python benchmarks/cpu_backends.py " + " ".join(argv if argv is not None else sys.argv[1:]),
        "engine": "vitrt.bench.run_bench (one grid per model)",
        "machine": context.get("machine", {}),
        "versions": context.get("versions", {}),
        "threads": args.threads,
        "repeats": args.repeats,
        "rounds": args.rounds,
        "warmup": args.warmup,
        "parity_inputs": args.n,
        "quick": args.quick,
        "targets_definition": {
            "ort_vs_eager_fp32": TARGET_ORT_VS_FP32,
            "best_vs_eager_bf16": TARGET_BEST_VS_BF16,
            "openvino_loader_max_ratio": TARGET_LOADER_SLACK,
        },
        "timings": timings,
        "rows": rows,
        "targets": targets,
        "notes": [*args.note, *context.get("notes", [])],
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
