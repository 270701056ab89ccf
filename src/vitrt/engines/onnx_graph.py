"""ONNX graph passes shared by the engine builder and the parity checker.

* Flavours. A vitrt ONNX file carries each attention op as one `vitrt` node with a standard-op function body.
  TensorRT imports it either as our plugin (`tensorrt` flavour: the function bodies are stripped so the parser
  cannot prefer them over the plugin, deploy spec §0.A/§0.E) or as plain layers (`inlined` flavour: every body is
  inlined, no plugin needed). Both passes are `vitrt.onnx_passes` (shared with export).
* FP32 islands. Reduced-precision ViTs break in LayerNorm, softmax and norm denominators (TensorRT #2564, #2709,
  #4723). `fp32_island_nodes` picks those nodes; the builder pins them to FP32 with layer precision constraints,
  or, for strongly typed networks, `cast_fp32_islands` rewrites the graph itself: FP16/BF16 everywhere except the
  islands, with explicit Casts at their borders.
* Probes. `add_graph_outputs` exposes intermediate tensors (per-block parity) and `block_output_tensors` finds the
  tensor each transformer block hands to the next, from the module scopes the PyTorch exporter records.
"""

from __future__ import annotations

import ast
import copy
import logging
from collections import defaultdict
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from vitrt.errors import ArtifactError, EngineBuildError
from vitrt.metadata import ModelMetadata
from vitrt.onnx_passes import VITRT_DOMAIN, ensure_node_names

if TYPE_CHECKING:
    import numpy as np
    import onnx

log = logging.getLogger(__name__)

# Ops whose reduced-precision versions lose ViT accuracy: normalisations, softmaxes and the reductions, powers and
# reciprocals that make up norm denominators when they appear decomposed.
ISLAND_OPS = frozenset(
    {
        "LayerNormalization",
        "GroupNormalization",
        "InstanceNormalization",
        "RMSNormalization",
        "Softmax",
        "LogSoftmax",
        "ReduceMean",
        "ReduceSum",
        "ReduceL1",
        "ReduceL2",
        "ReduceSumSquare",
        "ReduceLogSumExp",
        "Pow",
        "Sqrt",
        "Reciprocal",
        "Exp",
        "Log",
        "Softplus",
        "DFT",
        "STFT",
    }
)
# Cheap elementwise ops that stay in an island when all their inputs come from it (eps adds, affine scales).
_ISLAND_FOLLOWERS = frozenset({"Add", "Sub", "Mul", "Div", "Max", "Min", "Clip", "Neg", "Abs"})
# Inputs that the ONNX spec fixes to tensor(float) whatever the data type (e.g. Resize scales).
_FIXED_FP32_INPUTS = {"Resize": (2,), "Upsample": (1,)}
# Ops the TensorRT ONNX parser cannot import (deploy spec §0.D): they must come through a plugin.
TENSORRT_UNSUPPORTED_OPS = frozenset({"DFT", "STFT"})
# "fragile" (default): only the numerically fragile steps stay FP32, so the attention plugins run in FP16/BF16
# (their kernels keep norm denominators, the focusing power and softmax statistics in FP32 themselves);
# "all": the attention nodes too (debugging); "none": nothing. "norms" is the old name of "fragile".
ISLAND_MODES = ("fragile", "all", "none")
DEFAULT_ISLAND_MODE = "fragile"
_ISLAND_ALIASES = {"norms": "fragile"}

_FLOAT = 1  # onnx.TensorProto.FLOAT
_FP16_MAX = 65504.0


def load_model(path: str | Path) -> onnx.ModelProto:
    """Read an ONNX file (with external data), refusing unreadable files with a one-line reason."""
    import onnx

    path = Path(path)
    if not path.is_file():
        raise ArtifactError(f"ONNX file not found: {path}")
    try:
        return onnx.load(str(path))
    except Exception as err:  # protobuf DecodeError, missing external data, ...
        raise ArtifactError(f"cannot read ONNX file {path} ({type(err).__name__}: {str(err)[:200]})") from None


def model_metadata(model: onnx.ModelProto) -> ModelMetadata | None:
    """The vitrt deployment metadata stored in `metadata_props`, if the file has it."""
    props = {p.key: p.value for p in model.metadata_props}
    if "vitrt.model" not in props:
        return None
    try:
        return ModelMetadata.from_props(props)
    except (ValueError, TypeError) as err:
        raise ArtifactError(f"ONNX metadata is malformed ({err})") from None


