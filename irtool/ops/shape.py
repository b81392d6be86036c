"""Shape primitives: identity, reshape, transpose, expand/squeeze, concatenate, slicing,
gather, where and clip, plus the public functions built from them (stack, split, ...)."""

from __future__ import annotations

import builtins

import numpy as np

from irtool.ir.dtypes import standardize_dtype
from irtool.ir.spec import TensorSpec, broadcast_shapes, normalize_axis
from irtool.ops.core import (  # noqa: F401 - identity lives in core
    IDENTITY,
    Identity,
    Primitive,
    SymbolicTensor,
    apply,
    as_operand,
    identity,
)
from irtool.ops.elementwise import cast, equal, promote
from irtool.ops.gradients import is_differentiable, unbroadcast
from irtool.ops.operation import top_level_op


def _shape(x) -> tuple:
    return tuple(x.shape)


class Reshape(Primitive):
    """Reshape to ``shape``; ``-1`` is inferred and ``None`` copies the input's dim there."""

    name = "reshape"

    def infer(self, specs, shape):
        (x,) = specs
        for i, d in enumerate(shape):
            if d is None and i >= len(x.shape):
                raise ValueError(f"Cannot reshape a tensor of shape {x.shape} to {shape}: no dim {i} to keep.")
        if list(shape).count(-1) > 1:
            raise ValueError(f"Only one dimension of the target shape can be -1. Received: shape={shape}")
        kept = {i for i, d in enumerate(shape) if d is None}
        out = [x.shape[i] if i in kept else d for i, d in enumerate(shape)]
        rest_in = [d for i, d in enumerate(x.shape) if i not in kept]
        rest_out = [d for i, d in enumerate(shape) if i not in kept and d != -1]
        size_in = None if None in rest_in else int(np.prod(rest_in, dtype=np.int64))
        size_out = int(np.prod(rest_out, dtype=np.int64))
        if -1 in shape:
            if size_in is not None:
                if size_out == 0 or size_in % size_out:
                    raise ValueError(f"Cannot reshape a tensor of shape {x.shape} to {tuple(shape)}.")
                out[list(shape).index(-1)] = size_in // size_out
            else:
                out[list(shape).index(-1)] = None
        elif size_in is not None and size_in != size_out:
            raise ValueError(
                f"Cannot reshape a tensor of shape {x.shape} ({size_in} elements) to {tuple(shape)} "
                f"({size_out} elements)."
            )
        return [TensorSpec(tuple(out), x.dtype)]

    def forward(self, x, shape):
        return x.reshape([x.shape[i] if d is None else d for i, d in enumerate(shape)])

    def vjp(self, cotangents, inputs, outputs, shape):
        return [cotangents[0].reshape(inputs[0].shape)]

    def to_onnx(self, ctx, ins, outs, shape):
        value = ctx.constant_value(ins[0])
        if value is not None:  # a weight or constant: fold now, no node
            ctx.add_initializer(outs[0], self.forward(value, shape))
            return
        if 0 in shape:
            target = [d if d is not None else ctx.fail(self, "literal 0 dims with kept dims") for d in shape]
            ctx.node("Reshape", [ins[0], ctx.int64s(target)], outs, allowzero=1)
        else:
            ctx.node("Reshape", [ins[0], ctx.int64s([0 if d is None else d for d in shape])], outs)


RESHAPE = Reshape()


@top_level_op("Reshape")
def reshape(x, newshape):
    """NumPy-style reshape (one ``-1`` allowed). ``None`` keeps the input's dim at that place."""
    if isinstance(newshape, int):
        newshape = (newshape,)
    newshape = tuple(None if d is None else int(d) for d in newshape)
    x = as_operand(x)
    if isinstance(x, SymbolicTensor) and x.shape and x.shape[0] is None and newshape and newshape[0] == -1:
        # Keep the batch dim symbolic when the rest of the shape pins the -1 to it.
        if None not in x.shape[1:] and -1 not in newshape[1:] and None not in newshape[1:]:
            if int(np.prod(x.shape[1:])) == int(np.prod(newshape[1:])):
                newshape = (None,) + newshape[1:]
    return apply(RESHAPE, [x], shape=newshape)[0]


