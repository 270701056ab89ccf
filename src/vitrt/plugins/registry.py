"""Loading the plugin library into TensorRT's plugin registry."""

from __future__ import annotations

import threading
from pathlib import Path

from vitrt.errors import PluginError
from vitrt.plugins.paths import find_plugin_library

_LOCK = threading.Lock()
_LOADED: dict[Path, list[str]] = {}


def load_into_tensorrt(path: str | Path | None = None) -> list[str]:
    """Register every vitrt plugin creator with TensorRT's global registry; returns the registered op names.

    Uses `IPluginRegistry.load_library` (the library's getCreators/setLoggerFinder entry points; its static
    registration also runs on load). Loading the same library again is a no-op.
    """
    try:
        import tensorrt as trt
    except ImportError as err:
        raise PluginError(
            f"TensorRT is not importable here ({err}); install tensorrt>=10 to load the plugins"
        ) from None
    if not hasattr(trt, "get_plugin_registry"):  # e.g. only tensorrt-stubs installed
        raise PluginError("TensorRT is not importable here (the tensorrt package has no runtime); install tensorrt>=10")
    from vitrt.ops.spec import load_op_specs

    library = Path(path).resolve() if path is not None else find_plugin_library()
    if not library.is_file():
        raise PluginError(f"plugin library {library} does not exist")
    with _LOCK:
        if library in _LOADED:
            return _LOADED[library]
        registry = trt.get_plugin_registry()
        registry.load_library(str(library))
        registered = []
        for spec in load_op_specs().values():
            creator = registry.get_creator(spec.name, spec.plugin_version, spec.plugin_namespace)
            if creator is None:
                raise PluginError(
                    f"{library} did not register {spec.plugin_namespace}::{spec.name} v{spec.plugin_version} "
                    f"(built for another TensorRT major version? see `vitrt plugins info`)"
                )
            registered.append(spec.name)
        _LOADED[library] = registered
        return registered
