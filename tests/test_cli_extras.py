"""A command that needs an optional extra ends with an install hint, not a traceback."""

from __future__ import annotations

import sys

import pytest

from vitrt.cli import app, main


def test_missing_extra_names_the_install_command(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    @app.command("needs-onnxscript", hidden=True)
    def needs_onnxscript() -> None:
        import onnxscript  # noqa: F401

    monkeypatch.setitem(sys.modules, "onnxscript", None)  # makes `import onnxscript` raise ModuleNotFoundError
    try:
        with pytest.raises(SystemExit) as exit_info:
            main(["needs-onnxscript"])
    finally:
        app.registered_commands[:] = [c for c in app.registered_commands if c.name != "needs-onnxscript"]
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "error: this command needs onnxscript" in err and "pip install 'vitrt[export]'" in err


@pytest.mark.parametrize("command", ["serve", "parity", "export", "build"])
def test_help_is_not_cut_when_stdout_is_not_a_terminal(command: str) -> None:
    """`vitrt serve --help | less` or a CI log: option names must survive whole (not `--max-queue-dela…`)."""
    import os
    import re
    import subprocess
    from pathlib import Path

    src = Path(__file__).resolve().parents[1] / "src"
    env = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "LINES", "TERMINAL_WIDTH")}
    env["PYTHONPATH"] = str(src)
    result = subprocess.run(
        [sys.executable, "-m", "vitrt", command, "--help"], capture_output=True, text=True, timeout=120, env=env
    )
    assert result.returncode == 0, result.stderr
    assert not re.search(r"--[a-z][a-z0-9-]*…", result.stdout), result.stdout
    if command == "serve":
        assert "--max-queue-delay-ms" in result.stdout and "--backend-option" in result.stdout