class Transpose(Primitive):
    name = "transpose"

    def infer(self, specs, perm):
        (x,) = specs
        if sorted(perm) != list(range(len(x.shape))):
            raise ValueError(f"`axes` {perm} is not a permutation of the {len(x.shape)} axes of shape {x.shape}.")
        return [TensorSpec(tuple(x.shape[p] for p in perm), x.dtype)]

    def forward(self, x, perm):
        return np.transpose(x, perm)

    def vjp(self, cotangents, inputs, outputs, perm):
        return [np.transpose(cotangents[0], np.argsort(perm))]

    def to_onnx(self, ctx, ins, outs, perm):
        value = ctx.constant_value(ins[0])
        if value is not None:  # a weight or constant: fold now, no node
            ctx.add_initializer(outs[0], np.transpose(value, perm))
            return
        ctx.node("Transpose", ins, outs, perm=list(perm))


TRANSPOSE = Transpose()


@top_level_op("Transpose")
def transpose(x, axes=None):
    x = as_operand(x)
    ndim = len(x.shape)
    perm = tuple(reversed(range(ndim))) if axes is None else tuple(normalize_axis(a, ndim) for a in axes)
    return apply(TRANSPOSE, [x], perm=perm)[0]


class ExpandDims(Primitive):
    name = "expand_dims"

    def infer(self, specs, axes):
        shape = list(specs[0].shape)
        for a in axes:
            shape.insert(a, 1)
        return [TensorSpec(tuple(shape), specs[0].dtype)]

    def forward(self, x, axes):
        return np.expand_dims(x, axes)

    def vjp(self, cotangents, inputs, outputs, axes):
        return [cotangents[0].reshape(inputs[0].shape)]

    def to_onnx(self, ctx, ins, outs, axes):
        ctx.unsqueeze(ins[0], list(axes), outs)


EXPAND_DIMS = ExpandDims()


@top_level_op("ExpandDims")
def expand_dims(x, axis):
    x = as_operand(x)
    axes = (axis,) if isinstance(axis, int) else tuple(axis)
    ndim = len(x.shape) + len(axes)
    axes = tuple(sorted(normalize_axis(a, ndim) for a in axes))
    return apply(EXPAND_DIMS, [x], axes=axes)[0]


class Squeeze(Primitive):
    name = "squeeze"

    def infer(self, specs, axes):
        (x,) = specs
        for a in axes:
            if x.shape[a] not in (1, None):
                raise ValueError(f"Cannot squeeze axis {a} of shape {x.shape}: its size is {x.shape[a]}, not 1.")
        return [TensorSpec(tuple(d for i, d in enumerate(x.shape) if i not in axes), x.dtype)]

    def forward(self, x, axes):
        return np.squeeze(x, axes)

    def vjp(self, cotangents, inputs, outputs, axes):
        return [cotangents[0].reshape(inputs[0].shape)]

    def to_onnx(self, ctx, ins, outs, axes):
        ctx.squeeze(ins[0], list(axes), outs)


SQUEEZE = Squeeze()


@top_level_op("Squeeze")
def squeeze(x, axis=None):
    x = as_operand(x)
    ndim = len(x.shape)
    if axis is None:
        axes = tuple(i for i, d in enumerate(x.shape) if d == 1)
    else:
        axes = tuple(sorted(normalize_axis(a, ndim) for a in ((axis,) if isinstance(axis, int) else axis)))
    return apply(SQUEEZE, [x], axes=axes)[0]


