"""`vitrt serve` refuses bad configurations and artifacts with one `error:` line, before binding a port."""

from __future__ import annotations

import os
import socket
import subprocess
import sys

import pytest
import yaml
from serve_support import SRC, free_port

from vitrt.cli import main


def _run_in_process(capsys, args):
    with pytest.raises(SystemExit) as exit_info:
        main(["serve", *args])
    return exit_info.value.code, capsys.readouterr().err


@pytest.mark.parametrize(
    ("models", "message"),
    [
        ([], "models: List should have at least 1 item"),
        ([{"name": "m", "artifact": "m.onnx", "max_batch_size": 0}], "models.0.max_batch_size"),
        ([{"name": "m", "artifact": "m.onnx", "colour": "red"}], "models.0.colour: Extra inputs are not permitted"),
        ([{"name": "bad name", "artifact": "m.onnx"}], "models.0.name"),
        ([{"name": "m", "artifact": "a.onnx"}, {"name": "m", "artifact": "b.onnx"}], "model name 'm' is used twice"),
    ],
)
def test_bad_config_files_are_refused(capsys, tmp_path, models, message):
    path = tmp_path / "serve.yaml"
    path.write_text(yaml.safe_dump({"models": models}))
    code, err = _run_in_process(capsys, ["--config", str(path)])
    assert code == 2 and err.startswith("error: ") and message in err
    assert "Traceback" not in err


def test_bad_command_lines_are_refused(capsys, tmp_path):
    code, err = _run_in_process(capsys, [])
    assert code == 2 and "nothing to serve" in err
    (tmp_path / "s.yaml").write_text("models: [{name: m, artifact: m.onnx}]")
    code, err = _run_in_process(capsys, ["m.onnx", "--config", str(tmp_path / "s.yaml")])
    assert code == 2 and "not both" in err
    code, err = _run_in_process(capsys, ["--config", str(tmp_path / "s.yaml"), "--max-batch", "4"])
    assert code == 2 and "set per-model options" in err
    code, err = _run_in_process(capsys, ["m.onnx", "--backend-option", "no-equals-sign"])
    assert code == 2 and "KEY=VALUE" in err
    (tmp_path / "broken.yaml").write_text("models: [unclosed")
    code, err = _run_in_process(capsys, ["--config", str(tmp_path / "broken.yaml")])
    assert code == 2 and "not valid YAML" in err


@pytest.mark.parametrize(
    ("artifact", "message"),
    [("missing.onnx", "model 'missing': artifact not found"), ("corrupt.onnx", "ONNX Runtime cannot load")],
)
def test_unloadable_artifacts_fail_before_the_server_starts(tmp_path, artifact, message):
    (tmp_path / "corrupt.onnx").write_bytes(b"this is not a protobuf")
    result = subprocess.run(
        [sys.executable, "-m", "vitrt", "serve", str(tmp_path / artifact), "--port", str(free_port())],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "PYTHONPATH": str(SRC)},
    )
    assert result.returncode == 2
    assert message in result.stderr and "error: " in result.stderr
    assert "Traceback" not in result.stderr and "Uvicorn running" not in result.stderr


def test_a_busy_port_is_one_error_line_and_exit_2(arith_onnx):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = subprocess.run(
            [sys.executable, "-m", "vitrt", "serve", str(arith_onnx), "--host", "127.0.0.1", "--port", str(port)],
            capture_output=True,
            text=True,
            timeout=120,
            env={**os.environ, "PYTHONPATH": str(SRC)},
        )
    assert result.returncode == 2, result.stderr
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr  # nothing logged: the port is bound before models load
    assert lines[0].startswith("error: ") and f"port {port} on 127.0.0.1 is already in use" in lines[0]
    assert "--port" in lines[0]
