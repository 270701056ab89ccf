"""Per-model inference statistics: the data behind `GET /v2/models/{m}/stats` and the `nv_*` metrics.

Updated only from the event loop (request handlers and batcher workers), so no lock is needed.
Semantics follow Triton: `inference_count` counts samples, `execution_count` backend executions (their ratio is
the average batch size); request-level durations are summed per request, batch-level ones per execution.
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from vitrt.serve.batching import ExecutionRecord, InferenceResult

FAILURE_REASONS = ("REJECTED", "CANCELED", "BACKEND", "OTHER")


@dataclass
class Duration:
    count: int = 0
    ns: int = 0

    def add(self, seconds: float) -> None:
        self.count += 1
        self.ns += int(seconds * 1e9)

    def to_dict(self) -> dict[str, int]:
        return {"count": self.count, "ns": self.ns}


@dataclass
class _BatchStats:
    compute_input: Duration = field(default_factory=Duration)
    compute_infer: Duration = field(default_factory=Duration)
    compute_output: Duration = field(default_factory=Duration)


@dataclass
class ModelStats:
    success: Duration = field(default_factory=Duration)
    fail: Duration = field(default_factory=Duration)
    queue: Duration = field(default_factory=Duration)
    compute_input: Duration = field(default_factory=Duration)
    compute_infer: Duration = field(default_factory=Duration)
    compute_output: Duration = field(default_factory=Duration)
    inference_count: int = 0
    execution_count: int = 0
    last_inference_ms: int = 0
    failures: Counter[str] = field(default_factory=Counter)
    batches: dict[int, _BatchStats] = field(default_factory=dict)

    def record_execution(self, record: ExecutionRecord) -> None:
        self.execution_count += 1
        stats = self.batches.setdefault(record.batch_size, _BatchStats())
        stats.compute_input.add(record.input_s)
        stats.compute_infer.add(record.infer_s)
        stats.compute_output.add(record.output_s)

    def record_success(self, samples: int, request_s: float, result: InferenceResult) -> None:
        self.success.add(request_s)
        self.queue.add(result.queue_s)
        self.compute_input.add(result.input_s)
        self.compute_infer.add(result.infer_s)
        self.compute_output.add(result.output_s)
        self.inference_count += samples
        self.last_inference_ms = int(time.time() * 1000)

    def record_failure(self, reason: str, request_s: float) -> None:
        self.fail.add(request_s)
        self.failures[reason] += 1

    def to_triton(self, name: str, version: str) -> dict[str, Any]:
        """One entry of Triton's `model_stats` list."""
        return {
            "name": name,
            "version": version,
            "last_inference": self.last_inference_ms,
            "inference_count": self.inference_count,
            "execution_count": self.execution_count,
            "inference_stats": {
                "success": self.success.to_dict(),
                "fail": self.fail.to_dict(),
                "queue": self.queue.to_dict(),
                "compute_input": self.compute_input.to_dict(),
                "compute_infer": self.compute_infer.to_dict(),
                "compute_output": self.compute_output.to_dict(),
                "cache_hit": {"count": 0, "ns": 0},
                "cache_miss": {"count": 0, "ns": 0},
            },
            "batch_stats": [
                {
                    "batch_size": size,
                    "compute_input": stats.compute_input.to_dict(),
                    "compute_infer": stats.compute_infer.to_dict(),
                    "compute_output": stats.compute_output.to_dict(),
                }
                for size, stats in sorted(self.batches.items())
            ],
        }
