"""vitrt: efficient-attention vision transformers from PyTorch checkpoint to production inference.

Importing the package is cheap: torch, onnx, onnxruntime and tensorrt load only in the submodules that need them.
"""

__version__ = "0.1.0"

__all__ = ["__version__"]
