"""FLatten (ICCV'23): focused linear attention.

Each backbone section re-implements the official module tree so official checkpoints load strictly. The attention
core is `vitrt.ops.focused_linear_attention` (one ONNX node on export); the projections and the head-shared
depthwise conv are ordinary modules around it, the conv in its batch-independent form
(`vitrt.models.layers.shared_head_depthwise_conv`).
"""

from __future__ import annotations

from functools import partial
from typing import Any

import torch
from torch import Tensor, nn

from vitrt import ops
from vitrt.data.digits import LABELS as DIGIT_LABELS
from vitrt.models.backbones.common import resize_entry, resize_token_grid
from vitrt.models.backbones.cswin import CSWinTransformer, map_to_tokens, tokens_to_map
from vitrt.models.backbones.pvt import PyramidVisionTransformer
from vitrt.models.backbones.swin import AdaptLog, SwinTransformer, resize_grid_tokens
from vitrt.models.layers import shared_head_depthwise_conv
from vitrt.models.registry import ModelSpec, register_model

# --- Swin backbone ---


class SwinFocusedLinearAttention(nn.Module):
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
        head_dim = dim // num_heads
        self.dim = dim
        self.window_size = window_size
        self.num_heads = num_heads
        self.focusing_factor = focusing_factor
        self.qkv = nn.Linear(dim, dim * 3, bias=qkv_bias)
        self.proj = nn.Linear(dim, dim)
        self.proj_drop = nn.Dropout(proj_drop)
        self.dwc = nn.Conv2d(head_dim, head_dim, kernel_size=kernel_size, groups=head_dim, padding=kernel_size // 2)
        self.scale = nn.Parameter(torch.zeros(1, 1, dim))
        self.positional_encoding = nn.Parameter(torch.zeros(1, window_size[0] * window_size[1], dim))

    def forward(self, x: Tensor, mask: Tensor | None = None) -> Tensor:
        # `mask` is accepted for the block interface and ignored, as in the official code.
        height, width = self.window_size
        q, k, v = self.qkv(x).chunk(3, dim=-1)
        x = ops.focused_linear_attention(
            q,
            k,
            v,
            self.positional_encoding,
            self.scale,
            num_heads=self.num_heads,
            focusing_factor=self.focusing_factor,
        )
        v_map = v.transpose(1, 2).reshape(-1, self.dim, height, width)
        x = x + shared_head_depthwise_conv(v_map, self.dwc, self.num_heads).flatten(2).transpose(1, 2)
        return self.proj_drop(self.proj(x))

    def adapt_checkpoint_entries(self, prefix: str, state: dict[str, Tensor], log: AdaptLog) -> None:
        """Bicubic-resize `positional_encoding` as a token grid, like the official `load_pretrained`."""
        key = prefix + "positional_encoding"
        theirs = state.get(key)
        own = self.positional_encoding
        if theirs is None or theirs.dim() != 3 or theirs.shape[-1] != own.shape[-1] or theirs.shape == own.shape:
            return
        side = int(theirs.shape[1] ** 0.5)
        if side * side != theirs.shape[1]:
            return  # not a square grid: left for the strict check to report
        state[key] = resize_grid_tokens(theirs, self.window_size)
        log.add(f"bicubic-resized positional_encoding {side}x{side} -> {self.window_size[0]}x{self.window_size[1]}")

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


_FLATTEN_SWIN_VARIANTS = {
    "flatten_swin_t": dict(embed_dim=96, depths=(2, 2, 6, 2), num_heads=(3, 6, 12, 24), drop_path_rate=0.2),
    "flatten_swin_s": dict(embed_dim=96, depths=(2, 2, 18, 2), num_heads=(3, 6, 12, 24), drop_path_rate=0.3),
    "flatten_swin_b": dict(embed_dim=128, depths=(2, 2, 18, 2), num_heads=(4, 8, 16, 32), drop_path_rate=0.5),
}
_FLATTEN_SWIN_PARAMS_M = {"flatten_swin_t": 29.2, "flatten_swin_s": 50.5, "flatten_swin_b": 89.0}


def _flatten_swin_builder(variant: dict[str, Any]):
    def build(img_size: int = 224, num_classes: int = 1000, **kwargs: Any) -> FLattenSwinTransformer:
        return FLattenSwinTransformer(img_size=img_size, num_classes=num_classes, **{**variant, **kwargs})

    return build


for _name, _variant in _FLATTEN_SWIN_VARIANTS.items():
    register_model(
        ModelSpec(
            name=_name,
            family="flatten",
            backbone="swin",
            builder=_flatten_swin_builder({**_variant, "attn_type": "LLSS"}),
            default_img_size=224,
            official_name=f"flatten_swin (cfgs/{_name}.yaml)",
            expected_params_m=_FLATTEN_SWIN_PARAMS_M[_name],
        )
    )

# Trained demo: FLA on the 16x16 and 8x8 maps, shifted 2x2-window softmax attention on the 4x4 map.
register_model(
    ModelSpec(
        name="flatten_digits",
        family="flatten",
        backbone="swin",
        builder=_flatten_swin_builder(
            dict(
                patch_size=4,
                embed_dim=32,
                depths=(2, 2, 2),
                num_heads=(2, 4, 8),
                attn_type="LMS1",
                softmax_window_size=2,
                drop_path_rate=0.05,
            )
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


# --- PVT / CSwin shared: global focused linear attention ---


class _GlobalFocusedLinearAttention(nn.Module):
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

    def resize_checkpoint_entries(self, prefix: str, state: dict[str, Tensor]) -> list[str]:
        # The official FLatten loader resizes positional_encoding as a square grid, bicubically.
        key = f"{prefix}positional_encoding"
        resized = resize_entry(
            state, key, self.positional_encoding, lambda v: resize_token_grid(v, self.grid, "bicubic")
        )
        return ["FLatten positional_encoding (bicubic)"] if resized else []


# --- PVT backbone ---


class FLattenPvtAttention(_GlobalFocusedLinearAttention):
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


_FLATTEN_PVT = {
    "t": ("flatten_pvt_tiny", (2, 2, 2, 2), 12.15),
    "s": ("flatten_pvt_small", (3, 4, 6, 3), 21.67),
    "m": ("flatten_pvt_medium", (3, 4, 18, 3), 37.24),
    "l": ("flatten_pvt_large", (3, 8, 27, 3), 50.65),
}


def _build_flatten_pvt(
    img_size: int = 224,
    num_classes: int = 1000,
    *,
    name: str,
    depths: tuple[int, ...],
    focusing_factor: float = 3.0,
    kernel_size: int = 5,
    **kwargs: Any,
) -> PyramidVisionTransformer:
    drop = kwargs.get("drop_rate", 0.0)

    def attention(stage: int, dim: int, heads: int, grid: tuple[int, int]) -> nn.Module:
        return FLattenPvtAttention(
            dim, heads, grid, focusing_factor=focusing_factor, kernel_size=kernel_size, proj_drop=drop
        )

    return PyramidVisionTransformer(
        attention,
        name=name,
        img_size=img_size,
        num_classes=num_classes,
        num_heads=(1, 2, 5, 8),
        depths=depths,
        keep_unused_norm=True,
        **kwargs,
    )


for _pvt_size, (_pvt_official, _pvt_depths, _pvt_params) in _FLATTEN_PVT.items():
    register_model(
        ModelSpec(
            name=f"flatten_pvt_{_pvt_size}",
            family="flatten",
            backbone="pvt",
            builder=partial(_build_flatten_pvt, name=f"flatten_pvt_{_pvt_size}", depths=_pvt_depths),
            default_img_size=224,
            official_name=_pvt_official,
            expected_params_m=_pvt_params,
        )
    )


# --- CSwin backbone ---


class FLattenCSwinAttention(_GlobalFocusedLinearAttention):
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


_FLATTEN_CSWIN = {
    "t": ("FLatten_CSWin_64_24181_tiny_224", 64, (2, 4, 18, 1), (2, 4, 8, 16), 21.2),
    "s": ("FLatten_CSWin_64_24322_small_224", 64, (2, 4, 32, 2), (2, 4, 8, 16), 35.5),
    "b": ("FLatten_CSWin_96_36292_base_224", 96, (3, 6, 29, 2), (4, 8, 16, 32), 74.9),
}


def _build_flatten_cswin(
    img_size: int = 224,
    num_classes: int = 1000,
    *,
    name: str,
    focusing_factor: float = 3.0,
    kernel_size: int = 5,
    **kwargs: Any,
) -> CSWinTransformer:
    def branch(stage: int, dim: int, heads: int, resolution: int) -> nn.Module:
        return FLattenCSwinAttention(dim, heads, resolution, focusing_factor=focusing_factor, kernel_size=kernel_size)

    return CSWinTransformer(branch, name=name, img_size=img_size, num_classes=num_classes, **kwargs)


for _cswin_size, (_cswin_official, _cswin_dim, _cswin_depths, _cswin_heads, _cswin_params) in _FLATTEN_CSWIN.items():
    register_model(
        ModelSpec(
            name=f"flatten_cswin_{_cswin_size}",
            family="flatten",
            backbone="cswin",
            builder=partial(
                _build_flatten_cswin,
                name=f"flatten_cswin_{_cswin_size}",
                embed_dim=_cswin_dim,
                depths=_cswin_depths,
                num_heads=_cswin_heads,
            ),
            default_img_size=224,
            official_name=_cswin_official,
            expected_params_m=_cswin_params,
        )
    )