def fp32_island_nodes(model: onnx.ModelProto, mode: str = DEFAULT_ISLAND_MODE) -> set[str]:
    """Names of the top-level nodes to keep in FP32 in a reduced-precision build.

    mode "fragile": normalisations, softmaxes and decomposed norm denominators (the vitrt attention nodes run in
    reduced precision; their kernels compute those steps in FP32); "all": the same plus the vitrt attention nodes;
    "none": nothing.
    """
    mode = island_mode(mode)
    if mode == "none":
        return set()
    constants = {init.name for init in model.graph.initializer}
    constants |= {out for node in model.graph.node if node.op_type == "Constant" for out in node.output}
    produced_by: dict[str, str] = {}
    islands: set[str] = set()
    for node in model.graph.node:
        is_island = False
        if node.domain == VITRT_DOMAIN:
            is_island = mode == "all"
        elif node.domain in ("", "ai.onnx") and node.op_type in ISLAND_OPS:
            is_island = True
        elif node.op_type == "Div" and len(node.input) > 1 and produced_by.get(node.input[1]) in islands:
            is_island = True  # x / norm: the denominator came from an island
        elif node.op_type in _ISLAND_FOLLOWERS:
            sources = [name for name in node.input if name]
            from_island = [name for name in sources if produced_by.get(name) in islands]
            is_island = bool(from_island) and all(name in from_island or name in constants for name in sources)
        if is_island:
            islands.add(node.name)
        for output in node.output:
            produced_by[output] = node.name
    return islands


def island_mode(mode: str) -> str:
    """The canonical name of an FP32 island mode; unknown names are refused with the choices."""
    mode = _ISLAND_ALIASES.get(mode, mode)
    if mode not in ISLAND_MODES:
        raise EngineBuildError(f"unknown FP32 island mode {mode!r}; choose from {', '.join(ISLAND_MODES)}")
    return mode


def island_nodes_after_inlining(
    inlined: onnx.ModelProto, origin: dict[str, str], call_islands: set[str], mode: str = DEFAULT_ISLAND_MODE
) -> set[str]:
    """Islands of an inlined graph: its own fragile nodes plus every node from a vitrt call that is an island."""
    islands = fp32_island_nodes(inlined, mode)
    islands |= {name for name, call in origin.items() if call in call_islands}
    return islands


def tensorrt_unsupported_nodes(model: onnx.ModelProto) -> list[tuple[str, str]]:
    """(node name, op type) of nodes TensorRT's ONNX parser is known not to import."""
    return [(n.name, n.op_type) for n in model.graph.node if n.op_type in TENSORRT_UNSUPPORTED_OPS]


def add_graph_outputs(model: onnx.ModelProto, tensor_names: Iterable[str]) -> onnx.ModelProto:
    """A copy of `model` whose graph also outputs the given intermediate tensors (typed, shape left open)."""
    from onnx import helper

    out = copy.deepcopy(model)
    types = _tensor_elem_types(out)
    existing = {o.name for o in out.graph.output}
    produced = {name for node in out.graph.node for name in node.output}
    for name in tensor_names:
        if name in existing:
            continue
        if name not in produced:
            raise ArtifactError(f"tensor {name!r} is not produced by any node of the ONNX graph")
        out.graph.output.append(helper.make_tensor_value_info(name, types.get(name, _FLOAT), None))
        existing.add(name)
    return out


