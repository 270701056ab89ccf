"""The quantization report (`<out>.quantize_report.md` / `.json`): what was quantized, what stayed float and why,
and the accuracy evidence."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from vitrt.quantize.sensitivity import AccuracyBudget, Evaluation, SearchResult

SCHEMA = "vitrt.quantize/1"


@dataclass
class QuantizeReport:
    model: str
    source: str
    target: str
    library: str
    method: str
    out: str
    written: bool
    forced: bool
    budget: AccuracyBudget
    calibration: str
    calibration_count: int
    calibration_sha256: str
    holdout: str
    initial: Evaluation
    final: Evaluation
    quantized_nodes: int
    quantizable_nodes: int
    float_attention_nodes: int
    user_excluded: list[str] = field(default_factory=list)
    search: SearchResult | None = None
    seconds: dict[str, float] = field(default_factory=dict)
    versions: dict[str, str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return self.final.passed

    @property
    def kept_float(self) -> list[str]:
        return self.search.kept_float if self.search else []

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema": SCHEMA,
            "model": self.model,
            "source": self.source,
            "target": self.target,
            "library": self.library,
            "method": self.method,
            "out": self.out,
            "written": self.written,
            "forced": self.forced,
            "passed": self.passed,
            "budget": asdict(self.budget),
            "calibration": {
                "source": self.calibration,
                "count": self.calibration_count,
                "sha256": self.calibration_sha256,
            },
            "holdout": self.holdout,
            "initial": self.initial.to_dict(),
            "final": self.final.to_dict(),
            "quantized_nodes": self.quantized_nodes,
            "quantizable_nodes": self.quantizable_nodes,
            "float_attention_nodes": self.float_attention_nodes,
            "user_excluded": self.user_excluded,
            "kept_float_blocks": self.kept_float,
            "search": self.search.to_dict() if self.search else None,
            "seconds": self.seconds,
            "versions": self.versions,
            "notes": self.notes,
        }

    def to_markdown(self) -> str:
        verdict = "within budget" if self.passed else "OVER BUDGET"
        state = "written" if self.written else "not written"
        if self.forced and self.written and not self.passed:
            state = "written anyway (--force)"
        lines = [
            f"# INT8 quantization of {self.model} for {self.target}",
            "",
            f"- source: `{self.source}` -> `{self.out}` ({state}); quantizer: {self.library}; {self.method}",
            f"- calibration: {self.calibration}, {self.calibration_count} samples (sha256 "
            f"{self.calibration_sha256[:12]}); held-out: {self.holdout}, "
            f"{self.final.n} samples",
            f"- budget: accuracy drop <= {self.budget.max_accuracy_drop:g} pt, top-1 agreement >= "
            f"{self.budget.min_agreement:g} %",
            f"- INT8: {self.quantized_nodes} of {self.quantizable_nodes} linear layers; "
            f"{self.float_attention_nodes} vitrt attention nodes stay float (never quantized inside)",
            f"- result: **{verdict}** — {self.final.summary()}",
            "",
            "| candidate | FP32 acc % | INT8 acc % | drop pt | agreement % | mean abs | passed |",
            "|---|---:|---:|---:|---:|---:|---|",
            _row("all blocks INT8", self.initial),
        ]
        if self.search:
            for step in self.search.steps:
                lines.append(_row("float: " + ", ".join(step.kept_float), step.evaluation))
            lines += [
                "",
                "## Sensitivity (each block quantized alone)",
                "",
                "| block | linear layers | rel. logit error | agreement % | kept float |",
                "|---|---:|---:|---:|---|",
            ]
            for s in self.search.sensitivities:
                kept = "yes" if s.block in self.search.kept_float else ""
                lines.append(f"| {s.block} | {s.nodes} | {s.score:.4f} | {s.agreement:.2f} | {kept} |")
        if self.user_excluded:
            lines += ["", f"Kept float by `--exclude`: {len(self.user_excluded)} node(s)."]
        if self.notes:
            lines += ["", "Notes:", *[f"- {note}" for note in self.notes]]
        if self.seconds:
            lines += ["", "Time: " + ", ".join(f"{k} {v:.1f} s" for k, v in self.seconds.items())]
        return "\n".join(lines) + "\n"

    def save(self, base: str | Path) -> tuple[Path, Path]:
        base = Path(base)
        base = base.with_suffix("") if base.suffix in (".md", ".json") else base
        md, js = base.with_name(base.name + ".md"), base.with_name(base.name + ".json")
        md.write_text(self.to_markdown())
        js.write_text(json.dumps(self.to_dict(), indent=2) + "\n")
        return md, js


def _row(name: str, e: Evaluation) -> str:
    def pct(v: float | None) -> str:
        return "–" if v is None else f"{v:.2f}"

    return (
        f"| {name} | {pct(e.fp32_accuracy)} | {pct(e.int8_accuracy)} | {pct(e.accuracy_drop)} | {e.agreement:.2f} | "
        f"{e.mean_abs:.3g} | {'yes' if e.passed else 'no'} |"
    )
