"""inline family (registered models are added by the family implementation)."""

from __future__ import annotations

from functools import partial
from typing import Any

from torch import Tensor, nn

from vitrt import ops
from vitrt.models.backbones.cswin import CSWinTransformer, map_to_tokens, tokens_to_map
from vitrt.models.backbones.pvt import PyramidVisionTransformer
from vitrt.models.registry import ModelSpec, register_model

# --- PVT / CSwin shared: global InLine attention ---


class _GlobalInLineAttention(nn.Module):
    """InLine attention over a whole (H, W) token grid. The residual MLP (`residual.{0,2}`, grouped 1x1 convs)
    turns a per-sample channel mean into per-channel 3x3 taps; the op applies them to v (batch-dynamic, no
    grouped conv with runtime groups) together with the injective linear attention."""

    def _init_inline(self, dim: int, num_heads: int, grid: tuple[int, int]) -> None:
        self.dim = dim
        self.num_heads = num_heads
        self.grid = grid
        self.scale = (dim // num_heads) ** -0.5
        self.residual = nn.Sequential(
            nn.Conv1d(dim, dim, kernel_size=1, groups=num_heads),
            nn.GELU(),
            nn.Conv1d(dim, dim * 9, kernel_size=1, groups=num_heads),
        )

    def inline_attention(self, q: Tensor, k: Tensor, v: Tensor, channel_mean: Tensor) -> Tensor:
        taps = self.residual(channel_mean.unsqueeze(-1)).reshape(-1, self.dim, 9)
        height, width = self.grid
        return ops.inline_attention(
            q, k, v, taps, num_heads=self.num_heads, height=height, width=width, scale=self.scale
        )


# --- PVT backbone ---


class InLinePvtAttention(_GlobalInLineAttention):
    """InLine-PVT attention (sr_ratio 1): q, kv, InLine attention with the local residual from mean(x), proj."""

    def __init__(
        self, dim: int, num_heads: int, grid: tuple[int, int], *, qkv_bias: bool = True, proj_drop: float = 0.0
    ) -> None:
        super().__init__()
        self.q = nn.Linear(dim, dim, bias=qkv_bias)
        self.kv = nn.Linear(dim, dim * 2, bias=qkv_bias)
        self.proj = nn.Linear(dim, dim)
        self.proj_drop = nn.Dropout(proj_drop)
        self._init_inline(dim, num_heads, grid)

    def forward(self, x: Tensor) -> Tensor:
        q = self.q(x)
        k, v = self.kv(x).chunk(2, dim=-1)
        return self.proj_drop(self.proj(self.inline_attention(q, k, v, x.mean(dim=1))))


_INLINE_PVT = {
    "t": ("inline_pvt_tiny", (2, 2, 2, 2), 12.03),
    "s": ("inline_pvt_small", (3, 4, 6, 3), 21.56),
    "m": ("inline_pvt_medium", (3, 4, 18, 3), 37.62),
    # The README lists 50.2M; the official code (and vitrt) gives 51.15M.
    "l": ("inline_pvt_large", (3, 8, 27, 3), 51.15),
}


def _build_inline_pvt(
    img_size: int = 224, num_classes: int = 1000, *, name: str, depths: tuple[int, ...], **kwargs: Any
) -> PyramidVisionTransformer:
    drop = kwargs.get("drop_rate", 0.0)

    def attention(stage: int, dim: int, heads: int, grid: tuple[int, int]) -> nn.Module:
        return InLinePvtAttention(dim, heads, grid, proj_drop=drop)

    # InLine-PVT uses head dim 32: heads 2-4-10-16 instead of PVT's 1-2-5-8.
    return PyramidVisionTransformer(
        attention,
        name=name,
        img_size=img_size,
        num_classes=num_classes,
        num_heads=(2, 4, 10, 16),
        depths=depths,
        **kwargs,
    )


for _size, (_official, _depths, _params) in _INLINE_PVT.items():
    register_model(
        ModelSpec(
            name=f"inline_pvt_{_size}",
            family="inline",
            backbone="pvt",
            builder=partial(_build_inline_pvt, name=f"inline_pvt_{_size}", depths=_depths),
            default_img_size=224,
            official_name=_official,
            expected_params_m=_params,
        )
    )


# --- CSwin backbone ---


class InLineCSwinAttention(_GlobalInLineAttention):
    """InLine-CSwin global branch: InLine attention + CSwin's LePE (`get_v`). Its local kernel comes from the mean
    of the BLOCK INPUT (before norm1), sliced to this branch's channels by the block."""

    uses_block_mean = True

    def __init__(self, dim: int, num_heads: int, resolution: int) -> None:
        super().__init__()
        self.get_v = nn.Conv2d(dim, dim, kernel_size=3, stride=1, padding=1, groups=dim)
        self._init_inline(dim, num_heads, (resolution, resolution))

    def forward(self, q: Tensor, k: Tensor, v: Tensor, block_mean: Tensor | None = None) -> Tensor:
        if block_mean is None:
            raise ValueError("InLineCSwinAttention needs the mean of the block input")
        lepe = map_to_tokens(self.get_v(tokens_to_map(v, *self.grid)))
        return self.inline_attention(q, k, v, block_mean) + lepe


_INLINE_CSWIN = {
    "t": ("inline_cswin_tiny", 64, (2, 4, 18, 1), (2, 4, 8, 16), 20.6),
    "s": ("inline_cswin_small", 64, (3, 6, 29, 2), (2, 4, 8, 16), 33.0),
    "b": ("inline_cswin_base", 96, (3, 6, 29, 2), (4, 8, 16, 32), 73.4),
}


def _build_inline_cswin(img_size: int = 224, num_classes: int = 1000, *, name: str, **kwargs: Any) -> CSWinTransformer:
    def branch(stage: int, dim: int, heads: int, resolution: int) -> nn.Module:
        return InLineCSwinAttention(dim, heads, resolution)

    return CSWinTransformer(branch, name=name, img_size=img_size, num_classes=num_classes, **kwargs)


for _size, (_official, _dim, _depths, _heads, _params) in _INLINE_CSWIN.items():
    register_model(
        ModelSpec(
            name=f"inline_cswin_{_size}",
            family="inline",
            backbone="cswin",
            builder=partial(
                _build_inline_cswin, name=f"inline_cswin_{_size}", embed_dim=_dim, depths=_depths, num_heads=_heads
            ),
            default_img_size=224,
            official_name=_official,
            expected_params_m=_params,
        )
    )
