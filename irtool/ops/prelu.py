"""The parametric ReLU primitive: ``x`` where ``x >= 0``, ``alpha * x`` elsewhere, with a
learned ``alpha`` that broadcasts against ``x`` from the right (ONNX ``PRelu``)."""

from __future__ import annotations

import numpy as np

from irtool.ir.dtypes import is_float
from irtool.ir.spec import TensorSpec
from irtool.ops.core import Primitive, apply
from irtool.ops.elementwise import cast
from irtool.ops.gradients import unbroadcast


class PRelu(Primitive):
    name = "prelu"
    elementwise = True  # alpha broadcasts like an elementwise operand (layout passes permute it)

    def infer(self, specs):
        x, alpha = specs
        if not is_float(x.dtype) or alpha.dtype != x.dtype:
            raise ValueError(
                f"`prelu` needs a floating-point input and an alpha of the same dtype. Received: {x.dtype} and "
                f"{alpha.dtype}."
            )
        ok = len(alpha.shape) <= len(x.shape) and all(
            a in (1, None) or d in (a, None) for a, d in zip(alpha.shape[::-1], x.shape[::-1])
        )
        if not ok:
            raise ValueError(
                f"`prelu` needs an alpha that broadcasts to the input from the right. Received: input shape "
                f"{x.shape} and alpha shape {alpha.shape}."
            )
        return [TensorSpec(x.shape, x.dtype)]

    def forward(self, x, alpha):
        return np.where(x < 0, x * alpha, x)

    def vjp(self, cotangents, inputs, outputs):
        (g,), (x, alpha) = cotangents, inputs
        negative = x < 0
        dx = np.where(negative, g * alpha, g)
        d_alpha = unbroadcast(np.where(negative, g * x, np.zeros((), x.dtype)), alpha.shape)
        return [dx.astype(x.dtype, copy=False), d_alpha]

    def to_onnx(self, ctx, ins, outs):
        x, alpha = ins
        if ctx.dtype_of(x) == "float32":
            ctx.node("PRelu", [x, alpha], outs)
            return
        # ONNX Runtime's CPU provider registers PRelu for float only.
        zero = ctx.const(np.asarray(0, ctx.dtype_of(x)))
        negative = ctx.node("Less", [x, zero])[0]
        ctx.node("Where", [negative, ctx.node("Mul", [x, alpha])[0], x], outs)


PRELU = PRelu()


def prelu(x, alpha):
    """``where(x < 0, alpha * x, x)`` (the computation of Keras' PReLU layer)."""
    if not is_float(str(x.dtype)):
        x = cast(x, "float32")
    return apply(PRELU, [x, cast(alpha, str(x.dtype))])[0]
