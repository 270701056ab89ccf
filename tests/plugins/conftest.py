"""Fixtures of the plugin tests: the real CMake build of the kernel library and its host-emulation build."""

from __future__ import annotations

import os
import shutil
import subprocess
import sysconfig
from pathlib import Path

import pytest
from host_build import compile_objects

from vitrt.plugins.paths import KERNEL_LIBRARY, default_build_dir, source_dir

EMULATION_DIR = Path(__file__).parent / "emulation"


@pytest.fixture(scope="session")
def kernel_build() -> Path:
    """The kernel library built by CMake + nvcc for sm_80/86/89/90 (incremental when `make kernels` ran first)."""
    from vitrt.plugins.builder import build

    result = build(default_build_dir())
    assert result.kernel_library.name == KERNEL_LIBRARY
    return result.build_dir


def _cuda_include() -> Path | None:
    roots = [os.environ.get("CUDA_HOME"), "/usr/local/cuda"]
    nvcc = shutil.which("nvcc")
    if nvcc:
        roots.append(str(Path(nvcc).parents[1]))
    for root in roots:
        if root and (Path(root) / "include" / "cuda_runtime_api.h").is_file():
            return Path(root) / "include"
    return None


def _cufft_include() -> Path:
    for root in (
        Path("/usr/local/cuda/include"),
        Path(sysconfig.get_paths()["purelib"]) / "nvidia" / "cu13" / "include",
    ):
        if (root / "cufft.h").is_file():
            return root
    pytest.skip("cufft.h not found (CUDA toolkit or nvidia-cufft wheel)")


@pytest.fixture(scope="session")
def emulated_kernels(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The kernel sources compiled for the host with g++ and the CUDA emulation header (see emulation/)."""
    compiler = shutil.which("g++")
    cuda_include = _cuda_include()
    if compiler is None or cuda_include is None:
        pytest.skip("the emulation build needs g++ and the CUDA toolkit headers")
    src = source_dir()
    out = tmp_path_factory.mktemp("emulation")
    # Only cufft.h from its folder, so a wheel's copies of the CUDA runtime headers cannot shadow the toolkit's.
    (out / "cufft").mkdir()
    shutil.copy(_cufft_include() / "cufft.h", out / "cufft" / "cufft.h")
    includes = [f"-I{EMULATION_DIR}", f"-I{src / 'common'}", f"-I{out / 'cufft'}", f"-I{cuda_include}"]
    includes += [f"-I{d}" for d in sorted(src.iterdir()) if (d / f"{d.name}.yaml").is_file()]
    sources = sorted(src.glob("*/*_kernel.cu")) + [src / "common" / n for n in
               ("kernel_utils.cpp", "fft_plan_cache.cpp", "kernels_common.cpp")]  # fmt: skip
    sources.append(EMULATION_DIR / "emulated_runtime.cpp")
    flags = ["-x", "c++", "-std=c++20", "-O1", "-fPIC", "-Wall", "-Wextra", "-Werror", "-Wno-unknown-pragmas",
             "-DVITRT_HOST_EMULATION", "-include", "vitrt_cuda_emulation.h"]  # fmt: skip
    objects = compile_objects([compiler, *flags, *includes], sources, out)
    library = out / "libvitrt_kernels_emulated.so"
    # -Bsymbolic: the emulated CUDA runtime must win over a real libcudart that torch already loaded.
    subprocess.run([compiler, "-shared", "-Wl,-Bsymbolic", "-o", str(library), *map(str, objects)], check=True)
    return library
