"""Finding the vitrt TensorRT plugin library (`libvitrt_plugins.so`).

The library is built from `plugins/` (branch `plugins`, `vitrt.plugins`). The engine builder, the TensorRT runtime
and the ONNX Runtime TensorRT execution provider all need the same file, resolved the same way:

1. `vitrt.plugins.find_plugin_library()` ($VITRT_PLUGIN_DIR, a checkout's `build/plugins`, or the per-user
   build cache), when `vitrt.plugins` is installed;
2. otherwise `$VITRT_PLUGIN_DIR` (a directory holding the library, or the file itself) and `build/plugins`.
"""

from __future__ import annotations

import importlib
import logging
import os
from pathlib import Path

from vitrt.errors import PluginError, VitrtError

log = logging.getLogger(__name__)

PLUGIN_DIR_ENV = "VITRT_PLUGIN_DIR"
LIBRARY_PATTERNS = ("libvitrt_plugins.so", "libvitrt_plugins.so.*", "libvitrt*plugin*.so*", "vitrt_plugins.dll")


def find_plugin_library() -> tuple[Path | None, str]:
    """(library path or None, where it came from / why none was found)."""
    reasons = []
    try:
        plugins = importlib.import_module("vitrt.plugins")
    except ImportError:
        plugins = None
        reasons.append("vitrt.plugins is not installed")
    locate = getattr(plugins, "find_plugin_library", None) if plugins is not None else None
    if callable(locate):
        try:
            located = locate()
        except VitrtError as err:
            reasons.append(str(err))
        else:
            if located is not None and Path(located).is_file():
                return Path(located), "vitrt.plugins.find_plugin_library()"
    env = os.environ.get(PLUGIN_DIR_ENV)
    if env:
        found = _search(Path(env))
        if found is not None:
            return found, f"${PLUGIN_DIR_ENV}"
        reasons.append(f"${PLUGIN_DIR_ENV}={env} holds no vitrt plugin library")
    checkout_build = Path(__file__).resolve().parents[3] / "build" / "plugins"
    found = _search(checkout_build)
    if found is not None:
        return found, str(checkout_build)
    reasons.append(f"not built (`vitrt plugins build`, or point ${PLUGIN_DIR_ENV} at it)")
    return None, "; ".join(reasons)


def resolve_plugins(choice: str | Path | None) -> Path | None:
    """Resolve a `--plugins` value: "auto" (the library if found, else None), "none" (None) or a file path."""
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
        found = _search(path)
        if found is None:
            raise PluginError(f"no vitrt plugin library in {path}")
        return found
    if not path.is_file():
        raise PluginError(f"plugin library not found: {path}")
    return path


def _search(location: Path) -> Path | None:
    if location.is_file():
        return location
    if not location.is_dir():
        return None
    for pattern in LIBRARY_PATTERNS:
        matches = sorted(p for p in location.glob(pattern) if p.is_file())
        if matches:
            return matches[0]
    return None
