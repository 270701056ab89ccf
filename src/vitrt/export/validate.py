"""Always-on validation of an export: ONNX checker, shape inference, an ONNX Runtime CPU run and parity with PyTorch.

The comparison runs the eager PyTorch model (plain-PyTorch op references) and the ONNX file on the same seeded
inputs at every batch size asked for; with a dynamic batch axis that is 1 and a larger batch, which catches graphs
whose batch was frozen at the example input's size. Per output it reports:

* max abs: max |onnx - torch|, the gated number (budget per output);
* max rel: max abs divided by max |torch| (error relative to the output's scale);
* cosine: cosine similarity of the flattened outputs;
* top-1: the fraction of rows whose argmax agrees (2-D outputs with more than one column only).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import onnx

from vitrt.errors import ValidationError

DEFAULT_FP32_BUDGET = 1e-4
DEFAULT_SEED = 0


@dataclass
class OutputComparison:
    output: str
    batch: int
    max_abs: float
    max_rel: float
    cosine: float
    top1_agreement: float | None
    budget: float

    @property
    def passed(self) -> bool:
        return math.isfinite(self.max_abs) and self.max_abs <= self.budget

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "passed": self.passed}


@dataclass
class ValidationReport:
    checks: list[str] = field(default_factory=list)
    comparisons: list[OutputComparison] = field(default_factory=list)
    runtime: str = ""
    note: str = ""

    @property
    def passed(self) -> bool:
        return all(c.passed for c in self.comparisons)

    def failures(self) -> list[OutputComparison]:
        return [c for c in self.comparisons if not c.passed]

    def to_dict(self) -> dict[str, Any]:
        return {
            "passed": self.passed,
            "checks": list(self.checks),
            "runtime": self.runtime,
            "note": self.note,
            "comparisons": [c.to_dict() for c in self.comparisons],
        }

    def table(self) -> str:
        """The per-output table as plain text."""
        header = ("output", "batch", "max abs", "max rel", "cosine", "top-1", "budget", "status")
        rows = [
            (
                c.output,
                str(c.batch),
                f"{c.max_abs:.3g}",
                f"{c.max_rel:.3g}",
                f"{c.cosine:.8f}",
                "-" if c.top1_agreement is None else f"{c.top1_agreement:.0%}",
                f"{c.budget:.3g}",
                "ok" if c.passed else "FAIL",
            )
            for c in self.comparisons
        ]
        widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
        lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)) for row in [header, *rows]]
        return "\n".join(lines)


def compare(output: str, batch: int, got: np.ndarray, expected: np.ndarray, budget: float) -> OutputComparison:
    got64, exp64 = np.asarray(got, dtype=np.float64), np.asarray(expected, dtype=np.float64)
    if got64.shape != exp64.shape:
        raise ValidationError(
            f"output {output} at batch {batch}: ONNX shape {got64.shape} differs from PyTorch {exp64.shape}"
        )
    diff = np.abs(got64 - exp64)
    max_abs = float(diff.max()) if diff.size else 0.0
    if diff.size and not np.isfinite(diff).all():
        max_abs = float("inf")
    scale = float(np.abs(exp64).max()) if exp64.size else 0.0
    max_rel = max_abs / scale if scale > 0 else (0.0 if max_abs == 0 else float("inf"))
    a, b = got64.ravel(), exp64.ravel()
    denom = float(np.linalg.norm(a) * np.linalg.norm(b))
    cosine = float(a @ b / denom) if denom > 0 else (1.0 if max_abs == 0 else 0.0)
    top1 = None
    if exp64.ndim == 2 and exp64.shape[1] > 1:
        top1 = float((got64.argmax(axis=1) == exp64.argmax(axis=1)).mean())
    return OutputComparison(output, batch, max_abs, max_rel, cosine, top1, budget)


def check_structure(model: onnx.ModelProto | bytes) -> list[str]:
    """onnx.checker with `full_check` (which includes strict, type-checked shape inference through the function
    bodies); raises ValidationError on failure."""
    try:
        onnx.checker.check_model(model, full_check=True)
    except (onnx.checker.ValidationError, onnx.shape_inference.InferenceError) as err:
        raise ValidationError(f"onnx.checker rejected the export: {_one_line(err)}") from None
    return ["onnx.checker full check", "ONNX shape inference (strict)"]


def ort_session(model: onnx.ModelProto | bytes, *, threads: int | None = None) -> Any:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.log_severity_level = 3
    if threads is not None:
        options.intra_op_num_threads = threads
    try:
        data = model if isinstance(model, bytes) else model.SerializeToString()
        return ort.InferenceSession(data, options, providers=["CPUExecutionProvider"])
    except Exception as err:  # ORT raises its own exception types for models it cannot load
        raise ValidationError(f"ONNX Runtime cannot load the export: {_one_line(err)}") from None


@dataclass
class Reference:
    """One validation input and the PyTorch outputs for it."""

    batch: int
    inputs: np.ndarray
    outputs: list[np.ndarray]


def reference_outputs(
    torch_fn: Callable[[Any], Sequence[Any]],
    input_shape: Sequence[int],
    batch_sizes: Sequence[int],
    *,
    seed: int = DEFAULT_SEED,
) -> list[Reference]:
    """Seeded standard-normal inputs at each batch size and `torch_fn`'s outputs on them (computed once, reused for
    every flavour of an export)."""
    import torch

    generator = torch.Generator().manual_seed(seed)
    references = []
    for batch in batch_sizes:
        x = torch.randn((batch, *input_shape), generator=generator)
        with torch.no_grad():
            outputs = [t.detach().float().numpy() for t in torch_fn(x)]
        references.append(Reference(batch, x.numpy(), outputs))
    return references


def validate(
    model: onnx.ModelProto | bytes,
    references: Sequence[Reference],
    *,
    input_name: str,
    budgets: Mapping[str, float],
    progress: Callable[[str], None] | None = None,
) -> ValidationReport:
    """Check `model` (a ModelProto or its serialized bytes) structurally and run it in ONNX Runtime on every
    reference input.

    Never raises on a budget violation (the caller decides, see `ValidationReport.passed`); raises
    `ValidationError` when the graph is invalid or cannot run.
    """
    import onnxruntime as ort

    say = progress or (lambda _message: None)
    report = ValidationReport()
    model = model if isinstance(model, bytes) else model.SerializeToString()
    say("checking the graph (onnx.checker, shape inference)")
    report.checks.extend(check_structure(model))
    say("loading the export in ONNX Runtime (CPU)")
    session = ort_session(model)
    report.runtime = f"onnxruntime {ort.__version__} CPUExecutionProvider"
    report.checks.append("ONNX Runtime CPU session")
    output_names = [o.name for o in session.get_outputs()]
    for ref in references:
        say(f"comparing ONNX Runtime with PyTorch at batch {ref.batch}")
        try:
            got = session.run(output_names, {input_name: ref.inputs})
        except Exception as err:  # a graph that loads but cannot run at this batch (e.g. a frozen reshape)
            raise ValidationError(f"ONNX Runtime failed at batch {ref.batch}: {_one_line(err)}") from None
        if len(got) != len(ref.outputs):
            raise ValidationError(f"the export has {len(got)} outputs, PyTorch returns {len(ref.outputs)}")
        for name, g, e in zip(output_names, got, ref.outputs, strict=True):
            report.comparisons.append(compare(name, ref.batch, g, e, budgets.get(name, DEFAULT_FP32_BUDGET)))
    return report


def _one_line(err: BaseException) -> str:
    text = " ".join(str(err).split())
    return text[:300] + ("..." if len(text) > 300 else "")
