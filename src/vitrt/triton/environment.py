"""The Python environment Triton's Python backend needs to run vitrt's runtimes (`vitrt triton-env`).

Triton's backend stub embeds its own interpreter: it ignores `PYTHONPATH` and its tensor bridge is built against
numpy 1.x (with numpy 2 on its path, outputs come back empty). So the vitrt model (`runtime_model.py`) puts a
directory of its own first on `sys.path`. This module writes that directory:

    DIR/site-packages/          numpy < 2, the runtime (onnxruntime | openvino | tensorrt), Pillow, vitrt itself
    DIR/vitrt-triton-env.json   how it was built: Python version, source, every package and its version

Two sources:

* `pip` (default): `pip install --target DIR/site-packages --only-binary=:all: --python-version X.Y` with the
  runtime versions pinned to the ones installed here, so Triton runs what `vitrt serve` runs; reproducible on
  any machine with an index.
* `host`: links the packages this interpreter already has (same Python minor version, numpy < 2 required), for
  offline machines and CI; nothing is downloaded.

vitrt is copied from the running installation without its bundled weights (the runtime modules import no torch).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from importlib import metadata as importlib_metadata
from pathlib import Path
from typing import Literal

from vitrt.errors import VitrtError
from vitrt.triton.runtime_model import ENV_PACKAGES

MANIFEST = "vitrt-triton-env.json"
RUNTIMES = ("onnxruntime", "openvino", "tensorrt")
# What each runtime needs besides numpy; the distribution names pip installs.
_RUNTIME_PACKAGES = {"onnxruntime": ["onnxruntime"], "openvino": ["openvino"], "tensorrt": ["tensorrt"]}
# numpy; onnx + pyyaml: loading checks every vitrt node against its op contract; pillow: the ensemble's preprocessing.
_ALWAYS = ["numpy", "onnx", "pyyaml", "pillow"]


@dataclass
class EnvironmentReport:
    path: Path
    python_version: str
    source: str
    runtimes: list[str]
    packages: dict[str, str] = field(default_factory=dict)
    created: str = ""

    def to_dict(self) -> dict[str, object]:
        data = asdict(self)
        data["path"] = str(self.path)
        return data

    @classmethod
    def load(cls, path: str | Path) -> EnvironmentReport:
        path = Path(path)
        try:
            data = json.loads((path / MANIFEST).read_text(encoding="utf-8"))
        except (OSError, ValueError) as err:
            raise VitrtError(f"{path} is not an environment written by vitrt triton-env ({err})") from None
        data["path"] = path
        return cls(**data)


def build_environment(
    out: str | Path,
    runtimes: Sequence[str] = ("onnxruntime",),
    *,
    source: Literal["pip", "host"] = "pip",
    python_version: str | None = None,
    extra_packages: Sequence[str] = (),
    force: bool = False,
) -> EnvironmentReport:
    """Write the environment into `out` (staged next to it, moved into place when complete)."""
    unknown = [r for r in runtimes if r not in RUNTIMES]
    if unknown or not runtimes:
        raise VitrtError(f"unknown runtime {unknown[0] if unknown else ''!r}; choose from {', '.join(RUNTIMES)}")
    host_version = f"{sys.version_info.major}.{sys.version_info.minor}"
    version = python_version or host_version
    if source not in ("pip", "host"):
        raise VitrtError(f"--source must be pip or host, got {source!r}")
    if source == "host" and version != host_version:
        raise VitrtError(
            f"--source host links this interpreter's packages (Python {host_version}); Triton's stub here would "
            f"run Python {version} — use --source pip"
        )
    out = Path(out).absolute()
    if out.exists() and not force:
        raise VitrtError(f"{out} already exists; pass --force to replace it")
    names = [*_ALWAYS, *(p for r in runtimes for p in _RUNTIME_PACKAGES[r])]
    out.parent.mkdir(parents=True, exist_ok=True)
    stage = Path(tempfile.mkdtemp(prefix=".vitrt-triton-env-", dir=out.parent))
    try:
        packages_dir = stage / ENV_PACKAGES
        packages_dir.mkdir()
        if source == "host":
            packages = _link_host_packages(names, packages_dir)
        else:
            packages = _pip_install(_pinned(names) + list(extra_packages), packages_dir, version)
        _copy_vitrt(packages_dir / "vitrt")
        packages["vitrt"] = _vitrt_version()
        report = EnvironmentReport(
            path=out,
            python_version=version,
            source=source,
            runtimes=list(runtimes),
            packages=dict(sorted(packages.items())),
            created=datetime.now(UTC).isoformat(timespec="seconds"),
        )
        manifest = report.to_dict()
        manifest.pop("path")
        (stage / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
        if out.exists():
            shutil.rmtree(out)
        os.replace(stage, out)
    finally:
        shutil.rmtree(stage, ignore_errors=True)
    return report


# ------------------------------------------------------------------------------------------------------ pip
def _pinned(names: Sequence[str]) -> list[str]:
    """Requirement strings: the versions installed here (numpy only if < 2), else the newest allowed."""
    specs = []
    for name in names:
        installed = _installed_version(name)
        if name == "numpy":
            major = int(installed.split(".")[0]) if installed else 2
            specs.append(f"numpy=={installed}" if installed and major < 2 else "numpy<2")
        else:
            specs.append(f"{name}=={installed}" if installed else name)
    return specs


def _pip_install(requirements: Sequence[str], target: Path, python_version: str) -> dict[str, str]:
    command = [
        sys.executable,
        "-m",
        "pip",
        "install",
        "--disable-pip-version-check",
        "--no-compile",
        "--target",
        str(target),
        "--only-binary=:all:",
        "--python-version",
        python_version,
        *requirements,
    ]
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        lines = [line for line in (result.stderr or result.stdout).splitlines() if line.strip()]
        reason = lines[-1].strip() if lines else f"exit status {result.returncode}"
        raise VitrtError(f"pip could not install {' '.join(requirements)} for Python {python_version}: {reason}")
    return {
        dist.metadata["Name"].lower(): dist.version
        for dist in importlib_metadata.distributions(path=[str(target)])
        if dist.metadata["Name"]
    }


# ----------------------------------------------------------------------------------------------------- host
def _link_host_packages(names: Sequence[str], target: Path) -> dict[str, str]:
    """Symlink the distributions `names` and everything they require from this interpreter's site-packages."""
    linked: dict[str, str] = {}
    for dist in _closure(names):
        name = (dist.metadata["Name"] or "").lower()
        if name == "numpy" and int(dist.version.split(".")[0]) >= 2:
            raise VitrtError(
                f"numpy {dist.version} is installed here, but Triton's Python backend needs numpy < 2; "
                "use --source pip (it installs numpy < 2 into the environment only)"
            )
        root = Path(str(dist.locate_file(""))).absolute()
        for entry in _top_level_entries(dist, root):
            link = target / entry
            if not link.exists():
                link.symlink_to(root / entry)
        linked[name] = dist.version
    return linked


