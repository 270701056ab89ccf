"""`vitrt triton-repo`: a Triton model repository, plugin library and serve command for vitrt artifacts."""

from __future__ import annotations

import json
from enum import Enum
from pathlib import Path

import typer

from vitrt.cli import app


class Device(str, Enum):
    cpu = "cpu"
    gpu = "gpu"


@app.command("triton-repo")
def triton_repo_command(
    artifacts: list[Path] = typer.Argument(
        ..., help="ONNX files and/or TensorRT plans (model.plan, or its manifest model.plan.json)."
    ),
    out: Path = typer.Option(..., "--out", "-o", help="Model repository directory (tritonserver --model-repository)."),
    name: str = typer.Option(None, "--name", help="Model name (default: the artifact's metadata model name)."),
    max_batch_size: int = typer.Option(
        None,
        "--max-batch-size",
        help="Triton max_batch_size (default: the engine profile's max batch; 8 for ONNX; 0 disables batching).",
    ),
    preferred_batch_size: list[int] = typer.Option(
        None, "--preferred-batch-size", help="Dynamic-batching preferred size (repeatable; default powers of two)."
    ),
    max_queue_delay_us: int = typer.Option(100, "--max-queue-delay-us", help="Dynamic-batching queue delay."),
    instances: int = typer.Option(1, "--instances", help="Model instances per device (instance_group count)."),
    device: Device = typer.Option(None, "--device", help="Where ONNX models run (default cpu); plans use GPUs."),
    gpus: str = typer.Option(None, "--gpus", help="GPU indices for GPU instances, e.g. 0,1 (default: all)."),
    warmup: int = typer.Option(0, "--warmup", help="Warm-up requests of zeros per batch size at load (0 = none)."),
    with_preprocessing: bool = typer.Option(
        False,
        "--with-preprocessing",
        help="Also write a Python-backend image decoder and an ensemble <model>_image taking encoded images.",
    ),
    version: int = typer.Option(1, "--version", help="Model version directory."),
    plugins: Path = typer.Option(None, "--plugins", help="vitrt TensorRT plugin library (libvitrt_plugins.so)."),
    plugin_dir: Path = typer.Option(
        None, "--plugin-dir", help="Where the plugin library is copied (default: <out>/../plugins)."
    ),
    triton_release: str = typer.Option(
        None, "--triton-release", help="Triton release YY.MM to serve with (default: chosen from the artifacts)."
    ),
    force: bool = typer.Option(False, "--force", help="Replace models of the same name already in --out."),
    as_json: bool = typer.Option(False, "--json", help="Print the report as JSON."),
) -> None:
    """Write a Triton model repository (config.pbtxt + model file per model) and print how to serve it."""
    from vitrt.errors import VitrtError
    from vitrt.triton import RepositoryOptions, build_repository

    gpu_ids = None
    if gpus:
        try:
            gpu_ids = [int(g) for g in gpus.split(",") if g.strip()]
        except ValueError:
            raise VitrtError(f"--gpus takes comma-separated GPU indices, got {gpus!r}") from None
    options = RepositoryOptions(
        name=name,
        max_batch_size=max_batch_size,
        preferred_batch_sizes=preferred_batch_size or None,
        max_queue_delay_us=max_queue_delay_us,
        instances=instances,
        device=device.value if device else None,
        gpus=gpu_ids,
        warmup=warmup,
        with_preprocessing=with_preprocessing,
        version=version,
        plugins=plugins,
        plugin_dir=plugin_dir,
        triton_release=triton_release,
        force=force,
    )
    report = build_repository(artifacts, out, options)
    if as_json:
        typer.echo(json.dumps(report.to_dict(), indent=2))
        return
    typer.echo(f"wrote Triton model repository {report.repository}")
    for model in report.models:
        typer.echo(
            f"  {model.name}: {model.backend} {model.kind} max_batch_size={model.max_batch_size} "
            f"in {', '.join(model.inputs)} -> out {', '.join(model.outputs)}"
        )
    if report.plugin_library is not None:
        typer.echo(f"plugin library: {report.plugin_library} (sha256 {report.plugin_sha256})")
    typer.echo(f"Triton image: {report.image} ({report.image_reason})")
    for note in report.notes:
        typer.echo(f"note: {note}")
    if "build_image" in report.commands:
        typer.echo(f"build the image:\n  {report.commands['build_image']}")
    typer.echo(f"serve with Docker:\n  {report.commands['docker']}")
    typer.echo(f"or on a host with Triton installed:\n  {report.commands['tritonserver']}")
    if "ld_preload" in report.commands:
        typer.echo(f"or preload the plugins instead of --backend-config:\n  {report.commands['ld_preload']}")
