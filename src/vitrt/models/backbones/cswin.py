"""CSWin Transformer backbone of FLatten-, Agent- and InLine-CSwin.

Module tree as in the official code: `stage1_conv_embed.{0: Conv2d 7x7/4, 1: map->tokens, 2: LayerNorm}`,
`stage{i}.{j}.{qkv,norm1,attns,proj,norm2,mlp}`, `merge{i}.{conv,norm}`, `norm`, `head`. All norms use eps 1e-5.

In the released configs the linear-attention stages (1-2) use a split size equal to the stage resolution, so each
of their blocks is one global branch over the full width; vitrt builds exactly that, with the branch module from
the family. The softmax stages (3-4) are CSwin's `LePEAttention`: two stripe branches of C/2 channels (vertical
stripes of width `split`, then horizontal ones) in stage 3, one full-map branch in stage 4 - plain PyTorch, with
every reshape written with -1 for the batch so exported graphs keep a dynamic batch.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from timm.layers import DropPath, Mlp
from torch import Tensor, nn

from vitrt.errors import ModelConfigError
from vitrt.models.backbones.common import adapt_state_dict, check_image_batch, init_weights

# (stage index, dim, num_heads, stage resolution) -> global branch module with
# forward(q, k, v, block_mean) -> (B, N, dim).
CSwinBranchFactory = Callable[[int, int, int, int], nn.Module]


def stripe_partition(x: Tensor, grid: tuple[int, int], window: tuple[int, int]) -> Tensor:
    """(B, H*W, C) row-major tokens -> (B * windows, hs*ws, C), windows in row-major order."""
    (height, width), (hs, ws) = grid, window
    channels = x.shape[-1]
    if hs == 1 or width // ws == 1:
        # Full-width windows (or one-row ones) are contiguous runs of tokens: a reshape, no copy. The permute
        # below would only move a size-1 axis, yet exported it is a Transpose every runtime executes.
        return x.reshape(-1, hs * ws, channels)
    x = x.reshape(-1, height // hs, hs, width // ws, ws, channels).permute(0, 1, 3, 2, 4, 5)
    return x.reshape(-1, hs * ws, channels)


def stripe_reverse(x: Tensor, grid: tuple[int, int], window: tuple[int, int]) -> Tensor:
    """Inverse of `stripe_partition`: (B * windows, hs*ws, C) -> (B, H*W, C)."""
    (height, width), (hs, ws) = grid, window
    channels = x.shape[-1]
    if hs == 1 or width // ws == 1:
        return x.reshape(-1, height * width, channels)  # contiguous stripes, see `stripe_partition`
    x = x.reshape(-1, height // hs, width // ws, hs, ws, channels).permute(0, 1, 3, 2, 4, 5)
    return x.reshape(-1, height * width, channels)


def tokens_to_map(x: Tensor, height: int, width: int) -> Tensor:
    """(B, H*W, C) -> (B, C, H, W)."""
    return x.transpose(1, 2).reshape(-1, x.shape[-1], height, width)


def map_to_tokens(x: Tensor) -> Tensor:
    """(B, C, H, W) -> (B, H*W, C)."""
    return x.flatten(2).transpose(1, 2)


class MapToTokens(nn.Module):
    """Parameter-free (B, C, H, W) -> (B, H*W, C); stands at index 1 of `stage1_conv_embed` like einops' Rearrange."""

    def forward(self, x: Tensor) -> Tensor:
        return map_to_tokens(x)


