"""MLLA (NeurIPS'24, "Demystify Mamba in Vision: A Linear Attention Perspective").

Re-implements the official module tree (`patch_embed.conv{1,2,3}`, `layers.{i}.blocks.{j}.{cpe1, norm1, in_proj,
act_proj, dwc, attn.{qk, lepe, rope.rotations}, out_proj, cpe2, norm2, mlp}`, `layers.{i}.downsample.conv`, `norm`,
`head`) so official checkpoints (`model` or `state_dict_ema`) load strictly. The attention core, RoPE included, is
`vitrt.ops.mlla_linear_attention` (one ONNX node on export); it takes the persistent `rotations` buffer as a real
(N, C/2, 2) cos/sin table instead of the official complex multiply, which does not export.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import partial

import torch
from timm.layers import DropPath, Mlp
from torch import Tensor, nn

from vitrt import ops
from vitrt.data.digits import LABELS as DIGIT_LABELS
from vitrt.errors import ModelConfigError
from vitrt.models.backbones.common import AdaptLog, replace_buffer_entry
from vitrt.models.backbones.cswin import map_to_tokens, tokens_to_map
from vitrt.models.backbones.swin import HierarchicalClassifier, SwinStage
from vitrt.models.registry import ModelSpec, Variant, register_model, register_variants


class ConvLayer(nn.Module):
    """Conv2d, optional BatchNorm2d (`norm`) and optional activation (`act`, ReLU by default)."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int = 3,
        stride: int = 1,
        padding: int = 0,
        groups: int = 1,
        bias: bool = True,
        norm: bool = True,
        act: bool = True,
    ):
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, kernel_size, stride, padding, groups=groups, bias=bias)
        self.norm = nn.BatchNorm2d(out_channels) if norm else None
        self.act = nn.ReLU() if act else None

    def forward(self, x: Tensor) -> Tensor:
        x = self.conv(x)
        if self.norm is not None:
            x = self.norm(x)
        return self.act(x) if self.act is not None else x


