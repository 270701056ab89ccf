"""`vitrt quantize`: INT8 post-training quantization with calibration, for TensorRT, OpenVINO and ONNX Runtime.

    >>> from vitrt.quantize import quantize
    >>> result = quantize("agent_digits.onnx", calibration="demo-digits", target="openvino", out="agent.int8.xml")
    >>> result.report.final.accuracy_drop, result.report.kept_float

Targets: `onnxruntime` (static QDQ, the CPU default), `tensorrt` (explicit-quantization QDQ ONNX for `vitrt build
--precision int8`), `openvino` (NNCF, OpenVINO IR). vitrt attention nodes are never quantized inside; the accuracy
budget is checked on held-out data and the most sensitive blocks are kept float until it holds. A model over budget
is not written unless `force=True`; nothing half-written is ever left at `out`.
"""

from __future__ import annotations

import logging
import shutil
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from vitrt.errors import ValidationError
from vitrt.quantize.graph import QuantizeInputError
from vitrt.quantize.sensitivity import AccuracyBudget

if TYPE_CHECKING:
    import numpy as np

    from vitrt.quantize.base import Target
    from vitrt.quantize.report import QuantizeReport

__all__ = ["TARGETS", "AccuracyBudget", "QuantizeInputError", "QuantizeResult", "quantize"]

log = logging.getLogger(__name__)
TARGETS = ("onnxruntime", "tensorrt", "openvino")
SENSITIVITY_CALIBRATION = 128  # calibration samples per candidate in the per-block sensitivity pass


class QuantizeBudgetError(ValidationError):
    """An INT8 model that misses the accuracy budget even with every block float (or without --force)."""


@dataclass
class QuantizeResult:
    path: Path | None  # the written artifact (None when it was refused)
    report: QuantizeReport
    report_paths: tuple[Path, Path] | None


def get_target(name: str) -> Target:
    if name == "onnxruntime":
        from vitrt.quantize.onnxruntime import OnnxRuntimeTarget

        return OnnxRuntimeTarget()
    if name == "tensorrt":
        from vitrt.quantize.onnxruntime import TensorRTTarget

        return TensorRTTarget()
    if name == "openvino":
        from vitrt.quantize.openvino import OpenVinoTarget

        return OpenVinoTarget()
    raise QuantizeInputError(f"unknown target {name!r}; choose from {', '.join(TARGETS)}")


def default_out(model: Path, target: Target) -> Path:
    stem = model.name[: -len(".onnx")] if model.name.endswith(".onnx") else model.stem
    return model.with_name(f"{stem}.int8{target.suffix}")


