"""The vitrt attention ops: one contract, several implementations.

Model code calls the functions below. By default they run the plain-PyTorch reference (`reference.py`); inside
`use_implementation("custom_op")` they route through the `torch.library` custom ops that the ONNX exporter turns
into single `vitrt` nodes, and inside `use_implementation("cuda")` through the CUDA kernel library. Implementations
other than the reference register themselves with `register_implementation` when their provider module loads.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any

from vitrt.ops.spec import OpSpec, load_op_specs, op_spec

if TYPE_CHECKING:
    from torch import Tensor

__all__ = [
    "OpSpec",
    "active_implementation",
    "agent_attention",
    "circulant_attention",
    "focused_linear_attention",
    "inline_attention",
    "load_op_specs",
    "mlla_linear_attention",
    "op_spec",
    "register_implementation",
    "use_implementation",
]

# Modules that register a named implementation when imported.
_PROVIDERS = {
    "custom_op": "vitrt.export.custom_ops",
    "decomposed": "vitrt.export.decomposed",
    "cuda": "vitrt.plugins.torch_ops",
}
_IMPLEMENTATIONS: dict[tuple[str, str], Callable[..., Tensor]] = {}
_ACTIVE: ContextVar[str] = ContextVar("vitrt_ops_implementation", default="reference")


def register_implementation(implementation: str, op_name: str, fn: Callable[..., Tensor]) -> None:
    """Register `fn` as `implementation` of the op `op_name` (ONNX op_type); same signature as the reference."""
    from vitrt.ops.reference import REFERENCE

    if op_name not in REFERENCE:
        raise KeyError(f"unknown vitrt op {op_name!r}")
    _IMPLEMENTATIONS[(implementation, op_name)] = fn


@contextmanager
def use_implementation(implementation: str) -> Iterator[None]:
    """Route every vitrt op called in this context through `implementation`.

    "reference" (default), "custom_op" (torch.library ops that export as single vitrt nodes), "decomposed" (plain
    standard-op PyTorch for exports without custom ops) or "cuda" (the kernel library).
    """
    if implementation != "reference" and implementation in _PROVIDERS:
        importlib.import_module(_PROVIDERS[implementation])
    token = _ACTIVE.set(implementation)
    try:
        yield
    finally:
        _ACTIVE.reset(token)


def active_implementation() -> str:
    return _ACTIVE.get()


def _call(op_name: str, *args: Tensor, **attrs: Any) -> Tensor:
    implementation = _ACTIVE.get()
    if implementation == "reference":
        # Imported here so that `vitrt.ops.spec` (read by torch-free tools) does not pull in torch.
        from vitrt.ops.reference import REFERENCE

        return REFERENCE[op_name](*args, **attrs)
    try:
        fn = _IMPLEMENTATIONS[(implementation, op_name)]
    except KeyError:
        raise RuntimeError(f"no {implementation!r} implementation registered for {op_name}") from None
    return fn(*args, **attrs)


def focused_linear_attention(
    q: Tensor,
    k: Tensor,
    v: Tensor,
    positional_encoding: Tensor,
    scale: Tensor,
    *,
    num_heads: int,
    focusing_factor: float = 3.0,
) -> Tensor:
    """FLatten core; see plugins/focused_linear_attention/focused_linear_attention.yaml."""
    return _call(
        "VitrtFocusedLinearAttention",
        q,
        k,
        v,
        positional_encoding,
        scale,
        num_heads=num_heads,
        focusing_factor=float(focusing_factor),
    )


def agent_attention(
    q: Tensor,
    k: Tensor,
    v: Tensor,
    agents: Tensor,
    agent_bias: Tensor,
    query_bias: Tensor,
    *,
    num_heads: int,
    scale: float,
) -> Tensor:
    """Agent attention core; see plugins/agent_attention/agent_attention.yaml."""
    return _call(
        "VitrtAgentAttention",
        q,
        k,
        v,
        agents,
        agent_bias,
        query_bias,
        num_heads=num_heads,
        scale=float(scale),
    )


def inline_attention(
    q: Tensor,
    k: Tensor,
    v: Tensor,
    local_kernel: Tensor,
    *,
    num_heads: int,
    height: int,
    width: int,
    num_prefix_tokens: int = 0,
    scale: float,
) -> Tensor:
    """InLine core with its per-sample local residual; see plugins/inline_attention/inline_attention.yaml."""
    return _call(
        "VitrtInLineAttention",
        q,
        k,
        v,
        local_kernel,
        num_heads=num_heads,
        height=height,
        width=width,
        num_prefix_tokens=num_prefix_tokens,
        scale=float(scale),
    )


def mlla_linear_attention(q: Tensor, k: Tensor, v: Tensor, rope: Tensor, *, num_heads: int) -> Tensor:
    """MLLA core with RoPE; see plugins/mlla_linear_attention/mlla_linear_attention.yaml."""
    return _call("VitrtMllaLinearAttention", q, k, v, rope, num_heads=num_heads)


def circulant_attention(q: Tensor, k: Tensor, v: Tensor, *, height: int, width: int, strategy: int = 0) -> Tensor:
    """Circulant attention core; see plugins/circulant_attention/circulant_attention.yaml."""
    return _call("VitrtCirculantAttention", q, k, v, height=height, width=width, strategy=strategy)
