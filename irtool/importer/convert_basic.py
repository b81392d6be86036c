"""Converters for ONNX's elementwise, shape and reduction ops (opsets 13-21), written in ``irtool.ops``.

Each is the inverse of the corresponding primitive's lowering where one exists (``Relu`` ->
``relu``, ``Gemm`` -> ``matmul`` + ``add``, which irtool's fusion lowers back to one ``Gemm``),
and an exact composition of irtool ops otherwise (``ThresholdedRelu`` -> ``where``).
"""

from __future__ import annotations

import functools

import numpy as np
from onnx import helper

from irtool import ops
from irtool.importer import dynamic_shapes
from irtool.importer.registry import converter
from irtool.ir.spec import normalize_axis
from irtool.ops.elementwise import truncate_divide
from irtool.ops.prelu import prelu

_UNARY = {
    "Relu": ops.relu,
    "Sigmoid": ops.sigmoid,
    "Tanh": ops.tanh,
    "Exp": ops.exp,
    "Log": ops.log,
    "Sqrt": ops.sqrt,
    "Abs": ops.abs,
    "Neg": ops.negative,
    "Floor": ops.floor,
    "Ceil": ops.ceil,
    "Erf": ops.erf,
    "Reciprocal": ops.reciprocal,
    "Sin": ops.sin,
    "Cos": ops.cos,
    "Softplus": ops.softplus,
    "Softsign": ops.softsign,
    "Sign": ops.sign,
    "Round": ops.round,
    "Not": ops.logical_not,
}

_BINARY = {
    "Add": ops.add,
    "Sub": ops.subtract,
    "Mul": ops.multiply,
    "Pow": ops.power,
    "Equal": ops.equal,
    "Greater": ops.greater,
    "Less": ops.less,
    "GreaterOrEqual": ops.greater_equal,
    "LessOrEqual": ops.less_equal,
    "And": ops.logical_and,
    "Or": ops.logical_or,
    "Xor": ops.logical_xor,
}

_VARIADIC = {"Max": ops.maximum, "Min": ops.minimum, "Sum": ops.add}


def _register_simple():
    for op_type, fn in _UNARY.items():
        converter(op_type)(lambda node, fn=fn: fn(node[0]))
    for op_type, fn in _BINARY.items():
        converter(op_type)(lambda node, fn=fn: fn(node[0], node[1]))
    for op_type, fn in _VARIADIC.items():
        converter(op_type)(lambda node, fn=fn: functools.reduce(fn, node.all()))


_register_simple()


@converter("Div")
def _div(node):
    x, y = node[0], node[1]
    if np.issubdtype(np.dtype(str(x.dtype)), np.integer):  # ONNX rounds integer quotients toward zero
        return truncate_divide(x, y)
    return ops.divide(x, y)


@converter("Mod", fmod=0)
def _mod(node, fmod):
    if fmod:
        raise node.error("fmod=1 (C's remainder) is not supported; irtool's mod follows Python's sign rule")
    return ops.mod(node[0], node[1])


@converter("Mean")
def _mean(node):
    values = node.all()
    return ops.divide(functools.reduce(ops.add, values), np.asarray(len(values), str(values[0].dtype)))


@converter("Identity", "Dropout")
def _identity(node, **_):
    # Dropout imports in its inference form (as ONNX Runtime runs it); its mask output is not read.
    return node[0]


@converter("Where")
def _where(node):
    return ops.where(node[0], node[1], node[2])


@converter("Cast", saturate=1)
def _cast(node, to, saturate):
    return ops.cast(node[0], str(helper.tensor_dtype_to_np_dtype(to)))


@converter("Clip", static=(1, 2))
def _clip(node):
    x = node[0]
    dtype = str(x.dtype)
    low, high = node.static(1, "min"), node.static(2, "max")
    if np.issubdtype(np.dtype(dtype), np.floating):
        return ops.clip(x, -np.inf if low is None else low.item(), np.inf if high is None else high.item())
    if low is not None:
        x = ops.maximum(x, low.astype(dtype))
    if high is not None:
        x = ops.minimum(x, high.astype(dtype))
    return x


# -- activations with attributes ----------------------------------------------------------------

SELU_ALPHA, SELU_GAMMA = 1.67326319217681884765625, 1.05070102214813232421875


