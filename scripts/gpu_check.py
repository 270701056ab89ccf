"""The prepared GPU check: everything vitrt can only verify on an NVIDIA GPU, in one run of under 8 minutes.

    scripts/gpu_check [OUT_DIR]          # OUT_DIR defaults to $OUT, else out/gpu_check

Steps (each bounded by what is left of the time budget, $GPU_CHECK_SECONDS, default 450 s; no network needed):

1. versions.json (Python, torch, CUDA, nvcc, TensorRT, git commit) and nvidia-smi.txt;
2. the kernel library for this GPU's architecture and, where TensorRT is importable and headers are found, the
   plugin library (build.log);
3. tests/gpu and the TensorRT tests (tests/engines/test_tensorrt*.py, tests/plugins/test_tensorrt_loading.py) with
   JUnit XML (junit-gpu.xml, junit-tensorrt.xml) and their logs;
4. the kernel benchmark, quick sizes (kernels_<gpu>.json/.md);
5. summary.json and summary.md: what ran, what passed, how long it took.

Without a GPU it writes versions.json and summary.json saying so, prints `no GPU: <reason>` and exits 77 (the
conventional "skipped" status); otherwise it exits 1 when a step failed, else 0.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
NO_GPU_STATUS = 77
DEFAULT_BUDGET_S = 450
TENSORRT_TESTS = [
    "tests/engines/test_tensorrt.py",
    "tests/engines/test_tensorrt_plugins.py",
    "tests/plugins/test_tensorrt_loading.py",
]


class Check:
    def __init__(self, out: Path, budget_s: float) -> None:
        self.out = out
        self.deadline = time.monotonic() + budget_s
        self.steps: list[dict[str, Any]] = []
        self.env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), os.environ.get("PYTHONPATH", "")])}
        self.env["PYTHONUNBUFFERED"] = "1"

    def left(self) -> float:
        return self.deadline - time.monotonic()

    def run(self, name: str, command: list[str], log: str, *, reserve_s: float = 0.0) -> bool:
        """Run one step with its output in `log`, bounded by the budget left (minus what later steps need)."""
        limit = self.left() - reserve_s
        step: dict[str, Any] = {"step": name, "command": " ".join(command), "log": log}
        if limit < 10:
            step.update(status="not run", reason="time budget spent")
            self.steps.append(step)
            return False
        started = time.monotonic()
        with (self.out / log).open("w") as sink:
            try:
                completed = subprocess.run(
                    command, cwd=ROOT, env=self.env, stdout=sink, stderr=subprocess.STDOUT, timeout=limit, check=False
                )
                step.update(status="passed" if completed.returncode == 0 else "failed", returncode=completed.returncode)
            except subprocess.TimeoutExpired:
                step.update(status="failed", reason=f"stopped after {limit:.0f} s (time budget)")
        step["seconds"] = round(time.monotonic() - started, 1)
        self.steps.append(step)
        print(f"{name}: {step['status']} ({step['seconds']} s)", flush=True)
        return step["status"] == "passed"


def _output(command: list[str]) -> str | None:
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return done.stdout.strip() if done.returncode == 0 else None


def versions() -> dict[str, Any]:
    facts: dict[str, Any] = {
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "machine": platform.machine(),
        "git_commit": _output(["git", "-C", str(ROOT), "rev-parse", "HEAD"]),
        "nvcc": (_output(["nvcc", "--version"]) or "").splitlines()[-1:] or None,
        "date_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    try:
        import torch

        facts["torch"] = torch.__version__
        facts["torch_cuda"] = torch.version.cuda
        facts["cuda_available"] = torch.cuda.is_available()
        if torch.cuda.is_available():
            facts["gpu"] = torch.cuda.get_device_name(0)
            facts["compute_capability"] = "{}.{}".format(*torch.cuda.get_device_capability(0))
    except ImportError as err:
        facts["torch"] = f"not importable ({err})"
    facts["tensorrt"] = tensorrt_version()
    return facts


def tensorrt_version() -> str | None:
    try:
        import tensorrt
    except Exception:
        return None
    return str(tensorrt.__version__) if hasattr(tensorrt, "Builder") else None  # tensorrt-stubs alone is not it


def tensorrt_headers(version: str) -> Path | None:
    """An include folder with NvInfer.h of the installed TensorRT's major version."""
    candidates = []
    if os.environ.get("TENSORRT_ROOT"):
        candidates.append(Path(os.environ["TENSORRT_ROOT"]) / "include")
    candidates += [Path(f"/usr/include/{platform.machine()}-linux-gnu"), Path("/usr/include")]
    for candidate in candidates:
        if (candidate / "NvInfer.h").is_file():
            return candidate
    sys.path.insert(0, str(ROOT / "src"))
    from vitrt.plugins.paths import tensorrt_header_sets

    same_major = [path for v, path in tensorrt_header_sets().items() if v.split(".")[0] == version.split(".")[0]]
    return same_major[-1] if same_major else None


