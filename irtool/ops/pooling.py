"""Pooling primitives: ``max_pool`` and ``average_pool`` over 1, 2 or 3 spatial axes.

Both take ``pool_size``, ``strides`` (tuples, one entry per spatial axis), ``padding``
(``"valid"`` or ``"same"``) and ``data_format``. ``"same"`` pads like TensorFlow and ONNX's
``SAME_UPPER`` (the odd pixel goes at the end) and the average excludes the padding (ONNX
``count_include_pad=0``). The IR stays in Keras layout: the lowering wraps the NCHW-only ONNX
ops in ``Transpose`` nodes for ``channels_last``; the layout pass removes them.
"""

from __future__ import annotations

import itertools
import math

import numpy as np

from irtool.ir.dtypes import is_float
from irtool.ir.spec import TensorSpec
from irtool.ops import fast_kernels
from irtool.ops.conv_utils import conv_output_length, conv_pads, standardize_data_format
from irtool.ops.core import Primitive, apply
from irtool.ops.operation import top_level_op


def standardize_tuple(value, n: int, name: str, allow_zero: bool = False) -> tuple:
    """An int or ``n`` ints, all > 0 (or >= 0), with the messages of Keras'
    ``argument_validation.standardize_tuple``; unlike it (and ``conv_utils.standardize_tuple``),
    an element that is not an int (``2.0``, ``"2"``) is an error."""
    error = f"The `{name}` argument must be a tuple of {n} integers. Received {name}={value}"
    if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
        values = (int(value),) * n
    else:
        try:
            values = tuple(value)
        except TypeError:
            raise ValueError(error) from None
        if len(values) != n:
            raise ValueError(error)
        for v in values:
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)):
                raise ValueError(f"{error}including element {v} of type {type(v)}")
        values = tuple(int(v) for v in values)
    bad = {v for v in values if (v < 0 if allow_zero else v <= 0)}
    if bad:
        raise ValueError(
            f"{error}, including values {bad} that do not satisfy `value {'>= 0' if allow_zero else '> 0'}`"
        )
    return values


def spatial_axes(ndim: int, data_format: str) -> list:
    """The spatial axes of a rank-``ndim`` tensor (batch, spatial..., channels or batch, channels, spatial...)."""
    return list(range(1, ndim - 1)) if data_format == "channels_last" else list(range(2, ndim))


def to_channels_first(ndim: int) -> list:
    """The perm taking a channels_last tensor to channels_first ([0, 3, 1, 2] in 2D)."""
    return [0, ndim - 1, *range(1, ndim - 1)]


def to_channels_last(ndim: int) -> list:
    return [0, *range(2, ndim), 1]


def lower_nchw(ctx, op_type, ins: list, outs: list, data_format: str, ndim: int, **attrs) -> None:
    """Emit ``op_type`` (an NCHW-only ONNX op) on ``ins[0]``, transposing around it for channels_last.

    ``op_type`` may also be a callable ``emit(x, outputs)`` that emits the NCHW computation."""
    if callable(op_type):
        emit = op_type
    else:

        def emit(x, outputs):
            return ctx.node(op_type, [x, *ins[1:]], outputs, **attrs)

    if data_format == "channels_first":
        emit(ins[0], outs)
        return
    x = ctx.node("Transpose", [ins[0]], perm=to_channels_first(ndim))[0]
    y = emit(x, 1)[0]
    ctx.node("Transpose", [y], outs, perm=to_channels_last(ndim))


def dynamic_same_pads(ctx, x: str, pool_size, strides) -> str:
    """ONNX ``pads`` (int64, NCHW ``x``) of ``"same"`` computed from ``x``'s run-time shape."""
    d = len(pool_size)
    sizes = ctx.node("Slice", [ctx.node("Shape", [x])[0], ctx.int64s([2]), ctx.int64s([2 + d])])[0]
    s = ctx.int64s(strides)
    out = ctx.node("Div", [ctx.node("Add", [sizes, ctx.int64s([v - 1 for v in strides])])[0], s])[0]
    span = ctx.node(
        "Add", [ctx.node("Mul", [ctx.node("Sub", [out, ctx.int64s([1] * d)])[0], s])[0], ctx.int64s(pool_size)]
    )[0]
    total = ctx.node("Max", [ctx.node("Sub", [span, sizes])[0], ctx.int64s([0] * d)])[0]
    before = ctx.node("Div", [total, ctx.int64s([2] * d)])[0]
    after = ctx.node("Sub", [total, before])[0]
    zeros = ctx.int64s([0, 0])
    return ctx.node("Concat", [zeros, before, zeros, after], axis=0)[0]


