"""Weight initializers with Keras' names, defaults and fan rules.

>>> from irtool import initializers
>>> init = initializers.get("glorot_uniform")
>>> init((784, 64)).shape
(784, 64)
"""

from __future__ import annotations

import math

import numpy as np

from irtool import random
from irtool.ir.dtypes import standardize_dtype
from irtool.ir.naming import to_snake_case
from irtool.ops.signal import get_window
from irtool.serialization.keras_objects import deserialize_keras_object, register_namespace, serialize_keras_object
from irtool.serialization.object_registration import get_registered_object


class Initializer:
    """Base class: ``init(shape, dtype=None) -> np.ndarray``."""

    def __call__(self, shape, dtype=None) -> np.ndarray:
        raise NotImplementedError

    def get_config(self) -> dict:
        return {}

    @classmethod
    def from_config(cls, config: dict):
        return cls(**config)


class Zeros(Initializer):
    def __call__(self, shape, dtype=None):
        return np.zeros(shape, dtype=standardize_dtype(dtype))


class Ones(Initializer):
    def __call__(self, shape, dtype=None):
        return np.ones(shape, dtype=standardize_dtype(dtype))


class Constant(Initializer):
    def __init__(self, value=0.0):
        self.value = value

    def __call__(self, shape, dtype=None):
        return np.broadcast_to(np.asarray(self.value, standardize_dtype(dtype)), shape).copy()

    def get_config(self):
        return {"value": self.value}


class _Random(Initializer):
    def __init__(self, seed=None):
        self.seed = seed

    def _rng(self):
        return random.generator(self.seed)

    def get_config(self):
        return {"seed": self.seed}


class RandomNormal(_Random):
    def __init__(self, mean=0.0, stddev=0.05, seed=None):
        super().__init__(seed)
        self.mean, self.stddev = mean, stddev

    def __call__(self, shape, dtype=None):
        return self._rng().normal(self.mean, self.stddev, shape).astype(standardize_dtype(dtype))

    def get_config(self):
        return {"mean": self.mean, "stddev": self.stddev, "seed": self.seed}


class RandomUniform(_Random):
    def __init__(self, minval=-0.05, maxval=0.05, seed=None):
        super().__init__(seed)
        self.minval, self.maxval = minval, maxval

    def __call__(self, shape, dtype=None):
        return self._rng().uniform(self.minval, self.maxval, shape).astype(standardize_dtype(dtype))

    def get_config(self):
        return {"minval": self.minval, "maxval": self.maxval, "seed": self.seed}


def _truncated_normal(rng, mean, stddev, shape):
    """Normal samples redrawn until within two standard deviations (as Keras/TF do)."""
    out = rng.normal(0.0, 1.0, shape)
    bad = np.abs(out) > 2
    while bad.any():
        out[bad] = rng.normal(0.0, 1.0, int(bad.sum()))
        bad = np.abs(out) > 2
    return mean + stddev * out


class TruncatedNormal(RandomNormal):
    def __call__(self, shape, dtype=None):
        return _truncated_normal(self._rng(), self.mean, self.stddev, shape).astype(standardize_dtype(dtype))


def compute_fans(shape, input_axes=None, output_axes=None) -> tuple:
    """``(fan_in, fan_out)`` of a weight shape; ``input_axes``/``output_axes`` name the axes
    that count as input and output units (both given), else Keras' dense/conv rule."""
    shape = tuple(shape)
    if input_axes is not None and output_axes is not None:
        return math.prod(shape[a] for a in input_axes), math.prod(shape[a] for a in output_axes)
    if len(shape) == 0:
        return 1, 1
    if len(shape) == 1:
        return shape[0], shape[0]
    if len(shape) == 2:
        return shape[0], shape[1]
    receptive = math.prod(shape[:-2])
    return shape[-2] * receptive, shape[-1] * receptive


