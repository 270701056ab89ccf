"""Accuracy budget and the per-block sensitivity search.

An INT8 candidate passes when, on the held-out data, its top-1 accuracy is at most `max_accuracy_drop` points
below the FP32 model's and its top-1 agreement with the FP32 model is at least `min_agreement` percent (unlabelled
data: agreement only). When the fully quantized model fails, each block is quantized alone (everything else float)
and scored by how far its logits move from FP32; the worst blocks are then kept in float, one more at a time,
until the budget holds. The search ends at the latest when every block is float.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np


@dataclass(frozen=True)
class AccuracyBudget:
    max_accuracy_drop: float = 0.5  # percentage points
    min_agreement: float = 98.0  # percent of held-out samples with the FP32 model's top-1 class


@dataclass
class Evaluation:
    """INT8 against FP32 on the held-out data."""

    n: int
    fp32_accuracy: float | None  # percent
    int8_accuracy: float | None
    accuracy_drop: float | None  # points
    agreement: float  # percent
    mean_abs: float
    max_abs: float
    cosine_min: float
    failures: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return not self.failures

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "passed": self.passed}

    def summary(self) -> str:
        acc = (
            f"accuracy {self.fp32_accuracy:.2f} % -> {self.int8_accuracy:.2f} % (drop {self.accuracy_drop:+.2f} pt), "
            if self.fp32_accuracy is not None and self.int8_accuracy is not None and self.accuracy_drop is not None
            else ""
        )
        return f"{acc}top-1 agreement {self.agreement:.2f} %, mean abs logit error {self.mean_abs:.3g}"


def evaluate(fp32: np.ndarray, int8: np.ndarray, labels: np.ndarray | None, budget: AccuracyBudget) -> Evaluation:
    from vitrt.parity.metrics import accuracy, compare

    comparison = compare("int8", "logits", fp32, int8)
    agreement = 100.0 * float(comparison.top1_agreement if comparison.top1_agreement is not None else 0.0)
    ref_acc = new_acc = drop = None
    failures = []
    if not np.isfinite(int8).all():
        failures.append("non-finite INT8 outputs")
    if labels is not None:
        ref_acc, new_acc = 100.0 * accuracy(fp32, labels), 100.0 * accuracy(int8, labels)
        drop = ref_acc - new_acc
        if drop > budget.max_accuracy_drop + 1e-9:
            failures.append(f"accuracy drop {drop:.2f} pt > {budget.max_accuracy_drop:g} pt")
    if agreement < budget.min_agreement - 1e-9:
        failures.append(f"top-1 agreement {agreement:.2f} % < {budget.min_agreement:g} %")
    return Evaluation(
        n=len(fp32),
        fp32_accuracy=ref_acc,
        int8_accuracy=new_acc,
        accuracy_drop=drop,
        agreement=agreement,
        mean_abs=comparison.mean_abs,
        max_abs=comparison.max_abs,
        cosine_min=comparison.cosine_min,
        failures=failures,
    )


@dataclass
class BlockSensitivity:
    block: str
    nodes: int  # quantizable nodes in the block
    score: float  # mean abs logit error vs FP32 with only this block quantized, relative to mean |FP32 logit|
    agreement: float  # percent, only this block quantized


@dataclass
class SearchStep:
    kept_float: list[str]
    evaluation: Evaluation


@dataclass
class SearchResult:
    sensitivities: list[BlockSensitivity]
    steps: list[SearchStep]
    kept_float: list[str]
    final: Evaluation

    def to_dict(self) -> dict[str, Any]:
        return {
            "sensitivities": [asdict(s) for s in self.sensitivities],
            "steps": [{"kept_float": s.kept_float, "evaluation": s.evaluation.to_dict()} for s in self.steps],
            "kept_float": self.kept_float,
            "final": self.final.to_dict(),
        }


def block_sensitivities(
    blocks: dict[str, list[str]], logits_with: Callable[[set[str]], np.ndarray], fp32: np.ndarray
) -> list[BlockSensitivity]:
    """Each block quantized alone; most sensitive first. `logits_with(exclude)` quantizes all but `exclude`."""
    from vitrt.parity.metrics import compare

    every = {name for names in blocks.values() for name in names}
    scale = float(np.mean(np.abs(fp32))) or 1.0
    result = []
    for block, names in blocks.items():
        logits = logits_with(every - set(names))
        comparison = compare(block, "logits", fp32, logits)
        agreement = 100.0 * float(comparison.top1_agreement or 0.0)
        result.append(BlockSensitivity(block, len(names), comparison.mean_abs / scale, agreement))
    return sorted(result, key=lambda s: (s.score, -s.agreement), reverse=True)


def search(
    blocks: dict[str, list[str]],
    evaluate_with: Callable[[set[str]], Evaluation],
    sensitivities: list[BlockSensitivity],
) -> SearchResult:
    """Keep the most sensitive blocks float, one more each step, until `evaluate_with(exclude)` passes."""
    kept: list[str] = []
    steps: list[SearchStep] = []
    final: Evaluation | None = None
    for sensitivity in sensitivities:
        kept.append(sensitivity.block)
        exclude = {name for block in kept for name in blocks[block]}
        final = evaluate_with(exclude)
        steps.append(SearchStep(list(kept), final))
        if final.passed:
            break
    if final is None:  # no quantizable block at all
        final = evaluate_with(set())
    return SearchResult(sensitivities, steps, kept, final)
