"""Moved to `vitrt.files` (a lower floor shared by export, engines, plugins and triton); kept as an alias."""

from vitrt.files import CACHE_DIR_ENV, CHECKPOINT_SUFFIXES, atomic_write, cache_dir, sha256_file

__all__ = ["CACHE_DIR_ENV", "CHECKPOINT_SUFFIXES", "atomic_write", "cache_dir", "sha256_file"]
