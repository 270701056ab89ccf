"""The vitrt attention ops as `torch.library` custom ops, and how each exporter turns them into one ONNX node.

Importing this module defines `torch.ops.vitrt.<op>` for every op contract (`plugins/<op>/<op>.yaml`): the schema,
the op name and the attribute names and types all come from the YAML. The real implementation is the plain-PyTorch
reference (`vitrt.ops.reference`), the fake one only propagates shapes. The module registers the ops as the
"custom_op" implementation of `vitrt.ops`, so model code that calls `vitrt.ops.<op>` routes through them inside
`vitrt.ops.use_implementation("custom_op")` (the exporter's context) and through the reference everywhere else.

Each exporter maps a custom op to one node in domain `vitrt` whose op_type is the plugin name, carrying
`plugin_namespace`, `plugin_version` and the op's INT/FLOAT attributes under their YAML names:

* TorchScript exporter: a symbolic registered with `torch.onnx.register_custom_op_symbolic`;
* dynamo exporter: `custom_translation_table()`, which calls an onnxscript `Op` backed by an `onnx.defs.OpSchema`
  generated from the YAML (node only, so the exporter's optimizer has no function to inline).

The function bodies are attached after export (`vitrt.export.graph`), never by the exporters.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from functools import cache
from typing import Any

import torch

from vitrt.ops import reference, register_implementation
from vitrt.ops.spec import OpSpec, load_op_specs

_TORCH_TYPES = {"int": "int", "float": "float"}
_ONNX_TYPE_CONSTRAINT = ["tensor(float)", "tensor(float16)", "tensor(bfloat16)"]


def torch_schema(spec: OpSpec) -> str:
    """The custom-op schema from the YAML, e.g.

    `(Tensor q, Tensor k, Tensor v, *, int height, int width, int strategy=0) -> Tensor`.
    """
    tensors = [f"Tensor {name}" for name in spec.input_names]
    attrs = []
    for attr in spec.attributes:
        text = f"{_TORCH_TYPES[attr.type]} {attr.name}"
        if not attr.required:
            text += f"={attr.default!r}"
        attrs.append(text)
    return f"({', '.join(tensors)}, *, {', '.join(attrs)}) -> Tensor"


def _python_signature(spec: OpSpec) -> inspect.Signature:
    params = [inspect.Parameter(name, inspect.Parameter.POSITIONAL_OR_KEYWORD) for name in spec.input_names]
    for attr in spec.attributes:
        default = inspect.Parameter.empty if attr.required else attr.default
        annotation = int if attr.type == "int" else float
        params.append(
            inspect.Parameter(attr.name, inspect.Parameter.KEYWORD_ONLY, default=default, annotation=annotation)
        )
    return inspect.Signature(params)


def _define(spec: OpSpec) -> Any:
    reference_fn = reference.REFERENCE[spec.name]

    def real(*tensors: torch.Tensor, **attrs: Any) -> torch.Tensor:
        # Contiguous, like the fake kernel promises (the FFT reference returns a permuted layout).
        return reference_fn(*tensors, **attrs).contiguous()

    def fake(*tensors: torch.Tensor, **attrs: Any) -> torch.Tensor:
        del attrs
        return torch.empty_like(tensors[0], memory_format=torch.contiguous_format)

    real.__signature__ = _python_signature(spec)  # type: ignore[attr-defined]
    op = torch.library.custom_op(spec.torch_op, real, mutates_args=(), schema=torch_schema(spec))
    op.register_fake(fake)
    return op


@cache
def define_ops() -> dict[str, Any]:
    """Define (once per process) every vitrt custom op; returns them keyed by ONNX op_type."""
    return {spec.name: _define(spec) for spec in load_op_specs().values()}


def torch_op(op_type: str) -> Any:
    """The `torch.ops.vitrt.<op>.default` overload of an op_type."""
    define_ops()
    namespace, name = load_op_specs()[op_type].torch_op.split("::")
    return getattr(getattr(torch.ops, namespace), name).default


def _register_implementations() -> None:
    for op_type in load_op_specs():
        register_implementation("custom_op", op_type, _router(torch_op(op_type)))


def _router(overload: Any) -> Callable[..., torch.Tensor]:
    def call(*tensors: torch.Tensor, **attrs: Any) -> torch.Tensor:
        return overload(*tensors, **attrs)

    return call


# --- TorchScript exporter -----------------------------------------------------------------------------------------


@cache
def register_torchscript_symbolics() -> bool:
    """Teach the TorchScript exporter to emit one vitrt node per custom op. False if that exporter is gone."""
    try:
        from torch.onnx import register_custom_op_symbolic
        from torch.onnx.symbolic_helper import parse_args
    except ImportError:
        return False
    from vitrt.export.functions import MIN_OPSET

    for spec in load_op_specs().values():
        register_custom_op_symbolic(spec.torch_op, _torchscript_symbolic(spec, parse_args), MIN_OPSET)
    return True


def _torchscript_symbolic(spec: OpSpec, parse_args: Callable[..., Any]) -> Callable[..., Any]:
    num_inputs = len(spec.inputs)
    kinds = ["v"] * num_inputs + ["i" if a.type == "int" else "f" for a in spec.attributes]
    suffixes = ["_i" if a.type == "int" else "_f" for a in spec.attributes]

    def symbolic(g: Any, *args: Any) -> Any:
        tensors, values = args[:num_inputs], args[num_inputs:]
        attrs = {a.name + sfx: v for a, sfx, v in zip(spec.attributes, suffixes, values, strict=True)}
        out = g.op(
            f"{spec.domain}::{spec.name}",
            *tensors,
            plugin_namespace_s=spec.plugin_namespace,
            plugin_version_s=spec.plugin_version,
            **attrs,
        )
        out.setType(tensors[0].type())
        return out

    # parse_args names the arguments after the function's signature; spell them out instead of *args.
    names = ["g", *spec.input_names, *spec.attribute_names]
    symbolic.__signature__ = inspect.Signature(  # type: ignore[attr-defined]
        [inspect.Parameter(name, inspect.Parameter.POSITIONAL_ONLY) for name in names]
    )
    return parse_args(*kinds)(symbolic)


# --- dynamo exporter ----------------------------------------------------------------------------------------------


def onnx_op_schema(spec: OpSpec) -> Any:
    """An `onnx.defs.OpSchema` for the node (not registered globally): inputs, output and every node attribute."""
    from onnx.defs import OpSchema

    attr_types = {"int": OpSchema.AttrType.INT, "float": OpSchema.AttrType.FLOAT}
    attributes = [OpSchema.Attribute(a.name, attr_types[a.type], a.description, required=True) for a in spec.attributes]
    attributes += [
        OpSchema.Attribute("plugin_namespace", OpSchema.AttrType.STRING, "TensorRT plugin namespace", required=True),
        OpSchema.Attribute("plugin_version", OpSchema.AttrType.STRING, "TensorRT plugin version", required=True),
    ]
    return OpSchema(
        spec.name,
        spec.domain,
        1,
        doc=spec.summary,
        inputs=[OpSchema.FormalParameter(name, "T") for name in spec.input_names],
        outputs=[OpSchema.FormalParameter(o["name"], "T") for o in spec.outputs],
        type_constraints=[("T", _ONNX_TYPE_CONSTRAINT, "floating-point tensors")],
        attributes=attributes,
    )


def custom_translation_table() -> dict[Any, Callable[..., Any]]:
    """`custom_translation_table` for `torch.onnx.export(dynamo=True)`: each custom op -> one vitrt node."""
    import onnxscript

    table = {}
    for spec in load_op_specs().values():
        opset = onnxscript.values.Opset(spec.domain, 1)
        node = onnxscript.values.Op(opset, spec.name, onnx_op_schema(spec))
        table[torch_op(spec.name)] = _translation(spec, node)
    return table


def _translation(spec: OpSpec, node: Any) -> Callable[..., Any]:
    def translate(*inputs: Any, **attrs: Any) -> Any:
        values = spec.resolve_attributes(attrs)
        return node(*inputs, plugin_namespace=spec.plugin_namespace, plugin_version=spec.plugin_version, **values)

    translate.__signature__ = _python_signature(spec)  # type: ignore[attr-defined]
    translate.__name__ = f"vitrt_{spec.directory}"
    return translate


define_ops()
_register_implementations()