class Concatenate(Primitive):
    name = "concatenate"

    def infer(self, specs, axis):
        first = specs[0]
        ndim = len(first.shape)
        total = 0
        for i, s in enumerate(specs):
            if len(s.shape) != ndim or s.dtype != first.dtype:
                raise ValueError(
                    f"All inputs to `concatenate` must have the same rank and dtype. Received: input 0 "
                    f"{first.dtype}{first.shape} and input {i} {s.dtype}{s.shape}."
                )
            for k in range(ndim):
                if k != axis and None not in (s.shape[k], first.shape[k]) and s.shape[k] != first.shape[k]:
                    raise ValueError(
                        "A `Concatenate` layer requires inputs with matching shapes except for the concatenation "
                        f"axis. Received: input_shape={[tuple(t.shape) for t in specs]}"
                    )
            total = None if total is None or s.shape[axis] is None else total + s.shape[axis]
        shape = list(first.shape)
        for k in range(ndim):
            if shape[k] is None:
                shape[k] = next((s.shape[k] for s in specs if s.shape[k] is not None), None)
        shape[axis] = total
        return [TensorSpec(tuple(shape), first.dtype)]

    def forward(self, *xs, axis):
        return np.concatenate(xs, axis=axis)

    def kernel(self, attrs):
        axis = attrs["axis"]
        return lambda *xs: np.concatenate(xs, axis=axis)

    def vjp(self, cotangents, inputs, outputs, axis):
        bounds = np.cumsum([x.shape[axis] for x in inputs])[:-1]
        return list(np.split(cotangents[0], bounds, axis=axis))

    def to_onnx(self, ctx, ins, outs, axis):
        ctx.node("Concat", ins, outs, axis=axis)


CONCATENATE = Concatenate()


def _same_dtype(xs):

    xs = [as_operand(x) for x in xs]
    dtype = xs[0].dtype if isinstance(xs[0], SymbolicTensor) else standardize_dtype(xs[0].dtype)
    for x in xs[1:]:
        _, _, dtype = promote(np.zeros((), dtype), x)

    return [cast(x, dtype) for x in xs]


@top_level_op("Concatenate")
def concatenate(xs, axis=0):
    xs = _same_dtype(list(xs))
    if len(xs) == 1:
        return identity(xs[0]) if isinstance(xs[0], SymbolicTensor) else xs[0]
    axis = normalize_axis(axis, len(xs[0].shape))
    return apply(CONCATENATE, xs, axis=axis)[0]


@top_level_op("Stack")
def stack(x, axis=0):
    """Join tensors of one shape along a new axis."""
    xs = _same_dtype(list(x))
    ndim = len(xs[0].shape) + 1
    axis = normalize_axis(axis, ndim)
    parts = [apply(EXPAND_DIMS, [t], axes=(axis,))[0] for t in xs]
    return parts[0] if len(parts) == 1 else apply(CONCATENATE, parts, axis=axis)[0]


# ---------------------------------------------------------------------------------------
# Slicing


class GetItem(Primitive):
    """Basic indexing with a tuple of ints, slices, ``None`` and ``...`` (already expanded:
    the key holds one entry per input axis, plus ``None`` for new axes)."""

    name = "get_item"

    def infer(self, specs, key):
        (x,) = specs
        shape = []
        axis = 0
        for k in key:
            if k is None:
                shape.append(1)
                continue
            dim = x.shape[axis]
            if isinstance(k, int):
                if dim is not None and not -dim <= k < dim:
                    raise IndexError(f"Index {k} is out of bounds for axis {axis} with size {dim}.")
            else:
                start, stop, step = k
                shape.append(len(range(*slice(start, stop, step).indices(dim))) if dim is not None else None)
            axis += 1
        return [TensorSpec(tuple(shape), x.dtype)]

    def forward(self, x, key):
        return x[tuple(k if k is None or isinstance(k, int) else slice(*k) for k in key)]

    def sink_transpose(self, attrs: dict, perm: tuple):
        """For layout passes: slices only (no int/None entries) commute with a transpose."""
        key = attrs["key"]
        if len(key) != len(perm) or any(k is None or isinstance(k, int) for k in key):
            return None
        new_key = [None] * len(perm)
        for i, p in enumerate(perm):
            new_key[p] = key[i]
        return dict(attrs, key=tuple(new_key)), perm

    def vjp(self, cotangents, inputs, outputs, key):
        # Basic indexing never repeats an element, so assignment scatters exactly; new axes
        # (None entries) only reshape.
        real = tuple(k if isinstance(k, int) else slice(*k) for k in key if k is not None)
        grad = np.zeros_like(inputs[0])
        grad[real] = cotangents[0].reshape(np.shape(grad[real]))
        return [grad]

    def to_onnx(self, ctx, ins, outs, key):
        starts, ends, axes, steps, squeeze_axes, new_axes = [], [], [], [], [], []
        axis = 0
        out_axis = 0
        for k in key:
            if k is None:
                new_axes.append(out_axis)
                out_axis += 1
                continue
            if isinstance(k, int):
                starts.append(k)
                ends.append(k + 1 if k != -1 else np.iinfo(np.int64).max)
                steps.append(1)
                axes.append(axis)
                squeeze_axes.append(axis)
            else:
                start, stop, step = k
                step = 1 if step is None else step
                big = np.iinfo(np.int64).max
                if start is None:
                    start = 0 if step > 0 else big
                if stop is None:
                    stop = big if step > 0 else -big
                if (start, stop, step) != (0, big, 1):
                    starts.append(start)
                    ends.append(stop)
                    steps.append(step)
                    axes.append(axis)
                out_axis += 1
            axis += 1
        x = ins[0]
        stages = [bool(axes), bool(squeeze_axes), bool(new_axes)]
        last = max((i for i, s in enumerate(stages) if s), default=-1)
        if last == -1:
            ctx.node("Identity", [x], outs)
            return
        if axes:
            args = [x, ctx.int64s(starts), ctx.int64s(ends), ctx.int64s(axes), ctx.int64s(steps)]
            x = ctx.node("Slice", args, outs if last == 0 else 1)[0]
        if squeeze_axes:
            x = ctx.squeeze(x, squeeze_axes, outs if last == 1 else 1)[0]
        if new_axes:
            ctx.unsqueeze(x, new_axes, outs)


