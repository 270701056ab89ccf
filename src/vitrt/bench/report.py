"""Benchmark results: one row per configuration, scaling fits, the recommendation, JSON and Markdown.

`bench.json` schema (`"schema": "vitrt.bench/1"`), documented in docs/bench.md:
  source, created, machine {cpu, logical_cores, cpu_flags, platform, gpu}, versions {...}, settings {...},
  rows [ {model, role, backend, runtime, precision, batch, img_size, pixels, status, reason, artifact,
          latency_ms {median, p90, p99, mean, min}, samples, throughput, warm_ms, rss_mb, rss_delta_mb,
          gpu_memory_mb, parity {reference, inputs, n, max_abs, mean_abs, cosine_min, top1_agreement,
          accuracy, reference_accuracy, accuracy_drop, passed, failures}} ],
          planned_s (plan only)} ],
  scaling [ {model, role, backend, precision, batch, sizes, exponent_tokens, exponent_range} ],
  crossovers [ {backend, precision, batch, model, baseline, crossover_img_size, speedup_by_size} ],
  cost_split [ {model, role, img_size, batch, total_kernel_ms, categories {attention core, attention projections,
                mlp, norm, other, unattributed: {ms, share}}, top_ops, runs, optimization} ] (with profile),
  recommendation {...} | null, interrupted, estimate_s, prepare_s, wall_s, notes.
"""

from __future__ import annotations

import json
import math
import os
import platform
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from vitrt.errors import VitrtError

if TYPE_CHECKING:
    from vitrt.bench.grid import Config
    from vitrt.parity.metrics import OutputComparison

SCHEMA = "vitrt.bench/1"
STATUSES = ("ok", "skipped", "failed", "interrupted", "planned")
# The cost exponent is fitted over resolutions at or above this (below it fixed per-image costs dominate).
FIT_FROM_PX = 448


@dataclass
class Row:
    model: str
    role: str
    backend: str
    precision: str
    batch: int
    img_size: int
    status: str = "interrupted"  # until measured
    reason: str | None = None
    runtime: str | None = None
    artifact: str | None = None
    latency_ms: dict[str, float] | None = None
    samples: int = 0
    throughput: float | None = None  # samples (images) per second
    warm_ms: float | None = None
    rss_mb: float | None = None  # process resident memory after this configuration's warm-up and parity run
    rss_delta_mb: float | None = None  # its increase over loading, warming up and the parity run
    gpu_memory_mb: float | None = None
    parity: dict[str, Any] | None = None
    accuracy: float | None = None
    reference_accuracy: float | None = None
    planned_s: float | None = None  # plan only: the measuring seconds this configuration would take

    @classmethod
    def from_config(cls, config: Config) -> Row:
        return cls(config.model, config.role, config.backend, config.precision, config.batch, config.img_size)

    @property
    def passed(self) -> bool:
        return bool(self.parity and self.parity["passed"])

    def skip(self, reason: str) -> None:
        self.status, self.reason = "skipped", reason

    def fail(self, reason: str) -> None:
        self.status, self.reason = "failed", reason

    def set_parity(self, comparison: OutputComparison, reference: str, inputs: str, n: int) -> None:
        self.parity = {
            "reference": reference,
            "inputs": inputs,
            "n": n,
            "max_abs": comparison.max_abs,
            "mean_abs": comparison.mean_abs,
            "cosine_min": comparison.cosine_min,
            "top1_agreement": comparison.top1_agreement,
            "accuracy": self.accuracy,
            "reference_accuracy": self.reference_accuracy,
            "accuracy_drop": comparison.accuracy_drop,
            "passed": comparison.passed,
            "failures": list(comparison.failures),
        }

    def set_samples(self, samples: list[float], batch: int, spent: float) -> None:
        """Statistics of the measured latencies (seconds); fewer than the plan leaves the row "interrupted"."""
        self.samples = len(samples)
        if not samples:
            return
        ms = np.asarray(samples) * 1e3
        self.latency_ms = {
            "median": float(np.median(ms)),
            "p90": float(np.percentile(ms, 90)),
            "p99": float(np.percentile(ms, 99)),
            "mean": float(ms.mean()),
            "min": float(ms.min()),
        }
        self.throughput = batch * len(samples) / float(np.sum(samples))
        self.status = "ok"

    def to_dict(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "role": self.role,
            "backend": self.backend,
            "runtime": self.runtime,
            "precision": self.precision,
            "batch": self.batch,
            "img_size": self.img_size,
            "pixels": self.img_size**2,
            "status": self.status,
            "reason": self.reason,
            "artifact": self.artifact,
            "latency_ms": self.latency_ms,
            "samples": self.samples,
            "throughput": self.throughput,
            "warm_ms": self.warm_ms,
            "rss_mb": self.rss_mb,
            "rss_delta_mb": self.rss_delta_mb,
            "gpu_memory_mb": self.gpu_memory_mb,
            "parity": self.parity,
            **({"planned_s": self.planned_s} if self.planned_s is not None else {}),
        }


