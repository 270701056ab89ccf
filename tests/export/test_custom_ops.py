"""The torch.library custom ops: schemas from the YAML contracts, reference semantics, fake kernels, routing."""

from __future__ import annotations

import onnx
import pytest
import torch
from export_toys import OP_DIRS, op_call
from onnx import helper
from torch.fx.experimental.proxy_tensor import make_fx

from vitrt import ops
from vitrt.export import custom_ops, graph
from vitrt.ops import reference
from vitrt.ops.spec import op_spec


@pytest.mark.parametrize("op", OP_DIRS)
def test_schema_follows_the_yaml_contract(op):
    spec = op_spec(op)
    schema = custom_ops.torch_op(spec.name)._schema
    assert f"{schema.name}" == spec.torch_op
    tensors = [a for a in schema.arguments if not a.kwarg_only]
    attrs = [a for a in schema.arguments if a.kwarg_only]
    assert [a.name for a in tensors] == spec.input_names
    assert all(str(a.type) == "Tensor" for a in tensors)
    assert [a.name for a in attrs] == spec.attribute_names
    for arg, declared in zip(attrs, spec.attributes, strict=True):
        assert str(arg.type) == declared.type
        assert (arg.default_value if arg.has_default_value() else None) == (
            None if declared.required else declared.default
        )


@pytest.mark.parametrize("op", OP_DIRS)
def test_real_kernel_is_the_reference_and_fake_kernel_propagates_shapes(op):
    spec = op_spec(op)
    tensors, attrs = op_call(op, spec.test_configs[2])
    got = custom_ops.torch_op(spec.name)(*tensors, **attrs)
    torch.testing.assert_close(got, reference.REFERENCE[spec.name](*tensors, **attrs), atol=0, rtol=0)
    torch.library.opcheck(
        custom_ops.torch_op(spec.name), tuple(tensors), attrs, test_utils=("test_schema", "test_faketensor")
    )


def _traced_targets(fn, *args) -> set[str]:
    return {str(node.target) for node in make_fx(fn, tracing_mode="fake")(*args).graph.nodes}


def test_model_code_routes_through_the_custom_ops_only_inside_the_context():
    tensors, attrs = op_call("circulant_attention", op_spec("circulant_attention").test_configs[1])

    def call(q, k, v):
        return ops.circulant_attention(q, k, v, **attrs)

    assert "vitrt.circulant_attention.default" not in _traced_targets(call, *tensors)
    with ops.use_implementation("custom_op"):
        traced = _traced_targets(call, *tensors)
    assert "vitrt.circulant_attention.default" in traced
    assert not any("fft" in target for target in traced)


def test_decomposed_implementation_has_no_fft_and_matches_the_reference():
    tensors, attrs = op_call("circulant_attention", op_spec("circulant_attention").test_configs[0])

    def call(q, k, v):
        return ops.circulant_attention(q, k, v, **attrs)

    with ops.use_implementation("decomposed"):
        traced = _traced_targets(call, *tensors)
        got = call(*tensors)
    assert not any("fft" in target or "complex" in target for target in traced)
    torch.testing.assert_close(got, reference.circulant_attention(*tensors, **attrs), atol=1e-5, rtol=1e-5)


def test_translation_table_and_onnx_schemas_cover_every_op():
    table = custom_ops.custom_translation_table()
    assert set(table) == {custom_ops.torch_op(op_spec(op).name) for op in OP_DIRS}
    for op in OP_DIRS:
        schema = custom_ops.onnx_op_schema(op_spec(op))
        assert schema.domain == "vitrt" and schema.name == op_spec(op).name
        assert set(schema.attributes) == {*op_spec(op).attribute_names, "plugin_namespace", "plugin_version"}


def test_op_names_do_not_collide_with_builtin_importers():
    assert graph.lint_op_names() == []
    assert {"Attention", "LayerNormalization", "DFT", "TRT_Scale", "RotaryEmbedding"} <= graph.builtin_op_names()


def test_lint_flags_a_custom_node_named_like_a_builtin_and_missing_bodies():
    x = helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [1, 4])
    y = helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [1, 4])
    clash = helper.make_node("LayerNormalization", ["x"], ["t"], domain="mylib")
    bare = helper.make_node(
        "VitrtCirculantAttention",
        ["t", "t", "t"],
        ["y"],
        domain="vitrt",
        height=2,
        width=2,
        strategy=0,
        plugin_namespace="vitrt",
        plugin_version="1",
    )
    model = helper.make_model(helper.make_graph([clash, bare], "g", [x], [y]))
    problems = graph.lint(model, "portable")
    assert any("mylib::LayerNormalization collides" in p for p in problems)
    assert any("no function body" in p for p in problems)
    assert not any("no function body" in p for p in graph.lint(model, "tensorrt"))
