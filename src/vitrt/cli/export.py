"""`vitrt export`: one validated ONNX file from a zoo name or a checkpoint."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from vitrt.cli import app, make_console

_MODEL_HELP = (
    "A zoo name (`vitrt models`; *_digits names export their trained weights, others random weights unless "
    "--checkpoint is given) or a checkpoint file whose model comes from --model, the file's training config or a "
    "<file>.json sidecar."
)


@app.command("export")
def export_command(
    model: Annotated[str, typer.Argument(metavar="MODEL_OR_CHECKPOINT", help=_MODEL_HELP)],
    out: Annotated[Path, typer.Option("--out", "-o", help="ONNX file to write.")],
    checkpoint: Annotated[
        Path | None, typer.Option("--checkpoint", help="Official checkpoint (.pth/.pt/.safetensors).")
    ] = None,
    model_name: Annotated[
        str | None, typer.Option("--model", help="Zoo name of the model a checkpoint file holds.")
    ] = None,
    img_size: Annotated[
        int | None, typer.Option("--img-size", help="Square input resolution (default: the model's).")
    ] = None,
    opset: Annotated[int, typer.Option("--opset", help="ONNX opset, 17..23.")] = 18,
    batch: Annotated[str, typer.Option("--batch", help="'dynamic' or a fixed batch size N.")] = "dynamic",
    flavour: Annotated[
        str,
        typer.Option(
            "--flavour",
            help="portable: vitrt nodes + standard-op bodies (ONNX Runtime and TensorRT); tensorrt: bodies "
            "stripped (TensorRT with the vitrt plugins); inlined: bodies inlined (any runtime).",
        ),
    ] = "portable",
    no_custom_ops: Annotated[
        bool,
        typer.Option(
            "--no-custom-ops", help="Export the plain PyTorch decomposition (no vitrt nodes; CA as DFT-by-MatMul)."
        ),
    ] = False,
    fp16_safe: Annotated[
        bool, typer.Option("--fp16-safe", help="Overflow-guarded function bodies (same FP32 result).")
    ] = False,
    skip_validation: Annotated[
        bool, typer.Option("--skip-validation", help="Write without comparing to PyTorch.")
    ] = False,
    trust_checkpoint: Annotated[
        bool,
        typer.Option("--trust-checkpoint", help="Allow full unpickling of the checkpoint (only for files you trust)."),
    ] = False,
    exporter: Annotated[str, typer.Option("--exporter", help="auto, torchscript or dynamo.")] = "auto",
    budget: Annotated[
        float | None, typer.Option("--budget", help="Max-abs budget per output (default 1e-4, FP32).")
    ] = None,
    report: Annotated[Path | None, typer.Option("--report", help="Also write the export report as JSON.")] = None,
) -> None:
    """Export a model to ONNX and prove it matches PyTorch before returning."""

    from vitrt.errors import ExportError
    from vitrt.export.zoo import export_zoo_model

    console = make_console(stderr=True, log_path=False)
    batch_value = _parse_batch(batch)
    if report is not None and report.is_dir():
        raise ExportError(f"--report {report} is a directory")
    with console.status("[bold]vitrt export[/bold]: starting", spinner="dots") as status:

        def progress(message: str) -> None:
            console.log(message)
            status.update(f"[bold]vitrt export[/bold]: {message}")

        progress(f"building {model}")
        result = export_zoo_model(
            model,
            out,
            checkpoint=checkpoint,
            img_size=img_size,
            model_name=model_name,
            trust_checkpoint=trust_checkpoint,
            opset=opset,
            batch=batch_value,
            flavour=flavour,
            custom_ops=not no_custom_ops,
            fp16_safe=fp16_safe,
            validate=not skip_validation,
            budget=budget,
            exporter=exporter,
            progress=progress,
        )
    _print_result(result, make_console())
    if report is not None:
        try:
            report.write_text(json.dumps(result.to_dict(), indent=2))
        except OSError as err:
            raise ExportError(f"cannot write the report {report}: {err.strerror or err}") from None


def _parse_batch(batch: str) -> str | int:
    from vitrt.errors import ExportError

    if batch == "dynamic":
        return batch
    try:
        value = int(batch)
    except ValueError:
        raise ExportError(f"--batch must be 'dynamic' or a positive integer, got {batch!r}") from None
    if value < 1:
        raise ExportError(f"--batch must be 'dynamic' or a positive integer, got {batch!r}")
    return value


def _print_result(result, console) -> None:  # type: ignore[no-untyped-def]
    from rich.table import Table

    for note in result.warnings:
        console.print(f"[yellow]warning:[/yellow] {note}")
    if result.trace_warnings:
        console.print(
            f"{len(result.trace_warnings)} tracer warning(s) from the exporter (the report's trace_warnings); "
            "the batch-1/batch-8 comparison below is what decides whether the trace is right"
        )
    if result.validation is not None:
        table = Table(title="ONNX Runtime vs PyTorch (" + result.validation.runtime + ")")
        for column in ("output", "batch", "max abs", "max rel", "cosine", "top-1", "budget", "status"):
            table.add_column(column, justify="left" if column in ("output", "status") else "right")
        for row in result.validation.comparisons:
            table.add_row(
                row.output,
                str(row.batch),
                f"{row.max_abs:.3g}",
                f"{row.max_rel:.3g}",
                f"{row.cosine:.8f}",
                "-" if row.top1_agreement is None else f"{row.top1_agreement:.0%}",
                f"{row.budget:.3g}",
                "[green]ok[/green]" if row.passed else "[red]FAIL[/red]",
            )
        console.print(table)
        console.print("checks: " + ", ".join(result.validation.checks))
        if result.validation.note:
            console.print(result.validation.note)
    else:
        console.print("[yellow]validation skipped (--skip-validation)[/yellow]")
    ops = ", ".join(f"{name} x{count}" for name, count in result.op_counts.items()) or "none"
    timing = ", ".join(f"{k} {v:.1f}s" for k, v in result.timings.items())
    console.print(
        f"[bold green]wrote[/bold green] {result.path} ({result.file_size / 1e6:.1f} MB, {result.flavour}, opset "
        f"{result.opset}, batch {result.batch}, {result.exporter} exporter)\n"
        f"vitrt nodes: {ops}; {result.total_nodes} nodes in the graph\n"
        f"time: {timing}"
    )
