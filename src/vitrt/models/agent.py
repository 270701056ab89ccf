"""Agent attention (ECCV'24): the Agent models of the zoo.

Official code: LeapLabTHU/Agent-Attention `agent_transformer/models/agent_{deit,swin,pvt,cswin}.py`. Agent tokens
are pooled from the queries; two small softmax attentions (agents -> keys, queries -> agents) run in
`vitrt.ops.agent_attention`, one ONNX node on export. Pooling, position biases, the depthwise conv and the
projections are ordinary modules around it, in export-friendly form: a constant pooling matrix instead of
AdaptiveAvgPool2d (whose overlapping bins for non-divisible sizes do not export), and position biases summed once
into buffers instead of being interpolated and `.repeat`-ed at every forward.
"""

from __future__ import annotations

import math
from functools import partial
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from vitrt import ops
from vitrt.data.digits import LABELS as DIGIT_LABELS
from vitrt.errors import ModelConfigError
from vitrt.models.backbones.common import AdaptLog, interpolated_note, trunc_normal_init
from vitrt.models.backbones.cswin import CSWinTransformer, map_to_tokens, tokens_to_map
from vitrt.models.backbones.deit import Attention, Block, DeiT
from vitrt.models.backbones.pvt import PyramidVisionTransformer
from vitrt.models.backbones.swin import SwinTransformer
from vitrt.models.layers import adaptive_pool_matrix, agent_position_biases
from vitrt.models.registry import ModelSpec, Variant, register_model, register_variants

# --- Shared by every backbone: the agent attention core ---

# Axis holding the window in each window-sized agent bias:
# ah (1,h,a,w,1), aw (1,h,a,1,w), ha (1,h,w,1,a), wa (1,h,1,w,a).
AGENT_WINDOW_BIAS_AXES = {"ah_bias": 3, "aw_bias": 4, "ha_bias": 2, "wa_bias": 3}


def resize_agent_window_bias(bias: Tensor, name: str, window: int) -> Tensor:
    """Linearly resize an `ah/aw/ha/wa` agent bias along its window axis (as the official `load_pretrained`).

    Interpolation is 1-D and independent per (head, agent) row; computed in FP32, returned in the input dtype.
    """
    axis = AGENT_WINDOW_BIAS_AXES[name]
    rows = bias.float().movedim(axis, -1)
    resized = F.interpolate(rows.reshape(1, -1, rows.shape[-1]), size=window, mode="linear", align_corners=False)
    return resized.reshape(*rows.shape[:-1], window).movedim(-1, axis).to(bias.dtype)


def _refresh_biases_after_load(module: _AgentAttentionCore, incompatible_keys: Any) -> None:
    module.refresh_position_biases()


