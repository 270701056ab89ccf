"""The "cuda" implementation of the vitrt ops: PyTorch tensors through the fused CUDA kernels.

Importing this module registers one implementation per op, so

    with vitrt.ops.use_implementation("cuda"):
        logits = model(images)

runs every attention core of a model on the kernel library (inference only: outputs carry no autograd graph, so
calls with gradients enabled on inputs that require them are refused). Inputs are made contiguous and the auxiliary
tensors (biases, RoPE table, ...) are cast to the dtype of q, since every kernel reads one dtype.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

from vitrt import ops
from vitrt.errors import PluginError
from vitrt.ops import reference
from vitrt.ops.spec import op_spec
from vitrt.plugins.kernels import DTYPES, KernelLibrary, load_kernel_library

_TORCH_DTYPES = {torch.float32: "float32", torch.float16: "float16", torch.bfloat16: "bfloat16"}


class KernelRunner:
    """Calls the kernel library on torch tensors with the reference signatures of `vitrt.ops.reference`.

    `emulated=True` runs a host-emulation build of the library on CPU tensors (the CPU test suite); otherwise the
    tensors must live on a CUDA device and the kernels run on its current stream.
    """

    def __init__(self, library: KernelLibrary, *, emulated: bool = False):
        self.library = library
        self.emulated = emulated

    # -- plumbing ------------------------------------------------------------------------------------------------
    def _prepare(self, op: str, q: Tensor, tensors: dict[str, Tensor]) -> tuple[int, dict[str, Tensor]]:
        if q.dim() != 3:
            raise PluginError(f"{op}: q must be (batch, tokens, channels), got shape {tuple(q.shape)}")
        if q.dtype not in _TORCH_DTYPES:
            raise PluginError(f"{op}: dtype {q.dtype} is not supported (float32, float16, bfloat16)")
        if self.emulated:
            if q.device.type != "cpu":
                raise PluginError(f"{op}: the emulated kernel library runs on CPU tensors")
        elif q.device.type != "cuda":
            raise PluginError(f"{op}: the cuda implementation needs CUDA tensors, got {q.device}")
        if torch.is_grad_enabled() and any(t.requires_grad for t in tensors.values()):
            raise PluginError(
                f"{op}: the CUDA kernels are inference-only; run under torch.no_grad() or torch.inference_mode()"
            )
        prepared = {}
        for name, tensor in tensors.items():
            if tensor.device != q.device:
                raise PluginError(f"{op}: {name} is on {tensor.device}, q on {q.device}")
            prepared[name] = tensor.detach().to(dtype=q.dtype).contiguous()
        return DTYPES[_TORCH_DTYPES[q.dtype]], prepared

    def _expect(self, op: str, name: str, tensor: Tensor, shape: tuple[int, ...]) -> None:
        if tuple(tensor.shape) != shape:
            raise PluginError(f"{op}: {name} must have shape {shape}, got {tuple(tensor.shape)}")

    def _workspace(self, q: Tensor, size: int) -> Tensor:
        return torch.empty(max(size, 1), dtype=torch.uint8, device=q.device)

    def _stream(self, q: Tensor) -> int | None:
        return None if self.emulated else torch.cuda.current_stream(q.device).cuda_stream

    def _run(self, q: Tensor, fn: Callable[[], None]) -> None:
        if self.emulated:
            fn()
        else:
            with torch.cuda.device(q.device):
                fn()

    @staticmethod
    def _attrs(op: str, **values: Any) -> dict[str, Any]:
        try:
            return op_spec(op).resolve_attributes(values)
        except ValueError as err:
            raise PluginError(str(err)) from None

    # -- ops -----------------------------------------------------------------------------------------------------
    def circulant_attention(
        self, q: Tensor, k: Tensor, v: Tensor, *, height: int, width: int, strategy: int = 0
    ) -> Tensor:
        op = "VitrtCirculantAttention"
        attrs = self._attrs(op, height=height, width=width, strategy=strategy)
        dtype, t = self._prepare(op, q, {"q": q, "k": k, "v": v})
        b, n, c = q.shape
        if n != attrs["height"] * attrs["width"]:
            raise PluginError(f"{op}: {n} tokens do not form a {height}x{width} grid")
        for name in ("k", "v"):
            self._expect(op, name, t[name], (b, n, c))
        out = torch.empty_like(t["q"])

        def call() -> None:
            size = self.library.circulant_workspace(b, height, width, c, dtype, attrs["strategy"])
            ws = self._workspace(q, size)
            self.library.circulant(
                t["q"].data_ptr(), t["k"].data_ptr(), t["v"].data_ptr(), out.data_ptr(),
                b, height, width, c, dtype, attrs["strategy"], ws.data_ptr(), size, self._stream(q),
            )  # fmt: skip

        self._run(q, call)
        return out

    def focused_linear_attention(
        self,
        q: Tensor,
        k: Tensor,
        v: Tensor,
        positional_encoding: Tensor,
        scale: Tensor,
        *,
        num_heads: int,
        focusing_factor: float = 3.0,
    ) -> Tensor:
        op = "VitrtFocusedLinearAttention"
        attrs = self._attrs(op, num_heads=num_heads, focusing_factor=focusing_factor)
        dtype, t = self._prepare(op, q, {"q": q, "k": k, "v": v, "pos": positional_encoding, "scale": scale})
        b, n, c = q.shape
        for name in ("k", "v"):
            self._expect(op, name, t[name], (b, n, c))
        self._expect(op, "positional_encoding", t["pos"], (1, n, c))
        self._expect(op, "scale", t["scale"], (1, 1, c))
        out = torch.empty_like(t["q"])

        def call() -> None:
            size = self.library.focused_workspace(b, n, c, num_heads, dtype)
            ws = self._workspace(q, size)
            self.library.focused(
                t["q"].data_ptr(), t["k"].data_ptr(), t["v"].data_ptr(), t["pos"].data_ptr(), t["scale"].data_ptr(),
                out.data_ptr(), b, n, c, num_heads, attrs["focusing_factor"], dtype, ws.data_ptr(), size,
                self._stream(q),
            )  # fmt: skip

        self._run(q, call)
        return out

    def mlla_linear_attention(self, q: Tensor, k: Tensor, v: Tensor, rope: Tensor, *, num_heads: int) -> Tensor:
        op = "VitrtMllaLinearAttention"
        self._attrs(op, num_heads=num_heads)
        dtype, t = self._prepare(op, q, {"q": q, "k": k, "v": v, "rope": rope})
        b, n, c = q.shape
        for name in ("k", "v"):
            self._expect(op, name, t[name], (b, n, c))
        self._expect(op, "rope", t["rope"], (n, c // 2, 2))
        out = torch.empty_like(t["q"])

        def call() -> None:
            size = self.library.mlla_workspace(b, n, c, num_heads, dtype)
            ws = self._workspace(q, size)
            self.library.mlla(
                t["q"].data_ptr(), t["k"].data_ptr(), t["v"].data_ptr(), t["rope"].data_ptr(), out.data_ptr(),
                b, n, c, num_heads, dtype, ws.data_ptr(), size, self._stream(q),
            )  # fmt: skip

        self._run(q, call)
        return out

    def inline_attention(
        self,
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
        op = "VitrtInLineAttention"
        attrs = self._attrs(
            op, num_heads=num_heads, height=height, width=width, num_prefix_tokens=num_prefix_tokens, scale=scale
        )
        dtype, t = self._prepare(op, q, {"q": q, "k": k, "v": v, "taps": local_kernel})
        b, n, c = q.shape
        if n != num_prefix_tokens + height * width:
            raise PluginError(f"{op}: {n} tokens != {num_prefix_tokens} prefix tokens + {height}x{width} patches")
        for name in ("k", "v"):
            self._expect(op, name, t[name], (b, n, c))
        self._expect(op, "local_kernel", t["taps"], (b, c, 9))
        out = torch.empty_like(t["q"])

        def call() -> None:
            size = self.library.inline_workspace(b, n, c, num_heads, height, width, num_prefix_tokens, dtype)
            ws = self._workspace(q, size)
            self.library.inline(
                t["q"].data_ptr(), t["k"].data_ptr(), t["v"].data_ptr(), t["taps"].data_ptr(), out.data_ptr(),
                b, n, c, num_heads, height, width, num_prefix_tokens, attrs["scale"], dtype, ws.data_ptr(), size,
                self._stream(q),
            )  # fmt: skip

        self._run(q, call)
        return out

    def agent_attention(
        self,
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
        op = "VitrtAgentAttention"
        attrs = self._attrs(op, num_heads=num_heads, scale=scale)
        dtype, t = self._prepare(
            op, q, {"q": q, "k": k, "v": v, "agents": agents, "agent_bias": agent_bias, "query_bias": query_bias}
        )
        b, n, c = q.shape
        if t["agents"].dim() != 3:
            raise PluginError(f"{op}: agents must be (batch, agents, channels), got {tuple(t['agents'].shape)}")
        a = t["agents"].shape[1]
        for name in ("k", "v"):
            self._expect(op, name, t[name], (b, n, c))
        self._expect(op, "agents", t["agents"], (b, a, c))
        self._expect(op, "agent_bias", t["agent_bias"], (num_heads, a, n))
        self._expect(op, "query_bias", t["query_bias"], (num_heads, n, a))
        out = torch.empty_like(t["q"])

        def call() -> None:
            size = self.library.agent_workspace(b, n, c, a, num_heads, dtype)
            ws = self._workspace(q, size)
            self.library.agent(
                t["q"].data_ptr(), t["k"].data_ptr(), t["v"].data_ptr(), t["agents"].data_ptr(),
                t["agent_bias"].data_ptr(), t["query_bias"].data_ptr(), out.data_ptr(), b, n, c, a, num_heads,
                attrs["scale"], dtype, ws.data_ptr(), size, self._stream(q),
            )  # fmt: skip

        self._run(q, call)
        return out

    def implementations(self) -> dict[str, Callable[..., Tensor]]:
        """ONNX op_type -> callable with the reference signature (each method is named like its reference)."""
        return {op_type: getattr(self, fn.__name__) for op_type, fn in reference.REFERENCE.items()}


_DEFAULT: KernelRunner | None = None


def default_runner() -> KernelRunner:
    """Runner over the located kernel library (loaded on first use, so registering costs nothing)."""
    global _DEFAULT
    if _DEFAULT is None:
        _DEFAULT = KernelRunner(load_kernel_library())
    return _DEFAULT


def _dispatch(op_type: str, method: str) -> Callable[..., Tensor]:
    def call(*args: Any, **kwargs: Any) -> Tensor:
        return getattr(default_runner(), method)(*args, **kwargs)

    call.__name__ = f"cuda_{op_type}"
    return call


for _op_type, _reference in reference.REFERENCE.items():
    ops.register_implementation("cuda", _op_type, _dispatch(_op_type, _reference.__name__))
