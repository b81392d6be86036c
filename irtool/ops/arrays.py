"""Layout-agnostic array primitives: ``pad`` and ``repeat`` (used by the reshaping layers),
``tile`` and ``broadcast_to``; and Keras' rearrangements composed of slices, transposes and
concatenations (``flip``, ``roll``, ``swapaxes``, ``moveaxis``, ``ravel``, ``hstack``, ``vstack``)
and constructors (``eye``, ``identity``, ``tri``, ``linspace``).

None reads a ``data_format``: all act on explicit axes, so they work in any layout
(ZeroPadding pads the spatial axes, UpSampling repeats them, RepeatVector repeats a new axis).
"""

from __future__ import annotations

import builtins

import numpy as np

from irtool.ir.dtypes import is_float, standardize_dtype
from irtool.ir.spec import TensorSpec, broadcast_shapes, normalize_axis
from irtool.ops import core
from irtool.ops.core import Primitive, SymbolicTensor, apply, as_operand
from irtool.ops.elementwise import add, subtract
from irtool.ops.gradients import unbroadcast
from irtool.ops.operation import top_level_op
from irtool.ops.shape import concatenate, expand_dims, get_item, ones_like, reshape, transpose, where

PAD_MODES = {"constant": "constant", "reflect": "reflect", "edge": "edge", "symmetric": None, "wrap": "wrap"}


class Pad(Primitive):
    """``np.pad`` with ``pads = ((before, after), ...)`` (one pair per axis, all >= 0)."""

    name = "pad"

    def infer(self, specs, pads, mode, value):
        (x,) = specs
        if len(pads) != len(x.shape):
            raise ValueError(
                f"`pad` needs one (before, after) pair per axis. Received pad_width={pads} for shape {x.shape}"
            )
        shape = []
        for d, (lo, hi) in zip(x.shape, pads):
            if mode in ("reflect", "symmetric", "wrap") and d is not None and max(lo, hi) > (d - (mode == "reflect")):
                raise ValueError(f"`pad` in mode {mode!r} cannot pad an axis of size {d} by {(lo, hi)}.")
            shape.append(None if d is None else d + lo + hi)
        return [TensorSpec(tuple(shape), x.dtype)]

    def forward(self, x, pads, mode, value):
        if mode != "constant":
            return np.pad(x, pads, mode=mode)
        out = np.full([d + lo + hi for d, (lo, hi) in zip(x.shape, pads)], value, dtype=x.dtype)
        out[tuple(builtins.slice(lo, lo + d) for d, (lo, _) in zip(x.shape, pads))] = x
        return out

    def vjp(self, cotangents, inputs, outputs, pads, mode, value):
        """The interior slice of the cotangent, plus (non-constant modes) each padded entry's
        gradient folded back onto its source: axis by axis in reverse (``np.pad`` pads the axes
        in order, each reading the previous ones' padding), one slice add per padded position."""
        (x,) = inputs
        g = np.asarray(cotangents[0], dtype=x.dtype)
        if mode == "constant":
            return [g[tuple(builtins.slice(lo, lo + d) for d, (lo, _) in zip(x.shape, pads))]]
        for axis in reversed(range(x.ndim)):
            lo, hi = pads[axis]
            if not (lo or hi):
                continue
            n = x.shape[axis]
            sources = np.pad(np.arange(n), (lo, hi), mode=mode)  # the source index of each position
            lead = (builtins.slice(None),) * axis
            folded = g[lead + (builtins.slice(lo, lo + n),)].copy()
            for p in (*range(lo), *range(lo + n, lo + n + hi)):
                folded[lead + (sources[p],)] += g[lead + (p,)]
            g = folded
        return [g]

    def to_onnx(self, ctx, ins, outs, pads, mode, value):
        onnx_mode = PAD_MODES[mode]
        if onnx_mode is None or (onnx_mode == "wrap" and ctx.opset < 19):
            ctx.fail(self, f"ONNX Pad has no mode {mode!r} at opset {ctx.opset}")
        if not any(lo or hi for lo, hi in pads):
            ctx.node("Identity", ins, outs)
            return
        args = [ins[0], ctx.int64s([lo for lo, _ in pads] + [hi for _, hi in pads])]
        if mode == "constant":
            args.append(ctx.const(np.asarray(value, dtype=ctx.dtype_of(ins[0]))))
        ctx.node("Pad", args, outs, mode=onnx_mode)

    def sink_transpose(self, attrs: dict, perm: tuple):
        """For layout passes: with ``x == transpose(x2, perm)``, ``pad(x) == transpose(pad(x2, attrs'), perm)``."""
        pads = [None] * len(perm)
        for i, p in enumerate(perm):
            pads[p] = attrs["pads"][i]
        return dict(attrs, pads=tuple(pads)), perm