class LePEAttention(nn.Module):
    """CSwin's softmax stripe attention with the locally-enhanced positional encoding `get_v` (one branch).

    idx -1: the whole resolution x resolution map is one window; idx 0: vertical stripes (resolution x split);
    idx 1: horizontal stripes (split x resolution).
    """

    uses_block_mean = False

    def __init__(self, dim: int, resolution: int, idx: int, split_size: int, num_heads: int) -> None:
        super().__init__()
        self.dim = dim
        self.resolution = resolution
        self.num_heads = num_heads
        self.scale = (dim // num_heads) ** -0.5
        if idx == -1:
            self.window = (resolution, resolution)
        elif idx == 0:
            self.window = (resolution, split_size)
        elif idx == 1:
            self.window = (split_size, resolution)
        else:
            raise ModelConfigError(f"LePEAttention idx must be -1, 0 or 1 (got {idx})")
        self.get_v = nn.Conv2d(dim, dim, kernel_size=3, stride=1, padding=1, groups=dim)

    def _heads(self, x: Tensor) -> Tensor:
        return x.reshape(x.shape[0], x.shape[1], self.num_heads, -1).transpose(1, 2)

    def forward(self, q: Tensor, k: Tensor, v: Tensor, block_mean: Tensor | None = None) -> Tensor:
        grid = (self.resolution, self.resolution)
        q, k, v = (stripe_partition(t, grid, self.window) for t in (q, k, v))
        # LePE: depthwise 3x3 on v inside each stripe (zero padding at the stripe borders).
        lepe = map_to_tokens(self.get_v(tokens_to_map(v, *self.window)))
        attn = (self._heads(q) * self.scale) @ self._heads(k).transpose(-2, -1)
        attn = attn.softmax(dim=-1)
        out = (attn @ self._heads(v)).transpose(1, 2).flatten(2) + lepe
        return stripe_reverse(out, grid, self.window)


class CSWinBlock(nn.Module):
    """norm1 -> qkv -> per-branch attention on channel slices -> concat -> proj; then the MLP."""

    def __init__(
        self,
        dim: int,
        attns: Sequence[nn.Module],
        mlp_ratio: float,
        qkv_bias: bool,
        drop: float,
        drop_path: float,
    ) -> None:
        super().__init__()
        self.dim = dim
        self.qkv = nn.Linear(dim, dim * 3, bias=qkv_bias)
        self.norm1 = nn.LayerNorm(dim)
        self.proj = nn.Linear(dim, dim)
        self.attns = nn.ModuleList(attns)
        self.drop_path = DropPath(drop_path) if drop_path > 0.0 else nn.Identity()
        self.mlp = Mlp(dim, int(dim * mlp_ratio), dim, drop=drop)
        self.norm2 = nn.LayerNorm(dim)
        self.uses_block_mean = any(getattr(a, "uses_block_mean", False) for a in self.attns)

    def forward(self, x: Tensor) -> Tensor:
        dim = self.dim
        qkv = self.qkv(self.norm1(x))
        q, k, v = qkv[..., :dim], qkv[..., dim : 2 * dim], qkv[..., 2 * dim :]
        # InLine-CSwin feeds the mean of the block input (before norm1) to its local-kernel MLP.
        block_mean = x.mean(dim=1) if self.uses_block_mean else None
        width = dim // len(self.attns)
        outs = []
        for i, attn in enumerate(self.attns):
            part = slice(i * width, (i + 1) * width)
            mean_part = block_mean[:, part] if block_mean is not None else None
            outs.append(attn(q[..., part], k[..., part], v[..., part], mean_part))
        attended = outs[0] if len(outs) == 1 else torch.cat(outs, dim=-1)
        x = x + self.drop_path(self.proj(attended))
        return x + self.drop_path(self.mlp(self.norm2(x)))


class MergeBlock(nn.Module):
    """3x3 stride-2 conv between stages, then LayerNorm."""

    def __init__(self, dim: int, dim_out: int, resolution: int) -> None:
        super().__init__()
        self.resolution = resolution
        self.conv = nn.Conv2d(dim, dim_out, 3, 2, 1)
        self.norm = nn.LayerNorm(dim_out)

    def forward(self, x: Tensor) -> Tensor:
        return self.norm(map_to_tokens(self.conv(tokens_to_map(x, self.resolution, self.resolution))))


class CSWinTransformer(nn.Module):
    """CSWin classifier with family-provided global linear attention in the stages marked linear.

    Args:
        branch: factory of the global linear-attention branch (see `CSwinBranchFactory`).
        linear_stages: per stage, True for the family's linear attention, False for softmax `LePEAttention`
            (the released configs are "LLSS"/"AABB"/"IISS": (True, True, False, False)).
        split_size: stripe width of the softmax stages; defaults to img_size // 32 (7 at 224, 12 at 384, as in
            the official 224/384 models).
    """

    def __init__(
        self,
        branch: CSwinBranchFactory,
        *,
        name: str = "cswin",
        img_size: int = 224,
        in_chans: int = 3,
        num_classes: int = 1000,
        embed_dim: int = 64,
        depths: Sequence[int] = (2, 4, 18, 1),
        num_heads: Sequence[int] = (2, 4, 8, 16),
        linear_stages: Sequence[bool] = (True, True, False, False),
        split_size: int | None = None,
        mlp_ratio: float = 4.0,
        qkv_bias: bool = True,
        drop_rate: float = 0.0,
        drop_path_rate: float = 0.0,
    ) -> None:
        super().__init__()
        self.name = name
        self.img_size = int(img_size)
        self.in_chans = in_chans
        self.num_classes = num_classes
        if self.img_size < 32 or self.img_size % 32:
            raise ModelConfigError(f"{name}: img_size must be a positive multiple of 32 (got {img_size})")
        split = self.img_size // 32 if split_size is None else int(split_size)
        resolutions = [self.img_size // 4 // 2**i for i in range(4)]
        if split < 1 or resolutions[2] % split:
            raise ModelConfigError(
                f"{name}: split_size {split} must divide the stage-3 resolution {resolutions[2]} (img_size/16)"
            )
        self.resolutions = resolutions
        self.split_size = split

        self.stage1_conv_embed = nn.Sequential(
            nn.Conv2d(in_chans, embed_dim, 7, 4, 2), MapToTokens(), nn.LayerNorm(embed_dim)
        )
        drop_path_rates = torch.linspace(0, drop_path_rate, sum(depths), device="cpu").tolist()
        dim, cursor = embed_dim, 0
        for i, (depth, heads, reso) in enumerate(zip(depths, num_heads, resolutions, strict=True)):
            if i > 0:
                setattr(self, f"merge{i}", MergeBlock(dim, dim * 2, resolutions[i - 1]))
                dim *= 2
            blocks = []
            for j in range(depth):
                if linear_stages[i]:
                    attns = [branch(i, dim, heads, reso)]
                elif i == len(depths) - 1 or reso == split:
                    attns = [LePEAttention(dim, reso, -1, split, heads)]
                else:
                    attns = [LePEAttention(dim // 2, reso, idx, split, heads // 2) for idx in (0, 1)]
                blocks.append(CSWinBlock(dim, attns, mlp_ratio, qkv_bias, drop_rate, drop_path_rates[cursor + j]))
            setattr(self, f"stage{i + 1}", nn.ModuleList(blocks))
            cursor += depth
        self.num_features = dim
        self.norm = nn.LayerNorm(dim)
        self.head = nn.Linear(dim, num_classes) if num_classes > 0 else nn.Identity()
        self.apply(init_weights)

    def forward_features(self, x: Tensor) -> Tensor:
        check_image_batch(x, self.in_chans, self.img_size, self.name)
        x = self.stage1_conv_embed(x)
        for i in range(4):
            if i > 0:
                x = getattr(self, f"merge{i}")(x)
            for block in getattr(self, f"stage{i + 1}"):
                x = block(x)
        return self.norm(x).mean(dim=1)

    def forward_head(self, features: Tensor) -> Tensor:
        return self.head(features)

    def forward(self, x: Tensor) -> Tensor:
        return self.forward_head(self.forward_features(x))

    def adapt_checkpoint(self, state_dict: dict[str, Tensor]) -> tuple[dict[str, Tensor], list[str]]:
        """Interpolate resolution-tied entries of an official state_dict to this model's img_size."""
        return adapt_state_dict(self, state_dict)
