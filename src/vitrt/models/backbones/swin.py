"""The Swin Transformer backbone shared by the FLatten, Agent and InLine Swin models.

Module tree, parameter and buffer names follow Microsoft's Swin code as forked by the three official repositories
(`patch_embed.{proj,norm}`, `layers.{i}.blocks.{j}.{norm1,attn,norm2,mlp,attn_mask}`, `layers.{i}.downsample`,
`norm`, `head`), so their checkpoints load strictly. A family plugs in its linear attention through the
`linear_attention` factory; softmax blocks use shifted-window attention with relative position bias and -100 masks.

Per-stage attention types follow the official configs: one letter per stage, either the family's linear letter
(`L`, `A`, `I`) or its softmax letter (`S`, `B`). `M` as a stage letter means "the first k blocks linear, the rest
softmax", with k read from the suffix after the per-stage letters (`AAMB2`: stage 3 starts with two agent blocks).

Windows: linear blocks use the config window (by default the whole stage-1 token map, as the official configs do
with 56 at 224 px, 72 at 288 px, 96 at 384 px), softmax blocks the family's softmax window. A block whose map is no
larger than its window clamps the window to the map and drops the shift, so every linear block of the official
configs is global. Every reshape keeps the batch symbolic (-1): no Python arithmetic on the batch size, so
`torch.export` with a dynamic batch traces the graph correctly.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F
from timm.layers import DropPath, Mlp
from torch import Tensor, nn

from vitrt.errors import ModelConfigError
from vitrt.models.backbones.common import (
    AdaptLog,
    adapt_state_dict,
    init_weights,
    replace_buffer_entry,
    trunc_normal_init,
)

# (dim, window_size, num_heads, stage, qkv_bias, qk_scale, proj_drop) -> attention module
LinearAttentionFactory = Callable[..., nn.Module]
MASK_VALUE = -100.0


def window_partition(x: Tensor, window: int) -> Tensor:
    """(B, H, W, C) -> (B * num_windows, window * window, C), windows in row-major order."""
    _, height, width, channels = x.shape
    x = x.reshape(-1, height // window, window, width // window, window, channels)
    return x.permute(0, 1, 3, 2, 4, 5).reshape(-1, window * window, channels)


def window_reverse(windows: Tensor, window: int, height: int, width: int) -> Tensor:
    """(B * num_windows, window * window, C) -> (B, H, W, C); the batch is inferred, never computed in Python."""
    channels = windows.shape[-1]
    x = windows.reshape(-1, height // window, width // window, window, window, channels)
    return x.permute(0, 1, 3, 2, 4, 5).reshape(-1, height, width, channels)


def relative_position_index(window: tuple[int, int]) -> Tensor:
    """(n, n) index into the (2*Wh-1)*(2*Ww-1) relative position bias table, n = Wh*Ww."""
    wh, ww = window
    coords = torch.stack(torch.meshgrid(torch.arange(wh), torch.arange(ww), indexing="ij")).flatten(1)
    relative = (coords[:, :, None] - coords[:, None, :]).permute(1, 2, 0)
    return (relative[..., 0] + wh - 1) * (2 * ww - 1) + (relative[..., 1] + ww - 1)


def shifted_window_mask(resolution: tuple[int, int], window: int, shift: int) -> Tensor:
    """(num_windows, n, n) additive mask of a cyclically shifted partition: -100 between tokens of different regions."""
    height, width = resolution
    regions = torch.zeros(1, height, width, 1)
    bounds = (slice(0, -window), slice(-window, -shift), slice(-shift, None))
    label = 0
    for rows in bounds:
        for cols in bounds:
            regions[:, rows, cols, :] = label
            label += 1
    labels = window_partition(regions, window).squeeze(-1)
    different = labels.unsqueeze(1) - labels.unsqueeze(2) != 0
    return torch.zeros(different.shape).masked_fill(different, MASK_VALUE)


class PatchEmbed(nn.Module):
    """Non-overlapping patch projection (`proj`) and optional LayerNorm (`norm`)."""

    def __init__(self, img_size: int, patch_size: int, in_chans: int, embed_dim: int, patch_norm: bool = True):
        super().__init__()
        self.img_size = (img_size, img_size)
        self.patches_resolution = (img_size // patch_size, img_size // patch_size)
        self.proj = nn.Conv2d(in_chans, embed_dim, kernel_size=patch_size, stride=patch_size)
        self.norm = nn.LayerNorm(embed_dim) if patch_norm else None

    def forward(self, x: Tensor) -> Tensor:
        if tuple(x.shape[-2:]) != self.img_size:
            raise ModelConfigError(
                f"input is {x.shape[-2]}x{x.shape[-1]} but the model was built for {self.img_size[0]}x"
                f"{self.img_size[1]}; create it with img_size={x.shape[-1]} or resize the input"
            )
        x = self.proj(x).flatten(2).transpose(1, 2)
        return self.norm(x) if self.norm is not None else x


class WindowAttention(nn.Module):
    """Softmax window attention with a learned relative position bias (W-MSA / SW-MSA)."""

    relative_position_index: Tensor

    def __init__(
        self,
        dim: int,
        window_size: tuple[int, int],
        num_heads: int,
        qkv_bias: bool = True,
        qk_scale: float | None = None,
        attn_drop: float = 0.0,
        proj_drop: float = 0.0,
    ):
        super().__init__()
        self.dim = dim
        self.window_size = window_size
        self.num_heads = num_heads
        self.scale = qk_scale or (dim // num_heads) ** -0.5
        table_size = (2 * window_size[0] - 1) * (2 * window_size[1] - 1)
        self.relative_position_bias_table = nn.Parameter(torch.zeros(table_size, num_heads))
        # Persistent: the official checkpoints carry it, so strict loads need it.
        self.register_buffer("relative_position_index", relative_position_index(window_size))
        self.qkv = nn.Linear(dim, dim * 3, bias=qkv_bias)
        self.attn_drop = nn.Dropout(attn_drop)
        self.proj = nn.Linear(dim, dim)
        self.proj_drop = nn.Dropout(proj_drop)
        trunc_normal_init(self.relative_position_bias_table)

    def relative_position_bias(self) -> Tensor:
        n = self.window_size[0] * self.window_size[1]
        bias = self.relative_position_bias_table[self.relative_position_index.view(-1)].view(n, n, -1)
        return bias.permute(2, 0, 1)

    def forward(self, x: Tensor, mask: Tensor | None = None) -> Tensor:
        n, channels = x.shape[1:]
        qkv = self.qkv(x).reshape(-1, n, 3, self.num_heads, channels // self.num_heads).permute(2, 0, 3, 1, 4)
        q, k, v = qkv.unbind(0)
        attn = (q * self.scale) @ k.transpose(-2, -1) + self.relative_position_bias().unsqueeze(0)
        if mask is not None:
            num_windows = mask.shape[0]
            attn = attn.view(-1, num_windows, self.num_heads, n, n) + mask.unsqueeze(1).unsqueeze(0)
            attn = attn.view(-1, self.num_heads, n, n)
        attn = self.attn_drop(attn.softmax(dim=-1))
        x = (attn @ v).transpose(1, 2).reshape(-1, n, channels)
        return self.proj_drop(self.proj(x))

    def adapt_checkpoint_entries(self, prefix: str, state: dict[str, Tensor], log: AdaptLog) -> None:
        """Bicubic-resize the bias table when the window changed (official `load_pretrained`); recompute the index."""
        key = prefix + "relative_position_bias_table"
        table = state.get(key)
        own = self.relative_position_bias_table
        if table is not None and table.shape[1] == own.shape[1] and table.shape[0] != own.shape[0]:
            side_in, side_out = int(table.shape[0] ** 0.5), 2 * self.window_size[0] - 1
            grid = table.transpose(0, 1).reshape(1, -1, side_in, side_in).float()
            resized = F.interpolate(grid, size=(side_out, 2 * self.window_size[1] - 1), mode="bicubic")
            state[key] = resized.reshape(own.shape[1], -1).transpose(0, 1).to(table.dtype)
            log.add(f"bicubic-resized relative_position_bias_table {side_in}x{side_in} -> {side_out}x{side_out}")
        replace_buffer_entry(
            state, prefix + "relative_position_index", self.relative_position_index, log, "relative_position_index"
        )

    def extra_repr(self) -> str:
        return f"dim={self.dim}, window_size={self.window_size}, num_heads={self.num_heads}"


class SwinBlock(nn.Module):
    """One Swin block: (shifted) window attention and an MLP, both pre-norm residual."""

    attn_mask: Tensor | None

    def __init__(
        self,
        dim: int,
        input_resolution: tuple[int, int],
        num_heads: int,
        attention: Callable[[tuple[int, int]], nn.Module],
        window_size: int,
        shift_size: int = 0,
        mlp_ratio: float = 4.0,
        drop: float = 0.0,
        drop_path: float = 0.0,
    ):
        super().__init__()
        self.dim = dim
        self.input_resolution = input_resolution
        self.window_size = window_size
        self.shift_size = shift_size
        self.norm1 = nn.LayerNorm(dim)
        self.attn = attention((window_size, window_size))
        self.drop_path = DropPath(drop_path) if drop_path > 0.0 else nn.Identity()
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = Mlp(in_features=dim, hidden_features=int(dim * mlp_ratio), act_layer=nn.GELU, drop=drop)
        mask = shifted_window_mask(input_resolution, window_size, shift_size) if shift_size > 0 else None
        self.register_buffer("attn_mask", mask)
        # One window covering the whole map: the partition is the identity and is skipped.
        self.global_window = shift_size == 0 and input_resolution == (window_size, window_size)

    def forward(self, x: Tensor) -> Tensor:
        height, width = self.input_resolution
        shortcut = x
        x = self.norm1(x)
        if self.global_window:
            x = self.attn(x)
        else:
            x = x.reshape(-1, height, width, self.dim)
            if self.shift_size > 0:
                x = torch.roll(x, shifts=(-self.shift_size, -self.shift_size), dims=(1, 2))
            windows = self.attn(window_partition(x, self.window_size), mask=self.attn_mask)
            x = window_reverse(windows, self.window_size, height, width)
            if self.shift_size > 0:
                x = torch.roll(x, shifts=(self.shift_size, self.shift_size), dims=(1, 2))
            x = x.reshape(-1, height * width, self.dim)
        x = shortcut + self.drop_path(x)
        return x + self.drop_path(self.mlp(self.norm2(x)))

    def adapt_checkpoint_entries(self, prefix: str, state: dict[str, Tensor], log: AdaptLog) -> None:
        replace_buffer_entry(state, prefix + "attn_mask", self.attn_mask, log, "attn_mask")

    def extra_repr(self) -> str:
        return (
            f"dim={self.dim}, input_resolution={self.input_resolution}, window_size={self.window_size}, "
            f"shift_size={self.shift_size}"
        )


class PatchMerging(nn.Module):
    """2x2 neighbourhood concatenation, LayerNorm and a linear reduction 4C -> 2C."""

    def __init__(self, input_resolution: tuple[int, int], dim: int):
        super().__init__()
        self.input_resolution = input_resolution
        self.dim = dim
        self.reduction = nn.Linear(4 * dim, 2 * dim, bias=False)
        self.norm = nn.LayerNorm(4 * dim)

    def forward(self, x: Tensor) -> Tensor:
        height, width = self.input_resolution
        x = x.reshape(-1, height, width, self.dim)
        x = torch.cat([x[:, 0::2, 0::2], x[:, 1::2, 0::2], x[:, 0::2, 1::2], x[:, 1::2, 1::2]], dim=-1)
        x = x.reshape(-1, (height // 2) * (width // 2), 4 * self.dim)
        return self.reduction(self.norm(x))


class SwinStage(nn.Module):
    """A Swin or MLLA stage (the official `BasicLayer`): `blocks` and an optional `downsample`."""

    def __init__(self, blocks: Sequence[nn.Module], downsample: nn.Module | None):
        super().__init__()
        self.blocks = nn.ModuleList(blocks)
        self.downsample = downsample

    def forward(self, x: Tensor) -> Tensor:
        for block in self.blocks:
            x = block(x)
        return self.downsample(x) if self.downsample is not None else x


def stage_attention_types(
    attn_type: str, depths: Sequence[int], linear: str, softmax: str, arch: str
) -> list[list[str]]:
    """Expand an official ATTN_TYPE string into one letter per block."""
    stages = len(depths)
    letters, suffix = attn_type[:stages], attn_type[stages:]
    allowed = {linear, softmax, "M"}
    if len(letters) != stages or any(letter not in allowed for letter in letters):
        raise ModelConfigError(
            f"{arch}: attn_type {attn_type!r} needs one of {linear!r}, {softmax!r} or 'M' for each of {stages} "
            "stages (plus the linear block count after them when 'M' is used)"
        )
    linear_blocks = 0
    if "M" in letters:
        if not suffix.isdigit():
            raise ModelConfigError(f"{arch}: attn_type {attn_type!r} uses 'M' without the linear block count suffix")
        linear_blocks = int(suffix)
    elif suffix:
        raise ModelConfigError(f"{arch}: attn_type {attn_type!r} has a suffix but no 'M' stage")
    return [
        [linear if letter == linear or (letter == "M" and j < linear_blocks) else softmax for j in range(depth)]
        for letter, depth in zip(letters, depths, strict=True)
    ]


class HierarchicalClassifier(nn.Module):
    """The part of the Swin and MLLA classifiers after their stages: `norm`, token mean, `head`.

    Subclasses build `patch_embed`, `pos_drop` and `layers` (stages ending at `num_features` channels), then call
    `init_head`. `adapt_checkpoint` fits a checkpoint saved at another resolution (or window), like the official
    loaders: modules interpolate their resolution-tied parameters and replace recomputed buffers
    (`relative_position_index`, `attn_mask`, RoPE `rotations`) by this model's own values.
    """

    num_features: int
    patch_embed: nn.Module
    pos_drop: nn.Module
    layers: nn.ModuleList

    def init_head(self, num_classes: int) -> None:
        """Add `norm` and `head` and initialise every weight (the official order: after the stages)."""
        self.norm = nn.LayerNorm(self.num_features)
        self.head = nn.Linear(self.num_features, num_classes) if num_classes > 0 else nn.Identity()
        self.apply(init_weights)

    def forward_features(self, x: Tensor) -> Tensor:
        """Pooled features (B, num_features)."""
        x = self.pos_drop(self.patch_embed(x))
        for layer in self.layers:
            x = layer(x)
        return self.norm(x).mean(dim=1)

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.forward_features(x))

    def adapt_checkpoint(self, state_dict: dict[str, Tensor]) -> tuple[dict[str, Tensor], list[str]]:
        return adapt_state_dict(self, state_dict)


class SwinTransformer(HierarchicalClassifier):
    """Swin classifier whose linear-attention blocks come from a family factory.

    Args:
        img_size: square input size; must be divisible by patch_size * 2**(stages-1) and give stage maps that
            every block's window tiles.
        window_size: the config `WINDOW_SIZE` used by linear blocks; None = the whole stage-1 map (img/patch).
        softmax_window_size: window of softmax blocks; None = the family's official rule applied to window_size.
        attn_type: official per-stage letters (see the module docstring).
        linear_attention: factory(dim=, window_size=, num_heads=, stage=, qkv_bias=, qk_scale=, proj_drop=).
        attn_drop_rate: attention dropout of softmax blocks (the linear-attention ops have none).
    """

    def __init__(
        self,
        *,
        img_size: int = 224,
        patch_size: int = 4,
        in_chans: int = 3,
        num_classes: int = 1000,
        embed_dim: int = 96,
        depths: Sequence[int] = (2, 2, 6, 2),
        num_heads: Sequence[int] = (3, 6, 12, 24),
        attn_type: str,
        linear_letter: str,
        softmax_letter: str,
        linear_attention: LinearAttentionFactory,
        softmax_window_rule: Callable[[int], int],
        window_size: int | None = None,
        softmax_window_size: int | None = None,
        mlp_ratio: float = 4.0,
        qkv_bias: bool = True,
        qk_scale: float | None = None,
        drop_rate: float = 0.0,
        attn_drop_rate: float = 0.0,
        drop_path_rate: float = 0.1,
        patch_norm: bool = True,
        arch: str = "swin",
    ):
        super().__init__()
        stages = len(depths)
        if len(num_heads) != stages:
            raise ModelConfigError(f"{arch}: {stages} depths but {len(num_heads)} num_heads")
        stride = patch_size * 2 ** (stages - 1)
        if img_size <= 0 or img_size % stride:
            raise ModelConfigError(
                f"{arch}: img_size {img_size} is not a positive multiple of {stride} "
                f"(patch {patch_size} x 2^{stages - 1} downsamplings)"
            )
        for i, heads in enumerate(num_heads):
            if (embed_dim * 2**i) % heads:
                raise ModelConfigError(
                    f"{arch}: stage {i + 1} width {embed_dim * 2**i} is not divisible by {heads} heads"
                )
        self.num_classes = num_classes
        self.num_layers = stages
        self.embed_dim = embed_dim
        self.num_features = int(embed_dim * 2 ** (stages - 1))
        self.img_size = img_size
        self.patch_embed = PatchEmbed(img_size, patch_size, in_chans, embed_dim, patch_norm)
        self.pos_drop = nn.Dropout(p=drop_rate)

        base_window = window_size if window_size is not None else img_size // patch_size
        softmax_window = softmax_window_size if softmax_window_size is not None else softmax_window_rule(base_window)
        if base_window <= 0 or softmax_window <= 0:
            raise ModelConfigError(f"{arch}: window sizes must be positive (got {base_window}, {softmax_window})")
        self.window_size, self.softmax_window_size = base_window, softmax_window
        block_types = stage_attention_types(attn_type, depths, linear_letter, softmax_letter, arch)
        total = sum(depths)
        rates = [drop_path_rate * i / (total - 1) if total > 1 else 0.0 for i in range(total)]

        layers = []
        for i, (depth, heads) in enumerate(zip(depths, num_heads, strict=True)):
            dim = embed_dim * 2**i
            side = img_size // patch_size // 2**i
            blocks = []
            for j in range(depth):
                linear = block_types[i][j] == linear_letter
                window = base_window if linear else softmax_window
                shift = 0 if j % 2 == 0 else window // 2
                if side <= window:  # the window covers the whole map: no partition, no shift
                    window, shift = side, 0
                elif side % window:
                    raise ModelConfigError(
                        f"{arch}: img_size {img_size} gives a {side}x{side} map in stage {i + 1} that "
                        f"{window}x{window} {'linear' if linear else 'softmax'} windows do not tile; choose another "
                        f"img_size or pass {'window_size' if linear else 'softmax_window_size'}"
                    )
                if linear:

                    def attention(
                        win: tuple[int, int], dim: int = dim, heads: int = heads, stage: int = i
                    ) -> nn.Module:
                        return linear_attention(
                            dim=dim,
                            window_size=win,
                            num_heads=heads,
                            stage=stage,
                            qkv_bias=qkv_bias,
                            qk_scale=qk_scale,
                            proj_drop=drop_rate,
                        )

                else:

                    def attention(
                        win: tuple[int, int], dim: int = dim, heads: int = heads, stage: int = i
                    ) -> nn.Module:
                        return WindowAttention(dim, win, heads, qkv_bias, qk_scale, attn_drop_rate, drop_rate)

                blocks.append(
                    SwinBlock(
                        dim,
                        (side, side),
                        heads,
                        attention,
                        window_size=window,
                        shift_size=shift,
                        mlp_ratio=mlp_ratio,
                        drop=drop_rate,
                        drop_path=rates[sum(depths[:i]) + j],
                    )
                )
            downsample = PatchMerging((side, side), dim) if i < stages - 1 else None
            layers.append(SwinStage(blocks, downsample))
        self.layers = nn.ModuleList(layers)
        self.init_head(num_classes)
