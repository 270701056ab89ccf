"""PyTorch backend: a zoo model, a `*_digits` demo model or an official checkpoint, run eagerly.

The reference every other backend is compared against (`vitrt parity`). Options: device selection, a compute
dtype, `torch.compile`, and the vitrt CUDA attention kernels (`vitrt.ops.use_implementation("cuda")`).

Thread-safety: eager inference under `torch.inference_mode()` does not mutate the module, so `run` may be called
from several threads at once; compiled models and CUDA kernels serialise calls behind a lock.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Mapping
from contextlib import AbstractContextManager, nullcontext
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from vitrt.engines.base import InferenceBackend, TensorSpec
from vitrt.errors import ArtifactError, BackendUnavailableError
from vitrt.files import CHECKPOINT_SUFFIXES
from vitrt.metadata import ModelMetadata

if TYPE_CHECKING:
    from torch import nn

log = logging.getLogger(__name__)

DTYPES = ("float32", "float16", "bfloat16")
KERNELS = ("reference", "cuda")


def resolve_model(
    source: str | Path | nn.Module,
    *,
    checkpoint: str | Path | None = None,
    arch: str | None = None,
    img_size: int | None = None,
    num_classes: int | None = None,
    trust_checkpoint: bool = False,
    metadata: ModelMetadata | None = None,
    seed: int | None = None,
) -> tuple[nn.Module, ModelMetadata]:
    """Turn a zoo name, a checkpoint file or a module into (eval-mode module, metadata).

    A checkpoint needs its architecture: `arch`, or the `model` field of a `<checkpoint>.json` record next to it
    (what `scripts/train_demo.py` writes).
    """
    from torch import nn

    from vitrt.models import create_model

    if isinstance(source, nn.Module):
        meta = metadata or getattr(source, "vitrt_metadata", None)
        if meta is None:
            raise ArtifactError(
                "a plain nn.Module needs deployment metadata (set model.vitrt_metadata or pass metadata=)"
            )
        return source.eval(), meta
    path = Path(source)
    if path.suffix in CHECKPOINT_SUFFIXES or path.is_file():
        if not path.is_file():
            raise ArtifactError(f"checkpoint not found: {path}")
        if checkpoint is not None:
            raise ArtifactError("pass either a checkpoint as the model or checkpoint=, not both")
        name = arch or _architecture_from_record(path)
        if name is None:
            raise ArtifactError(
                f"cannot tell the architecture of checkpoint {path.name}; pass --arch NAME (arch=) with a zoo name"
            )
        model = create_model(
            name,
            checkpoint=path,
            img_size=img_size,
            num_classes=num_classes,
            trust_checkpoint=trust_checkpoint,
            seed=seed,
        )
    else:
        name = str(source)
        if arch is not None and arch != name:
            raise ArtifactError(f"model {name!r} and arch {arch!r} disagree")
        model = create_model(
            name,
            checkpoint=checkpoint,
            img_size=img_size,
            num_classes=num_classes,
            trust_checkpoint=trust_checkpoint,
            seed=seed,
        )
    return model, metadata or model.vitrt_metadata  # type: ignore[return-value]


class TorchBackend(InferenceBackend):
    name = "torch"

    def __init__(
        self,
        model: str | Path | nn.Module,
        *,
        checkpoint: str | Path | None = None,
        arch: str | None = None,
        device: str = "auto",
        dtype: str = "float32",
        compile: bool = False,
        kernels: str = "reference",
        img_size: int | None = None,
        num_classes: int | None = None,
        trust_checkpoint: bool = False,
        metadata: ModelMetadata | None = None,
        tf32: bool = False,
        seed: int | None = None,
    ) -> None:
        """`tf32`: allow TF32 convolutions on CUDA (PyTorch's default; off here so the FP32 reference is FP32).
        `seed`: torch seed of a zoo model's random initial weights (see `vitrt.models.create_model`)."""
        import torch

        if dtype not in DTYPES:
            raise ArtifactError(f"unknown dtype {dtype!r}; choose from {', '.join(DTYPES)}")
        if kernels not in KERNELS:
            raise ArtifactError(f"unknown kernels {kernels!r}; choose from {', '.join(KERNELS)}")
        self.device = _select_device(device)
        if kernels == "cuda" and not self.device.startswith("cuda"):
            raise BackendUnavailableError("the vitrt CUDA kernels need a CUDA device (device='cuda')")
        module, meta = resolve_model(
            model,
            checkpoint=checkpoint,
            arch=arch,
            img_size=img_size,
            num_classes=num_classes,
            trust_checkpoint=trust_checkpoint,
            metadata=metadata,
            seed=seed,
        )
        self.dtype = dtype
        self.kernels = kernels
        self.torch_dtype = getattr(torch, dtype)
        self.model = module.to(device=self.device, dtype=self.torch_dtype).eval()
        self._forward: Any = torch.compile(self.model) if compile else self.model
        self.compiled = compile
        self.metadata = meta
        self.inputs = [TensorSpec(meta.input_name, "float32", (None, *meta.input_size))]
        self.outputs = [TensorSpec(meta.output_name, "float32", (None, meta.num_classes))]
        self.max_batch_size = None
        self._lock: AbstractContextManager[Any] = threading.Lock() if compile or kernels == "cuda" else nullcontext()
        self.tf32 = tf32

    def describe(self) -> str:
        extras = [self.dtype]
        if self.compiled:
            extras.append("torch.compile")
        if self.kernels == "cuda":
            extras.append("vitrt CUDA kernels")
        return f"torch on {self.device} ({', '.join(extras)})"

    def run(self, feeds: Mapping[str, np.ndarray], output_names: list[str] | None = None) -> dict[str, np.ndarray]:
        import torch

        from vitrt.ops import use_implementation

        x = torch.from_numpy(np.ascontiguousarray(feeds[self.inputs[0].name]))
        x = x.to(device=self.device, dtype=self.torch_dtype)
        precise = nullcontext() if self.tf32 or not self.device.startswith("cuda") else _no_tf32_convolutions()
        with self._lock, precise, torch.inference_mode(), use_implementation(self.kernels):
            out = self._forward(x)
        if isinstance(out, tuple | list):
            out = out[0]
        logits = out.float().cpu().numpy()
        name = self.outputs[0].name
        if output_names is not None and any(n != name for n in output_names):
            raise ArtifactError(f"unknown output {output_names!r}; the torch backend has {name!r}")
        return {name: logits}

    def close(self) -> None:
        self.model = None  # type: ignore[assignment]
        self._forward = None


def _no_tf32_convolutions() -> AbstractContextManager[Any]:
    """cuDNN's current settings with TF32 off, restored afterwards."""
    import torch

    cudnn = torch.backends.cudnn
    return cudnn.flags(
        enabled=cudnn.enabled, benchmark=cudnn.benchmark, deterministic=cudnn.deterministic, allow_tf32=False
    )


def _select_device(device: str) -> str:
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise BackendUnavailableError(f"device {device!r} requested but no CUDA GPU is visible")
    if device != "cpu" and not device.startswith("cuda"):
        raise ArtifactError(f"unknown device {device!r} (cpu, cuda, cuda:N or auto)")
    return device


def _architecture_from_record(path: Path) -> str | None:
    for record in (path.with_name(path.name + ".json"), path.with_suffix(".json")):
        if record.is_file():
            try:
                name = json.loads(record.read_text()).get("model")
            except (OSError, ValueError, AttributeError):
                continue
            if isinstance(name, str):
                return name
    return None
