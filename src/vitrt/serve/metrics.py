"""Prometheus metrics in a per-app registry (never the process-global one, so several apps can coexist).

Two groups:
* Triton-compatible `nv_inference_*` families, computed at scrape time from each model's `ModelStats` so that
  Triton dashboards and alerts work unchanged. prometheus-client insists that a counter's name ends in `_total`,
  which Triton's names do not, so the cumulative ones are exposed as untyped samples with Triton's exact names.
* `vitrt_*` histograms (request, queue and compute durations; batch sizes) and HTTP request counters, which Triton
  only offers as summaries.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Protocol

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector

from vitrt.serve.batching import ExecutionRecord, InferenceResult
from vitrt.serve.stats import FAILURE_REASONS, ModelStats


class _Queue(Protocol):
    @property
    def queue_depth(self) -> int: ...


class ObservedModel(Protocol):
    """What the metrics read from a served model (`vitrt.serve.model.ServedModel` is one); a protocol, so this
    module does not depend on the model module, which depends on it."""

    @property
    def name(self) -> str: ...

    @property
    def version(self) -> str: ...

    @property
    def stats(self) -> ModelStats: ...

    @property
    def batcher(self) -> _Queue: ...


_LATENCY_BUCKETS = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0)
_BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024)


class ServerMetrics:
    def __init__(self, models: Callable[[], Iterable[ObservedModel]]) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        labels = ["model", "version"]
        self.request_duration = Histogram(
            "vitrt_inference_request_duration_seconds",
            "Server-side duration of successful inference requests, from body received to response ready",
            labels,
            buckets=_LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.queue_duration = Histogram(
            "vitrt_inference_queue_duration_seconds",
            "Time requests waited in the model queue before their batch started",
            labels,
            buckets=_LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.compute_duration = Histogram(
            "vitrt_inference_compute_duration_seconds",
            "Duration of backend executions (one per batch)",
            labels,
            buckets=_LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.batch_size = Histogram(
            "vitrt_inference_batch_size",
            "Samples per backend execution",
            labels,
            buckets=_BATCH_BUCKETS,
            registry=self.registry,
        )
        self.http_requests = Counter(
            "vitrt_http_requests",
            "HTTP requests by route template, method and status code",
            ["method", "route", "status"],
            registry=self.registry,
        )
        # Counter children by (method, route, status): `labels()` locks and re-validates on every call.
        self._http_children: dict[tuple[str, str, int], Counter] = {}
        self.registry.register(_TritonCollector(models))
        self.registry.register(_ShadowCollector(models))

    def bind(self, model: ObservedModel) -> ModelMetrics:
        """Label children for one model, created up front so every series exists from the first scrape."""
        key = (model.name, model.version)
        return ModelMetrics(
            request=self.request_duration.labels(*key),
            queue=self.queue_duration.labels(*key),
            compute=self.compute_duration.labels(*key),
            batch=self.batch_size.labels(*key),
        )

    def observe_http(self, method: str, route: str, status: int) -> None:
        key = (method, route, status)
        child = self._http_children.get(key)
        if child is None:
            child = self._http_children[key] = self.http_requests.labels(method, route, str(status))
        child.inc()


@dataclass(frozen=True)
class ModelMetrics:
    request: Histogram
    queue: Histogram
    compute: Histogram
    batch: Histogram

    def observe_execution(self, record: ExecutionRecord) -> None:
        self.batch.observe(record.batch_size)
        self.compute.observe(record.input_s + record.infer_s + record.output_s)

    def observe_success(self, request_s: float, result: InferenceResult) -> None:
        self.request.observe(request_s)
        self.queue.observe(result.queue_s)


class _TritonCollector(Collector):
    """`nv_inference_*` families with Triton's names and labels (`model`, `version`)."""

    def __init__(self, models: Callable[[], Iterable[ObservedModel]]) -> None:
        self._models = models

    def describe(self) -> list[Metric]:
        return []  # computed at scrape time; nothing to check for name clashes

    def collect(self) -> Iterator[Metric]:
        models = list(self._models())
        families = {
            "nv_inference_request_success": "Number of successful inference requests",
            "nv_inference_request_failure": "Number of failed inference requests, by reason",
            "nv_inference_count": "Number of inferences performed (a batch of n counts n)",
            "nv_inference_exec_count": "Number of model executions (batches) performed",
            "nv_inference_request_duration_us": "Cumulative server-side duration of successful requests, us",
            "nv_inference_queue_duration_us": "Cumulative time requests waited in queues, us",
            "nv_inference_compute_input_duration_us": "Cumulative time spent gathering batch inputs, us",
            "nv_inference_compute_infer_duration_us": "Cumulative time spent executing the model, us",
            "nv_inference_compute_output_duration_us": "Cumulative time spent splitting batch outputs, us",
        }
        metrics = {name: Metric(name, doc, "unknown") for name, doc in families.items()}
        pending = GaugeMetricFamily(
            "nv_inference_pending_request_count",
            "Requests waiting in the model queue",
            labels=["model", "version"],
        )
        for model in models:
            labels = {"model": model.name, "version": model.version}
            stats = model.stats
            metrics["nv_inference_request_success"].add_sample(
                "nv_inference_request_success", labels, stats.success.count
            )
            for reason in FAILURE_REASONS:
                metrics["nv_inference_request_failure"].add_sample(
                    "nv_inference_request_failure", {**labels, "reason": reason}, stats.failures[reason]
                )
            values = {
                "nv_inference_count": stats.inference_count,
                "nv_inference_exec_count": stats.execution_count,
                "nv_inference_request_duration_us": stats.success.ns // 1000,
                "nv_inference_queue_duration_us": stats.queue.ns // 1000,
                "nv_inference_compute_input_duration_us": stats.compute_input.ns // 1000,
                "nv_inference_compute_infer_duration_us": stats.compute_infer.ns // 1000,
                "nv_inference_compute_output_duration_us": stats.compute_output.ns // 1000,
            }
            for name, value in values.items():
                metrics[name].add_sample(name, labels, value)
            pending.add_metric([model.name, model.version], model.batcher.queue_depth)
        yield from metrics.values()
        yield pending


