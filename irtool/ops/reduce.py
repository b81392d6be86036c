"""Reductions over axes: sum, mean, max, min, prod, any, all, argmax, argmin."""

from __future__ import annotations

import numpy as np

from irtool.ir.dtypes import is_float
from irtool.ir.spec import TensorSpec, normalize_axis
from irtool.ops.core import Primitive, apply
from irtool.ops.elementwise import cast, greater, maximum, minimum, not_equal
from irtool.ops.operation import top_level_op
from irtool.ops.shape import reshape


def _reduced_shape(shape, axes, keepdims):
    if keepdims:
        return tuple(1 if i in axes else d for i, d in enumerate(shape))
    return tuple(d for i, d in enumerate(shape) if i not in axes)


class Reduce(Primitive):
    """Reduce over ``axes`` (a sorted tuple of non-negative axes) with ``keepdims``."""

    def __init__(self, name: str, fn, onnx_op: str):
        self.name = name
        self.fn = fn
        self.onnx_op = onnx_op

    def infer(self, specs, axes, keepdims):
        (x,) = specs
        dtype = x.dtype
        if self.name == "mean" and not is_float(dtype):
            dtype = "float32"
        return [TensorSpec(_reduced_shape(x.shape, axes, keepdims), dtype)]

    def forward(self, x, axes, keepdims):
        out = self.fn(x, axis=axes, keepdims=keepdims)
        return np.asarray(out, dtype=x.dtype if self.name != "mean" or is_float(x.dtype.name) else "float32")

    def vjp(self, cotangents, inputs, outputs, axes, keepdims):
        (g,), (x,), (y,) = cotangents, inputs, outputs
        if not np.issubdtype(x.dtype, np.floating):
            return [None]
        if not keepdims:
            g, y = np.expand_dims(g, axes), np.expand_dims(y, axes)
        if self.name == "sum":
            return [np.broadcast_to(g, x.shape).astype(x.dtype)]
        if self.name == "mean":
            count = np.prod([x.shape[a] for a in axes]) if axes else 1
            return [np.broadcast_to(g / np.asarray(count, x.dtype), x.shape).astype(x.dtype)]
        if self.name in ("max", "min"):
            # Ties share the gradient equally (as TensorFlow and PyTorch's amax do).
            hit = (x == y).astype(x.dtype)
            return [g * hit / hit.sum(axis=axes, keepdims=True)]
        return [g * _prod_without(x, axes)]

    def to_onnx(self, ctx, ins, outs, axes, keepdims):
        ctx.reduce(self.onnx_op, ins[0], list(axes), keepdims, outs)


SUM = Reduce("sum", np.sum, "ReduceSum")
MEAN = Reduce("mean", np.mean, "ReduceMean")
MAX = Reduce("max", np.max, "ReduceMax")
MIN = Reduce("min", np.min, "ReduceMin")
PROD = Reduce("prod", np.prod, "ReduceProd")


def _axes(x, axis) -> tuple:
    ndim = len(x.shape)
    if axis is None:
        return tuple(range(ndim))
    if isinstance(axis, int):
        axis = (axis,)
    return tuple(sorted({normalize_axis(a, ndim) for a in axis}))


def _reduce(prim, x, axis, keepdims):
    if not hasattr(x, "shape"):
        x = np.asarray(x)
    if prim is MEAN and not is_float(str(x.dtype)):
        x = cast(x, "float32")
    return apply(prim, [x], axes=_axes(x, axis), keepdims=bool(keepdims))[0]


# Keras' (and JAX's) accumulator for small integers: a sum or product of bools, int8 or int16 is
# int32, of uint8 or uint16 uint32, so a mask counts instead of wrapping around (or staying bool).
_WIDER = {"bool": "int32", "int8": "int32", "int16": "int32", "uint8": "uint32", "uint16": "uint32"}


def _accumulated(x):
    if not hasattr(x, "shape"):
        x = np.asarray(x)
    wider = _WIDER.get(str(x.dtype))
    return x if wider is None else cast(x, wider)


@top_level_op("Sum")
def sum(x, axis=None, keepdims=False):  # noqa: A001 - Keras' name
    return _reduce(SUM, _accumulated(x), axis, keepdims)


@top_level_op("Mean")
def mean(x, axis=None, keepdims=False):
    return _reduce(MEAN, x, axis, keepdims)


