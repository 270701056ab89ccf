"""Standard-op ONNX function bodies of the vitrt attention ops.

Every vitrt node in an exported file is one call of a model-local `FunctionProto` built here: ONNX Runtime inlines
it (no custom-op library needed), TensorRT's parser inlines it when no plugin is registered, and `inlined` exports
replace each node by it. Bodies use only standard ONNX ops whose semantics are the same in opsets 17 to 23 (the one
exception, ReduceMax moving `axes` to an input in opset 18, is emitted per opset), compute in FP32 whatever the input
dtype and cast back, and read their attributes through attribute references, so one body serves every call site.

Circulant attention has no `DFT`: TensorRT's parser does not import it. Its body evaluates the two circular
correlations with ortho-normalised DFTs written as constant real matrices built in-graph from the `height`/`width`
attributes (ONNX Runtime and TensorRT fold them into constants once the function is inlined):

* the real DFT along W and the complex DFT along H commute, so a forward 2-D transform is two MatMuls, a broadcast
  (2, 1, 2U, W) matrix over the width axis followed by [cos | sin] (H, 2H) over the height axis; the spectrum is
  kept as (B, H, 2U, C) with the real parts in the first U rows and the imaginary parts in the last U rows;
* the inverse (C2R along W with the Hermitian weights 1, 2, ..., 2, 1) has the same structure with the same height
  matrix, so no transposes and no complex bookkeeping beyond one conjugate product per correlation.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import cache
from typing import Any

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from vitrt.onnx_passes import VITRT_DOMAIN
from vitrt.ops.spec import OpSpec, load_op_specs

DOMAIN = VITRT_DOMAIN
MIN_OPSET = 17
MAX_OPSET = 23
FLOAT = TensorProto.FLOAT


@dataclass
class FunctionBuilder:
    """Writes one FunctionProto node by node; `b.MatMul(x, y)` appends a node and returns its output's name."""

    name: str
    inputs: Sequence[str]
    attributes: Sequence[str]
    opset: int
    nodes: list[onnx.NodeProto] = field(default_factory=list)
    _counter: int = 0

    def _fresh(self, hint: str) -> str:
        self._counter += 1
        return f"{hint}_{self._counter}"

    def op(self, op_type: str, *inputs: str, **attrs: Any) -> str:
        output = self._fresh(op_type.lower())
        self.nodes.append(helper.make_node(op_type, list(inputs), [output], **attrs))
        return output

    def __getattr__(self, op_type: str) -> Callable[..., str]:
        if not op_type[:1].isupper():
            raise AttributeError(op_type)
        return lambda *inputs, **attrs: self.op(op_type, *inputs, **attrs)

    # Constants -------------------------------------------------------------------------------------------------
    def ints(self, *values: int) -> str:
        return self.op("Constant", value=numpy_helper.from_array(np.asarray(values, dtype=np.int64)))

    def scalar(self, value: float) -> str:
        return self.op("Constant", value=numpy_helper.from_array(np.asarray(value, dtype=np.float32)))

    def attr_int(self, name: str) -> str:
        """A 1-element int64 tensor holding the node's INT attribute `name`."""
        return self.Reshape(self.attr_scalar_int(name), self.ints(1))

    def attr_scalar_int(self, name: str) -> str:
        """An int64 scalar holding the node's INT attribute `name`."""
        return self._attr_ref("value_int", name, onnx.AttributeProto.AttributeType.INT)

    def scalar_int(self, value: int) -> str:
        return self.op("Constant", value=numpy_helper.from_array(np.asarray(value, dtype=np.int64)))

    def attr_float(self, name: str) -> str:
        """A float32 scalar holding the node's FLOAT attribute `name`."""
        return self._attr_ref("value_float", name, onnx.AttributeProto.AttributeType.FLOAT)

    def _attr_ref(self, field_name: str, attr_name: str, attr_type: onnx.AttributeProto.AttributeType) -> str:
        output = self._fresh(attr_name)
        node = helper.make_node("Constant", [], [output])
        node.attribute.append(helper.make_attribute_ref(field_name, attr_type))
        node.attribute[-1].ref_attr_name = attr_name
        self.nodes.append(node)
        return output

    # Opset-aware helpers ---------------------------------------------------------------------------------------
    def reduce_sum(self, x: str, axes: Sequence[int]) -> str:
        return self.ReduceSum(x, self.ints(*axes), keepdims=1)

    def reduce_max(self, x: str, axes: Sequence[int]) -> str:
        if self.opset >= 18:
            return self.ReduceMax(x, self.ints(*axes), keepdims=1)
        return self.ReduceMax(x, axes=list(axes), keepdims=1)

    def to_float(self, x: str) -> str:
        return self.Cast(x, to=FLOAT)

    def dim_as_float(self, x: str, axis: int) -> str:
        """Size of `axis` of x as a 1-element float tensor."""
        return self.Cast(self.Shape(x, start=axis, end=axis + 1), to=FLOAT)

    def split_heads(self, x: str) -> str:
        """(B, n, C) -> (B, h, n, d) with h from the `num_heads` attribute; channels split head-major."""
        shape = self.Concat(self.ints(0, 0), self.attr_int("num_heads"), self.ints(-1), axis=0)
        return self.Transpose(self.Reshape(x, shape), perm=[0, 2, 1, 3])

    def merge_heads(self, x: str) -> str:
        """(B, h, n, d) -> (B, n, h*d)."""
        return self.Reshape(self.Transpose(x, perm=[0, 2, 1, 3]), self.ints(0, 0, -1))

    def transpose_last(self, x: str) -> str:
        return self.Transpose(x, perm=[0, 1, 3, 2])

    def build(self, outputs: Sequence[str], doc: str = "") -> onnx.FunctionProto:
        return helper.make_function(
            DOMAIN,
            self.name,
            list(self.inputs),
            list(outputs),
            self.nodes,
            opset_imports=[helper.make_opsetid("", self.opset)],
            attributes=list(self.attributes),
            doc_string=doc,
        )