@converter("Elu", alpha=1.0)
def _elu(node, alpha):
    return ops.elu(node[0], alpha)


@converter("LeakyRelu", alpha=0.01)
def _leaky_relu(node, alpha):
    return ops.leaky_relu(node[0], alpha)


@converter("Selu", alpha=SELU_ALPHA, gamma=SELU_GAMMA)
def _selu(node, alpha, gamma):
    x = node[0]
    if np.isclose(alpha, SELU_ALPHA, rtol=1e-6) and np.isclose(gamma, SELU_GAMMA, rtol=1e-6):
        return ops.selu(x)
    return ops.multiply(ops.elu(x, alpha), np.asarray(gamma, str(x.dtype)))


@converter("Celu", alpha=1.0)
def _celu(node, alpha):
    return ops.nn.celu(node[0], alpha)


@converter("HardSigmoid", alpha=0.2, beta=0.5)
def _hard_sigmoid(node, alpha, beta):
    x = node[0]
    if np.isclose(alpha, 1 / 6, rtol=1e-6) and beta == 0.5:
        return ops.hard_sigmoid(x)
    dtype = str(x.dtype)
    return ops.clip(ops.add(ops.multiply(x, np.asarray(alpha, dtype)), np.asarray(beta, dtype)), 0.0, 1.0)


@converter("HardSwish")
def _hard_swish(node):
    return ops.nn.hard_silu(node[0])


@converter("Gelu", approximate="none")
def _gelu(node, approximate):
    return ops.gelu(node[0], approximate=approximate == "tanh")


@converter("ThresholdedRelu", alpha=1.0)
def _thresholded_relu(node, alpha):
    x = node[0]
    return ops.where(ops.greater(x, np.asarray(alpha, str(x.dtype))), x, np.zeros((), str(x.dtype)))


@converter("Shrink", bias=0.0, lambd=0.5)
def _shrink(node, bias, lambd):
    x = node[0]
    dtype = str(x.dtype)
    zero, b = np.zeros((), dtype), np.asarray(bias, dtype)
    upper = ops.where(ops.greater(x, np.asarray(lambd, dtype)), ops.subtract(x, b), zero)
    return ops.where(ops.less(x, np.asarray(-lambd, dtype)), ops.add(x, b), upper)


@converter("Mish")
def _mish(node):
    x = node[0]
    return ops.multiply(x, ops.tanh(ops.softplus(x)))


@converter("PRelu")
def _prelu(node):
    x = node[0]
    slope_shape = node.shape(1)
    rank = len(x.shape)
    if len(slope_shape) == 1 and rank > 2 and slope_shape[0] not in (1, x.shape[-1]) and slope_shape[0] == x.shape[1]:
        # Opset 6's per-channel slope (C,) on (N, C, ...): stored as (C, 1, ...), which broadcasts.
        per_channel = (-1,) + (1,) * (rank - 2)
        slope = node.weight(1, to_irtool=lambda a: a.reshape(per_channel), as_ops=lambda t: ops.reshape(t, per_channel))
        return prelu(x, slope)
    return prelu(x, node[1])


@converter("Softmax", axis=-1)
def _softmax(node, axis):
    return ops.softmax(node[0], axis=axis)


@converter("LogSoftmax", axis=-1)
def _log_softmax(node, axis):
    return ops.log_softmax(node[0], axis=axis)


# -- matrix products ---------------------------------------------------------------------------


@converter("MatMul")
def _matmul(node):
    return ops.matmul(node[0], node[1])


@converter("Gemm", alpha=1.0, beta=1.0, transA=0, transB=0)
def _gemm(node, alpha, beta, transA, transB):
    a = node[0] if not transA else ops.transpose(node[0], (1, 0))
    # An initializer B is stored as a Dense kernel (K, N), so the export fuses it back into one Gemm.
    b = node.weight(1, to_irtool=(lambda w: w.T) if transB else None, as_ops=lambda t: _maybe_t(t, transB))
    y = ops.matmul(a, b)
    if alpha != 1.0:
        y = ops.multiply(y, np.asarray(alpha, str(y.dtype)))
    c = node[2]
    if c is not None:
        if beta != 1.0:
            c = ops.multiply(c, np.asarray(beta, str(y.dtype)))
        y = ops.add(y, c)
    return y