@dataclass
class BenchResult:
    source: str
    settings: dict[str, Any]
    machine: dict[str, Any]
    versions: dict[str, str]
    rows: list[Row]
    created: str = ""
    interrupted: bool = False
    estimate_s: float | None = None
    prepare_s: float | None = None
    wall_s: float | None = None
    notes: list[str] = field(default_factory=list)
    scaling: list[dict[str, Any]] = field(default_factory=list)
    crossovers: list[dict[str, Any]] = field(default_factory=list)
    cost_split: list[dict[str, Any]] = field(default_factory=list)
    recommendation: dict[str, Any] | None = None
    max_accuracy_drop: float | None = None

    def __post_init__(self) -> None:
        if not self.created:
            from vitrt.engines.manifest import now_iso

            self.created = now_iso()

    @property
    def measured(self) -> list[Row]:
        return [row for row in self.rows if row.status == "ok" and row.latency_ms]

    def finish(self, max_accuracy_drop: float | None) -> None:
        """Fits and recommendation from the rows as they are now."""
        self.max_accuracy_drop = max_accuracy_drop
        self.scaling = scaling_fits(self.measured)
        self.crossovers = crossovers(self.measured)
        self.recommendation = recommend(self.rows, max_accuracy_drop)

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema": SCHEMA,
            "source": self.source,
            "created": self.created,
            "machine": self.machine,
            "versions": self.versions,
            "settings": self.settings,
            "rows": [row.to_dict() for row in self.rows],
            "scaling": self.scaling,
            "crossovers": self.crossovers,
            "cost_split": self.cost_split,
            "recommendation": self.recommendation,
            "max_accuracy_drop": self.max_accuracy_drop,
            "interrupted": self.interrupted,
            "estimate_s": self.estimate_s,
            "prepare_s": self.prepare_s,
            "wall_s": self.wall_s,
            "notes": self.notes,
        }

    def write(self, out: str | Path, *, plots: bool = True) -> list[Path]:
        """bench.json, bench.md and (with `plots`) the PNG plots under `out`; returns the paths written."""
        from vitrt.files import atomic_write

        directory = Path(out)
        try:
            directory.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise VitrtError(f"cannot create output directory {directory} ({err.strerror})") from None
        written = [directory / "bench.json", directory / "bench.md"]
        atomic_write(written[0], (json.dumps(self.to_dict(), indent=2) + "\n").encode())
        atomic_write(written[1], self.to_markdown().encode())
        if plots and self.measured:
            from vitrt.bench.plots import write_plots

            written += write_plots(self, directory)
        return written

    def to_markdown(self, title: str | None = None) -> str:
        return to_markdown(self, title)


