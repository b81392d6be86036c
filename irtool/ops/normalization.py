"""Normalization primitives and ops: batch normalization (inference form), layer
normalization, and ``normalize`` / ``moments`` composed from elementwise and reduce ops.

* ``batch_norm`` computes ``x * inv + res`` with ``inv = scale / sqrt(variance + eps)`` and
  ``res = offset - mean * inv`` (Keras' own formula), the statistics in broadcast shape, so it
  is elementwise (the layout pass sinks transposes through it). Its lowering folds ``inv`` and
  ``res`` into two per-channel constants when the statistics are initializers (always, for a
  layer's weights): one ``Mul`` and one ``Add``.
* ``layer_norm`` normalizes over a set of axes (stored negative, so the rule does not need the
  rank). It lowers to ONNX ``LayerNormalization`` (opset >= 17) when the axes are the trailing
  ones, and to ``ReduceMean``/``Sub``/``Mul``/``Sqrt``/``Div`` otherwise.
"""

from __future__ import annotations

import numpy as np

from irtool.ir.dtypes import is_float
from irtool.ir.spec import TensorSpec, normalize_axis
from irtool.ops.core import Primitive, apply
from irtool.ops.elementwise import abs as _abs
from irtool.ops.elementwise import cast, divide, maximum, power, sqrt, square, subtract
from irtool.ops.operation import top_level_op
from irtool.ops.reduce import mean as _mean
from irtool.ops.reduce import sum as _sum


def _as_tensor(x, dtype=None):
    if hasattr(x, "shape") and hasattr(x, "dtype"):
        return x if dtype is None else cast(x, dtype)
    return np.asarray(x, dtype=dtype or "float32")


def _check_float(name: str, x: TensorSpec) -> None:
    if not is_float(x.dtype):
        raise ValueError(f"`{name}` needs a floating-point input. Received: shape={x.shape}, dtype={x.dtype}")


# ---------------------------------------------------------------------------------------
# Batch normalization (inference: given statistics)


class BatchNorm(Primitive):
    """``(x - mean) / sqrt(variance + epsilon) * scale + offset``, statistics broadcast against ``x``.

    Inputs: ``x, mean, variance`` then ``scale`` if ``has_scale`` and ``offset`` if
    ``has_offset``. The statistics already have their broadcast shape (``(C,)`` for the last
    axis, ``(C, 1, 1)`` for channels-first images...), so the primitive is elementwise: the
    layout pass can move it past transposes by permuting the statistics (folded at export).
    """

    name = "batch_norm"
    elementwise = True

    def infer(self, specs, epsilon, has_scale, has_offset):
        x = specs[0]
        _check_float(self.name, x)
        names = ["mean", "variance"] + ["scale"] * has_scale + ["offset"] * has_offset
        if len(specs) != 1 + len(names):
            raise ValueError(f"`batch_norm` expects {1 + len(names)} inputs. Received: {len(specs)}.")
        for name, spec in zip(names, specs[1:]):
            fits = len(spec.shape) <= len(x.shape) and all(
                p in (1, None) or d in (p, None) for p, d in zip(spec.shape[::-1], x.shape[::-1])
            )
            if not fits:
                raise ValueError(
                    f"`batch_norm` needs `{name}` broadcastable to the input without changing its shape. "
                    f"Received: input shape {x.shape}, {name}.shape={spec.shape}"
                )
            if spec.dtype != x.dtype:
                raise ValueError(f"`batch_norm` needs `{name}` of dtype {x.dtype}. Received: {spec.dtype}")
        return [TensorSpec(x.shape, x.dtype)]

    @staticmethod
    def fold(mean, variance, scale, offset, epsilon):
        """``(inv, res)`` such that the output is ``x * inv + res`` (Keras' own formula)."""
        inv = np.asarray(1, variance.dtype) / np.sqrt(variance + np.asarray(epsilon, variance.dtype))
        if scale is not None:
            inv = inv * scale
        res = -mean * inv
        if offset is not None:
            res = res + offset
        return inv, res

    def forward(self, x, *params, epsilon, has_scale, has_offset):
        scale = params[2] if has_scale else None
        offset = params[2 + has_scale] if has_offset else None
        inv, res = self.fold(params[0], params[1], scale, offset, epsilon)
        return x * inv + res

    def to_onnx(self, ctx, ins, outs, epsilon, has_scale, has_offset):
        x, params = ins[0], ins[1:]
        values = [ctx.constant_value(p) for p in params]
        if all(v is not None for v in values):  # weights: fold into one scale and one shift
            scale = values[2] if has_scale else None
            offset = values[2 + has_scale] if has_offset else None
            inv, res = self.fold(values[0], values[1], scale, offset, epsilon)
            y = ctx.node("Mul", [x, ctx.const(inv, f"{ctx.scope}/scale")])[0]
            ctx.node("Add", [y, ctx.const(res, f"{ctx.scope}/shift")], outs)
            return
        dt = ctx.dtype_of(x)
        mean, variance = params[0], params[1]
        std = ctx.node("Sqrt", [ctx.node("Add", [variance, ctx.const(np.asarray(epsilon, dt))])[0]])[0]
        inv = ctx.node("Reciprocal", [std])[0]
        if has_scale:
            inv = ctx.node("Mul", [inv, params[2]])[0]
        res = ctx.node("Neg", [ctx.node("Mul", [mean, inv])[0]])[0]
        if has_offset:
            res = ctx.node("Add", [res, params[2 + has_scale]])[0]
        ctx.node("Add", [ctx.node("Mul", [x, inv])[0], res], outs)


