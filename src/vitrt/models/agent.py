"""agent family (registered models are added by the family implementation)."""

from __future__ import annotations

import math
from functools import partial
from typing import Any

import torch
from timm.layers import trunc_normal_
from torch import Tensor, nn

from vitrt import ops
from vitrt.errors import ModelConfigError
from vitrt.models.backbones.common import resize_along_axis, resize_entry
from vitrt.models.backbones.cswin import CSWinTransformer, map_to_tokens, tokens_to_map
from vitrt.models.backbones.pvt import PyramidVisionTransformer
from vitrt.models.layers import adaptive_pool_matrix, agent_position_biases
from vitrt.models.registry import ModelSpec, register_model

# --- PVT / CSwin shared: global agent attention ---

# Axis of each window-sized bias along which the official loader interpolates it when the resolution changes,
# and which grid side (0 = height, 1 = width) it follows.
_WINDOW_BIAS_AXES = {"ah_bias": (3, 0), "aw_bias": (4, 1), "ha_bias": (2, 0), "wa_bias": (3, 1)}


def _refresh_after_load(module: _GlobalAgentAttention, incompatible_keys: Any) -> None:
    module.refresh_position_biases()


class _GlobalAgentAttention(nn.Module):
    """Agent attention over a whole (H, W) token grid.

    Export-friendly forms of the official operations: agents = P q with P the constant AdaptiveAvgPool2d matrix
    (non-persistent buffer; 56 -> 3 is non-divisible), and the position biases summed once into non-persistent
    `agent_bias` (h, a, n) / `query_bias` (h, n, a) buffers, refreshed when switching to eval mode and after
    `load_state_dict`. In training mode the biases are recomputed from the parameters on every forward.
    """

    pool_matrix: Tensor
    agent_bias: Tensor
    query_bias: Tensor

    def _init_agent(self, dim: int, num_heads: int, grid: tuple[int, int], agent_num: int) -> None:
        pool = math.isqrt(agent_num)
        if pool * pool != agent_num:
            raise ModelConfigError(f"agent_num must be a perfect square (pooled to a p x p grid), got {agent_num}")
        self.dim = dim
        self.num_heads = num_heads
        self.grid = grid
        self.agent_num = agent_num
        self.scale = (dim // num_heads) ** -0.5
        height, width = grid
        self.an_bias = nn.Parameter(torch.zeros(num_heads, agent_num, 7, 7))
        self.na_bias = nn.Parameter(torch.zeros(num_heads, agent_num, 7, 7))
        self.ah_bias = nn.Parameter(torch.zeros(1, num_heads, agent_num, height, 1))
        self.aw_bias = nn.Parameter(torch.zeros(1, num_heads, agent_num, 1, width))
        self.ha_bias = nn.Parameter(torch.zeros(1, num_heads, height, 1, agent_num))
        self.wa_bias = nn.Parameter(torch.zeros(1, num_heads, 1, width, agent_num))
        self.register_buffer("pool_matrix", adaptive_pool_matrix(grid, (pool, pool)), persistent=False)
        self.register_buffer("agent_bias", torch.zeros(num_heads, agent_num, height * width), persistent=False)
        self.register_buffer("query_bias", torch.zeros(num_heads, height * width, agent_num), persistent=False)
        self.register_load_state_dict_post_hook(_refresh_after_load)
        if not self.an_bias.is_meta:  # on the meta device (parameter counting) there is nothing to initialise
            for bias in (self.an_bias, self.na_bias, self.ah_bias, self.aw_bias, self.ha_bias, self.wa_bias):
                trunc_normal_(bias, std=0.02)
        self.refresh_position_biases()

    def _compute_position_biases(self) -> tuple[Tensor, Tensor]:
        return agent_position_biases(
            self.an_bias, self.na_bias, self.ah_bias, self.aw_bias, self.ha_bias, self.wa_bias, self.grid
        )

    @torch.no_grad()
    def refresh_position_biases(self) -> None:
        """Recompute the eval-mode bias buffers from the current parameters."""
        if self.an_bias.is_meta:
            return
        self.agent_bias, self.query_bias = (b.detach() for b in self._compute_position_biases())

    def train(self, mode: bool = True) -> _GlobalAgentAttention:
        super().train(mode)
        if not mode:
            self.refresh_position_biases()
        return self

    def agent_attention(self, q: Tensor, k: Tensor, v: Tensor) -> Tensor:
        agents = self.pool_matrix @ q
        if self.training:
            agent_bias, query_bias = self._compute_position_biases()
        else:
            agent_bias, query_bias = self.agent_bias, self.query_bias
        return ops.agent_attention(q, k, v, agents, agent_bias, query_bias, num_heads=self.num_heads, scale=self.scale)

    def resize_checkpoint_entries(self, prefix: str, state: dict[str, Tensor]) -> list[str]:
        # Linear interpolation along the window axis, as the official `load_pretrained` does.
        labels = []
        for name, (axis, side) in _WINDOW_BIAS_AXES.items():
            size = self.grid[side]
            resize = partial(resize_along_axis, axis=axis, size=size)
            if resize_entry(state, f"{prefix}{name}", getattr(self, name), resize):
                labels.append("agent ah/aw/ha/wa bias (linear)")
        return labels


# --- PVT backbone ---


class AgentPvtAttention(_GlobalAgentAttention):
    """Agent-PVT attention (sr_ratio 1): q, kv, agent attention + 3x3 depthwise conv on v, proj."""

    def __init__(
        self,
        dim: int,
        num_heads: int,
        grid: tuple[int, int],
        agent_num: int,
        *,
        qkv_bias: bool = True,
        proj_drop: float = 0.0,
    ) -> None:
        super().__init__()
        self.q = nn.Linear(dim, dim, bias=qkv_bias)
        self.kv = nn.Linear(dim, dim * 2, bias=qkv_bias)
        self.proj = nn.Linear(dim, dim)
        self.proj_drop = nn.Dropout(proj_drop)
        self.dwc = nn.Conv2d(dim, dim, kernel_size=3, padding=1, groups=dim)
        self._init_agent(dim, num_heads, grid, agent_num)

    def forward(self, x: Tensor) -> Tensor:
        q = self.q(x)
        k, v = self.kv(x).chunk(2, dim=-1)
        out = self.agent_attention(q, k, v) + map_to_tokens(self.dwc(tokens_to_map(v, *self.grid)))
        return self.proj_drop(self.proj(out))


_AGENT_NUMS = (9, 16, 49, 49)
_AGENT_PVT = {
    "t": ("agent_pvt_tiny", (2, 2, 2, 2), 11.57),
    "s": ("agent_pvt_small", (3, 4, 6, 3), 20.64),
    "m": ("agent_pvt_medium", (3, 4, 18, 3), 35.92),
    "l": ("agent_pvt_large", (3, 8, 27, 3), 48.74),
}


def _build_agent_pvt(
    img_size: int = 224,
    num_classes: int = 1000,
    *,
    name: str,
    depths: tuple[int, ...],
    agent_num: tuple[int, ...] = _AGENT_NUMS,
    **kwargs: Any,
) -> PyramidVisionTransformer:
    drop = kwargs.get("drop_rate", 0.0)

    def attention(stage: int, dim: int, heads: int, grid: tuple[int, int]) -> nn.Module:
        return AgentPvtAttention(dim, heads, grid, int(agent_num[stage]), proj_drop=drop)

    return PyramidVisionTransformer(
        attention,
        name=name,
        img_size=img_size,
        num_classes=num_classes,
        num_heads=(1, 2, 5, 8),
        depths=depths,
        **kwargs,
    )


for _size, (_official, _depths, _params) in _AGENT_PVT.items():
    register_model(
        ModelSpec(
            name=f"agent_pvt_{_size}",
            family="agent",
            backbone="pvt",
            builder=partial(_build_agent_pvt, name=f"agent_pvt_{_size}", depths=_depths),
            default_img_size=224,
            official_name=_official,
            expected_params_m=_params,
        )
    )


# --- CSwin backbone ---


class AgentCSwinAttention(_GlobalAgentAttention):
    """Agent-CSwin global branch: agent attention + CSwin's LePE (`get_v`); no DWC. The block's `qkv` and `proj`
    sit outside the branch."""

    uses_block_mean = False

    def __init__(self, dim: int, num_heads: int, resolution: int, agent_num: int) -> None:
        super().__init__()
        self.get_v = nn.Conv2d(dim, dim, kernel_size=3, stride=1, padding=1, groups=dim)
        self._init_agent(dim, num_heads, (resolution, resolution), agent_num)

    def forward(self, q: Tensor, k: Tensor, v: Tensor, block_mean: Tensor | None = None) -> Tensor:
        lepe = map_to_tokens(self.get_v(tokens_to_map(v, *self.grid)))
        return self.agent_attention(q, k, v) + lepe


_AGENT_CSWIN = {
    "t": ("Agent_CSWin_64_24181_tiny_224", 64, (2, 4, 18, 1), (2, 4, 8, 16), 20.5),
    "s": ("Agent_CSWin_64_36292_small_224", 64, (3, 6, 29, 2), (2, 4, 8, 16), 32.8),
    "b": ("Agent_CSWin_96_36292_base_224", 96, (3, 6, 29, 2), (4, 8, 16, 32), 73.2),
}


def _build_agent_cswin(
    img_size: int = 224,
    num_classes: int = 1000,
    *,
    name: str,
    agent_num: tuple[int, ...] = _AGENT_NUMS,
    **kwargs: Any,
) -> CSWinTransformer:
    # Only the linear stages (1-2) use agents; the official config lists four counts, the last two unused.
    def branch(stage: int, dim: int, heads: int, resolution: int) -> nn.Module:
        return AgentCSwinAttention(dim, heads, resolution, int(agent_num[stage]))

    return CSWinTransformer(branch, name=name, img_size=img_size, num_classes=num_classes, **kwargs)


for _size, (_official, _dim, _depths, _heads, _params) in _AGENT_CSWIN.items():
    register_model(
        ModelSpec(
            name=f"agent_cswin_{_size}",
            family="agent",
            backbone="cswin",
            builder=partial(
                _build_agent_cswin, name=f"agent_cswin_{_size}", embed_dim=_dim, depths=_depths, num_heads=_heads
            ),
            default_img_size=224,
            official_name=_official,
            expected_params_m=_params,
        )
    )