class _AgentAttentionCore(nn.Module):
    """Agent attention over a whole (H, W) token grid, optionally behind one cls token (DeiT).

    Export-friendly forms of the official operations: agents = P q with P the constant AdaptiveAvgPool2d matrix
    (non-persistent buffer; 56 -> 3 is non-divisible), and the position biases summed once into non-persistent
    `agent_bias` (h, a, [1 +] n) / `query_bias` (h, [1 +] n, a) buffers, refreshed when switching to eval mode and
    after `load_state_dict`. In training mode the biases are recomputed from the parameters on every forward.
    Subclasses add their projections first and then call `_init_agent`, which keeps the official parameter order.
    """

    pool_matrix: Tensor
    agent_bias: Tensor
    query_bias: Tensor
    ac_bias: nn.Parameter | None
    ca_bias: nn.Parameter | None

    def _init_agent(
        self, dim: int, num_heads: int, grid: tuple[int, int], agent_num: int, *, cls_token: bool = False
    ) -> None:
        pool = math.isqrt(agent_num)
        if pool * pool != agent_num:
            raise ModelConfigError(
                f"agent_num {agent_num} is not a square number; agents pool to a p x p grid (a perfect square)"
            )
        if dim % num_heads:
            raise ModelConfigError(f"embed dim {dim} is not divisible by {num_heads} heads")
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
        # DeiT: the cls-key column and cls-query row of the two bias matrices.
        self.ac_bias = nn.Parameter(torch.zeros(1, num_heads, agent_num, 1)) if cls_token else None
        self.ca_bias = nn.Parameter(torch.zeros(1, num_heads, 1, agent_num)) if cls_token else None
        tokens = int(cls_token) + height * width
        self.register_buffer("pool_matrix", adaptive_pool_matrix(grid, (pool, pool)), persistent=False)
        self.register_buffer("agent_bias", torch.zeros(num_heads, agent_num, tokens), persistent=False)
        self.register_buffer("query_bias", torch.zeros(num_heads, tokens, agent_num), persistent=False)
        self.register_load_state_dict_post_hook(_refresh_biases_after_load)
        for bias in self.bias_parameters():
            trunc_normal_init(bias)
        self.refresh_position_biases()

    def bias_parameters(self) -> list[nn.Parameter]:
        biases = [self.an_bias, self.na_bias, self.ah_bias, self.aw_bias, self.ha_bias, self.wa_bias]
        return biases + [b for b in (self.ac_bias, self.ca_bias) if b is not None]

    def compute_position_biases(self) -> tuple[Tensor, Tensor]:
        """(agent -> key bias (h, a, [1 +] n), query -> agent bias (h, [1 +] n, a)) from the bias parameters."""
        return agent_position_biases(
            self.an_bias,
            self.na_bias,
            self.ah_bias,
            self.aw_bias,
            self.ha_bias,
            self.wa_bias,
            self.grid,
            ac_bias=self.ac_bias,
            ca_bias=self.ca_bias,
        )

    @torch.no_grad()
    def refresh_position_biases(self) -> None:
        """Recompute the eval-mode bias buffers (after loading weights or any edit of the bias parameters)."""
        if self.an_bias.is_meta:  # shape-only build: the buffers already have their shapes
            return
        self.agent_bias, self.query_bias = self.compute_position_biases()

    def train(self, mode: bool = True) -> _AgentAttentionCore:
        super().train(mode)
        if not mode:
            self.refresh_position_biases()
        return self

    def agent_attention(self, q: Tensor, k: Tensor, v: Tensor) -> Tensor:
        """The op on (B, [1 +] n, C) q, k, v, with the agents pooled from the grid queries (the cls query excluded)."""
        agents = self.pool_matrix @ (q if self.ac_bias is None else q[:, 1:])  # (a, n) @ (B, n, C) -> (B, a, C)
        if self.training:
            agent_bias, query_bias = self.compute_position_biases()
        else:
            agent_bias, query_bias = self.agent_bias, self.query_bias
        return ops.agent_attention(q, k, v, agents, agent_bias, query_bias, num_heads=self.num_heads, scale=self.scale)

    def adapt_checkpoint_entries(self, prefix: str, state: dict[str, Tensor], log: AdaptLog) -> None:
        """Linearly resize the checkpoint's `ah/aw/ha/wa` biases to this grid (the official `load_pretrained`)."""
        for name, axis in AGENT_WINDOW_BIAS_AXES.items():
            key = prefix + name
            stored, own = state.get(key), getattr(self, name)
            if stored is None or stored.ndim != 5 or stored.shape == own.shape:
                continue
            if any(stored.shape[d] != own.shape[d] for d in range(5) if d != axis):
                continue  # heads or agent count differ: left for the strict load to report
            state[key] = resize_agent_window_bias(stored, name, own.shape[axis])
            log.add(self.window_bias_note(name, stored.shape[axis], own.shape[axis]))

    def window_bias_note(self, name: str, old: int, new: int) -> str:
        return interpolated_note("agent ah/aw/ha/wa bias (linear)")


# --- DeiT backbone ---
# Agent-DeiT (official `agent_transformer/models/agent_deit.py`): the cls token is kept; agents are pooled from the
# patch queries only, `ac_bias`/`ca_bias` are the cls column/row of the two bias matrices, and the depthwise conv
# is added to the patch tokens only. The first `agent_layers` blocks are agent blocks (all 12 for T/S, 4 for B), the
# rest plain DeiT blocks.


class DeiTAgentAttention(_AgentAttentionCore):
    """Agent attention over (cls + w*w) tokens with `agent_num` agents pooled from the patch queries."""

    def __init__(
        self,
        dim: int,
        num_heads: int,
        grid_size: int,
        agent_num: int = 49,
        qkv_bias: bool = True,
        proj_drop: float = 0.0,
    ) -> None:
        super().__init__()
        self.qkv = nn.Linear(dim, dim * 3, bias=qkv_bias)
        self.proj = nn.Linear(dim, dim)
        self.proj_drop = nn.Dropout(proj_drop)
        self.dwc = nn.Conv2d(dim, dim, kernel_size=3, padding=1, groups=dim)
        self._init_agent(dim, num_heads, (grid_size, grid_size), agent_num, cls_token=True)

    def window_bias_note(self, name: str, old: int, new: int) -> str:
        return f"{{count}} agent window biases (ah/aw/ha/wa) resized {old} -> {new} (linear)"

    def forward(self, x: Tensor) -> Tensor:
        q, k, v = self.qkv(x).chunk(3, dim=-1)
        x = self.agent_attention(q, k, v)
        patches = v[:, 1:].transpose(1, 2).unflatten(-1, self.grid)
        x = torch.cat([x[:, :1], x[:, 1:] + self.dwc(patches).flatten(2).transpose(1, 2)], dim=1)
        return self.proj_drop(self.proj(x))