BATCH_NORM = BatchNorm()


@top_level_op("BatchNorm")
def batch_normalization(x, mean, variance, axis, offset=None, scale=None, epsilon=1e-3):
    """Normalize ``x`` with given ``mean``/``variance`` of shape ``(C,)`` along ``axis`` (Keras' ops)."""
    x = _as_tensor(x)
    if not is_float(str(x.dtype)):
        x = cast(x, "float32")
    dtype = str(x.dtype)
    ndim = len(x.shape)
    axis = normalize_axis(axis, ndim)
    channels = x.shape[axis]
    inputs = [x]
    for name, param in (("mean", mean), ("variance", variance), ("scale", scale), ("offset", offset)):
        if param is None:
            continue
        param = _as_tensor(param, dtype)
        if len(param.shape) != 1 or None not in (channels, param.shape[0]) and param.shape[0] != channels:
            raise ValueError(
                f"`batch_normalization` needs `{name}` of shape ({channels},) for an input of shape "
                f"{tuple(x.shape)} and axis={axis}. Received: {name}.shape={tuple(param.shape)}"
            )
        if axis != ndim - 1:  # (C,) -> (C, 1, ..., 1): broadcasts along the channel axis
            from irtool.ops.shape import reshape

            param = reshape(param, (-1,) + (1,) * (ndim - 1 - axis))
        inputs.append(param)
    return apply(
        BATCH_NORM, inputs, epsilon=float(epsilon), has_scale=scale is not None, has_offset=offset is not None
    )[0]


# ---------------------------------------------------------------------------------------
# Layer normalization