GET_ITEM = GetItem()


def normalize_key(key, ndim: int) -> tuple:
    """Expand ``...`` and turn slices into ``(start, stop, step)`` tuples (hashable attrs)."""
    if not isinstance(key, tuple):
        key = (key,)
    n_real = builtins.sum(1 for k in key if k is not None and k is not Ellipsis)
    if builtins.sum(1 for k in key if k is Ellipsis) > 1:
        raise IndexError("An index can only have a single ellipsis ('...').")
    if n_real > ndim:
        raise IndexError(f"Too many indices: the tensor has {ndim} dimensions but {n_real} were indexed.")
    out = []
    for k in key:
        if k is Ellipsis:
            out.extend([(None, None, None)] * (ndim - n_real))
        elif k is None:
            out.append(None)
        elif isinstance(k, slice):
            parts = (k.start, k.stop, k.step)
            if not all(p is None or isinstance(p, (int, np.integer)) for p in parts):
                raise TypeError(f"Slice bounds must be ints or None. Received: {k}")
            out.append(tuple(None if p is None else int(p) for p in parts))
        elif isinstance(k, (int, np.integer)) and not isinstance(k, bool):
            out.append(int(k))
        else:
            raise TypeError(f"Unsupported index {k!r} of type {type(k).__name__}: use ints, slices, None or '...'.")
    if Ellipsis not in key:
        out.extend([(None, None, None)] * (ndim - n_real))
    return tuple(out)


@top_level_op("GetItem")
def get_item(x, key):
    x = as_operand(x)
    return apply(GET_ITEM, [x], key=normalize_key(key, len(x.shape)))[0]


@top_level_op("Split")
def split(x, indices_or_sections, axis=0):
    x = as_operand(x)
    ndim = len(x.shape)
    axis = normalize_axis(axis, ndim)
    size = x.shape[axis]
    if isinstance(indices_or_sections, int):
        if size is None or size % indices_or_sections:
            raise ValueError(f"Cannot split axis {axis} of shape {x.shape} into {indices_or_sections} equal sections.")
        step = size // indices_or_sections
        bounds = [i * step for i in range(indices_or_sections + 1)]
    else:
        bounds = [0, *indices_or_sections, size]
    parts = []
    for start, stop in zip(bounds[:-1], bounds[1:]):
        key = [(None, None, None)] * ndim
        key[axis] = (start, stop, None)
        parts.append(apply(GET_ITEM, [x], key=tuple(key))[0])
    return parts