PAD = Pad()


def _pad_width(pad_width, ndim: int) -> tuple:
    try:
        width = np.broadcast_to(np.asarray(pad_width, dtype=np.int64), (ndim, 2))
    except ValueError:
        raise ValueError(f"`pad_width` {pad_width!r} cannot be broadcast to shape ({ndim}, 2).") from None
    if (width < 0).any():
        raise ValueError(f"`pad_width` cannot hold negative values. Received: pad_width={pad_width}")
    return tuple((int(lo), int(hi)) for lo, hi in width)


@top_level_op("Pad")
def pad(x, pad_width, mode="constant", constant_values=None):
    """Pad ``x`` (Keras' ``ops.pad``): ``pad_width`` is an int, one pair, or one pair per axis."""
    x = as_operand(x)
    mode = str(mode).lower()
    if mode not in PAD_MODES:
        raise ValueError(f"`mode` must be one of {sorted(PAD_MODES)}. Received: mode={mode}")
    if constant_values is not None and mode != "constant":
        raise ValueError(
            "Argument `constant_values` can only be provided when `mode == 'constant'`. "
            f"Received: mode={mode}, constant_values={constant_values}"
        )
    value = 0 if constant_values is None else constant_values
    value = float(value) if is_float(str(x.dtype)) else int(value)
    return apply(PAD, [x], pads=_pad_width(pad_width, len(x.shape)), mode=mode, value=value)[0]


class Repeat(Primitive):
    """``np.repeat(x, repeats, axis)`` with an int ``repeats``: each entry ``repeats`` times in a row."""

    name = "repeat"

    def infer(self, specs, repeats, axis):
        (x,) = specs
        if not 0 <= axis < len(x.shape):
            raise ValueError(f"`repeat` axis {axis} is out of range for shape {x.shape}.")
        shape = list(x.shape)
        shape[axis] = None if shape[axis] is None else shape[axis] * repeats
        return [TensorSpec(tuple(shape), x.dtype)]

    def forward(self, x, repeats, axis):
        return np.repeat(x, repeats, axis=axis)

    def vjp(self, cotangents, inputs, outputs, repeats, axis):
        (x,), g = inputs, cotangents[0]
        shape = x.shape[:axis] + (x.shape[axis], repeats) + x.shape[axis + 1 :]
        return [g.reshape(shape).sum(axis=axis + 1).astype(x.dtype, copy=False)]

    def to_onnx(self, ctx, ins, outs, repeats, axis):
        if repeats == 1:
            ctx.node("Identity", ins, outs)
            return
        size = ctx.static_dim(ins[0], axis)
        if size is not None:
            # Static size: one Gather with constant indices (exact, any dtype and layout).
            indices = np.arange(size * repeats, dtype=np.int64) // repeats
            ctx.node("Gather", [ins[0], ctx.const(indices)], outs, axis=axis)
            return
        # Unknown size: a new axis after `axis`, expanded to `repeats`, merged with `axis`.
        big = np.iinfo(np.int64).max
        shape = ctx.node("Shape", ins)[0]
        head = ctx.node("Slice", [shape, ctx.int64s([0]), ctx.int64s([axis])])[0]
        dim = ctx.node("Slice", [shape, ctx.int64s([axis]), ctx.int64s([axis + 1])])[0]
        tail = ctx.node("Slice", [shape, ctx.int64s([axis + 1]), ctx.int64s([big])])[0]
        expanded_shape = ctx.node("Concat", [head, dim, ctx.int64s([repeats]), tail], axis=0)[0]
        expanded = ctx.node("Expand", [ctx.unsqueeze(ins[0], [axis + 1])[0], expanded_shape])[0]
        merged = ctx.node("Mul", [dim, ctx.int64s([repeats])])[0]
        target = ctx.node("Concat", [head, merged, tail], axis=0)[0]
        ctx.node("Reshape", [expanded, target], outs)

    def sink_transpose(self, attrs: dict, perm: tuple):
        """For layout passes: with ``x == transpose(x2, perm)``, ``repeat(x) == transpose(repeat(x2, attrs'), perm)``."""
        return dict(attrs, axis=perm[attrs["axis"]]), perm


