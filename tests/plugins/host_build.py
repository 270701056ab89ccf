"""Host (g++) builds of the plugin sources shared by the plugin tests."""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from types import ModuleType

from vitrt.plugins.paths import TENSORRT_HEADERS_ENV, tensorrt_header_sets

EMULATION_DIR = Path(__file__).parent / "emulation"


def spec_generator(source_dir: Path) -> ModuleType:
    """`plugins/tools/gen_op_specs.py` as a module (its `render` writes vitrt_op_specs.h)."""
    spec = importlib.util.spec_from_file_location("gen_op_specs", source_dir / "tools" / "gen_op_specs.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def compile_objects(command: list[str], sources: list[Path], out: Path) -> list[Path]:
    """Compiles each source with `command` (compiler and flags) into `out`, in parallel; returns the objects."""

    def compile_one(source: Path) -> Path:
        obj = out / f"{source.name}.o"
        subprocess.run([*command, "-c", str(source), "-o", str(obj)], check=True)
        return obj

    with ThreadPoolExecutor(max_workers=os.cpu_count() or 2) as pool:
        return list(pool.map(compile_one, sources))


def cuda_include() -> Path | None:
    roots = [os.environ.get("CUDA_HOME"), "/usr/local/cuda"]
    nvcc = shutil.which("nvcc")
    if nvcc:
        roots.append(str(Path(nvcc).parents[1]))
    for root in roots:
        if root and (Path(root) / "include" / "cuda_runtime_api.h").is_file():
            return Path(root) / "include"
    return None


def tensorrt_headers() -> dict[str, Path]:
    """TensorRT header sets to compile the plugins against, oldest first: `tensorrt_header_sets()` (CI's
    ../shared/third_party/tensorrt or $VITRT_TENSORRT_HEADERS) plus $TENSORRT_INCLUDE_DIR when set."""
    sets = tensorrt_header_sets()
    extra = os.environ.get("TENSORRT_INCLUDE_DIR")
    if extra and (Path(extra) / "NvInfer.h").is_file():
        sets["TENSORRT_INCLUDE_DIR"] = Path(extra)
    return sets


NO_HEADERS_REASON = (
    f"no TensorRT headers: no <version>/include/NvInfer.h under ${TENSORRT_HEADERS_ENV} or "
    "../shared/third_party/tensorrt beside the checkout, and no $TENSORRT_INCLUDE_DIR"
)
