"""The "decomposed" implementation of the vitrt ops: plain PyTorch that every exporter lowers to standard ops.

`--no-custom-ops` exports trace the model under `use_implementation("decomposed")`. Four ops are already written in
standard tensor ops and use their reference directly; circulant attention replaces the reference's
`torch.fft.rfft2/irfft2` (which the TorchScript exporter cannot export and the dynamo exporter lowers to `DFT`,
which TensorRT's parser rejects) by the same ortho-normalised DFT-as-MatMul formulation as its ONNX function body,
with the DFT matrices computed once per grid size in float64.
"""

from __future__ import annotations

from functools import cache

import numpy as np
import torch
from torch import Tensor

from vitrt.ops import reference, register_implementation


def _dft_matrices(height: int, width: int) -> tuple[Tensor, Tensor, Tensor]:
    """(forward_w (2, 1, 2U, W), inverse_w (2, 1, W, 2U), height_mix (H, 2H)), ortho-normalised, float32.

    Built per call from cached arrays with `torch.tensor`, so tracers (TorchScript, torch.export's fake tensors)
    see ordinary constants.
    """
    return tuple(torch.tensor(m) for m in _dft_arrays(height, width))  # type: ignore[return-value]


@cache
def _dft_arrays(height: int, width: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    half = width // 2 + 1
    u, w = np.arange(half)[:, None], np.arange(width)[None, :]
    w_angles = 2 * np.pi * ((u * w) % width) / width
    cos_w, sin_w = np.cos(w_angles), np.sin(w_angles)
    forward = np.stack([np.concatenate([cos_w, -sin_w]), np.concatenate([-sin_w, -cos_w])])
    weights = np.full((half, 1), 2.0)
    weights[0] = 1.0
    if width % 2 == 0:
        weights[-1] = 1.0
    c_cos, c_sin = cos_w * weights, sin_w * weights
    inverse = np.stack([np.concatenate([c_cos, -c_sin]).T, np.concatenate([-c_sin, -c_cos]).T])
    h = np.arange(height)
    h_angles = 2 * np.pi * ((h[:, None] * h[None, :]) % height) / height
    height_mix = np.concatenate([np.cos(h_angles), np.sin(h_angles)], axis=1)
    norm = (height * width) ** -0.5
    return (
        (forward[:, None] * norm).astype(np.float32),
        (inverse[:, None] * norm).astype(np.float32),
        height_mix.astype(np.float32),
    )


def _forward_2d(x: Tensor, forward_w: Tensor, height_mix: Tensor, height: int, width: int) -> Tensor:
    """(B, N, C) -> ortho spectrum (B, H, 2U, C), real parts first along axis 2."""
    b, _, c = x.shape
    stacked = forward_w @ x.reshape(b, 1, height, width, c)  # (B, 2, H, 2U, C)
    return (height_mix @ stacked.reshape(b, 2 * height, -1)).reshape(b, height, -1, c)


def _inverse_2d(spectrum: Tensor, inverse_w: Tensor, height_mix: Tensor, height: int) -> Tensor:
    """Ortho spectrum (B, H, 2U, C) -> (B, N, C)."""
    b, c = spectrum.shape[0], spectrum.shape[-1]
    stacked = inverse_w @ spectrum.unsqueeze(1)  # (B, 2, H, W, C)
    return (height_mix @ stacked.reshape(b, 2 * height, -1)).reshape(b, -1, c)


def _conj_product(x: Tensor, y: Tensor) -> Tensor:
    x_re, x_im = x.chunk(2, dim=2)
    y_re, y_im = y.chunk(2, dim=2)
    return torch.cat([x_re * y_re + x_im * y_im, x_re * y_im - x_im * y_re], dim=2)


def circulant_attention(q: Tensor, k: Tensor, v: Tensor, *, height: int, width: int, strategy: int = 0) -> Tensor:
    """Circulant attention without FFTs; equals `reference.circulant_attention` to FP32 rounding."""
    del strategy
    dtype = q.dtype
    forward_w, inverse_w, height_mix = _dft_matrices(height, width)
    q_f, k_f, v_f = (_forward_2d(t.float(), forward_w, height_mix, height, width) for t in (q, k, v))
    logits = _inverse_2d(_conj_product(q_f, k_f), inverse_w, height_mix, height)
    weights = logits.softmax(dim=1) * (height * width) ** 0.5
    out = _inverse_2d(
        _conj_product(_forward_2d(weights, forward_w, height_mix, height, width), v_f), inverse_w, height_mix, height
    )
    return out.to(dtype)


for _op_type, _fn in reference.REFERENCE.items():
    register_implementation(
        "decomposed", _op_type, circulant_attention if _op_type == "VitrtCirculantAttention" else _fn
    )
