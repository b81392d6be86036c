"""Regularization layers that are the identity at inference: SpatialDropout1D/2D/3D,
GaussianNoise, GaussianDropout, AlphaDropout and ActivityRegularization.

In a graph each records a primitive that is the identity at inference (no ONNX node is left
after export) and applies its noise in training mode (its training kernel); a layer called with
``training=False`` records no noise at all. Called eagerly on arrays with ``training=True`` they
apply their noise in NumPy, like ``Dropout``. All pass masks through.
"""

from __future__ import annotations

from irtool import random
from irtool.layers.dropout import Dropout
from irtool.layers.input_spec import InputSpec
from irtool.layers.layer import Layer
from irtool.ops.conv_utils import standardize_data_format
from irtool.ops.core import SymbolicTensor, apply
from irtool.ops.noise import ALPHA_DROPOUT, GAUSSIAN_DROPOUT, GAUSSIAN_NOISE


def _check_rate(rate, what: str = "rate") -> None:
    if not 0 <= rate <= 1:
        raise ValueError(
            f"Invalid value received for argument `{what}`. Expected a float value between 0 and 1. "
            f"Received: {what}={rate}"
        )


class _SpatialDropout(Dropout):
    """Dropout of whole channels: the noise has size 1 along the spatial axes."""

    _ndim = 3

    def __init__(self, rate, seed=None, name=None, dtype=None):
        super().__init__(rate, seed=seed, name=name, dtype=dtype)
        self.input_spec = InputSpec(ndim=self._ndim)

    def _noise_shape(self, shape):
        if getattr(self, "data_format", "channels_last") == "channels_first":
            return (shape[0], shape[1]) + (1,) * (self._ndim - 2)
        return (shape[0],) + (1,) * (self._ndim - 2) + (shape[-1],)

    def get_config(self):
        # Keras' spatial dropouts report only these (no `trainable`, dtype as a plain name).
        return {"rate": self.rate, "seed": self.seed, "name": self.name, "dtype": self.dtype}


class SpatialDropout1D(_SpatialDropout):
    """Drops whole feature maps of ``(batch, steps, channels)`` inputs when training."""

    _ndim = 3


class SpatialDropout2D(_SpatialDropout):
    """Drops whole channels of 4D inputs (``data_format`` says where the channels are)."""

    _ndim = 4

    def __init__(self, rate, data_format=None, seed=None, name=None, dtype=None):
        super().__init__(rate, seed=seed, name=name, dtype=dtype)
        self.data_format = standardize_data_format(data_format)

    def get_config(self):
        return {**super().get_config(), "data_format": self.data_format}


class SpatialDropout3D(SpatialDropout2D):
    """Drops whole channels of 5D inputs."""

    _ndim = 5


class _Noise(Layer):
    """A layer whose graph is one inference-identity primitive ``_prim`` with ``_attrs()``."""

    _prim = None

    def __init__(self, seed=None, **kwargs):
        super().__init__(**kwargs)
        self.seed = seed
        self.supports_masking = True
        self.built = True

    def call(self, inputs, training=None):
        if isinstance(inputs, SymbolicTensor):
            if training is not None and not training:  # called with training=False: never active
                return inputs
            return apply(self._prim, [inputs], **self._attrs())[0]
        if training and self._active():
            return self._prim.training_forward(inputs, random.layer_generator(self, self.seed), **self._attrs())
        return inputs

    def compute_output_shape(self, input_shape):
        return tuple(input_shape)


class GaussianNoise(_Noise):
    """Adds zero-mean Gaussian noise of ``stddev`` when training."""

    _prim = GAUSSIAN_NOISE

    def __init__(self, stddev, seed=None, **kwargs):
        super().__init__(seed=seed, **kwargs)
        _check_rate(stddev, "stddev")
        self.stddev = stddev

    def _active(self):
        return self.stddev > 0

    def _attrs(self):
        return {"stddev": float(self.stddev), "seed": self.seed}

    def get_config(self):
        return {**super().get_config(), "stddev": self.stddev, "seed": self.seed}


class GaussianDropout(_Noise):
    """Multiplies by Gaussian noise of mean 1 and variance ``rate / (1 - rate)`` when training."""

    _prim = GAUSSIAN_DROPOUT

    def __init__(self, rate, seed=None, **kwargs):
        super().__init__(seed=seed, **kwargs)
        _check_rate(rate)
        self.rate = rate

    def _active(self):
        return self.rate > 0

    def _attrs(self):
        return {"rate": float(self.rate), "seed": self.seed}

    def get_config(self):
        return {**super().get_config(), "rate": self.rate, "seed": self.seed}


class AlphaDropout(_Noise):
    """Dropout that keeps the self-normalizing property of SELU networks when training."""

    _prim = ALPHA_DROPOUT

    def __init__(self, rate, noise_shape=None, seed=None, **kwargs):
        super().__init__(seed=seed, **kwargs)
        _check_rate(rate)
        self.rate = rate
        self.noise_shape = noise_shape

    def _active(self):
        return self.rate > 0

    def _attrs(self):
        noise_shape = None if self.noise_shape is None else tuple(self.noise_shape)
        return {"rate": float(self.rate), "noise_shape": noise_shape, "seed": self.seed}

    def get_config(self):
        return {**super().get_config(), "rate": self.rate, "seed": self.seed, "noise_shape": self.noise_shape}


class ActivityRegularization(Layer):
    """The identity; when training, the trainer adds ``(l1 * sum(|x|) + l2 * sum(x**2)) / batch_size``
    to the loss (``train.trainer.add_regularization_losses``)."""

    def __init__(self, l1=0.0, l2=0.0, **kwargs):
        super().__init__(**kwargs)
        self.supports_masking = True
        self.l1 = l1
        self.l2 = l2
        self.built = True

    def call(self, inputs):
        return inputs

    def compute_output_shape(self, input_shape):
        return tuple(input_shape)

    def get_config(self):
        config = super().get_config()
        config.pop("activity_regularizer", None)
        config.update({"l1": self.l1, "l2": self.l2})
        return config
