"""InLine attention (injective linear attention, NeurIPS'24): the InLine models of the zoo.

Official code: LeapLabTHU/InLine `models/inline_{deit,swin,pvt,cswin}.py`. The attention core (linear attention with
the injective mean correction plus the per-sample 3x3 local residual) runs in `vitrt.ops.inline_attention`, one
ONNX node on export; the projections and the residual MLP that predicts the local kernel are ordinary modules.
"""

from __future__ import annotations

from typing import Any

from torch import Tensor, nn

from vitrt import ops
from vitrt.data.digits import LABELS as DIGIT_LABELS
from vitrt.models.backbones.deit import Block, DeiT
from vitrt.models.registry import ModelSpec, register_model

# --- DeiT backbone ---
# InLine-DeiT (official `models/inline_deit.py`): every block is an InLine block; cls token, absolute position
# embedding and a cls-token head as in a standard DeiT, with unusual widths (T 192/6 heads, S 320/10, B 384/12).


class DeiTInLineAttention(nn.Module):
    """InLine attention over (cls + H*W) tokens; the local residual acts on the patch tokens only."""

    def __init__(self, dim: int, num_heads: int, grid_size: int, qkv_bias: bool = True, proj_drop: float = 0.0) -> None:
        super().__init__()
        self.dim = dim
        self.num_heads = num_heads
        self.grid_size = grid_size
        self.scale = (dim // num_heads) ** -0.5
        self.qkv = nn.Linear(dim, dim * 3, bias=qkv_bias)
        self.proj = nn.Linear(dim, dim)
        self.proj_drop = nn.Dropout(proj_drop)
        # Predicts a per-sample, per-channel 3x3 kernel from the token mean (grouped by head).
        self.residual = nn.Sequential(
            nn.Conv1d(dim, dim, kernel_size=1, groups=num_heads),
            nn.GELU(),
            nn.Conv1d(dim, dim * 9, kernel_size=1, groups=num_heads),
        )

    def forward(self, x: Tensor) -> Tensor:
        q, k, v = self.qkv(x).chunk(3, dim=-1)
        # (B, 9C, 1) -> (B, C, 9): channel c's taps are rows 9c..9c+8, row-major over the 3x3 window.
        local_kernel = self.residual(x.mean(dim=1).unsqueeze(-1)).squeeze(-1).unflatten(-1, (self.dim, 9))
        x = ops.inline_attention(
            q,
            k,
            v,
            local_kernel,
            num_heads=self.num_heads,
            height=self.grid_size,
            width=self.grid_size,
            num_prefix_tokens=1,
            scale=self.scale,
        )
        return self.proj_drop(self.proj(x))


class InLineDeiT(DeiT):
    """InLine-DeiT: a DeiT whose blocks all use InLine attention."""

    def __init__(
        self,
        *,
        img_size: int = 224,
        patch_size: int = 16,
        in_chans: int = 3,
        num_classes: int = 1000,
        embed_dim: int = 192,
        depth: int = 12,
        num_heads: int = 6,
        mlp_ratio: float = 4.0,
        qkv_bias: bool = True,
        drop_rate: float = 0.0,
        drop_path_rate: float = 0.0,
    ) -> None:
        def block(index: int, drop_path: float, grid_size: int) -> nn.Module:
            attn = DeiTInLineAttention(embed_dim, num_heads, grid_size, qkv_bias=qkv_bias, proj_drop=drop_rate)
            return Block(embed_dim, attn, mlp_ratio, drop=drop_rate, drop_path=drop_path)

        super().__init__(
            block,
            img_size=img_size,
            patch_size=patch_size,
            in_chans=in_chans,
            num_classes=num_classes,
            embed_dim=embed_dim,
            depth=depth,
            class_token=True,
            pos_embed=True,
            global_pool="token",
            drop_rate=drop_rate,
            drop_path_rate=drop_path_rate,
        )


def _inline_deit_builder(**arch: Any):
    def build(img_size: int, num_classes: int, **kwargs: Any) -> InLineDeiT:
        return InLineDeiT(img_size=img_size, num_classes=num_classes, **{**arch, **kwargs})

    return build


for _name, _official, _dim, _heads, _size, _params in (
    ("inline_deit_t", "inline_deit_tiny", 192, 6, 224, 6.48),
    ("inline_deit_s", "inline_deit_small", 320, 10, 288, 16.73),
    ("inline_deit_b", "inline_deit_base", 384, 12, 448, 23.80),
):
    register_model(
        ModelSpec(
            name=_name,
            family="inline",
            backbone="deit",
            builder=_inline_deit_builder(patch_size=16, embed_dim=_dim, depth=12, num_heads=_heads),
            default_img_size=_size,
            official_name=_official,
            expected_params_m=_params,
        )
    )

# Demo model trained on the digits data (weights ship in vitrt/models/weights/): cls token + a 4x4 grid of 8x8
# patches (each covers 2x2 pixels of the original 8x8 digit).
register_model(
    ModelSpec(
        name="inline_digits",
        family="inline",
        backbone="deit",
        builder=_inline_deit_builder(patch_size=8, embed_dim=64, depth=4, num_heads=4),
        default_img_size=32,
        num_classes=10,
        mean=(0.5, 0.5, 0.5),
        std=(0.5, 0.5, 0.5),
        crop_pct=1.0,
        demo_weights="inline_digits.safetensors",
        labels=DIGIT_LABELS,
    )
)
