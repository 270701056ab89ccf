"""`vitrt triton-repo`: a Triton model repository, plugin library and serve command for vitrt artifacts."""

from __future__ import annotations

import json
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer

from vitrt.cli import app


class Device(StrEnum):
    cpu = "cpu"
    gpu = "gpu"


@app.command("triton-repo")
def triton_repo_command(
    artifacts: Annotated[
        list[Path], typer.Argument(help="ONNX files and/or TensorRT plans (model.plan, or its model.plan.json).")
    ],
    out: Annotated[Path, typer.Option("--out", "-o", help="Model repository directory (--model-repository).")],
    name: Annotated[str | None, typer.Option(help="Model name (default: the artifact's metadata model name).")] = None,
    max_batch_size: Annotated[
        int | None,
        typer.Option(help="Triton max_batch_size (default: the engine profile's max; 8 for ONNX; 0 = no batching)."),
    ] = None,
    preferred_batch_size: Annotated[
        list[int] | None, typer.Option(help="Dynamic-batching preferred size (repeatable; default powers of two).")
    ] = None,
    max_queue_delay_us: Annotated[int, typer.Option(help="Dynamic-batching queue delay in microseconds.")] = 100,
    instances: Annotated[int, typer.Option(help="Model instances per device (instance_group count).")] = 1,
    device: Annotated[Device | None, typer.Option(help="Where ONNX models run (default cpu); plans use GPUs.")] = None,
    gpus: Annotated[str | None, typer.Option(help="GPU indices for GPU instances, e.g. 0,1 (default: all).")] = None,
    warmup: Annotated[int, typer.Option(help="Warm-up requests of zeros per batch size at load (0 = none).")] = 0,
    with_preprocessing: Annotated[
        bool,
        typer.Option(help="Also write a Python-backend image decoder and an ensemble <model>_image for raw images."),
    ] = False,
    version: Annotated[int, typer.Option(help="Model version directory.")] = 1,
    plugins: Annotated[
        Path | None, typer.Option(help="vitrt TensorRT plugin library (default: from the engine manifest).")
    ] = None,
    plugin_dir: Annotated[
        Path | None, typer.Option(help="Where the plugin library is copied (default: <out>/../plugins).")
    ] = None,
    triton_release: Annotated[
        str | None, typer.Option(help="Triton release YY.MM to serve with (default: chosen from the artifacts).")
    ] = None,
    force: Annotated[bool, typer.Option(help="Replace models of the same name already in --out.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
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
