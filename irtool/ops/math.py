"""Keras' elementwise math and statistics beyond ``elementwise`` and ``reduce``: inverse and
hyperbolic trigonometry, the log and exp variants, NaN and infinity tests, the reductions
Keras users reach for in custom layers (``var``, ``std``, ``logsumexp``, ``ptp``...) and ``cumsum``.

A function is a new primitive only where ONNX has the op (``Tan``, ``Sinh``, ``IsNaN``...) or
NumPy's accuracy needs one of its own (``log1p`` and ``expm1`` near 0, lowered as
``Log(1 + x)`` and ``Exp(x) - 1``); the rest compose existing primitives, so their gradients and
ONNX lowerings come from those. Integer inputs are computed in float32, as in Keras.
"""

from __future__ import annotations

import math

import numpy as np

from irtool.ir.dtypes import is_float, standardize_dtype
from irtool.ir.spec import TensorSpec, normalize_axis
from irtool.ops import reduce
from irtool.ops.core import Primitive, apply, as_operand
from irtool.ops.elementwise import (
    Unary,
    _as,
    _dtype_of,
    _export_unary,
    add,
    cast,
    divide,
    equal,
    exp,
    less_equal,
    log,
    logical_and,
    logical_or,
    maximum,
    multiply,
    negative,
    not_equal,
    power,
    reciprocal,
    sqrt,
    square,
    subtract,
)
from irtool.ops.elementwise import abs as absolute
from irtool.ops.operation import top_level_op
from irtool.ops.shape import one_hot, ones_like, reshape, squeeze, where


def _c(ctx, x, value):
    return ctx.const(np.asarray(value, ctx.dtype_of(x)))


def _log1p_onnx(ctx, ins, outs):
    ctx.node("Log", [ctx.node("Add", [ins[0], _c(ctx, ins[0], 1)])[0]], outs)


def _expm1_onnx(ctx, ins, outs):
    ctx.node("Sub", [ctx.node("Exp", ins)[0], _c(ctx, ins[0], 1)], outs)


def _log_base_onnx(base):
    def lower(ctx, ins, outs):
        ctx.node("Div", [ctx.node("Log", ins)[0], _c(ctx, ins[0], math.log(base))], outs)

    return lower


def _trunc_onnx(ctx, ins, outs):
    x = ins[0]
    negative_ = ctx.node("Less", [x, _c(ctx, x, 0)])[0]
    ctx.node("Where", [negative_, ctx.node("Ceil", [x])[0], ctx.node("Floor", [x])[0]], outs)


def _isfinite_onnx(ctx, ins, outs):
    bad = ctx.node("Or", [ctx.node("IsNaN", ins)[0], ctx.node("IsInf", ins)[0]])[0]
    ctx.node("Not", [bad], outs)


def _zero_grad(x, y):
    return np.zeros_like(x)


TAN = Unary("tan", np.tan, "Tan", float_only=True, grad=lambda x, y: 1 + y * y)
SINH = Unary("sinh", np.sinh, "Sinh", float_only=True, grad=lambda x, y: np.cosh(x))
COSH = Unary("cosh", np.cosh, "Cosh", float_only=True, grad=lambda x, y: np.sinh(x))
ARCSIN = Unary("arcsin", np.arcsin, "Asin", float_only=True, grad=lambda x, y: 1 / np.sqrt(1 - x * x))
ARCCOS = Unary("arccos", np.arccos, "Acos", float_only=True, grad=lambda x, y: -1 / np.sqrt(1 - x * x))
ARCTAN = Unary("arctan", np.arctan, "Atan", float_only=True, grad=lambda x, y: 1 / (1 + x * x))
ARCSINH = Unary("arcsinh", np.arcsinh, "Asinh", float_only=True, grad=lambda x, y: 1 / np.sqrt(x * x + 1))
ARCCOSH = Unary("arccosh", np.arccosh, "Acosh", float_only=True, grad=lambda x, y: 1 / np.sqrt(x * x - 1))
ARCTANH = Unary("arctanh", np.arctanh, "Atanh", float_only=True, grad=lambda x, y: 1 / (1 - x * x))
LOG1P = Unary("log1p", np.log1p, _log1p_onnx, float_only=True, grad=lambda x, y: 1 / (1 + x))
EXPM1 = Unary("expm1", np.expm1, _expm1_onnx, float_only=True, grad=lambda x, y: y + 1)
LOG2 = Unary("log2", np.log2, _log_base_onnx(2), float_only=True, grad=lambda x, y: 1 / (x * math.log(2)))
LOG10 = Unary("log10", np.log10, _log_base_onnx(10), float_only=True, grad=lambda x, y: 1 / (x * math.log(10)))
TRUNC = Unary("trunc", np.trunc, _trunc_onnx, float_only=True, grad=_zero_grad)  # on floats; ints pass
ISNAN = Unary("isnan", np.isnan, "IsNaN", float_only=True, out_dtype="bool")
ISINF = Unary("isinf", np.isinf, "IsInf", float_only=True, out_dtype="bool")
ISFINITE = Unary("isfinite", np.isfinite, _isfinite_onnx, float_only=True, out_dtype="bool")

