"""Dropout: identity at inference; zeroes ``rate`` of its inputs (scaled) when training."""

from __future__ import annotations

import numpy as np

from irtool import random
from irtool.ir.spec import TensorSpec
from irtool.layers.layer import Layer
from irtool.ops.core import Primitive, SymbolicTensor, apply
from irtool.ops.gradients import unbroadcast


class DropoutPrim(Primitive):
    """Dropout: the identity at inference (lowered to nothing); its training kernel zeroes
    ``rate`` of the inputs (whole ``noise_shape`` blocks) and scales the rest by ``1 / (1 - rate)``.

    ``always=True`` (a layer called with ``training=True`` on symbolic tensors, Keras'
    Monte-Carlo dropout) keeps it active at inference too: ``predict`` draws a new mask per call
    and the export is an ONNX ``Dropout`` in training mode."""

    elementwise = True

    name = "dropout"

    def infer(self, specs, rate, noise_shape, seed, always=False):
        return [TensorSpec(specs[0].shape, specs[0].dtype)]

    def forward(self, x, rate, noise_shape, seed, always=False):
        if not always or rate <= 0:
            return x
        return self.training_kernel({"rate": rate, "noise_shape": noise_shape}, random.generator())(x)[0]

    def kernel(self, attrs):
        if not attrs.get("always") or attrs["rate"] <= 0:
            return super().kernel(attrs)
        # Each compiled always-active dropout draws from its own stream (seeded by ``seed``).
        run = self.training_kernel(attrs, np.random.default_rng(attrs["seed"]))
        return lambda x: run(x)[0]

    def inference_attrs(self, attrs):
        return attrs if attrs.get("always") else None  # an explicit training=True wins, as in Keras

    def vjp(self, cotangents, inputs, outputs, rate, noise_shape, seed, always=False):
        if always and rate > 0:
            raise NotImplementedError(
                "The gradient of an always-active dropout (called with training=True) needs its mask: "
                "differentiate it in a training program."
            )
        return [cotangents[0]]

    returns_aux = True

    def training_kernel(self, attrs, rng):
        rate, noise_shape = attrs["rate"], attrs["noise_shape"]

        def run(x):
            if rate <= 0:
                return x, None
            shape = noise_shape or x.shape
            shape = tuple(x.shape[i] if d is None else d for i, d in enumerate(shape))
            scale = (rng.random(shape) >= rate) / np.asarray(1 - rate, x.dtype)
            scale = scale.astype(x.dtype)
            return x * scale, scale

        return run

    def training_vjp(self, cotangents, inputs, outputs, aux, rate, noise_shape, seed, always=False):
        return [cotangents[0] if aux is None else unbroadcast(cotangents[0] * aux, inputs[0].shape)]

    def to_onnx(self, ctx, ins, outs, rate, noise_shape, seed, always=False):
        if not always or rate <= 0:
            ctx.node("Identity", ins, outs)
            return
        if noise_shape is not None:
            ctx.fail(self, "a dropout called with training=True and a noise_shape has no ONNX form")
        dtype = ctx.dtype_of(ins[0])
        ratio = ctx.const(np.asarray(rate, dtype), f"{ctx.scope}/ratio")
        training = ctx.const(np.asarray(True), f"{ctx.scope}/training_mode")
        extra = {} if seed is None else {"seed": int(seed)}
        ctx.node("Dropout", [ins[0], ratio, training], outs, **extra)


DROPOUT = DropoutPrim()


class Dropout(Layer):
    """Randomly sets inputs to 0 with frequency ``rate`` during training (scaling the rest)."""

    supports_masking = True

    def __init__(self, rate, noise_shape=None, seed=None, **kwargs):
        super().__init__(**kwargs)
        if not 0 <= rate <= 1:
            raise ValueError(
                f"Invalid value received for argument `rate`. Expected a float value between 0 and 1. Received: rate={rate}"
            )
        self.rate = rate
        self.noise_shape = None if noise_shape is None else tuple(noise_shape)
        self.seed = seed
        self.built = True

    def _noise_shape(self, shape):
        """The shape of the mask (``None`` entries: the input's size), broadcast over the input."""
        return self.noise_shape

    def call(self, inputs, training=None):
        noise_shape = self._noise_shape(tuple(inputs.shape))
        if isinstance(inputs, SymbolicTensor):
            if training is not None and not training:  # called with training=False: never active
                return inputs
            attrs = dict(rate=float(self.rate), noise_shape=noise_shape, seed=self.seed)
            if training:  # Keras: an explicit training=True keeps it active at inference (MC dropout)
                attrs["always"] = True
            return apply(DROPOUT, [inputs], **attrs)[0]
        if training and self.rate > 0:
            shape = noise_shape or inputs.shape
            shape = tuple(inputs.shape[i] if d is None else d for i, d in enumerate(shape))
            keep = random.layer_generator(self, self.seed).random(shape) >= self.rate
            return np.where(keep, inputs / np.asarray(1 - self.rate, inputs.dtype), 0).astype(inputs.dtype)
        return inputs

    def get_config(self):
        config = super().get_config()
        config.update({"rate": self.rate, "seed": self.seed, "noise_shape": self.noise_shape})
        return config
