"""The training-time weight update of ``SpectralNormalization`` (Keras 3 semantics).

Keras' ``SpectralNormalization.call(training=True)`` runs a power iteration on the wrapped
layer's kernel, *assigns* the kernel divided by its estimated largest singular value and the new
``vector_u`` to the variables, then calls the layer, which reads the assigned kernel. The
assignment is a side effect, not part of the differentiated computation (Keras' torch backend
copies under ``no_grad``), so the gradient reaches the kernel through the wrapped layer only.

irtool records this as one primitive on the wrapper's *input*: ``x -> x``, whose training kernel
updates the variables in place (like BatchNormalization's moving statistics). Because the wrapped
layer reads the primitive's output, every schedule runs the update before the layer reads the
kernel; at inference (and in ONNX) the primitive is the identity, which the lowering drops.
"""

from __future__ import annotations

import numpy as np

from irtool.ir.spec import TensorSpec
from irtool.ops.core import Primitive, apply

# Keras' ``ops.normalize`` clips the inverse norm at ``1 / backend.epsilon()``.
_EPSILON = 1e-7


def _l2_normalize(v: np.ndarray) -> np.ndarray:
    """``v / ||v||`` over all elements, as Keras' ``normalize(v, axis=None)`` (``v * rsqrt``)."""
    inv_norm = np.minimum(1 / np.sqrt(np.sum(np.square(v))), np.asarray(1 / _EPSILON, v.dtype))
    return v * inv_norm.astype(v.dtype)


def spectral_normalized(kernel: np.ndarray, vector_u: np.ndarray, power_iterations: int):
    """``(new vector_u, kernel / sigma)``: Keras' ``normalized_weights``, in NumPy."""
    weights = kernel.reshape(-1, kernel.shape[-1])
    u = vector_u
    for _ in range(power_iterations):
        v = _l2_normalize(u @ weights.T)
        u = _l2_normalize(v @ weights)
    sigma = (v @ weights) @ u.T  # (1, 1)
    return u.astype(vector_u.dtype), (kernel / sigma).astype(kernel.dtype)


class SpectralNormUpdate(Primitive):
    """``x -> x``; when training, first replaces ``layer.kernel`` by its spectral normalization
    and ``layer.vector_u`` by the power iteration's new vector, in place (skipped when the kernel
    is all zeros, as in Keras).

    Attributes: ``layer`` (the ``SpectralNormalization`` wrapper, whose ``kernel``/``vector_u``
    variables are read and updated when the kernel runs; ``None`` in isolation),
    ``power_iterations`` and ``training`` (``True``: update in every mode; ``None``: update when
    the program trains).
    """

    name = "spectral_norm_update"

    def infer(self, specs, **attrs):
        (x,) = specs
        return [TensorSpec(x.shape, x.dtype)]

    def forward(self, x, layer=None, power_iterations=1, training=None):
        if training is True and layer is not None:  # an eager ``layer(x, training=True)``
            _update(layer, power_iterations)
        return x

    def vjp(self, cotangents, inputs, outputs, **attrs):
        return [cotangents[0]]

    def to_onnx(self, ctx, ins, outs, **attrs):
        ctx.node("Identity", ins, outs)

    # -- training ------------------------------------------------------------------------------
    def inference_attrs(self, attrs):
        return None if attrs.get("training") is not True else attrs  # None: the identity

    def training_kernel(self, attrs, rng):
        layer = attrs.get("layer")
        if layer is None or attrs.get("training") is False:
            return super().kernel(attrs)
        power_iterations = attrs["power_iterations"]

        def run(x):
            _update(layer, power_iterations)
            return x

        return run


def _update(layer, power_iterations: int) -> None:
    """Assign the normalized kernel and the new ``vector_u`` (Keras skips an all-zero kernel)."""
    kernel = layer.kernel._value
    if np.any(kernel != 0):
        new_u, new_kernel = spectral_normalized(kernel, layer.vector_u._value, int(power_iterations))
        # In place: the executor and the gradient program hold these very arrays.
        layer.vector_u._value[...] = new_u
        kernel[...] = new_kernel


SPECTRAL_NORM_UPDATE = SpectralNormUpdate()


def spectral_norm_update(x, layer, power_iterations: int, training=None):
    """``x``, recorded so that training first spectrally normalizes ``layer``'s kernel."""
    attrs = dict(layer=layer, power_iterations=int(power_iterations), training=True if training else None)
    return apply(SPECTRAL_NORM_UPDATE, [x], **attrs)[0]