def _maybe_t(t, trans):
    return ops.transpose(t, (1, 0)) if trans else t


@converter("Einsum")
def _einsum(node, equation):
    equation = equation.decode() if isinstance(equation, bytes) else equation
    return ops.einsum(equation, *node.all())


# -- shapes ------------------------------------------------------------------------------------


def _dims(shape) -> list:
    return [None if d is None else int(d) for d in shape]


@converter("Reshape", static=(1,), allowzero=0)
def _reshape(node, allowzero):
    x, target = node[0], [int(d) for d in node.static(1, "the target shape")]
    shape = _dims(x.shape)
    if not allowzero:
        target = [shape[i] if d == 0 else d for i, d in enumerate(target)]
    # A None left by a 0 is irtool's "keep the input's dim here", ONNX's 0 exactly; one -1 at most.
    return ops.reshape(x, tuple(target))


@converter("Flatten", axis=1)
def _flatten(node, axis):
    x = node[0]
    shape = _dims(x.shape)
    axis = axis + len(shape) if axis < 0 else axis

    def size(dims):
        return None if None in dims else int(np.prod(dims, dtype=np.int64))

    outer, inner = size(shape[:axis]), size(shape[axis:])
    if inner is None and outer is None:
        raise node.error(f"cannot flatten input shape {tuple(shape)} at axis {axis}: unknown dims on both sides")
    return ops.reshape(x, (-1 if outer is None else outer, -1 if inner is None else inner))


@converter("Transpose")
def _transpose(node, perm=None):
    x = node[0]
    return ops.transpose(x, tuple(perm) if perm is not None else tuple(reversed(range(len(x.shape)))))


@converter("Squeeze", static=(1,))
def _squeeze(node):
    axes = node.static(1, "axes")
    return ops.squeeze(node[0], axis=None if axes is None else tuple(int(a) for a in axes))


@converter("Unsqueeze", static=(1,))
def _unsqueeze(node):
    x = node[0]
    axes = [int(a) for a in node.static(1, "axes")]
    rank = len(x.shape) + len(axes)
    for axis in sorted(normalize_axis(a, rank) for a in axes):
        x = ops.expand_dims(x, axis)
    return x


@converter("Concat")
def _concat(node, axis):
    return ops.concatenate([t for t in node.all() if t is not None], axis=axis)


