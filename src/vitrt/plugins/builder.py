"""Configure and build the plugin CMake project (`vitrt plugins build`)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vitrt.errors import PluginError
from vitrt.plugins.paths import BUILD_INFO, KERNEL_LIBRARY, PLUGIN_LIBRARY, default_build_dir, source_dir
from vitrt.plugins.paths import tensorrt_header_sets as header_sets

DEFAULT_ARCHITECTURES = ("80", "86", "89", "90")
# Where toolkits install when nvcc is not on PATH.
CUDA_HOMES = ("/usr/local/cuda",)


@dataclass
class BuildResult:
    build_dir: Path
    kernel_library: Path
    plugin_library: Path | None
    seconds: float
    commands: list[list[str]] = field(default_factory=list)
    info: dict[str, Any] = field(default_factory=dict)  # build_info.json


def find_nvcc() -> Path:
    """nvcc from $CUDACXX, $PATH, $CUDA_HOME/bin or /usr/local/cuda/bin."""
    candidates = [os.environ.get("CUDACXX"), shutil.which("nvcc")]
    for home in (os.environ.get("CUDA_HOME"), os.environ.get("CUDA_PATH"), *CUDA_HOMES):
        if home:
            candidates.append(str(Path(home) / "bin" / "nvcc"))
    for candidate in candidates:
        if candidate and Path(candidate).is_file() and os.access(candidate, os.X_OK):
            return Path(candidate)
    raise PluginError("nvcc not found: install the CUDA toolkit (12.x or 13.x) or point CUDACXX at nvcc")


def find_cmake() -> Path:
    cmake = shutil.which("cmake")
    if cmake is None:
        raise PluginError("cmake (>= 3.24) not found: install it (apt install cmake, or pip install cmake)")
    return Path(cmake)


def _architectures(archs: list[str] | None) -> str:
    values: list[str] = []
    for item in archs or list(DEFAULT_ARCHITECTURES):
        for part in item.replace(",", ";").split(";"):
            part = part.strip().removeprefix("sm_").removeprefix("compute_")
            if not part:
                continue
            if not part.rstrip("af").isdigit():
                raise PluginError(f"invalid CUDA architecture {item!r} (expected e.g. 80, 86, 89, 90 or sm_90)")
            values.append(part)
    return ";".join(values)


def _run(command: list[str], log: Path) -> None:
    with log.open("a") as sink:
        sink.write("$ " + " ".join(command) + "\n")
        sink.flush()
        completed = subprocess.run(command, stdout=sink, stderr=subprocess.STDOUT, check=False)
    if completed.returncode != 0:
        lines = [line for line in log.read_text(errors="replace").splitlines() if line.strip()]
        errors = [line for line in lines if "error" in line.lower()]
        reason = (errors or lines or ["no output"])[0 if errors else -1].strip()
        raise PluginError(f"{Path(command[0]).name} failed ({reason[:300]}); full log: {log}")


def build(
    build_dir: Path | None = None,
    *,
    tensorrt_root: Path | None = None,
    tensorrt_include_dir: Path | None = None,
    archs: list[str] | None = None,
    jobs: int | None = None,
    kernels_only: bool = False,
    warnings_as_errors: bool = True,
    tensorrt_header_sets: Path | None = None,
) -> BuildResult:
    """Build the kernel library and, where TensorRT headers are found, the plugin library.

    TensorRT headers come from `tensorrt_include_dir`, `tensorrt_root`/include or $TENSORRT_ROOT; naming either
    makes the plugin library mandatory. `tensorrt_header_sets` names a folder of `<version>/include` header sets
    (`paths.tensorrt_header_sets`): the plugin library is built against the newest and the plugin sources are
    compile-checked against every other, in the same parallel build. Output goes to `build_dir` (default:
    `vitrt.plugins.paths`).
    """
    cmake = find_cmake()
    nvcc = find_nvcc()
    build_dir = (build_dir or default_build_dir()).resolve()
    build_dir.mkdir(parents=True, exist_ok=True)
    log = build_dir / "build.log"
    log.write_text("")
    checked: list[Path] = []
    if tensorrt_header_sets is not None:
        sets = list(header_sets(tensorrt_header_sets).values())
        if not sets:
            raise PluginError(f"no TensorRT header set (<version>/include/NvInfer.h) in {tensorrt_header_sets}")
        if tensorrt_include_dir is None and tensorrt_root is None:
            tensorrt_include_dir = sets[-1]
        checked = [s for s in sets if s != Path(tensorrt_include_dir or Path(tensorrt_root or "") / "include")]
    if tensorrt_root is None and tensorrt_include_dir is None and os.environ.get("TENSORRT_ROOT"):
        tensorrt_root = Path(os.environ["TENSORRT_ROOT"])
    for given, what in ((tensorrt_root, "--tensorrt-root"), (tensorrt_include_dir, "--tensorrt-include-dir")):
        if given is not None and not Path(given).is_dir():
            raise PluginError(f"{what} {given} is not a directory")
    configure = [
        str(cmake), "-S", str(source_dir()), "-B", str(build_dir),
        "-DCMAKE_BUILD_TYPE=Release",
        f"-DCMAKE_CUDA_COMPILER={nvcc}",
        f"-DPython3_EXECUTABLE={sys.executable}",
        f"-DVITRT_CUDA_ARCHITECTURES={_architectures(archs)}",
        f"-DCMAKE_CUDA_ARCHITECTURES={_architectures(archs)}",
        f"-DVITRT_WARNINGS_AS_ERRORS={'ON' if warnings_as_errors else 'OFF'}",
    ]  # fmt: skip
    # Without new TensorRT paths the CMake cache keeps the previous ones (a plain rebuild keeps the plugins).
    if tensorrt_root or tensorrt_include_dir:
        configure.append(f"-DTENSORRT_ROOT={Path(tensorrt_root).resolve() if tensorrt_root else ''}")
        configure.append(
            f"-DTENSORRT_INCLUDE_DIR={Path(tensorrt_include_dir).resolve() if tensorrt_include_dir else ''}"
        )
    # Like the TensorRT paths: kept from the CMake cache by a plain rebuild, replaced when headers are named.
    if kernels_only or tensorrt_root or tensorrt_include_dir:
        checks = "" if kernels_only else ";".join(str(d.resolve()) for d in checked)
        configure.append(f"-DVITRT_TENSORRT_CHECK_INCLUDE_DIRS={checks}")
    if kernels_only:
        configure.append("-DVITRT_BUILD_PLUGINS=OFF")
    elif tensorrt_root or tensorrt_include_dir:
        configure.append("-DVITRT_BUILD_PLUGINS=ON")
    else:
        configure.append("-DVITRT_BUILD_PLUGINS=AUTO")
    if shutil.which("ninja") and not (build_dir / "CMakeCache.txt").is_file():
        configure += ["-G", "Ninja"]
    compile_ = [str(cmake), "--build", str(build_dir), "--parallel", str(jobs or os.cpu_count() or 2)]
    start = time.perf_counter()
    _run(configure, log)
    _run(compile_, log)
    kernel = build_dir / KERNEL_LIBRARY
    plugin = build_dir / PLUGIN_LIBRARY
    if not kernel.is_file():
        raise PluginError(f"the build finished without {kernel}; see {log}")
    built_plugin = plugin if plugin.is_file() and _plugins_configured(build_dir) else None
    if built_plugin is None:
        plugin.unlink(missing_ok=True)  # left over from a build with TensorRT headers; it is no longer current
    import json

    info = json.loads((build_dir / BUILD_INFO).read_text()) if (build_dir / BUILD_INFO).is_file() else {}
    return BuildResult(build_dir, kernel, built_plugin, time.perf_counter() - start, [configure, compile_], info)


def _plugins_configured(build_dir: Path) -> bool:
    """Whether the last configure found TensorRT headers (a stale plugin library may linger otherwise)."""
    import json

    info = build_dir / BUILD_INFO
    return info.is_file() and json.loads(info.read_text()).get("tensorrt_version") is not None