class Stem(nn.Module):
    """Convolutional stem, stride 4: conv s2, a residual pair of 3x3 convs, conv s2 to 4C and a 1x1 conv to C."""

    def __init__(self, img_size: int, in_chans: int, embed_dim: int):
        super().__init__()
        self.img_size = (img_size, img_size)
        self.patches_resolution = (img_size // 4, img_size // 4)
        half = embed_dim // 2
        self.conv1 = ConvLayer(in_chans, half, kernel_size=3, stride=2, padding=1, bias=False)
        self.conv2 = nn.Sequential(
            ConvLayer(half, half, kernel_size=3, stride=1, padding=1, bias=False),
            ConvLayer(half, half, kernel_size=3, stride=1, padding=1, bias=False, act=False),
        )
        self.conv3 = nn.Sequential(
            ConvLayer(half, embed_dim * 4, kernel_size=3, stride=2, padding=1, bias=False),
            ConvLayer(embed_dim * 4, embed_dim, kernel_size=1, bias=False, act=False),
        )

    def forward(self, x: Tensor) -> Tensor:
        if tuple(x.shape[-2:]) != self.img_size:
            raise ModelConfigError(
                f"input is {x.shape[-2]}x{x.shape[-1]} but the model was built for {self.img_size[0]}x"
                f"{self.img_size[1]}; create it with img_size={x.shape[-1]} or resize the input"
            )
        x = self.conv1(x)
        x = self.conv2(x) + x
        return map_to_tokens(self.conv3(x))


def rope_rotations(resolution: tuple[int, int], dim: int, base: float = 10000.0) -> Tensor:
    """The official 2-D RoPE table (H, W, C/2, 2) of [cos, sin]: the first C/4 channel pairs rotate with the row
    index, the next C/4 with the column index, at frequencies base^(-j / (C/4))."""
    k_max = dim // 4
    theta = 1 / (base ** (torch.arange(k_max) / k_max))
    rows, cols = torch.meshgrid(torch.arange(resolution[0]), torch.arange(resolution[1]), indexing="ij")
    angles = torch.cat([rows.unsqueeze(-1) * theta, cols.unsqueeze(-1) * theta], dim=-1)
    return torch.stack([torch.cos(angles), torch.sin(angles)], dim=-1)


class RoPE(nn.Module):
    """Holds the persistent `rotations` buffer (part of the official state_dict)."""

    rotations: Tensor

    def __init__(self, resolution: tuple[int, int], dim: int, base: float = 10000.0):
        super().__init__()
        self.resolution = resolution
        self.dim = dim
        self.base = base
        self.register_buffer("rotations", rope_rotations(resolution, dim, base))

    def table(self) -> Tensor:
        """The rotations as the op's real (N, C/2, 2) cos/sin table."""
        return self.rotations.reshape(-1, self.dim // 2, 2)

    def adapt_checkpoint_entries(self, prefix: str, state: dict[str, Tensor], log: AdaptLog) -> None:
        replace_buffer_entry(state, prefix + "rotations", self.rotations, log, "rope.rotations")


class LinearAttention(nn.Module):
    """MLLA linear attention with RoPE on q/k and LePE on v; v is the input itself (no v projection)."""

    def __init__(self, dim: int, input_resolution: tuple[int, int], num_heads: int, qkv_bias: bool = True):
        super().__init__()
        self.dim = dim
        self.input_resolution = input_resolution
        self.num_heads = num_heads
        self.qk = nn.Linear(dim, dim * 2, bias=qkv_bias)
        self.lepe = nn.Conv2d(dim, dim, 3, padding=1, groups=dim)
        self.rope = RoPE(input_resolution, dim)

    def forward(self, x: Tensor) -> Tensor:
        q, k = self.qk(x).chunk(2, dim=-1)
        out = ops.mlla_linear_attention(q, k, x, self.rope.table(), num_heads=self.num_heads)
        return out + map_to_tokens(self.lepe(tokens_to_map(x, *self.input_resolution)))

    def extra_repr(self) -> str:
        return f"dim={self.dim}, num_heads={self.num_heads}"


class MLLABlock(nn.Module):
    """cpe1 -> gated (in_proj, dwc, SiLU, attention) x SiLU(act_proj) branch -> cpe2 -> MLP."""

    def __init__(
        self,
        dim: int,
        input_resolution: tuple[int, int],
        num_heads: int,
        mlp_ratio: float = 4.0,
        qkv_bias: bool = True,
        drop: float = 0.0,
        drop_path: float = 0.0,
    ):
        super().__init__()
        self.dim = dim
        self.input_resolution = input_resolution
        self.cpe1 = nn.Conv2d(dim, dim, 3, padding=1, groups=dim)
        self.norm1 = nn.LayerNorm(dim)
        self.in_proj = nn.Linear(dim, dim)
        self.act_proj = nn.Linear(dim, dim)
        self.dwc = nn.Conv2d(dim, dim, 3, padding=1, groups=dim)
        self.act = nn.SiLU()
        self.attn = LinearAttention(dim, input_resolution, num_heads, qkv_bias)
        self.out_proj = nn.Linear(dim, dim)
        self.drop_path = DropPath(drop_path) if drop_path > 0.0 else nn.Identity()
        self.cpe2 = nn.Conv2d(dim, dim, 3, padding=1, groups=dim)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = Mlp(in_features=dim, hidden_features=int(dim * mlp_ratio), act_layer=nn.GELU, drop=drop)

    def forward(self, x: Tensor) -> Tensor:
        height, width = self.input_resolution
        x = x + map_to_tokens(self.cpe1(tokens_to_map(x, height, width)))
        shortcut = x
        x = self.norm1(x)
        gate = self.act(self.act_proj(x))
        x = map_to_tokens(self.act(self.dwc(tokens_to_map(self.in_proj(x), height, width))))
        x = self.attn(x)
        x = shortcut + self.drop_path(self.out_proj(x * gate))
        x = x + map_to_tokens(self.cpe2(tokens_to_map(x, height, width)))
        return x + self.drop_path(self.mlp(self.norm2(x)))


class PatchMerging(nn.Module):
    """MBConv-like downsampling C -> 2C: 1x1 (ratio*2C) + ReLU, depthwise 3x3 stride 2 + ReLU, 1x1 + BN."""

    def __init__(self, input_resolution: tuple[int, int], dim: int, ratio: float = 4.0):
        super().__init__()
        self.input_resolution = input_resolution
        hidden = int(2 * dim * ratio)
        self.conv = nn.Sequential(
            ConvLayer(dim, hidden, kernel_size=1, norm=False),
            ConvLayer(hidden, hidden, kernel_size=3, stride=2, padding=1, groups=hidden, norm=False),
            ConvLayer(hidden, 2 * dim, kernel_size=1, act=False),
        )

    def forward(self, x: Tensor) -> Tensor:
        return map_to_tokens(self.conv(tokens_to_map(x, *self.input_resolution)))


class MLLA(HierarchicalClassifier):
    """MLLA classifier (`mlla`): convolutional stem, four MLLA stages with MBConv downsampling, LayerNorm, mean pool,
    linear head. A checkpoint from another resolution only needs its RoPE `rotations` recomputed.

    Args:
        img_size: square input size, a multiple of 4 * 2**(stages-1) (32 for four stages).
    """

    def __init__(
        self,
        *,
        img_size: int = 224,
        in_chans: int = 3,
        num_classes: int = 1000,
        embed_dim: int = 64,
        depths: Sequence[int] = (2, 4, 8, 4),
        num_heads: Sequence[int] = (2, 4, 8, 16),
        mlp_ratio: float = 4.0,
        qkv_bias: bool = True,
        drop_rate: float = 0.0,
        drop_path_rate: float = 0.2,
    ):
        super().__init__()
        stages = len(depths)
        if len(num_heads) != stages:
            raise ModelConfigError(f"mlla: {stages} depths but {len(num_heads)} num_heads")
        stride = 4 * 2 ** (stages - 1)
        if img_size <= 0 or img_size % stride:
            raise ModelConfigError(
                f"mlla: img_size {img_size} is not a positive multiple of {stride} (stem stride 4 x 2^{stages - 1})"
            )
        for i, heads in enumerate(num_heads):
            dim = embed_dim * 2**i
            if dim % 4 or dim % heads or (dim // heads) % 2:
                raise ModelConfigError(
                    f"mlla: stage {i + 1} width {dim} must be divisible by 4 (2-D RoPE) and by {heads} heads "
                    "into an even head dim"
                )
        self.num_classes = num_classes
        self.num_layers = stages
        self.embed_dim = embed_dim
        self.num_features = int(embed_dim * 2 ** (stages - 1))
        self.img_size = img_size
        self.patch_embed = Stem(img_size, in_chans, embed_dim)
        self.pos_drop = nn.Dropout(p=drop_rate)
        total = sum(depths)
        rates = [drop_path_rate * i / (total - 1) if total > 1 else 0.0 for i in range(total)]
        layers = []
        for i, (depth, heads) in enumerate(zip(depths, num_heads, strict=True)):
            dim = embed_dim * 2**i
            side = img_size // 4 // 2**i
            blocks = [
                MLLABlock(dim, (side, side), heads, mlp_ratio, qkv_bias, drop_rate, rates[sum(depths[:i]) + j])
                for j in range(depth)
            ]
            downsample = PatchMerging((side, side), dim) if i < stages - 1 else None
            layers.append(SwinStage(blocks, downsample))
        self.layers = nn.ModuleList(layers)
        self.init_head(num_classes)


register_variants(
    "mlla",
    "mlla",
    MLLA,
    {
        "mlla_t": Variant(
            "mlla (cfgs/mlla_t.yaml)",
            24.4,
            dict(embed_dim=64, depths=(2, 4, 8, 4), num_heads=(2, 4, 8, 16), drop_path_rate=0.2),
        ),
        "mlla_s": Variant(
            "mlla (cfgs/mlla_s.yaml)",
            43.0,
            dict(embed_dim=64, depths=(3, 6, 21, 6), num_heads=(2, 4, 8, 16), drop_path_rate=0.3),
        ),
        "mlla_b": Variant(
            "mlla (cfgs/mlla_b.yaml)",
            96.0,
            dict(embed_dim=96, depths=(3, 6, 21, 6), num_heads=(3, 6, 12, 24), drop_path_rate=0.5),
        ),
    },
)

# Trained demo: 8x8 -> 4x4 -> 2x2 token maps after the stride-4 stem.
register_model(
    ModelSpec(
        name="mlla_digits",
        family="mlla",
        backbone="mlla",
        builder=partial(MLLA, embed_dim=32, depths=(2, 2, 1), num_heads=(2, 4, 8), drop_path_rate=0.05),
        default_img_size=32,
        official_name="mlla (demo configuration)",
        num_classes=10,
        mean=(0.31, 0.31, 0.31),
        std=(0.35, 0.35, 0.35),
        crop_pct=1.0,
        demo_weights="mlla_digits.safetensors",
        labels=DIGIT_LABELS,
    )
)