# --- FLatten -------------------------------------------------------------------------------------------------------


def _focus(b: FunctionBuilder, x: str, power: str, fp16_safe: bool) -> str:
    """||x|| * x^p / ||x^p|| over the channel axis; x > 0 here.

    The direction x^p / ||x^p|| is invariant under positive rescaling, so the FP16-safe form raises x / max(x)
    (entries in (0, 1]) to the power and rebuilds ||x|| as max(x) * ||x / max(x)||: no intermediate exceeds the
    result's own magnitude, where the plain form squares and cubes unbounded activations.
    """
    if fp16_safe:
        peak = b.reduce_max(x, [-1])
        unit = b.Div(x, peak)
        norm = b.Mul(b.Sqrt(b.reduce_sum(b.Mul(unit, unit), [-1])), peak)
        powered = b.Pow(unit, power)
    else:
        norm = b.Sqrt(b.reduce_sum(b.Mul(x, x), [-1]))
        powered = b.Pow(x, power)
    direction = b.Div(powered, b.Sqrt(b.reduce_sum(b.Mul(powered, powered), [-1])))
    return b.Mul(direction, norm)


def focused_linear_attention_body(spec: OpSpec, opset: int, fp16_safe: bool) -> onnx.FunctionProto:
    b = FunctionBuilder(spec.name, spec.input_names, spec.attribute_names, opset)
    q, k, v, pos, scale = (b.to_float(name) for name in spec.input_names)
    eps = b.scalar(1e-6)
    k = b.Add(k, pos)
    q, k = b.Add(b.Relu(q), eps), b.Add(b.Relu(k), eps)
    softplus_scale = b.Softplus(scale)
    power = b.attr_float("focusing_factor")
    q = _focus(b, b.Div(q, softplus_scale), power, fp16_safe)
    k = _focus(b, b.Div(k, softplus_scale), power, fp16_safe)
    n = b.dim_as_float(q, 1)
    inv_sqrt_n = b.Reciprocal(b.Sqrt(n))
    qh, kh, vh = b.split_heads(q), b.split_heads(k), b.split_heads(v)
    k_mean = b.Div(b.reduce_sum(kh, [2]), n)
    z = b.Reciprocal(b.Add(b.MatMul(qh, b.transpose_last(k_mean)), eps))
    kv = b.MatMul(b.Mul(b.transpose_last(kh), inv_sqrt_n), b.Mul(vh, inv_sqrt_n))
    out = b.merge_heads(b.Mul(b.MatMul(qh, kv), z))
    return b.build([b.CastLike(out, spec.input_names[0])], doc=spec.summary)