class LayerNorm(Primitive):
    """Normalize over ``axes`` (sorted, negative: counted from the end) with ``epsilon``.

    Inputs: ``x``, then ``gamma`` if ``has_gamma`` and ``beta`` if ``has_beta``, each of
    ``norm_shape`` (the sizes of the normalized axes). ``rms`` is Keras' deprecated
    ``rms_scaling``: ``x / sqrt(var + eps) * gamma`` without centering.
    """

    name = "layer_norm"

    def infer(self, specs, axes, epsilon, has_gamma, has_beta, rms, norm_shape):
        x = specs[0]
        _check_float(self.name, x)
        ndim = len(x.shape)
        if not axes or any(not -ndim <= a < 0 for a in axes):
            raise ValueError(f"`layer_norm` axes {axes} are out of bounds for an input of shape {x.shape}.")
        want = tuple(x.shape[a] for a in axes)
        names = ["gamma"] * has_gamma + ["beta"] * has_beta
        if len(specs) != 1 + len(names):
            raise ValueError(f"`layer_norm` expects {1 + len(names)} inputs. Received: {len(specs)}.")
        for name, spec in zip(names, specs[1:]):
            if len(spec.shape) != len(want) or any(None not in (w, g) and w != g for w, g in zip(want, spec.shape)):
                raise ValueError(
                    f"`layer_norm` needs `{name}` of shape {want} for an input of shape {x.shape} and axes "
                    f"{axes}. Received: {name}.shape={spec.shape}"
                )
            if spec.dtype != x.dtype:
                raise ValueError(f"`layer_norm` needs `{name}` of dtype {x.dtype}. Received: {spec.dtype}")
        return [TensorSpec(x.shape, x.dtype)]

    @staticmethod
    def _broadcast_shape(axes, shape) -> tuple:
        """``shape`` (sizes of the normalized axes) laid out from ``axes[0]`` to the last axis."""
        out = [1] * -axes[0]
        for a, d in zip(axes, shape):
            out[a - axes[0]] = d
        return tuple(out)

    def forward(self, x, *params, axes, epsilon, has_gamma, has_beta, rms, norm_shape):
        eps = np.asarray(epsilon, x.dtype)
        mean = np.mean(x, axis=axes, keepdims=True)
        centered = x - mean
        variance = np.mean(centered * centered, axis=axes, keepdims=True)
        inv = np.asarray(1, x.dtype) / np.sqrt(variance + eps)
        y = (x if rms else centered) * inv
        if has_gamma:
            y = y * params[0].reshape(self._broadcast_shape(axes, params[0].shape))
        if has_beta:
            beta = params[has_gamma]
            y = y + beta.reshape(self._broadcast_shape(axes, beta.shape))
        return y

    def to_onnx(self, ctx, ins, outs, axes, epsilon, has_gamma, has_beta, rms, norm_shape):
        x = ins[0]
        dt = ctx.dtype_of(x)
        gamma = ins[1] if has_gamma else None
        beta = ins[1 + has_gamma] if has_beta else None
        trailing = tuple(axes) == tuple(range(axes[0], 0))
        static = None not in norm_shape
        if ctx.opset >= 17 and trailing and not rms and (gamma is not None or static):
            if gamma is None:
                gamma = ctx.const(np.ones(norm_shape, dt), f"{ctx.scope}/ones")
            ctx.node("LayerNormalization", [x, gamma] + ([beta] if beta else []), outs, axis=axes[0], epsilon=epsilon)
            return
        axes = list(axes)
        mean = ctx.reduce("ReduceMean", x, axes, True)[0]
        centered = ctx.node("Sub", [x, mean])[0]
        variance = ctx.reduce("ReduceMean", ctx.node("Mul", [centered, centered])[0], axes, True)[0]
        std = ctx.node("Sqrt", [ctx.node("Add", [variance, ctx.const(np.asarray(epsilon, dt))])[0]])[0]
        last = gamma is None and beta is None
        y = ctx.node("Div", [x if rms else centered, std], outs if last else 1)[0]
        if gamma is not None:
            g = gamma if trailing else ctx.reshaped(gamma, self._broadcast_shape(axes, norm_shape))
            y = ctx.node("Mul", [y, g], outs if beta is None else 1)[0]
        if beta is not None:
            b = beta if trailing else ctx.reshaped(beta, self._broadcast_shape(axes, norm_shape))
            ctx.node("Add", [y, b], outs)


LAYER_NORM = LayerNorm()


def _norm_axes(axis, ndim: int) -> tuple:
    axis = [axis] if isinstance(axis, int) else list(axis)
    axes = sorted({normalize_axis(a, ndim) for a in axis})
    return tuple(a - ndim for a in axes)


