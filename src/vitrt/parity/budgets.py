"""Parity budgets: how far a deployed artifact may drift from the PyTorch model, per precision.

FP32 budgets are tight (different kernels, same arithmetic); FP16/BF16 budgets allow for reduced-precision matmuls
while still requiring the same predictions on almost every input. Every field can be overridden on the command
line (`--budget-max-abs` ...) or through `run_parity(budget_overrides=...)`.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields, replace
from typing import Any

from vitrt.errors import VitrtError


@dataclass(frozen=True)
class Budget:
    max_abs: float  # largest absolute logit difference
    mean_abs: float  # mean absolute logit difference
    min_cosine: float  # smallest per-sample cosine similarity
    min_top1_agreement: float  # fraction of samples with the reference's top-1 class
    max_accuracy_drop: float  # allowed top-1 accuracy loss against the reference (labelled inputs)
    # A block "diverges" when its largest error exceeds this fraction of the block output's largest magnitude.
    block_rel: float

    def to_dict(self) -> dict[str, float]:
        return asdict(self)

    def with_overrides(self, overrides: dict[str, Any] | None) -> Budget:
        if not overrides:
            return self
        known = {f.name for f in fields(self)}
        unknown = sorted(set(overrides) - known)
        if unknown:
            raise VitrtError(f"unknown budget field {unknown[0]!r}; choose from {', '.join(sorted(known))}")
        values = {k: float(v) for k, v in overrides.items() if v is not None}
        for key, value in values.items():
            if value < 0:
                raise VitrtError(f"budget {key} must be non-negative, got {value}")
        return replace(self, **values)


DEFAULT_BUDGETS = {
    "fp32": Budget(
        max_abs=1e-3,
        mean_abs=1e-4,
        min_cosine=0.99999,
        min_top1_agreement=0.99,
        max_accuracy_drop=0.005,
        block_rel=1e-3,
    ),
    "fp16": Budget(
        max_abs=5e-2, mean_abs=1e-2, min_cosine=0.999, min_top1_agreement=0.95, max_accuracy_drop=0.01, block_rel=3e-2
    ),
    "bf16": Budget(
        max_abs=2e-1, mean_abs=5e-2, min_cosine=0.995, min_top1_agreement=0.90, max_accuracy_drop=0.02, block_rel=1e-1
    ),
}
PRECISIONS = tuple(DEFAULT_BUDGETS)


def default_budget(precision: str) -> Budget:
    try:
        return DEFAULT_BUDGETS[precision]
    except KeyError:
        raise VitrtError(f"unknown precision {precision!r}; choose from {', '.join(PRECISIONS)}") from None
