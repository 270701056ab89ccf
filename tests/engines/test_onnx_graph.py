"""ONNX passes behind the builder and the parity probes, checked by running the rewritten graphs in ONNX Runtime."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from tinyvit import TinyViT, vitrt_op_model

from vitrt import onnx_passes
from vitrt.engines import onnx_graph
from vitrt.errors import ArtifactError
from vitrt.parity.blocks import find_blocks, torch_block_outputs


def run(model: onnx.ModelProto, x: np.ndarray, outputs: list[str] | None = None) -> list[np.ndarray]:
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return session.run(outputs, {"input": x})


def types_of(model: onnx.ModelProto) -> dict[str, int]:
    return onnx_graph._tensor_elem_types(model)


def test_fp32_islands_are_norms_and_softmaxes_by_default_attention_nodes_on_request(tiny_onnx: Path) -> None:
    model = onnx.load(str(tiny_onnx))
    islands = onnx_graph.fp32_island_nodes(model)
    by_op: dict[str, set[str]] = {}
    for node in model.graph.node:
        by_op.setdefault(node.op_type, set()).add(node.name)
    assert by_op["LayerNormalization"] <= islands and len(by_op["LayerNormalization"]) == 7
    assert by_op["Softmax"] <= islands
    assert not (by_op["MatMul"] | by_op["Conv"]) & islands
    assert onnx_graph.fp32_island_nodes(model, "none") == set()

    op_model = vitrt_op_model()
    assert {"attn0", "attn1"} <= onnx_graph.fp32_island_nodes(op_model, "all")
    assert not {"attn0", "attn1"} & onnx_graph.fp32_island_nodes(op_model)  # default: fragile steps only
    assert onnx_graph.fp32_island_nodes(op_model, "norms") == onnx_graph.fp32_island_nodes(op_model, "fragile")


def test_decomposed_norm_denominators_are_islands() -> None:
    """x / sqrt(mean(x^2) + eps) * g: every step of the denominator, the division and the affine stay FP32."""
    h = onnx.helper
    nodes = [
        h.make_node("Pow", ["input", "two"], ["sq"], name="square"),
        h.make_node("ReduceMean", ["sq", "axes"], ["ms"], name="mean_square"),
        h.make_node("Add", ["ms", "eps"], ["ms_eps"], name="add_eps"),
        h.make_node("Sqrt", ["ms_eps"], ["rms"], name="root"),
        h.make_node("Div", ["input", "rms"], ["normed"], name="divide"),
        h.make_node("Mul", ["normed", "gain"], ["scaled"], name="gain_mul"),
        h.make_node("MatMul", ["scaled", "W"], ["logits"], name="project"),
    ]
    inits = [
        onnx.numpy_helper.from_array(np.array(2.0, np.float32), "two"),
        onnx.numpy_helper.from_array(np.array([-1], np.int64), "axes"),
        onnx.numpy_helper.from_array(np.array(1e-6, np.float32), "eps"),
        onnx.numpy_helper.from_array(np.ones(8, np.float32), "gain"),
        onnx.numpy_helper.from_array(np.eye(8, dtype=np.float32), "W"),
    ]
    graph = h.make_graph(
        nodes,
        "rms",
        [h.make_tensor_value_info("input", onnx.TensorProto.FLOAT, ["b", 8])],
        [h.make_tensor_value_info("logits", onnx.TensorProto.FLOAT, ["b", 8])],
        inits,
    )
    model = h.make_model(graph, opset_imports=[h.make_opsetid("", 18)])
    islands = onnx_graph.fp32_island_nodes(model)
    assert islands == {"square", "mean_square", "add_eps", "root", "divide", "gain_mul"}


def test_strongly_typed_fp16_rewrite_keeps_islands_fp32_and_runs(tiny_onnx: Path) -> None:
    model = onnx.load(str(tiny_onnx))
    islands = onnx_graph.fp32_island_nodes(model)
    half = onnx_graph.cast_fp32_islands(model, "fp16", islands)
    types = types_of(half)
    assert types["input"] == onnx.TensorProto.FLOAT and types["logits"] == onnx.TensorProto.FLOAT
    for node in half.graph.node:
        float_inputs = [types.get(name) for name in node.input if types.get(name) in (1, 10)]
        if node.name in islands:
            assert all(t == onnx.TensorProto.FLOAT for t in float_inputs), node.name
        elif node.op_type in ("MatMul", "Conv", "Gemm"):
            assert all(t == onnx.TensorProto.FLOAT16 for t in float_inputs), node.name
    weights = [i for i in half.graph.initializer if i.data_type == onnx.TensorProto.FLOAT16]
    assert weights, "matmul/conv weights must be stored in FP16"
    x = np.random.default_rng(0).standard_normal((3, 3, 16, 16), dtype=np.float32)
    (reference,) = run(model, x)
    (reduced,) = run(half, x)
    assert reduced.dtype == np.float32
    np.testing.assert_allclose(reduced, reference, atol=2e-2, rtol=0)
    assert np.array_equal(reduced.argmax(1), reference.argmax(1))


def test_strongly_typed_bf16_rewrite_is_a_valid_typed_graph(tiny_onnx: Path) -> None:
    model = onnx.load(str(tiny_onnx))
    islands = onnx_graph.fp32_island_nodes(model)
    bf16 = onnx_graph.cast_fp32_islands(model, "bf16", islands)
    types = types_of(bf16)
    casts = [n for n in bf16.graph.node if n.op_type == "Cast"]
    assert any(a.i == onnx.TensorProto.BFLOAT16 for n in casts for a in n.attribute)
    ln = next(n for n in bf16.graph.node if n.op_type == "LayerNormalization")
    assert types[ln.input[0]] == onnx.TensorProto.FLOAT
    assert types["logits"] == onnx.TensorProto.FLOAT


def test_inlined_flavour_names_body_nodes_after_their_call(tmp_path: Path) -> None:
    model = vitrt_op_model()
    inlined, origin = onnx_passes.inline_functions(model)
    assert not inlined.functions and not any(n.domain == "vitrt" for n in inlined.graph.node)
    assert {o.domain for o in inlined.opset_import} == {""}
    assert set(origin.values()) == {"attn0", "attn1"}
    assert all(name.startswith(origin[name] + "/") for name in origin)
    x = np.random.default_rng(1).standard_normal((4, 8)).astype(np.float32)
    np.testing.assert_allclose(run(inlined, x)[0], run(model, x)[0], rtol=1e-6, atol=1e-7)
    islands = onnx_graph.island_nodes_after_inlining(inlined, origin, {"attn0"}, "all")
    assert {name for name, call in origin.items() if call == "attn0"} <= islands
    softmax_of_attn1 = [n.name for n in inlined.graph.node if n.op_type == "Softmax" and origin.get(n.name) == "attn1"]
    assert softmax_of_attn1 and set(softmax_of_attn1) <= islands  # a softmax stays FP32 wherever it comes from


def test_inlining_folds_constant_arithmetic_of_the_bodies() -> None:
    from onnx import helper

    body = [
        helper.make_node("Constant", [], ["c"], value=onnx.numpy_helper.from_array(np.float32(3.0))),
        helper.make_node("Mul", ["c", "c"], ["cc"], name="square"),
        helper.make_node("Mul", ["x", "cc"], ["y"], name="scale"),
    ]
    function = helper.make_function("vitrt", "VitrtScale", ["x"], ["y"], body, [helper.make_opsetid("", 18)])
    graph = helper.make_graph(
        [helper.make_node("VitrtScale", ["input"], ["logits"], domain="vitrt", name="call")],
        "g",
        [helper.make_tensor_value_info("input", onnx.TensorProto.FLOAT, ["batch", 8])],
        [helper.make_tensor_value_info("logits", onnx.TensorProto.FLOAT, ["batch", 8])],
    )
    imports = [helper.make_opsetid("", 18), helper.make_opsetid("vitrt", 1)]
    model = helper.make_model(graph, opset_imports=imports, functions=[function])
    unfolded = onnx_passes.inline_functions(model, fold=False).model
    folded, origin = onnx_passes.inline_functions(model)
    assert sum(n.name.startswith("call/square") for n in unfolded.graph.node) == 1
    assert not any(n.name.startswith("call/square") for n in folded.graph.node)  # 3*3 computed once, here
    assert set(origin.values()) == {"call"}
    x = np.arange(16, dtype=np.float32).reshape(2, 8)
    np.testing.assert_allclose(run(folded, x)[0], 9.0 * x)


def test_tensorrt_flavour_strips_bodies_and_adds_plugin_attributes() -> None:
    stripped = onnx_passes.strip_functions(vitrt_op_model())
    assert not stripped.functions
    for node in onnx_passes.vitrt_nodes(stripped):
        attrs = {a.name: a.s.decode() for a in node.attribute if a.type == onnx.AttributeProto.STRING}
        assert attrs == {"plugin_namespace": "vitrt", "plugin_version": "1"}


def test_a_vitrt_node_without_body_cannot_be_inlined() -> None:
    with pytest.raises(ArtifactError, match=r"'attn0' \(VitrtScaledSoftmax\) has no function body"):
        onnx_passes.inline_functions(vitrt_op_model(with_function=False))


def test_dft_nodes_are_reported_as_unsupported_by_tensorrt() -> None:
    """A foreign graph with DFT (vitrt exports never emit one: circulant attention's body uses MatMul DFTs)."""
    nodes = [
        onnx.helper.make_node("Unsqueeze", ["input", "axes"], ["xr"], name="as_real"),
        onnx.helper.make_node("DFT", ["xr"], ["spec"], name="dft", axis=1, onesided=0),
        onnx.helper.make_node("ReduceL2", ["spec", "axes"], ["logits"], name="magnitude", keepdims=0),
    ]
    graph = onnx.helper.make_graph(
        nodes,
        "g",
        [onnx.helper.make_tensor_value_info("input", onnx.TensorProto.FLOAT, ["batch", 8])],
        [onnx.helper.make_tensor_value_info("logits", onnx.TensorProto.FLOAT, ["batch", 8])],
        [onnx.numpy_helper.from_array(np.array([-1], dtype=np.int64), "axes")],
    )
    model = onnx.helper.make_model(graph, opset_imports=[onnx.helper.make_opsetid("", 18)])
    assert onnx_graph.tensorrt_unsupported_nodes(model) == [("dft", "DFT")]
    assert onnx_graph.tensorrt_unsupported_nodes(onnx_passes.inline_functions(vitrt_op_model()).model) == []


def test_block_outputs_map_to_onnx_tensors_that_equal_the_torch_hooks(tiny_vit: TinyViT, tiny_onnx: Path) -> None:
    model = onnx.load(str(tiny_onnx))
    blocks = find_blocks(tiny_vit)
    assert blocks == ["blocks.0", "blocks.1", "blocks.2"]
    tensors = onnx_graph.block_output_tensors(model, blocks)
    assert list(tensors) == blocks
    x = np.random.default_rng(2).standard_normal((2, 3, 16, 16), dtype=np.float32)
    probed = onnx_graph.add_graph_outputs(model, tensors.values())
    values = dict(zip(tensors, run(probed, x, list(tensors.values())), strict=True))
    with torch.inference_mode():
        hooked = torch_block_outputs(tiny_vit, blocks, lambda: tiny_vit(torch.from_numpy(x)))
    for block in blocks:
        np.testing.assert_allclose(values[block], hooked[block], rtol=1e-4, atol=1e-5)
    with pytest.raises(ArtifactError, match="not produced by any node"):
        onnx_graph.add_graph_outputs(model, ["no_such_tensor"])


def test_ensure_node_names_makes_names_unique() -> None:
    h = onnx.helper
    graph = h.make_graph(
        [
            h.make_node("Relu", ["x"], ["a"]),
            h.make_node("Relu", ["a"], ["b"], name="r"),
            h.make_node("Relu", ["b"], ["y"], name="r"),
        ],
        "g",
        [h.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [1])],
        [h.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [1])],
    )
    model = h.make_model(graph)
    onnx_graph.ensure_node_names(model)
    names = [n.name for n in model.graph.node]
    assert len(set(names)) == 3 and names[1] == "r" and all(names)


