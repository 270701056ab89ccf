"""Graph post-processing of vitrt exports: function bodies, flavours, cleanup and the structural lint.

One export produces the `portable` graph (vitrt nodes + model-local function bodies). The other flavours are derived
from it by graph surgery, never by re-exporting:

* `tensorrt`: the same graph with `model.functions` removed, so TensorRT's parser can only resolve a vitrt node to
  the plugin named by its op_type / `plugin_namespace` / `plugin_version`, whatever the TensorRT version's
  importer order (local functions win over plugins before TensorRT 10.7);
* `inlined`: every vitrt node replaced by its body, then constant-folded, for runtimes without plugins or function
  support.

Stripping, inlining and constant folding are `vitrt.onnx_passes` (shared with the engine builder).
"""

from __future__ import annotations

from functools import cache

import onnx

from vitrt.errors import ExportError
from vitrt.export import FLAVOURS
from vitrt.export.functions import DOMAIN, function_proto
from vitrt.onnx_passes import set_opset, vitrt_nodes, vitrt_op_counts
from vitrt.ops.spec import load_op_specs

__all__ = ["FLAVOURS", "attach_functions", "complete_vitrt_nodes", "lint"]

# TensorRT's ONNX parser picks importers by op_type alone, whatever the domain. Besides the ONNX op names it has
# these built-in importers (onnx-tensorrt `DEFINE_BUILTIN_OP_IMPORTER`, TensorRT 10.x/11.x); a custom op named
# like any of them is shadowed by the built-in one.
TENSORRT_IMPORTERS = frozenset(
    {
        "FallbackPluginImporter",
        "LocalFunctionImporter",
        "TRT_AveragePool",
        "TRT_Attention",
        "TRT_Conv",
        "TRT_Deconv",
        "TRT_FloorDiv",
        "TRT_FP4DynamicQuantize",
        "TRT_FP8DequantizeLinear",
        "TRT_FP8QuantizeLinear",
        "TRT_FullyConnected",
        "TRT_Gather",
        "TRT_INT4DequantizeLinear",
        "TRT_INT4QuantizeLinear",
        "TRT_MatMul",
        "TRT_MaxAverageBlendPool",
        "TRT_MaxPool",
        "TRT_MXFP8DynamicQuantize",
        "TRT_PluginV2",
        "TRT_RaggedSoftmax",
        "TRT_Resize",
        "TRT_RNNv2",
        "TRT_Scale",
        "TRT_Shuffle",
        "TRT_Slice",
        "TRT_TopK_Min",
        "ImageScaler",
        "ParametricSoftplus",
        "ScaledTanh",
        "Crop",
        "Upsample",
    }
)


@cache
def builtin_op_names() -> frozenset[str]:
    """Every op_type an ONNX consumer may treat as built-in: all ONNX schemas (any domain, any version) plus
    TensorRT's own importer names."""
    names = {schema.name for schema in onnx.defs.get_all_schemas_with_history()}
    return frozenset(names | TENSORRT_IMPORTERS)


def model_opset(model: onnx.ModelProto) -> int:
    for entry in model.opset_import:
        if entry.domain in ("", "ai.onnx"):
            return int(entry.version)
    raise ExportError("the exported graph imports no default ONNX opset")


def complete_vitrt_nodes(model: onnx.ModelProto) -> None:
    """Give every vitrt node the full attribute set of its contract (defaults filled, plugin fields set)."""
    specs = load_op_specs()
    for node in vitrt_nodes(model):
        spec = specs.get(node.op_type)
        if spec is None:
            raise ExportError(f"unknown vitrt op {node.op_type!r} in the exported graph")
        present = {attr.name: onnx.helper.get_attribute_value(attr) for attr in node.attribute}
        declared = {name: present[name] for name in spec.attribute_names if name in present}
        try:
            values = spec.resolve_attributes(declared)
        except ValueError as err:
            raise ExportError(f"node {node.name or node.op_type}: {err}") from None
        del node.attribute[:]
        fields = {"plugin_namespace": spec.plugin_namespace, "plugin_version": spec.plugin_version}
        for name, value in {**values, **fields}.items():
            kind = next((a.type for a in spec.attributes if a.name == name), "string")
            if kind == "float":
                node.attribute.append(
                    onnx.helper.make_attribute(name, float(value), attr_type=onnx.AttributeProto.FLOAT)
                )
            elif kind == "int":
                node.attribute.append(onnx.helper.make_attribute(name, int(value), attr_type=onnx.AttributeProto.INT))
            else:
                node.attribute.append(onnx.helper.make_attribute(name, str(value)))
    set_opset(model, DOMAIN, 1, only_if_used=True)


def attach_functions(model: onnx.ModelProto, *, fp16_safe: bool = False) -> None:
    """Replace any vitrt function in the model by the canonical body of each vitrt op the graph uses."""
    opset = model_opset(model)
    used = sorted({node.op_type for node in vitrt_nodes(model)})
    kept = [f for f in model.functions if f.domain != DOMAIN]
    del model.functions[:]
    model.functions.extend(kept)
    model.functions.extend(function_proto(op_type, opset, fp16_safe=fp16_safe) for op_type in used)


def lint(model: onnx.ModelProto, flavour: str) -> list[str]:
    """Structural problems of a vitrt export, as one-line messages (empty when clean).

    * a node in a custom domain whose op_type equals an ONNX or TensorRT built-in name (TensorRT would run the
      built-in importer instead of the plugin or the body);
    * a vitrt node without the contract's attributes or the plugin fields;
    * `portable`: a vitrt node without a function body; `tensorrt`: a vitrt body left in the file;
      `inlined`: a vitrt node left in the graph.
    """
    problems = []
    builtins = builtin_op_names()
    specs = load_op_specs()
    functions = {(f.domain, f.name) for f in model.functions}
    for node in model.graph.node:
        if node.domain not in ("", "ai.onnx", "ai.onnx.ml") and node.op_type in builtins:
            problems.append(f"custom node {node.domain}::{node.op_type} collides with a built-in ONNX/TensorRT op name")
    for node in vitrt_nodes(model):
        spec = specs.get(node.op_type)
        if spec is None:
            problems.append(f"unknown vitrt op {node.op_type}")
            continue
        names = {attr.name for attr in node.attribute}
        missing = [n for n in [*spec.attribute_names, "plugin_namespace", "plugin_version"] if n not in names]
        if missing:
            problems.append(f"{node.op_type} node {node.name!r} lacks attributes {missing}")
        has_body = (DOMAIN, node.op_type) in functions
        if flavour == "portable" and not has_body:
            problems.append(f"{node.op_type} node {node.name!r} has no function body in a portable export")
    vitrt_functions = sorted(name for domain, name in functions if domain == DOMAIN)
    if flavour == "tensorrt" and vitrt_functions:
        problems.append(f"tensorrt export still carries function bodies {vitrt_functions}")
    if flavour == "inlined" and vitrt_nodes(model):
        problems.append(f"inlined export still has vitrt nodes {vitrt_op_counts(model)}")
    return problems


def lint_op_names() -> list[str]:
    """Collisions between the vitrt op contracts and built-in op names (checked in tests and at export)."""
    builtins = builtin_op_names()
    return [
        f"op {spec.name} ({spec.path.name}) collides with a built-in ONNX/TensorRT op name"
        for spec in load_op_specs().values()
        if spec.name in builtins
    ]
