"""File helpers shared across vitrt: content hashes, atomic writes, the per-user cache directory and the
checkpoint suffixes. A lower floor: it imports nothing from vitrt, so export, engines, plugins and triton all
take it without importing each other."""

from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path


def sha256_file(path: str | Path, chunk_size: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(chunk_size):
            digest.update(chunk)
    return digest.hexdigest()


def atomic_write(path: Path, data: bytes) -> None:
    """Write through a temporary file and a rename, so a crash never leaves a truncated file at `path`."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


CACHE_DIR_ENV = "VITRT_CACHE_DIR"
# File suffixes of PyTorch checkpoints (vitrt export reads them; the runtime backends refuse them with a hint).
CHECKPOINT_SUFFIXES = (".pth", ".pt", ".bin", ".safetensors", ".ckpt")


def cache_dir() -> Path:
    """vitrt's user cache directory ($VITRT_CACHE_DIR, else $XDG_CACHE_HOME/vitrt, else ~/.cache/vitrt)."""
    if os.environ.get(CACHE_DIR_ENV):
        return Path(os.environ[CACHE_DIR_ENV])
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "vitrt"
