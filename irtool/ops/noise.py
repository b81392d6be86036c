"""Noise primitives of the regularization layers (GaussianNoise, GaussianDropout, AlphaDropout).

In a graph they are the identity (inference): their NumPy kernel returns the input and their
lowering is an ``Identity`` that the export drops. They are recorded as their own primitives,
with the layer's parameters as attributes, so that the trainer can give them their
training-time kernels (``training_forward`` here is what such a kernel computes).
"""

from __future__ import annotations

import math

import numpy as np

from irtool.ir.spec import TensorSpec
from irtool.ops.core import Primitive
from irtool.ops.elementwise import SELU_ALPHA, SELU_SCALE


class InferenceIdentity(Primitive):
    """A primitive that is the identity at inference (and elementwise, for layout passes)."""

    elementwise = True

    def __init__(self, name: str):
        self.name = name

    def infer(self, specs, **attrs):
        return [TensorSpec(specs[0].shape, specs[0].dtype)]

    def forward(self, x, **attrs):
        return x

    def to_onnx(self, ctx, ins, outs, **attrs):
        ctx.node("Identity", ins, outs)

    def training_forward(self, x, rng: np.random.Generator, **attrs):
        raise NotImplementedError


class GaussianNoisePrim(InferenceIdentity):
    def training_forward(self, x, rng, stddev, seed=None):
        return (x + rng.normal(0.0, stddev, x.shape)).astype(x.dtype)


class GaussianDropoutPrim(InferenceIdentity):
    def training_forward(self, x, rng, rate, seed=None):
        stddev = math.sqrt(rate / (1.0 - rate))
        return (x * rng.normal(1.0, stddev, x.shape)).astype(x.dtype)


class AlphaDropoutPrim(InferenceIdentity):
    def training_forward(self, x, rng, rate, noise_shape=None, seed=None):
        shape = (
            x.shape if noise_shape is None else tuple(x.shape[i] if d is None else d for i, d in enumerate(noise_shape))
        )
        alpha_p = -SELU_ALPHA * SELU_SCALE
        kept = (rng.random(shape) >= rate).astype(x.dtype)
        a = ((1 - rate) * (1 + rate * alpha_p**2)) ** -0.5
        b = -a * alpha_p * rate
        return (a * (x * kept + alpha_p * (1 - kept)) + b).astype(x.dtype)


GAUSSIAN_NOISE = GaussianNoisePrim("gaussian_noise")
GAUSSIAN_DROPOUT = GaussianDropoutPrim("gaussian_dropout")
ALPHA_DROPOUT = AlphaDropoutPrim("alpha_dropout")
