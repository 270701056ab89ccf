"""Check every `vitrt` node of an ONNX graph against its op contract (plugins/<op>/<op>.yaml, `vitrt.ops.spec`).

A hand-edited or corrupted node (a changed `num_heads`, a missing attribute) otherwise surfaces far from its cause,
as an ONNX Runtime shape error inside the function body or as a TensorRT plugin failure. `check_vitrt_nodes` runs
when an artifact is loaded (ONNX Runtime backend, so also `vitrt serve` and `vitrt parity`) and planned for a
TensorRT build (including `vitrt build --dry-run`), and names the node and the attribute in its message.
"""

from __future__ import annotations

import ast
import operator
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from vitrt.errors import ArtifactError

if TYPE_CHECKING:
    import onnx

VITRT_DOMAIN = "vitrt"
# Attributes that tell TensorRT which plugin creator to use; not part of the op's numerics contract.
_PLUGIN_ATTRIBUTES = {"plugin_version", "plugin_namespace"}
# Shape symbols of the op specs that stand for an attribute (`h` is the number of heads).
_ATTRIBUTE_SYMBOLS = {"h": "num_heads"}
_OPERATORS: dict[type, Callable[[Any, Any], Any]] = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
    ast.FloorDiv: operator.floordiv,
    ast.Mod: operator.mod,
    ast.Eq: operator.eq,
    ast.NotEq: operator.ne,
}


class NodeSpecError(ArtifactError):
    """A `vitrt` node that does not satisfy its op contract."""


def check_vitrt_nodes(model: onnx.ModelProto, source: str | Path = "model") -> int:
    """Raise NodeSpecError for the first `vitrt` node that breaks its contract; returns how many were checked."""
    from onnx import helper

    from vitrt.ops.spec import load_op_specs

    nodes = [node for node in model.graph.node if node.domain == VITRT_DOMAIN]
    if not nodes:
        return 0
    specs = load_op_specs()
    shapes = _known_shapes(model)
    where = Path(source).name
    bodies = {f.name for f in model.functions if f.domain == VITRT_DOMAIN}
    for node in nodes:
        label = f"{where}: node {node.name or '(unnamed)'!r} ({node.op_type})"
        spec = specs.get(node.op_type)
        if spec is None:
            if node.op_type in bodies:
                # An op this vitrt has no spec for (a newer export, a user op) still runs through its own body.
                continue
            raise NodeSpecError(f"{label}: unknown vitrt op with no function body; known: {', '.join(sorted(specs))}")
        values = {a.name: helper.get_attribute_value(a) for a in node.attribute if a.name not in _PLUGIN_ATTRIBUTES}
        for name, value in values.items():
            if name not in spec.attribute_names:
                raise NodeSpecError(
                    f"{label}: unknown attribute {name!r} (the op has {', '.join(spec.attribute_names)})"
                )
            try:
                spec.attribute(name).check(value)
            except ValueError as err:
                raise NodeSpecError(f"{label}: {err}") from None
        missing = [a.name for a in spec.attributes if a.required and a.name not in values]
        if missing:
            raise NodeSpecError(f"{label}: missing required attribute {missing[0]!r}")
        if len(node.input) != len(spec.inputs) or len(node.output) != len(spec.outputs):
            raise NodeSpecError(
                f"{label}: has {len(node.input)} inputs and {len(node.output)} outputs; the op takes "
                f"{len(spec.inputs)} ({', '.join(spec.input_names)}) and gives {len(spec.outputs)}"
            )
        symbols: dict[str, Any] = {a.name: a.default for a in spec.attributes if a.default is not None}
        symbols.update(values)
        for tensor, declared in zip(node.input, spec.inputs, strict=True):
            shape = shapes.get(tensor)
            if shape is None:
                continue
            expected = declared.get("shape") or []
            if expected and len(shape) != len(expected):
                raise NodeSpecError(
                    f"{label}: input {declared['name']!r} has rank {len(shape)}, the op expects {len(expected)} "
                    f"{list(expected)}"
                )
            for axis, (symbol, dim) in enumerate(zip(expected, shape, strict=False)):
                if not isinstance(symbol, str) or dim is None:
                    continue
                name = _ATTRIBUTE_SYMBOLS.get(symbol, symbol)
                if symbols.get(name) is not None and symbols[name] != dim:
                    raise NodeSpecError(
                        f"{label}: input {declared['name']!r} has {dim} at axis {axis} ({symbol}), but {name}="
                        f"{symbols[name]}"
                    )
                symbols[name] = dim
        for constraint in _constraints(spec.path):
            verdict = _evaluate(constraint, symbols)
            if verdict is False:
                bound = ", ".join(f"{k}={v}" for k, v in sorted(symbols.items()) if k in constraint)
                raise NodeSpecError(f"{label}: violates {constraint} ({bound})")
    return len(nodes)


def _known_shapes(model: onnx.ModelProto) -> dict[str, list[int | None]]:
    """Shapes of the graph's tensors from ONNX shape inference (vitrt functions included), where it knows them."""
    import onnx
    from onnx import shape_inference

    try:
        inferred = shape_inference.infer_shapes(model, check_type=False, strict_mode=False, data_prop=True)
    except Exception:  # a graph ONNX cannot infer: ranks and constraints are then left unchecked
        inferred = model
    shapes: dict[str, list[int | None]] = {}
    graph = inferred.graph
    for info in [*graph.value_info, *graph.input, *graph.output]:
        kind = info.type.tensor_type
        if kind.HasField("shape"):
            shapes[info.name] = [d.dim_value if d.HasField("dim_value") else None for d in kind.shape.dim]
    for init in graph.initializer:
        shapes[init.name] = list(init.dims)
    for node in graph.node:
        if node.op_type == "Constant" and node.domain in ("", "ai.onnx"):
            for attr in node.attribute:
                if attr.name == "value":
                    shapes[node.output[0]] = list(onnx.numpy_helper.to_array(attr.t).shape)
    return shapes


def _constraints(spec_path: Path) -> list[str]:
    import yaml

    raw = yaml.safe_load(spec_path.read_text())
    return [str(c) for c in raw.get("constraints", [])]


def _evaluate(expression: str, symbols: dict[str, Any]) -> bool | None:
    """A constraint like `C % num_heads == 0`; None when a symbol is unknown (a dynamic dimension)."""

    def value(node: ast.AST) -> Any:
        if isinstance(node, ast.Expression):
            return value(node.body)
        if isinstance(node, ast.Constant) and isinstance(node.value, int | float):
            return node.value
        if isinstance(node, ast.Name):
            if node.id not in symbols or symbols[node.id] is None:
                raise LookupError(node.id)
            return symbols[node.id]
        if isinstance(node, ast.BinOp) and type(node.op) in _OPERATORS:
            left, right = value(node.left), value(node.right)
            if isinstance(node.op, ast.Div | ast.Mod | ast.FloorDiv) and right == 0:
                return float("nan")
            return _OPERATORS[type(node.op)](left, right)
        if isinstance(node, ast.Compare) and len(node.ops) == 1 and type(node.ops[0]) in _OPERATORS:
            return _OPERATORS[type(node.ops[0])](value(node.left), value(node.comparators[0]))
        raise ValueError(f"unsupported constraint syntax in {expression!r}")

    try:
        return bool(value(ast.parse(expression, mode="eval")))
    except LookupError:
        return None