tan = _export_unary("tan", "Tan", TAN, "Elementwise tangent.")
sinh = _export_unary("sinh", "Sinh", SINH, "Hyperbolic sine.")
cosh = _export_unary("cosh", "Cosh", COSH, "Hyperbolic cosine.")
arcsin = _export_unary("arcsin", "Arcsin", ARCSIN, "Inverse sine, in [-pi/2, pi/2].")
arccos = _export_unary("arccos", "Arccos", ARCCOS, "Inverse cosine, in [0, pi].")
arctan = _export_unary("arctan", "Arctan", ARCTAN, "Inverse tangent, in (-pi/2, pi/2).")
arcsinh = _export_unary("arcsinh", "Arcsinh", ARCSINH, "Inverse hyperbolic sine.")
arccosh = _export_unary("arccosh", "Arccosh", ARCCOSH, "Inverse hyperbolic cosine.")
arctanh = _export_unary("arctanh", "Arctanh", ARCTANH, "Inverse hyperbolic tangent.")
log1p = _export_unary("log1p", "Log1p", LOG1P, "``log(1 + x)``, accurate for small ``x``.")
expm1 = _export_unary("expm1", "Expm1", EXPM1, "``exp(x) - 1``, accurate for small ``x``.")
log2 = _export_unary("log2", "Log2", LOG2, "Base-2 logarithm.")
log10 = _export_unary("log10", "Log10", LOG10, "Base-10 logarithm.")


@top_level_op("Trunc")
def trunc(x):
    """Rounds toward zero; integers and booleans are returned as they are (as Keras does)."""
    x = as_operand(x)
    return apply(TRUNC, [x])[0] if is_float(_dtype_of(x)) else x


isnan = _export_unary("isnan", "Isnan", ISNAN, "Whether each element is NaN.")
isinf = _export_unary("isinf", "Isinf", ISINF, "Whether each element is +inf or -inf.")
isfinite = _export_unary("isfinite", "Isfinite", ISFINITE, "Whether each element is neither NaN nor infinite.")


def _float(x):
    """``x`` as a float tensor (ints and bools in float32), as Keras computes these ops."""
    x = as_operand(x)
    return x if is_float(_dtype_of(x)) else _as(x, "float32")


def _scalar(value, like):
    return np.asarray(value, _dtype_of(like))


@top_level_op("Rsqrt")
def rsqrt(x):
    """``1 / sqrt(x)``."""
    return reciprocal(sqrt(_float(x)))


@top_level_op("Exp2")
def exp2(x):
    """``2 ** x``."""
    x = _float(x)
    return power(_scalar(2, x), x)


@top_level_op("Deg2rad")
def deg2rad(x):
    x = _float(x)
    return multiply(x, _scalar(math.pi / 180, x))


@top_level_op("Rad2deg")
def rad2deg(x):
    x = _float(x)
    return multiply(x, _scalar(180 / math.pi, x))


@top_level_op("Hypot")
def hypot(x1, x2):
    """``sqrt(x1**2 + x2**2)``."""
    return sqrt(add(square(_float(x1)), square(_float(x2))))


@top_level_op("Logaddexp")
def logaddexp(x1, x2):
    """``log(exp(x1) + exp(x2))`` without overflow: ``max + log1p(exp(-|x1 - x2|))`` (equal operands,
    infinities included, give ``x + log(2)``, not ``inf - inf``)."""
    x1, x2 = _float(x1), _float(x2)
    same = equal(x1, x2)
    zero = _scalar(0, x1)
    gap = absolute(subtract(where(same, zero, x1), where(same, zero, x2)))
    return add(maximum(x1, x2), log1p(exp(negative(gap))))


@top_level_op("DivideNoNan")
def divide_no_nan(x1, x2):
    """``x1 / x2``, and 0 where ``x2`` is 0."""
    x1, x2 = _float(x1), _float(x2)
    zero = equal(x2, _scalar(0, x2))
    safe = where(zero, _scalar(1, x2), x2)
    return where(zero, _scalar(0, x1), divide(x1, safe))


