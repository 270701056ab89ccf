"""Numerical comparison of one output against its PyTorch reference."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from vitrt.parity.budgets import Budget


@dataclass
class OutputComparison:
    backend: str
    output: str
    max_abs: float
    mean_abs: float
    # Largest per-sample error relative to that sample's largest reference magnitude (robust to near-zero logits).
    max_rel: float
    cosine_mean: float
    cosine_min: float
    top1_agreement: float | None  # classification outputs (N, C) only
    top5_agreement: float | None  # identical top-5 sets (top-k with k = min(5, C))
    accuracy_drop: float | None = None  # reference top-1 accuracy minus this backend's (labelled inputs)
    failures: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return not self.failures

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "passed": self.passed}


def compare(backend: str, output: str, reference: np.ndarray, actual: np.ndarray) -> OutputComparison:
    """Error statistics of `actual` against `reference` (same shape, batch first)."""
    if reference.shape != actual.shape:
        raise ValueError(f"{backend} output {output!r} has shape {actual.shape}, reference {reference.shape}")
    ref = reference.astype(np.float64).reshape(reference.shape[0], -1)
    act = actual.astype(np.float64).reshape(actual.shape[0], -1)
    diff = np.abs(act - ref)
    scale = np.maximum(np.abs(ref).max(axis=1), 1e-12)
    top1 = top5 = None
    if reference.ndim == 2 and reference.shape[1] >= 2:
        top1 = float(np.mean(ref.argmax(axis=1) == act.argmax(axis=1)))
        k = min(5, reference.shape[1])
        ref_top = np.sort(np.argsort(-ref, axis=1)[:, :k], axis=1)
        act_top = np.sort(np.argsort(-act, axis=1)[:, :k], axis=1)
        top5 = float(np.mean(np.all(ref_top == act_top, axis=1)))
    cosines = cosine_similarity(ref, act)
    return OutputComparison(
        backend=backend,
        output=output,
        max_abs=float(diff.max()) if diff.size else 0.0,
        mean_abs=float(diff.mean()) if diff.size else 0.0,
        max_rel=float((diff.max(axis=1) / scale).max()) if diff.size else 0.0,
        cosine_mean=float(cosines.mean()),
        cosine_min=float(cosines.min()),
        top1_agreement=top1,
        top5_agreement=top5,
    )


def cosine_similarity(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Per-row cosine similarity; two all-zero rows count as identical."""
    norms = np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1)
    dots = np.sum(a * b, axis=1)
    both_zero = (np.linalg.norm(a, axis=1) == 0) & (np.linalg.norm(b, axis=1) == 0)
    with np.errstate(invalid="ignore", divide="ignore"):
        cos = np.where(norms > 0, dots / np.where(norms > 0, norms, 1.0), 0.0)
    return np.where(both_zero, 1.0, cos)


def accuracy(logits: np.ndarray, labels: np.ndarray, k: int = 1) -> float:
    """Top-k accuracy of (N, C) logits."""
    k = min(k, logits.shape[1])
    top = np.argsort(-logits, axis=1)[:, :k]
    return float(np.mean(np.any(top == labels[:, None], axis=1)))


def check_budget(comparison: OutputComparison, budget: Budget) -> None:
    """Fill `comparison.failures` with every budget the comparison exceeds."""
    c, b = comparison, budget
    failures = []
    if not np.isfinite(c.max_abs):
        failures.append("non-finite outputs (NaN or Inf)")
    else:
        if c.max_abs > b.max_abs:
            failures.append(f"max abs {c.max_abs:.3g} > {b.max_abs:.3g}")
        if c.mean_abs > b.mean_abs:
            failures.append(f"mean abs {c.mean_abs:.3g} > {b.mean_abs:.3g}")
        if c.cosine_min < b.min_cosine:
            failures.append(f"min cosine {c.cosine_min:.6f} < {b.min_cosine:.6f}")
    if c.top1_agreement is not None and c.top1_agreement < b.min_top1_agreement:
        failures.append(f"top-1 agreement {c.top1_agreement:.3f} < {b.min_top1_agreement:.3f}")
    if c.accuracy_drop is not None and c.accuracy_drop > b.max_accuracy_drop:
        failures.append(f"accuracy drop {c.accuracy_drop:.4f} > {b.max_accuracy_drop:.4f}")
    comparison.failures = failures
