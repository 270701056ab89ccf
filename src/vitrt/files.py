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


def current_umask() -> int:
    """The process umask, read without changing it where the OS allows (Linux), else by setting and restoring it."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def atomic_write(path: Path, data: bytes) -> None:
    """Write through a temporary file and a rename, so a crash never leaves a truncated file at `path`.

    The file gets the permissions `open()` would give it (0666 minus the umask), not mkstemp's private 0600, so a
    container or Triton running as another user can read what vitrt wrote.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        os.fchmod(fd, 0o666 & ~current_umask())
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
