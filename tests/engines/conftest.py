"""Fixtures for the engine and parity tests: a small ViT-like model and its ONNX export."""

from __future__ import annotations

from pathlib import Path

import pytest
from tinyvit import TinyViT, export_onnx, make_tiny_vit


@pytest.fixture(scope="session")
def tiny_vit() -> TinyViT:
    return make_tiny_vit()


@pytest.fixture(scope="session")
def tiny_onnx(tmp_path_factory: pytest.TempPathFactory, tiny_vit: TinyViT) -> Path:
    return export_onnx(tiny_vit, tmp_path_factory.mktemp("tiny") / "tiny_vit.onnx")


@pytest.fixture(scope="session")
def portable(tmp_path_factory: pytest.TempPathFactory):
    """name -> the portable export of a zoo model (random or bundled weights), exported once per session."""
    from vitrt.export import export_model
    from vitrt.models import create_model

    cache: dict[str, Path] = {}

    def get(name: str) -> Path:
        if name not in cache:
            path = tmp_path_factory.mktemp(name) / f"{name}.onnx"
            export_model(create_model(name), path, validate=False)
            cache[name] = path
        return cache[name]

    return get
