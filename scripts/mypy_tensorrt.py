"""Type-check the TensorRT code paths against the installed `tensorrt-stubs`.

The stubs ship without a `py.typed` marker inside the `tensorrt` package and contain a few generated signatures
that are not valid Python (a parameter named `in`, a non-default parameter after defaults). This script copies them
into a stub directory with those signatures repaired, then runs mypy with that directory on MYPYPATH, so every
`tensorrt` call in the checked sources is checked against the real API. Exit status is mypy's.

    python scripts/mypy_tensorrt.py [paths...]      # default: src/vitrt/engines src/vitrt/parity
"""

from __future__ import annotations

import argparse
import ast
import importlib.util
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_PATHS = ["src/vitrt/engines", "src/vitrt/parity"]
STUB_PACKAGES = ("tensorrt", "tensorrt_bindings")
# vitrt's own modules and TensorRT are analysed; the large third-party libraries are not followed (their types
# become Any), which keeps a cold run within seconds instead of a minute.
MYPY_CONFIG = """\
[mypy]
python_version = 3.11
ignore_missing_imports = True
follow_imports = silent
warn_unused_ignores = False

[mypy-torch.*,torchvision.*,timm.*,onnx.*,onnxruntime.*,onnxscript.*,onnx_ir.*,sympy.*,scipy.*,sklearn.*,PIL.*,\
fastapi.*,pydantic.*,starlette.*,rich.*,typer.*,click.*,safetensors.*,ml_dtypes.*,yaml.*]
follow_imports = skip
"""
_DEF = re.compile(r"^(\s*def \w+\()(.*)(\)\s*->.*:\s*)$")


def _split_params(params: str) -> list[str]:
    """Split a parameter list on top-level commas."""
    parts, depth, current = [], 0, []
    for ch in params:
        if ch in "([{":
            depth += 1
        elif ch in ")]}":
            depth -= 1
        if ch == "," and depth == 0:
            parts.append("".join(current))
            current = []
        else:
            current.append(ch)
    if "".join(current).strip():
        parts.append("".join(current))
    return parts


def repair_signature(line: str) -> str:
    """Rename parameters called `in`, and give parameters after a defaulted one a `...` default."""
    match = _DEF.match(line)
    if match is None:
        return line
    head, params, tail = match.groups()
    fixed, seen_default = [], False
    for param in _split_params(params):
        name, sep, rest = param.partition(":")
        if name.strip() == "in":
            param = name.replace("in", "in_", 1) + sep + rest
        stripped = param.strip()
        if "=" in stripped:
            seen_default = True
        elif seen_default and not stripped.startswith("*") and stripped != "/":
            param = param.rstrip() + " = ..."
        fixed.append(param)
    return head + ",".join(fixed) + tail


_ANNOTATION_BOOL = re.compile(r"(->\s*|:\s*|\[|,\s*|\|\s*)bool\b")
_ELLIPSIS_TYPE = re.compile(r"(->\s*|:\s*)\.\.\.(?=\s*[:,)=])")


def repair_stub(text: str, name: str) -> str:
    """Make a generated stub usable: valid syntax, and annotations that mean what they say.

    The stubs define a module-level `bool: DataType` (TensorRT's `trt.bool`), which shadows the builtin in every
    `-> bool` annotation; they also use `...` and `capsule` as types. Errors left inside the stub are silenced with
    `# mypy: ignore-errors` (they are the stub author's), while its types stay in force for the checked code.
    """
    fixed_lines = []
    for line in text.split("\n"):
        if not line.startswith("bool:"):
            line = _ANNOTATION_BOOL.sub(lambda m: m.group(1) + "builtins.bool", line)
        line = _ELLIPSIS_TYPE.sub(lambda m: m.group(1) + "typing.Any", line)
        line = re.sub(r"\bcapsule\b", "typing.Any", line)
        fixed_lines.append(line)
    lines = ["# mypy: ignore-errors", "import builtins", "import typing", *fixed_lines]
    for _ in range(len(lines)):
        try:
            ast.parse("\n".join(lines), filename=name)
            return "\n".join(lines)
        except SyntaxError as err:
            index = (err.lineno or 1) - 1
            repaired = repair_signature(lines[index])
            if repaired == lines[index]:
                raise SystemExit(f"{name}:{err.lineno}: cannot repair stub line: {lines[index].strip()}") from None
            lines[index] = repaired
    raise SystemExit(f"{name}: too many syntax errors")


def prepare_stubs(out_dir: Path) -> Path:
    """Copy the installed TensorRT stubs into `out_dir`, repaired; returns `out_dir`."""
    for package in STUB_PACKAGES:
        spec = importlib.util.find_spec(package)
        locations = list(spec.submodule_search_locations or []) if spec is not None else []
        sources = [p for loc in locations for p in Path(loc).glob("*.pyi")]
        if not sources:
            raise SystemExit(f"no type stubs for {package}; install tensorrt-stubs (see the Makefile venv target)")
        target = out_dir / package
        target.mkdir(parents=True, exist_ok=True)
        for source in sources:
            (target / source.name).write_text(repair_stub(source.read_text(), str(source)))
    return out_dir


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("paths", nargs="*", default=DEFAULT_PATHS)
    parser.add_argument("--stub-dir", type=Path, default=ROOT / "build" / "mypy-stubs")
    args = parser.parse_args(argv)
    stubs = prepare_stubs(args.stub_dir)
    config = args.stub_dir / "mypy.ini"
    config.write_text(MYPY_CONFIG)
    command = [
        sys.executable,
        "-m",
        "mypy",
        "--config-file",
        str(config),
        "--cache-dir",
        str(ROOT / "build" / "mypy-cache"),
        *args.paths,
    ]
    env = {**__import__("os").environ, "MYPYPATH": str(stubs)}
    return subprocess.call(command, cwd=ROOT, env=env)


if __name__ == "__main__":
    sys.exit(main())