class AgentDeiT(DeiT):
    """Agent-DeiT: the first `agent_layers` blocks use agent attention (all when -1), the rest softmax attention.

    Trunk geometry (img_size, patch_size, in_chans, num_classes, depth, drop_path_rate) goes to `DeiT`.
    """

    def __init__(
        self,
        *,
        embed_dim: int = 192,
        depth: int = 12,
        num_heads: int = 3,
        mlp_ratio: float = 4.0,
        qkv_bias: bool = True,
        agent_num: int = 49,
        agent_layers: int = -1,
        drop_rate: float = 0.0,
        **trunk: Any,
    ) -> None:
        num_agent_blocks = depth if agent_layers <= 0 else min(agent_layers, depth)

        def block(index: int, drop_path: float, grid_size: int) -> nn.Module:
            attn: nn.Module
            if index < num_agent_blocks:
                attn = DeiTAgentAttention(embed_dim, num_heads, grid_size, agent_num, qkv_bias, proj_drop=drop_rate)
            else:
                attn = Attention(embed_dim, num_heads, qkv_bias, proj_drop=drop_rate)
            return Block(embed_dim, attn, mlp_ratio, drop=drop_rate, drop_path=drop_path)

        super().__init__(block, embed_dim=embed_dim, depth=depth, drop_rate=drop_rate, **trunk)
        self.agent_layers = num_agent_blocks


register_variants(
    "agent",
    "deit",
    AgentDeiT,
    {
        "agent_deit_t": Variant(
            "agent_deit_tiny", 6.02, dict(patch_size=16, embed_dim=192, depth=12, num_heads=3, agent_num=49)
        ),
        "agent_deit_s": Variant(
            "agent_deit_small", 22.65, dict(patch_size=16, embed_dim=384, depth=12, num_heads=6, agent_num=49)
        ),
        "agent_deit_b": Variant(
            "agent_deit_base",
            87.20,
            dict(patch_size=16, embed_dim=768, depth=12, num_heads=12, agent_num=81, agent_layers=4),
        ),
    },
)


# --- Swin backbone ---


class SwinAgentAttention(_AgentAttentionCore):
    """Agent attention over one (usually whole-map) window; keys as the official `AgentAttention` (Swin)."""

    def __init__(
        self,
        dim: int,
        window_size: tuple[int, int],
        num_heads: int,
        qkv_bias: bool = True,
        proj_drop: float = 0.0,
        agent_num: int = 49,
    ):
        super().__init__()
        self.window_size = window_size
        self.qkv = nn.Linear(dim, dim * 3, bias=qkv_bias)
        self.proj = nn.Linear(dim, dim)
        self.proj_drop = nn.Dropout(proj_drop)
        self.dwc = nn.Conv2d(dim, dim, kernel_size=3, padding=1, groups=dim)
        self._init_agent(dim, num_heads, window_size, agent_num)

    def window_bias_note(self, name: str, old: int, new: int) -> str:
        return f"linearly resized {name} {old} -> {new}"

    def forward(self, x: Tensor, mask: Tensor | None = None) -> Tensor:
        # `mask` is accepted for the block interface and ignored, as in the official code.
        q, k, v = self.qkv(x).chunk(3, dim=-1)
        x = self.agent_attention(q, k, v) + map_to_tokens(self.dwc(tokens_to_map(v, *self.grid)))
        return self.proj_drop(self.proj(x))

    def extra_repr(self) -> str:
        return f"dim={self.dim}, window_size={self.window_size}, num_heads={self.num_heads}, agents={self.agent_num}"


