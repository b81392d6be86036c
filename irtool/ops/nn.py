"""Neural-network ops: the softmax and log-softmax primitives, and activations composed from other ops.

Activation functions that are elementwise primitives live in ``elementwise``; this module
re-exports them so ``ops.nn.relu`` works as in Keras.
"""

from __future__ import annotations

import numpy as np

from irtool.ir.dtypes import is_float, standardize_dtype
from irtool.ir.spec import normalize_axis
from irtool.ops.core import Primitive, SymbolicTensor, apply
from irtool.ops.elementwise import (  # noqa: F401 - the ops.nn namespace
    abs,
    add,
    cast,
    divide,
    elu,
    gelu,
    greater,
    greater_equal,
    hard_sigmoid,
    leaky_relu,
    less,
    less_equal,
    logical_and,
    multiply,
    negative,
    relu,
    relu6,
    selu,
    sigmoid,
    silu,
    softplus,
    softsign,
    sqrt,
    square,
    subtract,
    swish,
    tanh,
)
from irtool.ops.linalg import einsum
from irtool.ops.operation import top_level_op
from irtool.ops.reduce import max, sum
from irtool.ops.shape import clip, expand_dims, split, where


class Softmax(Primitive):
    def __init__(self, name: str, log: bool):
        self.name = name
        self.log = log

    def infer(self, specs, axis):
        (x,) = specs
        if not is_float(x.dtype):
            raise ValueError(f"`{self.name}` needs a floating-point input. Received: dtype={x.dtype}")
        return [x]

    def forward(self, x, axis):
        shifted = x - np.max(x, axis=axis, keepdims=True)
        if self.log:
            return shifted - np.log(np.sum(np.exp(shifted), axis=axis, keepdims=True))
        e = np.exp(shifted)
        return e / np.sum(e, axis=axis, keepdims=True)

    def vjp(self, cotangents, inputs, outputs, axis):
        (g,), (y,) = cotangents, outputs
        if self.log:
            return [g - np.exp(y) * g.sum(axis=axis, keepdims=True)]
        return [y * (g - (g * y).sum(axis=axis, keepdims=True))]

    def to_onnx(self, ctx, ins, outs, axis):
        ctx.node("LogSoftmax" if self.log else "Softmax", ins, outs, axis=axis)


SOFTMAX = Softmax("softmax", log=False)
LOG_SOFTMAX = Softmax("log_softmax", log=True)


def _softmax(prim, x, axis):
    if not hasattr(x, "shape"):
        x = np.asarray(x, "float32")
    return apply(prim, [x], axis=normalize_axis(axis, len(x.shape)))[0]


@top_level_op("Softmax")
def softmax(x, axis=-1):
    """``exp(x) / sum(exp(x))`` along ``axis``."""
    return _softmax(SOFTMAX, x, axis)


@top_level_op("LogSoftmax")
def log_softmax(x, axis=-1):
    return _softmax(LOG_SOFTMAX, x, axis)


# ---------------------------------------------------------------------------------------
# Activations composed from other ops. Each is written on primitives that already carry a
# NumPy kernel, a vjp and an ONNX lowering, so these need no rules of their own.


def _as_tensor(x):
    if hasattr(x, "shape") and hasattr(x, "dtype"):
        return x
    return np.asarray(x, dtype="float32" if isinstance(x, float) else None)


def _as_float(x):
    x = _as_tensor(x)
    dtype = x.dtype if isinstance(x, SymbolicTensor) else standardize_dtype(x.dtype)
    return x if is_float(dtype) else cast(x, "float32")


@top_level_op("Celu")
def celu(x, alpha=1.0):
    """Continuously differentiable ELU: ``max(x, 0) + min(0, alpha * (exp(x / alpha) - 1))``."""
    alpha = float(alpha)
    if alpha == 0.0:
        raise ValueError(f"`celu` needs a non-zero `alpha`. Received: alpha={alpha}")
    x = _as_float(x)
    if alpha == 1.0:
        return elu(x, 1.0)
    # celu(x) = alpha * elu(x / alpha): reuses the ELU primitive (ONNX Elu, stable expm1).
    return multiply(elu(divide(x, alpha), 1.0), alpha)


