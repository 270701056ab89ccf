"""`vitrt parity`: the same inputs through PyTorch and the deployed runtimes, compared against budgets."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from vitrt.cli import app, make_console


@app.command("parity")
def parity_command(
    model: Annotated[
        str | None, typer.Option("--model", "-m", help="Zoo model name or checkpoint file (the reference).")
    ] = None,
    artifact: Annotated[
        Path | None, typer.Option("--artifact", "-a", help="ONNX file, OpenVINO IR (.xml) or TensorRT engine to check.")
    ] = None,
    replay: Annotated[
        Path | None,
        typer.Option(
            "--replay",
            help="Re-run the inputs a server kept (vitrt serve --shadow-keep DIR) through its primary and "
            "reference, and PyTorch per block.",
        ),
    ] = None,
    arch: str = typer.Option(None, "--arch", help="Architecture of a checkpoint (default: the artifact's)."),
    backends: str = typer.Option(
        None,
        "--backends",
        help="Comma-separated runtimes: torch,onnxruntime,openvino,tensorrt (default: the artifact's).",
    ),
    inputs: str = typer.Option("random", "--inputs", help="random, demo-digits, or an ImageFolder directory."),
    n: int = typer.Option(64, "--n", help="Number of samples (0 = the whole data set)."),
    batch_size: int = typer.Option(None, "--batch-size", help="Batch size (default: min(32, n, engine max))."),
    precision: str = typer.Option(
        None,
        "--precision",
        help="fp32, fp16 or bf16: what openvino runs (and tensorrt builds) and the budget (per model where known); "
        "an INT8 file from vitrt quantize is always checked at int8.",
    ),
    openvino_option: Annotated[
        list[str] | None,
        typer.Option(
            "--openvino-option", help="KEY=VALUE for the openvino backend, e.g. keep_fp32=fragile (repeatable)."
        ),
    ] = None,
    budget_max_abs: float = typer.Option(None, "--budget-max-abs", help="Override: max abs logit error."),
    budget_mean_abs: float = typer.Option(None, "--budget-mean-abs", help="Override: mean abs logit error."),
    budget_min_cosine: float = typer.Option(None, "--budget-min-cosine", help="Override: min cosine similarity."),
    budget_min_top1: float = typer.Option(None, "--budget-min-top1", help="Override: min top-1 agreement (0-1)."),
    budget_max_accuracy_drop: float = typer.Option(
        None, "--budget-max-accuracy-drop", help="Override: max top-1 accuracy drop (0-1)."
    ),
    budget_block_rel: float = typer.Option(
        None, "--budget-block-rel", help="Override: relative error at which a block counts as diverged."
    ),
    report: Annotated[Path | None, typer.Option("--report", help="Write PATH.md and PATH.json.")] = None,
    per_block: bool = typer.Option(False, "--per-block", help="Compare every block and name the first divergent."),
    device: str = typer.Option("auto", "--device", help="Device of the PyTorch reference: auto, cpu, cuda."),
    seed: int = typer.Option(0, "--seed", help="Seed of the random inputs."),
    plugins: str = typer.Option(None, "--plugins", help="vitrt plugin library for TensorRT: auto, PATH or none."),
    trust_checkpoint: bool = typer.Option(
        False, "--trust-checkpoint", help="Allow full unpickling of the checkpoint (only for files you trust)."
    ),
    ignore_manifest_mismatch: bool = typer.Option(
        False, "--ignore-manifest-mismatch", help="Load an engine whose manifest does not match this machine."
    ),
) -> None:
    """Check that an exported artifact matches its PyTorch model (exit 3 when over budget)."""

    from vitrt.cli.logs import configure_logging
    from vitrt.cli.serve import _parse_backend_options
    from vitrt.errors import ValidationError, VitrtError
    from vitrt.parity import run_parity

    configure_logging()
    overrides = {
        "max_abs": budget_max_abs,
        "mean_abs": budget_mean_abs,
        "min_cosine": budget_min_cosine,
        "min_top1_agreement": budget_min_top1,
        "max_accuracy_drop": budget_max_accuracy_drop,
        "block_rel": budget_block_rel,
    }
    overrides = {k: v for k, v in overrides.items() if v is not None}
    if replay is not None:
        if artifact is not None:
            raise VitrtError("give either --replay DIR or --artifact, not both")
        _replay(replay, model, overrides, report, device, plugins)
        return
    if model is None or artifact is None:
        raise VitrtError("give --model and --artifact (or --replay DIR with a shadow keep folder)")
    result = run_parity(
        model,
        artifact,
        arch=arch,
        backends=backends.split(",") if backends else None,
        inputs=inputs,
        n=None if n == 0 else n,
        batch_size=batch_size,
        precision=precision,
        budget_overrides=overrides,
        per_block=per_block,
        device=device,
        seed=seed,
        plugins=plugins,
        allow_mismatch=ignore_manifest_mismatch,
        report=report,
        trust_checkpoint=trust_checkpoint,
        openvino_options=_parse_backend_options(openvino_option or [], "--openvino-option"),
    )
    result.print(make_console())
    if report is not None:
        base = report.with_suffix("") if report.suffix in (".md", ".json") else report
        typer.echo(f"report: {base}.md, {base}.json")
    if not result.passed:
        failures = result.failures()
        more = f" (and {len(failures) - 1} more)" if len(failures) > 1 else ""
        divergent = [f"{k}: {v}" for k, v in result.first_divergent_blocks().items() if v]
        where = f"; first divergent block {', '.join(divergent)}" if divergent else ""
        raise ValidationError(f"parity over budget: {failures[0]}{more}{where}")
    typer.echo("parity: all backends within budget")


def _replay(
    directory: Path,
    model: str | None,
    overrides: dict[str, float],
    report: Path | None,
    device: str,
    plugins: str | None,
) -> None:
    from vitrt.errors import ValidationError
    from vitrt.parity.replay import replay

    # Replay always localises per block when the PyTorch model is known.
    result = replay(directory, model=model, budget_overrides=overrides, device=device, plugins=plugins)
    result.print(make_console())
    if report is not None:
        typer.echo(f"report: {result.write(report)}")
    if not result.passed:
        failures = result.failures()
        more = f" (and {len(failures) - 1} more)" if len(failures) > 1 else ""
        divergent = [f"{k}: {v}" for k, v in result.first_divergent_blocks().items() if v]
        where = f"; first divergent block {', '.join(divergent)}" if divergent else ""
        raise ValidationError(f"replay over budget: {failures[0]}{more}{where}")
    typer.echo("replay: every kept input is within budget now")