@top_level_op("Unstack")
def unstack(x, num=None, axis=0):
    x = as_operand(x)
    ndim = len(x.shape)
    axis = normalize_axis(axis, ndim)
    num = x.shape[axis] if num is None else num
    if num is None:
        raise ValueError(f"Cannot unstack an axis of unknown size. Received: shape={x.shape}, axis={axis}")
    out = []
    for i in range(num):
        key = [(None, None, None)] * ndim
        key[axis] = i
        out.append(apply(GET_ITEM, [x], key=tuple(key))[0])
    return out


class Take(Primitive):
    """``np.take(x, indices, axis)`` (ONNX ``Gather``); negative indices wrap."""

    name = "take"

    def infer(self, specs, axis):
        x, idx = specs
        if not (idx.dtype.startswith("int") or idx.dtype.startswith("uint")):
            raise ValueError(f"`take` needs integer indices. Received: dtype={idx.dtype}")
        return [TensorSpec(x.shape[:axis] + idx.shape + x.shape[axis + 1 :], x.dtype)]

    def forward(self, x, idx, axis):
        return np.take(x, idx, axis=axis)

    def vjp(self, cotangents, inputs, outputs, axis):
        x, idx = inputs
        grad = np.zeros_like(x)
        moved = np.moveaxis(grad, axis, 0)
        g = np.moveaxis(cotangents[0], list(range(axis, axis + idx.ndim)), list(range(idx.ndim)))
        np.add.at(moved, np.where(idx < 0, idx + x.shape[axis], idx), g)
        return [grad, None]

    def to_onnx(self, ctx, ins, outs, axis):
        ctx.node("Gather", ins, outs, axis=axis)


TAKE = Take()


@top_level_op("Take")
def take(x, indices, axis=None):
    x = as_operand(x)
    indices = as_operand(indices)
    if axis is None:
        x = reshape(x, (-1,))
        axis = 0
    return apply(TAKE, [x, indices], axis=normalize_axis(axis, len(x.shape)))[0]


class Where(Primitive):
    elementwise = True
    name = "where"

    def infer(self, specs):
        c, a, b = specs
        if c.dtype != "bool":
            raise ValueError(f"`where` needs a bool condition. Received: dtype={c.dtype}")
        if a.dtype != b.dtype:
            raise ValueError(f"`where` needs branches of one dtype. Received: {a.dtype} and {b.dtype}")
        try:
            shape = broadcast_shapes(broadcast_shapes(c.shape, a.shape), b.shape)
        except ValueError:
            raise ValueError(
                "The condition and branches of `where` could not be broadcast together. "
                f"Received: shapes {c.shape}, {a.shape} and {b.shape}."
            ) from None
        return [TensorSpec(shape, a.dtype)]

    def forward(self, c, a, b):
        return np.where(c, a, b)

    def vjp(self, cotangents, inputs, outputs):
        (g,), (c, a, b) = cotangents, inputs
        if not is_differentiable(a):
            return [None, None, None]
        zero = np.zeros((), g.dtype)
        return [None, unbroadcast(np.where(c, g, zero), a.shape), unbroadcast(np.where(c, zero, g), b.shape)]

    def to_onnx(self, ctx, ins, outs):
        if ctx.dtype_of(ins[1]) == "bool":
            # ONNX Runtime has no bool Where kernel: (c and a) or (not c and b).
            c, a, b = ins
            picked = ctx.node("And", [c, a])[0]
            other = ctx.node("And", [ctx.node("Not", [c])[0], b])[0]
            ctx.node("Or", [picked, other], outs)
        else:
            ctx.node("Where", ins, outs)


WHERE = Where()


@top_level_op("Where")
def where(condition, x1, x2):

    a, b, _ = promote(x1, x2)
    return apply(WHERE, [cast(as_operand(condition), "bool"), a, b])[0]


