"""The DeiT backbone (a plain ViT) shared by CA-DeiT, Agent-DeiT and InLine-DeiT.

The official repositories fork timm 0.4.12's `VisionTransformer`; module and parameter names here follow it, so their
checkpoints load strictly: `patch_embed.proj`, `cls_token`, `pos_embed`, `blocks.{i}.{norm1,attn,norm2,mlp.fc1,
mlp.fc2}`, `norm`, `head`. Families supply the attention module of each block; the backbone owns everything else.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from functools import partial

import torch
from timm.layers import DropPath, Mlp, trunc_normal_
from torch import Tensor, nn

from vitrt.errors import ModelConfigError
from vitrt.models.backbones.common import AdaptLog, adapt_state_dict, init_weights, resize_token_grid

# DeiT uses LayerNorm eps 1e-6 everywhere (partial(nn.LayerNorm, eps=1e-6) in the official code).
LayerNorm = partial(nn.LayerNorm, eps=1e-6)


def patch_grid(img_size: int, patch_size: int) -> int:
    """Tokens per side for a square `img_size` input; raises ModelConfigError if the patches do not tile it."""
    if img_size <= 0 or patch_size <= 0:
        raise ModelConfigError(f"img_size and patch_size must be positive (got {img_size}, {patch_size})")
    if img_size % patch_size:
        below, above = img_size - img_size % patch_size, img_size - img_size % patch_size + patch_size
        raise ModelConfigError(
            f"img_size {img_size} is not a multiple of the patch size {patch_size} (try {below or above} or {above})"
        )
    return img_size // patch_size


class PatchEmbed(nn.Module):
    """Non-overlapping patch projection: (B, 3, S, S) -> (B, (S/p)^2, C) in row-major token order."""

    def __init__(self, img_size: int, patch_size: int, in_chans: int, embed_dim: int) -> None:
        super().__init__()
        self.img_size = img_size
        self.patch_size = patch_size
        self.grid_size = patch_grid(img_size, patch_size)
        self.num_patches = self.grid_size**2
        self.proj = nn.Conv2d(in_chans, embed_dim, kernel_size=patch_size, stride=patch_size)

    def forward(self, x: Tensor) -> Tensor:
        if tuple(x.shape[-2:]) != (self.img_size, self.img_size):
            raise ModelConfigError(
                f"the model is built for {self.img_size}x{self.img_size} inputs, got "
                f"{x.shape[-2]}x{x.shape[-1]} (build it with img_size={x.shape[-1]} or resize the input)"
            )
        return self.proj(x).flatten(2).transpose(1, 2)


class Attention(nn.Module):
    """Multi-head softmax self-attention (the plain DeiT block's attention)."""

    def __init__(
        self, dim: int, num_heads: int, qkv_bias: bool = True, attn_drop: float = 0.0, proj_drop: float = 0.0
    ) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.scale = (dim // num_heads) ** -0.5
        self.qkv = nn.Linear(dim, dim * 3, bias=qkv_bias)
        self.attn_drop = nn.Dropout(attn_drop)
        self.proj = nn.Linear(dim, dim)
        self.proj_drop = nn.Dropout(proj_drop)

    def forward(self, x: Tensor) -> Tensor:
        q, k, v = self.qkv(x).unflatten(-1, (3, self.num_heads, -1)).permute(2, 0, 3, 1, 4).unbind(0)
        attn = ((q @ k.transpose(-2, -1)) * self.scale).softmax(dim=-1)
        x = (self.attn_drop(attn) @ v).transpose(1, 2).flatten(2)
        return self.proj_drop(self.proj(x))


class Block(nn.Module):
    """Pre-norm transformer block around a family's attention module."""

    def __init__(
        self,
        dim: int,
        attn: nn.Module,
        mlp_ratio: float = 4.0,
        drop: float = 0.0,
        drop_path: float = 0.0,
    ) -> None:
        super().__init__()
        self.norm1 = LayerNorm(dim)
        self.attn = attn
        self.drop_path = DropPath(drop_path) if drop_path > 0.0 else nn.Identity()
        self.norm2 = LayerNorm(dim)
        self.mlp = Mlp(in_features=dim, hidden_features=int(dim * mlp_ratio), act_layer=nn.GELU, drop=drop)

    def forward(self, x: Tensor) -> Tensor:
        x = x + self.drop_path(self.attn(self.norm1(x)))
        return x + self.drop_path(self.mlp(self.norm2(x)))


# block_fn(index, drop_path_rate, grid_size) -> the index-th block.
BlockFn = Callable[[int, float, int], nn.Module]


class DeiT(nn.Module):
    """ViT/DeiT trunk: patch embedding, optional cls token and absolute position embedding, blocks, norm, head.

    `global_pool="token"` classifies the cls token (Agent-, InLine-DeiT); `"avg"` averages the normalised tokens
    (CA-DeiT, which has neither cls token nor position embedding).
    """

    def __init__(
        self,
        block_fn: BlockFn,
        *,
        img_size: int = 224,
        patch_size: int = 16,
        in_chans: int = 3,
        num_classes: int = 1000,
        embed_dim: int = 768,
        depth: int = 12,
        class_token: bool = True,
        pos_embed: bool = True,
        global_pool: str = "token",
        drop_rate: float = 0.0,
        drop_path_rate: float = 0.0,
    ) -> None:
        super().__init__()
        if global_pool not in ("token", "avg"):
            raise ModelConfigError(f"global_pool must be 'token' or 'avg', got {global_pool!r}")
        if global_pool == "token" and not class_token:
            raise ModelConfigError("global_pool='token' needs a class token")
        self.num_classes = num_classes
        self.num_features = self.embed_dim = embed_dim
        self.global_pool = global_pool
        self.num_prefix_tokens = 1 if class_token else 0
        self.patch_embed = PatchEmbed(img_size, patch_size, in_chans, embed_dim)
        self.grid_size = self.patch_embed.grid_size
        num_tokens = self.patch_embed.num_patches + self.num_prefix_tokens
        self.cls_token = nn.Parameter(torch.zeros(1, 1, embed_dim)) if class_token else None
        self.pos_embed = nn.Parameter(torch.zeros(1, num_tokens, embed_dim)) if pos_embed else None
        self.pos_drop = nn.Dropout(drop_rate)
        rates = [float(r) for r in torch.linspace(0, drop_path_rate, depth, device="cpu")]
        self.blocks = nn.Sequential(*[block_fn(i, rates[i], self.grid_size) for i in range(depth)])
        self.norm = LayerNorm(embed_dim)
        self.head = nn.Linear(embed_dim, num_classes) if num_classes > 0 else nn.Identity()
        self._init_weights()

    def _init_weights(self) -> None:
        for tensor in (self.pos_embed, self.cls_token):
            if tensor is not None:
                trunc_normal_(tensor, std=0.02)
        self.apply(init_weights)

    @torch.jit.ignore
    def no_weight_decay(self) -> set[str]:
        return {"pos_embed", "cls_token"}

    def get_classifier(self) -> nn.Module:
        return self.head

    def reset_classifier(self, num_classes: int) -> None:
        self.num_classes = num_classes
        self.head = nn.Linear(self.embed_dim, num_classes) if num_classes > 0 else nn.Identity()

    def forward_features(self, x: Tensor) -> Tensor:
        """Normalised tokens (B, prefix + N, C)."""
        x = self.patch_embed(x)
        if self.cls_token is not None:
            x = torch.cat([self.cls_token.expand(x.shape[0], -1, -1), x], dim=1)
        if self.pos_embed is not None:
            x = x + self.pos_embed
        x = self.blocks(self.pos_drop(x))
        return self.norm(x)

    def forward_head(self, x: Tensor, pre_logits: bool = False) -> Tensor:
        x = x[:, 0] if self.global_pool == "token" else x.mean(dim=1)
        return x if pre_logits else self.head(x)

    def forward(self, x: Tensor) -> Tensor:
        return self.forward_head(self.forward_features(x))

    def adapt_checkpoint_entries(self, prefix: str, state: dict[str, Tensor], log: AdaptLog) -> None:
        """Bicubically resize the patch part of the checkpoint's position embedding to this model's token grid (as
        the official `load_pretrained`; prefix tokens are kept as they are)."""
        key = prefix + "pos_embed"
        stored = state.get(key)
        if self.pos_embed is None or stored is None or stored.shape == self.pos_embed.shape:
            return
        if stored.ndim != 3 or stored.shape[-1] != self.pos_embed.shape[-1]:
            return  # a different width: the strict load reports the mismatch
        split, side = self.num_prefix_tokens, self.grid_size
        patches = resize_token_grid(stored[:, split:], (side, side), "bicubic")
        state[key] = torch.cat([stored[:, :split], patches], dim=1)
        old = math.isqrt(stored.shape[1] - split)
        log.add(f"pos_embed resized {old}x{old} -> {side}x{side} (bicubic)")

    def adapt_checkpoint(self, state_dict: Mapping[str, Tensor]) -> tuple[dict[str, Tensor], list[str]]:
        """Interpolate resolution-tied entries of an official state_dict to this model's img_size."""
        return adapt_state_dict(self, state_dict)
