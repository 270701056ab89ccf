"""ctypes bindings of the CUDA kernel library (`libvitrt_kernels.so`, C ABI in `plugins/*/*_kernel.h`).

Launchers take raw device pointers; `vitrt.plugins.torch_ops` turns torch tensors into those calls. No CUDA or
torch import happens here, so the bindings also load the host-emulation build the CPU tests use.
"""

from __future__ import annotations

import ctypes
import threading
from ctypes import c_char_p, c_float, c_int32, c_int64, c_size_t, c_void_p
from pathlib import Path

from vitrt.errors import PluginError

DTYPES = {"float32": 0, "float16": 1, "bfloat16": 2}
STRATEGIES = {"auto": 0, "cufft": 1, "direct": 2}

_P = c_void_p
_I = c_int64
_SIZE_P = ctypes.POINTER(c_size_t)

# name -> (argtypes, restype); every launcher and query returns an int32 status.
_SIGNATURES: dict[str, tuple[list, object]] = {
    "vitrt_kernels_version": ([], c_int32),
    "vitrt_cuda_compiled_version": ([], c_int32),
    "vitrt_cuda_runtime_version": ([], c_int32),
    "vitrt_cufft_version": ([], c_int32),
    "vitrt_status_string": ([c_int32], c_char_p),
    "vitrt_last_error": ([], c_char_p),
    "vitrt_release_cached_resources": ([], None),
    "vitrt_circulant_attention_auto_strategy": ([_I, _I, _I, _I], c_int32),
    "vitrt_circulant_attention_direct_shared_bytes": ([_I, _I], c_size_t),
    "vitrt_circulant_attention_select_strategy": ([_I, _I, _I, _I, c_int32, ctypes.POINTER(c_int32)], c_int32),
    "vitrt_circulant_attention_workspace_size": ([_I, _I, _I, _I, c_int32, c_int32, _SIZE_P], c_int32),
    "vitrt_circulant_attention": ([_P, _P, _P, _P, _I, _I, _I, _I, c_int32, c_int32, _P, c_size_t, _P], c_int32),
    "vitrt_focused_linear_attention_workspace_size": ([_I, _I, _I, _I, c_int32, _SIZE_P], c_int32),
    "vitrt_focused_linear_attention": (
        [_P, _P, _P, _P, _P, _P, _I, _I, _I, _I, c_float, c_int32, _P, c_size_t, _P],
        c_int32,
    ),
    "vitrt_mlla_linear_attention_workspace_size": ([_I, _I, _I, _I, c_int32, _SIZE_P], c_int32),
    "vitrt_mlla_linear_attention": ([_P, _P, _P, _P, _P, _I, _I, _I, _I, c_int32, _P, c_size_t, _P], c_int32),
    "vitrt_inline_attention_workspace_size": ([_I, _I, _I, _I, _I, _I, _I, c_int32, _SIZE_P], c_int32),
    "vitrt_inline_attention": (
        [_P, _P, _P, _P, _P, _I, _I, _I, _I, _I, _I, _I, c_float, c_int32, _P, c_size_t, _P],
        c_int32,
    ),
    "vitrt_agent_attention_workspace_size": ([_I, _I, _I, _I, _I, c_int32, _SIZE_P], c_int32),
    "vitrt_agent_attention": (
        [_P, _P, _P, _P, _P, _P, _P, _I, _I, _I, _I, _I, c_float, c_int32, _P, c_size_t, _P],
        c_int32,
    ),
}


class KernelError(PluginError):
    """A kernel launcher rejected its arguments or failed on the device."""


def format_version(version: int) -> str:
    """CUDA-style integer version (13000 -> "13.0", 12000 -> "12.0" for cuFFT 12.0.0)."""
    if version <= 0:
        return "unavailable"
    return f"{version // 1000}.{version % 1000 // 10}"