# --- Agent ---------------------------------------------------------------------------------------------------------


def agent_attention_body(spec: OpSpec, opset: int, fp16_safe: bool) -> onnx.FunctionProto:
    del fp16_safe  # both softmaxes subtract their maximum; nothing else can overflow
    b = FunctionBuilder(spec.name, spec.input_names, spec.attribute_names, opset)
    q, k, v, agents, agent_bias, query_bias = (b.to_float(name) for name in spec.input_names)
    scale = b.attr_float("scale")
    qh, kh, vh, ah = (b.split_heads(t) for t in (q, k, v, agents))
    agent_attn = b.Softmax(b.Add(b.MatMul(b.Mul(ah, scale), b.transpose_last(kh)), agent_bias), axis=-1)
    agent_v = b.MatMul(agent_attn, vh)
    query_attn = b.Softmax(b.Add(b.MatMul(b.Mul(qh, scale), b.transpose_last(ah)), query_bias), axis=-1)
    out = b.merge_heads(b.MatMul(query_attn, agent_v))
    return b.build([b.CastLike(out, spec.input_names[0])], doc=spec.summary)


# --- InLine --------------------------------------------------------------------------------------------------------


def inline_attention_body(spec: OpSpec, opset: int, fp16_safe: bool) -> onnx.FunctionProto:
    del fp16_safe  # k and v are pre-scaled by sqrt(scale / n) before their product, as in the reference
    b = FunctionBuilder(spec.name, spec.input_names, spec.attribute_names, opset)
    q, k, v, taps = (b.to_float(name) for name in spec.input_names)
    scale = b.attr_float("scale")
    n = b.dim_as_float(q, 1)
    factor = b.Sqrt(b.Div(scale, n))
    qh, kh, vh = b.split_heads(q), b.split_heads(k), b.split_heads(v)
    kv = b.MatMul(b.Mul(b.transpose_last(kh), factor), b.Mul(vh, factor))
    k_mean = b.Div(b.reduce_sum(kh, [2]), n)
    v_mean = b.Div(b.reduce_sum(vh, [2]), n)
    one = b.scalar(1.0)
    mean_term = b.Sub(one, b.Mul(b.MatMul(qh, b.transpose_last(k_mean)), scale))
    out = b.merge_heads(b.Add(b.MatMul(qh, kv), b.Mul(mean_term, v_mean)))

    # Local residual: per-sample, per-channel 3x3 taps over the patch tokens, as nine shifted multiply-adds.
    prefix = b.attr_int("num_prefix_tokens")
    patches = b.Slice(v, prefix, b.ints(2**62), b.ints(1))
    grid = b.Concat(b.ints(0, 0), b.attr_int("height"), b.attr_int("width"), axis=0)
    image = b.Reshape(b.Transpose(patches, perm=[0, 2, 1]), grid)  # (B, C, H, W)
    padded = b.Pad(image, b.ints(0, 0, 1, 1, 0, 0, 1, 1))
    taps = b.Reshape(taps, b.ints(0, 0, 9, 1))  # (B, C, 9, 1): tap j broadcasts over (H, W) after slicing
    local = None
    for ky in range(3):
        for kx in range(3):
            tap = b.Slice(taps, b.ints(3 * ky + kx), b.ints(3 * ky + kx + 1), b.ints(2))
            # Rows ky .. ky+H-1 of the padded (H+2)-row map end 2-ky rows before its end.
            window = b.Slice(padded, b.ints(ky, kx), b.ints(_end(ky), _end(kx)), b.ints(2, 3))
            term = b.Mul(window, tap)
            local = term if local is None else b.Add(local, term)
    assert local is not None
    local_tokens = b.Transpose(b.Reshape(local, b.ints(0, 0, -1)), perm=[0, 2, 1])  # (B, HW, C)
    # Zero rows in front for the prefix (cls) tokens, which get no local term.
    pads = b.Concat(b.ints(0), prefix, b.ints(0, 0, 0, 0), axis=0)
    out = b.Add(out, b.Pad(local_tokens, pads))
    return b.build([b.CastLike(out, spec.input_names[0])], doc=spec.summary)