REPEAT = Repeat()


@top_level_op("Repeat")
def repeat(x, repeats, axis=None):
    """Repeat each element ``repeats`` times along ``axis`` (flattened first when ``axis`` is None)."""

    x = as_operand(x)
    if isinstance(repeats, (list, tuple, np.ndarray)) or hasattr(repeats, "shape"):
        values = np.asarray(repeats).reshape(-1)
        if values.size != 1:
            raise ValueError(f"irtool's `repeat` takes one integer `repeats`. Received: repeats={repeats}")
        repeats = values[0]
    if isinstance(repeats, bool) or not isinstance(repeats, (int, np.integer)) or repeats < 0:
        raise ValueError(f"`repeats` must be a non-negative integer. Received: repeats={repeats}")
    if axis is None:
        x = reshape(x, (-1,))
        axis = 0
    return apply(REPEAT, [x], repeats=int(repeats), axis=normalize_axis(axis, len(x.shape)))[0]


class Tile(Primitive):
    """``np.tile(x, repeats)`` with one repeat count per axis (ONNX ``Tile``)."""

    name = "tile"

    def infer(self, specs, repeats):
        (x,) = specs
        if len(repeats) != len(x.shape):
            raise ValueError(f"`tile` needs one repeat count per axis. Received repeats={repeats} for shape {x.shape}")
        return [TensorSpec(tuple(None if d is None else d * r for d, r in zip(x.shape, repeats)), x.dtype)]

    def forward(self, x, repeats):
        return np.tile(x, repeats)

    def vjp(self, cotangents, inputs, outputs, repeats):
        (x,), g = inputs, cotangents[0]
        # out.reshape(r0, d0, r1, d1, ...): sum over the copies (the even axes).
        split = [v for r, d in zip(repeats, x.shape) for v in (r, d)]
        return [g.reshape(split).sum(axis=tuple(range(0, 2 * x.ndim, 2))).astype(x.dtype, copy=False)]

    def to_onnx(self, ctx, ins, outs, repeats):
        if all(r == 1 for r in repeats):
            ctx.node("Identity", ins, outs)
        else:
            ctx.node("Tile", [ins[0], ctx.int64s(repeats)], outs)

    def sink_transpose(self, attrs: dict, perm: tuple):
        """For layout passes: with ``x == transpose(x2, perm)``, ``tile(x) == transpose(tile(x2, attrs'), perm)``."""
        repeats = [1] * len(perm)
        for i, p in enumerate(perm):
            repeats[p] = attrs["repeats"][i]
        return dict(attrs, repeats=tuple(repeats)), perm


TILE = Tile()


@top_level_op("Tile")
def tile(x, repeats):
    """Repeat the whole of ``x`` ``repeats`` times (NumPy's ``tile``: missing leading counts are 1,
    and a longer ``repeats`` adds leading axes)."""

    x = as_operand(x)
    repeats = (repeats,) if isinstance(repeats, (int, np.integer)) else tuple(repeats)
    if any(isinstance(r, bool) or not isinstance(r, (int, np.integer)) or r < 0 for r in repeats):
        raise ValueError(f"`repeats` must hold non-negative integers. Received: repeats={repeats}")
    ndim = len(x.shape)
    if len(repeats) > ndim:
        x = expand_dims(x, tuple(range(len(repeats) - ndim)))
    repeats = (1,) * (len(x.shape) - len(repeats)) + tuple(int(r) for r in repeats)
    return apply(TILE, [x], repeats=repeats)[0]