def quantize(
    model: str | Path,
    *,
    calibration: str | Path = "demo-digits",
    n: int = 512,
    target: str = "onnxruntime",
    out: str | Path | None = None,
    max_accuracy_drop: float = 0.5,
    min_agreement: float = 98.0,
    exclude: Sequence[str] = (),
    force: bool = False,
    report: str | Path | None = None,
    holdout: int | None = None,
    search: bool = True,
    seed: int = 0,
    progress: Callable[[int, int], None] | None = None,
) -> QuantizeResult:
    """Quantize the vitrt ONNX file `model` to INT8 for `target`; see the module docstring.

    `calibration`: "demo-digits", "random" or an image folder. `n`: calibration samples. `max_accuracy_drop`
    (points) and `min_agreement` (percent) form the budget, checked on `holdout` held-out samples. `exclude`:
    regular expressions over node names to keep float. `report`: base path of the .md/.json report (default
    `<out>.quantize_report`). `progress(done, total)` is called as calibration samples go through the model.
    Raises QuantizeBudgetError (exit 3) when the budget cannot be met and `force` is false.
    """
    from vitrt.engines import onnx_graph
    from vitrt.quantize import graph
    from vitrt.quantize.calibration import load_calibration

    started = time.perf_counter()
    chosen = get_target(target)
    if max_accuracy_drop < 0 or not 0 <= min_agreement <= 100:
        raise QuantizeInputError("--max-accuracy-drop must be >= 0 and --min-agreement within 0..100")
    source = Path(model)
    if not source.is_file():
        raise QuantizeInputError(f"model file not found: {source}")
    destination = Path(out) if out is not None else default_out(source, chosen)
    if destination.suffix != chosen.suffix:
        raise QuantizeInputError(f"--out for target {target} must end in {chosen.suffix}, got {destination.name}")
    if destination.resolve() == source.resolve():
        raise QuantizeInputError("--out must differ from the input model")
    if not destination.parent.is_dir():
        raise QuantizeInputError(f"output directory {destination.parent} does not exist")
    chosen.check_available()
    onnx_model = onnx_graph.load_model(source)
    metadata = onnx_graph.model_metadata(onnx_model)
    if metadata is None:
        raise QuantizeInputError(
            f"{source} has no vitrt export metadata (preprocessing, labels); export it with `vitrt export`"
        )
    if any(node.op_type in graph.QDQ_OPS for node in onnx_model.graph.node):
        raise QuantizeInputError(f"{source} is already quantized (it has QuantizeLinear/DequantizeLinear nodes)")
    if any(n.domain == graph.VITRT_DOMAIN for n in onnx_model.graph.node) and not onnx_model.functions:
        raise QuantizeInputError(
            f"{source} is the tensorrt flavour (no function bodies); quantize the portable export instead"
        )
    user_excluded = graph.resolve_excludes(onnx_model, list(exclude))
    quantizable = graph.quantizable_nodes(onnx_model)
    blocks = graph.nodes_by_block(quantizable)
    budget = AccuracyBudget(max_accuracy_drop, min_agreement)
    data = load_calibration(calibration, metadata, n, holdout=holdout, seed=seed)
    notes = list(data.notes)
    seconds: dict[str, float] = {}

    from vitrt.quantize.base import run_batched

    t0 = time.perf_counter()
    fp32 = run_batched(get_target("onnxruntime").runner(source), data.holdout_images)
    seconds["fp32 reference"] = time.perf_counter() - t0
    tmp = Path(tempfile.mkdtemp(prefix=".vitrt-quantize-", dir=destination.parent))
    try:
        counter = [0]

        def build(exclude_nodes: set[str], calib: object = data, tick: bool = False) -> Path:
            counter[0] += 1
            path = tmp / f"candidate{counter[0]}{chosen.suffix}"
            done = [0]
            total = calib.count  # type: ignore[attr-defined]

            def on_batch(count: int) -> None:
                done[0] += count
                if tick and progress is not None:
                    progress(min(done[0], total), total)

            chosen.quantize(onnx_model, source, path, calib, exclude_nodes | user_excluded, on_batch)  # type: ignore[arg-type]
            return path

        def logits_of(path: Path) -> np.ndarray:
            return run_batched(chosen.runner(path), data.holdout_images)

        from vitrt.quantize.sensitivity import block_sensitivities, evaluate
        from vitrt.quantize.sensitivity import search as run_search

        t0 = time.perf_counter()
        best = build(set(), tick=True)
        seconds["calibrate + quantize"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        initial = evaluate(fp32, logits_of(best), data.holdout_labels, budget)
        seconds["evaluate"] = time.perf_counter() - t0
        final, search_result, exclude_final = initial, None, set()
        if not initial.passed and search and blocks:
            log.info("INT8 over budget (%s); measuring per-block sensitivity", "; ".join(initial.failures))
            t0 = time.perf_counter()
            small = data.subset(SENSITIVITY_CALIBRATION)
            sensitivities = block_sensitivities(blocks, lambda ex: logits_of(build(ex, small)), fp32)
            candidates: dict[frozenset[str], Path] = {}

            def evaluate_with(ex: set[str]) -> object:
                path = build(ex)
                candidates[frozenset(ex)] = path
                return evaluate(fp32, logits_of(path), data.holdout_labels, budget)

            search_result = run_search(blocks, evaluate_with, sensitivities)  # type: ignore[arg-type]
            final = search_result.final
            exclude_final = {name for block in search_result.kept_float for name in blocks[block]}
            best = candidates.get(frozenset(exclude_final), best)
            seconds["sensitivity search"] = time.perf_counter() - t0
        if data.holdout_labels is None:
            notes.append("unlabelled held-out data: only top-1 agreement with FP32 is checked, not accuracy")

        from vitrt.quantize.report import QuantizeReport

        quantized_count = sum(1 for q in quantizable if q.name not in exclude_final | user_excluded)
        attention = sum(1 for node in onnx_model.graph.node if node.domain == graph.VITRT_DOMAIN)
        written = final.passed or force
        rep = QuantizeReport(
            model=metadata.model,
            source=str(source),
            target=chosen.name,
            library=chosen.library,
            method=chosen.method,
            out=str(destination),
            written=written,
            forced=force,
            budget=budget,
            calibration=data.source,
            calibration_count=data.count,
            calibration_sha256=data.sha256,
            holdout=data.holdout_source,
            initial=initial,
            final=final,
            quantized_nodes=quantized_count,
            quantizable_nodes=len(quantizable),
            float_attention_nodes=attention,
            user_excluded=sorted(user_excluded),
            search=search_result,
            seconds=seconds,
            versions=_versions(chosen),
            notes=notes,
        )
        if written:
            chosen.record(best, _record(rep))
            for produced, final_path in zip(
                chosen.artifact_files(best), chosen.artifact_files(destination), strict=True
            ):
                shutil.move(produced, final_path)
        seconds["total"] = time.perf_counter() - started
        base = Path(report) if report is not None else destination.with_name(destination.name + ".quantize_report")
        paths = rep.save(base)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    if not written:
        kept = f" with {len(rep.kept_float)} block(s) kept float" if rep.kept_float else ""
        raise QuantizeBudgetError(
            f"INT8 model over budget{kept}: {'; '.join(final.failures)}; nothing written to {destination} "
            f"(report: {paths[0]}; --force writes it anyway)"
        )
    return QuantizeResult(destination, rep, paths)


def _record(rep: QuantizeReport) -> dict[str, object]:
    """The quantization record stored inside the artifact (read by parity, the engine builder, the server)."""
    return {
        "precision": "int8",
        "target": rep.target,
        "library": rep.library,
        "method": rep.method,
        "calibration": rep.calibration,
        "calibration_count": rep.calibration_count,
        "calibration_sha256": rep.calibration_sha256,
        "quantized_nodes": rep.quantized_nodes,
        "kept_float_blocks": rep.kept_float,
        "user_excluded": len(rep.user_excluded),
        "budget": {"max_accuracy_drop": rep.budget.max_accuracy_drop, "min_agreement": rep.budget.min_agreement},
        "accuracy_drop": rep.final.accuracy_drop,
        "agreement": rep.final.agreement,
        "passed": rep.final.passed,
    }


def _versions(target: Target) -> dict[str, str]:
    import importlib.metadata as md

    from vitrt import __version__

    versions = {"vitrt": __version__}
    for package in ("onnx", "onnxruntime", "openvino", "nncf"):
        try:
            versions[package] = md.version(package)
        except md.PackageNotFoundError:
            continue
    return versions
