"""Dot: the batch dot product of two tensors along given axes (Keras' ``batch_dot``)."""

from __future__ import annotations

from irtool import ops
from irtool.layers.layer import Layer


def _resolve_axes(axes, ranks) -> list:
    if isinstance(axes, int):
        return [axes % r if axes < 0 else axes for r in ranks]
    return [a % r if a < 0 else a for a, r in zip(axes, ranks)]


def batch_dot(x, y, axes):
    """Keras' ``batch_dot(x, y, axes)`` with ``axes`` a pair of non-negative ints.

    The result has ``x``'s axes without ``axes[0]`` followed by ``y``'s without the batch axis
    and ``axes[1]``; a rank-1 result gets a trailing axis of size 1. Two rank-2 inputs lower to
    ``Mul`` + ``ReduceSum``, inputs of rank <= 3 to (``Transpose`` +) ``MatMul``, others to ``Einsum``.
    """
    xs, ys = tuple(x.shape), tuple(y.shape)
    if len(xs) < 2 or len(ys) < 2:
        raise ValueError(f"Cannot do batch_dot on inputs with rank < 2. Received inputs with shapes {xs} and {ys}.")
    if None not in (xs[0], ys[0]) and xs[0] != ys[0]:
        raise ValueError(
            f"Cannot do batch_dot on inputs with different batch sizes. Received inputs with shapes {xs} and {ys}."
        )
    a0, a1 = axes
    if 0 in (a0, a1):
        raise ValueError(
            "Cannot perform batch_dot over axis 0. If your inputs are not batched, add a dummy batch dimension to "
            "your inputs using keras.ops.expand_dims(x, 0)"
        )
    if not (0 < a0 < len(xs) and 0 < a1 < len(ys)):
        raise ValueError(f"Invalid axes {list(axes)} for inputs of shapes {xs} and {ys}.")
    d1, d2 = xs[a0], ys[a1]
    if None not in (d1, d2) and d1 != d2:
        raise ValueError(
            f"Cannot do batch_dot on inputs with shapes {xs} and {ys} with axes={list(axes)}. "
            f"x.shape[{a0}] != y.shape[{a1}] ({d1} != {d2})."
        )
    if len(xs) == 2 and len(ys) == 2:
        return ops.sum(ops.multiply(x, y), axis=1, keepdims=True)
    if len(xs) <= 3 and len(ys) <= 3:
        if len(xs) == 2:
            x, a0 = ops.expand_dims(x, 1), 2
        if len(ys) == 2:
            y = ops.expand_dims(y, 2)
        if a0 != 2:
            x = ops.transpose(x, (0, 2, 1))
        if a1 != 1:
            y = ops.transpose(y, (0, 2, 1))
        out = ops.matmul(x, y)
        if len(xs) == 2:
            return ops.squeeze(out, 1)
        if len(ys) == 2:
            return ops.squeeze(out, -1)
        return out
    letters = "bcdefghijklmnopqrstuvwxyz"
    xl = "a" + letters[: len(xs) - 1]
    yl = "a" + letters[len(xs) - 1 : len(xs) + len(ys) - 2]
    yl = yl[:a1] + xl[a0] + yl[a1 + 1 :]
    out = xl.replace(xl[a0], "") + yl[1:].replace(xl[a0], "")
    return ops.einsum(f"{xl},{yl}->{out}", x, y)


class Dot(Layer):
    """Dot product of two tensors along ``axes`` (an int, or one axis per input), per sample.

    ``normalize=True`` L2-normalizes both inputs along their axes first (cosine proximity).
    """

    def __init__(self, axes, normalize=False, **kwargs):
        super().__init__(**kwargs)
        if not isinstance(axes, int):
            if not isinstance(axes, (list, tuple)):
                raise TypeError(
                    f"Invalid type for argument `axes`: it should be a list or an int. Received: axes={axes}"
                )
            if len(axes) != 2:
                raise ValueError(
                    f"Invalid format for argument `axes`: it should contain two elements. Received: axes={axes}"
                )
            if not isinstance(axes[0], int) or not isinstance(axes[1], int):
                raise ValueError(
                    f"Invalid format for argument `axes`: list elements should be integers. Received: axes={axes}"
                )
        self.axes = axes
        self.normalize = normalize
        self.supports_masking = True

    def build(self, input_shape):
        if (
            not isinstance(input_shape, (list, tuple))
            or len(input_shape) != 2
            or not isinstance(input_shape[0], (tuple, list))
        ):
            raise ValueError(
                f"A `Dot` layer should be called on a list of 2 inputs. Received: input_shape={input_shape}"
            )
        shape1, shape2 = input_shape
        axes = _resolve_axes(self.axes, (len(shape1), len(shape2)))
        if shape1[axes[0]] != shape2[axes[1]]:
            raise ValueError(
                f"Incompatible input shapes: axis values {shape1[axes[0]]} (at axis {axes[0]}) != "
                f"{shape2[axes[1]]} (at axis {axes[1]}). Full input shapes: {tuple(shape1)}, {tuple(shape2)}"
            )
        self.built = True

    def call(self, inputs):
        if not isinstance(inputs, (list, tuple)) or len(inputs) != 2:
            raise ValueError(f"A `Dot` layer should be called on exactly 2 inputs. Received: inputs={inputs}")
        x1, x2 = inputs
        axes = _resolve_axes(self.axes, (len(x1.shape), len(x2.shape)))
        if self.normalize:
            x1 = ops.normalize(x1, axis=axes[0])
            x2 = ops.normalize(x2, axis=axes[1])
        return batch_dot(x1, x2, axes)

    def compute_mask(self, inputs, previous_mask):
        return None

    def compute_output_shape(self, input_shape):
        shape1, shape2 = list(input_shape[0]), list(input_shape[1])
        axes = _resolve_axes(self.axes, (len(shape1), len(shape2)))
        shape1.pop(axes[0])
        shape2.pop(axes[1])
        shape2.pop(0)
        out = shape1 + shape2
        return tuple(out + [1] if len(out) == 1 else out)

    def get_config(self):
        config = super().get_config()
        config.update({"axes": self.axes, "normalize": self.normalize})
        return config


def dot(inputs, axes=-1, **kwargs):
    """Functional form of :class:`Dot`."""
    return Dot(axes=axes, **kwargs)(inputs)
