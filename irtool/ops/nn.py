"""Neural-network primitives that are more than elementwise: softmax and log-softmax.

Activation functions that are elementwise live in ``elementwise``; this module re-exports
them so ``ops.nn.relu`` works as in Keras.
"""

from __future__ import annotations

import numpy as np

from irtool.ir.dtypes import is_float
from irtool.ir.spec import normalize_axis
from irtool.ops.core import Primitive, apply
from irtool.ops.elementwise import (  # noqa: F401 - the ops.nn namespace
    elu,
    gelu,
    hard_sigmoid,
    leaky_relu,
    relu,
    relu6,
    selu,
    sigmoid,
    silu,
    softplus,
    softsign,
    swish,
)
from irtool.ops.operation import top_level_op


class Softmax(Primitive):
    def __init__(self, name: str, log: bool):
        self.name = name
        self.log = log

    def infer(self, specs, axis):
        (x,) = specs
        if not is_float(x.dtype):
            raise ValueError(f"`{self.name}` needs a floating-point input. Received: dtype={x.dtype}")
        return [x]

    def forward(self, x, axis):
        shifted = x - np.max(x, axis=axis, keepdims=True)
        if self.log:
            return shifted - np.log(np.sum(np.exp(shifted), axis=axis, keepdims=True))
        e = np.exp(shifted)
        return e / np.sum(e, axis=axis, keepdims=True)

    def vjp(self, cotangents, inputs, outputs, axis):
        (g,), (y,) = cotangents, outputs
        if self.log:
            return [g - np.exp(y) * g.sum(axis=axis, keepdims=True)]
        return [y * (g - (g * y).sum(axis=axis, keepdims=True))]

    def to_onnx(self, ctx, ins, outs, axis):
        ctx.node("LogSoftmax" if self.log else "Softmax", ins, outs, axis=axis)


SOFTMAX = Softmax("softmax", log=False)
LOG_SOFTMAX = Softmax("log_softmax", log=True)


def _softmax(prim, x, axis):
    if not hasattr(x, "shape"):
        x = np.asarray(x, "float32")
    return apply(prim, [x], axis=normalize_axis(axis, len(x.shape)))[0]


@top_level_op("Softmax")
def softmax(x, axis=-1):
    """``exp(x) / sum(exp(x))`` along ``axis``."""
    return _softmax(SOFTMAX, x, axis)


@top_level_op("LogSoftmax")
def log_softmax(x, axis=-1):
    return _softmax(LOG_SOFTMAX, x, axis)