def _closure(names: Sequence[str]) -> Iterator[importlib_metadata.Distribution]:
    from packaging.requirements import Requirement

    seen: set[str] = set()
    pending = list(names)
    while pending:
        name = pending.pop()
        key = name.lower().replace("_", "-")
        if key in seen:
            continue
        seen.add(key)
        try:
            dist = importlib_metadata.distribution(name)
        except importlib_metadata.PackageNotFoundError:
            raise VitrtError(f"{name} is not installed here; install it or use --source pip") from None
        for text in dist.requires or []:
            requirement = Requirement(text)
            if requirement.marker is None or requirement.marker.evaluate({"extra": ""}):
                pending.append(requirement.name)
        yield dist


def _top_level_entries(dist: importlib_metadata.Distribution, root: Path) -> set[str]:
    entries = set()
    for file in dist.files or []:
        parts = Path(str(file)).parts
        if not parts or parts[0] in ("..", "__pycache__") or parts[0].endswith(".dist-info") and len(parts) < 2:
            continue
        if (root / parts[0]).exists():
            entries.add(parts[0])
    return entries


# ---------------------------------------------------------------------------------------------------- vitrt
def _copy_vitrt(target: Path) -> None:
    """vitrt as a wheel installs it: the package plus the op contracts and plugin sources in `_plugins_src`.

    From a source checkout (editable install) the plugin tree sits beside the package, not in it; it is copied in
    so that `vitrt.ops.spec.plugins_source_dir()` finds it the way it does in a wheel."""
    import vitrt
    from vitrt.ops.spec import PLUGINS_PACKAGE_DIR, plugins_source_dir

    source = Path(vitrt.__file__).parent
    skip = shutil.ignore_patterns("__pycache__", "*.pyc", "*.safetensors")
    shutil.copytree(source, target, ignore=skip)
    bundled = target / PLUGINS_PACKAGE_DIR
    if not bundled.is_dir():
        try:
            plugins = plugins_source_dir()
        except FileNotFoundError as err:
            raise VitrtError(f"cannot build the environment: {err}") from None
        shutil.copytree(plugins, bundled, ignore=shutil.ignore_patterns("__pycache__", "*.pyc", "build"))


def _vitrt_version() -> str:
    import vitrt

    return vitrt.__version__


def _installed_version(name: str) -> str | None:
    try:
        return importlib_metadata.version(name)
    except importlib_metadata.PackageNotFoundError:
        return None