class VarianceScaling(_Random):
    def __init__(
        self, scale=1.0, mode="fan_in", distribution="truncated_normal", seed=None, input_axes=None, output_axes=None
    ):
        super().__init__(seed)
        if mode not in ("fan_in", "fan_out", "fan_avg"):
            raise ValueError(f"Invalid `mode` argument: expected one of fan_in, fan_out, fan_avg. Received: {mode}")
        if distribution not in ("truncated_normal", "untruncated_normal", "uniform"):
            raise ValueError(f"Invalid `distribution` argument: {distribution}")
        self.scale, self.mode, self.distribution = scale, mode, distribution
        self.input_axes = None if input_axes is None else list(input_axes)
        self.output_axes = None if output_axes is None else list(output_axes)

    def __call__(self, shape, dtype=None):
        fan_in, fan_out = compute_fans(shape, self.input_axes, self.output_axes)
        n = {"fan_in": fan_in, "fan_out": fan_out, "fan_avg": (fan_in + fan_out) / 2.0}[self.mode]
        scale = self.scale / max(1.0, n)
        rng = self._rng()
        if self.distribution == "truncated_normal":
            values = _truncated_normal(rng, 0.0, math.sqrt(scale) / 0.87962566103423978, shape)
        elif self.distribution == "untruncated_normal":
            values = rng.normal(0.0, math.sqrt(scale), shape)
        else:
            limit = math.sqrt(3.0 * scale)
            values = rng.uniform(-limit, limit, shape)
        return values.astype(standardize_dtype(dtype))

    def get_config(self):
        return {
            "seed": self.seed,
            "scale": self.scale,
            "mode": self.mode,
            "distribution": self.distribution,
            "input_axes": self.input_axes,
            "output_axes": self.output_axes,
        }


def _variant(name, scale, mode, distribution):
    class Variant(VarianceScaling):
        def __init__(self, seed=None, input_axes=None, output_axes=None):
            super().__init__(scale, mode, distribution, seed, input_axes, output_axes)

        def get_config(self):
            return {"seed": self.seed, "input_axes": self.input_axes, "output_axes": self.output_axes}

    Variant.__name__ = Variant.__qualname__ = name
    return Variant


GlorotUniform = _variant("GlorotUniform", 1.0, "fan_avg", "uniform")
GlorotNormal = _variant("GlorotNormal", 1.0, "fan_avg", "truncated_normal")
HeNormal = _variant("HeNormal", 2.0, "fan_in", "truncated_normal")
HeUniform = _variant("HeUniform", 2.0, "fan_in", "uniform")
LecunNormal = _variant("LecunNormal", 1.0, "fan_in", "truncated_normal")
LecunUniform = _variant("LecunUniform", 1.0, "fan_in", "uniform")


class Orthogonal(_Random):
    def __init__(self, gain=1.0, seed=None):
        super().__init__(seed)
        self.gain = gain

    def __call__(self, shape, dtype=None):
        rows = math.prod(shape[:-1]) if len(shape) > 1 else 1
        cols = shape[-1]
        flat = self._rng().normal(0.0, 1.0, (max(rows, cols), min(rows, cols)))
        q, r = np.linalg.qr(flat)
        q *= np.sign(np.diag(r))
        if rows < cols:
            q = q.T
        return (self.gain * q[:rows, :cols]).reshape(shape).astype(standardize_dtype(dtype))

    def get_config(self):
        return {"gain": self.gain, "seed": self.seed}


class Identity(Initializer):
    def __init__(self, gain=1.0):
        self.gain = gain

    def __call__(self, shape, dtype=None):
        if len(shape) != 2:
            raise ValueError(f"Identity initializer needs a 2D shape. Received: shape={shape}")
        return (self.gain * np.eye(*shape)).astype(standardize_dtype(dtype))

    def get_config(self):
        return {"gain": self.gain}


