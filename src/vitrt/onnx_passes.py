"""ONNX graph passes on the vitrt nodes, shared by export, the engine builder and every runtime backend.

A lower floor: it imports only `vitrt.errors` and `vitrt.ops.spec`, so `vitrt.export` and `vitrt.engines` both
use it without importing each other.

* `inline_functions(model)`: the one inliner. Each `vitrt` node is replaced, in memory, by its model-local
  function body (nodes named `<call node>/<body node>`, so errors and layer names point at the call), then the
  graph is constant-folded (`fold_constants`). Returns the model and, for each inlined node, the call it came from.
* `strip_functions(model)`: vitrt nodes without bodies (the `tensorrt` flavour), plugin fields filled in.
* `fold_constants(model)`: constant folding, dead-node removal and common-subexpression elimination that never
  folds, removes or inlines a vitrt node.
"""

from __future__ import annotations

import copy
from collections import Counter
from typing import TYPE_CHECKING, NamedTuple

from vitrt.errors import ArtifactError, VitrtError

if TYPE_CHECKING:
    import onnx

__all__ = [
    "VITRT_DOMAIN",
    "Inlined",
    "ensure_node_names",
    "fold_constants",
    "inline_functions",
    "set_opset",
    "strip_functions",
    "vitrt_nodes",
    "vitrt_op_counts",
]

VITRT_DOMAIN = "vitrt"


class Inlined(NamedTuple):
    """The inlined model and, per node that came from a vitrt body, the name of the vitrt call node."""

    model: onnx.ModelProto
    origin: dict[str, str]


def vitrt_nodes(model: onnx.ModelProto) -> list[onnx.NodeProto]:
    """Top-level nodes in the vitrt domain (the attention ops)."""
    return [node for node in model.graph.node if node.domain == VITRT_DOMAIN]


def vitrt_op_counts(model: onnx.ModelProto) -> dict[str, int]:
    return dict(sorted(Counter(node.op_type for node in vitrt_nodes(model)).items()))


def ensure_node_names(model: onnx.ModelProto) -> None:
    """Give every unnamed or duplicate-named top-level node a unique name, in place.

    TensorRT names layers and reports errors by ONNX node name, and the precision pass keys on it.
    """
    seen: set[str] = set()
    for index, node in enumerate(model.graph.node):
        if not node.name or node.name in seen:
            base = node.name or f"{node.op_type}_{index}"
            name, suffix = base, 0
            while name in seen:
                suffix += 1
                name = f"{base}_{suffix}"
            node.name = name
        seen.add(node.name)


def set_opset(model: onnx.ModelProto, domain: str, version: int, *, only_if_used: bool) -> None:
    """Import `domain` at `version` (dropped when `only_if_used` and no top-level node uses it)."""
    from onnx import helper

    used = any(node.domain == domain for node in model.graph.node)
    entries = [e for e in model.opset_import if e.domain != domain]
    if used or not only_if_used:
        entries.append(helper.make_opsetid(domain, version))
    del model.opset_import[:]
    model.opset_import.extend(entries)


def strip_functions(model: onnx.ModelProto) -> onnx.ModelProto:
    """A copy whose vitrt nodes have no function bodies, so TensorRT can only resolve them to plugins.

    Each vitrt node keeps (or gets, from its op contract) `plugin_namespace` and `plugin_version`; the presence of
    `plugin_namespace` makes TensorRT >= 10.15 look the plugin up first (deploy spec §0.A).
    """
    from onnx import helper

    from vitrt.ops.spec import load_op_specs

    out = copy.deepcopy(model)
    specs = load_op_specs()
    for node in vitrt_nodes(out):
        attrs = {a.name for a in node.attribute}
        spec = specs.get(node.op_type)
        if "plugin_namespace" not in attrs:
            node.attribute.append(helper.make_attribute("plugin_namespace", spec.plugin_namespace if spec else "vitrt"))
        if "plugin_version" not in attrs:
            node.attribute.append(helper.make_attribute("plugin_version", spec.plugin_version if spec else "1"))
    kept = [f for f in out.functions if f.domain != VITRT_DOMAIN]
    del out.functions[:]
    out.functions.extend(kept)
    return out


