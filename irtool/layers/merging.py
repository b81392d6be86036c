"""Merge layers (Add, Subtract, Multiply, Average, Maximum, Minimum, Concatenate) and their
functional forms (``layers.add([a, b])``...)."""

from __future__ import annotations

from irtool import ops
from irtool.ir.spec import broadcast_shapes
from irtool.layers.layer import Layer


class Merge(Layer):
    """Base of the elementwise merge layers: a list of at least two tensors in, one out.

    Masks (Keras 3): the output mask is the OR of the input masks when every input has one,
    else there is none. Maximum, Minimum and Multiply also keep masked entries out of the result.
    """

    supports_masking = True

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

    def call(self, inputs, mask=None):
        if not isinstance(inputs, (list, tuple)) or len(inputs) < 2:
            raise ValueError(f"A merge layer should be called on a list of at least 2 inputs. Received: {inputs}")
        self._check_shapes([tuple(x.shape) for x in inputs])
        inputs = _same_rank(inputs)
        masks = list(mask) if isinstance(mask, (list, tuple)) else [None] * len(inputs)
        if any(m is not None for m in masks):
            return self._masked_merge(list(inputs), masks)
        out = inputs[0]
        for x in inputs[1:]:
            out = self._merge(out, x)
        return self._finish(out, len(inputs))

    def _masked_merge(self, inputs, masks):
        out = inputs[0]
        for x in inputs[1:]:
            out = self._merge(out, x)
        return self._finish(out, len(inputs))

    def _finish(self, out, n):
        return out

    def compute_mask(self, inputs, previous_mask):
        if not isinstance(previous_mask, (list, tuple)) or any(m is None for m in previous_mask):
            return None
        out = previous_mask[0]
        for m in previous_mask[1:]:
            out = ops.logical_or(out, m)
        return out


def _same_rank(inputs):
    """As Keras: an input of lower rank gets new axes right after the batch axis (NumPy's
    broadcasting would add them before it, pairing one sample with another sample's rows)."""
    rank = max(len(x.shape) for x in inputs)
    return [x if len(x.shape) == rank else ops.expand_dims(x, tuple(range(1, 1 + rank - len(x.shape)))) for x in inputs]


def _expanded(mask):
    """A mask of ``(batch, ...)`` broadcast over the features axis of its input."""
    return None if mask is None else ops.expand_dims(ops.cast(mask, "bool"), -1)


class _MaskedExtremum(Merge):
    """Maximum/Minimum with masks (Keras' ``_apply_merge_op_and_or_mask``): a masked entry takes
    the other operand's value, so it never wins."""

    def _masked_merge(self, inputs, masks):
        out, out_mask = inputs[0], _expanded(masks[0])
        for x, m in zip(inputs[1:], masks[1:]):
            m = _expanded(m)
            if m is not None:
                x = ops.where(m, x, out)
            if out_mask is not None:
                out = ops.where(out_mask, out, x)
            out_mask = ops.logical_or(out_mask, m) if m is not None and out_mask is not None else None
            out = self._merge(out, x)
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

    def call(self, inputs, mask=None):
        if len(inputs) != 2:
            raise ValueError(f"A `Subtract` layer should be called on exactly 2 inputs. Received: inputs={inputs}")
        return ops.subtract(*_same_rank(inputs))


class Multiply(Merge):
    def _merge(self, a, b):
        return ops.multiply(a, b)

    def _masked_merge(self, inputs, masks):
        # Keras: masked entries count as 1; with every input masked, entries masked everywhere are 0.
        out, out_mask = None, None
        every = all(m is not None for m in masks)
        for x, m in zip(inputs, masks):
            m = _expanded(m)
            if m is not None:
                x = ops.where(m, x, ops.cast(1, x.dtype))
                if every:
                    out_mask = m if out_mask is None else ops.logical_or(out_mask, m)
            out = x if out is None else ops.multiply(out, x)
        return ops.where(out_mask, out, ops.cast(0, out.dtype)) if every else out


class Average(Merge):
    def _merge(self, a, b):
        return ops.add(a, b)

    def _finish(self, out, n):
        return ops.divide(out, float(n))


class Maximum(_MaskedExtremum):
    def _merge(self, a, b):
        return ops.maximum(a, b)


class Minimum(_MaskedExtremum):
    def _merge(self, a, b):
        return ops.minimum(a, b)


class Concatenate(Layer):
    """Concatenates a list of tensors along ``axis`` (default -1)."""

    supports_masking = True

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

    def compute_mask(self, inputs, previous_mask):
        """Keras: unmasked inputs count as all-True; the masks are concatenated along ``axis``."""
        if not isinstance(previous_mask, (list, tuple)) or all(m is None for m in previous_mask):
            return None
        rank = len(inputs[0].shape)
        axis = self.axis % rank
        if all(m is None or len(m.shape) == rank - 1 for m in previous_mask):
            if axis == rank - 1:  # each input's mask covers all of its features: OR them
                masked = [m for m in previous_mask if m is not None]
                if len(masked) < len(previous_mask):
                    return ops.ones_like(masked[0], dtype="bool")
                out = masked[0]
                for m in masked[1:]:
                    out = ops.logical_or(out, m)
                return out
            masks = [ops.ones_like(x[..., 0], dtype="bool") if m is None else m for x, m in zip(inputs, previous_mask)]
            return ops.concatenate(masks, axis=axis)
        masks = []
        for x, m in zip(inputs, previous_mask):
            if m is None:
                m = ops.ones_like(x, dtype="bool")
            elif len(m.shape) < len(x.shape):
                m = ops.logical_or(ops.expand_dims(m, -1), ops.zeros_like(x, dtype="bool"))
            masks.append(m)
        joined = ops.cast(ops.concatenate(masks, axis=axis), "int32")
        return ops.greater(ops.max(joined, axis=-1), 0)

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
