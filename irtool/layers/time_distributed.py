"""TimeDistributed: one layer applied to every time step of a ``(batch, time, ...)`` input (Keras 3).

Keras 3 loops over the time axis (or maps over it when the axis is unknown). irtool folds the
time axis into the batch instead: ``(batch, time, ...)`` becomes ``(batch * time, ...)``, the
wrapped layer runs once on that, and its output is unfolded back to ``(batch, time, ...)``. Each
step sees the same weights and the same per-sample computation, so the outputs are the same,
and the graph stays one call of the inner layer however long the sequence is.

Folding and unfolding are two small primitives rather than ``ops.reshape``: a static reshape
cannot unfold ``batch * time`` when *both* dims are unknown, while these read the sizes from the
input at run time (ONNX ``Shape`` -> ``Reshape``), so exported models keep a dynamic batch and a
dynamic time axis.
"""

from __future__ import annotations

import numpy as np

from irtool.ir import tree
from irtool.ir.spec import TensorSpec
from irtool.layers.layer import Layer
from irtool.layers.rnn import weight_scope
from irtool.layers.wrapper import Wrapper
from irtool.ops.core import Primitive, SymbolicTensor, apply, scope
from irtool.ops.operation import LayerCall

_INT64_MAX = np.iinfo(np.int64).max


def _product(a, b):
    return None if a is None or b is None else a * b


def _dims_from(ctx, value: str, start: int, stop: int) -> str:
    """ONNX: the int64 vector ``shape(value)[start:stop]`` (``stop=None``: to the end)."""
    shape = ctx.node("Shape", [value])[0]
    end = _INT64_MAX if stop is None else stop
    return ctx.node("Slice", [shape, ctx.int64s([start]), ctx.int64s([end])])[0]


def _static_target(dims) -> list | None:
    """A constant Reshape target for ``dims`` (one unknown dim becomes -1), or None if it needs two."""
    if sum(d is None for d in dims) > 1:
        return None
    return [-1 if d is None else int(d) for d in dims]


class FoldTime(Primitive):
    """``(batch, time, *rest) -> (batch * time, *rest)``: the time steps become samples."""

    name = "fold_time"

    def infer(self, specs):
        (x,) = specs
        if len(x.shape) < 2:
            raise ValueError(f"fold_time expects a tensor of rank >= 2 (batch, time, ...). Received shape {x.shape}.")
        return [TensorSpec((_product(x.shape[0], x.shape[1]), *x.shape[2:]), x.dtype)]

    def forward(self, x):
        return x.reshape((x.shape[0] * x.shape[1], *x.shape[2:]))

    def vjp(self, cotangents, inputs, outputs):
        return [cotangents[0].reshape(inputs[0].shape)]

    def to_onnx(self, ctx, ins, outs):
        shape = ctx.shapes.get(ins[0])
        target = None if shape is None else _static_target([None, *shape[2:]])
        if target is not None:
            ctx.node("Reshape", [ins[0], ctx.int64s(target)], outs)
            return
        dims = ctx.node("Concat", [ctx.int64s([-1]), _dims_from(ctx, ins[0], 2, None)], axis=0)[0]
        ctx.node("Reshape", [ins[0], dims], outs)


class UnfoldTime(Primitive):
    """``(y, reference)``: ``y (batch * time, *rest) -> (batch, time, *rest)``, with ``batch`` and
    ``time`` read from ``reference (batch, time, ...)`` (the wrapper's input)."""

    name = "unfold_time"

    def infer(self, specs):
        y, reference = specs
        batch, time = reference.shape[:2]
        folded = _product(batch, time)
        if not y.shape or (folded is not None and y.shape[0] is not None and y.shape[0] != folded):
            raise ValueError(
                f"unfold_time expects a tensor whose first dim is batch * time = {batch} * {time}. "
                f"Received shape {y.shape}."
            )
        return [TensorSpec((batch, time, *y.shape[1:]), y.dtype)]

    def forward(self, y, reference):
        return y.reshape((reference.shape[0], reference.shape[1], *y.shape[1:]))

    def vjp(self, cotangents, inputs, outputs):
        return [cotangents[0].reshape(inputs[0].shape), None]

    def to_onnx(self, ctx, ins, outs):
        y_shape, ref_shape = ctx.shapes.get(ins[0]), ctx.shapes.get(ins[1])
        target = None
        if y_shape is not None and ref_shape is not None:
            target = _static_target([*ref_shape[:2], *y_shape[1:]])
        if target is not None:
            ctx.node("Reshape", [ins[0], ctx.int64s(target)], outs)
            return
        dims = ctx.node("Concat", [_dims_from(ctx, ins[1], 0, 2), _dims_from(ctx, ins[0], 1, None)], axis=0)[0]
        ctx.node("Reshape", [ins[0], dims], outs)