def cast_fp32_islands(model: onnx.ModelProto, precision: str, islands: set[str]) -> onnx.ModelProto:
    """Rewrite a FP32 graph for a strongly typed reduced-precision build.

    Float tensors become FP16/BF16 except inside `islands`, whose float inputs are cast to FP32 and whose outputs
    stay FP32 until a non-island consumer casts them down. Graph inputs and outputs stay FP32, so callers feed and
    read the same tensors as with the FP32 model. Initializers used only by islands stay FP32.
    """
    import numpy as np
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    if precision not in ("fp16", "bf16"):
        raise EngineBuildError(f"cast_fp32_islands needs fp16 or bf16, got {precision!r}")
    low = TensorProto.FLOAT16 if precision == "fp16" else TensorProto.BFLOAT16
    out = copy.deepcopy(model)
    ensure_node_names(out)
    graph = out.graph
    for node in graph.node:
        if any(a.type in (onnx.AttributeProto.GRAPH, onnx.AttributeProto.GRAPHS) for a in node.attribute):
            raise EngineBuildError(
                f"node {node.name!r} ({node.op_type}) has a subgraph; strongly typed builds of graphs with control "
                "flow are not supported, build without --strongly-typed"
            )
    float_tensors = {name for name, elem in _tensor_elem_types(out).items() if elem == _FLOAT}
    consumers: dict[str, list[onnx.NodeProto]] = defaultdict(list)
    for node in graph.node:
        for name in node.input:
            consumers[name].append(node)
    graph_outputs = {o.name for o in graph.output}

    def is_island(node: onnx.NodeProto) -> bool:
        return node.name in islands

    # A Constant feeding only islands is part of them (it keeps its FP32 value).
    islands = set(islands)
    for node in graph.node:
        users = consumers[node.output[0]] if node.op_type == "Constant" and node.output else []
        if users and all(is_island(c) for c in users):
            islands.add(node.name)

    native: dict[str, int] = {}
    for inp in graph.input:
        native[inp.name] = _FLOAT
    clipped = 0
    for init in graph.initializer:
        if init.name not in float_tensors:
            continue
        users = consumers.get(init.name, [])
        if users and all(is_island(c) for c in users):
            native[init.name] = _FLOAT
            continue
        array = numpy_helper.to_array(init)
        converted, n_clipped = _to_low_precision(array, precision)
        clipped += n_clipped
        init.CopyFrom(numpy_helper.from_array(converted, init.name))
        native[init.name] = low
    if clipped:
        log.warning("%d initializer values exceed the FP16 range and were clipped to +-65504", clipped)

    for node in graph.node:
        out_type = _FLOAT if is_island(node) else low
        for name in node.output:
            if name in float_tensors:
                native[name] = out_type
        if is_island(node):
            continue
        _retarget_float_attributes(node, low, precision)
        if node.op_type == "ConstantOfShape" and not any(a.name == "value" for a in node.attribute):
            # The default fill value is a FP32 zero.
            zero, _ = _to_low_precision(np.zeros([1], dtype=np.float32), precision)
            node.attribute.append(helper.make_attribute("value", numpy_helper.from_array(zero, "value")))

    # Graph outputs stay FP32: rename a reduced-precision producer's output and cast it back under the old name.
    tail: list[onnx.NodeProto] = []
    for name in list(graph_outputs):
        if native.get(name) != low:
            continue
        renamed = f"{name}__{precision}"
        for node in graph.node:
            for i, value in enumerate(node.output):
                if value == name:
                    node.output[i] = renamed
            for i, value in enumerate(node.input):
                if value == name:
                    node.input[i] = renamed
        native[renamed] = low
        tail.append(helper.make_node("Cast", [renamed], [name], to=_FLOAT, name=f"{name}/cast_fp32"))

    casts: dict[tuple[str, int], str] = {}
    new_nodes: list[onnx.NodeProto] = []
    for node in graph.node:
        fixed = _FIXED_FP32_INPUTS.get(node.op_type, ())
        want = _FLOAT if is_island(node) else low
        for i, name in enumerate(node.input):
            have = native.get(name)
            if have is None:
                continue
            need = _FLOAT if i in fixed else want
            if have == need:
                continue
            key = (name, need)
            if key not in casts:
                suffix = "fp32" if need == _FLOAT else precision
                cast_out = f"{name}__as_{suffix}"
                casts[key] = cast_out
                new_nodes.append(helper.make_node("Cast", [name], [cast_out], to=need, name=f"{cast_out}/cast"))
            node.input[i] = casts[key]
        new_nodes.append(node)
    new_nodes.extend(tail)
    del graph.node[:]
    graph.node.extend(new_nodes)
    del graph.value_info[:]
    try:
        onnx.checker.check_model(out)
        onnx.shape_inference.infer_shapes(out, strict_mode=True)
    except Exception as err:
        raise EngineBuildError(
            f"the strongly typed {precision} rewrite produced an invalid graph ({' '.join(str(err).split())[:240]}); "
            "build without --strongly-typed"
        ) from None
    return out


def block_output_tensors(model: onnx.ModelProto, blocks: list[str]) -> dict[str, str]:
    """For each module path in `blocks` (e.g. "stages.1.blocks.0"), the ONNX tensor that block outputs.

    Uses the module scopes that the PyTorch exporters leave on nodes: `pkg.torch.onnx.name_scopes` metadata
    (dynamo exporter) or `/a/a.b/Op` node names (TorchScript exporter). The output of a block is the last float
    tensor produced inside its scope and used outside it. Blocks that cannot be found are left out.
    """
    types = _tensor_elem_types(model)
    graph_outputs = {o.name for o in model.graph.output}
    scopes = [_node_scopes(node) for node in model.graph.node]
    result: dict[str, str] = {}
    for block in blocks:
        inside = [block in s for s in scopes]
        if not any(inside):
            continue
        produced_inside: dict[str, int] = {}
        for index, node in enumerate(model.graph.node):
            if inside[index]:
                for name in node.output:
                    produced_inside[name] = index
        escaping: set[str] = set()
        for index, node in enumerate(model.graph.node):
            if not inside[index]:
                escaping.update(name for name in node.input if name in produced_inside)
        escaping |= graph_outputs & set(produced_inside)
        candidates = [name for name in escaping if types.get(name) == _FLOAT]
        if candidates:
            result[block] = max(candidates, key=lambda name: produced_inside[name])
    return result


