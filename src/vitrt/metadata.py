"""Deployment metadata that travels with every artifact.

The exporter writes it into the ONNX file's `metadata_props` (keys `vitrt.<field>`, JSON values), the engine
builder copies it into the engine manifest, and the server, parity checker and Triton exporter read it back for
preprocessing, labels and names. One dataclass so every stage agrees on the keys.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields
from typing import Any

PREFIX = "vitrt."


@dataclass
class ModelMetadata:
    model: str
    family: str
    backbone: str = ""
    input_size: tuple[int, int, int] = (3, 224, 224)
    mean: tuple[float, float, float] = (0.485, 0.456, 0.406)
    std: tuple[float, float, float] = (0.229, 0.224, 0.225)
    interpolation: str = "bicubic"
    crop_pct: float = 0.875
    num_classes: int = 1000
    labels: list[str] | None = None
    vitrt_version: str = ""
    # Filled in by the exporter.
    flavour: str | None = None
    opset: int | None = None
    op_versions: dict[str, str] = field(default_factory=dict)
    input_name: str = "input"
    output_name: str = "logits"
    batch: str = "dynamic"
    checkpoint_sha256: str | None = None
    # Where the weights came from: "checkpoint" (checkpoint_sha256 is the file's), "bundled" (the package's trained
    # demo weights; checkpoint_sha256 is that file's) or "random" (initialised with torch.manual_seed(weights_seed)).
    # `vitrt parity` uses it to compare against the same weights, or refuses.
    weights: str | None = None
    weights_seed: int | None = None

    def to_props(self) -> dict[str, str]:
        """`metadata_props` entries: every field as `vitrt.<name>` -> JSON."""
        return {PREFIX + k: json.dumps(v) for k, v in asdict(self).items()}

    @classmethod
    def from_props(cls, props: dict[str, str]) -> ModelMetadata:
        """Inverse of `to_props`; unknown keys are ignored so newer files still load."""
        known = {f.name for f in fields(cls)}
        values: dict[str, Any] = {}
        for key, raw in props.items():
            if not key.startswith(PREFIX):
                continue
            name = key[len(PREFIX) :]
            if name in known:
                values[name] = json.loads(raw)
        for tup in ("input_size", "mean", "std"):
            if tup in values and values[tup] is not None:
                values[tup] = tuple(values[tup])
        return cls(**values)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ModelMetadata:
        known = {f.name for f in fields(cls)}
        values = {k: v for k, v in data.items() if k in known}
        for tup in ("input_size", "mean", "std"):
            if tup in values and values[tup] is not None:
                values[tup] = tuple(values[tup])
        return cls(**values)

    @property
    def image_size(self) -> tuple[int, int]:
        return self.input_size[1], self.input_size[2]
