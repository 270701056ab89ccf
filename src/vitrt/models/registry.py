"""The model registry: every zoo name, its family, builder and deployment defaults.

Family modules (`flatten.py`, `agent.py`, ...) call `register_model` at import time. Each name is also registered in
timm's registry, so `timm.create_model(name)` works once `vitrt.models` is imported.
"""

from __future__ import annotations

import sys
import types
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import partial
from typing import TYPE_CHECKING, Any, NamedTuple

from vitrt.errors import ModelNotFoundError

if TYPE_CHECKING:
    from torch import nn

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

FAMILIES = ("flatten", "agent", "inline", "mlla", "ca")


@dataclass(frozen=True)
class ModelSpec:
    """What vitrt knows about one zoo model.

    `builder(img_size=..., num_classes=..., **kwargs)` returns a randomly initialised model in eval-ready form.
    `expected_params_m` is the analytic count from the spec at `default_img_size` (millions), checked by tests.
    """

    name: str
    family: str
    backbone: str
    builder: Callable[..., nn.Module]
    default_img_size: int
    official_name: str = ""
    expected_params_m: float | None = None
    num_classes: int = 1000
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD
    interpolation: str = "bicubic"
    # Fraction of the resized image kept by the centre crop (224/256 for the official eval; 1.0 = no crop).
    crop_pct: float = 0.875
    # File name inside vitrt/models/weights/ for models whose trained weights ship with the package.
    demo_weights: str | None = None
    labels: tuple[str, ...] | None = None
    builder_kwargs: dict[str, Any] = field(default_factory=dict)

    @property
    def has_weights(self) -> bool:
        return self.demo_weights is not None


_REGISTRY: dict[str, ModelSpec] = {}


def register_model(spec: ModelSpec) -> ModelSpec:
    """Add `spec` to the vitrt registry and to timm's."""
    if spec.family not in FAMILIES:
        raise ValueError(f"unknown family {spec.family!r} for {spec.name}")
    if spec.name in _REGISTRY:
        raise ValueError(f"model {spec.name!r} registered twice")
    _REGISTRY[spec.name] = spec
    _register_in_timm(spec)
    return spec


class Variant(NamedTuple):
    """One released model of a family table: `arch` are the builder kwargs that define it."""

    official_name: str
    params_m: float
    arch: dict[str, Any]
    img_size: int = 224


def register_variants(
    family: str,
    backbone: str,
    build: Callable[..., nn.Module],
    variants: Mapping[str, Variant],
    *,
    pass_name: bool = False,
) -> None:
    """Register every `variants` entry as a model built by `build` with its `arch` (caller kwargs override them).

    `pass_name` also gives `build` the zoo name as `name=` (the PVT and CSwin backbones use it in error messages).
    """
    for name, variant in variants.items():
        arch = {"name": name, **variant.arch} if pass_name else variant.arch
        register_model(
            ModelSpec(
                name=name,
                family=family,
                backbone=backbone,
                builder=partial(build, **arch),
                default_img_size=variant.img_size,
                official_name=variant.official_name,
                expected_params_m=variant.params_m,
            )
        )


def get_spec(name: str) -> ModelSpec:
    _ensure_families_imported()
    try:
        return _REGISTRY[name]
    except KeyError:
        close = [n for n in _REGISTRY if name.split("_")[0] in n][:5]
        hint = f" (did you mean: {', '.join(close)}?)" if close else ""
        raise ModelNotFoundError(f"unknown model {name!r}{hint}; `vitrt models` lists them") from None


def list_models(family: str | None = None, with_weights: bool | None = None) -> list[str]:
    """Names of registered models, optionally filtered by family or by shipped trained weights."""
    _ensure_families_imported()
    names = []
    for name, spec in _REGISTRY.items():
        if family is not None and spec.family != family:
            continue
        if with_weights is not None and spec.has_weights != with_weights:
            continue
        names.append(name)
    return sorted(names)


def _ensure_families_imported() -> None:
    import vitrt.models  # noqa: F401  (importing the package registers every family)


def _register_in_timm(spec: ModelSpec) -> None:
    """Expose `spec` as a timm entrypoint of the same name."""
    from timm.models import register_model as timm_register

    def entrypoint(pretrained: bool = False, **kwargs: Any) -> nn.Module:
        from vitrt.models import create_model

        for key in ("pretrained_cfg", "pretrained_cfg_overlay", "cache_dir"):
            kwargs.pop(key, None)
        if pretrained and not spec.has_weights:
            raise ModelNotFoundError(
                f"{spec.name} has no bundled weights; pass checkpoint=PATH to vitrt.models.create_model"
            )
        return create_model(spec.name, pretrained=pretrained, **kwargs)

    entrypoint.__name__ = spec.name
    entrypoint.__qualname__ = spec.name
    # timm keys its registry on the defining module; one synthetic module per family keeps them grouped.
    module_name = f"vitrt.models.timm_entrypoints.{spec.family}"
    if module_name not in sys.modules:
        sys.modules[module_name] = types.ModuleType(module_name)
    entrypoint.__module__ = module_name
    timm_register(entrypoint)
