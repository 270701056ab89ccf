"""Where the plugin sources and built libraries live.

Build output: `$VITRT_PLUGIN_DIR` when set, else `build/plugins` of a source checkout, else a per-user cache
directory (`vitrt.files.cache_dir()/plugins/<version>`) for wheel installs.
"""

from __future__ import annotations

import os
from pathlib import Path

from vitrt import __version__
from vitrt.errors import PluginError
from vitrt.files import cache_dir

PLUGIN_DIR_ENV = "VITRT_PLUGIN_DIR"
TENSORRT_HEADERS_ENV = "VITRT_TENSORRT_HEADERS"
KERNEL_LIBRARY = "libvitrt_kernels.so"
PLUGIN_LIBRARY = "libvitrt_plugins.so"
BUILD_INFO = "build_info.json"


def source_dir() -> Path:
    """The CMake project (`plugins/` of a checkout or `vitrt/_plugins_src` of a wheel)."""
    from vitrt.ops.spec import plugins_source_dir

    try:
        return plugins_source_dir()
    except FileNotFoundError as err:
        raise PluginError(str(err)) from None


def default_build_dir() -> Path:
    env = os.environ.get(PLUGIN_DIR_ENV)
    if env:
        return Path(env).expanduser().resolve()
    src = source_dir()
    if src.name == "plugins" and (src.parent / "pyproject.toml").is_file():
        return src.parent / "build" / "plugins"
    return cache_dir() / "plugins" / __version__


def _find(name: str, build_dir: Path | None, what: str) -> Path:
    directory = build_dir or default_build_dir()
    if directory.is_file() and directory.name == name:  # $VITRT_PLUGIN_DIR may name the library itself
        return directory.resolve()
    path = directory / name
    if not path.is_file():
        raise PluginError(f"{what} {name} not found in {directory}; build it with `vitrt plugins build`")
    return path.resolve()


def find_kernel_library(build_dir: Path | None = None) -> Path:
    return _find(KERNEL_LIBRARY, build_dir, "the kernel library")


def find_plugin_library(build_dir: Path | None = None) -> Path:
    return _find(
        PLUGIN_LIBRARY,
        build_dir,
        "the TensorRT plugin library (built only where TensorRT headers are found)",
    )


def _version_key(version: str) -> tuple[int, ...]:
    return tuple(int(part) if part.isdigit() else -1 for part in version.split("."))


def tensorrt_header_sets(root: Path | None = None) -> dict[str, Path]:
    """TensorRT header sets, {version: include folder}, oldest first: every `<root>/<version>/include/NvInfer.h`.

    `root` defaults to $VITRT_TENSORRT_HEADERS, else (in a source checkout) `../shared/third_party/tensorrt` beside
    the checkout, where the project keeps unmodified TensorRT headers so CI can compile the plugins. Empty when
    none is there.
    """
    if root is None:
        env = os.environ.get(TENSORRT_HEADERS_ENV)
        if env:
            root = Path(env).expanduser()
        else:
            src = source_dir()
            if not (src.name == "plugins" and (src.parent / "pyproject.toml").is_file()):
                return {}
            root = src.parent.parent / "shared" / "third_party" / "tensorrt"
    if not root.is_dir():
        return {}
    found = {d.name: (d / "include").resolve() for d in root.iterdir() if (d / "include" / "NvInfer.h").is_file()}
    return {version: found[version] for version in sorted(found, key=_version_key)}