def _end(offset: int) -> int:
    return offset - 2 if offset < 2 else 2**62


# --- MLLA ----------------------------------------------------------------------------------------------------------


def _rope(b: FunctionBuilder, x: str, cos: str, sin: str) -> str:
    """Rotate channel pairs (2m, 2m+1) of x (B, N, C); cos/sin are (N, C/2, 1)."""
    pairs = b.Reshape(x, b.ints(0, 0, -1, 2))
    even = b.Slice(pairs, b.ints(0), b.ints(1), b.ints(-1))
    odd = b.Slice(pairs, b.ints(1), b.ints(2), b.ints(-1))
    rotated = b.Concat(
        b.Sub(b.Mul(even, cos), b.Mul(odd, sin)),
        b.Add(b.Mul(even, sin), b.Mul(odd, cos)),
        axis=-1,
    )
    return b.Reshape(rotated, b.ints(0, 0, -1))


def mlla_linear_attention_body(spec: OpSpec, opset: int, fp16_safe: bool) -> onnx.FunctionProto:
    del fp16_safe  # elu + 1 is bounded below; k and v are pre-scaled by N^-1/2 before their product
    b = FunctionBuilder(spec.name, spec.input_names, spec.attribute_names, opset)
    q, k, v, rope = (b.to_float(name) for name in spec.input_names)
    one, eps = b.scalar(1.0), b.scalar(1e-6)
    q, k = b.Add(b.Elu(q), one), b.Add(b.Elu(k), one)
    cos = b.Slice(rope, b.ints(0), b.ints(1), b.ints(-1))
    sin = b.Slice(rope, b.ints(1), b.ints(2), b.ints(-1))
    q_rope, k_rope = b.split_heads(_rope(b, q, cos, sin)), b.split_heads(_rope(b, k, cos, sin))
    n = b.dim_as_float(q, 1)
    inv_sqrt_n = b.Reciprocal(b.Sqrt(n))
    qh, kh, vh = b.split_heads(q), b.split_heads(k), b.split_heads(v)
    k_mean = b.Div(b.reduce_sum(kh, [2]), n)
    z = b.Reciprocal(b.Add(b.MatMul(qh, b.transpose_last(k_mean)), eps))
    kv = b.MatMul(b.Mul(b.transpose_last(k_rope), inv_sqrt_n), b.Mul(vh, inv_sqrt_n))
    out = b.merge_heads(b.Mul(b.MatMul(q_rope, kv), z))
    return b.build([b.CastLike(out, spec.input_names[0])], doc=spec.summary)


# --- Circulant -----------------------------------------------------------------------------------------------------


@dataclass
class _DftMatrices:
    forward_w: str  # (2, 1, 2U, W): [rfft; rfft followed by multiplication with -i]
    inverse_w: str  # (2, 1, W, 2U): [C2R; C2R after multiplication with i]
    height_mix: str  # (H, 2H): [cos | sin], shared by the forward and the inverse transform
    half: str  # U = W // 2 + 1 as a 1-element int64 tensor
    stacked_rows: str  # [0, 2H, -1]: the two stacked width passes as (B, 2H, rest)
    spectrum_shape: str  # [0, H, 2U, -1]


def _angles(b: FunctionBuilder, rows: str, cols: str, period: str) -> str:
    """2*pi*((r*c) mod period)/period for the outer product of two int64 ranges; the mod keeps FP32 exact."""
    product = b.Mod(b.Mul(b.Unsqueeze(rows, b.ints(1)), b.Unsqueeze(cols, b.ints(0))), period)
    return b.Mul(b.Cast(product, to=FLOAT), b.Div(b.scalar(2 * math.pi), b.Cast(period, to=FLOAT)))


