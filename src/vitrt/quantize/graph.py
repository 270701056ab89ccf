"""Graph facts the quantizers need: which nodes may be quantized, which block a node belongs to, and the
placement rules a quantized file must satisfy.

The rule that matters most: a `vitrt` attention node stays one node with float inputs and outputs. Its kernel
features, focusing power, agent softmaxes and norm denominators are exactly what generic PTQ breaks, so no
QuantizeLinear/DequantizeLinear may appear in its function body or directly on its inputs. Q/DQ go on the linear
layers (MatMul/Gemm/Conv with a weight initializer) around it.
"""

from __future__ import annotations

import re
from collections import defaultdict
from dataclasses import dataclass
from typing import TYPE_CHECKING

from vitrt.errors import VitrtError

if TYPE_CHECKING:
    import onnx

VITRT_DOMAIN = "vitrt"
WEIGHTED_OPS = ("MatMul", "Gemm", "Conv")
QDQ_OPS = frozenset({"QuantizeLinear", "DequantizeLinear"})
STEM, HEAD = "stem", "head"
_BLOCK_SCOPE = re.compile(r"(?:^|\.)blocks?\d*\.\d+$")


class QuantizeInputError(VitrtError):
    """A model or option that quantization cannot use (no export metadata, an --exclude matching nothing, ...)."""


@dataclass(frozen=True)
class QuantizableNode:
    name: str
    op_type: str
    block: str  # "layers.0.blocks.1", or "stem"/"head" for nodes outside every block


def quantizable_nodes(model: onnx.ModelProto) -> list[QuantizableNode]:
    """Top-level MatMul/Gemm/Conv nodes with a constant (initializer or Constant) weight input, in graph order."""
    from vitrt.engines.onnx_graph import _node_scopes

    constants = {init.name for init in model.graph.initializer}
    constants |= {out for node in model.graph.node if node.op_type == "Constant" for out in node.output}
    nodes = []
    seen_block = False
    for node in model.graph.node:
        if node.domain not in ("", "ai.onnx") or node.op_type not in WEIGHTED_OPS:
            continue
        if len(node.input) < 2 or node.input[1] not in constants:
            continue
        blocks = sorted((s for s in _node_scopes(node) if _BLOCK_SCOPE.search(s)), key=len)
        if blocks:
            seen_block = True
            block = blocks[-1]
        else:
            block = HEAD if seen_block else STEM
        nodes.append(QuantizableNode(node.name, node.op_type, block))
    return nodes


def blocks_in_order(nodes: list[QuantizableNode]) -> list[str]:
    order: list[str] = []
    for node in nodes:
        if node.block not in order:
            order.append(node.block)
    return order


def nodes_by_block(nodes: list[QuantizableNode]) -> dict[str, list[str]]:
    grouped: dict[str, list[str]] = defaultdict(list)
    for node in nodes:
        grouped[node.block].append(node.name)
    return dict(grouped)


def resolve_excludes(model: onnx.ModelProto, patterns: list[str]) -> set[str]:
    """Top-level node names matched (re.search) by each `--exclude` pattern; a pattern matching nothing is an error."""
    names = [node.name for node in model.graph.node]
    excluded: set[str] = set()
    for pattern in patterns:
        try:
            regex = re.compile(pattern)
        except re.error as err:
            raise QuantizeInputError(f"--exclude {pattern!r} is not a valid regular expression ({err})") from None
        hits = {name for name in names if regex.search(name)}
        if not hits:
            raise QuantizeInputError(f"--exclude {pattern!r} matches no node of the model")
        excluded |= hits
    return excluded


def keep_vitrt_inputs_float(model: onnx.ModelProto) -> int:
    """Rewire every vitrt node input that comes out of a DequantizeLinear to the float tensor before its Q/DQ.

    Quantizers share one Q/DQ pair among all consumers of a tensor; when a linear layer and an attention node read
    the same tensor, the attention node would otherwise read quantized values. Returns the number of inputs rewired;
    Q/DQ nodes left without consumers are removed.
    """
    producer = {out: node for node in model.graph.node for out in node.output}
    rewired = 0
    for node in model.graph.node:
        if node.domain != VITRT_DOMAIN:
            continue
        for i, name in enumerate(node.input):
            dq = producer.get(name)
            if dq is None or dq.op_type != "DequantizeLinear":
                continue
            q = producer.get(dq.input[0])
            if q is None or q.op_type != "QuantizeLinear":
                continue
            node.input[i] = q.input[0]
            rewired += 1
    if rewired:
        _remove_dead_qdq(model)
    return rewired


def _remove_dead_qdq(model: onnx.ModelProto) -> None:
    outputs = {o.name for o in model.graph.output}
    while True:
        used = {name for node in model.graph.node for name in node.input} | outputs
        dead = [n for n in model.graph.node if n.op_type in QDQ_OPS and not any(o in used for o in n.output)]
        if not dead:
            return
        for node in dead:
            model.graph.node.remove(node)


def placement_problems(model: onnx.ModelProto, *, symmetric: bool = False) -> list[str]:
    """Violations of the Q/DQ placement rules (empty list = the file is well formed for its target).

    1. no QuantizeLinear/DequantizeLinear inside a vitrt function body, and every vitrt node keeps its body;
    2. no vitrt node input comes from a DequantizeLinear (its I/O stays float);
    3. every quantized weight is per-channel (a 1-D scale) and every activation Q has a scalar scale;
    4. with `symmetric` (TensorRT): every zero point is 0.
    """
    from onnx import numpy_helper

    problems = []
    for function in model.functions:
        if function.domain == VITRT_DOMAIN and any(n.op_type in QDQ_OPS for n in function.node):
            problems.append(f"function body {function.name} contains Q/DQ nodes")
    bodies = {(f.domain, f.name) for f in model.functions}
    producer = {out: node for node in model.graph.node for out in node.output}
    inits = {init.name: init for init in model.graph.initializer}
    for node in model.graph.node:
        if node.domain != VITRT_DOMAIN:
            continue
        if (node.domain, node.op_type) not in bodies:
            problems.append(f"vitrt node {node.name} lost its function body")
        for name in node.input:
            source = producer.get(name)
            if source is not None and source.op_type == "DequantizeLinear":
                problems.append(f"vitrt node {node.name} reads a dequantized input {name}")
    for node in model.graph.node:
        if node.op_type not in QDQ_OPS or len(node.input) < 2:
            continue
        scale = inits.get(node.input[1])
        if scale is None:
            continue
        weight = node.op_type == "DequantizeLinear" and node.input[0] in inits
        if weight and len(scale.dims) != 1:
            problems.append(f"weight {node.input[0]} is quantized per tensor, not per channel")
        if not weight and node.op_type == "QuantizeLinear" and len(scale.dims) != 0:
            problems.append(f"activation {node.input[0]} has a non-scalar scale")
        zero_point = inits.get(node.input[2]) if len(node.input) > 2 else None
        if symmetric and zero_point is not None and numpy_helper.to_array(zero_point).any():
            problems.append(f"{node.name} has a non-zero zero point (TensorRT needs symmetric INT8)")
    return problems


def quantized_node_names(model: onnx.ModelProto) -> set[str]:
    """Weighted nodes whose weight input is dequantized (i.e. that run in INT8)."""
    producer = {out: node for node in model.graph.node for out in node.output}
    names = set()
    for node in model.graph.node:
        if node.op_type in WEIGHTED_OPS and len(node.input) > 1:
            source = producer.get(node.input[1])
            if source is not None and source.op_type == "DequantizeLinear":
                names.add(node.name)
    return names
