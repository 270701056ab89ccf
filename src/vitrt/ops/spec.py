"""Per-op contracts read from the YAML files beside each plugin (`plugins/<op>/<op>.yaml`).

The same file drives the PyTorch custom-op schema, the ONNX node attributes, the TensorRT creator's field list and
the kernel tests' shapes and tolerances, so the implementations cannot drift apart silently.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import yaml

# Directory names under plugins/, in a stable order.
OP_DIRS = (
    "circulant_attention",
    "focused_linear_attention",
    "agent_attention",
    "inline_attention",
    "mlla_linear_attention",
)


@dataclass(frozen=True)
class AttributeSpec:
    name: str
    type: str  # "int" or "float"
    required: bool
    default: int | float | None
    min: float | None
    max: float | None
    options: tuple[int, ...] | None
    description: str

    def check(self, value: Any) -> None:
        """Raise ValueError when `value` is not allowed for this attribute."""
        kind = int if self.type == "int" else float
        if self.type == "int" and (isinstance(value, bool) or not isinstance(value, int)):
            raise ValueError(f"attribute {self.name} must be an int, got {value!r}")
        if self.type == "float" and not isinstance(value, int | float):
            raise ValueError(f"attribute {self.name} must be a float, got {value!r}")
        value = kind(value)
        if self.min is not None and value < self.min:
            raise ValueError(f"attribute {self.name}={value} is below its minimum {self.min}")
        if self.max is not None and value > self.max:
            raise ValueError(f"attribute {self.name}={value} is above its maximum {self.max}")
        if self.options is not None and value not in self.options:
            raise ValueError(f"attribute {self.name}={value} is not one of {list(self.options)}")


@dataclass(frozen=True)
class OpSpec:
    name: str  # ONNX op_type and TensorRT plugin name
    directory: str  # folder under plugins/
    torch_op: str
    domain: str
    plugin_namespace: str
    plugin_version: str
    family: str
    summary: str
    inputs: tuple[dict[str, Any], ...]
    outputs: tuple[dict[str, Any], ...]
    attributes: tuple[AttributeSpec, ...]
    dtypes: tuple[str, ...]
    tolerances: dict[str, dict[str, float]]
    test_configs: tuple[dict[str, Any], ...]
    path: Path

    @property
    def input_names(self) -> list[str]:
        return [i["name"] for i in self.inputs]

    @property
    def attribute_names(self) -> list[str]:
        return [a.name for a in self.attributes]

    def attribute(self, name: str) -> AttributeSpec:
        for attr in self.attributes:
            if attr.name == name:
                return attr
        raise KeyError(f"{self.name} has no attribute {name!r}")

    def resolve_attributes(self, values: dict[str, Any]) -> dict[str, int | float]:
        """Validate `values` against the spec and fill defaults; returns every declared attribute."""
        unknown = set(values) - set(self.attribute_names)
        if unknown:
            raise ValueError(f"{self.name}: unknown attributes {sorted(unknown)}")
        resolved: dict[str, int | float] = {}
        for attr in self.attributes:
            if attr.name in values:
                attr.check(values[attr.name])
                raw = values[attr.name]
                resolved[attr.name] = int(raw) if attr.type == "int" else float(raw)
            elif attr.required:
                raise ValueError(f"{self.name}: attribute {attr.name} is required")
            else:
                assert attr.default is not None
                resolved[attr.name] = attr.default
        return resolved

    def tolerance(self, dtype: str) -> tuple[float, float]:
        tol = self.tolerances[dtype]
        return float(tol["atol"]), float(tol["rtol"])


# Where a wheel carries `plugins/` (pyproject's force-include); `vitrt triton-env` copies it there too.
PLUGINS_PACKAGE_DIR = "_plugins_src"


def plugins_source_dir() -> Path:
    """The plugin source tree: shipped inside the wheel, or `plugins/` of a source checkout."""
    package_dir = Path(__file__).resolve().parents[1]
    for candidate in (package_dir / PLUGINS_PACKAGE_DIR, package_dir.parents[1] / "plugins"):
        if (candidate / OP_DIRS[0]).is_dir():
            return candidate
    raise FileNotFoundError("vitrt plugin sources not found (expected vitrt/_plugins_src or ./plugins)")


def _parse(path: Path, directory: str) -> OpSpec:
    raw = yaml.safe_load(path.read_text())
    attrs = tuple(
        AttributeSpec(
            name=name,
            type=a["type"],
            required=bool(a.get("required", False)),
            default=a.get("default"),
            min=None if a.get("min") is None else float(a["min"]),
            max=None if a.get("max") is None else float(a["max"]),
            options=tuple(a["options"]) if "options" in a else None,
            description=a.get("description", ""),
        )
        for name, a in raw["attributes"].items()
    )
    return OpSpec(
        name=raw["name"],
        directory=directory,
        torch_op=raw["torch_op"],
        domain=raw["domain"],
        plugin_namespace=raw["plugin_namespace"],
        plugin_version=str(raw["plugin_version"]),
        family=raw["family"],
        summary=" ".join(raw.get("summary", "").split()),
        inputs=tuple(raw["inputs"]),
        outputs=tuple(raw["outputs"]),
        attributes=attrs,
        dtypes=tuple(raw["dtypes"]),
        tolerances={k: {t: float(x) for t, x in v.items()} for k, v in raw["tolerances"].items()},
        test_configs=tuple(raw.get("test_configs", ())),
        path=path,
    )


@cache
def load_op_specs() -> dict[str, OpSpec]:
    """All op contracts keyed by ONNX op_type."""
    root = plugins_source_dir()
    specs = {}
    for directory in OP_DIRS:
        spec = _parse(root / directory / f"{directory}.yaml", directory)
        specs[spec.name] = spec
    return specs


def op_spec(name: str) -> OpSpec:
    """Look up an op by ONNX op_type (`VitrtAgentAttention`) or directory name (`agent_attention`)."""
    specs = load_op_specs()
    if name in specs:
        return specs[name]
    for spec in specs.values():
        if spec.directory == name:
            return spec
    raise KeyError(f"unknown vitrt op {name!r}")