@top_level_op("LayerNorm")
def layer_normalization(x, gamma=None, beta=None, axis=-1, epsilon=None, **kwargs):
    """Normalize each example over ``axis`` (int or list), then ``* gamma + beta`` (Keras' ops).

    ``gamma``/``beta`` have the sizes of the normalized axes (or a broadcastable full-rank
    shape, reshaped here). ``epsilon`` defaults to Keras' ``backend.epsilon()`` (1e-7).
    """
    rms = bool(kwargs.pop("rms_scaling", False))
    if kwargs:
        raise TypeError(f"Unexpected keyword arguments to `layer_normalization`: {sorted(kwargs)}")
    x = _as_tensor(x)
    if not is_float(str(x.dtype)):
        x = cast(x, "float32")
    dtype = str(x.dtype)
    ndim = len(x.shape)
    axes = _norm_axes(axis, ndim)
    norm_shape = tuple(x.shape[a] for a in axes)
    inputs = [x]
    for name, param in (("gamma", gamma), ("beta", beta)):
        if param is None:
            continue
        param = _as_tensor(param, dtype)
        size = None if None in param.shape or None in norm_shape else int(np.prod(param.shape))
        if size is not None and size != int(np.prod(norm_shape)):
            raise ValueError(
                f"`layer_normalization` needs `{name}` with the sizes {norm_shape} of the normalized axes "
                f"{list(axis) if isinstance(axis, (list, tuple)) else axis} of an input of shape {tuple(x.shape)}. "
                f"Received: {name}.shape={tuple(param.shape)}"
            )
        if tuple(param.shape) != norm_shape and None not in norm_shape:
            # A full-rank broadcastable shape, or Keras' order for mixed-sign axes: reshaped as Keras does.
            from irtool.ops.shape import reshape

            param = reshape(param, norm_shape)
        inputs.append(param)
    return apply(
        LAYER_NORM,
        inputs,
        axes=axes,
        epsilon=1e-7 if epsilon is None else float(epsilon),
        has_gamma=gamma is not None,
        has_beta=beta is not None,
        rms=rms,
        norm_shape=norm_shape,
    )[0]


# ---------------------------------------------------------------------------------------
# Composed ops


@top_level_op("Normalize")
def normalize(x, axis=-1, order=2, epsilon=None):
    """``x`` divided by its ``order``-norm along ``axis``, the norm floored at ``epsilon`` (Keras' ops).

    The L2 case is ``x / sqrt(max(sum(x**2), epsilon**2))``, Keras' ``x * min(rsqrt(sum), 1/eps)``
    without an infinite intermediate.
    """
    if not isinstance(order, int) or isinstance(order, bool) or order < 1:
        raise ValueError(f"Argument `order` must be an int >= 1. Received: order={order}")
    x = _as_tensor(x)
    if not is_float(str(x.dtype)):
        x = cast(x, "float32")
    if len(x.shape) == 0:
        from irtool.ops.shape import expand_dims

        x = expand_dims(x, 0)
    eps = 1e-7 if epsilon is None else float(epsilon)
    if order == 2:
        squares = _sum(square(x), axis=axis, keepdims=True)
        return divide(x, sqrt(maximum(squares, eps * eps)))
    if not isinstance(axis, int):
        raise ValueError(f"`normalize` with order={order} needs a single axis. Received: axis={axis}")
    if order == 1:
        norm = _sum(_abs(x), axis=axis, keepdims=True)
    else:
        norm = power(_sum(power(_abs(x), float(order)), axis=axis, keepdims=True), 1.0 / order)
    return divide(x, maximum(norm, eps))


@top_level_op("Moments")
def moments(x, axes, keepdims=False, synchronized=False):
    """``(mean, variance)`` of ``x`` over ``axes`` (Keras' ops; variance is the biased one)."""
    if synchronized:
        raise NotImplementedError("`moments(synchronized=True)` needs a distributed backend.")
    x = _as_tensor(x)
    if not is_float(str(x.dtype)):
        x = cast(x, "float32")
    axes = tuple(axes) if isinstance(axes, (list, tuple)) else axes
    m = _mean(x, axis=axes, keepdims=True)
    variance = _mean(square(subtract(x, m)), axis=axes, keepdims=keepdims)
    if not keepdims:
        from irtool.ops.shape import squeeze

        m = squeeze(m, axis=axes)
    return m, variance
