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