class Clip(Primitive):
    elementwise = True
    name = "clip"

    def infer(self, specs, low, high):
        return [specs[0]]

    def forward(self, x, low, high):
        return np.clip(x, np.asarray(low, x.dtype), np.asarray(high, x.dtype))

    def vjp(self, cotangents, inputs, outputs, low, high):
        (g,), (x,) = cotangents, inputs
        if not is_differentiable(x):
            return [None]
        return [g * ((x >= low) & (x <= high))]

    def to_onnx(self, ctx, ins, outs, low, high):
        dt = ctx.dtype_of(ins[0])
        ctx.node("Clip", [ins[0], ctx.const(np.asarray(low, dt)), ctx.const(np.asarray(high, dt))], outs)


CLIP = Clip()


@top_level_op("Clip")
def clip(x, x_min, x_max):
    return apply(CLIP, [as_operand(x)], low=float(x_min), high=float(x_max))[0]


# ---------------------------------------------------------------------------------------
# Constructors and conversions (eager: their arguments are static)


def zeros(shape, dtype=None):
    """A constant array of zeros; inside traced code it becomes a graph constant."""
    return np.zeros(_static_shape(shape, "zeros"), dtype=standardize_dtype(dtype))


def ones(shape, dtype=None):
    return np.ones(_static_shape(shape, "ones"), dtype=standardize_dtype(dtype))


def full(shape, fill_value, dtype=None):
    return np.full(_static_shape(shape, "full"), fill_value, dtype=standardize_dtype(dtype))


def _static_shape(shape, fn: str) -> tuple:
    shape = (shape,) if isinstance(shape, int) else tuple(shape)
    if any(d is None for d in shape):
        raise ValueError(
            f"`ops.{fn}` needs a static shape. Received: shape={shape}. Inside a custom layer, give the "
            "Input a static batch size (`Input(batch_shape=...)`) or build the value from a tensor."
        )
    return shape


def zeros_like(x, dtype=None):
    return _full_like(x, 0, dtype)


def ones_like(x, dtype=None):
    return _full_like(x, 1, dtype)


def full_like(x, fill_value, dtype=None):
    """An array of ``x``'s shape filled with ``fill_value`` (``x``'s dtype by default)."""
    return _full_like(x, fill_value, dtype)


def _full_like(x, value, dtype):

    x = as_operand(x)
    dtype = standardize_dtype(dtype or x.dtype)
    if not isinstance(x, SymbolicTensor):
        return np.full(x.shape, value, dtype=dtype)
    # A `where` on x's shape with a constant in both branches: unlike `x * 0 + value` it does
    # not turn inf or NaN entries of x into NaN.
    fill = np.asarray(value, dtype)
    return where(cast(x, "bool"), fill, fill)


def arange(start, stop=None, step=1, dtype=None):
    if stop is None:
        start, stop = 0, start
    if dtype is None:
        dtype = "float32" if any(isinstance(v, float) for v in (start, stop, step)) else "int32"
    return np.arange(start, stop, step, dtype=standardize_dtype(dtype))


@top_level_op("OneHot")
def one_hot(x, num_classes, axis=-1, dtype=None):

    x = as_operand(x)
    classes = np.arange(num_classes, dtype=x.dtype if isinstance(x, SymbolicTensor) else np.asarray(x).dtype)
    ndim = len(x.shape) + 1
    axis = normalize_axis(axis, ndim)
    shape = [1] * ndim
    shape[axis] = num_classes
    return cast(equal(expand_dims(x, axis), classes.reshape(shape)), dtype or "float32")


def shape(x) -> tuple:
    """The static shape (``None`` for unknown dims), as Keras returns for symbolic tensors."""
    return tuple(x.shape)


def convert_to_tensor(x, dtype=None):
    if isinstance(x, SymbolicTensor):
        return x if dtype is None else _cast(x, dtype)
    if hasattr(x, "_value"):
        x = x._value
    return np.asarray(x, dtype=None if dtype is None else standardize_dtype(dtype))


def _cast(x, dtype):

    return cast(x, dtype)


def convert_to_numpy(x) -> np.ndarray:
    """A NumPy copy of an array, Variable or eager result (symbolic tensors raise)."""
    if isinstance(x, SymbolicTensor):
        x.__array__()
    if hasattr(x, "_value"):
        return np.array(x._value)
    return np.array(x)


def ndim(x) -> int:
    """The number of axes."""
    return len(as_operand(x).shape)
