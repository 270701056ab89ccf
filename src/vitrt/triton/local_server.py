"""Run a real `tritonserver` on this machine from the `nvidia-pytriton` wheel (tests, benchmarks, local trials).

The wheel (install it with `pip install --no-deps nvidia-pytriton`: its numpy < 2 pin must not touch the project's
environment) bundles the `tritonserver` binary with the Python backend and backend stubs for several Python
versions, but no ONNX Runtime or TensorRT backend. The stub must sit in the backend's directory, so a private
backend directory is assembled (links to the wheel's files plus the stub for the chosen Python) instead of
writing into the installed wheel.

>>> with LocalTriton("model_repository") as triton:
...     print(triton.http_url, triton.grpc_url)
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

from vitrt.errors import VitrtError


class TritonUnavailableError(VitrtError):
    """No runnable tritonserver binary on this machine."""


class TritonStartError(VitrtError):
    """tritonserver exited or did not become ready; the message carries its own log lines."""


@dataclass(frozen=True)
class TritonInstallation:
    binary: Path
    libraries: Path
    backends: Path
    stubs: Path

    def stub(self, python_version: str) -> Path:
        return self.stubs / python_version / "triton_python_backend_stub"


def find_installation() -> TritonInstallation:
    """The tritonserver of the installed `nvidia-pytriton` wheel, or TritonUnavailableError saying why not."""
    import importlib.util

    spec = importlib.util.find_spec("pytriton")
    if spec is None or not spec.submodule_search_locations:
        raise TritonUnavailableError(
            "the nvidia-pytriton wheel is not installed (pip install --no-deps nvidia-pytriton), which provides "
            "tritonserver"
        )
    package = Path(next(iter(spec.submodule_search_locations)))
    root = package / "tritonserver"
    found = TritonInstallation(
        binary=root / "bin" / "tritonserver",
        libraries=package.parent / "nvidia_pytriton.libs",
        backends=root / "backends",
        stubs=root / "python_backend_stubs",
    )
    if not found.binary.is_file():
        raise TritonUnavailableError(f"{found.binary} is missing from the nvidia-pytriton wheel")
    return found


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class LocalTriton:
    """A tritonserver process on 127.0.0.1 with free HTTP, gRPC and metrics ports; stopped by its PID."""

    def __init__(
        self,
        repository: str | Path,
        *,
        python_version: str | None = None,
        environment: dict[str, str] | None = None,
        log_file: str | Path | None = None,
        startup_timeout: float = 120.0,
        strict: bool = True,
        extra_args: list[str] | None = None,
    ) -> None:
        self.repository = Path(repository).absolute()
        self.python_version = python_version or f"{sys.version_info.major}.{sys.version_info.minor}"
        self.environment = environment or {}
        self.startup_timeout = startup_timeout
        self.strict = strict
        self.extra_args = extra_args or []
        self.log_file = Path(log_file) if log_file else None
        self.process: subprocess.Popen[bytes] | None = None
        self.http_port = self.grpc_port = self.metrics_port = 0
        self._workdir: Path | None = None

    @property
    def http_url(self) -> str:
        return f"127.0.0.1:{self.http_port}"

    @property
    def grpc_url(self) -> str:
        return f"127.0.0.1:{self.grpc_port}"

    @property
    def metrics_url(self) -> str:
        return f"http://127.0.0.1:{self.metrics_port}/metrics"

    def log(self) -> str:
        assert self.log_file is not None
        try:
            return self.log_file.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return ""

    def errors(self) -> list[str]:
        """The server's error lines (E... prefixes), without the CPU-only machine's harmless CUDA/DCGM notices."""
        harmless = ("CudaDriverHelper", "DCGM", "NVML", "cuda", "CUDA")
        return [
            line.strip()
            for line in self.log().splitlines()
            if line.startswith("E") and not any(word in line for word in harmless)
        ]

    def start(self) -> LocalTriton:
        installation = find_installation()
        stub = installation.stub(self.python_version)
        if not stub.is_file():
            raise TritonUnavailableError(f"the wheel has no Python backend stub for Python {self.python_version}")
        self._workdir = Path(tempfile.mkdtemp(prefix="vitrt-tritonserver-"))
        backends = self._workdir / "backends"
        python = backends / "python"
        python.mkdir(parents=True)
        for item in (installation.backends / "python").iterdir():
            if item.is_file():
                (python / item.name).symlink_to(item)
        shutil.copy2(stub, python / stub.name)
        if self.log_file is None:
            self.log_file = self._workdir / "tritonserver.log"
        self.http_port, self.grpc_port, self.metrics_port = free_port(), free_port(), free_port()
        command = [
            str(installation.binary),
            f"--model-repository={self.repository}",
            f"--backend-directory={backends}",
            "--http-address=127.0.0.1",
            f"--http-port={self.http_port}",
            "--grpc-address=127.0.0.1",
            f"--grpc-port={self.grpc_port}",
            "--metrics-address=127.0.0.1",
            f"--metrics-port={self.metrics_port}",
            f"--strict-readiness={'true' if self.strict else 'false'}",
            f"--exit-on-error={'true' if self.strict else 'false'}",
            "--exit-timeout-secs=10",
            *self.extra_args,
        ]
        env = dict(os.environ)
        env["LD_LIBRARY_PATH"] = os.pathsep.join(
            p for p in (str(installation.libraries), env.get("LD_LIBRARY_PATH", "")) if p
        )
        env.update(self.environment)
        with open(self.log_file, "wb") as log:
            self.process = subprocess.Popen(
                command, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True
            )
        try:
            self._wait_ready()
        except BaseException:
            self.stop()
            raise
        return self

    def _wait_ready(self) -> None:
        assert self.process is not None
        deadline = time.monotonic() + self.startup_timeout
        url = f"http://{self.http_url}/v2/health/ready"
        while True:
            code = self.process.poll()
            if code is not None:
                raise TritonStartError(self._failure(f"tritonserver exited with status {code}"))
            try:
                with urllib.request.urlopen(url, timeout=2) as response:
                    if response.status == 200:
                        return
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                pass
            if time.monotonic() > deadline:
                raise TritonStartError(self._failure(f"tritonserver not ready after {self.startup_timeout:.0f} s"))
            # Polling readiness: the server has no other start-up signal to wait on.
            time.sleep(0.2)

    def _failure(self, what: str) -> str:
        errors = self.errors()
        return f"{what}: " + (" | ".join(errors[-6:]) if errors else self.log()[-2000:])

    def stop(self) -> int | None:
        """SIGTERM the server by its PID (SIGKILL after the exit timeout); returns its exit status."""
        code = None
        if self.process is not None:
            if self.process.poll() is None:
                os.kill(self.process.pid, signal.SIGTERM)
                try:
                    self.process.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    os.kill(self.process.pid, signal.SIGKILL)
                    self.process.wait(timeout=10)
            code = self.process.returncode
            self.process = None
        if self._workdir is not None:
            shutil.rmtree(self._workdir / "backends", ignore_errors=True)
        return code

    def __enter__(self) -> LocalTriton:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.stop()
