"""`vitrt bench`: measure a model over backends x precisions x batches x resolutions, with parity per row."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from vitrt.cli import app, make_console


@app.command("bench")
def bench_command(
    model: Annotated[
        list[str],
        typer.Argument(
            help="Zoo name, checkpoint, timm name, ONNX file or TensorRT engine to measure (several: one "
            "interleaved grid)."
        ),
    ],
    backends: str = typer.Option(
        None,
        "--backends",
        "-b",
        help="Comma list: torch (eager, autocast for bf16/fp16), torch-compile (torch.compile/inductor, same "
        "precisions; needs a C++ compiler), onnxruntime, openvino, tensorrt, or all "
        "(default torch,onnxruntime,openvino,tensorrt; what cannot run here is reported as a skipped row).",
    ),
    precisions: str = typer.Option(
        None, "--precisions", "-p", help="Comma list of fp32, bf16, fp16, int8 (default fp32 + bf16 on CPU/fp16 GPU)."
    ),
    batch: str = typer.Option("1,8", "--batch", help="Comma list of batch sizes."),
    img_size: str = typer.Option(None, "--img-size", help="Comma list of resolutions (default: the model's own)."),
    threads: int = typer.Option(None, "--threads", help="Intra-op threads of every runtime (default: theirs)."),
    warmup: int = typer.Option(2, "--warmup", help="Warm-up runs per configuration."),
    iterations: int = typer.Option(None, "--iterations", help="Timed runs per configuration (default: up to 50)."),
    duration: float = typer.Option(
        None, "--duration", help="Measured seconds per configuration (default 3 unless --iterations is given)."
    ),
    rounds: int = typer.Option(3, "--rounds", help="Interleaved rounds the runs are split into."),
    baseline: str = typer.Option(
        None,
        "--baseline",
        help="Softmax architectures to measure alongside (comma list), e.g. deit_tiny_patch16_224 (timm).",
    ),
    inputs: str = typer.Option("random", "--inputs", help="Parity inputs: random, demo-digits or an ImageFolder."),
    n: int = typer.Option(16, "--n", help="Parity samples per configuration."),
    int8: Annotated[Path | None, typer.Option("--int8", help="INT8 ONNX file (vitrt quantize) for int8.")] = None,
    reference: str = typer.Option(
        None, "--reference", help="PyTorch model (zoo name or checkpoint) of an ONNX/engine artifact, for parity."
    ),
    arch: str = typer.Option(None, "--arch", help="Architecture of a checkpoint."),
    device: str = typer.Option("auto", "--device", help="auto, cpu or cuda."),
    max_time: float = typer.Option(
        None, "--max-time", help="Refuse a grid estimated to take longer, and stop after this many seconds."
    ),
    out: Annotated[Path, typer.Option("--out", "-o", help="Directory for bench.json, bench.md and plots.")] = Path(
        "bench"
    ),
    recommend: bool = typer.Option(False, "--recommend", help="Print the fastest configuration within budget."),
    max_accuracy_drop: float = typer.Option(
        None,
        "--max-accuracy-drop",
        help="Budget for --recommend in percentage points (accuracy drop, or top-1 disagreement without labels).",
    ),
    no_plots: bool = typer.Option(False, "--no-plots", help="Skip the PNG plots."),
    profile: bool = typer.Option(
        False, "--profile", help="Split each model's ONNX Runtime time into attention / MLP / norm / other."
    ),
    plan: bool = typer.Option(
        False, "--plan", help="Prepare every configuration (export, warm-up, parity), print the estimate, stop."
    ),
) -> None:
    """Benchmark every backend x precision x batch x resolution, with parity against PyTorch fp32 per row."""
    from vitrt.bench import run_bench
    from vitrt.bench.report import recommendation_lines
    from vitrt.cli.logs import configure_logging

    configure_logging()
    console = make_console()
    result = run_bench(
        model,
        backends=backends,
        precisions=precisions,
        batch=batch,
        img_size=img_size,
        threads=threads,
        warmup=warmup,
        iterations=iterations,
        duration=duration,
        rounds=rounds,
        baseline=baseline,
        inputs=inputs,
        n=n,
        max_time=max_time,
        device=device,
        int8=int8,
        reference=reference,
        arch=arch,
        max_accuracy_drop=max_accuracy_drop,
        out=out,
        plots=not no_plots,
        profile=profile,
        plan=plan,
    )
    _print_table(console, result)
    if plan:
        runnable = sum(row.status == "planned" for row in result.rows)
        typer.echo(
            f"plan: {runnable} of {len(result.rows)} configurations would be measured; preparing took "
            f"{result.prepare_s or 0:.0f} s, measuring would take about {result.estimate_s or 0:.0f} s"
        )
    if recommend:
        console.print("\n[bold]Recommendation[/bold]")
        for line in recommendation_lines(result):
            console.print(line.replace("**", "").replace("  \n", "\n").replace("`", ""), markup=False)
    typer.echo(f"results: {out / 'bench.json'}, {out / 'bench.md'}")
    if result.interrupted:
        typer.echo("error: interrupted; partial results written", err=True)
        raise typer.Exit(130)


def _print_table(console: object, result: object) -> None:
    from rich.table import Table

    from vitrt.bench.report import BenchResult

    assert isinstance(result, BenchResult)
    table = Table(title=f"vitrt bench {result.source}")
    for column in ("model", "backend", "prec.", "batch", "px", "median ms", "p99 ms", "img/s", "max abs", "parity"):
        table.add_column(
            column, justify="right" if column in ("batch", "px", "median ms", "p99 ms", "img/s") else "left"
        )
    for row in result.rows:
        lat = row.latency_ms or {}
        if row.status in ("skipped", "failed"):
            verdict = f"{row.status}: {row.reason}"
        elif row.status == "planned" and row.parity is not None:
            verdict = ("pass" if row.passed else "FAIL") + f", planned ~{row.planned_s or 0:.1f} s"
        elif row.parity is None:
            verdict = row.status
        else:
            verdict = "pass" if row.passed else "FAIL " + "; ".join(row.parity["failures"])
        table.add_row(
            row.model,
            row.backend,
            row.precision,
            str(row.batch),
            str(row.img_size),
            f"{lat['median']:.2f}" if lat else "",
            f"{lat['p99']:.2f}" if lat else "",
            f"{row.throughput:.1f}" if row.throughput else "",
            f"{row.parity['max_abs']:.1e}" if row.parity else "",
            verdict,
        )
    console.print(table)  # type: ignore[attr-defined]