def summarise(check: Check, facts: dict[str, Any], verdict: str) -> None:
    summary = {"verdict": verdict, "versions": facts, "steps": check.steps}
    (check.out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    lines = [f"# vitrt GPU check: {verdict}", "", f"GPU: {facts.get('gpu', 'none')}, TensorRT: {facts['tensorrt']}", ""]
    lines += ["| step | status | seconds | log |", "|---|---|---|---|"]
    lines += [f"| {s['step']} | {s['status']} | {s.get('seconds', '')} | {s['log']} |" for s in check.steps]
    (check.out / "summary.md").write_text("\n".join(lines) + "\n")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", nargs="?", type=Path, help="output folder (default: $OUT, else out/gpu_check)")
    args = parser.parse_args(argv)
    out = (args.out or Path(os.environ.get("OUT") or ROOT / "out" / "gpu_check")).resolve()
    out.mkdir(parents=True, exist_ok=True)
    check = Check(out, float(os.environ.get("GPU_CHECK_SECONDS", DEFAULT_BUDGET_S)))

    facts = versions()
    (out / "versions.json").write_text(json.dumps(facts, indent=2) + "\n")
    smi = shutil.which("nvidia-smi")
    smi_text = _output([smi]) if smi else None
    (out / "nvidia-smi.txt").write_text(smi_text or "nvidia-smi not available\n")
    if not facts.get("cuda_available"):
        reason = "nvidia-smi not found" if smi is None else "PyTorch sees no CUDA device"
        if smi_text is None and smi is not None:
            reason = "nvidia-smi failed (no driver or no device)"
        summarise(check, facts, f"no GPU: {reason}")
        print(f"no GPU: {reason}; wrote {out}/versions.json and summary.json")
        return NO_GPU_STATUS

    py = sys.executable
    arch = facts["compute_capability"].replace(".", "")
    build = [py, "-m", "vitrt", "plugins", "build", "--arch", arch]
    trt = facts["tensorrt"]
    headers = tensorrt_headers(trt) if trt else None
    if headers is not None:
        build += ["--tensorrt-include-dir", str(headers)]
    check.run("build kernels" + (f" + plugins (TensorRT headers {headers})" if headers else ""), build, "build.log",
              reserve_s=300)  # fmt: skip
    pytest = [py, "-m", "pytest", "-q", "-rs", "-p", "no:cacheprovider"]
    check.run("tests/gpu", [*pytest, "tests/gpu", "-m", "gpu", f"--junitxml={out / 'junit-gpu.xml'}"],
              "tests-gpu.log", reserve_s=240)  # fmt: skip
    if trt:
        check.run("TensorRT tests", [*pytest, *TENSORRT_TESTS, "-m", "tensorrt or gpu",
                  f"--junitxml={out / 'junit-tensorrt.xml'}"], "tests-tensorrt.log", reserve_s=60)  # fmt: skip
    else:
        check.steps.append({"step": "TensorRT tests", "status": "not run", "reason": "TensorRT is not importable",
                            "log": ""})  # fmt: skip
    check.run("kernel benchmark", [py, "benchmarks/kernels_gpu.py", "--quick", "--output-dir", str(out)],
              "benchmark.log")  # fmt: skip
    failed = [s["step"] for s in check.steps if s["status"] == "failed"]
    verdict = f"failed: {', '.join(failed)}" if failed else "passed"
    summarise(check, facts, verdict)
    print(f"{verdict}; results in {out}")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