@converter("Split", static=(1,))
def _split(node, axis=0, num_outputs=None):
    x, sizes = node[0], node.static(1, "split")
    if sizes is None:
        n = num_outputs or node.num_outputs
        size = x.shape[axis]
        if size is None:
            raise node.error(f"cannot split the unknown axis {axis} of shape {tuple(x.shape)}")
        step = -(-size // n)  # ONNX gives the last part what remains (opset 18)
        sizes = [min(step, size - i * step) for i in range(n)]
    bounds = np.cumsum([int(s) for s in sizes])[:-1]
    return ops.split(x, [int(b) for b in bounds], axis=axis)


_INT64_MAX = np.iinfo(np.int64).max


@converter("Slice", static=(1, 2, 3, 4))
def _slice(node):
    x = node[0]
    starts, ends = node.static(1, "starts"), node.static(2, "ends")
    rank = len(x.shape)
    axes = node.static(3, "axes")
    axes = range(len(starts)) if axes is None else [normalize_axis(int(a), rank) for a in axes]
    steps = node.static(4, "steps")
    steps = [1] * len(starts) if steps is None else steps
    key = [slice(None)] * rank
    for axis, start, end, step in zip(axes, starts, ends, steps):
        start, end, step = int(start), int(end), int(step)
        # ONNX clamps to the axis; Python slices clamp the same way, bar the int64 sentinels.
        if step > 0:
            end = None if end >= _INT64_MAX // 2 else end
        else:
            end = None if end <= -_INT64_MAX // 2 else end
        key[axis] = slice(start, end, step)
    return ops.get_item(x, tuple(key))


@converter("Gather", axis=0)
def _gather(node, axis):
    return ops.take(node[0], node[1], axis=axis)


@converter("Tile", static=(1,))
def _tile(node):
    return ops.tile(node[0], [int(r) for r in node.static(1, "repeats")])


@converter("Expand", static=(1,))
def _expand(node):
    x = node[0]
    if dynamic_shapes.is_dynamic(node.peek(1)):
        # ONNX's two-way broadcast is what multiplying by ones of the target shape does.
        return ops.multiply(x, _dynamic_ones(node, node.peek(1), str(x.dtype)))
    target = [int(d) for d in node.static(1, "shape")]
    rank = max(len(target), len(x.shape))
    mine = [1] * (rank - len(x.shape)) + _dims(x.shape)
    theirs = [1] * (rank - len(target)) + target
    if len(target) <= len(x.shape) and all(t == 1 or t == m for m, t in zip(mine, theirs)):
        return x  # nothing to broadcast (a target 1 keeps the input's dim, known or not)
    # ONNX's two-way broadcast is what multiplying by ones of the target shape does.
    return ops.multiply(x, np.ones(theirs, str(x.dtype)))


@converter("ConstantOfShape")
def _constant_of_shape(node, value=None):
    # Reached only for a shape computed from run-time dims; static shapes are folded at import.
    fill = np.zeros(1, np.float32) if value is None else np.asarray(value).reshape(-1)
    ones = _dynamic_ones(node, node.peek(0), str(fill.dtype))
    return ones if fill[0] == 1 else ops.multiply(ones, fill.reshape(()))


def _dynamic_ones(node, shape, dtype):
    try:
        return dynamic_shapes.ones(shape, dtype)
    except ValueError as error:
        raise node.error(str(error)) from error


@converter("Pad", static=(1, 2, 3), mode="constant")
def _pad(node, mode):
    x = node[0]
    rank = len(x.shape)
    pads = [int(p) for p in node.static(1, "pads")]
    axes = node.static(3, "axes")
    axes = list(range(rank)) if axes is None else [normalize_axis(int(a), rank) for a in axes]
    width = [[0, 0] for _ in range(rank)]
    for i, axis in enumerate(axes):
        width[axis] = [pads[i], pads[i + len(axes)]]
    if any(p < 0 for pair in width for p in pair):
        raise node.error(f"negative pads {pads} (cropping) are not supported")
    mode = mode.decode() if isinstance(mode, bytes) else mode
    value = node.static(2, "constant_value")
    if mode == "constant":
        return ops.pad(x, width, mode="constant", constant_values=0 if value is None else value.item())
    return ops.pad(x, width, mode=mode)


# -- reductions ------------------------------------------------------------------------------

_REDUCE = {
    "ReduceMean": ops.mean,
    "ReduceSum": ops.sum,
    "ReduceMax": ops.max,
    "ReduceMin": ops.min,
    "ReduceProd": ops.prod,
}


def _reduce_converter(fn):
    def convert(node, keepdims=1, noop_with_empty_axes=0, axes=None):
        x = node[0]
        if len(node) > 1 and node[1] is not None:
            axes = node.static(1, "axes")
        if axes is None or len(axes) == 0:
            if noop_with_empty_axes:
                return x
            axes = range(len(x.shape))
        return fn(x, axis=tuple(int(a) for a in axes), keepdims=bool(keepdims))

    return convert


for _op_type, _fn in _REDUCE.items():
    converter(_op_type, static=(1,))(_reduce_converter(_fn))


@converter("ReduceL2", static=(1,))
def _reduce_l2(node, keepdims=1, noop_with_empty_axes=0, axes=None):
    squared = ops.square(node[0])
    return ops.sqrt(_reduce_converter(ops.sum)(_Replaced(node, squared), keepdims, noop_with_empty_axes, axes))


class _Replaced:
    """``node`` with its first input replaced (a reduction of a computed value)."""

    def __init__(self, node, first):
        self._node, self._first = node, first

    def __len__(self):
        return len(self._node)

    def __getitem__(self, i):
        return self._first if i == 0 else self._node[i]

    def static(self, i, what="this input"):
        return self._node.static(i, what)


@converter("ArgMax", "ArgMin", axis=0, keepdims=1, select_last_index=0)
def _arg_reduce(node, axis, keepdims, select_last_index):
    if select_last_index:
        raise node.error("select_last_index=1 is not supported")
    fn = ops.argmax if node.op_type == "ArgMax" else ops.argmin
    y = fn(node[0], axis=axis, keepdims=bool(keepdims))
    return y if str(y.dtype) == "int64" else ops.cast(y, "int64")
