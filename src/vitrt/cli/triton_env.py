"""`vitrt triton-env`: the Python environment Triton's Python backend needs for `triton-repo --runtime vitrt`."""

from __future__ import annotations

import json
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer

from vitrt.cli import app


class Source(StrEnum):
    pip = "pip"
    host = "host"


@app.command("triton-env")
def triton_env_command(
    out: Annotated[Path, typer.Argument(help="Directory to write (pass it to triton-repo --python-env).")],
    runtime: Annotated[
        list[str] | None, typer.Option(help="vitrt runtime to include: onnxruntime, openvino, tensorrt (repeatable).")
    ] = None,
    source: Annotated[
        Source, typer.Option(help="pip: install pinned wheels (reproducible); host: link this interpreter's packages.")
    ] = Source.pip,
    python_version: Annotated[
        str | None, typer.Option(help="Python X.Y of Triton's backend stub (default: this interpreter's).")
    ] = None,
    package: Annotated[list[str] | None, typer.Option(help="Extra requirement to install (repeatable).")] = None,
    force: Annotated[bool, typer.Option(help="Replace an existing directory.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
) -> None:
    """Build numpy < 2, the runtime(s) and vitrt's runtime modules into a directory Triton's Python can use."""
    from vitrt.triton.environment import build_environment

    report = build_environment(
        out,
        runtime or ["onnxruntime"],
        source=source.value,
        python_version=python_version,
        extra_packages=package or [],
        force=force,
    )
    if as_json:
        typer.echo(json.dumps(report.to_dict(), indent=2))
        return
    typer.echo(f"wrote {report.path} for Python {report.python_version} ({report.source})")
    typer.echo("  " + ", ".join(f"{name} {version}" for name, version in report.packages.items()))
    typer.echo(
        f"use it: vitrt triton-repo MODEL --runtime vitrt --python-env {report.path} "
        f"(or export VITRT_TRITON_ENV={report.path} before tritonserver)"
    )