class BroadcastTo(Primitive):
    """``np.broadcast_to(x, shape)`` for a static ``shape`` (ONNX ``Expand``)."""

    name = "broadcast_to"

    def infer(self, specs, shape):
        (x,) = specs
        try:
            out = broadcast_shapes(x.shape, shape)
        except ValueError:
            out = None
        if out is None or len(out) != len(shape) or any(d is not None and d != s for d, s in zip(out, shape)):
            raise ValueError(f"`broadcast_to` cannot broadcast shape {x.shape} to {shape}.")
        return [TensorSpec(tuple(shape), x.dtype)]

    def forward(self, x, shape):
        return np.array(np.broadcast_to(x, shape))  # a writable array of its own, as every op returns

    def vjp(self, cotangents, inputs, outputs, shape):
        (x,) = inputs
        return [unbroadcast(cotangents[0], x.shape).astype(x.dtype, copy=False) if is_float(str(x.dtype)) else None]

    def to_onnx(self, ctx, ins, outs, shape):
        ctx.node("Expand", [ins[0], ctx.int64s(shape)], outs)


BROADCAST_TO = BroadcastTo()


@top_level_op("BroadcastTo")
def broadcast_to(x, shape):
    """``x`` broadcast to the static ``shape``, NumPy's rules."""
    shape = (shape,) if isinstance(shape, (int, np.integer)) else tuple(int(d) for d in shape)
    return apply(BROADCAST_TO, [as_operand(x)], shape=shape)[0]


def _axes_of(axis, ndim: int) -> tuple:
    if axis is None:
        return tuple(range(ndim))
    axes = (axis,) if isinstance(axis, (int, np.integer)) else tuple(axis)
    return tuple(normalize_axis(a, ndim) for a in axes)


@top_level_op("Flip")
def flip(x, axis=None):
    """Reverse the order of elements along ``axis`` (every axis when ``None``)."""
    x = as_operand(x)
    axes = _axes_of(axis, len(x.shape))
    return get_item(
        x, tuple(builtins.slice(None, None, -1) if a in axes else builtins.slice(None) for a in range(len(x.shape)))
    )


@top_level_op("Fliplr")
def fliplr(x):
    return flip(x, axis=1)


@top_level_op("Flipud")
def flipud(x):
    return flip(x, axis=0)


@top_level_op("Roll")
def roll(x, shift, axis=None):
    """Shift elements along ``axis`` cyclically (the flattened array when ``None``), as ``np.roll``."""
    x = as_operand(x)
    if axis is None:
        shape = tuple(x.shape)
        return reshape(roll(reshape(x, (-1,)), shift, axis=0), shape if None not in shape else (-1, *shape[1:]))
    shifts = (shift,) if isinstance(shift, (int, np.integer)) else tuple(shift)
    axes = _axes_of(axis, len(x.shape))
    if len(shifts) == 1:
        shifts = shifts * len(axes)
    if len(shifts) != len(axes):
        raise ValueError(f"`roll` needs one shift per axis. Received: shift={shift}, axis={axis}")
    for s, a in zip(shifts, axes):
        size = x.shape[a]
        if size is None:  # the cyclic shift needs the size (slices would clamp, and roll nothing)
            raise ValueError(f"`roll` needs a static size on axis {a}. Received: shape={tuple(x.shape)}")
        s = int(s) % size if size else int(s)
        if s == 0:
            continue
        lead = tuple(builtins.slice(None) for _ in range(a))
        x = concatenate(
            [get_item(x, (*lead, builtins.slice(-s, None))), get_item(x, (*lead, builtins.slice(None, -s)))], axis=a
        )
    return x


@top_level_op("Swapaxes")
def swapaxes(x, axis1, axis2):
    x = as_operand(x)
    perm = list(range(len(x.shape)))
    a, b = normalize_axis(axis1, len(perm)), normalize_axis(axis2, len(perm))
    perm[a], perm[b] = perm[b], perm[a]
    return transpose(x, perm)


