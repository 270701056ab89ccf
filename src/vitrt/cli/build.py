"""`vitrt build`: ONNX -> TensorRT engine plus manifest."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from vitrt.cli import app


@app.command("build")
def build_command(
    onnx_path: Annotated[Path, typer.Argument(help="ONNX file written by `vitrt export`.")],
    out: Annotated[
        Path | None, typer.Option("--out", "-o", help="Engine path (default: next to the ONNX file, .plan).")
    ] = None,
    precision: str = typer.Option(
        "fp32", "--precision", help="fp32, fp16, bf16, or int8 (a Q/DQ file from `vitrt quantize --target tensorrt`)."
    ),
    strongly_typed: bool = typer.Option(
        False, "--strongly-typed", help="Strongly typed network: explicit casts around the FP32 islands."
    ),
    batch: str = typer.Option(
        None, "--batch", help="N or MIN:OPT:MAX (default: the export's fixed batch, else 1:8:32)."
    ),
    workspace: int = typer.Option(None, "--workspace", help="Builder workspace limit in MiB."),
    timing_cache: str = typer.Option(
        "default", "--timing-cache", help="Timing cache file, 'default' (user cache dir) or 'none'."
    ),
    plugins: str = typer.Option(
        "auto", "--plugins", help="'auto' (vitrt plugin library if found), a library path, or 'none' (inlined ops)."
    ),
    fp32_islands: str = typer.Option(
        "fragile",
        "--fp32-islands",
        help="FP32 islands in fp16/bf16 builds: fragile (norms, softmaxes, denominators; attention plugins run "
        "in fp16/bf16), all (attention nodes too, for debugging), none.",
    ),
    tf32: bool = typer.Option(False, "--tf32/--no-tf32", help="Allow TF32 matmuls in FP32 layers."),
    opt_level: int = typer.Option(None, "--opt-level", help="TensorRT builder optimisation level 0-5."),
    hardware_compatibility: str = typer.Option(
        "none", "--hardware-compatibility", help="none, ampere_plus or same_compute_capability."
    ),
    version_compatible: bool = typer.Option(False, "--version-compatible", help="Version-compatible plan."),
    progress: bool = typer.Option(None, "--progress/--no-progress", help="Progress bars (default: on a terminal)."),
    dry_run: bool = typer.Option(
        False, "--dry-run", help="Prepare the graph and print the build plan; needs no TensorRT."
    ),
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Show TensorRT's log."),
) -> None:
    """Build a TensorRT engine and its manifest (model.plan + model.plan.json)."""
    from vitrt.cli.logs import configure_logging
    from vitrt.engines.builder import BuildOptions, build_engine, describe_plan, plan_build

    configure_logging(verbose)
    options = BuildOptions(
        precision=precision,
        strongly_typed=strongly_typed,
        batch=batch,
        workspace_mib=workspace,
        timing_cache=timing_cache,
        plugins=plugins,
        fp32_islands=fp32_islands,
        tf32=tf32,
        optimization_level=opt_level,
        hardware_compatibility=hardware_compatibility,
        version_compatible=version_compatible,
        progress=progress,
    )
    if dry_run:
        plan = plan_build(onnx_path, options)
        typer.echo(json.dumps(describe_plan(plan), indent=2))
        return
    result = build_engine(onnx_path, out, options)
    manifest = result.manifest
    typer.echo(
        f"built {result.engine_path} ({manifest.engine_size / 2**20:.1f} MiB) in {result.seconds:.1f} s: "
        f"{manifest.precision}{' strongly typed' if manifest.strongly_typed else ''}, {manifest.onnx_flavour} "
        f"flavour, TensorRT {manifest.tensorrt_version}, {manifest.gpu_name} (sm {manifest.compute_capability})"
    )
    if result.fp32_layers:
        typer.echo(f"{result.fp32_layers} layers pinned to FP32")
    typer.echo(f"manifest: {result.manifest_path}")
