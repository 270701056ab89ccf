"""Small modules whose attention goes through `vitrt.ops`: one per op (shapes from the YAML test configs) and a
ViT-like stack using all five ops, with cls-token Agent and InLine blocks. Their eager forward is plain PyTorch (the
op references); export routes them through the custom ops."""

from __future__ import annotations

import math

import numpy as np
import onnx
import onnxruntime as ort
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from vitrt import ops
from vitrt.models.layers import adaptive_pool_matrix
from vitrt.ops.spec import load_op_specs

FLAVOURS = ("portable", "tensorrt", "inlined")
OP_DIRS = (
    "circulant_attention",
    "focused_linear_attention",
    "agent_attention",
    "inline_attention",
    "mlla_linear_attention",
)


def rope_table(height: int, width: int, channels: int, base: float = 10000.0) -> Tensor:
    """MLLA's 2-D RoPE as (N, C/2, 2) [cos, sin]: first C/4 pairs rotate with the row, the rest with the column."""
    k_max = channels // 4
    theta = base ** (-torch.arange(k_max, dtype=torch.float64) / k_max)
    rows = torch.arange(height, dtype=torch.float64)[:, None, None] * theta
    cols = torch.arange(width, dtype=torch.float64)[None, :, None] * theta
    angles = torch.cat([rows.expand(height, width, k_max), cols.expand(height, width, k_max)], dim=-1)
    return torch.stack([angles.cos(), angles.sin()], dim=-1).reshape(height * width, channels // 2, 2).float()


class OpBlock(nn.Module):
    """Feature map (B, C, H, W) -> tokens -> q/k/v projections -> one vitrt op -> (B, n, C).

    With `prefix` > 0 a learned cls token is prepended (Agent/InLine DeiT case).
    """

    def __init__(
        self,
        op: str,
        height: int,
        width: int,
        channels: int,
        attrs: dict | None = None,
        *,
        prefix: int = 0,
        agents: int = 49,
    ) -> None:
        super().__init__()
        attrs = dict(attrs or {})
        self.op, self.height, self.width, self.channels, self.prefix = op, height, width, channels, prefix
        self.num_heads = int(attrs.get("num_heads", 1))
        self.focusing_factor = float(attrs.get("focusing_factor", 3.0))
        n = prefix + height * width
        self.cls_token = nn.Parameter(torch.randn(1, prefix, channels) * 0.5) if prefix else None
        self.qkv = nn.Linear(channels, 3 * channels)
        self.scale = (channels // self.num_heads) ** -0.5
        if op == "focused_linear_attention":
            self.positional_encoding = nn.Parameter(torch.randn(1, n, channels) * 0.1)
            self.softplus_scale = nn.Parameter(torch.randn(1, 1, channels) * 0.1)
        elif op == "agent_attention":
            side = int(math.isqrt(agents))
            self.register_buffer("pool", adaptive_pool_matrix((height, width), (side, side)), persistent=False)
            self.agent_bias = nn.Parameter(torch.randn(self.num_heads, agents, n) * 0.1)
            self.query_bias = nn.Parameter(torch.randn(self.num_heads, n, agents) * 0.1)
        elif op == "inline_attention":
            self.residual = nn.Sequential(nn.Linear(channels, channels), nn.GELU(), nn.Linear(channels, 9 * channels))
        elif op == "mlla_linear_attention":
            self.register_buffer("rope", rope_table(height, width, channels), persistent=False)

    def tokens(self, x: Tensor) -> Tensor:
        tokens = x.flatten(2).transpose(1, 2)
        if self.cls_token is not None:
            tokens = torch.cat([self.cls_token.expand(x.shape[0], -1, -1), tokens], dim=1)
        return tokens

    def attend(self, tokens: Tensor) -> Tensor:
        q, k, v = self.qkv(tokens).chunk(3, dim=-1)
        if self.op == "circulant_attention":
            return ops.circulant_attention(q, k, v, height=self.height, width=self.width)
        if self.op == "focused_linear_attention":
            return ops.focused_linear_attention(
                q,
                k,
                v,
                self.positional_encoding,
                self.softplus_scale,
                num_heads=self.num_heads,
                focusing_factor=self.focusing_factor,
            )
        if self.op == "agent_attention":
            agents = self.pool @ q[:, self.prefix :]
            return ops.agent_attention(
                q, k, v, agents, self.agent_bias, self.query_bias, num_heads=self.num_heads, scale=self.scale
            )
        if self.op == "inline_attention":
            taps = self.residual(tokens.mean(dim=1)).reshape(tokens.shape[0], self.channels, 9)
            return ops.inline_attention(
                q,
                k,
                v,
                taps,
                num_heads=self.num_heads,
                height=self.height,
                width=self.width,
                num_prefix_tokens=self.prefix,
                scale=self.scale,
            )
        if self.op == "mlla_linear_attention":
            return ops.mlla_linear_attention(q, k, tokens, self.rope, num_heads=self.num_heads)
        raise ValueError(self.op)

    def forward(self, x: Tensor) -> Tensor:
        return self.attend(self.tokens(x))


class Block(nn.Module):
    """Pre-norm residual block around one OpBlock's attention, on tokens."""

    def __init__(self, attention: OpBlock) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(attention.channels)
        self.attn = attention
        self.proj = nn.Linear(attention.channels, attention.channels)

    def forward(self, tokens: Tensor) -> Tensor:
        return tokens + self.proj(self.attn.attend(self.norm(tokens)))


class TinyStack(nn.Module):
    """ViT-like: 4x4 patch embedding of a 56x56 image to a 14x14 grid, CA, FLatten and MLLA blocks on patch tokens,
    then a cls token and Agent and InLine blocks with the cls token, head on the cls token.

    `per_block=True` returns (logits, block outputs...) like the parity tool's wrappers.
    """

    def __init__(self, channels: int = 32, num_classes: int = 10, per_block: bool = False) -> None:
        super().__init__()
        side = 14
        self.per_block = per_block
        self.embed = nn.Conv2d(3, channels, kernel_size=4, stride=4)
        self.patch_blocks = nn.ModuleList(
            Block(OpBlock(op, side, side, channels, {"num_heads": 2}))
            for op in ("circulant_attention", "focused_linear_attention", "mlla_linear_attention")
        )
        self.cls_token = nn.Parameter(torch.randn(1, 1, channels) * 0.5)
        self.cls_blocks = nn.ModuleList(
            Block(OpBlock(op, side, side, channels, {"num_heads": 4}, prefix=1, agents=9))
            for op in ("agent_attention", "inline_attention")
        )
        self.norm = nn.LayerNorm(channels)
        self.head = nn.Linear(channels, num_classes)

    def forward(self, x: Tensor) -> Tensor | tuple[Tensor, ...]:
        tokens = self.embed(x).flatten(2).transpose(1, 2)
        outputs = []
        for block in self.patch_blocks:
            tokens = block(tokens)
            outputs.append(tokens)
        tokens = torch.cat([self.cls_token.expand(tokens.shape[0], -1, -1), tokens], dim=1)
        for block in self.cls_blocks:
            tokens = block(tokens)
            outputs.append(tokens)
        logits = self.head(self.norm(tokens[:, 0]))
        return (logits, *outputs) if self.per_block else logits


def frozen_batch_module() -> nn.Module:
    """A module whose reshape bakes the example batch into the graph (Python int arithmetic on the batch size):
    the trace is only right at the batch it was made with."""

    class FrozenBatch(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.proj = nn.Linear(16, 4)

        def forward(self, x: Tensor) -> Tensor:
            batch = int(x.shape[0] * 1.0)  # a Python float round-trip loses the symbolic batch
            return self.proj(F.adaptive_avg_pool2d(x, 1).reshape(batch, 16))

    return FrozenBatch()


def op_call(op: str, config: dict, seed: int = 0) -> tuple[list[Tensor], dict]:
    """Random inputs and resolved attributes for one op at a YAML test config (as the models would feed them)."""
    from vitrt.ops.spec import op_spec

    spec = op_spec(op)
    g = torch.Generator().manual_seed(seed)
    b, h, w, c = config["B"], config["H"], config["W"], config["C"]
    prefix = config.get("prefix", 0)
    n = prefix + h * w
    attrs = dict(config.get("attrs", {}))
    heads = attrs.get("num_heads", 1)

    def randn(*shape: int, scale: float = 1.0) -> Tensor:
        return torch.randn(shape, generator=g) * scale

    q, k, v = randn(b, n, c), randn(b, n, c), randn(b, n, c)
    if op == "circulant_attention":
        tensors, attrs = [q, k, v], {"height": h, "width": w}
    elif op == "focused_linear_attention":
        tensors = [q, k, v, randn(1, n, c, scale=0.1), randn(1, 1, c, scale=0.1)]
    elif op == "agent_attention":
        a = config["a"]
        side = int(math.isqrt(a))
        grid = q[:, prefix:]
        agents = adaptive_pool_matrix((h, w), (side, a // side)) @ grid
        tensors = [q, k, v, agents, randn(heads, a, n, scale=0.1), randn(heads, n, a, scale=0.1)]
        attrs["scale"] = (c // heads) ** -0.5
    elif op == "inline_attention":
        tensors = [q, k, v, randn(b, c, 9, scale=0.3)]
        attrs.update(height=h, width=w, num_prefix_tokens=prefix, scale=(c // heads) ** -0.5)
    elif op == "mlla_linear_attention":
        tensors = [q, k, v, rope_table(h, w, c)]
    else:
        raise ValueError(op)
    return tensors, spec.resolve_attributes(attrs)


# --- assertions shared by the export tests ---------------------------------------------------------------------


def vitrt_nodes(model: onnx.ModelProto) -> list[onnx.NodeProto]:
    return [n for n in model.graph.node if n.domain == "vitrt"]


def run_file(path, x: np.ndarray) -> list[np.ndarray]:
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return session.run(None, {session.get_inputs()[0].name: x})


def assert_flavour_structure(files: dict, expected_ops: dict[str, int]) -> None:
    """portable: each op one vitrt node with plugin fields + a body; tensorrt: the same nodes, no bodies;
    inlined: no vitrt node, no body."""
    specs = load_op_specs()
    portable = onnx.load(files["portable"])
    counts: dict[str, int] = {}
    for node in vitrt_nodes(portable):
        counts[node.op_type] = counts.get(node.op_type, 0) + 1
        attrs = {a.name: a for a in node.attribute}
        assert onnx.helper.get_attribute_value(attrs["plugin_namespace"]) == b"vitrt"
        assert onnx.helper.get_attribute_value(attrs["plugin_version"]) == b"1"
        for declared in specs[node.op_type].attributes:
            kind = onnx.AttributeProto.INT if declared.type == "int" else onnx.AttributeProto.FLOAT
            assert attrs[declared.name].type == kind, (node.op_type, declared.name)
        assert set(attrs) == {*specs[node.op_type].attribute_names, "plugin_namespace", "plugin_version"}
    assert counts == expected_ops
    assert sorted(f.name for f in portable.functions if f.domain == "vitrt") == sorted(expected_ops)
    assert {"vitrt": 1}.items() <= {o.domain: o.version for o in portable.opset_import}.items()

    tensorrt = onnx.load(files["tensorrt"])
    assert [f.name for f in tensorrt.functions] == []
    assert [(n.op_type, n.input, n.output) for n in vitrt_nodes(tensorrt)] == [
        (n.op_type, n.input, n.output) for n in vitrt_nodes(portable)
    ]
    assert all(any(a.name == "plugin_namespace" for a in n.attribute) for n in vitrt_nodes(tensorrt))

    inlined = onnx.load(files["inlined"])
    assert vitrt_nodes(inlined) == [] and list(inlined.functions) == []
    assert "DFT" not in {n.op_type for n in inlined.graph.node}
    assert all(o.domain in ("", "ai.onnx") for o in inlined.opset_import)


def count_op_calls(model: nn.Module, x: Tensor) -> dict[str, int]:
    """How many times each vitrt op runs in one eager forward (an independent count of the attention nodes an
    export must contain)."""
    from collections import Counter

    from vitrt.ops import reference, register_implementation, use_implementation

    calls: Counter[str] = Counter()
    for op_type, fn in reference.REFERENCE.items():

        def counted(*args, _op=op_type, _fn=fn, **kwargs):
            calls[_op] += 1
            return _fn(*args, **kwargs)

        register_implementation("counting", op_type, counted)
    with use_implementation("counting"), torch.no_grad():
        model(x)
    return dict(sorted(calls.items()))


class Unpicklable:
    """An arbitrary object inside a checkpoint: the safe loader refuses it, --trust-checkpoint accepts it."""

    def __init__(self) -> None:
        self.note = "training state"


def build_tiny_stack(img_size: int = 56, num_classes: int = 10, **kwargs) -> TinyStack:
    """Registry builder for the toy zoo entry used by the CLI tests (only 56 x 56 inputs fit its patch grid)."""
    if img_size != 56:
        raise ValueError(f"TinyStack needs 56 x 56 inputs, got {img_size}")
    return TinyStack(num_classes=num_classes, **kwargs)
