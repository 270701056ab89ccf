"""File helpers: atomic writes give files the permissions any other write would (umask), not mkstemp's 0600."""

from __future__ import annotations

import os
import stat

import pytest

from vitrt.files import atomic_write, current_umask


@pytest.mark.parametrize("umask", [0o022, 0o002, 0o077])
def test_atomic_write_honours_the_umask(tmp_path, umask):
    previous = os.umask(umask)
    try:
        assert current_umask() == umask
        target = tmp_path / "out" / "model.onnx"
        atomic_write(target, b"payload")
        plain = tmp_path / "plain.bin"
        plain.write_bytes(b"payload")
    finally:
        os.umask(previous)
    assert target.read_bytes() == b"payload"
    mode = stat.S_IMODE(target.stat().st_mode)
    assert mode == 0o666 & ~umask == stat.S_IMODE(plain.stat().st_mode)
    assert [p.name for p in target.parent.iterdir()] == ["model.onnx"]  # no temporary file left behind


def test_atomic_write_replaces_an_existing_file_and_keeps_it_readable_by_others(tmp_path):
    previous = os.umask(0o022)
    try:
        target = tmp_path / "engine.plan"
        target.write_bytes(b"old")
        atomic_write(target, b"new")
    finally:
        os.umask(previous)
    assert target.read_bytes() == b"new"
    assert target.stat().st_mode & stat.S_IROTH
