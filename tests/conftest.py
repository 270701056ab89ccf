"""Suite-wide configuration: hardware-dependent markers skip with an explicit reason."""

from __future__ import annotations

import importlib.util

import pytest


def _cuda_reason() -> str | None:
    try:
        import torch
    except ImportError:
        return "PyTorch is not installed"
    if not torch.cuda.is_available():
        return "no CUDA GPU on this machine (gpu tests run on the device machine)"
    return None


def _tensorrt_reason() -> str | None:
    if importlib.util.find_spec("tensorrt") is None:
        return "TensorRT is not installed (its builder cannot be installed on CPU CI machines)"
    try:
        import tensorrt  # noqa: F401
    except Exception as err:  # a stub package or missing libnvinfer
        return f"TensorRT cannot be imported here ({type(err).__name__})"
    return _cuda_reason()


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    gpu_reason = _cuda_reason() if any("gpu" in item.keywords for item in items) else None
    trt_reason = _tensorrt_reason() if any("tensorrt" in item.keywords for item in items) else None
    for item in items:
        if "gpu" in item.keywords and gpu_reason:
            item.add_marker(pytest.mark.skip(reason=gpu_reason))
        if "tensorrt" in item.keywords and trt_reason:
            item.add_marker(pytest.mark.skip(reason=trt_reason))
