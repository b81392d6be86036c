"""Noise primitives of the regularization layers (GaussianNoise, GaussianDropout, AlphaDropout).

In a graph they are the identity (inference): their NumPy kernel returns the input and their
lowering is an ``Identity`` that the export drops. They are recorded as their own primitives,
with the layer's parameters as attributes; their training kernels apply Keras' noise with the
gradient program's generator (``training_forward`` is the same noise for eager calls).
"""

from __future__ import annotations

import math

import numpy as np

from irtool.ir.spec import TensorSpec
from irtool.ops.core import Primitive
from irtool.ops.elementwise import SELU_ALPHA, SELU_SCALE
from irtool.ops.gradients import unbroadcast


class InferenceIdentity(Primitive):
    """A primitive that is the identity at inference (and elementwise, for layout passes).

    Subclasses define ``noise(x, rng, **attrs) -> (output, aux)``; the training kernel runs it
    with the program's generator (the ``seed`` attribute is Keras' and only seeds eager calls).
    Multiplicative noise returns the factor ``d output / d x`` as ``aux`` for ``training_vjp``;
    additive noise returns ``None``.
    """

    elementwise = True
    returns_aux = True

    def __init__(self, name: str):
        self.name = name

    def infer(self, specs, **attrs):
        return [TensorSpec(specs[0].shape, specs[0].dtype)]

    def forward(self, x, **attrs):
        return x

    def inference_attrs(self, attrs):
        return None

    def vjp(self, cotangents, inputs, outputs, **attrs):
        return [cotangents[0]]

    def to_onnx(self, ctx, ins, outs, **attrs):
        ctx.node("Identity", ins, outs)

    def noise(self, x, rng: np.random.Generator, **attrs):
        raise NotImplementedError

    def training_forward(self, x, rng: np.random.Generator, **attrs):
        return self.noise(x, rng, **attrs)[0]

    def training_kernel(self, attrs, rng):
        noise = self.noise
        return lambda x: noise(x, rng, **attrs)

    def training_vjp(self, cotangents, inputs, outputs, aux, **attrs):
        g = cotangents[0]
        if aux is None:
            return [g]
        return [unbroadcast(g * aux, inputs[0].shape).astype(inputs[0].dtype, copy=False)]


class GaussianNoisePrim(InferenceIdentity):
    def noise(self, x, rng, stddev, seed=None):
        if stddev <= 0:
            return x, None
        return (x + rng.normal(0.0, stddev, x.shape)).astype(x.dtype), None


class GaussianDropoutPrim(InferenceIdentity):
    def noise(self, x, rng, rate, seed=None):
        if rate <= 0:
            return x, None
        stddev = math.sqrt(rate / (1.0 - rate))
        factor = rng.normal(1.0, stddev, x.shape).astype(x.dtype)
        return x * factor, factor


class AlphaDropoutPrim(InferenceIdentity):
    def noise(self, x, rng, rate, noise_shape=None, seed=None):
        if rate <= 0:
            return x, None
        shape = (
            x.shape if noise_shape is None else tuple(x.shape[i] if d is None else d for i, d in enumerate(noise_shape))
        )
        alpha_p = -SELU_ALPHA * SELU_SCALE
        kept = (rng.random(shape) >= rate).astype(x.dtype)
        a = ((1 - rate) * (1 + rate * alpha_p**2)) ** -0.5
        b = -a * alpha_p * rate
        return (a * (x * kept + alpha_p * (1 - kept)) + b).astype(x.dtype), (a * kept).astype(x.dtype)


GAUSSIAN_NOISE = GaussianNoisePrim("gaussian_noise")
GAUSSIAN_DROPOUT = GaussianDropoutPrim("gaussian_dropout")
ALPHA_DROPOUT = AlphaDropoutPrim("alpha_dropout")
