"""Shadow parity: a sampled fraction of live requests re-run on a reference backend, off the request path.

`ServedModel.infer` hands every finished request to `ShadowMonitor.offer` after its response is computed. The
sampler picks a fraction (`rate`) of them; picked ones go into a bounded queue (a full queue drops the sample and
counts it, the request never waits) that one worker thread drains. It gathers samples for up to `_GATHER_S`
(at most `_MAX_ROWS` rows), runs them on the reference backend as one batch and compares the primary's outputs with
`vitrt.parity.metrics.compare` once for the whole batch (numpy, vectorised over the rows; only a batch with a
request over budget is compared again request by request, to name and keep the offenders). A sliding window of the
last `window` compared requests is checked against a parity budget with `vitrt.parity.metrics.check_budget`, the
same code and budgets `vitrt parity` uses.

Lower priority is a duty cycle, not OS niceness: one worker thread runs the reference (on `threads` runtime threads)
and after each batch waits `elapsed * (threads / cpu_share - 1)`, so the shadow uses at most `cpu_share` of one
core's time, and what arrives meanwhile beyond the queue is dropped. (No OS niceness: a niced thread that is descheduled
while it holds the GIL stalls the event loop and the primary's batch loop, which are waiting for it.)
"""

from __future__ import annotations

import asyncio
import io
import json
import logging
import math
import os
import queue
import random
import re
import tempfile
import threading
import time
from collections import deque
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np

from vitrt.engines.base import InferenceBackend
from vitrt.parity.budgets import Budget, default_budget
from vitrt.parity.metrics import OutputComparison, check_budget, compare
from vitrt.parity.replay import INDEX_FORMAT, INDEX_NAME
from vitrt.serve.config import ConfigError, ShadowConfig

log = logging.getLogger("vitrt.serve.shadow")

# Upper bounds of the max-abs error histogram (`vitrt_shadow_max_abs_error`).
ERROR_BUCKETS = (1e-6, 1e-5, 1e-4, 1e-3, 1e-2, 1e-1, 1.0, 10.0)
_WORST = 8  # worst recent examples listed by the parity endpoint
_MAX_ROWS = 8  # most rows of one reference batch (run_backend splits it further at the backend's own limit)
_GATHER_S = 0.25  # how long the worker waits for more samples to batch with the first


@dataclass
class _Sample:
    request_id: str
    feeds: dict[str, np.ndarray]
    outputs: dict[str, np.ndarray]
    sampled_at: float


@dataclass
class _Record:
    """One compared request, or several that were compared as one batch and all passed."""

    request_ids: list[str]
    size: int
    comparisons: dict[str, OutputComparison]
    input_stats: dict[str, tuple[np.ndarray, np.ndarray]]  # per-channel sum and sum of squares
    input_counts: dict[str, int]  # values per channel
    at: float

    @property
    def request_id(self) -> str:
        return ",".join(self.request_ids)

    @property
    def passed(self) -> bool:
        return all(c.passed for c in self.comparisons.values())

    @property
    def max_abs(self) -> float:
        values = [c.max_abs for c in self.comparisons.values()]
        return math.nan if any(not math.isfinite(v) for v in values) else max(values, default=0.0)


@dataclass
class _Counters:
    sampled: int = 0
    dropped: int = 0
    compared: int = 0
    errors: int = 0
    breaches: int = 0
    disagreements: int = 0  # samples whose top-1 class differs from the reference's
    nonfinite: int = 0  # compared requests with NaN/Inf in the primary's outputs
    over_budget: int = 0  # compared requests over budget on their own
    fallback_requests: int = 0
    kept: int = 0
    error_buckets: list[int] = field(default_factory=lambda: [0] * (len(ERROR_BUCKETS) + 1))
    error_sum: float = 0.0


