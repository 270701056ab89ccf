"""InLine attention (injective linear attention, NeurIPS'24): the InLine models of the zoo.

Official code: LeapLabTHU/InLine `models/inline_{deit,swin,pvt,cswin}.py`. The attention core (linear attention with
the injective mean correction plus the per-sample 3x3 local residual) runs in `vitrt.ops.inline_attention`, one
ONNX node on export; the projections and the residual MLP that predicts the local kernel are ordinary modules.
"""

from __future__ import annotations

from functools import partial
from typing import Any

from torch import Tensor, nn

from vitrt import ops
from vitrt.data.digits import LABELS as DIGIT_LABELS
from vitrt.models.backbones.cswin import CSWinTransformer, map_to_tokens, tokens_to_map
from vitrt.models.backbones.deit import Block, DeiT
from vitrt.models.backbones.pvt import PyramidVisionTransformer
from vitrt.models.backbones.swin import SwinTransformer
from vitrt.models.registry import ModelSpec, Variant, register_model, register_variants

# --- Shared by every backbone: the InLine attention core ---


class _InLineAttentionCore(nn.Module):
    """The InLine op plus the official `residual` MLP (grouped 1x1 convs `residual.{0,2}`), which turns the
    per-sample token mean into a 3x3 kernel per channel; the op applies it to v (batch-dynamic, no grouped conv
    with runtime groups) together with the injective linear attention. Subclasses add their projections first and
    then call `_init_inline`, which keeps the official parameter order."""

    def _init_inline(self, dim: int, num_heads: int) -> None:
        self.dim = dim
        self.num_heads = num_heads
        self.scale = (dim // num_heads) ** -0.5
        self.residual = nn.Sequential(
            nn.Conv1d(dim, dim, kernel_size=1, groups=num_heads),
            nn.GELU(),
            nn.Conv1d(dim, dim * 9, kernel_size=1, groups=num_heads),
        )

    def inline_attention(
        self, q: Tensor, k: Tensor, v: Tensor, token_mean: Tensor, height: int, width: int, num_prefix_tokens: int = 0
    ) -> Tensor:
        # (B, 9C, 1) -> (B, C, 9): channel c's taps are rows 9c..9c+8, row-major over the 3x3 window.
        local_kernel = self.residual(token_mean.unsqueeze(-1)).reshape(-1, self.dim, 9)
        return ops.inline_attention(
            q,
            k,
            v,
            local_kernel,
            num_heads=self.num_heads,
            height=height,
            width=width,
            num_prefix_tokens=num_prefix_tokens,
            scale=self.scale,
        )


# --- DeiT backbone ---
# InLine-DeiT (official `models/inline_deit.py`): every block is an InLine block; cls token, absolute position
# embedding and a cls-token head as in a standard DeiT, with unusual widths (T 192/6 heads, S 320/10, B 384/12).


class DeiTInLineAttention(_InLineAttentionCore):
    """InLine attention over (cls + H*W) tokens; the local residual acts on the patch tokens only."""

    def __init__(self, dim: int, num_heads: int, grid_size: int, qkv_bias: bool = True, proj_drop: float = 0.0) -> None:
        super().__init__()
        self.grid_size = grid_size
        self.qkv = nn.Linear(dim, dim * 3, bias=qkv_bias)
        self.proj = nn.Linear(dim, dim)
        self.proj_drop = nn.Dropout(proj_drop)
        self._init_inline(dim, num_heads)

    def forward(self, x: Tensor) -> Tensor:
        q, k, v = self.qkv(x).chunk(3, dim=-1)
        x = self.inline_attention(q, k, v, x.mean(dim=1), self.grid_size, self.grid_size, num_prefix_tokens=1)
        return self.proj_drop(self.proj(x))


class InLineDeiT(DeiT):
    """InLine-DeiT: a DeiT whose blocks all use InLine attention.

    Trunk geometry (img_size, patch_size, in_chans, num_classes, depth, drop_path_rate) goes to `DeiT`.
    """

    def __init__(
        self,
        *,
        embed_dim: int = 192,
        num_heads: int = 6,
        mlp_ratio: float = 4.0,
        qkv_bias: bool = True,
        drop_rate: float = 0.0,
        **trunk: Any,
    ) -> None:
        def block(index: int, drop_path: float, grid_size: int) -> nn.Module:
            attn = DeiTInLineAttention(embed_dim, num_heads, grid_size, qkv_bias=qkv_bias, proj_drop=drop_rate)
            return Block(embed_dim, attn, mlp_ratio, drop=drop_rate, drop_path=drop_path)

        super().__init__(block, embed_dim=embed_dim, drop_rate=drop_rate, **trunk)


register_variants(
    "inline",
    "deit",
    InLineDeiT,
    {
        "inline_deit_t": Variant("inline_deit_tiny", 6.48, dict(patch_size=16, embed_dim=192, depth=12, num_heads=6)),
        "inline_deit_s": Variant(
            "inline_deit_small", 16.73, dict(patch_size=16, embed_dim=320, depth=12, num_heads=10), img_size=288
        ),
        "inline_deit_b": Variant(
            "inline_deit_base", 23.80, dict(patch_size=16, embed_dim=384, depth=12, num_heads=12), img_size=448
        ),
    },
)

# Demo model trained on the digits data (weights ship in vitrt/models/weights/): cls token + a 4x4 grid of 8x8
# patches (each covers 2x2 pixels of the original 8x8 digit).
register_model(
    ModelSpec(
        name="inline_digits",
        family="inline",
        backbone="deit",
        builder=partial(InLineDeiT, patch_size=8, embed_dim=64, depth=4, num_heads=4),
        default_img_size=32,
        num_classes=10,
        mean=(0.5, 0.5, 0.5),
        std=(0.5, 0.5, 0.5),
        crop_pct=1.0,
        demo_weights="inline_digits.safetensors",
        labels=DIGIT_LABELS,
    )
)


# --- Swin backbone ---


class SwinInLineAttention(_InLineAttentionCore):
    """InLine attention over one (usually whole-map) window; keys as the official Swin `InLineAttention`:
    `qkv`, `proj`, `residual.{0,2}`.

    The official class also offers relu/leakyrelu/exp kernels; every released model uses the identity kernel,
    which is the only one implemented here.
    """

    def __init__(
        self, dim: int, window_size: tuple[int, int], num_heads: int, qkv_bias: bool = True, proj_drop: float = 0.0
    ):
        super().__init__()
        self.window_size = window_size
        self.qkv = nn.Linear(dim, dim * 3, bias=qkv_bias)
        self.proj = nn.Linear(dim, dim)
        self.proj_drop = nn.Dropout(proj_drop)
        self._init_inline(dim, num_heads)

    def forward(self, x: Tensor, mask: Tensor | None = None) -> Tensor:
        # `mask` is accepted for the block interface and ignored, as in the official code.
        q, k, v = self.qkv(x).chunk(3, dim=-1)
        return self.proj_drop(self.proj(self.inline_attention(q, k, v, x.mean(dim=1), *self.window_size)))

    def extra_repr(self) -> str:
        return f"dim={self.dim}, window_size={self.window_size}, num_heads={self.num_heads}"


class InLineSwinTransformer(SwinTransformer):
    """InLine-Swin (`inline_swin`): InLine blocks `I`, softmax window blocks `S`, `M<k>` mixed stages.

    Softmax blocks use the official window rule max(7, window // 8) unless `softmax_window_size` is given.
    """

    def __init__(self, *, attn_type: str = "IIIS", **kwargs: Any):
        def linear_attention(*, dim, window_size, num_heads, stage, qkv_bias, qk_scale, proj_drop):
            return SwinInLineAttention(dim, window_size, num_heads, qkv_bias, proj_drop)

        super().__init__(
            attn_type=attn_type,
            linear_letter="I",
            softmax_letter="S",
            linear_attention=linear_attention,
            softmax_window_rule=lambda window: max(7, window // 8),
            arch="inline_swin",
            **kwargs,
        )


register_variants(
    "inline",
    "swin",
    InLineSwinTransformer,
    {
        "inline_swin_t": Variant(
            "inline_swin (cfgs/inline_swin_t.yaml)",
            29.2,
            dict(embed_dim=96, depths=(2, 2, 6, 2), num_heads=(3, 6, 12, 24), attn_type="IIIS", drop_path_rate=0.2),
        ),
        "inline_swin_s": Variant(
            "inline_swin (cfgs/inline_swin_s.yaml)",
            49.8,
            dict(embed_dim=96, depths=(2, 2, 18, 2), num_heads=(3, 6, 12, 24), attn_type="IISS", drop_path_rate=0.3),
        ),
        "inline_swin_b": Variant(
            "inline_swin (cfgs/inline_swin_b.yaml)",
            88.4,
            dict(embed_dim=128, depths=(2, 2, 18, 2), num_heads=(4, 8, 16, 32), attn_type="IIMS2", drop_path_rate=0.5),
        ),
    },
)


# --- PVT backbone ---


class InLinePvtAttention(_InLineAttentionCore):
    """InLine-PVT attention (sr_ratio 1): q, kv, InLine attention with the local residual from mean(x), proj."""

    def __init__(
        self, dim: int, num_heads: int, grid: tuple[int, int], *, qkv_bias: bool = True, proj_drop: float = 0.0
    ) -> None:
        super().__init__()
        self.q = nn.Linear(dim, dim, bias=qkv_bias)
        self.kv = nn.Linear(dim, dim * 2, bias=qkv_bias)
        self.proj = nn.Linear(dim, dim)
        self.proj_drop = nn.Dropout(proj_drop)
        self.grid = grid
        self._init_inline(dim, num_heads)

    def forward(self, x: Tensor) -> Tensor:
        q = self.q(x)
        k, v = self.kv(x).chunk(2, dim=-1)
        return self.proj_drop(self.proj(self.inline_attention(q, k, v, x.mean(dim=1), *self.grid)))


def _build_inline_pvt(**kwargs: Any) -> PyramidVisionTransformer:
    drop = kwargs.get("drop_rate", 0.0)

    def attention(stage: int, dim: int, heads: int, grid: tuple[int, int]) -> nn.Module:
        return InLinePvtAttention(dim, heads, grid, proj_drop=drop)

    # InLine-PVT uses head dim 32: heads 2-4-10-16 instead of PVT's 1-2-5-8.
    return PyramidVisionTransformer(attention, num_heads=(2, 4, 10, 16), **kwargs)


register_variants(
    "inline",
    "pvt",
    _build_inline_pvt,
    {
        "inline_pvt_t": Variant("inline_pvt_tiny", 12.03, dict(depths=(2, 2, 2, 2))),
        "inline_pvt_s": Variant("inline_pvt_small", 21.56, dict(depths=(3, 4, 6, 3))),
        "inline_pvt_m": Variant("inline_pvt_medium", 37.62, dict(depths=(3, 4, 18, 3))),
        # The README lists 50.2M; the official code (and vitrt) gives 51.15M.
        "inline_pvt_l": Variant("inline_pvt_large", 51.15, dict(depths=(3, 8, 27, 3))),
    },
    pass_name=True,
)


# --- CSwin backbone ---


class InLineCSwinAttention(_InLineAttentionCore):
    """InLine-CSwin global branch: InLine attention + CSwin's LePE (`get_v`). Its local kernel comes from the mean
    of the BLOCK INPUT (before norm1), sliced to this branch's channels by the block."""

    uses_block_mean = True

    def __init__(self, dim: int, num_heads: int, resolution: int) -> None:
        super().__init__()
        self.get_v = nn.Conv2d(dim, dim, kernel_size=3, stride=1, padding=1, groups=dim)
        self.grid = (resolution, resolution)
        self._init_inline(dim, num_heads)

    def forward(self, q: Tensor, k: Tensor, v: Tensor, block_mean: Tensor | None = None) -> Tensor:
        if block_mean is None:
            raise ValueError("InLineCSwinAttention needs the mean of the block input")
        lepe = map_to_tokens(self.get_v(tokens_to_map(v, *self.grid)))
        return self.inline_attention(q, k, v, block_mean, *self.grid) + lepe


def _build_inline_cswin(**kwargs: Any) -> CSWinTransformer:
    def branch(stage: int, dim: int, heads: int, resolution: int) -> nn.Module:
        return InLineCSwinAttention(dim, heads, resolution)

    return CSWinTransformer(branch, **kwargs)


register_variants(
    "inline",
    "cswin",
    _build_inline_cswin,
    {
        "inline_cswin_t": Variant(
            "inline_cswin_tiny", 20.6, dict(embed_dim=64, depths=(2, 4, 18, 1), num_heads=(2, 4, 8, 16))
        ),
        "inline_cswin_s": Variant(
            "inline_cswin_small", 33.0, dict(embed_dim=64, depths=(3, 6, 29, 2), num_heads=(2, 4, 8, 16))
        ),
        "inline_cswin_b": Variant(
            "inline_cswin_base", 73.4, dict(embed_dim=96, depths=(3, 6, 29, 2), num_heads=(4, 8, 16, 32))
        ),
    },
    pass_name=True,
)
