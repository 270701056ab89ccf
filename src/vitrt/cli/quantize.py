"""`vitrt quantize`: INT8 post-training quantization with calibration and an accuracy budget."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from vitrt.cli import app, make_console


@app.command("quantize")
def quantize_command(
    model: Annotated[Path, typer.Argument(help="The vitrt ONNX file (portable flavour) to quantize.")],
    calibration: str = typer.Option(
        "demo-digits", "--calibration", help="demo-digits, random, or an image folder (DIR/<class>/*.png)."
    ),
    n: int = typer.Option(512, "--n", help="Number of calibration samples."),
    target: str = typer.Option("onnxruntime", "--target", help="tensorrt, openvino or onnxruntime."),
    out: Annotated[Path | None, typer.Option("--out", "-o", help="Output file (.onnx; .xml for openvino).")] = None,
    max_accuracy_drop: float = typer.Option(
        0.5, "--max-accuracy-drop", help="Allowed top-1 accuracy drop in points on the held-out data."
    ),
    min_agreement: float = typer.Option(98.0, "--min-agreement", help="Required top-1 agreement with FP32, %."),
    exclude: Annotated[
        list[str] | None, typer.Option("--exclude", help="Regex over node names to keep float (repeatable).")
    ] = None,
    holdout: int = typer.Option(None, "--holdout", help="Held-out samples for the accuracy check."),
    force: bool = typer.Option(False, "--force", help="Write the model even when it misses the budget."),
    no_search: bool = typer.Option(False, "--no-search", help="Skip the per-block sensitivity search."),
    report: Annotated[
        Path | None, typer.Option("--report", help="Report base path (default <out>.quantize_report).")
    ] = None,
    seed: int = typer.Option(0, "--seed", help="Seed of random calibration images."),
) -> None:
    """Quantize an exported model to INT8 for TensorRT, OpenVINO or ONNX Runtime (exit 3 when over budget)."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from vitrt.cli.logs import configure_logging
    from vitrt.quantize import quantize

    configure_logging()
    with Progress(
        TextColumn("calibrating"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=make_console(stderr=True),
        transient=True,
    ) as bar:
        task = bar.add_task("calibrate", total=None)
        result = quantize(
            model,
            calibration=calibration,
            n=n,
            target=target,
            out=out,
            max_accuracy_drop=max_accuracy_drop,
            min_agreement=min_agreement,
            exclude=exclude or (),
            force=force,
            report=report,
            holdout=holdout,
            search=not no_search,
            seed=seed,
            progress=lambda done, total: bar.update(task, completed=done, total=total),
        )
    rep = result.report
    typer.echo(f"wrote {result.path} ({rep.target}, {rep.quantized_nodes}/{rep.quantizable_nodes} linear layers INT8)")
    typer.echo(f"held-out: {rep.final.summary()}")
    if rep.kept_float:
        typer.echo(f"kept float: {', '.join(rep.kept_float)}")
    if result.report_paths:
        typer.echo(f"report: {result.report_paths[0]}, {result.report_paths[1]}")
    if not rep.passed:
        typer.echo("warning: over budget, written because of --force", err=True)