class ShadowMonitor:
    def __init__(
        self,
        model: str,
        config: ShadowConfig,
        reference: InferenceBackend,
        *,
        primary: Mapping[str, Any] | None = None,
        input_statistics: Mapping[str, Any] | None = None,
    ) -> None:
        self.model = model
        self.config = config
        self.reference = reference
        self.primary = dict(primary or {})
        self.policy = config.policy
        self.budget: Budget = default_budget(config.precision).with_overrides(config.budget)
        self.input_statistics = dict(input_statistics or {})
        self._rng = random.Random(config.seed)
        self._queue: queue.Queue[_Sample | None] = queue.Queue(maxsize=config.queue_size)
        self._cond = threading.Condition()
        self._window: deque[_Record] = deque()
        self._window_requests = 0  # requests of the records in the window
        self._rest = threading.Event()  # set by stop(): ends a worker's duty-cycle pause at once
        self.counters = _Counters()
        self.breached = False
        self.breach_failures: list[str] = []
        self.breached_at: float | None = None
        self._threads: list[threading.Thread] = []
        self._stopped = False
        self._fallback: ThreadPoolExecutor | None = None
        self.keep_dir = prepare_keep_dir(config.keep) if config.keep else None
        self._keep_seq = 0
        self._keep_entries: list[dict[str, Any]] = []

    # ---- lifecycle -------------------------------------------------------------------------------------------

    def start(self) -> None:
        if self._threads:
            return
        thread = threading.Thread(target=self._work, name=f"vitrt-shadow-{self.model}", daemon=True)
        thread.start()
        self._threads.append(thread)
        if self.policy == "fallback":
            self._fallback = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"vitrt-fallback-{self.model}")

    def stop(self, timeout_s: float = 5.0) -> None:
        """Stop the workers; samples still queued are discarded (they never affect a response)."""
        with self._cond:
            self._stopped = True  # no more offers; releases long-polls
            self._cond.notify_all()
        self._rest.set()
        while True:
            try:
                self._queue.get_nowait()
            except queue.Empty:
                break
        for _ in self._threads:
            self._queue.put(None)
        deadline = time.monotonic() + timeout_s
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        self._threads = []
        if self._fallback is not None:
            self._fallback.shutdown(wait=True)
            self._fallback = None

    def close(self) -> None:
        self.reference.close()

    # ---- the request path ------------------------------------------------------------------------------------

    def offer(self, request_id: str, feeds: Mapping[str, np.ndarray], outputs: Mapping[str, np.ndarray]) -> bool:
        """Maybe queue one finished request for comparison; never blocks. True when it was queued."""
        if self.config.rate <= 0.0 or self.serving_reference:
            return False
        if self.config.rate < 1.0 and self._rng.random() >= self.config.rate:
            return False
        sample = _Sample(request_id, dict(feeds), dict(outputs), time.time())
        with self._cond:
            if self._stopped:
                return False
            self.counters.sampled += 1
            try:
                self._queue.put_nowait(sample)
            except queue.Full:
                self.counters.dropped += 1
                self._cond.notify_all()
                return False
        return True

    @property
    def serving_reference(self) -> bool:
        """Requests are answered by the reference (policy `fallback`, budget breached)."""
        return self.breached and self.policy == "fallback"

    @property
    def blocks_readiness(self) -> bool:
        return self.breached and self.policy == "unready"

    async def infer_reference(self, feeds: Mapping[str, np.ndarray], names: Sequence[str]) -> dict[str, np.ndarray]:
        """Run a live request on the reference (fallback), in its own thread so the event loop stays free."""
        executor = self._fallback
        loop = asyncio.get_running_loop()
        outputs = await loop.run_in_executor(executor, run_backend, self.reference, dict(feeds), list(names))
        with self._cond:
            self.counters.fallback_requests += 1
        return outputs

    # ---- the worker ------------------------------------------------------------------------------------------

    def _work(self) -> None:
        while True:
            samples = self._take()
            if not samples:
                return
            began = time.perf_counter()
            groups: dict[tuple[Any, ...], list[_Sample]] = {}
            for sample in samples:  # samples batch together when their per-sample shapes and outputs agree
                key = (tuple((k, v.shape[1:], v.dtype.str) for k, v in sample.feeds.items()), tuple(sample.outputs))
                groups.setdefault(key, []).append(sample)
            for group in groups.values():
                try:
                    self._process(group)
                except Exception as err:  # a failing reference never reaches a request; it is counted and logged
                    with self._cond:
                        self.counters.errors += len(group)
                        self._cond.notify_all()
                    log.warning(
                        "shadow reference failed",
                        extra={
                            "model": self.model,
                            "request_id": ",".join(s.request_id for s in group),
                            "error": str(err)[:300],
                        },
                    )
            self._pause(time.perf_counter() - began)

    def _take(self) -> list[_Sample]:
        """Samples for one reference batch: the first (waited for), then those arriving within `_GATHER_S`, up to
        `_MAX_ROWS` rows; empty when the monitor stops."""
        first = self._queue.get()
        if first is None or self._stopped:
            return []
        samples = [first]
        rows = _rows(first.feeds)
        gather_until = time.monotonic() + _GATHER_S
        while rows < _MAX_ROWS:
            try:  # more samples, for up to _GATHER_S: a batch of 8 costs the reference half as much per sample
                sample = self._queue.get(timeout=max(0.0, gather_until - time.monotonic()))
            except queue.Empty:
                break
            if sample is None:  # stop(): finish nothing more
                return []
            samples.append(sample)
            rows += _rows(sample.feeds)
        return samples

    def _pause(self, elapsed: float) -> None:
        """The duty cycle: wait in proportion to the time the last batch took, so the share stays <= cpu_share."""
        busy = self.config.threads / self.config.cpu_share  # the reference may keep `threads` cores busy
        if busy > 1.0 and not self._stopped:
            self._rest.wait(elapsed * (busy - 1.0))

    def _process(self, group: list[_Sample]) -> None:
        first = group[0]
        names = [name for name in first.outputs if any(spec.name == name for spec in self.reference.outputs)]
        feeds = _stack([s.feeds for s in group])
        primary = _stack([{n: s.outputs[n] for n in names} for s in group])
        reference = run_backend(self.reference, feeds, names)
        comparisons = self._compare(reference, primary, names)
        sizes = [_rows(s.feeds) for s in group]
        records: list[tuple[_Sample, _Record, dict[str, np.ndarray]]]
        if len(group) == 1 or self._all_pass(comparisons, reference, primary, sizes):
            sums, counts = _input_sums(feeds)
            ids = [s.request_id for s in group]
            records = [(first, _Record(ids, sum(sizes), comparisons, sums, counts, first.sampled_at), reference)]
        else:  # somebody is over budget: compare request by request to name (and keep) the offenders
            records = []
            offset = 0
            for sample, size in zip(group, sizes, strict=True):
                own = {n: v[offset : offset + size] for n, v in reference.items()}
                offset += size
                sums, counts = _input_sums(sample.feeds)
                mine = self._compare(own, sample.outputs, names)
                records.append((sample, _Record([sample.request_id], size, mine, sums, counts, sample.sampled_at), own))
        for sample, record, own in records:
            if not record.passed and self.keep_dir is not None:
                self._keep(sample, own, record)  # before the count moves, so a long-poll sees the file
        newly_breached = False
        with self._cond:
            for _, record, _ in records:
                self._add(record)
                newly_breached = self._evaluate() or newly_breached
            self._cond.notify_all()
        if newly_breached:
            self._on_breach()

    def _compare(
        self, reference: Mapping[str, np.ndarray], primary: Mapping[str, np.ndarray], names: Sequence[str]
    ) -> dict[str, OutputComparison]:
        comparisons = {}
        for name in names:
            comparison = compare(self.reference.name, name, reference[name], primary[name])
            check_budget(comparison, self.budget)
            comparisons[name] = comparison
        return comparisons

    def _all_pass(
        self,
        comparisons: Mapping[str, OutputComparison],
        reference: Mapping[str, np.ndarray],
        primary: Mapping[str, np.ndarray],
        sizes: Sequence[int],
    ) -> bool:
        """Whether every request of a batch passes on its own, from the batch's figures: its largest error and
        smallest cosine bound every request's; top-1 must agree on every row; mean errors are taken per request."""
        if not all(c.passed and c.top1_agreement in (None, 1.0) for c in comparisons.values()):
            return False
        starts = np.cumsum([0, *sizes[:-1]])
        for name in comparisons:
            ref = reference[name].reshape(reference[name].shape[0], -1)
            diff = np.abs(primary[name].reshape(ref.shape).astype(np.float64) - ref)
            means = np.add.reduceat(diff.mean(axis=1), starts) / np.asarray(sizes)
            if means.size and float(means.max()) > self.budget.mean_abs:
                return False
        return True

    def _add(self, record: _Record) -> None:
        c = self.counters
        c.compared += len(record.request_ids)
        if not record.passed:
            c.over_budget += len(record.request_ids)
        for comparison in record.comparisons.values():
            if not math.isfinite(comparison.max_abs):
                c.nonfinite += 1
                break
        for comparison in record.comparisons.values():
            if comparison.top1_agreement is not None:
                c.disagreements += round((1.0 - comparison.top1_agreement) * record.size)
        error = record.max_abs  # a batch that passed as one counts its largest error for each of its requests
        bucket = next((i for i, bound in enumerate(ERROR_BUCKETS) if error <= bound), len(ERROR_BUCKETS))
        c.error_buckets[bucket] += len(record.request_ids)
        if math.isfinite(error):
            c.error_sum += error * len(record.request_ids)
        self._window.append(record)
        self._window_requests += len(record.request_ids)
        while len(self._window) > 1 and self._window_requests - len(self._window[0].request_ids) >= self.config.window:
            self._window_requests -= len(self._window.popleft().request_ids)

    def _evaluate(self) -> bool:
        """Check the window against the budget; True when this is the start of a breach."""
        if self.breached or self._window_requests < self.config.min_samples:
            return False
        failures = [f"{name}: {failure}" for name, c in self._aggregate().items() for failure in c.failures]
        if not failures:
            return False
        self.breached = True
        self.breach_failures = failures
        self.breached_at = time.time()
        self.counters.breaches += 1
        return True

    def _on_breach(self) -> None:
        with self._cond:
            offending = [r.request_id for r in self._window if not r.passed][-_WORST:]
            failures = list(self.breach_failures)
            window = self._window_requests
        actions = {
            "log": "logging only",
            "unready": "model readiness is now false",
            "fallback": "requests are now served from the reference",
        }
        log.warning(
            "shadow parity breach",
            extra={
                "model": self.model,
                "policy": self.policy,
                "action": actions[self.policy],
                "failures": "; ".join(failures),
                "request_ids": ",".join(offending),
                "window": window,
            },
        )

    def _aggregate(self) -> dict[str, OutputComparison]:
        """One comparison per output over the window, checked against the budget (callers hold the lock)."""
        per_output: dict[str, list[tuple[int, OutputComparison]]] = {}
        for record in self._window:
            for name, comparison in record.comparisons.items():
                per_output.setdefault(name, []).append((record.size, comparison))
        result = {}
        for name, items in per_output.items():
            total = sum(n for n, _ in items)
            values = [c for _, c in items]
            finite = all(math.isfinite(c.max_abs) for c in values)
            top1 = [(n, c.top1_agreement) for n, c in items if c.top1_agreement is not None]
            top5 = [(n, c.top5_agreement) for n, c in items if c.top5_agreement is not None]
            combined = OutputComparison(
                backend=values[0].backend,
                output=name,
                max_abs=max(c.max_abs for c in values) if finite else math.nan,
                mean_abs=sum(n * c.mean_abs for n, c in items) / total if finite else math.nan,
                max_rel=max(c.max_rel for c in values) if finite else math.nan,
                cosine_mean=sum(n * c.cosine_mean for n, c in items) / total,
                cosine_min=min(c.cosine_min for c in values),
                top1_agreement=_weighted(top1),
                top5_agreement=_weighted(top5),
            )
            check_budget(combined, self.budget)
            result[name] = combined
        return result

    # ---- operator views --------------------------------------------------------------------------------------

    def wait_for(self, compared: int, timeout_s: float) -> bool:
        """Block until `compared + errors` reaches `compared` (the endpoint's long-poll); False on timeout."""
        with self._cond:
            return self._cond.wait_for(
                lambda: self._stopped or self.counters.compared + self.counters.errors >= compared, timeout_s
            )

    def reset(self) -> None:
        """Clear the window and a latched breach (cumulative counters stay, as Prometheus counters must)."""
        with self._cond:
            self._window.clear()
            self._window_requests = 0
            self.breached = False
            self.breach_failures = []
            self.breached_at = None
            self._cond.notify_all()
        log.info("shadow parity reset", extra={"model": self.model})

    def summary(self) -> dict[str, Any]:
        with self._cond:
            c = self.counters
            aggregate = self._aggregate()
            # Non-finite outputs first, then the largest errors.
            worst = sorted(self._window, key=lambda r: -r.max_abs if math.isfinite(r.max_abs) else -math.inf)
            return {
                "model": self.model,
                "reference": {"artifact": self.config.reference, "backend": self.reference.name},
                "primary": self.primary,
                "policy": self.policy,
                "rate": self.config.rate,
                "precision": self.config.precision,
                "budget": self.budget.to_dict(),
                "breached": self.breached,
                "breach_failures": list(self.breach_failures),
                "breached_at": self.breached_at,
                "serving_reference": self.serving_reference,
                "ready": not self.blocks_readiness,
                "counters": {
                    "sampled": c.sampled,
                    "dropped": c.dropped,
                    "queued": self._queue.qsize(),
                    "compared": c.compared,
                    "errors": c.errors,
                    "processed": c.compared + c.errors,
                    "over_budget": c.over_budget,
                    "disagreements": c.disagreements,
                    "nonfinite": c.nonfinite,
                    "breaches": c.breaches,
                    "fallback_requests": c.fallback_requests,
                    "kept": c.kept,
                },
                "window": {
                    "size": self.config.window,
                    "compared": self._window_requests,
                    "samples": sum(r.size for r in self._window),
                    "passed": not any(a.failures for a in aggregate.values()),
                    "outputs": {name: _json_safe(a.to_dict()) for name, a in aggregate.items()},
                    "inputs": self._input_summary(),
                },
                "worst": [
                    {
                        "request_id": r.request_id,
                        "request_ids": list(r.request_ids),
                        "max_abs": _finite_or_none(r.max_abs),
                        "passed": r.passed,
                        "failures": [f for c in r.comparisons.values() for f in c.failures],
                        "at": r.at,
                    }
                    for r in worst[:_WORST]
                ],
                "keep": str(self.keep_dir) if self.keep_dir else None,
            }

    def _input_summary(self) -> dict[str, Any]:
        """Per-channel mean/std of the inputs in the window, beside the export's normalisation statistics."""
        out: dict[str, Any] = {}
        for name in self._window[0].input_stats if self._window else []:
            total = sum(r.input_counts[name] for r in self._window)
            sums = sum(r.input_stats[name][0] for r in self._window)
            squares = sum(r.input_stats[name][1] for r in self._window)
            if not total:
                continue
            mean = sums / total
            std = np.sqrt(np.maximum(squares / total - mean**2, 0.0))
            out[name] = {
                "channel_mean": [_finite_or_none(float(v)) for v in np.atleast_1d(mean)],
                "channel_std": [_finite_or_none(float(v)) for v in np.atleast_1d(std)],
            }
            if name in self.input_statistics:
                out[name]["export"] = self.input_statistics[name]
        return out

    def snapshot(self) -> dict[str, Any]:
        """Counters and window figures for the Prometheus collector."""
        with self._cond:
            c = self.counters
            aggregate = self._aggregate()
            return {
                "counters": {f.name: getattr(c, f.name) for f in fields(c)},
                "breached": self.breached,
                "window": {
                    name: {
                        "max_abs": a.max_abs,
                        "mean_abs": a.mean_abs,
                        "min_cosine": a.cosine_min,
                        "top1_agreement": a.top1_agreement,
                    }
                    for name, a in aggregate.items()
                },
                "queued": self._queue.qsize(),
            }

    # ---- keeping offending inputs ----------------------------------------------------------------------------

    def _keep(self, sample: _Sample, reference: Mapping[str, np.ndarray], record: _Record) -> None:
        from vitrt.files import atomic_write

        assert self.keep_dir is not None
        arrays = {f"input:{k}": v for k, v in sample.feeds.items()}
        arrays.update({f"primary:{k}": v for k, v in sample.outputs.items()})
        arrays.update({f"reference:{k}": v for k, v in reference.items()})
        buffer = io.BytesIO()
        np.savez_compressed(buffer, **arrays)  # type: ignore[arg-type]
        data = buffer.getvalue()
        try:
            with self._cond:
                self._keep_seq += 1
                seq = self._keep_seq
            safe_id = re.sub(r"[^A-Za-z0-9_.-]", "_", sample.request_id)[:64] or "request"
            name = f"{seq:06d}-{safe_id}.npz"
            atomic_write(self.keep_dir / name, data)
            entry = {
                "file": name,
                "request_id": sample.request_id,
                "at": sample.sampled_at,
                "batch": record.size,
                "bytes": len(data),
                "max_abs": _finite_or_none(record.max_abs),
                "failures": [f for c in record.comparisons.values() for f in c.failures],
            }
            with self._cond:
                self._keep_entries.append(entry)
                removed = self._trim()
                self.counters.kept += 1
                index = self._index()
            for old in removed:
                (self.keep_dir / old).unlink(missing_ok=True)
            atomic_write(self.keep_dir / INDEX_NAME, json.dumps(index, indent=2).encode())
        except OSError as err:
            log.warning("shadow keep failed", extra={"model": self.model, "error": str(err)[:300]})

    def _trim(self) -> list[str]:
        removed = []
        while len(self._keep_entries) > self.config.keep_max or (
            len(self._keep_entries) > 1 and sum(e["bytes"] for e in self._keep_entries) > self.config.keep_max_bytes
        ):
            removed.append(self._keep_entries.pop(0)["file"])
        return removed

    def _index(self) -> dict[str, Any]:
        return {
            "format": INDEX_FORMAT,
            "model": self.model,
            "primary": self.primary,
            "reference": {
                "artifact": self.config.reference,
                "backend": self.config.backend,
                "backend_options": self.config.backend_options,
                "runtime": self.reference.name,
            },
            "precision": self.config.precision,
            "budget": self.budget.to_dict(),
            "entries": list(self._keep_entries),
        }


