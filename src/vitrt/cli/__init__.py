"""The `vitrt` command line.

Each sub-command lives in its own module and registers itself on `app`; heavy libraries are imported inside the
command functions so that `vitrt --help` stays fast. User mistakes (`VitrtError`) end as one line on stderr and a
non-zero exit, never a traceback.
"""

from __future__ import annotations

import importlib
import os
import sys
from typing import TYPE_CHECKING, Any

import typer

from vitrt import __version__
from vitrt.errors import VitrtError

if TYPE_CHECKING:
    from rich.console import Console

app = typer.Typer(
    name="vitrt",
    help="Efficient-attention ViTs from PyTorch checkpoint to ONNX, TensorRT and a KServe v2 server.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

# Modules that register commands on `app` when imported.
_COMMAND_MODULES = [
    "vitrt.cli.models",
    "vitrt.cli.export",
    "vitrt.cli.build",
    "vitrt.cli.parity",
    "vitrt.cli.plugins",
    "vitrt.cli.serve",
    "vitrt.cli.triton",
    "vitrt.cli.quantize",
    "vitrt.cli.bench",
    "vitrt.cli.triton_env",
]


# Top-level modules of the optional extras: a command that needs a missing one ends with an install hint.
_EXTRA_MODULES = {
    "torch": "models",
    "torchvision": "models",
    "timm": "models",
    "safetensors": "models",
    "sklearn": "models",
    "onnxscript": "export",
    "onnxslim": "export",
    "tensorrt": "tensorrt",
    "openvino": "openvino",
    "nncf": "openvino",
}


def make_console(*, stderr: bool = False, **kwargs: Any) -> Console:
    """A rich console for command output; logs and pipes get 140 columns so report tables are not truncated."""
    from rich.console import Console

    console = Console(stderr=stderr, **kwargs)
    if not console.is_terminal and "COLUMNS" not in os.environ:
        console.width = HELP_WIDTH_WHEN_PIPED
    return console


def _version_callback(value: bool) -> None:
    if value:
        typer.echo(f"vitrt {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(
        False, "--version", callback=_version_callback, is_eager=True, help="Print the version and exit."
    ),
) -> None:
    """vitrt command line."""


def _load_commands() -> None:
    for module in _COMMAND_MODULES:
        importlib.import_module(module)


HELP_WIDTH_WHEN_PIPED = 140


def _widen_help_when_piped() -> None:
    """rich falls back to 80 columns when stdout is not a terminal, which cuts option names in `--help`
    (`--max-queue-dela…`); pipes and logs get the same 140 columns as command output (see make_console)."""
    if sys.stdout.isatty() or "COLUMNS" in os.environ or "TERMINAL_WIDTH" in os.environ:
        return
    from typer import rich_utils

    rich_utils.MAX_WIDTH = HELP_WIDTH_WHEN_PIPED


def main(argv: list[str] | None = None) -> None:
    """Console-script entry point."""
    _load_commands()
    _widen_help_when_piped()
    try:
        app(args=argv, standalone_mode=True)
    except VitrtError as err:  # raised outside click's own handling (e.g. in callbacks)
        typer.echo(f"error: {err}", err=True)
        sys.exit(err.exit_code)
    except ModuleNotFoundError as err:
        missing = (err.name or "").split(".")[0]
        if missing not in _EXTRA_MODULES:
            raise
        extra = _EXTRA_MODULES[missing]
        typer.echo(
            f"error: this command needs {missing}, which is not installed: pip install 'vitrt[{extra}]'", err=True
        )
        sys.exit(2)