@top_level_op("Var")
def var(x, axis=None, keepdims=False):
    """The variance (biased: divided by the element count), as NumPy's ``var``."""
    x = _float(x)
    centered = subtract(x, reduce.mean(x, axis=axis, keepdims=True))
    return reduce.mean(square(centered), axis=axis, keepdims=keepdims)


@top_level_op("Std")
def std(x, axis=None, keepdims=False):
    """The standard deviation: ``sqrt(var(x))``."""
    return sqrt(var(x, axis=axis, keepdims=keepdims))


@top_level_op("Logsumexp")
def logsumexp(x, axis=None, keepdims=False):
    """``log(sum(exp(x)))`` shifted by the maximum so it neither overflows nor underflows."""
    x = _float(x)
    peak = reduce.max(x, axis=axis, keepdims=True)
    peak = where(isfinite(peak), peak, _scalar(0, x))  # all -inf (or inf) along the axis: no shift
    out = add(log(reduce.sum(exp(subtract(x, peak)), axis=axis, keepdims=True)), peak)
    if keepdims:
        return out
    return squeeze(out, axis=axis) if axis is not None else squeeze(out)


@top_level_op("Amax")
def amax(x, axis=None, keepdims=False):
    return reduce.max(x, axis=axis, keepdims=keepdims)


@top_level_op("Amin")
def amin(x, axis=None, keepdims=False):
    return reduce.min(x, axis=axis, keepdims=keepdims)


@top_level_op("Ptp")
def ptp(x, axis=None, keepdims=False):
    """The range, ``max - min``."""
    return subtract(reduce.max(x, axis=axis, keepdims=keepdims), reduce.min(x, axis=axis, keepdims=keepdims))


@top_level_op("CountNonzero")
def count_nonzero(x, axis=None):
    """The number of non-zero elements, as int32."""
    x = as_operand(x)
    return reduce.sum(cast(not_equal(x, _scalar(0, x)), "int32"), axis=axis)


class Cumsum(Primitive):
    """``np.cumsum`` along ``axis`` (ONNX ``CumSum``)."""

    name = "cumsum"

    def infer(self, specs, axis):
        (x,) = specs
        if x.dtype in ("string", "bool"):
            raise ValueError(f"`cumsum` needs numbers. Received: dtype={x.dtype}.")
        return [TensorSpec(x.shape, x.dtype)]

    def forward(self, x, axis):
        return np.cumsum(x, axis=axis, dtype=x.dtype)

    def vjp(self, cotangents, inputs, outputs, axis):
        (g,), (x,) = cotangents, inputs
        if not is_float(str(x.dtype)):
            return [None]
        return [np.flip(np.cumsum(np.flip(g, axis), axis=axis, dtype=g.dtype), axis)]  # sums of what follows

    def to_onnx(self, ctx, ins, outs, axis):
        ctx.node("CumSum", [ins[0], ctx.int64s([axis])], outs)  # small ints: widened by the context


CUMSUM = Cumsum()


@top_level_op("Cumsum")
def cumsum(x, axis=None, dtype=None):
    """Cumulative sums along ``axis`` (of the flattened array when ``None``); booleans count as int32."""
    x = as_operand(x)
    if dtype is not None:
        x = cast(x, standardize_dtype(dtype))
    elif _dtype_of(x) == "bool":
        x = cast(x, "int32")
    if axis is None:
        x, axis = reshape(x, (-1,)), 0
    return apply(CUMSUM, [x], axis=normalize_axis(axis, len(x.shape)))[0]


@top_level_op("NanToNum")
def nan_to_num(x, nan=0.0, posinf=None, neginf=None):
    """NaN, +inf and -inf replaced by ``nan`` and by the dtype's largest and lowest finite values
    (or ``posinf``/``neginf``), as ``np.nan_to_num``; integers pass through."""
    x = as_operand(x)
    dtype = _dtype_of(x)
    if not is_float(dtype):
        return x
    info = np.finfo(dtype)
    x = where(isnan(x), _scalar(nan, x), x)
    x = where(equal(x, _scalar(np.inf, x)), _scalar(info.max if posinf is None else posinf, x), x)
    return where(equal(x, _scalar(-np.inf, x)), _scalar(info.min if neginf is None else neginf, x), x)


@top_level_op("Isclose")
def isclose(x1, x2, rtol=1e-5, atol=1e-8, equal_nan=False):
    """``|x1 - x2| <= atol + rtol * |x2|`` elementwise (equal infinities are close), as ``np.isclose``."""
    x1, x2 = _float(x1), _float(x2)
    finite = logical_and(isfinite(x1), isfinite(x2))
    zero = _scalar(0, x1)
    a, b = where(finite, x1, zero), where(finite, x2, zero)  # no inf - inf below
    within = less_equal(absolute(subtract(a, b)), add(_scalar(atol, x1), multiply(_scalar(rtol, x1), absolute(b))))
    close = where(finite, within, equal(x1, x2))  # infinities: close when equal
    if equal_nan:
        close = logical_or(close, logical_and(isnan(x1), isnan(x2)))
    return close


