"""Scale-out to NVIDIA Triton Inference Server: model repositories for vitrt ONNX files and TensorRT engines.

>>> from vitrt.triton import RepositoryOptions, build_repository
>>> report = build_repository(["agent_digits.onnx"], "repo", RepositoryOptions(max_batch_size=16))
>>> print(report.commands["docker"])
"""

from vitrt.triton.artifacts import Artifact, TensorInfo, load_artifact
from vitrt.triton.releases import NoMatchingReleaseError, TritonImage, image_for_onnx, image_for_plan
from vitrt.triton.repository import ModelReport, RepositoryOptions, RepositoryReport, build_repository

__all__ = [
    "Artifact",
    "ModelReport",
    "NoMatchingReleaseError",
    "RepositoryOptions",
    "RepositoryReport",
    "TensorInfo",
    "TritonImage",
    "build_repository",
    "image_for_onnx",
    "image_for_plan",
    "load_artifact",
]