class Pool(Primitive):
    """Max or average pooling in Keras layout (``mode`` is ``"max"`` or ``"average"``)."""

    layout_sensitive = True
    layout_inputs = (0,)

    def __init__(self, name: str, mode: str, onnx_op: str):
        self.name = name
        self.mode = mode
        self.onnx_op = onnx_op

    def infer(self, specs, pool_size, strides, padding, data_format):
        (x,) = specs
        rank = len(pool_size) + 2
        if len(x.shape) != rank:
            raise ValueError(
                f"`{self.name}` with pool_size={pool_size} expects inputs of rank {rank} "
                f"(batch, {len(pool_size)} spatial axes, channels). Received input shape: {x.shape}"
            )
        if not is_float(x.dtype):
            raise ValueError(f"`{self.name}` needs a float input. Received dtype={x.dtype}")
        shape = list(x.shape)
        for axis, k, s in zip(spatial_axes(rank, data_format), pool_size, strides):
            out = conv_output_length(x.shape[axis], k, s, 1, padding)
            if out is not None and out <= 0:
                raise ValueError(
                    f"Computed output size would be zero or negative. Received: `inputs.shape={x.shape}`, "
                    f"`pool_size={pool_size}`, `strides={strides}`, `padding={padding}`."
                )
            shape[axis] = out
        return [TensorSpec(tuple(shape), x.dtype)]

    def _geometry(self, x, pool_size, strides, padding, data_format):
        """Spatial axes, their sizes, the pooled sizes and the ``(before, after)`` pads."""
        axes = spatial_axes(x.ndim, data_format)
        sizes = [x.shape[a] for a in axes]
        outs = [conv_output_length(n, k, s, 1, padding) for n, k, s in zip(sizes, pool_size, strides)]
        if min(outs) <= 0:
            raise ValueError(f"`{self.name}` of an input of shape {x.shape} with pool_size={pool_size} is empty.")
        pads = [conv_pads(n, k, s, 1, padding) for n, k, s in zip(sizes, pool_size, strides)]
        return axes, sizes, outs, pads

    @staticmethod
    def _padded_layout(x, axes, sizes, pads):
        """The padded shape and the index of ``x`` inside it (None when nothing is padded)."""
        if all(p == (0, 0) for p in pads):
            return x.shape, None
        shape = list(x.shape)
        inner = [slice(None)] * x.ndim
        for a, (lo, hi), n in zip(axes, pads, sizes):
            shape[a] = n + lo + hi
            inner[a] = slice(lo, lo + n)
        return tuple(shape), tuple(inner)

    @staticmethod
    def _window_views(ndim, axes, pool_size, strides, outs):
        """One strided index of the padded input per window offset (row-major over the window)."""
        for offsets in itertools.product(*(range(k) for k in pool_size)):
            key = [slice(None)] * ndim
            for a, o, s, m in zip(axes, offsets, strides, outs):
                key[a] = slice(o, o + s * (m - 1) + 1, s)
            yield tuple(key)

    @staticmethod
    def _counts(x, axes, sizes, pool_size, strides, outs, pads):
        """Window sizes without the padding (for ``average`` with ``"same"``): a product of per-axis counts."""
        counts = np.ones((1,) * x.ndim, dtype=x.dtype)
        for a, (lo, _), n, k, s, m in zip(axes, pads, sizes, pool_size, strides, outs):
            start = np.arange(m) * s - lo
            count = np.minimum(start + k, n) - np.maximum(start, 0)
            shape = [1] * x.ndim
            shape[a] = m
            counts = counts * count.astype(x.dtype).reshape(shape)
        return counts

    def forward(self, x, pool_size, strides, padding, data_format):
        axes, sizes, outs, pads = self._geometry(x, pool_size, strides, padding, data_format)
        shape, inner = self._padded_layout(x, axes, sizes, pads)
        if inner is not None:
            fill = -np.inf if self.mode == "max" else 0
            padded = np.full(shape, fill, dtype=x.dtype)
            padded[inner] = x
        else:
            padded = x
        # Loop over the window offsets (not over pixels): each step is one strided view.
        acc = None
        for key in self._window_views(x.ndim, axes, pool_size, strides, outs):
            view = padded[key]
            if acc is None:
                acc = np.array(view)
            elif self.mode == "max":
                np.maximum(acc, view, out=acc)
            else:
                acc += view
        if self.mode == "max":
            return acc
        if inner is None:
            return (acc / x.dtype.type(math.prod(pool_size))).astype(x.dtype)
        return (acc / self._counts(x, axes, sizes, pool_size, strides, outs, pads)).astype(x.dtype)

    def vjp(self, cotangents, inputs, outputs, pool_size, strides, padding, data_format):
        """Max: each output's gradient goes to the *first* maximum of its window in row-major order
        (so ties, e.g. the zeros after a ReLU, send it to one input only), which is where PyTorch's
        CPU kernel and TensorFlow's MaxPoolGrad send it. Average: spread evenly over the window's
        real (unpadded) inputs. A large batch is done in two halves at once (``by_halves``):
        the samples are independent, and NumPy's loops run on one core each."""
        (g,), (x,), (y,) = cotangents, inputs, outputs
        attrs = dict(pool_size=pool_size, strides=strides, padding=padding, data_format=data_format)
        gx = np.zeros(x.shape, dtype=x.dtype)
        fast_kernels.by_halves(lambda a, b: self._vjp(g[a:b], x[a:b], y[a:b], gx[a:b], **attrs), len(x), x.size)
        return [gx]

    def _vjp(self, g, x, y, gx, pool_size, strides, padding, data_format):
        """Write the gradient of ``x`` into ``gx`` (zeros)."""
        axes, sizes, outs, pads = self._geometry(x, pool_size, strides, padding, data_format)
        shape, inner = self._padded_layout(x, axes, sizes, pads)
        g = np.asarray(g, dtype=x.dtype)
        grad = gx if inner is None else np.zeros(shape, dtype=x.dtype)
        keys = self._window_views(x.ndim, axes, pool_size, strides, outs)
        if self.mode == "average":
            if inner is None:
                g = g / x.dtype.type(math.prod(pool_size))
            else:
                g = g / self._counts(x, axes, sizes, pool_size, strides, outs, pads)
            for key in keys:
                grad[key] += g
            if inner is not None:
                gx[...] = grad[inner]
            return
        if inner is not None:
            padded = np.full(shape, -np.inf, dtype=x.dtype)
            padded[inner] = x
        else:
            padded = x
        overlap = any(s < k for s, k in zip(strides, pool_size))
        hit = np.empty(y.shape, dtype=bool)
        free = None  # outputs whose maximum has not been found yet
        for key in keys:
            np.equal(padded[key], y, out=hit)
            if free is None:
                free = ~hit
            else:
                hit &= free
                free ^= hit
            if overlap:
                grad[key] += g * hit
            else:  # disjoint windows: each input is written at most once
                np.multiply(g, hit, out=grad[key])
        if inner is not None:
            gx[...] = grad[inner]

    def to_onnx(self, ctx, ins, outs, pool_size, strides, padding, data_format):
        attrs = {"kernel_shape": list(pool_size), "strides": list(strides)}
        attrs["auto_pad"] = "SAME_UPPER" if padding == "same" else "VALID"
        if self.mode == "average":
            attrs["count_include_pad"] = 0
        elif padding == "same" and any(k < s for k, s in zip(pool_size, strides)):
            # ONNX Runtime's MaxPool rejects the negative SAME_UPPER padding that a window smaller
            # than its stride can need: pad with -inf explicitly (from the run-time shape) instead.
            fill = ctx.const(np.asarray(-np.inf, dtype=ctx.dtype_of(ins[0])))

            def emit(x, outputs):
                padded = ctx.node("Pad", [x, dynamic_same_pads(ctx, x, pool_size, strides), fill], mode="constant")[0]
                return ctx.node("MaxPool", [padded], outputs, kernel_shape=list(pool_size), strides=list(strides))

            lower_nchw(ctx, emit, ins, outs, data_format, len(pool_size) + 2)
            return
        lower_nchw(ctx, self.onnx_op, ins, outs, data_format, len(pool_size) + 2, **attrs)


