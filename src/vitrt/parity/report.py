"""The parity report: JSON for machines, Markdown for people, a rich table for the terminal."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vitrt.parity.blocks import PerBlockReport
from vitrt.parity.budgets import Budget
from vitrt.parity.metrics import OutputComparison


@dataclass
class BackendSummary:
    name: str
    description: str
    accuracy: float | None = None
    top5_accuracy: float | None = None
    # {runtime precision: {op type: count}} where the runtime reports it (OpenVINO's compiled graph).
    runtime_precisions: dict[str, dict[str, int]] | None = None


@dataclass
class ParityReport:
    model: str
    artifact: str
    precision: str
    inputs: str
    n: int
    batch_size: int
    budget: Budget
    reference: BackendSummary
    backends: list[BackendSummary]
    comparisons: list[OutputComparison]
    per_block: list[PerBlockReport] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    created: str = ""
    vitrt_version: str = ""

    @property
    def passed(self) -> bool:
        return all(c.passed for c in self.comparisons)

    def failures(self) -> list[str]:
        return [f"{c.backend} {c.output}: {failure}" for c in self.comparisons for failure in c.failures]

    def first_divergent_blocks(self) -> dict[str, str | None]:
        return {block.backend: block.first_divergent for block in self.per_block}

    def to_dict(self) -> dict[str, Any]:
        return {
            "passed": self.passed,
            "model": self.model,
            "artifact": self.artifact,
            "precision": self.precision,
            "inputs": self.inputs,
            "n": self.n,
            "batch_size": self.batch_size,
            "budget": self.budget.to_dict(),
            "reference": vars(self.reference),
            "backends": [vars(b) for b in self.backends],
            "comparisons": [c.to_dict() for c in self.comparisons],
            "per_block": [b.to_dict() for b in self.per_block],
            "failures": self.failures(),
            "notes": self.notes,
            "created": self.created,
            "vitrt_version": self.vitrt_version,
        }

    def to_markdown(self) -> str:
        verdict = "PASS" if self.passed else "FAIL"
        lines = [
            f"# Parity report: {self.model} — {verdict}",
            "",
            f"- artifact: `{self.artifact}`",
            f"- precision: {self.precision}; inputs: {self.inputs}; samples: {self.n}; batch size: {self.batch_size}",
            f"- reference: {self.reference.description}",
            f"- created: {self.created} (vitrt {self.vitrt_version})",
            "",
            "## Accuracy",
            "",
            "| backend | runtime | top-1 accuracy | top-5 accuracy |",
            "|---|---|---|---|",
        ]
        for summary in [self.reference, *self.backends]:
            lines.append(
                f"| {summary.name} | {summary.description} | {_pct(summary.accuracy)} | {_pct(summary.top5_accuracy)} |"
            )
        lines += [
            "",
            "## Outputs against the PyTorch reference",
            "",
            "| backend | output | max abs | mean abs | max rel | cosine (min) | top-1 agree | top-5 agree | verdict |",
            "|---|---|---|---|---|---|---|---|---|",
        ]
        for c in self.comparisons:
            lines.append(
                f"| {c.backend} | {c.output} | {c.max_abs:.3g} | {c.mean_abs:.3g} | {c.max_rel:.3g} | "
                f"{c.cosine_min:.6f} | {_pct(c.top1_agreement)} | {_pct(c.top5_agreement)} | "
                f"{'ok' if c.passed else 'over budget'} |"
            )
        b = self.budget
        lines += [
            "",
            f"Budget ({self.precision}): max abs ≤ {b.max_abs:g}, mean abs ≤ {b.mean_abs:g}, "
            f"cosine ≥ {b.min_cosine:g}, top-1 agreement ≥ {b.min_top1_agreement:g}, "
            f"accuracy drop ≤ {b.max_accuracy_drop:g}.",
        ]
        for summary in self.backends:
            if summary.runtime_precisions:
                lines += [
                    "",
                    f"## Runtime precisions: {summary.name}",
                    "",
                    *precision_table(summary.runtime_precisions),
                ]
        if self.failures():
            lines += ["", "## Over budget", ""] + [f"- {failure}" for failure in self.failures()]
        for block in self.per_block:
            lines += ["", f"## Per-block errors: {block.backend}", "", block.summary() + ".", ""]
            if block.rows:
                lines += ["| block | tensor | max abs | rel | cosine (min) | diverged |", "|---|---|---|---|---|---|"]
                for row in block.rows:
                    lines.append(
                        f"| {row.block} | `{row.tensor}` | {row.max_abs:.3g} | {row.rel:.3g} | {row.cosine_min:.6f} | "
                        f"{'**yes**' if row.diverged else 'no'} |"
                    )
            lines += [f"- {note}" for note in block.notes]
        if self.notes:
            lines += ["", "## Notes", ""] + [f"- {note}" for note in self.notes]
        return "\n".join(lines) + "\n"

    def write(self, path: str | Path) -> tuple[Path, Path]:
        """`out/x` -> `out/x.md` and `out/x.json` (a `.md`/`.json` suffix on `path` is replaced)."""
        base = Path(path)
        if base.suffix in (".md", ".json"):
            base = base.with_suffix("")
        base.parent.mkdir(parents=True, exist_ok=True)
        md, js = base.with_name(base.name + ".md"), base.with_name(base.name + ".json")
        md.write_text(self.to_markdown())
        js.write_text(json.dumps(self.to_dict(), indent=2) + "\n")
        return md, js

    def print(self, console: Any = None) -> None:
        """Rich tables on the terminal."""
        from rich.console import Console
        from rich.table import Table

        console = console or Console()
        accuracy = Table(title=f"{self.model}: {self.inputs}, {self.n} samples, {self.precision}")
        for column in ("backend", "runtime", "top-1 acc", "top-5 acc"):
            accuracy.add_column(column)
        for summary in [self.reference, *self.backends]:
            accuracy.add_row(summary.name, summary.description, _pct(summary.accuracy), _pct(summary.top5_accuracy))
        console.print(accuracy)
        table = Table(title="against the PyTorch reference")
        for column in ("backend", "output", "max abs", "mean abs", "max rel", "cos min", "top-1", "top-5", "verdict"):
            table.add_column(column)
        for c in self.comparisons:
            table.add_row(
                c.backend,
                c.output,
                f"{c.max_abs:.3g}",
                f"{c.mean_abs:.3g}",
                f"{c.max_rel:.3g}",
                f"{c.cosine_min:.6f}",
                _pct(c.top1_agreement),
                _pct(c.top5_agreement),
                "[green]ok[/green]" if c.passed else "[red]over budget[/red]",
            )
        console.print(table)
        for block in self.per_block:
            blocks = Table(title=f"per-block errors ({block.backend})")
            for column in ("block", "max abs", "rel", "cos min", "diverged"):
                blocks.add_column(column)
            for row in block.rows:
                mark = "[red]yes[/red]" if row.diverged else "no"
                blocks.add_row(row.block, f"{row.max_abs:.3g}", f"{row.rel:.3g}", f"{row.cosine_min:.6f}", mark)
            if block.rows:
                console.print(blocks)
            console.print(block.summary())
        for summary in self.backends:
            if summary.runtime_precisions:
                ran = "; ".join(
                    f"{precision}: {', '.join(f'{op} {n}' for op, n in ops.items())}"
                    for precision, ops in summary.runtime_precisions.items()
                )
                console.print(f"{summary.name} ran (op type count per precision) {ran}")
        for note in self.notes:
            console.print(f"note: {note}")
        for failure in self.failures():
            console.print(f"[red]over budget[/red]: {failure}")


def precision_table(precisions: dict[str, dict[str, int]]) -> list[str]:
    """Markdown rows: one per op type, how many of its ops ran in each precision the runtime reports."""
    columns = sorted(precisions)
    op_types = sorted({op for ops in precisions.values() for op in ops})
    rows = ["| op type | " + " | ".join(columns) + " |", "|---|" + "---|" * len(columns)]
    for op in op_types:
        rows.append(f"| {op} | " + " | ".join(str(precisions[c].get(op, "")) or "" for c in columns) + " |")
    return rows


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.2f}%"
