"""`run_bench`: measure every configuration of the grid, interleaved, with parity against PyTorch fp32.

Phases: (1) validate the request and mark what cannot run here as skipped rows; (2) per model and resolution,
export (cached) and compute the PyTorch fp32 reference logits on the parity inputs; (3) per configuration, open
the runtime, warm up, run the parity inputs and compare; (4) estimate the measuring time, refuse a grid over
`max_time`; (5) measure in rounds, every round visiting every configuration (rotated order), so configurations
share the machine's drift; (6) statistics, scaling fits, recommendation, files. Ctrl-C during (5) keeps what was
measured and still writes the files.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from vitrt.bench import grid as grid_mod
from vitrt.bench.grid import BenchInputError, Config
from vitrt.bench.report import BenchResult, Row, machine_info, versions
from vitrt.errors import VitrtError

if TYPE_CHECKING:
    from vitrt.bench.sources import Prepared
    from vitrt.engines.base import InferenceBackend

log = logging.getLogger(__name__)

DEFAULT_DURATION_S = 3.0  # measured seconds per configuration when --iterations is not given
DEFAULT_MAX_SAMPLES = 50
MIN_SAMPLES = 3
WARN_AFTER_S = 600.0

# A runtime the caller adds to the grid: (configuration, its prepared model, threads) -> an open backend.
RuntimeOpener = Callable[[Config, "Prepared", "int | None"], "InferenceBackend"]


@dataclass
class BenchSettings:
    batches: list[int]
    img_sizes: list[int]
    backends: list[str]
    precisions: list[str]
    threads: int | None = None
    warmup: int = 2
    iterations: int | None = None
    duration: float | None = None
    rounds: int = 3
    inputs: str = "random"
    n: int = 16
    max_time: float | None = None
    device: str = "cpu"
    seed: int = 0

    def to_dict(self) -> dict[str, Any]:
        return dict(vars(self))


@dataclass
class _Live:
    """A configuration being measured."""

    config: Config
    backend: InferenceBackend
    feeds: dict[str, np.ndarray]
    row: Row
    target: int  # samples wanted
    budget_s: float | None  # measured seconds allowed
    samples: list[float] = field(default_factory=list)
    spent: float = 0.0


def run_bench(
    source: str | Sequence[str],
    *,
    backends: str | Sequence[str] | None = None,
    precisions: str | Sequence[str] | None = None,
    batch: str | Sequence[int] = "1,8",
    img_size: str | Sequence[int] | None = None,
    threads: int | None = None,
    warmup: int = 2,
    iterations: int | None = None,
    duration: float | None = None,
    rounds: int = 3,
    baseline: str | Sequence[str] | None = None,
    inputs: str = "random",
    n: int = 16,
    max_time: float | None = None,
    device: str = "auto",
    int8: str | Path | None = None,
    reference: str | None = None,
    arch: str | None = None,
    max_accuracy_drop: float | None = None,
    out: str | Path | None = None,
    plots: bool = True,
    profile: bool = False,
    plan: bool = False,
    progress: bool | None = None,
    on_round: Callable[[int], None] | None = None,
    extra_runtimes: Mapping[str, RuntimeOpener] | None = None,
) -> BenchResult:
    """Benchmark `source` (zoo name, checkpoint, timm name, ONNX file or engine; or a list of them) over the grid.

    backends: comma list from `vitrt.bench.grid.known_backends()` (default torch,onnxruntime,openvino,tensorrt;
        "all" adds torch-compile). precisions: fp32,bf16,fp16,int8 (default fp32 + bf16 on CPU / fp16 on GPU).
    batch, img_size: comma lists (img_size default: the model's own). iterations: timed runs per configuration;
        duration: measured seconds per configuration (default: up to 50 runs or 3 s, whichever first).
    baseline: softmax architectures (e.g. timm's deit_tiny_patch16_224; a list or comma string) measured on the
        same grid, interleaved with the models; each model gets a crossover resolution against each baseline.
    inputs/n: parity inputs ("random", "demo-digits" or an ImageFolder) - every row carries its error.
    max_time: refuse a grid estimated to measure longer, and stop measuring when it is spent (seconds).
    int8: an INT8 ONNX file (vitrt quantize) for the int8 rows. reference: the PyTorch model of an artifact.
    max_accuracy_drop: the recommendation's budget in percentage points (accuracy, or top-1 disagreement).
    out: directory for bench.json, bench.md and the PNG plots. on_round: called after every measuring round.
    profile: after measuring, split each ONNX file's kernel time (ONNX Runtime profile, smallest batch) into
        attention core / projections / MLP / norm / other (`vitrt.bench.profile`), per model and resolution.
    plan: export, open, warm up and check parity of every configuration, estimate the measuring time
        (`estimate_s`), and stop there (rows "planned") - to size --duration/--max-time before a long grid.
    extra_runtimes: runtimes besides vitrt's, by name (name them in `backends` too): each opener gets the
        configuration, the prepared model (`vitrt.bench.sources.Prepared`: PyTorch module, ONNX file) and the
        thread count, returns an `InferenceBackend`, and raises `VitrtError` to skip the row with its reason.
        Their rows are measured interleaved with the rest, with the same statistics and parity.
    """
    from vitrt.bench import sources

    extras = {name.lower(): opener for name, opener in (extra_runtimes or {}).items()}
    settings = _settings(
        backends, precisions, batch, threads, warmup, iterations, duration, rounds, n, max_time, tuple(extras)
    )
    settings.device = _device(device)
    settings.inputs, settings.seed = inputs, 0
    int8_path = Path(int8) if int8 is not None else None
    if int8_path is not None and not int8_path.is_file():
        raise BenchInputError(f"file not found: {int8_path}")
    if max_accuracy_drop is not None and not 0 <= max_accuracy_drop <= 100:
        raise BenchInputError(f"--max-accuracy-drop is in percentage points (0..100), got {max_accuracy_drop}")
    names = _names(source, "model")
    baselines = _names(baseline, "baseline") if baseline else []
    models = [(name, sources.source_kind(name), "model") for name in names]
    models += [(name, sources.source_kind(name), "baseline") for name in baselines if name not in names]
    settings.img_sizes = _img_sizes(img_size, [(m, k) for m, k, role in models if role == "model"])
    configs = grid_mod.expand(
        [(m, role) for m, _, role in models],
        settings.backends,
        settings.precisions,
        settings.batches,
        settings.img_sizes,
    )
    result = BenchResult(
        source=",".join(names), settings=settings.to_dict(), machine=machine_info(), versions=versions(), rows=[]
    )
    started = time.perf_counter()
    opened: list[InferenceBackend] = []
    live: list[_Live] = []
    try:
        live = _prepare_all(models, configs, settings, result, opened, int8_path, reference, arch, extras)
        _check_time(live, settings, result, time.perf_counter() - started, plan)
        if plan:
            _mark_planned(live, result, time.perf_counter() - started)
            live = []
        else:
            _measure(live, settings, result, started, out, progress, on_round)
            if profile:
                result.cost_split = _profile(live, settings)
    except KeyboardInterrupt:
        result.interrupted = True
        result.notes.append("interrupted (Ctrl-C): rows show what was measured until then")
    finally:
        for item in live:
            item.row.set_samples(item.samples, item.config.batch, item.spent)
        for backend in opened:
            try:
                backend.close()
            except Exception:  # closing must not hide the measurement (or the interruption) being reported
                log.debug("closing %s failed", backend.describe(), exc_info=True)
        result.wall_s = time.perf_counter() - started
        result.finish(max_accuracy_drop)
        if out is not None:
            result.write(out, plots=plots)
    return result


def _settings(
    backends: Any,
    precisions: Any,
    batch: Any,
    threads: int | None,
    warmup: int,
    iterations: int | None,
    duration: float | None,
    rounds: int,
    n: int,
    max_time: float | None,
    extra: tuple[str, ...] = (),
) -> BenchSettings:
    chosen_backends = grid_mod.parse_backends(backends, extra)
    chosen_precisions = grid_mod.parse_precisions(precisions)
    batches = grid_mod.parse_ints(batch, "batch", grid_mod.MAX_BATCH)
    if threads is not None and threads < 1:
        raise BenchInputError(f"--threads must be at least 1, got {threads}")
    if warmup < 0:
        raise BenchInputError(f"--warmup must be 0 or more, got {warmup}")
    if iterations is not None and iterations < 1:
        raise BenchInputError(f"--iterations must be at least 1, got {iterations}")
    if duration is not None and not duration > 0:
        raise BenchInputError(f"--duration must be positive seconds, got {duration}")
    if rounds < 1:
        raise BenchInputError(f"--rounds must be at least 1, got {rounds}")
    if n < 1:
        raise BenchInputError(f"--n must be at least 1, got {n}")
    if max_time is not None and not max_time > 0:
        raise BenchInputError(f"--max-time must be positive seconds, got {max_time}")
    return BenchSettings(
        batches=batches,
        img_sizes=[],
        backends=chosen_backends,
        precisions=chosen_precisions,
        threads=threads,
        warmup=warmup,
        iterations=iterations,
        duration=duration,
        rounds=rounds,
        n=n,
        max_time=max_time,
    )


def _device(device: str) -> str:
    from vitrt.engines.availability import cuda_available

    if device == "auto":
        return "cuda" if cuda_available() else "cpu"
    if device != "cpu" and not device.startswith("cuda"):
        raise BenchInputError(f"unknown device {device!r} (auto, cpu, cuda, cuda:N)")
    if device.startswith("cuda") and not cuda_available():
        raise BenchInputError(f"device {device!r} requested but no CUDA GPU is visible")
    return device


def _names(value: str | Sequence[str] | None, what: str) -> list[str]:
    """A model list from one name, a comma string (baselines) or a sequence; duplicates dropped."""
    if value is None:
        return []
    items = [str(v) for v in value] if not isinstance(value, str) else [value]
    if what == "baseline":
        items = [part for item in items for part in item.split(",")]
    names = list(dict.fromkeys(item.strip() for item in items if item.strip()))
    if not names:
        raise BenchInputError(f"no {what} to benchmark")
    return names


def _img_sizes(img_size: Any, models: list[tuple[str, str]]) -> list[int]:
    if img_size is not None:
        return grid_mod.parse_ints(img_size, "img-size", grid_mod.MAX_IMG_SIZE)
    own = {_own_img_size(source, kind) for source, kind in models}
    if len(own) > 1:
        sizes = ", ".join(str(s) for s in sorted(own))
        raise BenchInputError(f"the models have different default resolutions ({sizes}); pass --img-size")
    return [own.pop()]


def _own_img_size(source: str, kind: str) -> int:
    from vitrt.bench import sources

    if kind in ("onnx", "engine"):
        return sources.artifact_img_size(source)
    if kind == "zoo" and not Path(source).suffix:
        from vitrt.models import get_spec

        return int(get_spec(source).default_img_size)
    if kind == "timm":
        return 224
    raise BenchInputError("pass --img-size for a checkpoint (the resolution to export it at)")


def _prepare_all(
    models: list[tuple[str, str, str]],
    configs: list[Config],
    settings: BenchSettings,
    result: BenchResult,
    opened: list[InferenceBackend],
    int8: Path | None,
    reference: str | None,
    arch: str | None,
    extras: Mapping[str, RuntimeOpener],
) -> list[_Live]:
    """Rows for every configuration; the runnable ones warmed up, parity-checked and ready to measure."""
    from vitrt.bench import sources
    from vitrt.bench.runtimes import open_runtime

    kinds = {m: k for m, k, _ in models}
    live: list[_Live] = []
    prepared: dict[tuple[str, int], Prepared | str] = {}
    runtimes: dict[tuple[str, str, str, int], InferenceBackend | str] = {}
    references: dict[tuple[str, int], tuple[Any, str]] = {}
    max_batch = max(settings.batches)
    for config in configs:
        row = Row.from_config(config)
        result.rows.append(row)
        problem = (
            None
            if config.backend in extras
            else grid_mod.support_problem(config.backend, config.precision, settings.device)
        )
        if problem is not None:
            row.skip(problem)
            continue
        group = (config.model, config.img_size)
        if group not in prepared:
            try:
                prepared[group] = sources.prepare(
                    config.model,
                    kinds[config.model],
                    config.img_size,
                    arch=arch if config.role == "model" else None,
                    reference=reference if config.role == "model" else None,
                )
            except VitrtError as err:
                prepared[group] = str(err)
        prep = prepared[group]
        if isinstance(prep, str):
            row.skip(prep)
            continue
        for note in prep.notes:
            if note not in result.notes:
                result.notes.append(note)
        row.model = prep.name
        row.artifact = str(prep.onnx) if prep.onnx is not None else None
        if group not in references:
            references[group] = _reference(prep, settings)
        key = config.runtime_key
        if key not in runtimes:
            try:
                if config.backend in extras:
                    runtimes[key] = extras[config.backend](config, prep, settings.threads)
                else:
                    runtimes[key] = open_runtime(
                        config, prep, threads=settings.threads, device=settings.device, int8=int8, max_batch=max_batch
                    )
                opened.append(runtimes[key])  # type: ignore[arg-type]
            except VitrtError as err:
                runtimes[key] = str(err)
        backend = runtimes[key]
        if isinstance(backend, str):
            row.skip(backend)
            continue
        row.runtime = backend.describe()
        if config.precision == "int8" and int8 is not None:
            row.artifact = str(int8)
        try:
            item = _warm(config, backend, row, prep, settings, references[group])
        except VitrtError as err:
            row.fail(str(err))
            continue
        except Exception as err:  # a runtime crashing on this configuration is a result, not the end of the grid
            message = f"{type(err).__name__}: {' '.join(str(err).split())[:200]}"
            if config.backend == "torch-compile":  # compiling happens at the first call: no toolchain, no graph
                row.skip(f"torch.compile (inductor) failed to compile: {message}")
            else:
                row.fail(message)
            continue
        live.append(item)
    return live


def _reference(prep: Prepared, settings: BenchSettings) -> tuple[Any, str]:
    """(parity inputs, reference logits) for one model at one resolution, and what the reference is."""
    from vitrt.parity.inputs import load_inputs

    data = load_inputs(settings.inputs, prep.metadata, settings.n, settings.seed)
    if prep.module is not None:
        from vitrt.engines.pytorch import TorchBackend

        ref: InferenceBackend = TorchBackend(
            prep.module, metadata=prep.metadata, device=settings.device, dtype="float32"
        )
        label = "torch fp32"
    else:
        from vitrt.engines import load

        assert prep.onnx is not None
        ref = load(prep.onnx, backend="onnxruntime")
        label = "onnxruntime fp32"
    logits = run_batched(ref, data.images, min(32, len(data.images)))
    return (data, logits), label


def run_batched(backend: Any, images: np.ndarray, batch: int) -> np.ndarray:
    """Logits of all images, `batch` at a time; a short last batch is padded to `batch` (fixed-shape engines)."""
    chunks = []
    for start in range(0, len(images), batch):
        chunk = images[start : start + batch]
        real = len(chunk)
        if real < batch:
            pad = np.zeros((batch - real, *chunk.shape[1:]), dtype=chunk.dtype)
            chunk = np.concatenate([chunk, pad])
        chunks.append(backend.infer(chunk)[:real])
    return np.concatenate(chunks)


def _warm(
    config: Config,
    backend: InferenceBackend,
    row: Row,
    prep: Prepared,
    settings: BenchSettings,
    reference: tuple[Any, str],
) -> _Live:
    from vitrt.bench.report import gpu_memory_mb, rss_mb
    from vitrt.parity.budgets import DEFAULT_BUDGETS
    from vitrt.parity.metrics import accuracy, check_budget, compare

    (data, ref_logits), ref_label = reference
    before = rss_mb()
    rng = np.random.default_rng(config.batch)
    spec = backend.inputs[0]
    feeds = {spec.name: rng.standard_normal((config.batch, *prep.metadata.input_size), dtype=np.float32)}
    feeds = backend.validate(feeds)
    warm_times = []
    for _ in range(max(1, settings.warmup)):
        start = time.perf_counter()
        backend.run(feeds)
        warm_times.append(time.perf_counter() - start)
    logits = run_batched(backend, data.images, config.batch)
    comparison = compare(config.backend, backend.outputs[0].name, ref_logits, logits)
    if data.labels is not None:
        ref_acc, acc = accuracy(ref_logits, data.labels), accuracy(logits, data.labels)
        comparison.accuracy_drop = ref_acc - acc
        row.accuracy, row.reference_accuracy = acc, ref_acc
    budget = DEFAULT_BUDGETS.get(config.precision) or _int8_budget()
    check_budget(comparison, budget)
    row.set_parity(comparison, ref_label, data.source, len(data.images))
    row.rss_mb, row.rss_delta_mb = rss_mb(), rss_mb() - before
    row.gpu_memory_mb = gpu_memory_mb(settings.device)
    row.warm_ms = 1e3 * min(warm_times)
    if settings.iterations is not None:
        target, budget_s = settings.iterations, settings.duration
    else:
        target, budget_s = DEFAULT_MAX_SAMPLES, settings.duration or DEFAULT_DURATION_S
    return _Live(config, backend, feeds, row, target, budget_s)


def _int8_budget() -> Any:
    from vitrt.parity.budgets import Budget

    # INT8 keeps predictions, not logits: a wide logit budget, the same top-1 and accuracy guards as bf16.
    return Budget(
        max_abs=1.0, mean_abs=0.2, min_cosine=0.98, min_top1_agreement=0.90, max_accuracy_drop=0.02, block_rel=0.2
    )


def planned_seconds(item: _Live) -> float:
    """How long measuring one configuration should take, from its warm-up latency."""
    per_run = max(item.row.warm_ms or 0.0, 1e-3) / 1e3
    seconds = per_run * item.target
    if item.budget_s is not None:
        seconds = min(seconds, max(item.budget_s, per_run * MIN_SAMPLES))
    return seconds


def _check_time(
    live: list[_Live], settings: BenchSettings, result: BenchResult, elapsed: float, plan: bool = False
) -> None:
    estimate = sum(planned_seconds(item) for item in live)
    result.estimate_s = estimate
    result.prepare_s = elapsed
    if plan:
        return
    if settings.max_time is not None and elapsed + estimate > settings.max_time:
        raise BenchInputError(
            f"the grid would take about {_fmt_s(elapsed + estimate)} ({len(live)} configurations), more than "
            f"--max-time {_fmt_s(settings.max_time)}; lower --iterations/--duration or measure fewer configurations"
        )
    if estimate > WARN_AFTER_S:
        log.warning("measuring %d configurations will take about %s", len(live), _fmt_s(estimate))


def _mark_planned(live: list[_Live], result: BenchResult, elapsed: float) -> None:
    for item in live:
        item.row.status = "planned"
        item.row.planned_s = round(planned_seconds(item), 3)
    result.notes.append(
        f"plan only: preparing (exports, warm-up, parity) took {_fmt_s(elapsed)}; measuring the "
        f"{len(live)} configurations would take about {_fmt_s(result.estimate_s or 0.0)} more"
    )


def _profile(live: list[_Live], settings: BenchSettings) -> list[dict[str, Any]]:
    """The cost split of every ONNX file measured, at the smallest batch (one per model and resolution)."""
    from vitrt.bench.profile import cost_split

    done: dict[tuple[str, int], dict[str, Any]] = {}
    batch = min(settings.batches)
    for item in live:
        artifact = item.row.artifact
        key = (item.row.model, item.config.img_size)
        if key in done or artifact is None or item.config.precision != "fp32" or not artifact.endswith(".onnx"):
            continue
        try:
            split = cost_split(artifact, batch=batch, threads=settings.threads)
        except Exception as err:  # a profile that cannot be taken is a note, not a lost benchmark
            log.warning("cannot profile %s: %s", artifact, err)
            continue
        done[key] = {
            "model": item.row.model,
            "role": item.config.role,
            "img_size": item.config.img_size,
            "batch": batch,
            **split,
        }
    return sorted(done.values(), key=lambda s: (s["role"], s["model"], s["img_size"]))


def _measure(
    live: list[_Live],
    settings: BenchSettings,
    result: BenchResult,
    started: float,
    out: str | Path | None,
    progress: bool | None,
    on_round: Callable[[int], None] | None,
) -> None:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    rounds = settings.rounds
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
    import sys

    show = sys.stderr.isatty() if progress is None else progress
    with Progress(*columns, transient=True, disable=not show) as bar:
        task = bar.add_task("measuring", total=rounds * len(live))
        for index in range(rounds):
            shift = index % max(1, len(live))
            order = live[shift:] + live[:shift]  # rotate, so no configuration always follows the same one
            for item in order:
                bar.update(task, description=f"round {index + 1}/{rounds} {item.config.key}")
                _measure_round(item, rounds - index)
                bar.advance(task)
                if settings.max_time is not None and time.perf_counter() - started > settings.max_time:
                    result.notes.append(f"stopped after --max-time {_fmt_s(settings.max_time)} (partial samples)")
                    return
            if out is not None and index + 1 < rounds:
                for each in live:
                    each.row.set_samples(each.samples, each.config.batch, each.spent)
                result.write(out, plots=False)  # partial results survive a kill between rounds
            if on_round is not None:
                on_round(index + 1)


def _measure_round(item: _Live, rounds_left: int) -> None:
    """This round's share of the configuration's remaining samples and seconds."""
    want = math.ceil(max(0, item.target - len(item.samples)) / rounds_left)
    seconds = None if item.budget_s is None else max(0.0, item.budget_s - item.spent) / rounds_left
    floor = math.ceil(MIN_SAMPLES / max(1, rounds_left)) if len(item.samples) < MIN_SAMPLES else 0
    began = time.perf_counter()
    taken = 0
    while taken < want:
        start = time.perf_counter()
        item.backend.run(item.feeds)
        end = time.perf_counter()
        item.samples.append(end - start)
        taken += 1
        if seconds is not None and end - began >= seconds and taken >= floor:
            break
    item.spent += time.perf_counter() - began


def _fmt_s(seconds: float) -> str:
    return f"{seconds:.0f} s" if seconds < 120 else f"{seconds / 60:.1f} min"
