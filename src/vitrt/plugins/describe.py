"""What `vitrt plugins info` reports: libraries, checksums, CUDA / cuFFT / TensorRT versions, ops."""

from __future__ import annotations

import importlib.metadata
import json
from pathlib import Path
from typing import Any

from vitrt.errors import PluginError
from vitrt.plugins.paths import BUILD_INFO, KERNEL_LIBRARY, PLUGIN_LIBRARY, default_build_dir, source_dir


def _installed_tensorrt() -> str | None:
    try:
        return importlib.metadata.version("tensorrt")
    except importlib.metadata.PackageNotFoundError:
        return None


def collect(build_dir: Path | None = None) -> dict[str, Any]:
    from vitrt.files import sha256_file
    from vitrt.ops.spec import load_op_specs
    from vitrt.plugins.kernels import load_kernel_library

    directory = (build_dir or default_build_dir()).resolve()
    kernel = directory / KERNEL_LIBRARY
    plugin = directory / PLUGIN_LIBRARY
    if not kernel.is_file():
        raise PluginError(f"no kernel library in {directory}; build it with `vitrt plugins build`")
    build_info: dict[str, Any] = {}
    if (directory / BUILD_INFO).is_file():
        build_info = json.loads((directory / BUILD_INFO).read_text())
    library = load_kernel_library(kernel)
    plugin_built = plugin.is_file() and build_info.get("tensorrt_version") is not None
    return {
        "build_dir": str(directory),
        "source_dir": str(source_dir()),
        "kernel_library": {
            "path": str(kernel),
            "sha256": sha256_file(kernel),
            "version": library.version,
            "cuda_compiled": library.cuda_compiled_version,
            "cuda_runtime": library.cuda_runtime_version,
            "cufft": library.cufft_version,
            "cufft_library": build_info.get("cufft_library"),
            "cuda_architectures": build_info.get("cuda_architectures"),
        },
        "plugin_library": {
            "path": str(plugin) if plugin_built else None,
            "sha256": sha256_file(plugin) if plugin_built else None,
            "tensorrt_headers": build_info.get("tensorrt_version"),
            "tensorrt_include_dir": build_info.get("tensorrt_include_dir"),
        },
        "tensorrt_installed": _installed_tensorrt(),
        "ops": [
            {
                "name": spec.name,
                "namespace": spec.plugin_namespace,
                "version": spec.plugin_version,
                "fields": {a.name: "INT32" if a.type == "int" else "FLOAT32" for a in spec.attributes},
                "dtypes": list(spec.dtypes),
            }
            for spec in load_op_specs().values()
        ],
    }