class _ShadowCollector(Collector):
    """`vitrt_shadow_*` families of the models with shadow parity on, read from their monitors at scrape time."""

    _COUNTERS = {
        "sampled": "Requests picked for a comparison with the shadow reference",
        "dropped": "Sampled requests dropped because the shadow queue was full",
        "compared": "Sampled requests compared with the reference",
        "errors": "Sampled requests the reference failed to run",
        "disagreements": "Compared samples whose top-1 class differs from the reference's",
        "over_budget": "Compared requests over the parity budget on their own",
        "nonfinite": "Compared requests with NaN or Inf in the served outputs",
        "breaches": "Times the window went over the parity budget",
        "fallback_requests": "Requests answered by the reference under the fallback policy",
        "kept": "Inputs over budget saved to the keep folder",
    }
    _GAUGES = {
        "max_abs": "Largest absolute output difference over the window",
        "mean_abs": "Mean absolute output difference over the window",
        "min_cosine": "Smallest per-sample cosine similarity over the window",
        "top1_agreement": "Top-1 agreement with the reference over the window",
    }

    def __init__(self, models: Callable[[], Iterable[ObservedModel]]) -> None:
        self._models = models

    def describe(self) -> list[Metric]:
        return []

    def collect(self) -> Iterator[Metric]:
        from vitrt.serve.shadow import ERROR_BUCKETS

        labels = ["model", "version"]
        counters = {
            key: CounterMetricFamily(f"vitrt_shadow_{key}", doc, labels=labels) for key, doc in self._COUNTERS.items()
        }
        gauges = {
            key: GaugeMetricFamily(f"vitrt_shadow_window_{key}", doc, labels=[*labels, "output"])
            for key, doc in self._GAUGES.items()
        }
        breached = GaugeMetricFamily(
            "vitrt_shadow_breached", "1 while the window is over budget (latched)", labels=labels
        )
        queued = GaugeMetricFamily("vitrt_shadow_queue_depth", "Samples waiting for the reference", labels=labels)
        errors = HistogramMetricFamily(
            "vitrt_shadow_max_abs_error", "Largest absolute output difference per compared request", labels=labels
        )
        families: list[Metric] = [*counters.values(), *gauges.values(), breached, queued, errors]
        for model in self._models():
            shadow = getattr(model, "shadow", None)
            if shadow is None:
                continue
            key = [model.name, model.version]
            snapshot = shadow.snapshot()
            values = snapshot["counters"]
            for name, counter in counters.items():
                counter.add_metric(key, values[name])
            for output, figures in snapshot["window"].items():
                for name, gauge in gauges.items():
                    if figures[name] is not None and math.isfinite(figures[name]):
                        gauge.add_metric([*key, output], figures[name])
            breached.add_metric(key, 1.0 if snapshot["breached"] else 0.0)
            queued.add_metric(key, snapshot["queued"])
            cumulative, buckets = 0, []
            for bound, count in zip([*map(str, ERROR_BUCKETS), "+Inf"], values["error_buckets"], strict=True):
                cumulative += count
                buckets.append((bound, cumulative))
            errors.add_metric(key, buckets, values["error_sum"])
        yield from families
