"""Fixtures of the plugin tests: the real CMake build of the kernel library and its host-emulation build."""

from __future__ import annotations

import shutil
import subprocess
import sysconfig
from pathlib import Path

import pytest
from host_build import EMULATION_DIR, compile_objects, cuda_include, spec_generator, tensorrt_headers

from vitrt.plugins.paths import (
    KERNEL_LIBRARY,
    default_build_dir,
    source_dir,
)


@pytest.fixture(scope="session")
def kernel_build() -> Path:
    """The kernel library built by CMake + nvcc for sm_80/86/89/90 (incremental when `make kernels` ran first)."""
    from vitrt.plugins.builder import build

    result = build(default_build_dir())
    assert result.kernel_library.name == KERNEL_LIBRARY
    return result.build_dir


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
    cuda_headers = cuda_include()
    if compiler is None or cuda_headers is None:
        pytest.skip("the emulation build needs g++ and the CUDA toolkit headers")
    src = source_dir()
    out = tmp_path_factory.mktemp("emulation")
    # Only cufft.h from its folder, so a wheel's copies of the CUDA runtime headers cannot shadow the toolkit's.
    (out / "cufft").mkdir()
    shutil.copy(_cufft_include() / "cufft.h", out / "cufft" / "cufft.h")
    includes = [f"-I{EMULATION_DIR}", f"-I{src / 'common'}", f"-I{out / 'cufft'}", f"-I{cuda_headers}"]
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


@pytest.fixture(scope="session")
def plugin_harness(emulated_kernels: Path, tmp_path_factory: pytest.TempPathFactory):
    """A function: header-set version -> emulation/plugin_harness.cpp linked with the plugin sources (compiled
    against that set, -Werror) and the emulated kernels. Each set is compiled once per session."""
    built: dict[str, Path] = {}
    sets = tensorrt_headers()

    def harness(version: str) -> Path:
        if version not in built:
            built[version] = _build_harness(
                sets[version], emulated_kernels, tmp_path_factory.mktemp(f"harness-{version}")
            )
        return built[version]

    return harness


def _build_harness(headers: Path, emulated_kernels: Path, out: Path) -> Path:
    src = source_dir()
    (out / "vitrt_op_specs.h").write_text(spec_generator(src).render(src))
    op_dirs = sorted(d for d in src.iterdir() if (d / f"{d.name}.yaml").is_file())
    includes = [f"-I{out}", f"-I{src / 'common'}", *(f"-I{d}" for d in op_dirs), "-isystem", str(headers)]
    cuda = cuda_include()
    if cuda is not None:
        includes += ["-isystem", str(cuda)]
    sources = [src / "common" / "plugin_base.cpp", src / "common" / "plugin_registration.cpp"]
    sources += [EMULATION_DIR / "plugin_harness.cpp", *(d / f"{d.name}_plugin.cpp" for d in op_dirs)]
    flags = ["-std=c++17", "-O1", "-Wall", "-Wextra", "-Werror"]
    objects = [str(o) for o in compile_objects([shutil.which("g++") or "g++", *flags, *includes], sources, out)]
    binary = out / "plugin_harness"
    lib = emulated_kernels
    subprocess.run(["g++", "-o", str(binary), *objects, str(lib), f"-Wl,-rpath,{lib.parent}", "-ldl"], check=True)
    return binary
