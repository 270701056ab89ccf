"""The torch.compile peer of `vitrt bench` and runtimes a caller adds: measured rows, or skipped rows with reasons."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("torch")

from vitrt.bench import run_bench
from vitrt.bench.grid import compile_problem
from vitrt.errors import VitrtError


def _rows(result: Any, backend: str) -> list[Any]:
    return [row for row in result.rows if row.backend == backend]


def _tiny_grid(backends: str, **settings: Any) -> Any:
    """agent_digits at batch 1, fp32 and bf16, two timed iterations on the CPU: seconds, not a benchmark."""
    defaults: dict[str, Any] = {"precisions": "fp32,bf16", "batch": "1", "iterations": 2, "rounds": 1, "n": 2}
    return run_bench("agent_digits", backends=backends, device="cpu", progress=False, **{**defaults, **settings})


def test_without_a_compiler_torch_compile_rows_are_skipped_with_the_reason(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    empty = tmp_path / "empty-bin"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))
    monkeypatch.delenv("CXX", raising=False)
    assert compile_problem() is not None
    result = _tiny_grid("torch,torch-compile")
    compiled = _rows(result, "torch-compile")
    assert len(compiled) == 2 and all(row.status == "skipped" for row in compiled)
    assert all("C++ compiler" in (row.reason or "") for row in compiled)
    assert all(row.status == "ok" for row in _rows(result, "torch"))


@pytest.mark.skipif(compile_problem() is not None, reason=str(compile_problem()))
def test_torch_compile_fp32_and_bf16_are_measured_with_parity() -> None:
    result = _tiny_grid("torch,torch-compile", n=4, threads=min(2, os.cpu_count() or 1))
    compiled = {row.precision: row for row in _rows(result, "torch-compile")}
    assert set(compiled) == {"fp32", "bf16"}
    for row in compiled.values():
        assert row.status == "ok", row.reason
        assert row.latency_ms is not None and row.latency_ms["median"] > 0
        assert row.parity is not None and row.parity["passed"]
    assert "torch.compile" in (compiled["fp32"].runtime or "")


def test_extra_runtime_is_measured_interleaved_or_skipped_with_its_reason() -> None:
    from vitrt.engines import load

    def opener(config: Any, prepared: Any, threads: int | None) -> Any:
        if config.precision != "fp32":
            raise VitrtError("this runtime runs fp32 only")
        return load(prepared.onnx, backend="onnxruntime", intra_op_threads=threads)

    result = _tiny_grid("torch,ort-by-hand", rounds=2, extra_runtimes={"ort-by-hand": opener})
    extra = {row.precision: row for row in _rows(result, "ort-by-hand")}
    assert extra["fp32"].status == "ok" and extra["fp32"].parity is not None and extra["fp32"].parity["passed"]
    assert extra["bf16"].status == "skipped" and extra["bf16"].reason == "this runtime runs fp32 only"


def test_an_unknown_extra_runtime_name_is_still_refused() -> None:
    from vitrt.bench import BenchInputError

    with pytest.raises(BenchInputError, match="unknown backend"):
        run_bench("agent_digits", backends="torch,nope", extra_runtimes={"other": lambda *a: None}, device="cpu")
