"""Small ViT-like models exported with plain `torch.onnx.export` (+ vitrt metadata) for the engine/parity tests.

Imported by the tests of this directory as `tinyvit` (pytest puts the directory on sys.path).
"""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import onnx
import torch
from onnx import TensorProto, helper, numpy_helper
from torch import nn

from vitrt.data.digits import LABELS
from vitrt.metadata import ModelMetadata

IMG = 16


class Attention(nn.Module):
    def __init__(self, dim: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(dim, dim * 3)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n, c = x.shape
        q, k, v = self.qkv(x).reshape(b, n, 3, self.heads, c // self.heads).permute(2, 0, 3, 1, 4)
        attn = (q @ k.transpose(-2, -1) * (c // self.heads) ** -0.5).softmax(dim=-1)
        return self.proj((attn @ v).transpose(1, 2).reshape(b, n, c))


class Block(nn.Module):
    def __init__(self, dim: int, heads: int) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.attn = Attention(dim, heads)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = nn.Sequential(nn.Linear(dim, dim * 2), nn.GELU(), nn.Linear(dim * 2, dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class TinyViT(nn.Module):
    """Patch embedding, `blocks.N` transformer blocks, mean pooling and a 10-class head."""

    def __init__(self, dim: int = 32, depth: int = 3, heads: int = 2, num_classes: int = 10) -> None:
        super().__init__()
        self.patch_embed = nn.Conv2d(3, dim, 4, 4)
        self.pos_embed = nn.Parameter(torch.randn(1, (IMG // 4) ** 2, dim) * 0.02)
        self.blocks = nn.Sequential(*[Block(dim, heads) for _ in range(depth)])
        self.norm = nn.LayerNorm(dim)
        self.head = nn.Linear(dim, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.patch_embed(x).flatten(2).transpose(1, 2) + self.pos_embed
        x = self.blocks(x)
        return self.head(self.norm(x).mean(dim=1))


def tiny_metadata(**overrides: object) -> ModelMetadata:
    values: dict[str, object] = dict(
        model="tiny_vit_test",
        family="ca",
        backbone="tiny",
        input_size=(3, IMG, IMG),
        mean=(0.5, 0.5, 0.5),
        std=(0.5, 0.5, 0.5),
        crop_pct=1.0,
        num_classes=10,
        labels=list(LABELS),
        flavour="portable",
        opset=18,
    )
    values.update(overrides)
    return ModelMetadata(**values)  # type: ignore[arg-type]


def make_tiny_vit(seed: int = 0) -> TinyViT:
    torch.manual_seed(seed)
    model = TinyViT().eval()
    model.vitrt_metadata = tiny_metadata()  # type: ignore[assignment]
    return model


def export_onnx(model: nn.Module, path: Path, *, dynamic: bool = True, batch: int = 2) -> Path:
    """Plain dynamo export plus vitrt metadata_props, as the tests' stand-in for `vitrt export`."""
    meta = copy.deepcopy(getattr(model, "vitrt_metadata", None) or tiny_metadata())
    x = torch.randn(batch, *meta.input_size)
    shapes = {"x": {0: torch.export.Dim("batch", min=1, max=1024)}} if dynamic else None
    torch.onnx.export(
        model,
        (x,),
        str(path),
        dynamo=True,
        input_names=[meta.input_name],
        output_names=[meta.output_name],
        dynamic_shapes=shapes,
        verbose=False,
    )
    proto = onnx.load(str(path))
    meta.batch = "dynamic" if dynamic else str(batch)
    for key, value in meta.to_props().items():
        proto.metadata_props.append(onnx.StringStringEntryProto(key=key, value=value))
    onnx.save(proto, str(path))
    return path


def vitrt_op_model(op_type: str = "VitrtScaledSoftmax", with_function: bool = True) -> onnx.ModelProto:
    """A graph `input -> MatMul -> two vitrt nodes (function bodies: Mul(scale) + Softmax) -> logits`, like the
    exporter's node + body."""
    nodes = [
        helper.make_node("Constant", [], ["s"], name="scale_const", value_float=0.0),
        helper.make_node("Mul", ["x", "s"], ["m"], name="mul"),
        helper.make_node("Softmax", ["m"], ["y"], axis=-1, name="softmax"),
    ]
    nodes[0].ClearField("attribute")
    ref = helper.make_attribute("value_float", 0.0)
    ref.ref_attr_name = "scale"
    nodes[0].attribute.append(ref)
    function = helper.make_function(
        "vitrt", op_type, ["x"], ["y"], nodes, opset_imports=[helper.make_opsetid("", 18)], attributes=["scale"]
    )
    rng = np.random.default_rng(0)
    graph = helper.make_graph(
        [
            helper.make_node("MatMul", ["input", "W"], ["a"], name="matmul"),
            helper.make_node(op_type, ["a"], ["b"], domain="vitrt", name="attn0", scale=0.5),
            helper.make_node(
                op_type,
                ["b"],
                ["logits"],
                domain="vitrt",
                name="attn1",
                scale=2.0,
                plugin_namespace="vitrt",
                plugin_version="1",
            ),
        ],
        "g",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["batch", 8])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", 8])],
        [numpy_helper.from_array(rng.standard_normal((8, 8)).astype(np.float32), "W")],
    )
    model = helper.make_model(
        graph,
        opset_imports=[helper.make_opsetid("", 18), helper.make_opsetid("vitrt", 1)],
        functions=[function] if with_function else [],
    )
    meta = tiny_metadata(model="vitrt_op_test", input_size=(8, 1, 1))
    for key, value in meta.to_props().items():
        model.metadata_props.append(onnx.StringStringEntryProto(key=key, value=value))
    return model


def perturbed_onnx(source: Path, out: Path, initializer: str, delta: float) -> Path:
    model = onnx.load(str(source))
    init = next((i for i in model.graph.initializer if i.name == initializer), None)
    assert init is not None, f"{initializer} not in {[i.name for i in model.graph.initializer]}"
    init.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(init) + np.float32(delta), init.name))
    onnx.save(model, str(out))
    return out