MAX_POOL = Pool("max_pool", "max", "MaxPool")
AVERAGE_POOL = Pool("average_pool", "average", "AveragePool")


def _pool(prim, inputs, pool_size, strides, padding, data_format):
    if not hasattr(inputs, "shape"):
        inputs = np.asarray(inputs, dtype="float32")
    data_format = standardize_data_format(data_format)
    padding = str(padding).lower()
    if padding not in ("valid", "same"):
        raise ValueError(f"Argument `padding` must be either 'valid' or 'same'. Received: padding={padding}")
    num_spatial = len(inputs.shape) - 2
    if num_spatial not in (1, 2, 3):
        raise ValueError(
            "Inputs to pooling op must have ndim=3, 4 or 5, corresponding to 1D, 2D and 3D inputs. "
            f"Received input shape: {tuple(inputs.shape)}."
        )
    pool_size = standardize_tuple(pool_size, num_spatial, "pool_size")
    strides = pool_size if strides is None else standardize_tuple(strides, num_spatial, "strides")
    return apply(prim, [inputs], pool_size=pool_size, strides=strides, padding=padding, data_format=data_format)[0]


@top_level_op("MaxPool")
def max_pool(inputs, pool_size, strides=None, padding="valid", data_format=None):
    """Max pooling over the spatial axes of a rank 3, 4 or 5 tensor (Keras' ``ops.max_pool``)."""
    return _pool(MAX_POOL, inputs, pool_size, strides, padding, data_format)


@top_level_op("AveragePool")
def average_pool(inputs, pool_size, strides=None, padding="valid", data_format=None):
    """Average pooling; with ``padding="same"`` the padding is left out of each average."""
    return _pool(AVERAGE_POOL, inputs, pool_size, strides, padding, data_format)
