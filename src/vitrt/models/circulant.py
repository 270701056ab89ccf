"""Circulant attention (CA-DeiT, "Vision Transformers are Circulant Attention Learners", AAAI'26).

Official code: LeapLabTHU/Circulant-Attention `models/ca_deit.py`. A DeiT without cls token and position embedding;
each block adds a depthwise 3x3 conv position encoding (`cpe`) before `norm1`, and the classifier reads the mean of
the normalised tokens.

The official `qkv` is a bias-free "complex Linear" applied to rfft2(x). A real linear map without bias commutes with
the FFT, so vitrt applies the same weight (`attn.qkv.weight`, shape (3C, C)) to x and lets the attention op take
real q, k, v: the whole FFT pipeline lives inside `vitrt.ops.circulant_attention`, one ONNX node on export.
"""

from __future__ import annotations

from functools import partial
from typing import Any

from torch import Tensor, nn

from vitrt import ops
from vitrt.data.digits import LABELS as DIGIT_LABELS
from vitrt.models.backbones.deit import Block, DeiT
from vitrt.models.registry import ModelSpec, Variant, register_model, register_variants

__all__ = ["CABlock", "CADeiT", "CirculantAttention"]


class CirculantAttention(nn.Module):
    """Per-channel BCCB attention: gate = SiLU(Linear(x)), out = proj(circulant_attention(q, k, v) * gate)."""

    def __init__(self, dim: int, grid_size: int, proj_drop: float = 0.0) -> None:
        super().__init__()
        self.grid_size = grid_size
        self.qkv = nn.Linear(dim, dim * 3, bias=False)
        self.gate = nn.Sequential(nn.Linear(dim, dim), nn.SiLU())
        self.proj = nn.Linear(dim, dim)
        self.proj_drop = nn.Dropout(proj_drop)

    def forward(self, x: Tensor) -> Tensor:
        gate = self.gate(x)
        q, k, v = self.qkv(x).chunk(3, dim=-1)
        x = ops.circulant_attention(q, k, v, height=self.grid_size, width=self.grid_size)
        return self.proj_drop(self.proj(x * gate))


class CABlock(Block):
    """DeiT block with a depthwise 3x3 conv position encoding added before the attention branch."""

    def __init__(self, dim: int, grid_size: int, mlp_ratio: float = 4.0, drop: float = 0.0, drop_path: float = 0.0):
        super().__init__(dim, CirculantAttention(dim, grid_size, proj_drop=drop), mlp_ratio, drop, drop_path)
        self.grid_size = grid_size
        self.cpe = nn.Conv2d(dim, dim, kernel_size=3, padding=1, groups=dim)

    def forward(self, x: Tensor) -> Tensor:
        grid = x.transpose(1, 2).unflatten(-1, (self.grid_size, self.grid_size))
        x = x + self.cpe(grid).flatten(2).transpose(1, 2)
        return super().forward(x)


class CADeiT(DeiT):
    """CA-DeiT: token mean of the normalised features goes to the head; no cls token, no position embedding.

    Trunk geometry (img_size, patch_size, in_chans, num_classes, depth, drop_path_rate) goes to `DeiT`.
    """

    def __init__(self, *, embed_dim: int = 768, mlp_ratio: float = 4.0, drop_rate: float = 0.0, **trunk: Any) -> None:
        def block(index: int, drop_path: float, grid_size: int) -> nn.Module:
            return CABlock(embed_dim, grid_size, mlp_ratio, drop=drop_rate, drop_path=drop_path)

        super().__init__(
            block,
            embed_dim=embed_dim,
            class_token=False,
            pos_embed=False,
            global_pool="avg",
            drop_rate=drop_rate,
            **trunk,
        )


# CA-DeiT T/S/B use the DeiT widths; the official `num_heads` (3/6/12) is accepted but unused (d = 1).
register_variants(
    "ca",
    "deit",
    CADeiT,
    {
        "ca_deit_t": Variant("ca_deit_tiny", 6.14, dict(patch_size=16, embed_dim=192, depth=12)),
        "ca_deit_s": Variant("ca_deit_small", 23.78, dict(patch_size=16, embed_dim=384, depth=12)),
        "ca_deit_b": Variant("ca_deit_base", 93.57, dict(patch_size=16, embed_dim=768, depth=12)),
    },
)

# Demo model trained on the digits data (weights ship in vitrt/models/weights/): a 4x4 token grid of 8x8 patches
# (each covers 2x2 pixels of the original 8x8 digit), small enough to train in about a minute on two cores.
register_model(
    ModelSpec(
        name="ca_digits",
        family="ca",
        backbone="deit",
        builder=partial(CADeiT, patch_size=8, embed_dim=48, depth=4),
        default_img_size=32,
        num_classes=10,
        mean=(0.5, 0.5, 0.5),
        std=(0.5, 0.5, 0.5),
        crop_pct=1.0,
        demo_weights="ca_digits.safetensors",
        labels=DIGIT_LABELS,
    )
)