def scaling_fits(rows: list[Row]) -> list[dict[str, Any]]:
    """Per (model, backend, precision, batch): the least-squares slope of log latency against log tokens.

    Fitted over resolutions >= FIT_FROM_PX when at least two are measured (else over all): 1.0 = linear in
    tokens, 2.0 = quadratic (softmax attention at large token counts).
    """
    groups: dict[tuple[str, str, str, str, int], list[Row]] = {}
    for row in rows:
        groups.setdefault((row.model, row.role, row.backend, row.precision, row.batch), []).append(row)
    fits = []
    for (model, role, backend, precision, batch), members in sorted(groups.items()):
        members = sorted(members, key=lambda r: r.img_size)
        if len(members) < 2:
            continue
        large = [r for r in members if r.img_size >= FIT_FROM_PX]
        used = large if len(large) >= 2 else members
        tokens = np.log([r.img_size**2 for r in used])  # tokens grow with the pixel count for any patch size
        latency = np.log([r.latency_ms["median"] for r in used if r.latency_ms])
        slope = float(np.polyfit(tokens, latency, 1)[0])
        fits.append(
            {
                "model": model,
                "role": role,
                "backend": backend,
                "precision": precision,
                "batch": batch,
                "sizes": [r.img_size for r in members],
                "latency_ms": [round(r.latency_ms["median"], 4) for r in members if r.latency_ms],
                "exponent_tokens": round(slope, 3),
                "exponent_range": [used[0].img_size, used[-1].img_size],
            }
        )
    return fits


def crossovers(rows: list[Row]) -> list[dict[str, Any]]:
    """Where each model becomes faster than each baseline, per backend/precision/batch (log-log interpolation)."""
    table: dict[tuple[str, str, int], dict[str, dict[int, float]]] = {}
    for row in rows:
        assert row.latency_ms is not None
        slot = table.setdefault((row.backend, row.precision, row.batch), {})
        slot.setdefault(f"{row.role}:{row.model}", {})[row.img_size] = row.latency_ms["median"]
    found = []
    for (backend, precision, batch), curves in sorted(table.items()):
        models = [k for k in curves if k.startswith("model:")]
        bases = [k for k in curves if k.startswith("baseline:")]
        for model in models:
            for base in bases:
                found += _crossover(backend, precision, batch, model, base, curves)
    return found


def _crossover(
    backend: str, precision: str, batch: int, model: str, base: str, curves: dict[str, dict[int, float]]
) -> list[dict[str, Any]]:
    """One model against one baseline: speed-up per resolution, and where it first reaches 1.0."""
    sizes = sorted(set(curves[model]) & set(curves[base]))
    if not sizes:
        return []
    speedups = {s: curves[base][s] / curves[model][s] for s in sizes}
    crossing: float | None = None
    if speedups[sizes[0]] >= 1:
        crossing = float(sizes[0])  # faster from the smallest size measured
    for lo, hi in zip(sizes, sizes[1:], strict=False):
        a, b = math.log(speedups[lo]), math.log(speedups[hi])
        if crossing is None and a < 0 <= b:
            t = -a / (b - a)
            crossing = math.exp(math.log(lo) + t * (math.log(hi) - math.log(lo)))
    return [
        {
            "backend": backend,
            "precision": precision,
            "batch": batch,
            "model": model.split(":", 1)[1],
            "baseline": base.split(":", 1)[1],
            "speedup_by_size": {str(s): round(v, 3) for s, v in speedups.items()},
            "crossover_img_size": None if crossing is None else round(crossing),
        }
    ]


def _error_pp(row: Row) -> float | None:
    """The row's accuracy cost in percentage points: accuracy drop on labelled inputs, else top-1 disagreement."""
    parity = row.parity or {}
    if parity.get("accuracy_drop") is not None:
        return 100.0 * max(0.0, parity["accuracy_drop"])
    if parity.get("top1_agreement") is not None:
        return 100.0 * (1.0 - parity["top1_agreement"])
    return None


