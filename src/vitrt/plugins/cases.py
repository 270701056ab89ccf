"""Inputs of the vitrt ops for kernel tests and benchmarks, built from the YAML `test_configs`.

A config is a dict like ``{name, B, H, W, C, a?, prefix?, attrs?}``; `make_inputs` turns it into the positional
tensors and keyword attributes of the op's reference signature, with value ranges like the models' activations
(unit-variance q/k/v, small biases and taps, real RoPE angles).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from vitrt.ops.spec import OpSpec, op_spec

# Extra shapes every op is tested on besides its YAML configs: odd and tiny grids, batch 1 and 5.
_EXTRA_GRIDS = ((7, 7, 5), (14, 14, 1), (13, 17, 5))


def _channels_and_heads(spec: OpSpec) -> tuple[int, int]:
    if spec.name == "VitrtMllaLinearAttention":
        return 64, 2
    return 48, 3


def kernel_test_configs(op: str) -> list[dict[str, Any]]:
    """The op's YAML test configs plus the odd grids (7x7, 14x14, 13x17) at batch 1 and 5."""
    spec = op_spec(op)
    configs = [dict(c) for c in spec.test_configs]
    names = {c["name"] for c in configs}
    channels, heads = _channels_and_heads(spec)
    for height, width, batch in _EXTRA_GRIDS:
        name = f"extra_{height}x{width}_b{batch}"
        if name in names:
            continue
        config: dict[str, Any] = {"name": name, "B": batch, "H": height, "W": width, "C": channels}
        if spec.name != "VitrtCirculantAttention":
            config["attrs"] = {"num_heads": heads}
        if spec.name == "VitrtAgentAttention":
            config["a"] = 9
        if spec.name in ("VitrtAgentAttention", "VitrtInLineAttention") and batch == 5:
            config["prefix"] = 1  # a cls token in front of the grid
        configs.append(config)
    return configs


def rope_table(height: int, width: int, channels: int) -> Tensor:
    """MLLA's 2-D RoPE buffer as (N, C/2, 2) = [cos, sin]: half the pairs rotate with the row, half with the column."""
    k_max = channels // 4
    theta = 1.0 / (10000 ** (torch.arange(k_max, dtype=torch.float32) / k_max))
    rows, cols = torch.meshgrid(torch.arange(height), torch.arange(width), indexing="ij")
    angles = torch.cat([rows.unsqueeze(-1) * theta, cols.unsqueeze(-1) * theta], dim=-1)
    if angles.shape[-1] < channels // 2:  # channels not a multiple of 4: pad with unrotated pairs
        angles = torch.cat([angles, torch.zeros(height, width, channels // 2 - angles.shape[-1])], dim=-1)
    return torch.stack([angles.cos(), angles.sin()], dim=-1).reshape(height * width, channels // 2, 2)


def make_inputs(
    op: str,
    config: dict[str, Any],
    *,
    dtype: torch.dtype = torch.float32,
    device: str | torch.device = "cpu",
    seed: int = 0,
) -> tuple[list[Tensor], dict[str, Any]]:
    """Positional tensors and keyword attributes for the op's reference signature."""
    spec = op_spec(op)
    gen = torch.Generator().manual_seed(seed)
    b, height, width, c = config["B"], config["H"], config["W"], config["C"]
    prefix = int(config.get("prefix", 0))
    attrs: dict[str, Any] = dict(config.get("attrs", {}))

    def randn(*shape: int, std: float = 1.0) -> Tensor:
        return (torch.randn(*shape, generator=gen) * std).to(device=device, dtype=dtype)

    if spec.name == "VitrtCirculantAttention":
        n = height * width
        attrs.update(height=height, width=width)
        return [randn(b, n, c), randn(b, n, c), randn(b, n, c)], attrs
    heads = attrs["num_heads"]
    if spec.name == "VitrtFocusedLinearAttention":
        n = height * width
        return [randn(b, n, c), randn(b, n, c), randn(b, n, c), randn(1, n, c, std=0.1), randn(1, 1, c, std=0.5)], attrs
    if spec.name == "VitrtMllaLinearAttention":
        n = height * width
        rope = rope_table(height, width, c).to(device=device, dtype=dtype)
        return [randn(b, n, c), randn(b, n, c), randn(b, n, c), rope], attrs
    scale = (c // heads) ** -0.5
    n = prefix + height * width
    if spec.name == "VitrtInLineAttention":
        attrs.update(height=height, width=width, num_prefix_tokens=prefix, scale=scale)
        return [randn(b, n, c), randn(b, n, c), randn(b, n, c), randn(b, c, 9, std=0.2)], attrs
    if spec.name == "VitrtAgentAttention":
        a = config["a"]
        attrs.update(scale=scale)
        tensors = [randn(b, n, c), randn(b, n, c), randn(b, n, c), randn(b, a, c)]
        tensors += [randn(heads, a, n, std=0.1), randn(heads, n, a, std=0.1)]
        return tensors, attrs
    raise KeyError(f"no input recipe for {op}")
