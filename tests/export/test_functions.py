"""The standard-op function bodies, run by ONNX Runtime, against the PyTorch references at every YAML test config."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from export_toys import OP_DIRS, op_call
from onnx import TensorProto, helper

from vitrt.export.functions import MAX_OPSET, MIN_OPSET, function_proto, function_protos
from vitrt.ops import reference
from vitrt.ops.spec import load_op_specs, op_spec

CONFIGS = [(op, config) for op in OP_DIRS for config in op_spec(op).test_configs]


def single_node_model(op: str, tensors: list[torch.Tensor], attrs: dict, opset: int, fp16_safe: bool = False):
    spec = op_spec(op)
    inputs = [
        helper.make_tensor_value_info(
            name, TensorProto.FLOAT, ["batch" if declared["shape"][0] == "B" else t.shape[0], *t.shape[1:]]
        )
        for declared, name, t in zip(spec.inputs, spec.input_names, tensors, strict=True)
    ]
    output = helper.make_tensor_value_info("out", TensorProto.FLOAT, ["batch", *tensors[0].shape[1:]])
    node = helper.make_node(
        spec.name,
        spec.input_names,
        ["out"],
        domain="vitrt",
        plugin_namespace=spec.plugin_namespace,
        plugin_version=spec.plugin_version,
        **attrs,
    )
    graph = helper.make_graph([node], spec.directory, inputs, [output])
    return helper.make_model(
        graph,
        opset_imports=[helper.make_opsetid("", opset), helper.make_opsetid("vitrt", 1)],
        functions=[function_proto(spec.name, opset, fp16_safe=fp16_safe)],
    )


def run_body(op: str, tensors: list[torch.Tensor], attrs: dict, opset: int = 18, fp16_safe: bool = False):
    model = single_node_model(op, tensors, attrs, opset, fp16_safe)
    onnx.checker.check_model(model, full_check=True)
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    feeds = {name: t.numpy() for name, t in zip(op_spec(op).input_names, tensors, strict=True)}
    return torch.from_numpy(session.run(None, feeds)[0])


@pytest.mark.parametrize(("op", "config"), CONFIGS, ids=[f"{op}-{c['name']}" for op, c in CONFIGS])
def test_body_matches_reference_at_yaml_configs(op, config):
    tensors, attrs = op_call(op, config)
    spec = op_spec(op)
    expected = reference.REFERENCE[spec.name](*tensors, **attrs)
    got = run_body(op, tensors, attrs)
    atol, rtol = spec.tolerance("float32")
    torch.testing.assert_close(got, expected, atol=atol, rtol=rtol)


@pytest.mark.parametrize("opset", [MIN_OPSET, 20, MAX_OPSET])
@pytest.mark.parametrize("op", OP_DIRS)
def test_bodies_at_every_supported_opset(op, opset):
    config = op_spec(op).test_configs[2]  # the small grid_7x7 configs
    tensors, attrs = op_call(op, config, seed=1)
    expected = reference.REFERENCE[op_spec(op).name](*tensors, **attrs)
    for fp16_safe in (False, True):
        got = run_body(op, tensors, attrs, opset, fp16_safe)
        torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize(("height", "width"), [(14, 14), (7, 7), (13, 17), (1, 1), (1, 6), (5, 1), (2, 3)])
def test_circulant_body_without_dft_is_fft_accurate(height, width):
    """DFT-as-MatMul equals the FFT reference to 1e-5 at 14x14 (the issue's budget) and on odd/degenerate grids."""
    g = torch.Generator().manual_seed(3)
    q, k, v = (torch.randn(2, height * width, 192 if height == 14 else 24, generator=g) for _ in range(3))
    attrs = {"height": height, "width": width, "strategy": 0}
    got = run_body("circulant_attention", [q, k, v], attrs)
    expected = reference.circulant_attention(q, k, v, height=height, width=width)
    assert (got - expected).abs().max().item() <= 1e-5


def test_bodies_use_only_standard_onnx_ops_and_no_dft():
    for opset in (MIN_OPSET, MAX_OPSET):
        for name, function in function_protos(opset).items():
            assert {n.domain for n in function.node} <= {""}, name
            for node in function.node:
                onnx.defs.get_schema(node.op_type, opset, "")  # raises for anything non-standard
            assert "DFT" not in {n.op_type for n in function.node}, name
            assert [o.version for o in function.opset_import if o.domain == ""] == [opset]
            assert list(function.attribute) == load_op_specs()[name].attribute_names


def test_body_runs_at_any_batch_size():
    """The bodies read batch and token counts from their inputs: one file serves batch 1 and 9."""
    op = "inline_attention"
    config = {"B": 1, "H": 5, "W": 6, "C": 24, "prefix": 1, "attrs": {"num_heads": 3}}
    tensors, attrs = op_call(op, config)
    model = single_node_model(op, tensors, attrs, 18)
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    for batch in (1, 9):
        config["B"] = batch
        tensors, _ = op_call(op, config, seed=batch)
        feeds = {name: t.numpy() for name, t in zip(op_spec(op).input_names, tensors, strict=True)}
        got = session.run(None, feeds)[0]
        expected = reference.inline_attention(*tensors, **attrs).numpy()
        np.testing.assert_allclose(got, expected, atol=1e-5, rtol=1e-4)


def _focused_linear_attention_float64(q, k, v, pos, scale, num_heads, focusing_factor):
    """The FLatten math in float64 (the reference computes in FP32 and overflows exactly like the plain body)."""
    q, k, v = q.double(), (k + pos).double(), v.double()
    q, k = torch.relu(q) + 1e-6, torch.relu(k) + 1e-6
    s = torch.nn.functional.softplus(scale.double())
    q, k = reference._focus(q / s, focusing_factor), reference._focus(k / s, focusing_factor)
    n = q.shape[1]
    q, k, v = reference._heads(q, num_heads), reference._heads(k, num_heads), reference._heads(v, num_heads)
    z = 1.0 / (q @ k.mean(dim=-2, keepdim=True).transpose(-2, -1) + 1e-6)
    kv = (k.transpose(-2, -1) * n**-0.5) @ (v * n**-0.5)
    return reference._merge_heads((q @ kv) * z)


def test_fp16_safe_focusing_survives_activations_that_overflow_the_plain_form():
    """||x^3|| squares x^3: activations of 1e8 overflow it in FP32, as activations of ~7 do in FP16. The
    x / max(x) form keeps every intermediate bounded and still equals the math (checked in float64)."""
    config = {"B": 2, "H": 4, "W": 4, "C": 8, "attrs": {"num_heads": 2}}
    tensors, attrs = op_call("focused_linear_attention", config, seed=5)
    q, k, v, pos, scale = tensors
    q, k = q * 1e8, k * 1e8
    expected = _focused_linear_attention_float64(q, k, v, pos, scale, **attrs)
    plain = run_body("focused_linear_attention", [q, k, v, pos, scale], attrs, fp16_safe=False)
    safe = run_body("focused_linear_attention", [q, k, v, pos, scale], attrs, fp16_safe=True)
    assert (plain.double() - expected).abs().max() > 0.1  # the plain form collapses to zeros
    torch.testing.assert_close(safe.double(), expected, atol=1e-5, rtol=1e-4)


def test_function_protos_validate_their_arguments():
    with pytest.raises(ValueError, match="opset"):
        function_proto("VitrtAgentAttention", 16)
    with pytest.raises(KeyError):
        function_proto("Attention", 18)
