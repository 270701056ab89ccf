"""`vitrt plugins`: build and inspect the CUDA kernel library and the TensorRT plugins."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from vitrt.cli import app

plugins_app = typer.Typer(help="Build and inspect the CUDA kernels and TensorRT plugins.", no_args_is_help=True)
app.add_typer(plugins_app, name="plugins")


@plugins_app.command("build")
def build_command(
    tensorrt_root: Annotated[
        Path | None, typer.Option("--tensorrt-root", help="TensorRT install whose include/ holds NvInfer.h.")
    ] = None,
    tensorrt_include_dir: Annotated[
        Path | None, typer.Option("--tensorrt-include-dir", help="Folder holding NvInfer.h.")
    ] = None,
    arch: Annotated[
        list[str] | None, typer.Option("--arch", help="CUDA architecture (repeatable); default 80 86 89 90.")
    ] = None,
    build_dir: Annotated[
        Path | None, typer.Option("--build-dir", help="Output folder (default: $VITRT_PLUGIN_DIR or build/plugins).")
    ] = None,
    jobs: Annotated[
        int | None, typer.Option("--jobs", "-j", help="Parallel compile jobs (default: CPU count).")
    ] = None,
    kernels_only: Annotated[bool, typer.Option("--kernels-only", help="Skip the TensorRT plugin library.")] = False,
    tensorrt_header_sets: Annotated[
        Path | None,
        typer.Option(
            "--tensorrt-header-sets",
            help="Folder of <version>/include TensorRT header sets: build the plugins against the newest and "
            "compile-check them against the others (what CI does with ../shared/third_party/tensorrt).",
        ),
    ] = None,
) -> None:
    """Compile libvitrt_kernels.so and, where TensorRT headers are found, libvitrt_plugins.so."""
    from vitrt.plugins.builder import build

    result = build(
        build_dir,
        tensorrt_root=tensorrt_root,
        tensorrt_include_dir=tensorrt_include_dir,
        archs=arch or None,
        jobs=jobs,
        kernels_only=kernels_only,
        tensorrt_header_sets=tensorrt_header_sets,
    )
    typer.echo(f"kernel library: {result.kernel_library}")
    if result.plugin_library is not None:
        info = result.info
        typer.echo(f"plugin library: {result.plugin_library} (TensorRT {info.get('tensorrt_version')} headers)")
        for checked in info.get("tensorrt_checked_include_dirs") or []:
            typer.echo(f"plugin sources also compiled against: {checked}")
    else:
        typer.echo("plugin library: not built (no TensorRT headers; pass --tensorrt-root or --tensorrt-include-dir)")
    typer.echo(f"built in {result.seconds:.1f} s")


@plugins_app.command("info")
def info_command(
    build_dir: Annotated[
        Path | None, typer.Option("--build-dir", help="Build folder (default: $VITRT_PLUGIN_DIR or build/plugins).")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Paths, sha256, CUDA/cuFFT/TensorRT versions and ops of the built libraries."""
    from vitrt.plugins.describe import collect

    report = collect(build_dir)
    if as_json:
        typer.echo(json.dumps(report, indent=2))
        return
    kernel, plugin = report["kernel_library"], report["plugin_library"]
    lines = [
        f"build dir        {report['build_dir']}",
        f"kernel library   {kernel['path']}",
        f"  sha256         {kernel['sha256']}",
        f"  version        {kernel['version']}",
        f"  CUDA           compiled {kernel['cuda_compiled']}, runtime {kernel['cuda_runtime']}",
        f"  cuFFT          {kernel['cufft']} ({kernel['cufft_library']})",
        f"  architectures  {', '.join('sm_' + a for a in kernel['cuda_architectures'] or [])}",
        f"plugin library   {plugin['path'] or 'not built (no TensorRT headers at build time)'}",
    ]
    if plugin["path"]:
        lines += [f"  sha256         {plugin['sha256']}", f"  TensorRT       headers {plugin['tensorrt_headers']}"]
    lines.append(f"TensorRT (pip)   {report['tensorrt_installed'] or 'not installed'}")
    lines.append("ops")
    for op in report["ops"]:
        fields = ", ".join(f"{name}:{kind}" for name, kind in op["fields"].items())
        lines.append(f"  {op['namespace']}::{op['name']} v{op['version']}  ({fields})")
    typer.echo("\n".join(lines))
