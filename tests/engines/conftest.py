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
