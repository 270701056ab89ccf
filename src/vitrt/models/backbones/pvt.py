"""Pyramid Vision Transformer (PVT v1) backbone of FLatten-, Agent- and InLine-PVT.

Four stages of (patch embedding, learned position embedding, blocks); the stage-i grid is img_size // 4 // 2**i.
The attention of every block comes from a family-provided factory, so one backbone serves the three families
with the official module tree: `patch_embed{i}.{proj,norm}`, `pos_embed{i}`, `block{i}.{j}.{norm1,attn,norm2,mlp}`,
optionally the unused `norm` (FLatten keeps it in its state_dict), and `head`. The output is the token mean.

Norms: blocks use LayerNorm eps 1e-6 (`partial(nn.LayerNorm, eps=1e-6)` in the official constructors), the patch
embeddings the default 1e-5. GELU is exact.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import partial

import torch
from timm.layers import DropPath, Mlp, trunc_normal_
from torch import Tensor, nn

from vitrt.errors import ModelConfigError
from vitrt.models.backbones.common import (
    AdaptLog,
    adapt_state_dict,
    check_image_batch,
    init_weights,
    interpolated_note,
    resize_token_grid,
)

# (stage index, dim, num_heads, (H, W) of the stage grid) -> attention module mapping (B, H*W, dim) to itself.
PvtAttentionFactory = Callable[[int, int, int, tuple[int, int]], nn.Module]

_BLOCK_NORM = partial(nn.LayerNorm, eps=1e-6)


class PvtPatchEmbed(nn.Module):
    """Non-overlapping strided conv + LayerNorm, (B, C, H, W) -> (B, H/p * W/p, embed_dim)."""

    def __init__(self, patch_size: int, in_chans: int, embed_dim: int) -> None:
        super().__init__()
        self.proj = nn.Conv2d(in_chans, embed_dim, kernel_size=patch_size, stride=patch_size)
        self.norm = nn.LayerNorm(embed_dim)

    def forward(self, x: Tensor) -> Tensor:
        return self.norm(self.proj(x).flatten(2).transpose(1, 2))


class PvtBlock(nn.Module):
    def __init__(self, dim: int, attn: nn.Module, mlp_ratio: float, drop: float, drop_path: float) -> None:
        super().__init__()
        self.norm1 = _BLOCK_NORM(dim)
        self.attn = attn
        self.drop_path = DropPath(drop_path) if drop_path > 0.0 else nn.Identity()
        self.norm2 = _BLOCK_NORM(dim)
        self.mlp = Mlp(dim, int(dim * mlp_ratio), drop=drop)

    def forward(self, x: Tensor) -> Tensor:
        x = x + self.drop_path(self.attn(self.norm1(x)))
        return x + self.drop_path(self.mlp(self.norm2(x)))


def pvt_stage_grids(img_size: int, patch_size: int = 4, num_stages: int = 4) -> list[tuple[int, int]]:
    """Token grid of each stage: img_size // patch_size, then halved (floored) by each 2x2 patch embedding."""
    side = img_size // patch_size
    grids = []
    for _ in range(num_stages):
        grids.append((side, side))
        side //= 2
    return grids