@top_level_op("Glu")
def glu(x, axis=-1):
    """Gated linear unit: ``a * sigmoid(b)`` where ``a, b`` are the two halves of ``x`` along ``axis``.

    Example: ``ops.glu(np.array([-1.0, 0.0, 1.0, 1.0]))`` is ``[-sigmoid(1), 0]``; the output has
    half the input's size along ``axis``.
    """
    x = _as_float(x)
    ax = normalize_axis(axis, len(x.shape))
    size = x.shape[ax]
    if size is None or size % 2:
        raise ValueError(
            f"`glu` needs an even, known size along `axis` to split it in two halves. "
            f"Received: x.shape={tuple(x.shape)} with axis={axis}"
        )
    a, b = split(x, 2, axis=ax)
    return multiply(a, sigmoid(b))


@top_level_op("HardTanh")
def hard_tanh(x):
    """``clip(x, -1, 1)``."""
    return clip(_as_tensor(x), -1.0, 1.0)


@top_level_op("HardShrink")
def hard_shrink(x, threshold=0.5):
    """``x`` where ``|x| > threshold``, else 0."""
    x = _as_tensor(x)
    return where(greater(abs(x), threshold), x, 0)


@top_level_op("SoftShrink")
def soft_shrink(x, threshold=0.5):
    """``x - threshold`` above ``threshold``, ``x + threshold`` below ``-threshold``, else 0."""
    x = _as_tensor(x)
    inner = where(less(x, -threshold), add(x, threshold), 0)
    return where(greater(x, threshold), subtract(x, threshold), inner)


@top_level_op("Threshold")
def threshold(x, threshold, default_value):
    """``x`` where ``x > threshold``, else ``default_value``."""
    x = _as_tensor(x)
    return where(greater(x, threshold), x, default_value)


@top_level_op("LogSigmoid")
def log_sigmoid(x):
    """``log(sigmoid(x))``, computed as ``-softplus(-x)`` so it neither overflows nor underflows to -inf."""
    return negative(softplus(negative(_as_float(x))))


@top_level_op("TanhShrink")
def tanh_shrink(x):
    """``x - tanh(x)``."""
    x = _as_float(x)
    return subtract(x, tanh(x))


@top_level_op("SparsePlus")
def sparse_plus(x):
    """0 for ``x <= -1``, ``(x + 1)**2 / 4`` for ``-1 < x < 1``, ``x`` for ``x >= 1``."""
    x = _as_float(x)
    # Squaring the clipped value keeps the unused branch finite, so its zero cotangent stays zero.
    quadratic = multiply(square(add(clip(x, -1.0, 1.0), 1.0)), 0.25)
    return where(less_equal(x, -1.0), 0.0, where(less(x, 1.0), quadratic, x))


@top_level_op("SparseSigmoid")
def sparse_sigmoid(x):
    """``clip((x + 1) / 2, 0, 1)``: 0 for ``x <= -1``, 1 for ``x >= 1``, linear between."""
    x = _as_float(x)
    return clip(multiply(add(x, 1.0), 0.5), 0.0, 1.0)


@top_level_op("Squareplus")
def squareplus(x, b=4):
    """``(x + sqrt(x**2 + b)) / 2``, a smooth ReLU whose curvature near 0 is set by ``b >= 0``.

    For ``x < 0`` the same value is computed as ``b / (2 * (sqrt(x**2 + b) - x))``: the textbook
    form cancels to 0 for large negative ``x`` where the true value is about ``b / (4|x|)``.
    """
    b = float(b)
    if b < 0:
        raise ValueError(f"`squareplus` needs `b >= 0`. Received: b={b}")
    x = _as_float(x)
    if b == 0.0:
        return relu(x)
    # t = sqrt(x**2 + b) + |x| >= sqrt(b) > 0, so both branches stay finite everywhere.
    t = add(sqrt(add(square(x), b)), abs(x))
    return where(greater_equal(x, 0.0), multiply(t, 0.5), divide(b * 0.5, t))


@top_level_op("HardSilu")
def hard_silu(x):
    """``x * hard_sigmoid(x)`` (also ``hard_swish``)."""
    x = _as_float(x)
    return multiply(x, hard_sigmoid(x))


