"""Logging for CLI commands: vitrt's messages on stderr, TensorRT's log only with --verbose."""

from __future__ import annotations

import logging


def configure_logging(verbose: bool = False) -> None:
    from rich.logging import RichHandler

    root = logging.getLogger()
    if not any(isinstance(h, RichHandler) for h in root.handlers):
        handler = RichHandler(show_time=False, show_path=False, markup=False)
        handler.setFormatter(logging.Formatter("%(message)s"))
        root.addHandler(handler)
    root.setLevel(logging.WARNING)
    logging.getLogger("vitrt").setLevel(logging.DEBUG if verbose else logging.INFO)
    logging.getLogger("vitrt.tensorrt").setLevel(logging.DEBUG if verbose else logging.WARNING)