class PyramidVisionTransformer(nn.Module):
    """PVT v1 classifier with pluggable attention.

    Args:
        attention: factory building each block's attention (see `PvtAttentionFactory`).
        name: model name used in error messages.
        keep_unused_norm: create the final `norm` that FLatten-PVT defines (and saves) but never applies.
    """

    def __init__(
        self,
        attention: PvtAttentionFactory,
        *,
        name: str = "pvt",
        img_size: int = 224,
        in_chans: int = 3,
        num_classes: int = 1000,
        embed_dims: Sequence[int] = (64, 128, 320, 512),
        num_heads: Sequence[int] = (1, 2, 5, 8),
        mlp_ratios: Sequence[float] = (8, 8, 4, 4),
        depths: Sequence[int] = (2, 2, 2, 2),
        patch_size: int = 4,
        drop_rate: float = 0.0,
        drop_path_rate: float = 0.0,
        keep_unused_norm: bool = False,
    ) -> None:
        super().__init__()
        self.name = name
        self.img_size = int(img_size)
        self.in_chans = in_chans
        self.num_classes = num_classes
        self.embed_dims = tuple(embed_dims)
        self.grids = pvt_stage_grids(self.img_size, patch_size, len(depths))
        if self.grids[-1][0] < 1:
            min_size = patch_size * 2 ** (len(depths) - 1)
            raise ModelConfigError(f"{name}: img_size must be at least {min_size} (got {img_size})")
        self.num_stages = len(depths)
        drop_path_rates = torch.linspace(0, drop_path_rate, sum(depths), device="cpu").tolist()
        cursor = 0
        for i, (dim, heads, grid) in enumerate(zip(self.embed_dims, num_heads, self.grids, strict=True)):
            in_dim = in_chans if i == 0 else self.embed_dims[i - 1]
            setattr(self, f"patch_embed{i + 1}", PvtPatchEmbed(patch_size if i == 0 else 2, in_dim, dim))
            setattr(self, f"pos_embed{i + 1}", nn.Parameter(torch.zeros(1, grid[0] * grid[1], dim)))
            setattr(self, f"pos_drop{i + 1}", nn.Dropout(drop_rate))
            blocks = [
                PvtBlock(dim, attention(i, dim, heads, grid), mlp_ratios[i], drop_rate, drop_path_rates[cursor + j])
                for j in range(depths[i])
            ]
            setattr(self, f"block{i + 1}", nn.ModuleList(blocks))
            cursor += depths[i]
        if keep_unused_norm:
            self.norm = _BLOCK_NORM(self.embed_dims[-1])
        self.head = nn.Linear(self.embed_dims[-1], num_classes) if num_classes > 0 else nn.Identity()
        self._init_weights()

    def _init_weights(self) -> None:
        if self.pos_embed1.is_meta:
            return  # built on the meta device (parameter counting): nothing to initialise
        for i in range(self.num_stages):
            trunc_normal_(getattr(self, f"pos_embed{i + 1}"), std=0.02)
        self.apply(init_weights)

    def forward_features(self, x: Tensor) -> Tensor:
        check_image_batch(x, self.in_chans, self.img_size, self.name)
        for i in range(self.num_stages):
            # The official `_get_pos_embed` resizes stages 2-4 from their own grid to the same grid (it compares
            # against stage 1's patch count): an identity bilinear resize, skipped here.
            x = getattr(self, f"patch_embed{i + 1}")(x)
            x = getattr(self, f"pos_drop{i + 1}")(x + getattr(self, f"pos_embed{i + 1}"))
            for block in getattr(self, f"block{i + 1}"):
                x = block(x)
            if i < self.num_stages - 1:
                height, width = self.grids[i]
                x = x.transpose(1, 2).reshape(-1, self.embed_dims[i], height, width)
        return x.mean(dim=1)

    def forward_head(self, features: Tensor) -> Tensor:
        return self.head(features)

    def forward(self, x: Tensor) -> Tensor:
        return self.forward_head(self.forward_features(x))

    def adapt_checkpoint_entries(self, prefix: str, state: dict[str, Tensor], log: AdaptLog) -> None:
        """Bilinear resize of `pos_embed{i}` to this model's stage grids (as PVT's `_get_pos_embed` does)."""
        for i, grid in enumerate(self.grids):
            key = f"{prefix}pos_embed{i + 1}"
            stored = state.get(key)
            if stored is not None and stored.shape != getattr(self, f"pos_embed{i + 1}").shape:
                state[key] = resize_token_grid(stored, grid, "bilinear")
                log.add(interpolated_note("PVT pos_embed (bilinear)"))

    def adapt_checkpoint(self, state_dict: dict[str, Tensor]) -> tuple[dict[str, Tensor], list[str]]:
        """Interpolate resolution-tied entries of an official state_dict to this model's img_size."""
        return adapt_state_dict(self, state_dict)
