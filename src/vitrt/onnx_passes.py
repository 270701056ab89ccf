"""ONNX graph passes on the vitrt nodes, shared by export, the engine builder and every runtime backend.

A lower floor: it imports only `vitrt.errors` and `vitrt.ops.spec`, so `vitrt.export` and `vitrt.engines` both
use it without importing each other.

* `inline_functions(model)`: the one inliner. Each `vitrt` node is replaced, in memory, by its model-local
  function body (nodes named `<call node>/<body node>`, so errors and layer names point at the call), then the
  graph is constant-folded (`fold_constants`). Returns the model and, for each inlined node, the call it came from.
* `strip_functions(model)`: vitrt nodes without bodies (the `tensorrt` flavour), plugin fields filled in.
* `fold_constants(model)`: constant folding, dead-node removal and common-subexpression elimination that never
  folds, removes or inlines a vitrt node.
* `optimize_graph(model)`: the export's CPU-runtime rewrites after the cleanup (ONNX Runtime profiles, issue 12):
  a shape-inferring fold, so the exporters' `Shape -> Gather -> Mul` slice bounds become constants, then
  `split_sliced_projections`: a fused projection `x @ W + b` that is only ever sliced along its last axis (the
  `qkv` / `kv` / `qk` linears of every attention block) becomes one `x @ W[:, s:e] + b[s:e]` per slice, so no
  runtime copies the slices out of the fused output. Pure re-association of the same products: results are bit-equal
  up to the GEMM's blocking.
"""

from __future__ import annotations

import copy
from collections import Counter
from collections.abc import Container
from typing import TYPE_CHECKING, NamedTuple

from vitrt.errors import ArtifactError, VitrtError

if TYPE_CHECKING:
    import numpy as np
    import onnx