@top_level_op("Max")
def max(x, axis=None, keepdims=False, initial=None):  # noqa: A001 - Keras' name
    out = _reduce(MAX, x, axis, keepdims)
    if initial is None:
        return out

    return maximum(out, initial)


@top_level_op("Min")
def min(x, axis=None, keepdims=False, initial=None):  # noqa: A001 - Keras' name
    out = _reduce(MIN, x, axis, keepdims)
    if initial is None:
        return out

    return minimum(out, initial)


@top_level_op("Prod")
def prod(x, axis=None, keepdims=False, dtype=None):
    x = cast(x, dtype) if dtype is not None else _accumulated(x)
    return _reduce(PROD, x, axis, keepdims)


# ``any``/``all`` reduce 0/1 floats: ONNX has no boolean ReduceMax/ReduceMin before opset 20, and
# the existing reductions bring their gradients (none flow through booleans) and lowerings.
@top_level_op("Any")
def any(x, axis=None, keepdims=False):  # noqa: A001 - Keras' name
    """Whether any element along ``axis`` is nonzero (Keras' ops), as a boolean tensor."""
    nonzero = cast(not_equal(x, 0), "float32")
    return greater(_reduce(MAX, nonzero, axis, keepdims), 0.0)


@top_level_op("All")
def all(x, axis=None, keepdims=False):  # noqa: A001 - Keras' name
    """Whether every element along ``axis`` is nonzero (Keras' ops), as a boolean tensor."""
    nonzero = cast(not_equal(x, 0), "float32")
    return greater(_reduce(MIN, nonzero, axis, keepdims), 0.0)


def _prod_without(x, axes):
    """For each element, the product of the *other* elements reduced with it (exact with zeros)."""
    rest = [i for i in range(x.ndim) if i not in axes]
    moved = np.transpose(x, rest + list(axes))
    flat = moved.reshape(moved.shape[: len(rest)] + (-1,))
    ones = np.ones(flat.shape[:-1] + (1,), x.dtype)
    left = np.concatenate([ones, np.cumprod(flat, -1)[..., :-1]], -1)
    right = np.concatenate([np.cumprod(flat[..., ::-1], -1)[..., :-1][..., ::-1], ones], -1)
    return np.transpose((left * right).reshape(moved.shape), np.argsort(rest + list(axes)))


class ArgReduce(Primitive):
    differentiable = False  # integer indices

    def __init__(self, name: str, fn, onnx_op: str):
        self.name = name
        self.fn = fn
        self.onnx_op = onnx_op

    def infer(self, specs, axis, keepdims):
        (x,) = specs
        return [TensorSpec(_reduced_shape(x.shape, (axis,), keepdims), "int32")]

    def forward(self, x, axis, keepdims):
        # np.asarray: a full reduction gives a NumPy scalar; keep it an array like `Reduce`.
        return np.asarray(self.fn(x, axis=axis, keepdims=keepdims), dtype="int32")

    def vjp(self, cotangents, inputs, outputs, axis, keepdims):
        return [None]

    def to_onnx(self, ctx, ins, outs, axis, keepdims):
        i64 = ctx.node(self.onnx_op, ins, axis=axis, keepdims=int(keepdims), select_last_index=0)[0]
        ctx.node("Cast", [i64], outs, to=ctx.onnx_dtype("int32"))


ARGMAX = ArgReduce("argmax", np.argmax, "ArgMax")
ARGMIN = ArgReduce("argmin", np.argmin, "ArgMin")


def _arg_reduce(prim, x, axis, keepdims):

    if not hasattr(x, "shape"):
        x = np.asarray(x)
    if axis is None:
        # Over the flattened tensor; keepdims keeps every axis (size 1), as NumPy and Keras do.
        ndim = len(x.shape)
        out = apply(prim, [reshape(x, (-1,))], axis=0, keepdims=False)[0]
        return reshape(out, (1,) * ndim) if keepdims else out
    return apply(prim, [x], axis=normalize_axis(axis, len(x.shape)), keepdims=bool(keepdims))[0]


@top_level_op("Argmax")
def argmax(x, axis=None, keepdims=False):
    return _arg_reduce(ARGMAX, x, axis, keepdims)


@top_level_op("Argmin")
def argmin(x, axis=None, keepdims=False):
    return _arg_reduce(ARGMIN, x, axis, keepdims)