def _dft_matrices(b: FunctionBuilder) -> _DftMatrices:
    height, width = b.attr_scalar_int("height"), b.attr_scalar_int("width")
    zero, one, two = b.scalar_int(0), b.scalar_int(1), b.scalar_int(2)
    half = b.Add(b.Div(width, two), one)  # scalars: Range needs them
    inv_sqrt_n = b.Reciprocal(b.Sqrt(b.Cast(b.Mul(height, width), to=FLOAT)))
    # Width: rfft rows u = 0..U-1 against columns w. Forward F = [cos; -sin]; F' = J F = [-sin; -cos] gives the
    # spectrum multiplied by -i, which the height pass needs for its imaginary part.
    u_range, w_range = b.Range(zero, half, one), b.Range(zero, width, one)
    w_angles = _angles(b, u_range, w_range, width)
    cos_w, sin_w = b.Cos(w_angles), b.Sin(w_angles)
    neg_cos_w, neg_sin_w = b.Neg(cos_w), b.Neg(sin_w)
    forward = b.Concat(
        b.Unsqueeze(b.Concat(cos_w, neg_sin_w, axis=0), b.ints(0)),
        b.Unsqueeze(b.Concat(neg_sin_w, neg_cos_w, axis=0), b.ints(0)),
        axis=0,
    )
    forward_w = b.Mul(b.Unsqueeze(forward, b.ints(1)), inv_sqrt_n)
    # Inverse C2R along W: x[w] = sum_u c_u (Re_u cos - Im_u sin) with Hermitian weights c_u = 2, except 1 for
    # u = 0 and for the Nyquist bin u = W/2 of an even width. The second matrix applies it after multiplying
    # the spectrum by i: (Re, Im) -> (-Im, Re).
    is_dc = b.Cast(b.Equal(u_range, zero), to=FLOAT)
    is_nyquist = b.Cast(b.Equal(b.Mul(u_range, two), width), to=FLOAT)
    weights = b.Unsqueeze(b.Sub(b.Sub(b.scalar(2.0), is_dc), is_nyquist), b.ints(1))  # (U, 1)
    c_cos, c_sin = b.Mul(cos_w, weights), b.Mul(sin_w, weights)  # (U, W)
    inverse_rows = b.Concat(c_cos, b.Neg(c_sin), axis=0)  # (2U, W): x = rows^T @ [Re; Im]
    rotated_rows = b.Concat(b.Neg(c_sin), b.Neg(c_cos), axis=0)
    inverse = b.Concat(
        b.Unsqueeze(b.Transpose(inverse_rows, perm=[1, 0]), b.ints(0)),
        b.Unsqueeze(b.Transpose(rotated_rows, perm=[1, 0]), b.ints(0)),
        axis=0,
    )
    inverse_w = b.Mul(b.Unsqueeze(inverse, b.ints(1)), inv_sqrt_n)
    # Height: full complex DFT. Forward Re' = C Re + S Im, Im' = C Im - S Re, i.e. C X + S (-i X); the inverse is
    # C X + S (i X), so both are [C | S] applied to the two stacked width passes.
    h_range = b.Range(zero, height, one)
    h_angles = _angles(b, h_range, h_range, height)
    height_mix = b.Concat(b.Cos(h_angles), b.Sin(h_angles), axis=1)
    as_1d = b.ints(1)
    stacked_rows = b.Concat(b.ints(0), b.Reshape(b.Mul(height, two), as_1d), b.ints(-1), axis=0)
    spectrum_shape = b.Concat(
        b.ints(0), b.Reshape(height, as_1d), b.Reshape(b.Mul(half, two), as_1d), b.ints(-1), axis=0
    )
    return _DftMatrices(forward_w, inverse_w, height_mix, b.Reshape(half, as_1d), stacked_rows, spectrum_shape)


def _forward_2d(b: FunctionBuilder, x: str, m: _DftMatrices, grid5: str) -> str:
    """(B, N, C) real -> ortho spectrum (B, H, 2U, C)."""
    stacked = b.MatMul(m.forward_w, b.Reshape(x, grid5))  # (B, 2, H, 2U, C)
    mixed = b.MatMul(m.height_mix, b.Reshape(stacked, m.stacked_rows))  # (B, H, 2U*C)
    return b.Reshape(mixed, m.spectrum_shape)


