"""InLine (NeurIPS'24): injective linear attention with a per-sample local residual.

Each backbone section re-implements the official module tree so official checkpoints load strictly. The attention
core, including the per-sample 3x3 local residual on v, is `vitrt.ops.inline_attention` (one ONNX node on export);
the projections and the residual MLP that predicts the 3x3 taps are ordinary modules around it. The op's local
residual is batch-dynamic, unlike the official grouped conv with groups = B*C.
"""

from __future__ import annotations

from typing import Any

from torch import Tensor, nn

from vitrt import ops
from vitrt.models.backbones.swin import SwinTransformer
from vitrt.models.registry import ModelSpec, register_model

# --- Swin backbone ---


class SwinInLineAttention(nn.Module):
    """InLine attention over one (usually whole-map) window; keys as the official Swin `InLineAttention`:
    `qkv`, `proj`, `residual.{0,2}` (grouped 1x1 convs predicting 9 taps per channel from the token mean).

    The official class also offers relu/leakyrelu/exp kernels; every released model uses the identity kernel,
    which is the only one implemented here.
    """

    def __init__(
        self, dim: int, window_size: tuple[int, int], num_heads: int, qkv_bias: bool = True, proj_drop: float = 0.0
    ):
        super().__init__()
        self.dim = dim
        self.window_size = window_size
        self.num_heads = num_heads
        self.scale = (dim // num_heads) ** -0.5
        self.qkv = nn.Linear(dim, dim * 3, bias=qkv_bias)
        self.proj = nn.Linear(dim, dim)
        self.proj_drop = nn.Dropout(proj_drop)
        self.residual = nn.Sequential(
            nn.Conv1d(dim, dim, kernel_size=1, groups=num_heads),
            nn.GELU(),
            nn.Conv1d(dim, dim * 9, kernel_size=1, groups=num_heads),
        )

    def forward(self, x: Tensor, mask: Tensor | None = None) -> Tensor:
        # `mask` is accepted for the block interface and ignored, as in the official code.
        height, width = self.window_size
        q, k, v = self.qkv(x).chunk(3, dim=-1)
        local_kernel = self.residual(x.mean(dim=1).unsqueeze(-1)).reshape(-1, self.dim, 9)
        x = ops.inline_attention(
            q, k, v, local_kernel, num_heads=self.num_heads, height=height, width=width, scale=self.scale
        )
        return self.proj_drop(self.proj(x))

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


_INLINE_SWIN_VARIANTS = {
    "inline_swin_t": dict(
        embed_dim=96, depths=(2, 2, 6, 2), num_heads=(3, 6, 12, 24), attn_type="IIIS", drop_path_rate=0.2
    ),
    "inline_swin_s": dict(
        embed_dim=96, depths=(2, 2, 18, 2), num_heads=(3, 6, 12, 24), attn_type="IISS", drop_path_rate=0.3
    ),
    "inline_swin_b": dict(
        embed_dim=128, depths=(2, 2, 18, 2), num_heads=(4, 8, 16, 32), attn_type="IIMS2", drop_path_rate=0.5
    ),
}
_INLINE_SWIN_PARAMS_M = {"inline_swin_t": 29.2, "inline_swin_s": 49.8, "inline_swin_b": 88.4}


def _inline_swin_builder(variant: dict[str, Any]):
    def build(img_size: int = 224, num_classes: int = 1000, **kwargs: Any) -> InLineSwinTransformer:
        return InLineSwinTransformer(img_size=img_size, num_classes=num_classes, **{**variant, **kwargs})

    return build


for _name, _variant in _INLINE_SWIN_VARIANTS.items():
    register_model(
        ModelSpec(
            name=_name,
            family="inline",
            backbone="swin",
            builder=_inline_swin_builder(_variant),
            default_img_size=224,
            official_name=f"inline_swin (cfgs/{_name}.yaml)",
            expected_params_m=_INLINE_SWIN_PARAMS_M[_name],
        )
    )
