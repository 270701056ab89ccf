"""The vitrt model zoo: faithful re-implementations of the FLatten, Agent, InLine, MLLA and Circulant-attention
families that load the official checkpoints strictly.

    >>> from vitrt.models import create_model, list_models
    >>> model = create_model("agent_digits")            # trained demo weights shipped with the package
    >>> model = create_model("agent_swin_t", checkpoint="agent_swin_t.pth")
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

from vitrt.errors import ModelConfigError
from vitrt.metadata import ModelMetadata
from vitrt.models.checkpoint import LoadReport, load_checkpoint
from vitrt.models.registry import ModelSpec, get_spec, list_models, register_model

if TYPE_CHECKING:
    from torch import nn

# Importing the family modules registers their models.
from vitrt.models import agent, circulant, flatten, inline, mlla  # noqa: F401

__all__ = [
    "LoadReport",
    "ModelSpec",
    "create_model",
    "demo_weights_path",
    "get_spec",
    "list_models",
    "load_checkpoint",
    "model_metadata",
    "register_model",
]


RANDOM_WEIGHTS_SEED = 0


def demo_weights_path(spec: ModelSpec) -> Path:
    """Path of the trained weights shipped inside the package for a `*_digits` model."""
    if spec.demo_weights is None:
        raise ModelConfigError(f"{spec.name} has no bundled weights")
    return Path(str(resources.files("vitrt.models") / "weights" / spec.demo_weights))


def model_metadata(spec: ModelSpec, img_size: int, num_classes: int) -> ModelMetadata:
    from vitrt import __version__

    labels = list(spec.labels) if spec.labels is not None and num_classes == spec.num_classes else None
    return ModelMetadata(
        model=spec.name,
        family=spec.family,
        backbone=spec.backbone,
        input_size=(3, img_size, img_size),
        mean=spec.mean,
        std=spec.std,
        interpolation=spec.interpolation,
        crop_pct=spec.crop_pct,
        num_classes=num_classes,
        labels=labels,
        vitrt_version=__version__,
    )


def create_model(
    name: str,
    checkpoint: str | Path | None = None,
    img_size: int | None = None,
    num_classes: int | None = None,
    *,
    pretrained: bool | None = None,
    trust_checkpoint: bool = False,
    seed: int | None = None,
    **kwargs: Any,
) -> nn.Module:
    """Build a zoo model in eval mode.

    Args:
        name: a name from `list_models()`.
        checkpoint: an official checkpoint file (`.pth`/`.pt`/`.safetensors`), loaded strictly; resolution-tied
            parameters are interpolated when `img_size` differs from the checkpoint's.
        img_size: input resolution (square); defaults to the model's.
        num_classes: classifier width; defaults to the model's (1000, or 10 for the demo models).
        pretrained: load the trained weights shipped with the package. Defaults to True for models that have
            them (the `*_digits` demo models) when no checkpoint is given.
        trust_checkpoint: allow full unpickling of the checkpoint (only for files you trust).
        seed: torch seed of the initial (random) weights; default RANDOM_WEIGHTS_SEED. Recorded in the metadata.
        **kwargs: architecture overrides passed to the builder (e.g. `drop_path_rate`).
    """
    spec = get_spec(name)
    size = spec.default_img_size if img_size is None else int(img_size)
    classes = spec.num_classes if num_classes is None else int(num_classes)
    if size <= 0 or classes <= 0:
        raise ModelConfigError(f"{name}: img_size and num_classes must be positive (got {size}, {classes})")
    import torch

    from vitrt.files import sha256_file

    if pretrained is None:
        pretrained = spec.has_weights and checkpoint is None
    # The initial weights come from a fixed seed, so that "random weights, seed N" names one set of weights that
    # `vitrt parity` can rebuild; the caller's global RNG state is left as it was.
    init_seed = RANDOM_WEIGHTS_SEED if seed is None else int(seed)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(init_seed)
        model = spec.builder(img_size=size, num_classes=classes, **{**spec.builder_kwargs, **kwargs})
    metadata = model_metadata(spec, size, classes)
    metadata.weights, metadata.weights_seed = "random", init_seed
    if pretrained:
        load_checkpoint(model, demo_weights_path(spec))
        metadata.weights, metadata.weights_seed = "bundled", None
        metadata.checkpoint_sha256 = sha256_file(demo_weights_path(spec))
    if checkpoint is not None:
        load_checkpoint(model, checkpoint, trust=trust_checkpoint)
        metadata.weights, metadata.weights_seed = "checkpoint", None
        metadata.checkpoint_sha256 = sha256_file(checkpoint) if isinstance(checkpoint, str | Path) else None
    model.eval()
    model.vitrt_metadata = metadata  # type: ignore[assignment]
    return model