@top_level_op("Moveaxis")
def moveaxis(x, source, destination):
    """Move axes to new places, the others keeping their order (``np.moveaxis``)."""
    x = as_operand(x)
    ndim = len(x.shape)
    source, destination = _axes_of(source, ndim), _axes_of(destination, ndim)
    if len(source) != len(destination):
        raise ValueError(f"`moveaxis` needs as many destinations as sources. Received: {source} and {destination}")
    order = [a for a in range(ndim) if a not in source]
    for d, s in sorted(zip(destination, source)):
        order.insert(d, s)
    return transpose(x, order)


@top_level_op("Ravel")
def ravel(x):
    return reshape(as_operand(x), (-1,))


@top_level_op("Hstack")
def hstack(xs):
    """Join along the second axis (the first for 1-D arrays), as ``np.hstack``."""
    xs = [as_operand(x) for x in xs]
    return concatenate(xs, axis=0 if all(len(x.shape) == 1 for x in xs) else 1)


@top_level_op("Vstack")
def vstack(xs):
    """Join along the first axis, 1-D arrays as rows, as ``np.vstack``."""
    xs = [as_operand(x) for x in xs]
    return concatenate([reshape(x, (1, -1)) if len(x.shape) == 1 else x for x in xs], axis=0)


def _static_ints(what: str, *values):
    if any(isinstance(v, SymbolicTensor) for v in values):
        raise ValueError(f"`ops.{what}` needs static sizes (Python ints), as its result is a constant.")


def eye(N, M=None, k=0, dtype=None):
    """A 2-D array with ones on the ``k``-th diagonal (float32 by default)."""
    _static_ints("eye", N, M, k)
    return np.eye(N, M, k, dtype=standardize_dtype(dtype))


def identity(n, dtype=None):
    return eye(n, dtype=dtype)


def tri(N, M=None, k=0, dtype=None):
    """Ones at and below the ``k``-th diagonal (float32 by default)."""
    _static_ints("tri", N, M, k)
    return np.tri(N, M, k, dtype=standardize_dtype(dtype))


def linspace(start, stop, num=50, endpoint=True, retstep=False, dtype=None, axis=0):
    """``num`` evenly spaced values from ``start`` to ``stop`` (float32 by default)."""
    _static_ints("linspace", start, stop, num)
    result = np.linspace(start, stop, num, endpoint=endpoint, retstep=retstep, axis=axis)
    values, step = result if retstep else (result, None)
    values = values.astype(standardize_dtype(dtype))
    return (values, step) if retstep else values


class StopGradient(Primitive):
    """The identity whose gradient is zero (``keras.ops.stop_gradient``); ONNX ``Identity``."""

    name = "stop_gradient"

    def __init__(self):
        self.differentiable = False

    def infer(self, specs):
        return [TensorSpec(specs[0].shape, specs[0].dtype)]

    def forward(self, x):
        return x

    def vjp(self, cotangents, inputs, outputs):
        return [None]

    def to_onnx(self, ctx, ins, outs):
        ctx.node("Identity", ins, outs)


STOP_GRADIENT = StopGradient()


@top_level_op("StopGradient")
def stop_gradient(variable):
    """``variable``'s value, through which no gradient flows."""
    return apply(STOP_GRADIENT, [as_operand(variable)])[0]


@top_level_op("Copy")
def copy(x):
    """A copy of ``x`` (on symbolic tensors, a new tensor of the same value)."""
    return core.identity(x) if isinstance(x, SymbolicTensor) else np.array(x)


class TakeAlongAxis(Primitive):
    """``np.take_along_axis`` with ``indices`` of ``x``'s rank (ONNX ``GatherElements``)."""

    name = "take_along_axis"

    def infer(self, specs, axis):
        x, indices = specs
        if len(x.shape) != len(indices.shape):
            raise ValueError(f"`take_along_axis` needs indices of x's rank. Received: {x.shape} and {indices.shape}.")
        if not indices.dtype.startswith(("int", "uint")):
            raise ValueError(f"`take_along_axis` needs integer indices. Received: dtype={indices.dtype}.")
        return [TensorSpec(indices.shape, x.dtype)]  # take_along_axis broadcast the indices already

    def forward(self, x, indices, axis):
        return np.take_along_axis(x, _wrapped(indices, x.shape[axis]), axis=axis)

    def vjp(self, cotangents, inputs, outputs, axis):
        (g,), (x, indices) = cotangents, inputs
        if not is_float(str(x.dtype)):
            return [None, None]
        grad = np.zeros_like(x)
        index = list(np.indices(indices.shape, sparse=True))
        index[axis] = _wrapped(indices, x.shape[axis])
        np.add.at(grad, tuple(index), g)  # repeated indices add up
        return [grad, None]

    def to_onnx(self, ctx, ins, outs, axis):
        ctx.node("GatherElements", ins, outs, axis=axis)


