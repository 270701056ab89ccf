"""FLatten (ICCV'23): focused linear attention.

Each backbone section re-implements the official module tree so official checkpoints load strictly. The attention
core is `vitrt.ops.focused_linear_attention` (one ONNX node on export); the projections and the head-shared
depthwise conv are ordinary modules around it, the conv in its batch-independent form
(`vitrt.models.layers.shared_head_depthwise_conv`).
"""

from __future__ import annotations

import math
from functools import partial
from typing import Any

import torch
from torch import Tensor, nn

from vitrt import ops
from vitrt.data.digits import LABELS as DIGIT_LABELS
from vitrt.models.backbones.common import AdaptLog, interpolated_note, resize_token_grid
from vitrt.models.backbones.cswin import CSWinTransformer, map_to_tokens, tokens_to_map
from vitrt.models.backbones.pvt import PyramidVisionTransformer
from vitrt.models.backbones.swin import SwinTransformer
from vitrt.models.layers import shared_head_depthwise_conv
from vitrt.models.registry import ModelSpec, Variant, register_model, register_variants

# --- Shared by every backbone: the focused linear attention core ---


class _FocusedLinearAttentionCore(nn.Module):
    """FLatten attention over a whole (H, W) token grid: the focused-linear-attention op plus the depthwise conv
    branch on v, whose d-channel kernel is shared by every head (`dwc`). Subclasses add their projections first
    and then call `_init_focused`, which keeps the official parameter order."""

    def _init_focused(
        self, dim: int, num_heads: int, grid: tuple[int, int], focusing_factor: float, kernel_size: int
    ) -> None:
        head_dim = dim // num_heads
        self.dim = dim
        self.num_heads = num_heads
        self.grid = grid
        self.focusing_factor = float(focusing_factor)
        self.dwc = nn.Conv2d(head_dim, head_dim, kernel_size, groups=head_dim, padding=kernel_size // 2)
        self.scale = nn.Parameter(torch.zeros(1, 1, dim))
        self.positional_encoding = nn.Parameter(torch.zeros(1, grid[0] * grid[1], dim))

    def focused_attention(self, q: Tensor, k: Tensor, v: Tensor) -> Tensor:
        out = ops.focused_linear_attention(
            q,
            k,
            v,
            self.positional_encoding,
            self.scale,
            num_heads=self.num_heads,
            focusing_factor=self.focusing_factor,
        )
        conv = shared_head_depthwise_conv(tokens_to_map(v, *self.grid), self.dwc, self.num_heads)
        return out + map_to_tokens(conv)

    def adapt_checkpoint_entries(self, prefix: str, state: dict[str, Tensor], log: AdaptLog) -> None:
        """Bicubic-resize `positional_encoding` as a square token grid, like the official `load_pretrained`."""
        key = prefix + "positional_encoding"
        stored, own = state.get(key), self.positional_encoding
        if stored is None or stored.ndim != 3 or stored.shape[-1] != own.shape[-1] or stored.shape == own.shape:
            return
        side = math.isqrt(stored.shape[1])
        if side * side != stored.shape[1]:
            return  # not a square grid: left for the strict load to report
        state[key] = resize_token_grid(stored, self.grid, "bicubic")
        log.add(self.positional_encoding_note(side))

    def positional_encoding_note(self, old_side: int) -> str:
        return interpolated_note("FLatten positional_encoding (bicubic)")


# --- Swin backbone ---


class SwinFocusedLinearAttention(_FocusedLinearAttentionCore):
    """Focused linear attention over one (usually whole-map) window; keys as the official Swin
    `FocusedLinearAttention`: `qkv`, `proj`, `dwc` (one d-channel kernel shared by all heads), `scale`,
    `positional_encoding`."""

    def __init__(
        self,
        dim: int,
        window_size: tuple[int, int],
        num_heads: int,
        qkv_bias: bool = True,
        proj_drop: float = 0.0,
        focusing_factor: float = 3,
        kernel_size: int = 5,
    ):
        super().__init__()
        self.window_size = window_size
        self.qkv = nn.Linear(dim, dim * 3, bias=qkv_bias)
        self.proj = nn.Linear(dim, dim)
        self.proj_drop = nn.Dropout(proj_drop)
        self._init_focused(dim, num_heads, window_size, focusing_factor, kernel_size)

    def forward(self, x: Tensor, mask: Tensor | None = None) -> Tensor:
        # `mask` is accepted for the block interface and ignored, as in the official code.
        q, k, v = self.qkv(x).chunk(3, dim=-1)
        return self.proj_drop(self.proj(self.focused_attention(q, k, v)))

    def positional_encoding_note(self, old_side: int) -> str:
        height, width = self.window_size
        return f"bicubic-resized positional_encoding {old_side}x{old_side} -> {height}x{width}"

    def extra_repr(self) -> str:
        return (
            f"dim={self.dim}, window_size={self.window_size}, num_heads={self.num_heads}, "
            f"focusing_factor={self.focusing_factor}"
        )


class FLattenSwinTransformer(SwinTransformer):
    """FLatten-Swin (`flatten_swin`): focused linear attention blocks `L`, softmax window blocks `S`.

    Softmax blocks use the official window rule (7 for config windows up to 56, else 12) unless
    `softmax_window_size` is given.
    """

    def __init__(self, *, attn_type: str = "LLSS", focusing_factor: float = 3, kernel_size: int = 5, **kwargs: Any):
        def linear_attention(*, dim, window_size, num_heads, stage, qkv_bias, qk_scale, proj_drop):
            return SwinFocusedLinearAttention(
                dim,
                window_size,
                num_heads,
                qkv_bias,
                proj_drop,
                focusing_factor=focusing_factor,
                kernel_size=kernel_size,
            )

        super().__init__(
            attn_type=attn_type,
            linear_letter="L",
            softmax_letter="S",
            linear_attention=linear_attention,
            softmax_window_rule=lambda window: 7 if window <= 56 else 12,
            arch="flatten_swin",
            **kwargs,
        )


register_variants(
    "flatten",
    "swin",
    FLattenSwinTransformer,
    {
        "flatten_swin_t": Variant(
            "flatten_swin (cfgs/flatten_swin_t.yaml)",
            29.2,
            dict(embed_dim=96, depths=(2, 2, 6, 2), num_heads=(3, 6, 12, 24), attn_type="LLSS", drop_path_rate=0.2),
        ),
        "flatten_swin_s": Variant(
            "flatten_swin (cfgs/flatten_swin_s.yaml)",
            50.5,
            dict(embed_dim=96, depths=(2, 2, 18, 2), num_heads=(3, 6, 12, 24), attn_type="LLSS", drop_path_rate=0.3),
        ),
        "flatten_swin_b": Variant(
            "flatten_swin (cfgs/flatten_swin_b.yaml)",
            89.0,
            dict(embed_dim=128, depths=(2, 2, 18, 2), num_heads=(4, 8, 16, 32), attn_type="LLSS", drop_path_rate=0.5),
        ),
    },
)

# Trained demo: FLA on the 16x16 and 8x8 maps, shifted 2x2-window softmax attention on the 4x4 map.
register_model(
    ModelSpec(
        name="flatten_digits",
        family="flatten",
        backbone="swin",
        builder=partial(
            FLattenSwinTransformer,
            patch_size=4,
            embed_dim=32,
            depths=(2, 2, 2),
            num_heads=(2, 4, 8),
            attn_type="LMS1",
            softmax_window_size=2,
            drop_path_rate=0.05,
        ),
        default_img_size=32,
        official_name="flatten_swin (demo configuration)",
        num_classes=10,
        mean=(0.31, 0.31, 0.31),
        std=(0.35, 0.35, 0.35),
        crop_pct=1.0,
        demo_weights="flatten_digits.safetensors",
        labels=DIGIT_LABELS,
    )
)


# --- PVT backbone ---


class FLattenPvtAttention(_FocusedLinearAttentionCore):
    """FLatten-PVT attention (sr_ratio 1, as in every released config): q, kv, focused linear attention + DWC, proj."""

    def __init__(
        self,
        dim: int,
        num_heads: int,
        grid: tuple[int, int],
        *,
        qkv_bias: bool = True,
        focusing_factor: float = 3.0,
        kernel_size: int = 5,
        proj_drop: float = 0.0,
    ) -> None:
        super().__init__()
        self.q = nn.Linear(dim, dim, bias=qkv_bias)
        self.kv = nn.Linear(dim, dim * 2, bias=qkv_bias)
        self.proj = nn.Linear(dim, dim)
        self.proj_drop = nn.Dropout(proj_drop)
        self._init_focused(dim, num_heads, grid, focusing_factor, kernel_size)

    def forward(self, x: Tensor) -> Tensor:
        q = self.q(x)
        k, v = self.kv(x).chunk(2, dim=-1)
        return self.proj_drop(self.proj(self.focused_attention(q, k, v)))


def _build_flatten_pvt(
    *, focusing_factor: float = 3.0, kernel_size: int = 5, **kwargs: Any
) -> PyramidVisionTransformer:
    drop = kwargs.get("drop_rate", 0.0)

    def attention(stage: int, dim: int, heads: int, grid: tuple[int, int]) -> nn.Module:
        return FLattenPvtAttention(
            dim, heads, grid, focusing_factor=focusing_factor, kernel_size=kernel_size, proj_drop=drop
        )

    return PyramidVisionTransformer(attention, keep_unused_norm=True, **kwargs)


register_variants(
    "flatten",
    "pvt",
    _build_flatten_pvt,
    {
        "flatten_pvt_t": Variant("flatten_pvt_tiny", 12.15, dict(depths=(2, 2, 2, 2))),
        "flatten_pvt_s": Variant("flatten_pvt_small", 21.67, dict(depths=(3, 4, 6, 3))),
        "flatten_pvt_m": Variant("flatten_pvt_medium", 37.24, dict(depths=(3, 4, 18, 3))),
        "flatten_pvt_l": Variant("flatten_pvt_large", 50.65, dict(depths=(3, 8, 27, 3))),
    },
    pass_name=True,
)


# --- CSwin backbone ---


class FLattenCSwinAttention(_FocusedLinearAttentionCore):
    """FLatten-CSwin global branch: focused linear attention + DWC + CSwin's LePE (`get_v`, 3x3 depthwise on v).
    The block's `qkv` and `proj` sit outside the branch."""

    uses_block_mean = False

    def __init__(
        self, dim: int, num_heads: int, resolution: int, *, focusing_factor: float = 3.0, kernel_size: int = 5
    ) -> None:
        super().__init__()
        self.get_v = nn.Conv2d(dim, dim, kernel_size=3, stride=1, padding=1, groups=dim)
        self._init_focused(dim, num_heads, (resolution, resolution), focusing_factor, kernel_size)

    def forward(self, q: Tensor, k: Tensor, v: Tensor, block_mean: Tensor | None = None) -> Tensor:
        lepe = map_to_tokens(self.get_v(tokens_to_map(v, *self.grid)))
        return self.focused_attention(q, k, v) + lepe


def _build_flatten_cswin(*, focusing_factor: float = 3.0, kernel_size: int = 5, **kwargs: Any) -> CSWinTransformer:
    def branch(stage: int, dim: int, heads: int, resolution: int) -> nn.Module:
        return FLattenCSwinAttention(dim, heads, resolution, focusing_factor=focusing_factor, kernel_size=kernel_size)

    return CSWinTransformer(branch, **kwargs)


register_variants(
    "flatten",
    "cswin",
    _build_flatten_cswin,
    {
        "flatten_cswin_t": Variant(
            "FLatten_CSWin_64_24181_tiny_224", 21.2, dict(embed_dim=64, depths=(2, 4, 18, 1), num_heads=(2, 4, 8, 16))
        ),
        "flatten_cswin_s": Variant(
            "FLatten_CSWin_64_24322_small_224", 35.5, dict(embed_dim=64, depths=(2, 4, 32, 2), num_heads=(2, 4, 8, 16))
        ),
        "flatten_cswin_b": Variant(
            "FLatten_CSWin_96_36292_base_224", 74.9, dict(embed_dim=96, depths=(3, 6, 29, 2), num_heads=(4, 8, 16, 32))
        ),
    },
    pass_name=True,
)
