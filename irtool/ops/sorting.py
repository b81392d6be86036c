"""Sorting: ``top_k``, ``sort`` and ``argsort``, all one primitive, ONNX's ``TopK``.

``top_k`` gives the ``k`` largest (or smallest) values along an axis and their indices, ties in
index order as ONNX Runtime orders them; ``sort``/``argsort`` are ``top_k`` of the whole axis in
ascending order. The gradient of the values goes back to the places they were taken from.
"""

from __future__ import annotations

import numpy as np

from irtool.ir.dtypes import is_float
from irtool.ir.spec import TensorSpec, normalize_axis
from irtool.ops.core import Primitive, apply, as_operand
from irtool.ops.operation import top_level_op
from irtool.ops.shape import reshape


class TopK(Primitive):
    """``(values, indices)`` of the ``k`` largest (``largest=False``: smallest) entries along
    ``axis``, in that order; ``k=None`` takes the whole axis (a sort). Indices are int32, as Keras'."""

    name = "top_k"
    num_outputs = 2

    def infer(self, specs, k, axis, largest):
        (x,) = specs
        if x.dtype in ("string", "bool"):
            raise ValueError(f"`top_k` needs numbers. Received: dtype={x.dtype}.")
        shape = list(x.shape)
        if k is not None:
            if shape[axis] is not None and not 0 <= k <= shape[axis]:
                raise ValueError(f"`top_k` needs 0 <= k <= {shape[axis]} (axis {axis}). Received: k={k}.")
            shape[axis] = k
        return [TensorSpec(tuple(shape), x.dtype), TensorSpec(tuple(shape), "int32")]

    def forward(self, x, k, axis, largest):
        # A stable sort of a key that orders the wanted entries first keeps ties in index order;
        # ~x (not -x) reverses integers without overflowing at their minimum.
        key = (-x if is_float(str(x.dtype)) else ~x) if largest else x
        order = np.argsort(key, axis=axis, kind="stable")
        if k is not None:
            order = np.take(order, np.arange(k), axis=axis)
        return np.take_along_axis(x, order, axis=axis), order.astype(np.int32)

    def vjp(self, cotangents, inputs, outputs, k, axis, largest):
        (g, _), (x,), (_, indices) = cotangents, inputs, outputs
        if g is None or not is_float(str(x.dtype)):
            return [None]
        grad = np.zeros_like(x)
        np.put_along_axis(grad, indices.astype(np.int64), g, axis=axis)
        return [grad]

    def to_onnx(self, ctx, ins, outs, k, axis, largest):
        x = ins[0]
        if k is None:  # the whole axis, its size read at run time
            count = ctx.node("Slice", [ctx.node("Shape", [x])[0], ctx.int64s([axis]), ctx.int64s([axis + 1])])[0]
        else:
            count = ctx.int64s([k])
        indices = ctx.unique(f"{outs[1]}/int64")
        ctx.node("TopK", [x, count], [outs[0], indices], axis=axis, largest=int(largest), sorted=1)
        ctx.node("Cast", [indices], [outs[1]], to=ctx.onnx_dtype("int32"))


TOP_K = TopK()


def _top_k(x, k, axis, largest):
    x = as_operand(x)
    axis = normalize_axis(axis, len(x.shape))
    return apply(TOP_K, [x], k=None if k is None else int(k), axis=axis, largest=bool(largest))


@top_level_op("TopK")
def top_k(x, k, sorted=True):  # noqa: A002 - Keras' name
    """The ``k`` largest entries along the last axis and their int32 indices, largest first
    (``sorted=False`` allows any order; this one is sorted either way)."""
    values, indices = _top_k(x, k, -1, True)
    return values, indices


@top_level_op("Sort")
def sort(x, axis=-1):
    """``x`` sorted in ascending order along ``axis`` (of the flattened ``x`` when None)."""
    x, axis = _flattened(x, axis)
    return _top_k(x, None, axis, False)[0]


@top_level_op("Argsort")
def argsort(x, axis=-1):
    """The int32 indices that sort ``x`` along ``axis`` (ties in index order; flattened when None)."""
    x, axis = _flattened(x, axis)
    return _top_k(x, None, axis, False)[1]


def _flattened(x, axis):
    return (reshape(as_operand(x), (-1,)), 0) if axis is None else (x, axis)
