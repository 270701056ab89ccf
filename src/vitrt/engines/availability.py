"""Which runtimes can run here, checked without importing more than needed."""

from __future__ import annotations

import importlib.util
from functools import cache
from types import ModuleType

from vitrt.errors import BackendUnavailableError


def tensorrt_problem() -> str | None:
    """Why TensorRT cannot run in this process, or None when it can."""
    if importlib.util.find_spec("tensorrt") is None:
        return "TensorRT is not installed (pip install 'vitrt[tensorrt]' on a machine with an NVIDIA GPU)"
    try:
        import tensorrt
    except Exception as err:  # a broken install: missing libnvinfer, wrong CUDA
        return f"TensorRT cannot be imported ({type(err).__name__}: {' '.join(str(err).split())[:160]})"
    if not hasattr(tensorrt, "Builder"):  # only type stubs (tensorrt-stubs) are installed
        return "TensorRT is not installed (only its type stubs are; pip install 'vitrt[tensorrt]')"
    return cuda_problem()


def cuda_problem() -> str | None:
    """Why no CUDA GPU is usable, or None when one is."""
    if importlib.util.find_spec("torch") is None:  # the core install is torch-free: a reason, not an ImportError
        return "PyTorch is not installed (vitrt drives CUDA through it: pip install 'vitrt[models]')"
    import torch

    if not torch.cuda.is_available():
        return "no CUDA GPU is visible to this process (torch.cuda.is_available() is False)"
    return None


def require_tensorrt() -> ModuleType:
    """The `tensorrt` module, or BackendUnavailableError with a one-line reason."""
    problem = tensorrt_problem()
    if problem is not None:
        raise BackendUnavailableError(problem)
    import tensorrt

    return tensorrt


@cache
def onnxruntime_providers() -> tuple[str, ...]:
    """Execution providers of the installed ONNX Runtime build."""
    import onnxruntime as ort

    return tuple(ort.get_available_providers())


def cuda_available() -> bool:
    return cuda_problem() is None