def recommend(rows: list[Row], max_accuracy_drop: float | None) -> dict[str, Any] | None:
    """The highest-throughput measured configuration of the model (not the baseline) within the budget.

    With several models, the recommendation is for the first (the others are comparisons).
    Within budget: the precision's parity budget passes, or - when `max_accuracy_drop` (percentage points) is
    given - the accuracy drop (labelled inputs) or top-1 disagreement is at most that.
    """
    candidates = []
    primary = next((row.model for row in rows if row.role == "model"), None)  # several models: the first one
    for row in rows:
        if (
            row.role != "model"
            or row.model != primary
            or row.status != "ok"
            or not row.throughput
            or row.parity is None
        ):
            continue
        error = _error_pp(row)
        ok = row.passed if max_accuracy_drop is None else error is not None and error <= max_accuracy_drop + 1e-9
        if ok and math.isfinite(row.parity["max_abs"]):
            candidates.append(row)
    if not candidates:
        return None
    best = max(candidates, key=lambda r: r.throughput or 0.0)
    single = [r for r in candidates if r.batch == min(c.batch for c in candidates)]
    fastest_single = min(single, key=lambda r: r.latency_ms["median"] if r.latency_ms else math.inf)
    return {
        "throughput": _pick(best),
        "latency": _pick(fastest_single),
        "budget": "parity budget of each precision"
        if max_accuracy_drop is None
        else f"accuracy drop (or top-1 disagreement) <= {max_accuracy_drop} percentage points",
    }


def _pick(row: Row) -> dict[str, Any]:
    return {
        "backend": row.backend,
        "precision": row.precision,
        "batch": row.batch,
        "img_size": row.img_size,
        "runtime": row.runtime,
        "latency_ms": row.latency_ms["median"] if row.latency_ms else None,
        "throughput": row.throughput,
        "error_pp": _error_pp(row),
        "max_abs": row.parity["max_abs"] if row.parity else None,
        "command": serve_command(row),
    }


def serve_command(row: Row) -> str:
    """The `vitrt serve` command line that deploys this configuration."""
    artifact = row.artifact or row.model
    parts = ["vitrt serve", _quote(artifact)]
    if row.backend in ("torch", "torch-compile"):
        parts = ["vitrt serve", row.model, "--backend torch"]
        if row.backend == "torch-compile":
            parts.append("--option compile=true")
        if row.precision != "fp32":
            dtype = {"bf16": "bfloat16", "fp16": "float16"}[row.precision]
            parts.append(f"--option dtype={dtype}")
    elif row.backend == "tensorrt":
        parts = ["vitrt build", _quote(artifact), f"--precision {row.precision} --out model.plan &&"]
        parts += ["vitrt serve model.plan --backend tensorrt"]
    else:
        parts.append(f"--backend {row.backend}")
        if row.backend != "onnxruntime" and row.precision not in ("fp32", "int8"):
            parts.append(f"--option precision={row.precision}")
    parts.append(f"--max-batch {row.batch}")
    return " ".join(parts)


def _quote(text: str) -> str:
    import shlex

    return shlex.quote(text)