def inline_functions(model: onnx.ModelProto, *, fold: bool = True) -> Inlined:
    """Every vitrt node replaced by its function body, then (with `fold`) constant-folded; `model` is unchanged.

    Body nodes are named `<call node>/<body node>`; `Inlined.origin` maps each surviving inlined node to its call.
    A vitrt node without a body (a `tensorrt`-flavour file) is refused with a one-line reason.
    """
    from onnx import inliner

    out = copy.deepcopy(model)
    ensure_node_names(out)
    functions = {(f.domain, f.name): f for f in out.functions}
    clones: list[onnx.FunctionProto] = []
    for node in out.graph.node:
        if node.domain != VITRT_DOMAIN:
            continue
        function = functions.get((node.domain, node.op_type))
        if function is None:
            raise ArtifactError(
                f"vitrt node {node.name!r} ({node.op_type}) has no function body to inline; this ONNX file needs "
                "the vitrt plugin library (it is the tensorrt flavour)"
            )
        # One clone per call, so the body nodes of each call get their own names.
        clone = copy.deepcopy(function)
        clone.name = f"{function.name}__{len(clones)}"
        for body_node in clone.node:
            body_node.name = f"{node.name}/{body_node.name or body_node.op_type}"
        node.op_type = clone.name
        clones.append(clone)
    out.functions.extend(clones)
    call_names = {n.name for n in out.graph.node if n.domain == VITRT_DOMAIN}
    inlined = inliner.inline_local_functions(out)
    kept = [f for f in inlined.functions if f.domain != VITRT_DOMAIN]
    del inlined.functions[:]
    inlined.functions.extend(kept)
    set_opset(inlined, VITRT_DOMAIN, 1, only_if_used=True)
    if fold:
        inlined = fold_constants(inlined)
    # Call names may contain "/" themselves (TorchScript-style scopes): match the longest call-name prefix.
    by_length = sorted(call_names, key=len, reverse=True)
    origin = {}
    for node in inlined.graph.node:
        call = next((c for c in by_length if node.name.startswith(c + "/")), None)
        if call is not None:
            origin[node.name] = call
    return Inlined(inlined, origin)


def fold_constants(model: onnx.ModelProto) -> onnx.ModelProto:
    """Constant folding and simplification that never folds, removes or inlines a vitrt node.

    onnxscript's constant folder (vitrt nodes excluded), dead-node removal and common-subexpression elimination
    (which merges the exporters' repeated Shape/Gather chains, halving a traced Swin graph). The full onnxscript
    optimizer and onnxslim are not used: their rewrite rules take 40-90 s on a Swin-T graph here, and ONNX Runtime
    and TensorRT apply equivalent fusions when they load the file.
    """
    from onnxscript import ir, optimizer
    from onnxscript.ir.passes.common import CommonSubexpressionEliminationPass, RemoveUnusedNodesPass

    before = vitrt_op_counts(model)
    model_ir = ir.serde.deserialize_model(model)
    optimizer.fold_constants_ir(
        model_ir, onnx_shape_inference=False, should_fold=lambda node: False if node.domain == VITRT_DOMAIN else None
    )
    RemoveUnusedNodesPass()(model_ir)
    CommonSubexpressionEliminationPass()(model_ir)
    RemoveUnusedNodesPass()(model_ir)
    optimized = ir.serde.serialize_model(model_ir)
    after = vitrt_op_counts(optimized)
    if before != after:
        raise VitrtError(f"graph cleanup changed the vitrt nodes ({before} -> {after}); this is a vitrt bug")
    set_opset(optimized, VITRT_DOMAIN, 1, only_if_used=True)
    return optimized
