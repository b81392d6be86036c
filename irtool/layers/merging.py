"""Merge layers (Add, Subtract, Multiply, Average, Maximum, Minimum, Concatenate) and their
functional forms (``layers.add([a, b])``...)."""

from __future__ import annotations

from irtool import ops
from irtool.ir.spec import broadcast_shapes
from irtool.layers.layer import Layer


class Merge(Layer):
    """Base of the elementwise merge layers: a list of at least two tensors in, one out."""

    def build(self, input_shape):
        if (
            not isinstance(input_shape, (list, tuple))
            or not input_shape
            or not isinstance(input_shape[0], (tuple, list))
        ):
            raise ValueError(
                f"A merge layer should be called on a list of inputs. Received: input_shape={input_shape} "
                "(not a list of shapes)"
            )
        if len(input_shape) < 2:
            raise ValueError(
                "A merge layer should be called on a list of at least 2 inputs. "
                f"Got {len(input_shape)} inputs. Full input_shape received: {input_shape}"
            )
        self._check_shapes(input_shape)
        self.built = True

    def _check_shapes(self, shapes):
        out = tuple(shapes[0][1:])
        for shape in shapes[1:]:
            try:
                out = broadcast_shapes(out, tuple(shape[1:]))
            except ValueError:
                raise ValueError(
                    f"Inputs have incompatible shapes. Received shapes {tuple(shapes[0])} and {tuple(shape)}"
                ) from None

    def call(self, inputs):
        if not isinstance(inputs, (list, tuple)) or len(inputs) < 2:
            raise ValueError(f"A merge layer should be called on a list of at least 2 inputs. Received: {inputs}")
        self._check_shapes([tuple(x.shape) for x in inputs])
        out = inputs[0]
        for x in inputs[1:]:
            out = self._merge(out, x)
        return self._finish(out, len(inputs))

    def _finish(self, out, n):
        return out


class Add(Merge):
    """Sums a list of tensors elementwise."""

    def _merge(self, a, b):
        return ops.add(a, b)


class Subtract(Merge):
    """``inputs[0] - inputs[1]``; exactly two inputs."""

    def build(self, input_shape):
        super().build(input_shape)
        if len(input_shape) != 2:
            raise ValueError(
                f"A `Subtract` layer should be called on exactly 2 inputs. Received: input_shape={input_shape}"
            )

    def call(self, inputs):
        if len(inputs) != 2:
            raise ValueError(f"A `Subtract` layer should be called on exactly 2 inputs. Received: inputs={inputs}")
        return ops.subtract(inputs[0], inputs[1])


class Multiply(Merge):
    def _merge(self, a, b):
        return ops.multiply(a, b)


class Average(Merge):
    def _merge(self, a, b):
        return ops.add(a, b)

    def _finish(self, out, n):
        return ops.divide(out, float(n))


class Maximum(Merge):
    def _merge(self, a, b):
        return ops.maximum(a, b)


class Minimum(Merge):
    def _merge(self, a, b):
        return ops.minimum(a, b)


class Concatenate(Layer):
    """Concatenates a list of tensors along ``axis`` (default -1)."""

    def __init__(self, axis=-1, **kwargs):
        super().__init__(**kwargs)
        self.axis = axis

    def build(self, input_shape):
        if (
            not isinstance(input_shape, (list, tuple))
            or len(input_shape) < 1
            or not isinstance(input_shape[0], (tuple, list))
        ):
            raise ValueError(
                "A `Concatenate` layer should be called on a list of at least 1 input. "
                f"Received: input_shape={input_shape}"
            )
        self.built = True

    def call(self, inputs):
        ranks = {len(x.shape) for x in inputs}
        if len(ranks) != 1:
            raise ValueError(
                "A `Concatenate` layer requires inputs with matching shapes except for the concatenation axis. "
                f"Received: input_shape={[tuple(x.shape) for x in inputs]}"
            )
        return ops.concatenate(list(inputs), axis=self.axis)

    def get_config(self):
        config = super().get_config()
        config["axis"] = self.axis
        return config


def add(inputs, **kwargs):
    """Functional form of :class:`Add`."""
    return Add(**kwargs)(inputs)


def subtract(inputs, **kwargs):
    return Subtract(**kwargs)(inputs)


def multiply(inputs, **kwargs):
    return Multiply(**kwargs)(inputs)


def average(inputs, **kwargs):
    return Average(**kwargs)(inputs)


def maximum(inputs, **kwargs):
    return Maximum(**kwargs)(inputs)


def minimum(inputs, **kwargs):
    return Minimum(**kwargs)(inputs)


def concatenate(inputs, axis=-1, **kwargs):
    return Concatenate(axis=axis, **kwargs)(inputs)
