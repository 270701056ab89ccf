"""Small hand-built ONNX models that tests in several folders share."""

from __future__ import annotations

from pathlib import Path


def save_unconvertible_for_openvino(path: Path) -> Path:
    """A valid model ONNX Runtime runs but OpenVINO's ONNX frontend has no rule for (ai.onnx.ml Scaler)."""
    import onnx
    from onnx import TensorProto, helper

    node = helper.make_node("Scaler", ["x"], ["y"], domain="ai.onnx.ml", offset=[0.0] * 4, scale=[2.0] * 4)
    graph = helper.make_graph(
        [node],
        "scaler",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["n", 4])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("ai.onnx.ml", 3)])
    model.ir_version = 8
    onnx.save(model, str(path))
    return path
