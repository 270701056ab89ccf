"""vitrt's CUDA kernel library and TensorRT plugins.

* `build()` compiles `plugins/` with CMake (`vitrt plugins build`); `info()` describes what was built
  (`vitrt plugins info`).
* `load_kernels()` binds the kernel library through ctypes; `vitrt.plugins.torch_ops` registers it as the "cuda"
  implementation of the vitrt ops (`with vitrt.ops.use_implementation("cuda"): model(x)`).
* `load_into_tensorrt()` registers the plugin creators with TensorRT.

Nothing heavy is imported here: torch and tensorrt load only in the functions that need them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from vitrt.plugins.paths import default_build_dir, find_kernel_library, find_plugin_library

if TYPE_CHECKING:
    from pathlib import Path

    from vitrt.plugins.builder import BuildResult
    from vitrt.plugins.kernels import KernelLibrary

__all__ = [
    "build",
    "default_build_dir",
    "find_kernel_library",
    "find_plugin_library",
    "info",
    "load_into_tensorrt",
    "load_kernels",
]


def build(build_dir: Path | None = None, **options: Any) -> BuildResult:
    from vitrt.plugins.builder import build as _build

    return _build(build_dir, **options)


def load_kernels(path: str | Path | None = None) -> KernelLibrary:
    from vitrt.plugins.kernels import load_kernel_library

    return load_kernel_library(path)


def load_into_tensorrt(path: str | Path | None = None) -> list[str]:
    from vitrt.plugins.registry import load_into_tensorrt as _load

    return _load(path)


def info(build_dir: Path | None = None) -> dict[str, Any]:
    from vitrt.plugins.describe import collect

    return collect(build_dir)
