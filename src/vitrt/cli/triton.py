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


class Runtime(StrEnum):
    triton = "triton"
    vitrt = "vitrt"


class OnnxBackend(StrEnum):
    onnxruntime = "onnxruntime"
    openvino = "openvino"


class VitrtBackend(StrEnum):
    onnxruntime = "onnxruntime"
    openvino = "openvino"
    tensorrt = "tensorrt"


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
    runtime: Annotated[
        Runtime,
        typer.Option(
            help="triton: Triton's onnxruntime/tensorrt_plan backends; vitrt: a Python-backend model "
            "running vitrt's runtimes (OpenVINO, vitrt's TensorRT plugins, ...)."
        ),
    ] = Runtime.triton,
    onnx_backend: Annotated[
        OnnxBackend,
        typer.Option(
            help="With --runtime triton: Triton's backend for ONNX files: onnxruntime (model.onnx) or openvino "
            "(the OpenVINO IR model.xml/.bin of the inlined file, written here; CPU)."
        ),
    ] = OnnxBackend.onnxruntime,
    vitrt_backend: Annotated[
        VitrtBackend | None,
        typer.Option(
            help="With --runtime vitrt: the vitrt runtime (default onnxruntime for ONNX, tensorrt for plans)."
        ),
    ] = None,
    python_env: Annotated[
        Path | None,
        typer.Option(help="With --runtime vitrt: the `vitrt triton-env` directory (default: $VITRT_TRITON_ENV)."),
    ] = None,
    backend_option: Annotated[
        list[str] | None,
        typer.Option(
            help="KEY=VALUE (repeatable): with --runtime vitrt, for the vitrt backend loader; with --onnx-backend "
            "openvino: precision (fp32|bf16), threads, streams, performance_hint (latency|throughput)."
        ),
    ] = None,
    kserve: Annotated[
        Path | None, typer.Option(help="Also write KServe InferenceService manifests into this directory.")
    ] = None,
    storage_uri: Annotated[
        str | None, typer.Option(help="With --kserve: where the repository is uploaded (s3://, gs://, pvc://).")
    ] = None,
    vitrt_image: Annotated[
        str, typer.Option(help="With --kserve: the vitrt image of the custom-predictor manifest.")
    ] = "vitrt:cpu",
    replicas: Annotated[str, typer.Option(help="With --kserve: MIN:MAX replicas for the autoscaler.")] = "1:4",
    scale_target: Annotated[
        int, typer.Option(help="With --kserve: concurrent requests per replica the autoscaler aims for.")
    ] = 16,
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
) -> None:
    """Write a Triton model repository (config.pbtxt + model file per model) and print how to serve it."""
    from vitrt.cli.serve import _parse_backend_options
    from vitrt.errors import VitrtError
    from vitrt.triton import RepositoryOptions, build_repository
    from vitrt.triton.kserve import KServeOptions, check_options

    kserve_options = None
    if kserve is not None:
        if not storage_uri:
            raise VitrtError("--kserve needs --storage-uri (where the cluster finds the repository)")
        low, sep, high = replicas.partition(":")
        try:
            min_replicas, max_replicas = int(low), int(high if sep else low)
        except ValueError:
            raise VitrtError(f"--replicas takes MIN:MAX, got {replicas!r}") from None
        kserve_options = KServeOptions(
            storage_uri=storage_uri,
            gpus=1 if device == Device.gpu or gpus else 0,
            min_replicas=min_replicas,
            max_replicas=max_replicas,
            scale_target=scale_target,
        )
        check_options(kserve_options)

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
        runtime=runtime.value,
        vitrt_backend=vitrt_backend.value if vitrt_backend else None,
        python_env=python_env,
        backend_options=_parse_backend_options(backend_option or []),
        onnx_backend=onnx_backend.value,
    )
    report = build_repository(artifacts, out, options)
    if kserve is not None and kserve_options is not None:
        from vitrt.triton.kserve import write_manifests

        report.commands.update(write_manifests(report, kserve, kserve_options, vitrt_image))
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
    if "kubectl" in report.commands:
        typer.echo(f"deploy to Kubernetes (KServe):\n  {report.commands['kubectl']}")
    if "ld_preload" in report.commands:
        typer.echo(f"or preload the plugins instead of --backend-config:\n  {report.commands['ld_preload']}")
