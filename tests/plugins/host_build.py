"""Host (g++) builds of the plugin sources shared by the plugin tests."""

from __future__ import annotations

import importlib.util
import os
import subprocess
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from types import ModuleType


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