FOLD_TIME = FoldTime()
UNFOLD_TIME = UnfoldTime()


class TimeDistributed(Wrapper):
    """Applies ``layer`` to every temporal slice of an input, with the same weights at every step.

    The input is at least 3D, ``(batch, time, ...)``; dimension 1 is the time axis. For a batch
    of 32 videos of 10 RGB frames of 128x128, ``TimeDistributed(Conv2D(64, 3))`` runs the same
    convolution on each frame::

        inputs = layers.Input(shape=(10, 128, 128, 3), batch_size=32)
        outputs = layers.TimeDistributed(layers.Conv2D(64, (3, 3)))(inputs)
        outputs.shape  # (32, 10, 126, 126, 64)

    Batch and time may both be unknown (``Input((None, 5))``); the exported ONNX model keeps both
    dynamic. ``training`` and the mask (one value per sample and step) are passed to the wrapped
    layer's ``call`` when it accepts them; the output carries the input's mask. The weights are
    the wrapped layer's (``time_distributed/dense/kernel``...), stored under ``layer`` in weights
    files, as in Keras.
    """

    def __init__(self, layer, **kwargs):
        if not isinstance(layer, Layer):
            raise ValueError(
                f"Please initialize `TimeDistributed` layer with a `keras.layers.Layer` instance. Received: {layer}"
            )
        super().__init__(layer, **kwargs)
        self.supports_masking = True

    @staticmethod
    def _child_input_shape(input_shape) -> tuple:
        if not isinstance(input_shape, (tuple, list)) or len(input_shape) < 3:
            raise ValueError(
                "`TimeDistributed` Layer should be passed an `input_shape` with at least 3 dimensions, "
                f"received: {input_shape}"
            )
        return (input_shape[0], *input_shape[2:])

    def build(self, input_shape):
        child_shape = self._child_input_shape(tuple(input_shape))
        if not self.layer.built:
            with weight_scope(self, self.layer):
                self.layer.build(child_shape)
            self.layer.built = True
        self.built = True

    def compute_output_shape(self, input_shape):
        """``(batch, time, ...)`` of the wrapped layer's output for one step of ``input_shape``."""
        input_shape = tuple(input_shape)
        child_shape = self._child_input_shape(input_shape)
        own = getattr(self.layer, "compute_output_shape", None)
        if own is not None:
            child_out = tuple(own(child_shape))
        else:
            child_out = self._traced_output_shape(child_shape)
        return (child_out[0], input_shape[1], *child_out[1:])

    def _traced_output_shape(self, child_shape: tuple) -> tuple:
        """The wrapped layer's output shape, found by tracing its ``call`` on a placeholder inside
        a throwaway call record (nothing is added to any model or naming counter)."""
        if not self.built:
            self.build((child_shape[0], None, *child_shape[1:]))
        placeholder = SymbolicTensor(child_shape, self.dtype)
        with scope(LayerCall(self, (placeholder,), {})):
            out = self.layer.call(placeholder, **self._child_kwargs(None, None))
        return tuple(out.shape)

    def _child_kwargs(self, training, mask) -> dict:
        kwargs = {}
        if self.layer._call_has_mask and mask is not None:
            kwargs["mask"] = mask
        if self.layer._call_has_training:
            kwargs["training"] = training
        return kwargs

    def call(self, inputs, training=None, mask=None):
        if mask is not None:
            self._check_mask(inputs, mask)
        folded = apply(FOLD_TIME, [inputs])[0]
        if mask is not None:
            mask = apply(FOLD_TIME, [mask])[0]
        outputs = self.layer.call(folded, **self._child_kwargs(training, mask))
        return tree.map_structure(lambda y: apply(UNFOLD_TIME, [y, inputs])[0], outputs)

    @staticmethod
    def _check_mask(inputs, mask) -> None:
        mask_shape, input_shape = tuple(mask.shape), tuple(inputs.shape)
        if len(mask_shape) < 2:
            raise ValueError(
                "The `mask` passed to the `TimeDistributed` layer must be at least 2D (e.g., "
                f"`(batch_size, timesteps)`), but it has {len(mask_shape)} dimension(s) with shape {mask_shape}."
            )
        for axis in (0, 1):
            if None not in (input_shape[axis], mask_shape[axis]) and input_shape[axis] != mask_shape[axis]:
                raise ValueError(
                    f"The `mask` passed to the `TimeDistributed` layer has a shape {mask_shape} that is "
                    f"incompatible with the input shape {input_shape}. The first two dimensions of the mask "
                    "(batch size and timesteps) must match the input's first two dimensions. Expected mask "
                    f"shape prefix: ({input_shape[0]}, {input_shape[1]})."
                )