def _wrapped(indices, size):
    return np.where(indices < 0, indices + size, indices)


TAKE_ALONG_AXIS = TakeAlongAxis()


@top_level_op("TakeAlongAxis")
def take_along_axis(x, indices, axis=None):
    """Pick values along ``axis`` at ``indices`` (broadcast against ``x`` on the other axes), as
    ``np.take_along_axis``; ``axis=None`` works on the flattened ``x``."""
    x, indices = as_operand(x), as_operand(indices)
    if axis is None:
        x, indices, axis = reshape(x, (-1,)), reshape(indices, (-1,)), 0
    axis = normalize_axis(axis, len(x.shape))
    if len(indices.shape) != len(x.shape):
        raise ValueError(f"`take_along_axis` needs indices of x's rank. Received: {x.shape} and {indices.shape}.")
    stretched = [a for a in range(len(x.shape)) if a != axis and indices.shape[a] == 1 and x.shape[a] != 1]
    if any(x.shape[a] is None for a in stretched):
        # x's size there is known at run time only: add zeros of x's shape (with the axis at 1),
        # which broadcasts the indices in the graph (ONNX's GatherElements does not broadcast)
        lead = tuple(builtins.slice(0, 1) if a == axis else builtins.slice(None) for a in range(len(x.shape)))
        zeros = subtract(ones_like(get_item(x, lead), indices.dtype), np.asarray(1, indices.dtype))
        indices = add(indices, zeros)
    elif stretched:
        shape = tuple(d if a == axis or a not in stretched else x.shape[a] for a, d in enumerate(indices.shape))
        indices = broadcast_to(indices, shape)
    return apply(TAKE_ALONG_AXIS, [x, indices], axis=axis)[0]


@top_level_op("Slice")
def slice(inputs, start_indices, shape):  # noqa: A001 - Keras' name
    """The block of ``shape`` starting at ``start_indices`` (static ints, one per axis)."""
    inputs = as_operand(inputs)
    if len(start_indices) != len(shape) or len(shape) != len(inputs.shape):
        raise ValueError(
            "`slice` needs one start index and one size per axis. Received: "
            f"start_indices={start_indices}, shape={shape} for an input of shape {inputs.shape}"
        )
    key = tuple(builtins.slice(int(s), int(s) + int(n) if int(n) >= 0 else None) for s, n in zip(start_indices, shape))
    return get_item(inputs, key)


@top_level_op("SliceUpdate")
def slice_update(inputs, start_indices, updates):
    """``inputs`` with the block at ``start_indices`` replaced by ``updates`` (a new tensor)."""
    inputs, updates = as_operand(inputs), as_operand(updates)
    if len(start_indices) != len(inputs.shape) or len(updates.shape) != len(inputs.shape):
        raise ValueError(
            "`slice_update` needs one start index per axis and updates of the input's rank. Received: "
            f"start_indices={start_indices}, updates of shape {updates.shape} for an input of shape {inputs.shape}"
        )
    widths = []
    for axis, (start, size, length) in enumerate(zip(start_indices, inputs.shape, updates.shape)):
        if start == 0 and (length == size or (length is None and size is None)):
            widths.append((0, 0))
        elif size is None or length is None:
            raise ValueError(f"`slice_update` needs static sizes on axis {axis}, which it updates in part.")
        else:
            widths.append((int(start), size - int(start) - length))
    if isinstance(inputs, np.ndarray) and isinstance(updates, np.ndarray):
        out = inputs.copy()
        out[tuple(builtins.slice(a, None if b == 0 else -b) for a, b in widths)] = updates
        return out
    mask = pad(ones_like(updates, "bool"), widths, constant_values=False)
    return where(mask, pad(updates, widths), inputs)
