"""The `--plugins` choice of the engine builder, the TensorRT runtime and the ONNX Runtime TensorRT provider.

Where the library is looked for is `vitrt.plugins.paths.find_plugin_library` (the one search: $VITRT_PLUGIN_DIR, a
checkout's `build/plugins`, or the per-user build cache); this module only interprets "auto", "none" or a path.
"""

from __future__ import annotations

import logging
from pathlib import Path

from vitrt.errors import PluginError
from vitrt.plugins.paths import PLUGIN_DIR_ENV, PLUGIN_LIBRARY

log = logging.getLogger(__name__)

__all__ = ["PLUGIN_DIR_ENV", "find_plugin_library", "resolve_plugins"]


def find_plugin_library() -> tuple[Path | None, str]:
    """(library path or None, where it came from / why none was found)."""
    from vitrt.plugins import paths

    try:
        return paths.find_plugin_library(), "vitrt.plugins.find_plugin_library()"
    except PluginError as err:
        return None, f"{err} (or point ${PLUGIN_DIR_ENV} at it)"


def resolve_plugins(choice: str | Path | None) -> Path | None:
    """Resolve a `--plugins` value: "auto" (the library if found, else None), "none" (None) or a file or folder."""
    if choice is None or str(choice) == "none":
        return None
    if str(choice) == "auto":
        path, where = find_plugin_library()
        if path is None:
            log.info("vitrt plugin library not found: %s", where)
        else:
            log.info("vitrt plugin library: %s (from %s)", path, where)
        return path
    path = Path(choice)
    if path.is_dir():
        if not (path / PLUGIN_LIBRARY).is_file():
            raise PluginError(f"no vitrt plugin library ({PLUGIN_LIBRARY}) in {path}")
        return path / PLUGIN_LIBRARY
    if not path.is_file():
        raise PluginError(f"plugin library not found: {path}")
    return path