__all__ = [
    "VITRT_DOMAIN",
    "Inlined",
    "ensure_node_names",
    "fold_constants",
    "inline_functions",
    "optimize_graph",
    "set_opset",
    "split_sliced_projections",
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


def fold_constants(model: onnx.ModelProto, *, shape_inference: bool = False) -> onnx.ModelProto:
    """Constant folding and simplification that never folds, removes or inlines a vitrt node.

    onnxscript's constant folder (vitrt nodes excluded), dead-node removal and common-subexpression elimination
    (which merges the exporters' repeated Shape/Gather chains, halving a traced Swin graph). The full onnxscript
    optimizer and onnxslim are not used: their rewrite rules take 40-90 s on a Swin-T graph here, and ONNX Runtime
    and TensorRT apply equivalent fusions when they load the file. `shape_inference` also folds what ONNX shape
    inference knows (static dims read through `Shape`); off by default, as the cleanup of a traced graph does not
    need it.
    """
    from onnxscript import ir, optimizer
    from onnxscript.ir.passes.common import CommonSubexpressionEliminationPass, RemoveUnusedNodesPass

    before = vitrt_op_counts(model)
    model_ir = ir.serde.deserialize_model(model)
    optimizer.fold_constants_ir(
        model_ir,
        onnx_shape_inference=shape_inference,
        should_fold=lambda node: False if node.domain == VITRT_DOMAIN else None,
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


def optimize_graph(model: onnx.ModelProto) -> onnx.ModelProto:
    """The export's CPU-runtime rewrites (module docstring): a shape-inferring fold, then the projection split."""
    folded = fold_constants(model, shape_inference=True)
    split = False
    # Repeated: a split projection whose pieces are sliced again (CSwin's q/k/v, then per-branch channel halves)
    # splits again on the next round; each round only narrows weights, so this ends.
    for _ in range(_MAX_SPLIT_ROUNDS):
        if not split_sliced_projections(folded):
            break
        split = True
    if split:
        folded = fold_constants(folded)
    return folded


_MAX_SPLIT_ROUNDS = 4


def split_sliced_projections(model: onnx.ModelProto) -> int:
    """In place: each `MatMul(x, W)` (+ `Add(b)`) consumed only by last-axis `Slice`/`Split` nodes with constant
    bounds becomes one `MatMul(x, W[:, s:e])` (+ `Add(b[s:e])`) per slice; returns how many projections were split.

    The slices of a fused projection are copies in every runtime (ONNX Runtime spent 3-10% of an attention
    model's time in them); per-slice GEMMs write their outputs directly. Nodes keep the projection's name as a
    prefix (module scopes, per-block parity probes).
    """
    import numpy as np
    from onnx import helper, numpy_helper

    graph = model.graph
    constants = _constant_arrays(model)
    ranks = _tensor_ranks(model)
    node_names = {n.name for n in graph.node if n.name}  # ONNX requires unique node names
    consumers: dict[str, list[onnx.NodeProto]] = {}
    for node in graph.node:
        for name in node.input:
            consumers.setdefault(name, []).append(node)
    graph_outputs = {o.name for o in graph.output}
    replaced: dict[int, list[onnx.NodeProto]] = {}  # index of the MatMul -> nodes that replace the pattern
    removed: set[int] = set()
    new_initializers: list[onnx.TensorProto] = []
    index_of = {id(node): i for i, node in enumerate(graph.node)}
    for index, node in enumerate(graph.node):
        if node.op_type != "MatMul" or node.domain not in ("", "ai.onnx") or len(node.input) != 2:
            continue
        weight = constants.get(node.input[1])
        if weight is None or weight.ndim != 2 or node.output[0] in graph_outputs:
            continue
        width = weight.shape[1]
        users = consumers.get(node.output[0], [])
        bias, bias_node, tail = None, None, node.output[0]
        if len(users) == 1 and users[0].op_type == "Add" and users[0].domain in ("", "ai.onnx"):
            other = [name for name in users[0].input if name != node.output[0]]
            candidate = constants.get(other[0]) if len(other) == 1 else None
            if candidate is not None and candidate.size == width and candidate.shape[-1:] == (width,):
                bias, bias_node, tail = candidate.reshape(width), users[0], users[0].output[0]
        if tail in graph_outputs:
            continue
        pieces = _last_axis_pieces(consumers.get(tail, []), constants, width, ranks.get(node.input[0]))
        if not pieces:
            continue
        rewritten: list[onnx.NodeProto] = []
        for number, (output, start, end) in enumerate(pieces):
            w_name = _fresh_name(f"{node.input[1]}__cols_{start}_{end}", constants)
            constants[w_name] = weight[:, start:end]
            new_initializers.append(numpy_helper.from_array(np.ascontiguousarray(weight[:, start:end]), w_name))
            product = output if bias is None else f"{output}__matmul"
            matmul_name = _fresh_name(f"{node.name}_{number}", node_names)
            node_names.add(matmul_name)
            matmul = helper.make_node("MatMul", [node.input[0], w_name], [product], name=matmul_name)
            matmul.metadata_props.extend(node.metadata_props)
            rewritten.append(matmul)
            if bias is not None and bias_node is not None:
                b_name = _fresh_name(f"{bias_node.name or 'bias'}__cols_{start}_{end}", constants)
                constants[b_name] = bias[start:end]
                new_initializers.append(numpy_helper.from_array(np.ascontiguousarray(bias[start:end]), b_name))
                add_name = _fresh_name(f"{bias_node.name}_{number}", node_names)
                node_names.add(add_name)
                add = helper.make_node("Add", [product, b_name], [output], name=add_name)
                add.metadata_props.extend(bias_node.metadata_props)
                rewritten.append(add)
        replaced[index] = rewritten
        removed.update(index_of[id(user)] for user in consumers[tail])
        if bias_node is not None:
            removed.add(index_of[id(bias_node)])
    if not replaced:
        return 0
    nodes: list[onnx.NodeProto] = []
    for index, node in enumerate(graph.node):
        if index in replaced:
            nodes.extend(replaced[index])
        elif index not in removed:
            nodes.append(node)
    del graph.node[:]
    graph.node.extend(nodes)
    graph.initializer.extend(new_initializers)  # the fused weights, now unused, go with the next fold_constants
    return len(replaced)


def _last_axis_pieces(
    users: list[onnx.NodeProto], constants: dict[str, np.ndarray], width: int, rank: int | None
) -> list[tuple[str, int, int]]:
    """(output, start, end) column ranges when every user is a last-axis Slice (step 1) or Split; else [].

    `rank` (of the projection's output, None when unknown) lets a non-negative axis count as the last one: the
    TorchScript exporter writes `x[..., a:b]` of a rank-3 tensor as `axes=[2]`.
    """
    from onnx import helper

    last_axes = {-1} if rank is None else {-1, rank - 1}
    pieces: list[tuple[str, int, int]] = []
    for user in users:
        if user.domain not in ("", "ai.onnx"):
            return []
        attrs = {a.name: helper.get_attribute_value(a) for a in user.attribute}
        if user.op_type == "Slice":
            bounds = [constants.get(name) if name else None for name in user.input[1:]]
            if len(bounds) < 3 or any(b is None or b.size != 1 for b in bounds[:3]):
                return []
            if len(bounds) > 3 and (bounds[3] is None or int(bounds[3].reshape(-1)[0]) != 1):
                return []
            start, end, axis = (int(b.reshape(-1)[0]) for b in bounds[:3])  # type: ignore[union-attr]
            if axis not in last_axes:
                return []
            start = max(0, min(width, start + width if start < 0 else start))
            end = max(0, min(width, end + width if end < 0 else end))
            if end <= start:
                return []
            pieces.append((user.output[0], start, end))
        elif user.op_type == "Split":
            if int(attrs.get("axis", 0)) not in last_axes:
                return []
            if len(user.input) > 1 and user.input[1]:
                sizes_array = constants.get(user.input[1])
                if sizes_array is None:
                    return []
                sizes = [int(v) for v in sizes_array.reshape(-1)]
            else:
                parts = int(attrs.get("num_outputs", len(user.output)))
                if width % parts:
                    return []
                sizes = [width // parts] * parts
            if sum(sizes) != width or len(sizes) != len(user.output):
                return []
            offset = 0
            for output, size in zip(user.output, sizes, strict=True):
                if output:
                    pieces.append((output, offset, offset + size))
                offset += size
        else:
            return []
    return pieces


def _tensor_ranks(model: onnx.ModelProto) -> dict[str, int]:
    """Rank of each graph tensor ONNX shape inference knows (inputs, value_info), on a copy of the graph."""
    from onnx import shape_inference

    try:
        inferred = shape_inference.infer_shapes(model, strict_mode=False)
    except Exception:  # shape inference refuses some graphs (custom domains without schemas): ranks unknown
        return {}
    ranks = {}
    for info in (*inferred.graph.input, *inferred.graph.value_info, *inferred.graph.output):
        tensor_type = info.type.tensor_type
        if tensor_type.HasField("shape"):
            ranks[info.name] = len(tensor_type.shape.dim)
    return ranks


def _constant_arrays(model: onnx.ModelProto) -> dict[str, np.ndarray]:
    """Initializers and `Constant(value=...)` outputs of the top-level graph, as arrays."""
    from onnx import numpy_helper

    arrays = {init.name: numpy_helper.to_array(init) for init in model.graph.initializer}
    for node in model.graph.node:
        if node.op_type == "Constant" and node.domain in ("", "ai.onnx") and len(node.attribute) == 1:
            attr = node.attribute[0]
            if attr.name == "value":
                arrays[node.output[0]] = numpy_helper.to_array(attr.t)
    return arrays


def _fresh_name(base: str, taken: Container[str]) -> str:
    name, suffix = base, 0
    while name in taken:
        suffix += 1
        name = f"{base}_{suffix}"
    return name