# ---- helpers ----------------------------------------------------------------------------------------------------


def prepare_keep_dir(path: str) -> Path:
    """Create the keep folder private to this user (0700) and prove it is writable; ConfigError otherwise."""
    directory = Path(path).expanduser()
    try:
        directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        directory.chmod(0o700)
        fd, probe = tempfile.mkstemp(prefix=".probe-", dir=directory)
        os.close(fd)
        os.unlink(probe)
    except OSError as err:
        raise ConfigError(f"--shadow-keep {directory}: not a writable folder ({err.strerror or err})") from None
    return directory


def check_compatible(model: str, primary: InferenceBackend, reference: InferenceBackend) -> None:
    """The reference must take the primary's inputs and produce its outputs (names, dtypes, fixed dimensions)."""

    def check(kind: str, ours: Sequence[Any], theirs: Sequence[Any], subset: bool) -> None:
        mine = {spec.name: spec for spec in ours}
        other = {spec.name: spec for spec in theirs}
        names = set(mine) if subset else set(mine) | set(other)
        for name in sorted(names):
            if name not in other or name not in mine:
                raise ConfigError(
                    f"model {model!r}: shadow reference {kind} names {sorted(other)} do not match the primary's "
                    f"{sorted(mine)}"
                )
            a, b = mine[name], other[name]
            if np.dtype(a.dtype) != np.dtype(b.dtype):
                raise ConfigError(
                    f"model {model!r}: shadow reference {kind} {name!r} is {np.dtype(b.dtype)}, the primary's "
                    f"{np.dtype(a.dtype)}"
                )
            if len(a.shape) != len(b.shape) or any(
                x is not None and y is not None and x != y for x, y in zip(a.shape[1:], b.shape[1:], strict=False)
            ):
                raise ConfigError(
                    f"model {model!r}: shadow reference {kind} {name!r} has shape {_dims(b.shape)}, the primary's "
                    f"{_dims(a.shape)}"
                )

    check("input", primary.inputs, reference.inputs, subset=False)
    check("output", primary.outputs, reference.outputs, subset=True)