def to_markdown(result: BenchResult, title: str | None = None) -> str:
    m, s = result.machine, result.settings
    lines = [
        f"# {title or f'vitrt bench: {result.source}'}",
        "",
        f"Date {result.created}; {m['cpu']} ({m['logical_cores']} logical cores"
        + (f", GPU {m['gpu']}" if m.get("gpu") else "")
        + f"); threads {s.get('threads') or 'runtime default'}; device {s.get('device')}.",
        "Versions: " + ", ".join(f"{k} {v}" for k, v in result.versions.items()) + ".",
        f"Timing: {s.get('warmup')} warm-up runs, then {s.get('rounds')} interleaved rounds over all configurations "
        + (f"({s['iterations']} runs each" if s.get("iterations") else f"(up to {s.get('duration') or 3.0:g} s each")
        + "); latency per batch in ms, throughput in images/s.",
        f"Parity: every row against PyTorch fp32 on {s.get('n')} {s.get('inputs')} inputs "
        "(max abs logit error, top-1 agreement, accuracy on labelled inputs); budget per precision.",
    ]
    if result.interrupted:
        lines += ["", "**Interrupted**: partial results."]
    lines += [
        "",
        "| model | backend | precision | batch | px | median ms | p90 ms | p99 ms | img/s | RSS MB | max abs "
        "| top-1 agr. | acc. | parity | status |",
        "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|---|",
    ]
    for row in result.rows:
        lat = row.latency_ms or {}
        parity = row.parity or {}
        status = row.status if not row.reason else f"{row.status}: {row.reason}"
        if row.planned_s is not None:
            status = f"planned: ~{row.planned_s:.1f} s to measure"
        verdict = "" if not parity else "pass" if parity["passed"] else "FAIL " + "; ".join(parity["failures"])
        lines.append(
            f"| {row.model} | {row.backend} | {row.precision} | {row.batch} | {row.img_size} | {_f(lat.get('median'))}"
            f" | {_f(lat.get('p90'))} | {_f(lat.get('p99'))} | {_f(row.throughput, 1)} | {_f(row.rss_mb, 0)} | "
            f"{_e(parity.get('max_abs'))} | {_f(parity.get('top1_agreement'), 3)} | "
            f"{_f(parity.get('accuracy'), 4)} | {verdict} | {status} |"
        )
    if result.scaling:
        lines += [
            "",
            "## Cost against resolution",
            "",
            "Exponent = slope of log latency against log tokens (1.0 linear, 2.0 quadratic), fitted from "
            f"{FIT_FROM_PX} px up where two such sizes were measured.",
            "",
            "| model | backend | precision | batch | sizes | median ms | exponent | fitted over |",
            "|---|---|---|---:|---|---|---:|---|",
        ]
        for fit in result.scaling:
            lines.append(
                f"| {fit['model']} | {fit['backend']} | {fit['precision']} | {fit['batch']} | "
                f"{', '.join(map(str, fit['sizes']))} | {', '.join(f'{v:.2f}' for v in fit['latency_ms'])} | "
                f"{fit['exponent_tokens']:.2f} | {fit['exponent_range'][0]}-{fit['exponent_range'][1]} px |"
            )
    if result.crossovers:
        lines += [
            "",
            "## Against the baseline",
            "",
            "| backend | precision | batch | model | baseline | speed-up by px | faster from |",
            "|---|---|---:|---|---|---|---:|",
        ]
        for c in result.crossovers:
            speed = ", ".join(f"{k}: {v:.2f}x" for k, v in c["speedup_by_size"].items())
            cross = f"{c['crossover_img_size']} px" if c["crossover_img_size"] else "not in range"
            lines.append(
                f"| {c['backend']} | {c['precision']} | {c['batch']} | {c['model']} | {c['baseline']} | {speed} | "
                f"{cross} |"
            )
    lines += cost_split_lines(result.cost_split)
    lines += ["", "## Recommendation", "", *recommendation_lines(result)]
    if result.notes:
        lines += ["", "## Notes", "", *[f"* {note}" for note in result.notes]]
    return "\n".join(lines) + "\n"


def cost_split_lines(splits: list[dict[str, Any]]) -> list[str]:
    """Markdown for the ONNX Runtime cost split: shares per model and resolution, and each part's exponent."""
    if not splits:
        return []
    from vitrt.bench.profile import CATEGORIES, split_exponents

    lines = [
        "",
        "## Where the time goes",
        "",
        "Share of ONNX Runtime CPU kernel time (profile at basic optimization level, batch "
        f"{splits[0]['batch']}) by part of the network; `vitrt.bench.profile` documents the categories.",
        "",
        "| model | px | kernel ms | " + " | ".join(CATEGORIES) + " | top ops |",
        "|---|---:|---:|" + "---:|" * len(CATEGORIES) + "---|",
    ]
    for split in splits:
        shares = " | ".join(f"{100 * split['categories'][c]['share']:.1f}%" for c in CATEGORIES)
        ops = ", ".join(f"{op} {100 * share:.0f}%" for op, share in split["top_ops"][:3])
        lines.append(f"| {split['model']} | {split['img_size']} | {split['total_kernel_ms']:.1f} | {shares} | {ops} |")
    by_model: dict[str, list[dict[str, Any]]] = {}
    for split in splits:
        by_model.setdefault(split["model"], []).append(split)
    fits = {model: split_exponents(members, FIT_FROM_PX) for model, members in by_model.items()}
    fits = {model: fit for model, fit in fits.items() if fit}
    if fits:
        parts = ("total", "attention", "attention core", "attention projections", "mlp", "norm", "other")
        lines += [
            "",
            f"Cost exponent in tokens of each part (kernel time, fitted from {FIT_FROM_PX} px up):",
            "",
            "| model | " + " | ".join(parts) + " |",
            "|---|" + "---:|" * len(parts),
        ]
        for model, fit in fits.items():
            lines.append(f"| {model} | " + " | ".join(_f(fit.get(part)) for part in parts) + " |")
    return lines