def test_block_scopes_from_torchscript_style_node_names() -> None:
    """`/layers.0/blocks.1/...` (a stage list, then a block list inside it) -> block `layers.0.blocks.1`."""
    h = onnx.helper
    names = [
        ("/patch_embed/Conv", "input", "e"),
        ("/layers.0/blocks.0/norm1/LayerNormalization", "e", "a0"),
        ("/layers.0/blocks.0/Add", "a0", "b0"),
        ("/layers.0/blocks.1/Add", "b0", "b1"),
        ("/head/Gemm", "b1", "logits"),
    ]
    nodes = [h.make_node("Relu", [src], [dst], name=name) for name, src, dst in names]
    graph = h.make_graph(
        nodes,
        "g",
        [h.make_tensor_value_info("input", onnx.TensorProto.FLOAT, [1, 4])],
        [h.make_tensor_value_info("logits", onnx.TensorProto.FLOAT, [1, 4])],
    )
    model = h.make_model(graph)
    blocks = ["layers.0.blocks.0", "layers.0.blocks.1", "layers.1.blocks.0"]
    assert onnx_graph.block_output_tensors(model, blocks) == {"layers.0.blocks.0": "b0", "layers.0.blocks.1": "b1"}
    assert onnx_graph._node_scopes(nodes[1]) == {"layers.0", "layers.0.blocks.0", "layers.0.blocks.0.norm1"}
    deit = h.make_node("Relu", ["x"], ["y"], name="/blocks/blocks.3/attn/MatMul")
    assert onnx_graph._node_scopes(deit) == {"blocks", "blocks.3", "blocks.3.attn"}
