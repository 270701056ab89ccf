"""Datasets that ship with the package's dependencies (no downloads)."""