class KernelLibrary:
    """The loaded kernel library; methods return sizes/strategies or raise `KernelError` with the library's reason."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        try:
            self._lib = ctypes.CDLL(str(self.path))
        except OSError as err:
            raise PluginError(f"cannot load the kernel library {self.path}: {err}") from None
        for name, (argtypes, restype) in _SIGNATURES.items():
            try:
                fn = getattr(self._lib, name)
            except AttributeError:
                raise PluginError(
                    f"{self.path} lacks {name}; it was built from other sources (rebuild: vitrt plugins build)"
                ) from None
            fn.argtypes = argtypes
            fn.restype = restype

    # -- library facts --------------------------------------------------------------------------------------------
    @property
    def version(self) -> str:
        v = self._lib.vitrt_kernels_version()
        return f"{v // 10000}.{v // 100 % 100}.{v % 100}"

    @property
    def cuda_compiled_version(self) -> str:
        return format_version(self._lib.vitrt_cuda_compiled_version())

    @property
    def cuda_runtime_version(self) -> str:
        return format_version(self._lib.vitrt_cuda_runtime_version())

    @property
    def cufft_version(self) -> str:
        v = self._lib.vitrt_cufft_version()
        return "unavailable" if v <= 0 else f"{v // 1000}.{v % 1000 // 100}.{v % 100}"

    def status_string(self, status: int) -> str:
        return self._lib.vitrt_status_string(status).decode()

    def release_cached_resources(self) -> None:
        self._lib.vitrt_release_cached_resources()

    def _check(self, status: int, what: str) -> None:
        if status != 0:
            reason = self._lib.vitrt_last_error().decode() or self.status_string(status)
            raise KernelError(f"{what}: {reason} [{self.status_string(status)}]")

    # -- circulant attention ----------------------------------------------------------------------------------------
    def circulant_auto_strategy(self, batch: int, height: int, width: int, channels: int) -> int:
        return self._lib.vitrt_circulant_attention_auto_strategy(batch, height, width, channels)

    def circulant_direct_shared_bytes(self, height: int, width: int) -> int:
        return self._lib.vitrt_circulant_attention_direct_shared_bytes(height, width)

    def circulant_select_strategy(self, batch: int, height: int, width: int, channels: int, requested: int) -> int:
        selected = c_int32(0)
        status = self._lib.vitrt_circulant_attention_select_strategy(
            batch, height, width, channels, requested, ctypes.byref(selected)
        )
        self._check(status, "VitrtCirculantAttention")
        return selected.value

    def circulant_workspace(self, batch, height, width, channels, dtype: int, strategy: int) -> int:
        return self._workspace_size(
            "vitrt_circulant_attention_workspace_size", "VitrtCirculantAttention",
            batch, height, width, channels, dtype, strategy,
        )  # fmt: skip

    def circulant(self, q, k, v, out, batch, height, width, channels, dtype, strategy, workspace, ws_bytes, stream):
        status = self._lib.vitrt_circulant_attention(
            q, k, v, out, batch, height, width, channels, dtype, strategy, workspace, ws_bytes, stream
        )
        self._check(status, "VitrtCirculantAttention")

    # -- linear attentions -----------------------------------------------------------------------------------------
    def focused_workspace(self, batch, tokens, channels, heads, dtype) -> int:
        return self._workspace_size(
            "vitrt_focused_linear_attention_workspace_size", "VitrtFocusedLinearAttention",
            batch, tokens, channels, heads, dtype,
        )  # fmt: skip

    def focused(self, q, k, v, pos, scale, out, batch, tokens, channels, heads, focusing, dtype, ws, ws_bytes, stream):
        status = self._lib.vitrt_focused_linear_attention(
            q, k, v, pos, scale, out, batch, tokens, channels, heads, focusing, dtype, ws, ws_bytes, stream
        )
        self._check(status, "VitrtFocusedLinearAttention")

    def mlla_workspace(self, batch, tokens, channels, heads, dtype) -> int:
        return self._workspace_size(
            "vitrt_mlla_linear_attention_workspace_size", "VitrtMllaLinearAttention",
            batch, tokens, channels, heads, dtype,
        )  # fmt: skip

    def mlla(self, q, k, v, rope, out, batch, tokens, channels, heads, dtype, ws, ws_bytes, stream):
        status = self._lib.vitrt_mlla_linear_attention(
            q, k, v, rope, out, batch, tokens, channels, heads, dtype, ws, ws_bytes, stream
        )
        self._check(status, "VitrtMllaLinearAttention")

    def inline_workspace(self, batch, tokens, channels, heads, height, width, prefix, dtype) -> int:
        return self._workspace_size(
            "vitrt_inline_attention_workspace_size", "VitrtInLineAttention",
            batch, tokens, channels, heads, height, width, prefix, dtype,
        )  # fmt: skip

    def inline(self, q, k, v, taps, out, batch, tokens, channels, heads, height, width, prefix, scale, dtype, ws,
               ws_bytes, stream):  # fmt: skip
        status = self._lib.vitrt_inline_attention(
            q, k, v, taps, out, batch, tokens, channels, heads, height, width, prefix, scale, dtype, ws, ws_bytes,
            stream,
        )  # fmt: skip
        self._check(status, "VitrtInLineAttention")

    def agent_workspace(self, batch, tokens, channels, agents, heads, dtype) -> int:
        return self._workspace_size(
            "vitrt_agent_attention_workspace_size", "VitrtAgentAttention",
            batch, tokens, channels, agents, heads, dtype,
        )  # fmt: skip

    def agent(self, q, k, v, agents, agent_bias, query_bias, out, batch, tokens, channels, n_agents, heads, scale,
              dtype, ws, ws_bytes, stream):  # fmt: skip
        status = self._lib.vitrt_agent_attention(
            q, k, v, agents, agent_bias, query_bias, out, batch, tokens, channels, n_agents, heads, scale, dtype, ws,
            ws_bytes, stream,
        )  # fmt: skip
        self._check(status, "VitrtAgentAttention")

    def _workspace_size(self, query: str, op: str, *shape: int) -> int:
        """Calls a `*_workspace_size` query (its shape arguments, then the out-pointer) and returns the bytes."""
        size = c_size_t(0)
        self._check(getattr(self._lib, query)(*shape, ctypes.byref(size)), op)
        return size.value


_LOCK = threading.Lock()
_LOADED: dict[Path, KernelLibrary] = {}


def load_kernel_library(path: str | Path | None = None) -> KernelLibrary:
    """The kernel library at `path` (default: the located build, see `vitrt.plugins.paths`), loaded once."""
    from vitrt.plugins.paths import find_kernel_library

    resolved = Path(path).resolve() if path is not None else find_kernel_library()
    with _LOCK:
        if resolved not in _LOADED:
            _LOADED[resolved] = KernelLibrary(resolved)
        return _LOADED[resolved]