def recommendation_lines(result: BenchResult) -> list[str]:
    rec = result.recommendation
    if rec is None:
        return ["No measured configuration is within the budget."]
    lines = [f"Budget: {rec['budget']}.", ""]
    for what, label in (("throughput", "Highest throughput"), ("latency", "Lowest latency at the smallest batch")):
        pick = rec[what]
        error = "n/a" if pick["error_pp"] is None else f"{pick['error_pp']:.2f} pp"
        lines.append(
            f"* {label}: **{pick['backend']} {pick['precision']}**, batch {pick['batch']}, {pick['img_size']} px — "
            f"{pick['latency_ms']:.2f} ms, {pick['throughput']:.1f} img/s, error {error}, max abs "
            f"{pick['max_abs']:.2g}  \n  `{pick['command']}`"
        )
    return lines


def _f(value: float | None, digits: int = 2) -> str:
    return "" if value is None else f"{value:.{digits}f}"


def _e(value: float | None) -> str:
    return "" if value is None else f"{value:.1e}"


def machine_info() -> dict[str, Any]:
    cpu = platform.processor() or platform.machine()
    flags: list[str] = []
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name") and cpu in ("", platform.machine(), platform.processor()):
                cpu = line.split(":", 1)[1].strip()
            if line.startswith("flags") and not flags:
                flags = line.split(":", 1)[1].split()
    except OSError:
        pass
    interesting = [f for f in flags if f.startswith(("avx", "amx", "fma", "f16c", "sse4", "vnni"))]
    info: dict[str, Any] = {
        "cpu": cpu,
        "logical_cores": os.cpu_count(),
        "cpu_flags": interesting,
        "platform": platform.platform(),
        "gpu": None,
    }
    from vitrt.engines.availability import cuda_available

    if cuda_available():
        import torch

        info["gpu"] = torch.cuda.get_device_name()
    return info


def versions() -> dict[str, str]:
    import importlib.metadata as md

    from vitrt import __version__

    found = {"vitrt": __version__, "python": platform.python_version()}
    for package in ("numpy", "torch", "onnxruntime", "openvino", "tensorrt", "timm"):
        try:
            found[package] = md.version(package)
        except md.PackageNotFoundError:
            continue
    return found


def rss_mb() -> float:
    """This process's resident memory now (MiB)."""
    try:
        pages = int(Path("/proc/self/statm").read_text().split()[1])
        return pages * os.sysconf("SC_PAGE_SIZE") / 2**20
    except (OSError, ValueError, IndexError):
        import resource

        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def gpu_memory_mb(device: str) -> float | None:
    """Device memory in use on the GPU (MiB; all allocators, from the driver), None on CPU."""
    if not device.startswith("cuda"):
        return None
    import torch

    free, total = torch.cuda.mem_get_info()
    return (total - free) / 2**20


def load_result(path: str | Path) -> dict[str, Any]:
    """A bench.json, checked for its schema tag."""
    data = json.loads(Path(path).read_text())
    if data.get("schema") != SCHEMA:
        raise VitrtError(f"{path} is not a vitrt bench result (schema {data.get('schema')!r})")
    return dict(data)