class AgentSwinTransformer(SwinTransformer):
    """Agent-Swin (`agent_swin`): agent blocks `A`, softmax window blocks `B`, `M<k>` mixed stages.

    Softmax blocks use the official window rule max(7, window // 8) unless `softmax_window_size` is given.
    """

    def __init__(self, *, agent_num: tuple[int, ...] | str = (9, 16, 49, 49), attn_type: str = "AAAB", **kwargs: Any):
        agents = tuple(int(a) for a in (agent_num.split("-") if isinstance(agent_num, str) else agent_num))
        depths = kwargs.get("depths", (2, 2, 6, 2))
        if len(agents) != len(depths):
            raise ModelConfigError(f"agent_swin: {len(depths)} stages but {len(agents)} agent_num entries")

        def linear_attention(*, dim, window_size, num_heads, stage, qkv_bias, qk_scale, proj_drop):
            return SwinAgentAttention(dim, window_size, num_heads, qkv_bias, proj_drop, agent_num=agents[stage])

        super().__init__(
            attn_type=attn_type,
            linear_letter="A",
            softmax_letter="B",
            linear_attention=linear_attention,
            softmax_window_rule=lambda window: max(7, window // 8),
            arch="agent_swin",
            **kwargs,
        )


register_variants(
    "agent",
    "swin",
    AgentSwinTransformer,
    {
        "agent_swin_t": Variant(
            "agent_swin (agent_transformer/cfgs/agent_swin_t.yaml)",
            28.9,
            dict(embed_dim=96, depths=(2, 2, 6, 2), num_heads=(3, 6, 12, 24), attn_type="AAAB", drop_path_rate=0.2),
        ),
        "agent_swin_s": Variant(
            "agent_swin (agent_transformer/cfgs/agent_swin_s.yaml)",
            49.7,
            dict(embed_dim=96, depths=(2, 2, 18, 2), num_heads=(3, 6, 12, 24), attn_type="AABB", drop_path_rate=0.3),
        ),
        "agent_swin_b": Variant(
            "agent_swin (agent_transformer/cfgs/agent_swin_b.yaml)",
            88.1,
            dict(embed_dim=128, depths=(2, 2, 18, 2), num_heads=(4, 8, 16, 32), attn_type="AAMB2", drop_path_rate=0.5),
        ),
    },
)

# Trained demo: stage 1 pools a 16x16 map into 3x3 agents (non-divisible bins), stage 3 is shifted-window softmax.
register_model(
    ModelSpec(
        name="agent_digits",
        family="agent",
        backbone="swin",
        builder=partial(
            AgentSwinTransformer,
            patch_size=4,
            embed_dim=32,
            depths=(2, 2, 2),
            num_heads=(2, 4, 8),
            attn_type="AMB1",
            agent_num=(9, 4, 4),
            softmax_window_size=2,
            drop_path_rate=0.05,
        ),
        default_img_size=32,
        official_name="agent_swin (demo configuration)",
        num_classes=10,
        mean=(0.31, 0.31, 0.31),
        std=(0.35, 0.35, 0.35),
        crop_pct=1.0,
        demo_weights="agent_digits.safetensors",
        labels=DIGIT_LABELS,
    )
)


# --- PVT backbone ---


class AgentPvtAttention(_AgentAttentionCore):
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


def _build_agent_pvt(*, agent_num: tuple[int, ...] = _AGENT_NUMS, **kwargs: Any) -> PyramidVisionTransformer:
    drop = kwargs.get("drop_rate", 0.0)

    def attention(stage: int, dim: int, heads: int, grid: tuple[int, int]) -> nn.Module:
        return AgentPvtAttention(dim, heads, grid, int(agent_num[stage]), proj_drop=drop)

    return PyramidVisionTransformer(attention, **kwargs)


register_variants(
    "agent",
    "pvt",
    _build_agent_pvt,
    {
        "agent_pvt_t": Variant("agent_pvt_tiny", 11.57, dict(depths=(2, 2, 2, 2))),
        "agent_pvt_s": Variant("agent_pvt_small", 20.64, dict(depths=(3, 4, 6, 3))),
        "agent_pvt_m": Variant("agent_pvt_medium", 35.92, dict(depths=(3, 4, 18, 3))),
        "agent_pvt_l": Variant("agent_pvt_large", 48.74, dict(depths=(3, 8, 27, 3))),
    },
    pass_name=True,
)


# --- CSwin backbone ---


class AgentCSwinAttention(_AgentAttentionCore):
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


def _build_agent_cswin(*, agent_num: tuple[int, ...] = _AGENT_NUMS, **kwargs: Any) -> CSWinTransformer:
    # Only the linear stages (1-2) use agents; the official config lists four counts, the last two unused.
    def branch(stage: int, dim: int, heads: int, resolution: int) -> nn.Module:
        return AgentCSwinAttention(dim, heads, resolution, int(agent_num[stage]))

    return CSWinTransformer(branch, **kwargs)


register_variants(
    "agent",
    "cswin",
    _build_agent_cswin,
    {
        "agent_cswin_t": Variant(
            "Agent_CSWin_64_24181_tiny_224", 20.5, dict(embed_dim=64, depths=(2, 4, 18, 1), num_heads=(2, 4, 8, 16))
        ),
        "agent_cswin_s": Variant(
            "Agent_CSWin_64_36292_small_224", 32.8, dict(embed_dim=64, depths=(3, 6, 29, 2), num_heads=(2, 4, 8, 16))
        ),
        "agent_cswin_b": Variant(
            "Agent_CSWin_96_36292_base_224", 73.2, dict(embed_dim=96, depths=(3, 6, 29, 2), num_heads=(4, 8, 16, 32))
        ),
    },
    pass_name=True,
)