def run_backend(
    backend: InferenceBackend, feeds: Mapping[str, np.ndarray], names: Sequence[str] | None = None
) -> dict[str, np.ndarray]:
    """Run a batch of any size on `backend`: split at its largest batch and pad to a fixed batch."""
    size = int(next(iter(feeds.values())).shape[0])
    static = next((spec.shape[0] for spec in backend.inputs if spec.shape and spec.shape[0] is not None), None)
    step = min(x for x in (static, backend.max_batch_size, size) if x)
    wanted = list(names) if names else None
    parts: list[dict[str, np.ndarray]] = []
    for start in range(0, size, step):
        chunk = {k: v[start : start + step] for k, v in feeds.items()}
        n = int(next(iter(chunk.values())).shape[0])
        if static and n < static:
            chunk = {k: np.concatenate([v, np.zeros((static - n, *v.shape[1:]), v.dtype)]) for k, v in chunk.items()}
        out = backend.run(backend.validate(chunk), wanted)
        parts.append({k: v[:n] for k, v in out.items()})
    if len(parts) == 1:
        return parts[0]
    return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}


def _rows(feeds: Mapping[str, np.ndarray]) -> int:
    return int(next(iter(feeds.values())).shape[0])


def _stack(parts: Sequence[Mapping[str, np.ndarray]]) -> dict[str, np.ndarray]:
    """Concatenate same-named arrays along the batch (no copy for a single part)."""
    if len(parts) == 1:
        return dict(parts[0])
    return {name: np.concatenate([p[name] for p in parts]) for name in parts[0]}


def _input_sums(feeds: Mapping[str, np.ndarray]) -> tuple[dict[str, tuple[np.ndarray, np.ndarray]], dict[str, int]]:
    """Per-channel (axis 1) sums and squares of floating inputs."""
    sums, counts = {}, {}
    for name, array in feeds.items():
        if array.dtype.kind != "f" or array.ndim < 2:
            continue
        values = np.moveaxis(array.astype(np.float64), 1, 0).reshape(array.shape[1], -1)
        finite = np.where(np.isfinite(values), values, 0.0)
        sums[name] = (finite.sum(axis=1), (finite**2).sum(axis=1))
        counts[name] = values.shape[1]
    return sums, counts


def _weighted(items: Sequence[tuple[int, float | None]]) -> float | None:
    total = sum(n for n, _ in items)
    return sum(n * float(v) for n, v in items if v is not None) / total if total else None


def _finite_or_none(value: float) -> float | None:
    return value if math.isfinite(value) else None


def _json_safe(data: dict[str, Any]) -> dict[str, Any]:
    return {k: _finite_or_none(v) if isinstance(v, float) else v for k, v in data.items()}


def _dims(shape: Sequence[int | None]) -> list[int]:
    return [-1 if d is None else int(d) for d in shape]