def _inverse_2d(b: FunctionBuilder, spectrum: str, m: _DftMatrices, tokens: str) -> str:
    """Ortho spectrum (B, H, 2U, C) -> real (B, N, C)."""
    stacked = b.MatMul(m.inverse_w, b.Unsqueeze(spectrum, b.ints(1)))  # (B, 2, H, W, C)
    mixed = b.MatMul(m.height_mix, b.Reshape(stacked, m.stacked_rows))  # (B, H, W*C)
    return b.Reshape(mixed, tokens)


def _conj_product(b: FunctionBuilder, x: str, y: str, half: str) -> str:
    """conj(X) * Y for spectra laid out (B, H, 2U, C) = [Re; Im] along axis 2."""
    axis, zero, end = b.ints(2), b.ints(0), b.Mul(half, b.ints(2))
    x_re, x_im = b.Slice(x, zero, half, axis), b.Slice(x, half, end, axis)
    y_re, y_im = b.Slice(y, zero, half, axis), b.Slice(y, half, end, axis)
    real = b.Add(b.Mul(x_re, y_re), b.Mul(x_im, y_im))
    imag = b.Sub(b.Mul(x_re, y_im), b.Mul(x_im, y_re))
    return b.Concat(real, imag, axis=2)


def circulant_attention_body(spec: OpSpec, opset: int, fp16_safe: bool) -> onnx.FunctionProto:
    del fp16_safe  # ortho transforms keep every spectrum within sqrt(N) of its signal; softmax is max-shifted
    b = FunctionBuilder(spec.name, spec.input_names, spec.attribute_names, opset)
    q, k, v = (b.to_float(name) for name in spec.input_names)
    m = _dft_matrices(b)
    # (B, 1, H, W, C): the singleton axis broadcasts against the two stacked width matrices.
    grid5 = b.Concat(b.ints(0, 1), b.attr_int("height"), b.attr_int("width"), b.ints(-1), axis=0)
    tokens = b.Shape(q)
    q_f, k_f, v_f = (_forward_2d(b, t, m, grid5) for t in (q, k, v))
    # a = irfft2(conj(Q) K, ortho): N^-1/2 times the circular cross-correlation of q and k.
    logits = _inverse_2d(b, _conj_product(b, q_f, k_f, m.half), m, tokens)
    weights = b.Softmax(logits, axis=1)
    # out = irfft2(conj(rfft2(alpha)) V, ortho) with the unnormalised rfft2 of alpha = sqrt(N) * ortho rfft2.
    sqrt_n = b.Sqrt(b.dim_as_float(q, 1))
    weights_f = _forward_2d(b, b.Mul(weights, sqrt_n), m, grid5)
    out = _inverse_2d(b, _conj_product(b, weights_f, v_f, m.half), m, tokens)
    return b.build([b.CastLike(out, spec.input_names[0])], doc=spec.summary)


_BODIES: dict[str, Callable[[OpSpec, int, bool], onnx.FunctionProto]] = {
    "VitrtCirculantAttention": circulant_attention_body,
    "VitrtFocusedLinearAttention": focused_linear_attention_body,
    "VitrtAgentAttention": agent_attention_body,
    "VitrtInLineAttention": inline_attention_body,
    "VitrtMllaLinearAttention": mlla_linear_attention_body,
}


@cache
def _function_bytes(op_type: str, opset: int, fp16_safe: bool) -> bytes:
    spec = load_op_specs()[op_type]
    return _BODIES[op_type](spec, opset, fp16_safe).SerializeToString()


def function_proto(op_type: str, opset: int, *, fp16_safe: bool = False) -> onnx.FunctionProto:
    """The body of `op_type` for a model of ONNX opset `opset` (a fresh copy, safe to modify)."""
    if not MIN_OPSET <= opset <= MAX_OPSET:
        raise ValueError(f"opset {opset} is outside the supported range {MIN_OPSET}..{MAX_OPSET}")
    if op_type not in _BODIES:
        raise KeyError(f"unknown vitrt op {op_type!r}")
    proto = onnx.FunctionProto()
    proto.ParseFromString(_function_bytes(op_type, opset, fp16_safe))
    return proto


def function_protos(opset: int, *, fp16_safe: bool = False) -> dict[str, onnx.FunctionProto]:
    """Bodies of every vitrt op, keyed by op_type."""
    return {name: function_proto(name, opset, fp16_safe=fp16_safe) for name in _BODIES}
