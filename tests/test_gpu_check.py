"""scripts/gpu_check on a machine without a GPU: it reports so cleanly and leaves its facts in the output folder."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a GPU: run scripts/gpu_check itself")
def test_gpu_check_reports_no_gpu_and_writes_its_facts_to_out(tmp_path: Path) -> None:
    env = {**os.environ, "OUT": str(tmp_path / "out"), "PYTHON": sys.executable}
    run = subprocess.run([str(ROOT / "scripts" / "gpu_check")], env=env, capture_output=True, text=True, timeout=120)
    assert run.returncode == 77, run.stdout + run.stderr
    assert run.stdout.startswith("no GPU: ") and run.stderr == ""
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert summary["verdict"].startswith("no GPU: ") and summary["steps"] == []
    versions = json.loads((tmp_path / "out" / "versions.json").read_text())
    assert versions["torch"] == torch.__version__ and versions["cuda_available"] is False
    assert (tmp_path / "out" / "nvidia-smi.txt").is_file()