@top_level_op("Average")
def average(x, axis=None, weights=None):
    """The mean along ``axis``, weighted by ``weights`` (of ``x``'s shape, or 1-D along ``axis``)."""
    x = _float(x)
    if weights is None:
        return reduce.mean(x, axis=axis)
    weights = _float(weights)
    if axis is not None and len(weights.shape) == 1 and len(x.shape) > 1:
        shape = [1] * len(x.shape)
        shape[normalize_axis(axis, len(x.shape))] = -1
        weights = reshape(weights, tuple(shape))
    return divide(reduce.sum(multiply(x, weights), axis=axis), reduce.sum(multiply(weights, ones_like(x)), axis=axis))


def size(x):
    """The number of elements: an int when the shape is static, else a symbolic int32 count."""
    x = as_operand(x)
    if None not in tuple(x.shape):
        return int(np.prod(x.shape, dtype=np.int64))
    return reduce.sum(ones_like(x, "int32"))


@top_level_op("Norm")
def norm(x, ord=None, axis=None, keepdims=False):  # noqa: A002 - Keras' name
    """``np.linalg.norm``: vector norms over an axis (or all of ``x``) for ``ord`` None/2, 1, inf,
    -inf, 0 or any p; matrix norms over two axes for ``ord`` None/"fro", 1, -1, inf and -inf. The
    spectral and nuclear norms (an SVD) are refused."""
    x = _float(x)
    ndim = len(x.shape)
    axes = tuple(range(ndim)) if axis is None else (axis,) if isinstance(axis, int) else tuple(axis)
    axes = tuple(normalize_axis(a, ndim) for a in axes)
    if axis is None and ord is not None and ndim > 2:
        raise ValueError(f"`norm` with ord={ord!r} needs `axis` for a {ndim}-D input.")
    magnitude = absolute(x)
    if len(axes) == 2 and (axis is not None or ndim == 2):
        if ord in (None, "fro"):
            return sqrt(reduce.sum(square(x), axis=axes, keepdims=keepdims))
        if ord in (1, -1, np.inf, -np.inf):
            summed_axis, kept_axis = (axes[0], axes[1]) if ord in (1, -1) else (axes[1], axes[0])
            sums = reduce.sum(magnitude, axis=summed_axis, keepdims=True)
            pick = reduce.max if ord in (1, np.inf) else reduce.min
            out = pick(sums, axis=kept_axis, keepdims=True)
            return out if keepdims else squeeze(out, axis=axes)
        raise ValueError(f"`norm` of matrices supports ord None, 'fro', 1, -1, inf and -inf. Received: ord={ord!r}")
    if len(axes) != 1 and axis is not None:
        raise ValueError(f"`norm` takes one axis (a vector norm) or two (a matrix norm). Received: axis={axis}")
    if ord in (None, 2, "fro"):
        return sqrt(reduce.sum(square(x), axis=axis, keepdims=keepdims))
    if ord == np.inf:
        return reduce.max(magnitude, axis=axis, keepdims=keepdims)
    if ord == -np.inf:
        return reduce.min(magnitude, axis=axis, keepdims=keepdims)
    if ord == 0:
        return cast(reduce.sum(cast(not_equal(x, _scalar(0, x)), "int32"), axis=axis, keepdims=keepdims), _dtype_of(x))
    if ord == 1:
        return reduce.sum(magnitude, axis=axis, keepdims=keepdims)
    if isinstance(ord, str):
        raise ValueError(f"`norm` of vectors takes a number for ord. Received: ord={ord!r}")
    p = _scalar(ord, x)
    return power(reduce.sum(power(magnitude, p), axis=axis, keepdims=keepdims), _scalar(1.0 / ord, x))


@top_level_op("MultiHot")
def multi_hot(inputs, num_classes, axis=-1, dtype=None, sparse=False):
    """Which of ``num_classes`` classes each row of indices holds: Keras' combination of the one-hot
    codes along the second axis (the only one for 1-D indices)."""
    if sparse:
        raise ValueError("`multi_hot(sparse=True)` is not supported: irtool has no sparse tensors.")
    inputs = as_operand(inputs)
    codes = one_hot(cast(inputs, "int32"), num_classes, axis=axis, dtype=dtype)
    return reduce.max(codes, axis=1 if len(inputs.shape) > 1 else 0)
