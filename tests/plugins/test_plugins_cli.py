"""`vitrt plugins build` / `vitrt plugins info` on the real build."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from vitrt.cli import _load_commands, app, main
from vitrt.errors import PluginError
from vitrt.plugins import builder as build_module

_load_commands()
RUNNER = CliRunner()


def _vitrt(capsys, *args: str) -> tuple[int, str]:
    """The console entry point in-process: exit code and stderr."""
    with pytest.raises(SystemExit) as exit_info:
        main(list(args))
    return exit_info.value.code, capsys.readouterr().err


def test_info_describes_the_build(kernel_build):
    result = RUNNER.invoke(app, ["plugins", "info", "--build-dir", str(kernel_build), "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    kernel = Path(report["kernel_library"]["path"])
    assert report["kernel_library"]["sha256"] == hashlib.sha256(kernel.read_bytes()).hexdigest()
    assert report["kernel_library"]["cuda_architectures"] == ["80", "86", "89", "90"]
    names = {op["name"] for op in report["ops"]}
    assert names == {
        "VitrtCirculantAttention",
        "VitrtFocusedLinearAttention",
        "VitrtAgentAttention",
        "VitrtInLineAttention",
        "VitrtMllaLinearAttention",
    }
    circulant = next(op for op in report["ops"] if op["name"] == "VitrtCirculantAttention")
    assert circulant["fields"] == {"height": "INT32", "width": "INT32", "strategy": "INT32"}
    assert all(op["namespace"] == "vitrt" and op["version"] == "1" for op in report["ops"])

    text = RUNNER.invoke(app, ["plugins", "info", "--build-dir", str(kernel_build)])
    assert text.exit_code == 0
    assert str(kernel) in text.output and "sm_80, sm_86, sm_89, sm_90" in text.output
    assert "vitrt::VitrtInLineAttention v1" in text.output


def test_info_without_a_build_is_a_one_line_error(tmp_path, capsys):
    code, err = _vitrt(capsys, "plugins", "info", "--build-dir", str(tmp_path))
    assert code == 2
    assert err.strip() == f"error: no kernel library in {tmp_path}; build it with `vitrt plugins build`"


def test_build_reports_bad_paths_and_arguments(tmp_path, capsys):
    code, err = _vitrt(capsys, "plugins", "build", "--build-dir", str(tmp_path), "--tensorrt-root", str(tmp_path / "x"))
    assert code == 2
    assert err.startswith("error: --tensorrt-root") and err.strip().endswith("is not a directory")
    result = RUNNER.invoke(app, ["plugins", "build", "--build-dir", str(tmp_path), "--arch", "hopper"])
    assert isinstance(result.exception, PluginError)
    assert "invalid CUDA architecture 'hopper'" in str(result.exception)


def test_build_without_nvcc_says_so(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))
    for name in ("CUDACXX", "CUDA_HOME", "CUDA_PATH"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(build_module, "CUDA_HOMES", (str(tmp_path),))
    with pytest.raises(PluginError, match="nvcc not found"):
        build_module.find_nvcc()


def test_header_sets_are_found_and_ordered_by_version(tmp_path, monkeypatch, capsys):
    from vitrt.plugins.paths import TENSORRT_HEADERS_ENV, tensorrt_header_sets

    for version in ("11.1", "10.13", "10.8.0"):
        (tmp_path / version / "include").mkdir(parents=True)
        (tmp_path / version / "include" / "NvInfer.h").write_text("")
    (tmp_path / "9.0" / "include").mkdir(parents=True)  # no NvInfer.h: not a header set
    expected = {v: (tmp_path / v / "include").resolve() for v in ("10.8.0", "10.13", "11.1")}
    assert list(tensorrt_header_sets(tmp_path).items()) == list(expected.items())
    monkeypatch.setenv(TENSORRT_HEADERS_ENV, str(tmp_path))
    assert tensorrt_header_sets() == expected
    empty = tmp_path / "empty"
    empty.mkdir()
    code, err = _vitrt(
        capsys, "plugins", "build", "--build-dir", str(tmp_path / "b"), "--tensorrt-header-sets", str(empty)
    )
    assert code == 2 and err.strip() == f"error: no TensorRT header set (<version>/include/NvInfer.h) in {empty}"


def test_plugins_compile_against_every_shared_header_set(kernel_build):
    """What `make kernels` does in CI: link against the newest TensorRT headers, compile-check against the rest."""
    from host_build import NO_HEADERS_REASON

    from vitrt.plugins.builder import build
    from vitrt.plugins.paths import tensorrt_header_sets

    sets = tensorrt_header_sets()
    if not sets:
        pytest.skip(NO_HEADERS_REASON)
    root = next(iter(sets.values())).parents[1]
    result = build(kernel_build, tensorrt_header_sets=root)  # incremental after `make kernels`
    assert result.plugin_library is not None and result.plugin_library.is_file()
    newest = list(sets)[-1]
    assert result.info["tensorrt_include_dir"] == str(sets[newest])
    assert result.info["tensorrt_version"].startswith(newest)
    assert result.info["tensorrt_checked_include_dirs"] == [str(sets[v]) for v in list(sets)[:-1]]
    assert "-Werror" in (kernel_build / "build.ninja").read_text()
