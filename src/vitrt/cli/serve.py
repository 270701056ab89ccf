"""`vitrt serve`: the KServe v2 REST inference server."""

from __future__ import annotations

import re
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer

from vitrt.cli import app


class Backend(StrEnum):
    auto = "auto"
    onnxruntime = "onnxruntime"
    openvino = "openvino"
    tensorrt = "tensorrt"
    torch = "torch"


class Precision(StrEnum):
    fp32 = "fp32"
    bf16 = "bf16"
    fp16 = "fp16"


class NonFinite(StrEnum):
    reject = "reject"
    allow = "allow"


class LogLevel(StrEnum):
    debug = "debug"
    info = "info"
    warning = "warning"
    error = "error"


_MODEL_FLAGS = (
    "--name",
    "--backend",
    "--precision",
    "--max-batch",
    "--max-queue-delay-ms",
    "--instances",
    "--queue-size",
    "--shadow*",
)


@app.command("serve")
def serve_command(
    artifact: Annotated[
        str | None, typer.Argument(help="ONNX file, TensorRT plan, or a zoo model name (e.g. agent_digits).")
    ] = None,
    config_file: Annotated[
        Path | None, typer.Option("--config", "-c", help="YAML file with server settings and a models list.")
    ] = None,
    name: Annotated[str | None, typer.Option(help="Model name in URLs (default: the file stem or zoo name).")] = None,
    backend: Annotated[
        Backend | None,
        typer.Option(
            help="Runtime (default auto: from the artifact; an ONNX file on a CPU-only machine runs on the faster of "
            "onnxruntime and openvino, measured at start-up)."
        ),
    ] = None,
    precision: Annotated[
        Precision | None,
        typer.Option(
            help="OpenVINO inference precision (fp32, bf16, fp16); with --backend auto, bf16/fp16 pick openvino."
        ),
    ] = None,
    host: Annotated[str | None, typer.Option(help="Interface to bind (default 127.0.0.1).")] = None,
    port: Annotated[int | None, typer.Option(help="TCP port (default 8000).")] = None,
    max_batch: Annotated[int | None, typer.Option(help="Largest batch one execution runs (default 8).")] = None,
    max_queue_delay_ms: Annotated[
        float | None,
        typer.Option(help="How long a queued request waits for others to join its batch (default 0: greedy)."),
    ] = None,
    instances: Annotated[int | None, typer.Option(help="Batches that may run at the same time (default 1).")] = None,
    queue_size: Annotated[int | None, typer.Option(help="Queued requests before answering 503 (default 256).")] = None,
    backend_option: Annotated[
        list[str] | None,
        typer.Option(help="KEY=VALUE passed to the backend loader, e.g. intra_op_threads=2 (repeatable)."),
    ] = None,
    api_key: Annotated[
        str | None,
        typer.Option(envvar="VITRT_API_KEY", help="Require this key (Bearer or X-API-Key) on all but health."),
    ] = None,
    cors_origin: Annotated[list[str] | None, typer.Option(help="Allow browser calls from this origin.")] = None,
    nonfinite: Annotated[NonFinite | None, typer.Option(help="NaN/Inf inputs: reject (400) or allow.")] = None,
    max_body_mb: Annotated[float | None, typer.Option(help="Largest request body in MiB (default 32).")] = None,
    log_level: Annotated[LogLevel | None, typer.Option(help="Log level (default info).")] = None,
    access_log: Annotated[
        bool | None, typer.Option("--access-log/--no-access-log", help="One JSON log line per request (default on).")
    ] = None,
    shadow: Annotated[
        str | None,
        typer.Option(
            "--shadow",
            help="Shadow parity: re-run sampled requests on this reference (ONNX file, plan or zoo model).",
            rich_help_panel="Shadow parity",
        ),
    ] = None,
    shadow_backend: Annotated[
        Backend | None, typer.Option(help="Runtime of the reference (default auto).", rich_help_panel="Shadow parity")
    ] = None,
    shadow_option: Annotated[
        list[str] | None,
        typer.Option(help="KEY=VALUE for the reference's loader (repeatable).", rich_help_panel="Shadow parity"),
    ] = None,
    shadow_rate: Annotated[
        float | None,
        typer.Option(help="Fraction of requests re-run, 0-1 (default 0.01).", rich_help_panel="Shadow parity"),
    ] = None,
    shadow_window: Annotated[
        int | None,
        typer.Option(help="Compared requests in the sliding window (default 256).", rich_help_panel="Shadow parity"),
    ] = None,
    shadow_precision: Annotated[
        str | None,
        typer.Option(help="Default budget: fp32, fp16 or bf16 (default fp32).", rich_help_panel="Shadow parity"),
    ] = None,
    shadow_budget: Annotated[
        list[str] | None,
        typer.Option(
            help="FIELD=VALUE budget override, e.g. max_abs=1e-3 or min_top1_agreement=0.99 (repeatable).",
            rich_help_panel="Shadow parity",
        ),
    ] = None,
    shadow_policy: Annotated[
        str | None,
        typer.Option(
            help="On a breach: log, unready (readiness false) or fallback (serve the reference) (default log).",
            rich_help_panel="Shadow parity",
        ),
    ] = None,
    shadow_queue_size: Annotated[
        int | None,
        typer.Option(
            help="Samples waiting for the reference before drops (default 64).", rich_help_panel="Shadow parity"
        ),
    ] = None,
    shadow_threads: Annotated[
        int | None,
        typer.Option(help="Threads of the reference runtime (default 1).", rich_help_panel="Shadow parity"),
    ] = None,
    shadow_cpu_share: Annotated[
        float | None,
        typer.Option(
            help="Most of one core the shadow may use, 0-1 (default 0.1); samples beyond it are dropped.",
            rich_help_panel="Shadow parity",
        ),
    ] = None,
    shadow_keep: Annotated[
        Path | None,
        typer.Option(
            help="Save inputs of requests over budget here (for vitrt parity --replay).",
            rich_help_panel="Shadow parity",
        ),
    ] = None,
    shadow_keep_max: Annotated[
        int | None, typer.Option(help="Most inputs kept (default 100).", rich_help_panel="Shadow parity")
    ] = None,
    shadow_seed: Annotated[
        int | None, typer.Option(help="Seed of the sampler (default random).", rich_help_panel="Shadow parity")
    ] = None,
) -> None:
    """Serve models over KServe v2 REST (Triton-compatible) with dynamic batching, metrics and an image endpoint.

    One model from ARTIFACT and flags, or several from --config serve.yaml. Open http://HOST:PORT/ for a demo page
    and /docs for the API.
    """
    import logging.config

    import uvicorn

    from vitrt.serve.app import create_app
    from vitrt.serve.config import ConfigError, build_config, load_config_file
    from vitrt.serve.logs import logging_config
    from vitrt.serve.repository import ModelRepository
    from vitrt.serve.server import Server, bind_socket, http_protocol

    model_flags: dict[str, Any] = {
        "name": name,
        "backend": backend.value if backend else None,
        "precision": precision.value if precision else None,
        "max_batch_size": max_batch,
        "max_queue_delay_ms": max_queue_delay_ms,
        "instances": instances,
        "max_queue_size": queue_size,
    }
    model_flags = {key: value for key, value in model_flags.items() if value is not None}
    options = _parse_backend_options(backend_option or [])
    shadow_flags = {
        "backend": shadow_backend.value if shadow_backend else None,
        "backend_options": _parse_backend_options(shadow_option or [], "--shadow-option") or None,
        "rate": shadow_rate,
        "window": shadow_window,
        "precision": shadow_precision,
        "budget": _parse_budget(shadow_budget or []) or None,
        "policy": shadow_policy,
        "queue_size": shadow_queue_size,
        "threads": shadow_threads,
        "cpu_share": shadow_cpu_share,
        "keep": str(shadow_keep) if shadow_keep is not None else None,
        "keep_max": shadow_keep_max,
        "seed": shadow_seed,
    }
    shadow_flags = {key: value for key, value in shadow_flags.items() if value is not None}
    if shadow is not None:
        model_flags["shadow"] = {"reference": shadow, **shadow_flags}
    elif shadow_flags:
        raise ConfigError("--shadow-* options need --shadow REFERENCE")
    if config_file is not None:
        if artifact is not None:
            raise ConfigError("give either an ARTIFACT or --config, not both")
        if model_flags or options:
            raise ConfigError(f"with --config, set per-model options ({', '.join(_MODEL_FLAGS)}) in the YAML file")
        data = load_config_file(config_file)
        source = str(config_file)
    else:
        if artifact is None:
            raise ConfigError("nothing to serve: give an ARTIFACT (ONNX file, plan or zoo model) or --config FILE")
        model: dict[str, Any] = {"name": _default_name(artifact), "artifact": artifact, **model_flags}
        if options:
            model["backend_options"] = options
        data = {"models": [model]}
        source = "command line"
    server_flags = {
        "host": host,
        "port": port,
        "api_key": api_key or None,
        "cors_origins": cors_origin or None,
        "nonfinite": nonfinite.value if nonfinite else None,
        "max_body_bytes": int(max_body_mb * 1024 * 1024) if max_body_mb is not None else None,
        "log_level": log_level.value if log_level else None,
        "access_log": access_log,
    }
    data.update({key: value for key, value in server_flags.items() if value is not None})
    config = build_config(data, source)

    # The port first: a busy port is one error line, before any model loads or anything is logged.
    sock = bind_socket(config.host, config.port)
    try:
        logging.config.dictConfig(logging_config(config.log_level))
        repository = ModelRepository.load(config)
    except BaseException:
        sock.close()
        raise
    server = Server(
        uvicorn.Config(
            create_app(config, repository),
            host=config.host,
            port=config.port,
            log_config=logging_config(config.log_level),
            access_log=False,
            server_header=False,
            http=http_protocol(),
            timeout_keep_alive=max(1, round(config.keep_alive_timeout_s)),
            timeout_graceful_shutdown=int(config.shutdown_timeout_s) or None,
        ),
        models=repository.names,
    )
    with sock:
        server.run(sockets=[sock])
    if not server.started:
        repository.close()
        raise typer.Exit(1)


def _default_name(artifact: str) -> str:
    path = Path(artifact)
    stem = path.stem if path.suffix else artifact
    cleaned = re.sub(r"[^A-Za-z0-9_.\-]", "_", stem).lstrip("._-")
    return cleaned[:128] or "model"


def _parse_budget(items: list[str]) -> dict[str, float]:
    from vitrt.serve.config import ConfigError

    budget: dict[str, float] = {}
    for item in items:
        key, sep, value = item.partition("=")
        try:
            if not sep:
                raise ValueError
            budget[key.strip()] = float(value)
        except ValueError:
            raise ConfigError(f"--shadow-budget expects FIELD=NUMBER, got {item!r}") from None
    return budget


def _parse_backend_options(items: list[str], flag: str = "--backend-option") -> dict[str, Any]:
    import yaml

    from vitrt.serve.config import ConfigError

    options: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip().isidentifier():
            raise ConfigError(f"{flag} expects KEY=VALUE, got {item!r}")
        try:
            options[key.strip()] = yaml.safe_load(value)
        except yaml.YAMLError:
            options[key.strip()] = value
    return options