hard_swish = hard_silu


@top_level_op("Sparsemax")
def sparsemax(x, axis=-1):
    """Euclidean projection of ``x`` onto the probability simplex along ``axis``: like softmax,
    but with exact zeros. ``sparsemax(x) = max(x - tau, 0)`` with ``tau`` chosen so it sums to 1.

    The support test usually runs on a sorted copy; here element ``j`` is in the support when
    ``1 + k_j * x_j > s_j``, where ``k_j`` counts and ``s_j`` sums the elements ``>= x_j``. That is
    the same test (ties pass or fail together), needs no sort, and keeps every step a plain
    primitive, so the gradient is exact and the ONNX graph is standard. Cost: a pairwise
    ``n x n`` comparison per row along ``axis``, fine for class counts, not for huge axes.
    """
    x = _as_float(x)
    ax = normalize_axis(axis, len(x.shape))
    # sparsemax is shift invariant; centring on the max keeps the sums well conditioned.
    z = subtract(x, max(x, axis=ax, keepdims=True))
    rows = expand_dims(z, ax + 1)  # z_j along ax, a broadcast axis at ax + 1
    cols = expand_dims(z, ax)  # z_i along ax + 1
    at_least = cast(greater_equal(cols, rows), z.dtype)  # [..., j, i] = z_i >= z_j
    count = sum(at_least, axis=ax + 1)
    total = sum(multiply(at_least, cols), axis=ax + 1)
    support = cast(greater(add(multiply(count, z), 1.0), total), z.dtype)
    size = sum(support, axis=ax, keepdims=True)
    tau = divide(subtract(sum(multiply(support, z), axis=ax, keepdims=True), 1.0), size)
    return relu(subtract(z, tau))


@top_level_op("DotProductAttention")
def dot_product_attention(
    query,
    key,
    value,
    bias=None,
    mask=None,
    scale=None,
    is_causal=False,
    flash_attention=None,
    attn_logits_soft_cap=None,
):
    """Scaled dot-product attention on ``(batch, length, heads, head_dim)`` tensors, as Keras'
    numpy backend computes it: ``softmax(q·k * scale + bias)`` with masked (and, with ``is_causal``,
    future) positions at -0.7 * the float's largest value, then the weighted sum of ``value``."""
    refused = {"flash_attention": flash_attention, "attn_logits_soft_cap": attn_logits_soft_cap}
    if flash_attention or attn_logits_soft_cap is not None:
        given = ", ".join(f"{k}={v!r}" for k, v in refused.items() if v)
        raise ValueError(f"`dot_product_attention` computes plain attention; it does not take {given}.")
    query, key, value = (_as_float(t) for t in (query, key, value))
    if len(query.shape) != 4 or len(key.shape) != 4 or len(value.shape) != 4:
        raise ValueError(
            "`dot_product_attention` takes 4-D (batch, length, heads, head_dim) tensors. "
            f"Received: query.shape={query.shape}, key.shape={key.shape}, value.shape={value.shape}."
        )
    head_dim = key.shape[-1]
    dtype = str(query.dtype)
    scale = 1.0 / np.sqrt(head_dim) if scale is None else scale
    logits = multiply(einsum("btnh,bsnh->bnts", query, key), np.asarray(scale, dtype))
    if bias is not None:
        logits = add(logits, cast(bias, dtype) if hasattr(bias, "dtype") else np.asarray(bias, dtype))
    keep = None if mask is None else cast(mask, "bool")
    if is_causal:
        t, s = query.shape[1], key.shape[1]
        if t is None or s is None:
            raise ValueError("`dot_product_attention(is_causal=True)` needs static query and key lengths.")
        causal = np.tril(np.ones((t, s), bool))[None, None]
        keep = causal if keep is None else logical_and(keep, causal)
    if keep is not None:
        lowest = np.asarray((65500.0 if dtype == "float16" else 3.38953e38) * -0.7, dtype)
        logits = where(keep, logits, lowest)
    probs = softmax(logits, axis=-1)
    return einsum("bnts,bsnh->btnh", probs, value)
