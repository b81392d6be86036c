"""Normalization primitives and ops: batch normalization, layer normalization, and
``normalize`` / ``moments`` composed from elementwise and reduce ops.

* ``batch_norm`` computes ``x * inv + res`` with ``inv = scale / sqrt(variance + eps)`` and
  ``res = offset - mean * inv`` (Keras' own formula), the statistics in broadcast shape, so it
  is elementwise (the layout pass sinks transposes through it). Its lowering folds ``inv`` and
  ``res`` into two per-channel constants when the statistics are initializers (always, for a
  layer's weights): one ``Mul`` and one ``Add``. Recorded by a ``BatchNormalization`` layer it
  also has a training kernel (batch statistics, moving statistics updated in place) whose
  ``training_vjp`` differentiates through the batch statistics.
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
from irtool.ops.elementwise import add, cast, divide, maximum, multiply, power, sqrt, square, subtract
from irtool.ops.gradients import unbroadcast
from irtool.ops.operation import top_level_op
from irtool.ops.reduce import mean as _mean
from irtool.ops.reduce import sum as _sum
from irtool.ops.shape import expand_dims, reshape, squeeze


def _as_tensor(x, dtype=None):
    if hasattr(x, "shape") and hasattr(x, "dtype"):
        return x if dtype is None else cast(x, dtype)
    return np.asarray(x, dtype=dtype or "float32")


def _float_input(x):
    """``x`` as a tensor, cast to float32 unless it already is a float."""
    x = _as_tensor(x)
    return x if is_float(str(x.dtype)) else cast(x, "float32")


def _check_float(name: str, x: TensorSpec) -> None:
    if not is_float(x.dtype):
        raise ValueError(f"`{name}` needs a floating-point input. Received: shape={x.shape}, dtype={x.dtype}")


# ---------------------------------------------------------------------------------------
# Batch normalization (inference: given statistics; training: batch statistics)


class BatchNorm(Primitive):
    """``(x - mean) / sqrt(variance + epsilon) * scale + offset``, statistics broadcast against ``x``.

    Inputs: ``x, mean, variance`` then ``scale`` if ``has_scale``, ``offset`` if ``has_offset``
    and a boolean ``mask`` of ``x.shape[:-1]`` if ``has_mask``. The statistics already have their
    broadcast shape (``(C,)`` for the last axis, ``(C, 1, 1)`` for channels-first images...), so
    the primitive is elementwise: the layout pass can move it past transposes by permuting the
    statistics (folded at export).

    A ``BatchNormalization`` layer also records its training attributes: ``layer`` (the layer:
    its ``trainable`` flag is read when the kernel runs, and its ``moving_mean`` /
    ``moving_variance`` are updated), ``momentum``, the reduction ``axes`` and ``training``
    (``True`` when the layer was called with ``training=True``: batch statistics in every mode;
    ``None``: batch statistics when the program trains). Keras' training step: normalize with
    the batch's mean and biased variance (masked positions excluded), and update
    ``moving = moving * momentum + batch * (1 - momentum)`` in place.
    """

    name = "batch_norm"
    elementwise = True
    returns_aux = True

    @staticmethod
    def _split(params, has_scale, has_offset, has_mask=False):
        """``(mean, variance, scale|None, offset|None, mask|None)`` from the inputs after ``x``."""
        scale = params[2] if has_scale else None
        offset = params[2 + has_scale] if has_offset else None
        mask = params[2 + has_scale + has_offset] if has_mask else None
        return params[0], params[1], scale, offset, mask

    def infer(self, specs, epsilon, has_scale, has_offset, has_mask=False, **training):
        x = specs[0]
        _check_float(self.name, x)
        names = ["mean", "variance"] + ["scale"] * has_scale + ["offset"] * has_offset
        if len(specs) != 1 + len(names) + has_mask:
            raise ValueError(f"`batch_norm` expects {1 + len(names) + has_mask} inputs. Received: {len(specs)}.")
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
        if has_mask:
            # (The layer checks the mask's rank, x.shape[:-1]; the layout pass may pad it to x's rank.)
            mask = specs[-1]
            if mask.dtype != "bool" or len(mask.shape) > len(x.shape):
                raise ValueError(
                    f"`batch_norm` needs a boolean mask of rank {len(x.shape) - 1}. Received: shape={mask.shape}, "
                    f"dtype={mask.dtype}"
                )
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

    def forward(self, x, *params, epsilon, has_scale, has_offset, has_mask=False, **training):
        mean, variance, scale, offset, _ = self._split(params, has_scale, has_offset, has_mask)
        inv, res = self.fold(mean, variance, scale, offset, epsilon)
        y = x * inv
        y += res  # in place: `x * inv + res` makes a second array of x's size (2x slower on big inputs)
        return y

    def vjp(self, cotangents, inputs, outputs, epsilon, has_scale, has_offset, has_mask=False, **training):
        (g,), x = cotangents, inputs[0]
        mean, variance, scale, offset, _ = self._split(inputs[1:], has_scale, has_offset, has_mask)
        eps = np.asarray(epsilon, variance.dtype)
        rstd = np.asarray(1, variance.dtype) / np.sqrt(variance + eps)
        inv = rstd if scale is None else rstd * scale
        shape = np.broadcast_shapes(*[p.shape for p in (mean, variance, scale, offset) if p is not None])
        g_sum = unbroadcast(g, shape)
        d_inv = unbroadcast(g * (x - mean), shape)  # y = (x - mean) * inv + offset
        grads = [g * inv, unbroadcast(-inv * g_sum, mean.shape)]
        d_rstd = d_inv if scale is None else d_inv * scale
        grads.append(unbroadcast(d_rstd * np.asarray(-0.5, x.dtype) * rstd / (variance + eps), variance.shape))
        if has_scale:
            grads.append(unbroadcast(d_inv * rstd, scale.shape))
        if has_offset:
            grads.append(unbroadcast(g_sum, offset.shape))
        return grads + [None] * has_mask

    # -- training ------------------------------------------------------------------------------
    def inference_attrs(self, attrs):
        if attrs.get("layer") is not None and attrs.get("training") is None:
            return {**attrs, "training": False}
        return attrs

    def kernel(self, attrs):
        if attrs.get("training") is True and attrs.get("layer") is not None:
            run = self.training_kernel(attrs, None)
            return lambda *arrays: run(*arrays)[0]
        return super().kernel(attrs)

    def training_kernel(self, attrs, rng):
        layer = attrs.get("layer")
        if layer is None or attrs.get("training") is False:
            forward = super().kernel(attrs)
            return lambda *arrays: (forward(*arrays), None)
        epsilon, has_scale, has_offset = attrs["epsilon"], attrs["has_scale"], attrs["has_offset"]
        has_mask, axes, momentum = attrs.get("has_mask", False), tuple(attrs["axes"]), attrs["momentum"]
        forward = super().kernel(attrs)

        def run(x, *params):
            if not layer.trainable:  # Keras: a frozen BatchNormalization stays in inference mode
                return forward(x, *params), None
            if getattr(layer, "renorm", False):
                raise NotImplementedError(
                    f"BatchNormalization '{layer.name}': training with renorm=True is not supported."
                )
            moving_mean, moving_variance, scale, offset, mask = self._split(params, has_scale, has_offset, has_mask)
            dtype = x.dtype
            if mask is None:
                weights, total = None, None
                mean = x.mean(axis=axes, keepdims=True)
                centered = x - mean
                variance = np.square(centered).mean(axis=axes, keepdims=True)
            else:
                weights = np.broadcast_to(mask[..., None], x.shape).astype(dtype)
                total = weights.sum(axis=axes, keepdims=True) + np.asarray(1e-7, dtype)  # Keras' epsilon()
                mean = (x * weights).sum(axis=axes, keepdims=True) / total
                centered = x - mean
                variance = (np.square(centered) * weights).sum(axis=axes, keepdims=True) / total
            rstd = np.asarray(1, dtype) / np.sqrt(variance + np.asarray(epsilon, dtype))
            normalized = centered * rstd
            y = normalized if scale is None else normalized * scale
            if offset is not None:
                y = y + offset
            m = np.asarray(momentum, dtype)
            one_minus = np.asarray(1.0 - momentum, dtype)
            for variable, moving, batch in (
                (layer.moving_mean, moving_mean, mean),
                (layer.moving_variance, moving_variance, variance),
            ):
                # In place: the executor and the gradient program hold these very arrays.
                target = variable._value
                target[...] = (moving * m + batch.reshape(moving.shape) * one_minus).reshape(target.shape)
            return y.astype(dtype, copy=False), (normalized, rstd, centered, weights, total)

        return run

    def training_vjp(
        self, cotangents, inputs, outputs, aux, epsilon, has_scale, has_offset, has_mask=False, **training
    ):
        if aux is None:
            return self.vjp(cotangents, inputs, outputs, epsilon, has_scale, has_offset, has_mask, **training)
        (g,), x = cotangents, inputs[0]
        _, _, scale, offset, _ = self._split(inputs[1:], has_scale, has_offset, has_mask)
        normalized, rstd, centered, weights, total = aux
        axes = tuple(training["axes"])
        d_norm = g if scale is None else g * scale
        if weights is None:  # the classic form: dx = rstd * (d - mean(d) - xhat * mean(d * xhat))
            dx = rstd * (
                d_norm
                - d_norm.mean(axis=axes, keepdims=True)
                - normalized * (d_norm * normalized).mean(axis=axes, keepdims=True)
            )
        else:  # mean and variance weighted by the mask, over `total` (which includes Keras' epsilon)
            d_var = np.asarray(-0.5, x.dtype) * rstd**3 * (d_norm * centered).sum(axis=axes, keepdims=True)
            d_mean = (
                -rstd * d_norm.sum(axis=axes, keepdims=True)
                - np.asarray(2, x.dtype) * d_var * (weights * centered).sum(axis=axes, keepdims=True) / total
            )
            dx = d_norm * rstd + weights * (d_mean + np.asarray(2, x.dtype) * d_var * centered) / total
        grads = [dx.astype(x.dtype, copy=False), None, None]
        if has_scale:
            grads.append(unbroadcast(g * normalized, scale.shape))
        if has_offset:
            grads.append(unbroadcast(g, offset.shape))
        return grads + [None] * has_mask

    def to_onnx(self, ctx, ins, outs, epsilon, has_scale, has_offset, has_mask=False, **training):
        x, params = ins[0], ins[1 : 3 + has_scale + has_offset]  # the mask only matters when training
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


def _batch_norm_inputs(x, mean, variance, axis, offset, scale):
    x = _float_input(x)
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
            param = reshape(param, (-1,) + (1,) * (ndim - 1 - axis))
        inputs.append(param)
    return inputs, axis


@top_level_op("BatchNorm")
def batch_normalization(x, mean, variance, axis, offset=None, scale=None, epsilon=1e-3):
    """Normalize ``x`` with given ``mean``/``variance`` of shape ``(C,)`` along ``axis`` (Keras' ops)."""
    inputs, _ = _batch_norm_inputs(x, mean, variance, axis, offset, scale)
    return apply(
        BATCH_NORM, inputs, epsilon=float(epsilon), has_scale=scale is not None, has_offset=offset is not None
    )[0]


def batch_normalization_layer(x, layer, axis, offset=None, scale=None, epsilon=1e-3, mask=None, training=None):
    """The op of a ``BatchNormalization`` layer: its moving statistics at inference, batch
    statistics (updating the moving ones with ``layer.momentum``) when training (see ``BatchNorm``).

    ``layer.moving_mean``/``moving_variance`` are passed as they are when their dtype is the
    input's, so the graph reads the variables themselves.
    """
    inputs, axis = _batch_norm_inputs(x, layer.moving_mean, layer.moving_variance, axis, offset, scale)
    ndim = len(inputs[0].shape)
    attrs = dict(epsilon=float(epsilon), has_scale=scale is not None, has_offset=offset is not None)
    if mask is not None:
        if isinstance(mask, (list, tuple)):
            mask = mask[0]
        mask = cast(mask if hasattr(mask, "shape") else np.asarray(mask), "bool")
        inputs.append(mask)
    attrs.update(
        has_mask=mask is not None,
        layer=layer,
        momentum=float(layer.momentum),
        axes=tuple(a for a in range(ndim) if a != axis),
        training=True if training else None,
    )
    return apply(BATCH_NORM, inputs, **attrs)[0]


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

    def vjp(self, cotangents, inputs, outputs, axes, epsilon, has_gamma, has_beta, rms, norm_shape):
        (g,), x = cotangents, inputs[0]
        dtype = x.dtype
        mean = np.mean(x, axis=axes, keepdims=True)
        centered = x - mean
        variance = np.mean(centered * centered, axis=axes, keepdims=True)
        rstd = np.asarray(1, dtype) / np.sqrt(variance + np.asarray(epsilon, dtype))
        normalized = (x if rms else centered) * rstd
        grads = []
        if has_gamma:
            gamma = inputs[1]
            shape = self._broadcast_shape(axes, gamma.shape)
            d_norm = g * gamma.reshape(shape)
            grads.append(unbroadcast(g * normalized, shape).reshape(gamma.shape))
        else:
            d_norm = g
        if has_beta:
            beta = inputs[1 + has_gamma]
            grads.append(unbroadcast(g, self._broadcast_shape(axes, beta.shape)).reshape(beta.shape))
        if rms:
            # y = x * rstd with the centered variance: d var / dx = 2 (x - mean) / n.
            d_var = np.asarray(-0.5, dtype) * rstd**3 * np.mean(d_norm * x, axis=axes, keepdims=True)
            dx = d_norm * rstd + np.asarray(2, dtype) * d_var * centered
        else:
            dx = rstd * (
                d_norm
                - np.mean(d_norm, axis=axes, keepdims=True)
                - normalized * np.mean(d_norm * normalized, axis=axes, keepdims=True)
            )
        return [dx.astype(dtype, copy=False)] + grads

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
    x = _float_input(x)
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
    x = _float_input(x)
    if len(x.shape) == 0:
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


@top_level_op("RMSNorm")
def rms_normalization(x, scale=None, axis=-1, epsilon=None):
    """``x / sqrt(mean(square(x), axis) + epsilon) * scale`` (Keras' ops; ``epsilon`` defaults to 1e-7).

    ``scale`` has the sizes of the normalized axes (``axis``: an int or a list). Composed of
    existing primitives, so its gradient and ONNX form come from theirs.
    """
    x = _float_input(x)
    if len(x.shape) == 0:
        x = expand_dims(x, 0)
    ndim = len(x.shape)
    axes = _norm_axes(axis, ndim)
    eps = 1e-7 if epsilon is None else float(epsilon)
    y = divide(x, sqrt(add(_mean(square(x), axis=axes, keepdims=True), np.asarray(eps, str(x.dtype)))))
    if scale is None:
        return y
    scale = _as_tensor(scale, str(x.dtype))
    if axes != tuple(range(-len(axes), 0)):
        # Normalized axes that are not the trailing ones: ``scale`` broadcasts with ones elsewhere.
        scale = reshape(scale, tuple(x.shape[a] if a - ndim in axes else 1 for a in range(ndim)))
    return multiply(y, scale)


@top_level_op("Moments")
def moments(x, axes, keepdims=False, synchronized=False):
    """``(mean, variance)`` of ``x`` over ``axes`` (Keras' ops; variance is the biased one)."""
    if synchronized:
        raise NotImplementedError("`moments(synchronized=True)` needs a distributed backend.")
    x = _float_input(x)
    axes = tuple(axes) if isinstance(axes, (list, tuple)) else axes
    m = _mean(x, axis=axes, keepdims=True)
    variance = _mean(square(subtract(x, m)), axis=axes, keepdims=keepdims)
    if not keepdims:
        m = squeeze(m, axis=axes)
    return m, variance