class STFT(Initializer):
    """Kernels of a convolution that computes one side (``"real"`` or ``"imag"``) of a short-time
    Fourier transform (Keras' ``STFT``, used by ``STFTSpectrogram``): for a shape
    ``(frame_length, 1, bins)``, ``cos`` (or ``sin``) of ``-2 pi n k / (2 (bins - 1))``, times the
    window (a name of ``ops.signal.WINDOWS``, samples, or ``None``) divided by its L2 norm
    (``scaling="density"``) or its sum (``"spectrum"``)."""

    def __init__(self, side="real", window="hann", scaling="density", periodic=False):
        if side not in ("real", "imag"):
            raise ValueError(f"side should be 'real' or 'imag', not {side}")
        if isinstance(window, str):
            get_window(window, 1, periodic)  # an unknown name fails here, as in Keras
        if scaling is not None and scaling not in ("density", "spectrum"):
            raise ValueError(
                f"Scaling is invalid, it must be `None`, 'density' or 'spectrum'. Received scaling={scaling}"
            )
        self.side = side
        self.window = window
        self.scaling = scaling
        self.periodic = periodic

    def __call__(self, shape, dtype=None):
        dtype = standardize_dtype(dtype)
        frame_length, _, bins = shape
        # Keras' float arithmetic in the weights' dtype, in its order, so the kernels agree bitwise
        # as far as cos/sin do.
        time = np.arange(frame_length, dtype=dtype).reshape(frame_length, 1, 1)
        freq = np.arange(bins, dtype=dtype).reshape(1, 1, bins) / np.asarray((bins - 1) * 2, dtype)
        args = (np.asarray(-2, dtype) * time) * freq * np.arccos(np.asarray(-1, dtype))
        kernel = np.cos(args) if self.side == "real" else np.sin(args)
        if self.window is None:
            return kernel.astype(dtype)
        win = self.window
        if isinstance(win, str):
            win = get_window(win, frame_length, self.periodic)
        win = np.asarray(win, dtype)
        if win.shape != (frame_length,):
            raise ValueError(
                f"The shape of `window` must be equal to [frame_length]. Received: window shape={win.shape}"
            )
        win = win.reshape(frame_length, 1, 1)
        scaling = np.asarray(1, dtype)
        if self.scaling == "density":
            scaling = np.sqrt(np.sum(np.square(win)))
        elif self.scaling == "spectrum":
            scaling = np.sum(np.abs(win))
        return (kernel * win / scaling).astype(dtype)

    def get_config(self):
        return {"side": self.side, "window": self.window, "periodic": self.periodic, "scaling": self.scaling}


_CLASSES = [
    Zeros,
    Ones,
    Constant,
    RandomNormal,
    RandomUniform,
    TruncatedNormal,
    VarianceScaling,
    GlorotUniform,
    GlorotNormal,
    HeNormal,
    HeUniform,
    LecunNormal,
    LecunUniform,
    Orthogonal,
    Identity,
    STFT,
]
_BY_NAME = {}
for _cls in _CLASSES:
    _BY_NAME[_cls.__name__] = _cls
    _BY_NAME[to_snake_case(_cls.__name__)] = _cls
_BY_NAME.update(
    {
        "uniform": RandomUniform,
        "normal": RandomNormal,
        "zero": Zeros,
        "one": Ones,
        "IdentityInitializer": Identity,
        "OrthogonalInitializer": Orthogonal,
        "STFTInitializer": STFT,
    }
)


def get(identifier) -> Initializer:
    """An initializer from a name (``"glorot_uniform"``), config dict, class, instance or callable."""
    if identifier is None:
        return None
    if isinstance(identifier, Initializer) or callable(identifier) and not isinstance(identifier, type):
        return identifier
    if isinstance(identifier, type) and issubclass(identifier, Initializer):
        return identifier()
    if isinstance(identifier, str):
        cls = _BY_NAME.get(identifier)
        if cls is None:
            cls = get_registered_object(identifier)
        if cls is None:
            raise ValueError(f"Could not interpret initializer identifier: {identifier}")
        return cls() if isinstance(cls, type) else cls
    if isinstance(identifier, dict) and "class_name" in identifier:
        return deserialize(identifier)
    raise ValueError(f"Could not interpret initializer identifier: {identifier}")


def serialize(initializer) -> dict:
    """Keras' serialized form: ``{"module": "keras.initializers", "class_name": ..., "config": ...}``."""

    return serialize_keras_object(initializer)


def deserialize(config, custom_objects=None) -> Initializer:
    """An initializer from its serialized form (custom ones through ``custom_objects``)."""

    return deserialize_keras_object(config, custom_objects=custom_objects, module_objects=_BY_NAME)


register_namespace("keras.initializers", globals())
