"""The export's CPU-runtime rewrites (issue 12), checked by running the rewritten graphs in ONNX Runtime."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from vitrt import onnx_passes
from vitrt.engines.onnxruntime import OnnxRuntimeBackend, cpu_session_options
from vitrt.export.functions import function_proto


def _projection_model(consumer: str) -> onnx.ModelProto:
    """x (B, 5, 8) @ W (8, 24) + b, cut into three 8-column pieces by `consumer` (slice | split | slice-step |
    nested: TorchScript's CSwin form, `axes=[2]` slices of q/k/v that are then halved per branch)."""
    rng = np.random.default_rng(0)
    inits = [
        numpy_helper.from_array(rng.standard_normal((8, 24)).astype(np.float32), "W"),
        numpy_helper.from_array(rng.standard_normal(24).astype(np.float32), "b"),
    ]
    nodes = [helper.make_node("MatMul", ["x", "W"], ["xw"], name="/attn/qkv/MatMul")]
    nodes.append(helper.make_node("Add", ["xw", "b"], ["qkv"], name="/attn/qkv/Add"))
    pieces = ["q", "k", "v"]
    if consumer == "split":
        inits.append(numpy_helper.from_array(np.array([8, 8, 8], dtype=np.int64), "sizes"))
        nodes.append(helper.make_node("Split", ["qkv", "sizes"], pieces, axis=-1))
    else:
        step = 2 if consumer == "slice-step" else 1
        axis = 2 if consumer == "nested" else -1
        for i, name in enumerate(pieces):
            full = f"{name}_full" if consumer == "nested" else name
            for suffix, value in (("s", 8 * i), ("e", 8 * i + 8), ("a", axis), ("t", step)):
                inits.append(numpy_helper.from_array(np.array([value], dtype=np.int64), f"{name}_{suffix}"))
            bounds = [f"{name}_{s}" for s in "seat"]
            nodes.append(helper.make_node("Slice", ["qkv", *bounds], [full], name=f"/attn/Slice_{i}"))
            if consumer == "nested":  # two 4-column branch halves, joined back for the output
                for half in range(2):
                    for suffix, value in (("s", 4 * half), ("e", 4 * half + 4)):
                        inits.append(
                            numpy_helper.from_array(np.array([value], dtype=np.int64), f"{name}{half}{suffix}")
                        )
                    halves = [f"{name}{half}s", f"{name}{half}e", f"{name}_a", f"{name}_t"]
                    nodes.append(helper.make_node("Slice", [full, *halves], [f"{name}{half}"]))
                nodes.append(helper.make_node("Concat", [f"{name}0", f"{name}1"], [name], axis=-1))
    nodes.append(helper.make_node("Mul", ["q", "k"], ["qk"]))
    nodes.append(helper.make_node("Add", ["qk", "v"], ["y"]))
    graph = helper.make_graph(
        nodes,
        "projection",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 5, 8])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 5, None])],
        inits,
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])


def _run(model: onnx.ModelProto, x: np.ndarray) -> np.ndarray:
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return session.run(None, {"x": x})[0]


@pytest.mark.parametrize("consumer", ["slice", "split", "nested"])
def test_a_sliced_projection_becomes_one_matmul_per_slice_with_the_same_result(consumer: str) -> None:
    model = _projection_model(consumer)
    x = np.random.default_rng(1).standard_normal((3, 5, 8)).astype(np.float32)
    expected = _run(model, x)

    rewritten = onnx_passes.optimize_graph(model)

    ops = [node.op_type for node in rewritten.graph.node]
    assert ops.count("MatMul") == (6 if consumer == "nested" else 3) and "Slice" not in ops and "Split" not in ops
    assert all(n.name.startswith("/attn/qkv/") for n in rewritten.graph.node if n.op_type == "MatMul")
    assert {init.name for init in rewritten.graph.initializer}.isdisjoint({"W", "b"})  # the fused weights are gone
    np.testing.assert_allclose(_run(rewritten, x), expected, rtol=1e-6, atol=1e-6)


def test_a_strided_slice_of_a_projection_is_left_alone() -> None:
    model = _projection_model("slice-step")
    assert onnx_passes.split_sliced_projections(model) == 0
    assert [n.op_type for n in model.graph.node].count("Slice") == 3


def test_exported_attention_models_carry_no_sliced_projections(tmp_path: Path) -> None:
    from vitrt.export import export_model
    from vitrt.export.zoo import resolve_model

    model, _ = resolve_model("agent_digits")
    path = tmp_path / "agent_digits.onnx"
    export_model(model, path)  # validated against PyTorch at batch 1 and 8 (FP32 budget)
    graph = onnx.load(str(path)).graph
    consumers: dict[str, list[str]] = {}
    for node in graph.node:
        for name in node.input:
            consumers.setdefault(name, []).append(node.op_type)
    producers = {out: node for node in graph.node for out in node.output}
    sliced = []
    for node in graph.node:
        if node.op_type == "Add" and producers.get(node.input[0]) is not None:
            source = producers[node.input[0]]
            users = consumers.get(node.output[0], [])
            if source.op_type == "MatMul" and users and set(users) <= {"Slice", "Split"}:
                sliced.append(source.name)
    assert not sliced
    assert sum(1 for n in graph.node if n.op_type == "MatMul" and "qkv" in n.name) >= 3  # q, k, v per block


def test_inline_residual_gathers_the_nine_neighbours_at_once() -> None:
    body = function_proto("VitrtInLineAttention", 18)
    ops = [node.op_type for node in body.node]
    assert ops.count("Gather") == 1 and ops.count("Slice") == 0  # was 10 Slices and 9 Mul/Add pairs


def test_onnx_runtime_sessions_flush_denormals(tmp_path: Path) -> None:
    options = cpu_session_options(2)
    assert options.get_session_config_entry("session.set_denormal_as_zero") == "1"
    assert options.intra_op_num_threads == 2
    model = _projection_model("slice")
    path = tmp_path / "p.onnx"
    onnx.save(model, str(path))
    backend = OnnxRuntimeBackend(path, intra_op_threads=2)
    x = np.ones((1, 5, 8), dtype=np.float32)
    np.testing.assert_allclose(backend.run({"x": x})["y"], _run(model, x), rtol=1e-6)