def _node_scopes(node: onnx.NodeProto) -> set[str]:
    """Qualified module paths a node belongs to (e.g. {"layers", "layers.0", "layers.0.blocks.0", ...})."""
    for prop in node.metadata_props:
        if prop.key == "pkg.torch.onnx.name_scopes":
            try:
                scopes = ast.literal_eval(prop.value)
            except (ValueError, SyntaxError):
                break
            return {s for s in scopes[:-1] if isinstance(s, str) and s}
    if not node.name.startswith("/"):
        return set()
    # TorchScript-style names: "/layers.0/blocks.1/attn/MatMul" where each part is relative to its parent and a
    # container's child repeats the container's name ("/blocks/blocks.0/..."): rebuild the qualified paths.
    paths: set[str] = set()
    current = ""
    for part in node.name.split("/")[1:-1]:
        if not part:
            continue
        last = current.rsplit(".", 1)[-1] if current else ""
        index = part[len(last) + 1 :] if last and part.startswith(last + ".") else ""
        current = current + "." + index if index.isdigit() else (f"{current}.{part}" if current else part)
        paths.add(current)
    return paths


def _tensor_elem_types(model: onnx.ModelProto) -> dict[str, int]:
    """Element type of every tensor that ONNX type inference can name (functions included)."""
    import onnx

    try:
        inferred = onnx.shape_inference.infer_shapes(model, strict_mode=False)
    except Exception as err:  # inference failures on exotic ops: fall back to what the file declares
        log.debug("ONNX type inference failed (%s); using declared types only", err)
        inferred = model
    types: dict[str, int] = {}
    graph = inferred.graph
    for value in [*graph.input, *graph.output, *graph.value_info]:
        if value.type.HasField("tensor_type"):
            types[value.name] = value.type.tensor_type.elem_type
    for init in graph.initializer:
        types[init.name] = init.data_type
    for node in graph.node:
        if node.op_type == "Constant" and node.output:
            for attr in node.attribute:
                if attr.name == "value":
                    types[node.output[0]] = attr.t.data_type
                elif attr.name in ("value_float", "value_floats"):
                    types[node.output[0]] = _FLOAT
    return types


def _to_low_precision(array: Any, precision: str) -> tuple[np.ndarray, int]:
    import ml_dtypes
    import numpy as np

    values = np.asarray(array, dtype=np.float32)
    if precision == "fp16":
        finite = np.isfinite(values)
        over = int(np.count_nonzero(finite & (np.abs(values) > _FP16_MAX)))
        return np.clip(values, -_FP16_MAX, _FP16_MAX).astype(np.float16), over
    return values.astype(ml_dtypes.bfloat16), 0


def _retarget_float_attributes(node: onnx.NodeProto, low: int, precision: str) -> None:
    """Point a non-island node's explicit FP32 types and constants at the reduced type."""
    from onnx import helper, numpy_helper

    for attr in node.attribute:
        is_cast_to = node.op_type == "Cast" and attr.name == "to"
        explicit_type = is_cast_to or (attr.name == "dtype" and attr.type == attr.INT)
        if explicit_type and attr.i == _FLOAT:
            attr.i = low
        elif node.op_type in ("Constant", "ConstantOfShape") and attr.name == "value" and attr.t.data_type == _FLOAT:
            converted, _ = _to_low_precision(numpy_helper.to_array(attr.t), precision)
            attr.t.CopyFrom(numpy_helper.from_array(converted, attr.t.name))
    if node.op_type == "Constant":
        for attr in list(node.attribute):
            if attr.name in ("value_float", "value_floats"):
                values = [attr.f] if attr.name == "value_float" else list(attr.floats)
                dims = [] if attr.name == "value_float" else [len(values)]
                node.attribute.remove(attr)
                tensor = helper.make_tensor("value", _FLOAT, dims, values)
                converted, _ = _to_low_precision(numpy_helper.to_array(tensor), precision)
                node.attribute.append(helper.make_attribute("value", numpy_helper.from_array(converted, "value")))
