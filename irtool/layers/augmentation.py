"""Keras 3.15's image augmentation layers: RandomFlip, RandomRotation, RandomZoom,
RandomTranslation, RandomContrast, RandomBrightness, RandomGrayscale, RandomInvert,
RandomPosterization, Solarization, RandomColorDegeneration, RandomSaturation, RandomHue,
RandomSharpness, RandomErasing, RandomShear, RandomCrop, RandomGaussianBlur,
RandomColorJitter, RandomPerspective, MixUp, CutMix, RandomElasticTransform, RandAugment, AugMix, Equalization (not random, but like Keras only in training) and AutoContrast (which, as in Keras, is not random and acts at inference too:
it is written in ``irtool.ops``, so the export reproduces it).

As in Keras they only act when training: at inference (``predict``, a nested call with
``training=False``, the ONNX export) each is the identity. In a graph each records one
primitive of ``irtool.ops.augmentation`` that is the identity at inference and applies Keras'
random transform in the trainer (seeded by the trainer's generator); called eagerly on arrays
with ``training=True`` they transform in NumPy with the layer's generator (``seed``).
Constructor arguments, validation messages and ``get_config`` follow Keras.
"""

from __future__ import annotations

import random as py_random

from irtool import ops, random
from irtool.layers.layer import Layer
from irtool.ops import augmentation as aug
from irtool.ops.conv_utils import standardize_data_format
from irtool.ops.core import SymbolicTensor, apply

_FILL_MODES = ("reflect", "wrap", "constant", "nearest")
_INTERPOLATIONS = ("nearest", "bilinear")


def _base_factor(factor, bounds):
    """Keras' ``BaseImagePreprocessingLayer._set_factor``: ``(lower, upper)`` within ``bounds``."""
    message = (
        "The `factor` argument should be a number (or a list of two numbers) "
        f"in the range [{bounds[0]}, {bounds[1]}]. Received: factor={factor}"
    )
    if isinstance(factor, (tuple, list)):
        if len(factor) != 2 or factor[0] > bounds[1] or factor[1] < bounds[0]:
            raise ValueError(message)
        return tuple(sorted(factor))
    if isinstance(factor, (int, float)):
        if factor < bounds[0] or factor > bounds[1]:
            raise ValueError(message)
        factor = abs(factor)
        return max(-factor, bounds[0]), factor
    raise ValueError(message)


def _check_modes(fill_mode, interpolation):
    if fill_mode not in _FILL_MODES:
        raise NotImplementedError(f"Unknown `fill_mode` {fill_mode}. Expected of one {_FILL_MODES}.")
    if interpolation not in _INTERPOLATIONS:
        raise NotImplementedError(f"Unknown `interpolation` {interpolation}. Expected of one {_INTERPOLATIONS}.")


class _Augmentation(Layer):
    """A layer whose graph is one augmentation primitive ``_prim`` with ``_attrs()``."""

    _prim = None

    def __init__(self, seed=None, data_format=None, **kwargs):
        super().__init__(**kwargs)
        self.seed = seed
        self.data_format = standardize_data_format(data_format)
        self.built = True

    def call(self, inputs, training=True):
        rank = len(inputs.shape)
        if rank not in (3, 4):
            raise ValueError(
                "Expected image tensor to have rank 3 (single image) "
                f"or 4 (batch of images). Received: data.shape={tuple(inputs.shape)}"
            )
        if isinstance(inputs, SymbolicTensor):
            if training is not None and not training:  # called with training=False: never active
                return inputs
            return apply(self._prim, [inputs], **self._attrs())[0]
        if training:
            return self._prim.training_forward(inputs, random.layer_generator(self, self.seed), **self._attrs())
        return inputs

    def compute_output_shape(self, input_shape):
        return tuple(input_shape)

    def get_config(self):
        return {**super().get_config(), "data_format": self.data_format}


class RandomFlip(_Augmentation):
    """Flips each image with probability 1/2 (``horizontal``, ``vertical`` or both at once)."""

    _prim = aug.RANDOM_FLIP

    def __init__(self, mode="horizontal_and_vertical", seed=None, data_format=None, **kwargs):
        super().__init__(seed=seed, data_format=data_format, **kwargs)
        self.mode = mode

    def _attrs(self):
        return {"mode": self.mode, "data_format": self.data_format, "seed": self.seed}

    def get_config(self):
        return {**super().get_config(), "seed": self.seed, "mode": self.mode}


class _Resampling(_Augmentation):
    """Shared arguments of the affine layers (fill and interpolation)."""

    def __init__(self, fill_mode, interpolation, seed, fill_value, data_format, **kwargs):
        super().__init__(seed=seed, data_format=data_format, **kwargs)
        _check_modes(fill_mode, interpolation)
        self.fill_mode = fill_mode
        self.interpolation = interpolation
        self.fill_value = fill_value

    def _attrs(self):
        return {
            "fill_mode": self.fill_mode,
            "interpolation": self.interpolation,
            "fill_value": float(self.fill_value),
            "data_format": self.data_format,
            "seed": self.seed,
        }

    def get_config(self):
        return {
            **super().get_config(),
            "fill_mode": self.fill_mode,
            "fill_value": self.fill_value,
            "interpolation": self.interpolation,
            "seed": self.seed,
        }


class RandomRotation(_Resampling):
    """Rotates each image by a random ``factor`` of a full turn about its centre."""

    _prim = aug.RANDOM_ROTATION

    def __init__(
        self,
        factor,
        fill_mode="reflect",
        interpolation="bilinear",
        seed=None,
        fill_value=0.0,
        data_format=None,
        **kwargs,
    ):
        self.factor = _base_factor(factor, (-1, 1))
        super().__init__(fill_mode, interpolation, seed, fill_value, data_format, **kwargs)

    def _attrs(self):
        return {**super()._attrs(), "factor": tuple(float(f) for f in self.factor)}

    def get_config(self):
        return {**super().get_config(), "factor": self.factor}


def _range_factor(factor, name, message, open_low=False, low=-1.0):
    """RandomZoom's, RandomTranslation's and RandomShear's factor checks: ``(lower, upper)`` with
    both in [``low``, 1] (``low`` excluded with ``open_low``); a number ``f`` gives ``(-|f|, |f|)``."""

    def check(value):
        if value > 1.0 or (value <= low if open_low else value < low):
            raise ValueError(message + f"Received: input_number={value}")

    if isinstance(factor, (tuple, list)):
        if len(factor) != 2:
            raise ValueError(message + f"Received: {name}={factor}")
        check(factor[0])
        check(factor[1])
        return tuple(sorted(factor))
    if isinstance(factor, (int, float)):
        check(factor)
        return -abs(factor), abs(factor)
    raise ValueError(message + f"Received: {name}={factor}")


class _ZoomOrShift(_Resampling):
    _MESSAGE = ""
    _OPEN_LOW = False

    def __init__(self, height_factor, width_factor, fill_mode, interpolation, seed, fill_value, data_format, **kw):
        super().__init__(fill_mode, interpolation, seed, fill_value, data_format, **kw)
        self.height_factor = height_factor
        self.width_factor = width_factor
        self._height_range = _range_factor(height_factor, "height_factor", self._MESSAGE, self._OPEN_LOW)
        self._width_range = None
        if width_factor is not None:
            self._width_range = _range_factor(width_factor, "width_factor", self._MESSAGE, self._OPEN_LOW)

    def _attrs(self):
        ranges = {"height_range": tuple(float(f) for f in self._height_range)}
        ranges["width_range"] = None if self._width_range is None else tuple(float(f) for f in self._width_range)
        return {**super()._attrs(), **ranges}

    def get_config(self):
        return {**super().get_config(), "height_factor": self.height_factor, "width_factor": self.width_factor}


class RandomZoom(_ZoomOrShift):
    """Zooms each image about its centre by ``1 + U(height_factor)`` (negative: zoom in)."""

    _prim = aug.RANDOM_ZOOM
    _MESSAGE = (
        "The `height_factor` and `width_factor` arguments "
        "should be a number (or a list of two numbers) in the range (-1.0, 1.0]. "
    )
    _OPEN_LOW = True

    def __init__(
        self,
        height_factor,
        width_factor=None,
        fill_mode="reflect",
        interpolation="bilinear",
        seed=None,
        fill_value=0.0,
        data_format=None,
        **kwargs,
    ):
        super().__init__(height_factor, width_factor, fill_mode, interpolation, seed, fill_value, data_format, **kwargs)


class RandomTranslation(_ZoomOrShift):
    """Shifts each image by ``U(height_factor) * height`` rows and ``U(width_factor) * width``
    columns."""

    _prim = aug.RANDOM_TRANSLATION
    _MESSAGE = "The `factor` argument should be a number (or a list of two numbers) in the range [-1.0, 1.0]. "

    def __init__(
        self,
        height_factor,
        width_factor,
        fill_mode="reflect",
        interpolation="bilinear",
        seed=None,
        fill_value=0.0,
        data_format=None,
        **kwargs,
    ):
        super().__init__(height_factor, width_factor, fill_mode, interpolation, seed, fill_value, data_format, **kwargs)


class _Colour(_Augmentation):
    _BOUNDS = (-1, 1)

    def __init__(self, factor, value_range=(0, 255), seed=None, data_format=None, **kwargs):
        super().__init__(seed=seed, data_format=data_format, **kwargs)
        self.factor = _base_factor(factor, self._BOUNDS)
        self.value_range = value_range

    def _attrs(self):
        return {
            "factor": tuple(float(f) for f in self.factor),
            "value_range": tuple(float(v) for v in self.value_range),
            "seed": self.seed,
        }

    def get_config(self):
        return {**super().get_config(), "factor": self.factor, "value_range": self.value_range, "seed": self.seed}


class RandomContrast(_Colour):
    """Scales each image's deviation from its mean by ``U(1 - lower, 1 + upper)``, clipped to
    ``value_range`` (Keras' factor bounds are ``[0, 1]``, so a number ``f`` gives ``(0, f)``)."""

    _prim = aug.RANDOM_CONTRAST
    _BOUNDS = (0, 1)

    def _attrs(self):
        return {**super()._attrs(), "data_format": self.data_format}


class RandomBrightness(_Colour):
    """Adds ``U(factor) * (value_range[1] - value_range[0])`` to each image, clipped to the range."""

    _prim = aug.RANDOM_BRIGHTNESS

    def __init__(self, factor, value_range=(0, 255), seed=None, **kwargs):
        super().__init__(factor, value_range, seed=seed, **kwargs)
        if not isinstance(value_range, (tuple, list)) or len(value_range) != 2:
            raise ValueError(
                f"The `value_range` argument should be a list of two numbers. Received: value_range={value_range}"
            )
        self.value_range = sorted(value_range)


def _value_range(value_range, message="The `value_range` argument should be a list of two numbers. "):
    """Keras' ``_set_value_range``: a sorted list of two numbers."""
    if not isinstance(value_range, (tuple, list)) or len(value_range) != 2:
        raise ValueError(message + f"Received: value_range={value_range}")
    return sorted(value_range)


class RandomGrayscale(_Augmentation):
    """Replaces each image by its luminance (``0.2989 R + 0.587 G + 0.114 B`` on every channel)
    with probability ``factor``; 1-channel images are kept."""

    _prim = aug.RANDOM_GRAYSCALE

    def __init__(self, factor=0.5, data_format=None, seed=None, **kwargs):
        super().__init__(seed=seed, data_format=data_format, **kwargs)
        if factor < 0 or factor > 1:
            raise ValueError(f"`factor` should be between 0 and 1. Received: factor={factor}")
        self.factor = factor

    def _attrs(self):
        return {"factor": float(self.factor), "data_format": self.data_format, "seed": self.seed}

    def get_config(self):
        return {**super().get_config(), "factor": self.factor}  # Keras saves no seed here


class RandomInvert(_Augmentation):
    """Inverts each image (``value_range[1] - x``) with a probability drawn from ``factor``."""

    _prim = aug.RANDOM_INVERT

    def __init__(self, factor=1.0, value_range=(0, 255), seed=None, data_format=None, **kwargs):
        super().__init__(seed=seed, data_format=data_format, **kwargs)
        self.factor = _base_factor(factor, (0, 1))
        self.value_range = value_range

    def _attrs(self):
        return {
            "factor": tuple(float(f) for f in self.factor),
            "value_range": tuple(float(v) for v in self.value_range),
            "seed": self.seed,
        }

    def get_config(self):
        return {**super().get_config(), "factor": self.factor, "value_range": self.value_range, "seed": self.seed}


class RandomPosterization(_Augmentation):
    """Keeps ``bits`` bits per 8-bit channel value, ``bits`` drawn per image from ``factor``
    (bounds ``[1, 8]``; as in Keras the upper bound of a range is never drawn)."""

    _prim = aug.RANDOM_POSTERIZATION

    def __init__(self, factor, value_range=(0, 255), data_format=None, seed=None, **kwargs):
        super().__init__(seed=seed, data_format=data_format, **kwargs)
        self.factor = _base_factor(factor, (1, 8))
        self.value_range = _value_range(value_range)

    def _attrs(self):
        return {
            "factor": tuple(float(f) for f in self.factor),
            "value_range": tuple(float(v) for v in self.value_range),
            "seed": self.seed,
        }

    def get_config(self):
        return {**super().get_config(), "factor": self.factor, "value_range": self.value_range, "seed": self.seed}


def _unit_factor(factor, name):
    """Solarization's ``_set_factor``: ``(lower, upper)`` in ``[0, 1]``, a number ``f`` is ``(0, f)``."""
    message = (
        "The `addition_factor` and `threshold_factor` arguments "
        "should be a number (or a list of two numbers) in the range [0, 1]. "
    )

    def check(value):
        if value > 1.0 or value < 0:
            raise ValueError(message + f"Received: input_number={value}")

    if isinstance(factor, (tuple, list)):
        if len(factor) != 2:
            raise ValueError(message + f"Received: {name}={factor}")
        check(factor[0])
        check(factor[1])
        return tuple(sorted(factor))
    if isinstance(factor, (int, float)):
        check(factor)
        return 0, factor
    raise ValueError(message + f"Received: {name}={factor}")


class Solarization(_Augmentation):
    """Keras' Solarization: in training, adds ``U(addition_factor)`` (scaled to [0, 255] as Keras
    does) and inverts the values at or above a threshold drawn from ``threshold_factor``. Like
    Keras, it is the identity at inference."""

    _prim = aug.SOLARIZATION

    def __init__(self, addition_factor=0.0, threshold_factor=0.0, value_range=(0, 255), seed=None, **kwargs):
        super().__init__(seed=seed, **kwargs)
        self.addition_factor = _unit_factor(addition_factor, "addition_factor")
        self.threshold_factor = _unit_factor(threshold_factor, "threshold_factor")
        self.value_range = _value_range(value_range)

    def _attrs(self):
        return {
            "addition_factor": tuple(float(f) for f in self.addition_factor),
            "threshold_factor": tuple(float(f) for f in self.threshold_factor),
            "value_range": tuple(float(v) for v in self.value_range),
            "seed": self.seed,
        }

    def get_config(self):
        return {
            **super().get_config(),
            "value_range": self.value_range,
            "addition_factor": self.addition_factor,
            "threshold_factor": self.threshold_factor,
            "seed": self.seed,
        }


class _ColourRange(_Augmentation):
    """``factor`` by Keras' base ``_set_factor`` within ``_BOUNDS`` and a ``value_range``
    (sorted and checked where Keras does)."""

    _BOUNDS = (-1, 1)
    _SORT_RANGE = True

    def __init__(self, factor, value_range=(0, 255), data_format=None, seed=None, **kwargs):
        super().__init__(seed=seed, data_format=data_format, **kwargs)
        self.factor = _base_factor(factor, self._BOUNDS)
        self.value_range = _value_range(value_range) if self._SORT_RANGE else value_range

    def _attrs(self):
        return {
            "factor": tuple(float(f) for f in self.factor),
            "value_range": tuple(float(v) for v in self.value_range),
            "data_format": self.data_format,
            "seed": self.seed,
        }

    def get_config(self):
        return {**super().get_config(), "factor": self.factor, "value_range": self.value_range, "seed": self.seed}


class RandomColorDegeneration(_ColourRange):
    """Blends each image towards its grayscale version by ``U(factor)`` (Keras' factor bounds
    ``[-1, 1]``), clipped to ``value_range``."""

    _prim = aug.RANDOM_COLOR_DEGENERATION


class RandomSaturation(_ColourRange):
    """Scales each image's HSV saturation by ``f / (1 - f)``, ``f ~ U(factor)`` (0.5: unchanged,
    0: grayscale, 1: fully saturated), as Keras does."""

    _prim = aug.RANDOM_SATURATION


class RandomHue(_ColourRange):
    """Shifts each image's HSV hue by ``±U(factor) / 2`` of a turn (Keras' factor bounds
    ``[0, 1]``); ``value_range`` is kept as given, as Keras does."""

    _prim = aug.RANDOM_HUE
    _BOUNDS = (0, 1)
    _SORT_RANGE = False


class RandomSharpness(_ColourRange):
    """Blends each image with Keras' 3x3 blur by ``1 - 2 U(factor)`` (factor bounds ``[0, 1]``;
    0.5 keeps the image, 0 blurs, 1 sharpens), clipped to ``value_range``."""

    _prim = aug.RANDOM_SHARPNESS
    _BOUNDS = (0, 1)


class AutoContrast(Layer):
    """Stretches each image channel to the whole ``value_range``: ``(x - min) * 255 / (max - min)``
    in Keras' [0, 255] scale, min and max over axes 1 and 2 of the batch (for channels-first
    images Keras reduces over channels and height; so does this layer). A channel whose min
    equals its max is kept (Keras' NaNs replaced by the input). Not random: it acts at inference,
    in training and in the export alike, as in Keras. Unlike Keras, inputs that hold NaN or inf
    are not special-cased."""

    def __init__(self, value_range=(0, 255), data_format=None, **kwargs):
        super().__init__(**kwargs)
        self.data_format = standardize_data_format(data_format)
        self.value_range = _value_range(value_range)
        self.built = True

    def call(self, inputs, training=None):  # the same in training (Keras files record training=True)
        rank = len(inputs.shape)
        if rank not in (3, 4):
            raise ValueError(
                "Expected image tensor to have rank 3 (single image) "
                f"or 4 (batch of images). Received: data.shape={tuple(inputs.shape)}"
            )
        original = ops.cast(inputs, self.dtype)
        low_range, high_range = (float(v) for v in self.value_range)
        images = original
        if (low_range, high_range) != (0.0, 255.0):
            images = ops.multiply(ops.subtract(images, low_range), 255.0 / (high_range - low_range))
        axes = (0, 1) if rank == 3 else (1, 2)
        low = ops.min(images, axis=axes, keepdims=True)
        high = ops.max(images, axis=axes, keepdims=True)
        flat = ops.equal(high, low)
        scale = ops.divide(255.0, ops.where(flat, 1.0, ops.subtract(high, low)))  # no division by 0
        results = ops.clip(ops.multiply(ops.subtract(images, low), scale), 0.0, 255.0)
        if (low_range, high_range) != (0.0, 255.0):
            results = ops.add(ops.multiply(results, (high_range - low_range) / 255.0), low_range)
        return ops.where(flat, original, results)

    def compute_output_shape(self, input_shape):
        return tuple(input_shape)

    def get_config(self):
        return {**super().get_config(), "data_format": self.data_format, "value_range": self.value_range}


class Equalization(_Augmentation):
    """Histogram equalization of each channel (histogram over the whole batch, ``bins`` bins),
    as Keras does it: only in training (``fit``, eager ``training=True``); the identity at
    inference and in the export, like the random layers. (Keras 3.15's returns its input
    KerasTensor itself when called symbolically, so Keras cannot build a model with it after
    another layer; irtool records it like any layer.)"""

    _prim = aug.EQUALIZATION

    def __init__(self, value_range=(0, 255), bins=256, data_format=None, **kwargs):
        super().__init__(data_format=data_format, **kwargs)
        self.bins = bins
        self.value_range = _value_range(value_range)

    def _attrs(self):
        return {
            "value_range": tuple(float(v) for v in self.value_range),
            "bins": int(self.bins),
            "data_format": self.data_format,
        }

    def get_config(self):
        return {**super().get_config(), "bins": self.bins, "value_range": self.value_range}


class RandomErasing(_Augmentation):
    """Erases a random box of each image (with probability drawn from ``factor``), filling it
    with ``fill_value`` or Gaussian noise scaled by ``value_range[1]`` (Keras 3.15)."""

    _prim = aug.RANDOM_ERASING

    def __init__(
        self, factor=1.0, scale=(0.02, 0.33), fill_value=None, value_range=(0, 255), seed=None, data_format=None, **kw
    ):
        super().__init__(seed=seed, data_format=data_format, **kw)
        self.factor = _base_factor(factor, (0, 1))
        self.scale = _named_factor(scale, "scale", (0, 1))
        self.fill_value = fill_value
        self.value_range = value_range

    def _attrs(self):
        fill = self.fill_value
        if fill is not None:
            message = "The `fill_value` argument should be a number (or a list of three numbers) "
            if isinstance(fill, (tuple, list)):
                if len(fill) != 3:
                    raise ValueError(message)
                fill = tuple(float(v) for v in fill)
            elif isinstance(fill, (int, float)):
                fill = float(fill)
            else:
                raise ValueError(message)
        return {
            "factor": tuple(float(f) for f in self.factor),
            "scale": tuple(float(f) for f in self.scale),
            "fill_value": fill,
            "value_range": tuple(float(v) for v in self.value_range),
            "data_format": self.data_format,
            "seed": self.seed,
        }

    def get_config(self):
        return {
            **super().get_config(),
            "factor": self.factor,
            "scale": self.scale,
            "fill_value": self.fill_value,
            "value_range": self.value_range,
            "seed": self.seed,
        }


def _named_factor(factor, name, bounds):
    """RandomErasing's ``_set_factor_by_name``: ``_base_factor`` with the argument's name."""
    try:
        return _base_factor(factor, bounds)
    except ValueError:
        raise ValueError(
            f"The `{name}` argument should be a number (or a list of two numbers) "
            f"in the range [{bounds[0]}, {bounds[1]}]. Received: factor={factor}"
        ) from None


def _shear_factor(factor, name):
    """RandomShear's ``_set_factor_with_name``: a number ``f`` in [0, 1] gives ``(-f, f)``."""
    message = "The `factor` argument should be a number (or a list of two numbers) in the range [0, 1.0]. "
    return _range_factor(factor, name, message, low=0.0)


class RandomShear(_Resampling):
    """Shears each image about the origin by ``x_factor`` (x' = x + s y) and ``y_factor``, the
    two signs flipped together at random (Keras 3.15)."""

    _prim = aug.RANDOM_SHEAR

    def __init__(
        self,
        x_factor=0.0,
        y_factor=0.0,
        interpolation="bilinear",
        fill_mode="reflect",
        fill_value=0.0,
        data_format=None,
        seed=None,
        **kwargs,
    ):
        self.x_factor = _shear_factor(x_factor, "x_factor")
        self.y_factor = _shear_factor(y_factor, "y_factor")
        super().__init__(fill_mode, interpolation, seed, fill_value, data_format, **kwargs)

    @classmethod
    def from_config(cls, config):
        """Keras 3.15 saves a number ``f`` as ``(-f, f)`` and then refuses that pair on load (its
        own ``RandomShear(0.3)`` does not round trip); a symmetric pair is read back as ``f``."""
        config = dict(config)
        for name in ("x_factor", "y_factor"):
            factor = config.get(name)
            if isinstance(factor, (tuple, list)) and len(factor) == 2 and factor[0] == -factor[1] and factor[1] >= 0:
                config[name] = factor[1]
        return super().from_config(config)

    def _attrs(self):
        factors = {name: tuple(float(f) for f in getattr(self, name)) for name in ("x_factor", "y_factor")}
        return {**super()._attrs(), **factors}

    def get_config(self):
        return {  # Keras' key order
            **_Augmentation.get_config(self),
            "x_factor": self.x_factor,
            "y_factor": self.y_factor,
            "fill_mode": self.fill_mode,
            "interpolation": self.interpolation,
            "seed": self.seed,
            "fill_value": self.fill_value,
            "data_format": self.data_format,
        }


class RandomCrop(_Augmentation):
    """Keras 3.15's RandomCrop. In training (``fit``, eager ``training=True``) it crops the batch
    to ``height`` x ``width`` at one random offset (or, for an image not larger than the target in
    both axes, crops the centre to the target's aspect ratio and resizes to it).

    At inference Keras 3.15 returns its input unchanged (``transform_images`` does nothing when
    not training), while its declared output shape is ``(..., height, width, ...)``: for example
    ``RandomCrop(4, 4)`` on 8x6 images predicts 8x6 images although ``compute_output_shape``
    says ``(None, 4, 4, 3)``. irtool does what Keras outputs: the identity at inference and in
    the export, so the graph's symbolic output keeps the input's shape (what ``predict`` and the
    ONNX model really return), while ``compute_output_shape`` returns Keras' declared shape. Layers
    after it see the cropped size in training and the full size at inference, as in Keras; only
    size-agnostic ones (convolutions, global pooling) work in both. Like Keras, a missing ``seed``
    becomes a random one in the config."""

    _prim = aug.RANDOM_CROP

    def __init__(self, height, width, seed=None, data_format=None, name=None, **kwargs):
        super().__init__(
            seed=seed if seed is not None else py_random.randint(1, int(1e9)),
            data_format=data_format,
            name=name,
            **kwargs,
        )
        self.height = height
        self.width = width

    def _attrs(self):
        return {
            "height": int(self.height),
            "width": int(self.width),
            "data_format": self.data_format,
            "seed": self.seed,
        }

    def compute_output_shape(self, input_shape):
        shape = list(input_shape)
        h, w = (-3, -2) if self.data_format == "channels_last" else (-2, -1)
        shape[h], shape[w] = self.height, self.width
        return tuple(shape)

    def get_config(self):
        return {**super().get_config(), "height": self.height, "width": self.width, "seed": self.seed}


def _kernel_size(size, name):
    """RandomGaussianBlur's ``_set_kernel_size``: ``(lower, upper)``, both odd."""
    message = f"{name} must be an odd number. Received: {name}={size}"
    if isinstance(size, (tuple, list)):
        if len(size) != 2:
            raise ValueError(
                f"The `{name}` argument should be a number (or a list of two numbers) Received: {name}={size}"
            )
        if size[0] % 2 == 0 or size[1] % 2 == 0:
            raise ValueError(message)
        return tuple(size)
    if isinstance(size, (int, float)):
        if size % 2 == 0:
            raise ValueError(message)
        return size, size
    raise ValueError(message)


class RandomGaussianBlur(_Augmentation):
    """Keras 3.15's RandomGaussianBlur: blurs each image with probability ``U(factor)`` by a
    ``kernel_size`` Gaussian whose two sigmas (x, y) are drawn once per batch from ``sigma``,
    clipped to ``value_range`` (kept as given, as Keras does). The identity at inference and in
    the export."""

    _prim = aug.RANDOM_GAUSSIAN_BLUR

    def __init__(
        self, factor=1.0, kernel_size=3, sigma=1.0, value_range=(0, 255), data_format=None, seed=None, **kwargs
    ):
        super().__init__(seed=seed, data_format=data_format, **kwargs)
        self.factor = _base_factor(factor, (0, 1))
        self.kernel_size = _kernel_size(kernel_size, "kernel_size")
        self.sigma = _named_factor(sigma, "sigma", (0, 1))
        self.value_range = value_range

    def _attrs(self):
        return {
            "factor": tuple(float(f) for f in self.factor),
            "kernel_size": tuple(int(k) for k in self.kernel_size),
            "sigma": tuple(float(s) for s in self.sigma),
            "value_range": tuple(float(v) for v in self.value_range),
            "data_format": self.data_format,
            "seed": self.seed,
        }

    def get_config(self):
        return {
            **super().get_config(),
            "factor": self.factor,
            "kernel_size": self.kernel_size,
            "sigma": self.sigma,
            "value_range": self.value_range,
            "seed": self.seed,
        }


class RandomColorJitter(_Augmentation):
    """Keras 3.15's RandomColorJitter: RandomBrightness, RandomContrast, RandomSaturation and
    RandomHue (each when its factor is given) applied in that order in training, with their
    validation. As in Keras the four use the default image data format, whatever the jitter's
    ``data_format``. The identity at inference and in the export."""

    _prim = aug.RANDOM_COLOR_JITTER

    def __init__(
        self,
        value_range=(0, 255),
        brightness_factor=None,
        contrast_factor=None,
        saturation_factor=None,
        hue_factor=None,
        seed=None,
        data_format=None,
        **kwargs,
    ):
        super().__init__(seed=seed, data_format=data_format, **kwargs)
        self.value_range = value_range
        self.brightness_factor = brightness_factor
        self.contrast_factor = contrast_factor
        self.saturation_factor = saturation_factor
        self.hue_factor = hue_factor
        self._steps = {
            "brightness": None if brightness_factor is None else RandomBrightness(brightness_factor, value_range),
            "contrast": None if contrast_factor is None else RandomContrast(contrast_factor, value_range),
            "saturation": None if saturation_factor is None else RandomSaturation(saturation_factor, value_range),
            "hue": None if hue_factor is None else RandomHue(hue_factor, value_range),
        }

    def _attrs(self):
        steps = {
            name: None if step is None else tuple(float(f) for f in step.factor) for name, step in self._steps.items()
        }
        return {
            **steps,
            "value_range": tuple(float(v) for v in self.value_range),
            "step_data_format": standardize_data_format(None),
            "seed": self.seed,
        }

    def get_config(self):
        return {
            **super().get_config(),
            "value_range": self.value_range,
            "brightness_factor": self.brightness_factor,
            "contrast_factor": self.contrast_factor,
            "saturation_factor": self.saturation_factor,
            "hue_factor": self.hue_factor,
            "seed": self.seed,
        }


class RandomPerspective(_Augmentation):
    """Keras 3.15's RandomPerspective: with probability ``U(factor)`` each image's corners move by
    ``U(-scale / 2, scale / 2)`` of their coordinates and the image is resampled through that
    homography (``interpolation``; ``fill_value`` outside). The identity at inference and in the
    export."""

    _prim = aug.RANDOM_PERSPECTIVE

    def __init__(
        self, factor=1.0, scale=1.0, interpolation="bilinear", fill_value=0.0, seed=None, data_format=None, **kwargs
    ):
        super().__init__(seed=seed, data_format=data_format, **kwargs)
        self.factor = _base_factor(factor, (0, 1))
        self.scale = scale
        self.fill_value = fill_value
        self.interpolation = interpolation
        if scale < 0.0 or scale > 1.0:
            raise ValueError(f"The `scale` argument should be a number in the range [0,1]. Received: scale={scale}")
        if interpolation not in _INTERPOLATIONS:
            raise NotImplementedError(f"Unknown `interpolation` {interpolation}. Expected of one {_INTERPOLATIONS}.")

    def _attrs(self):
        return {
            "factor": tuple(float(f) for f in self.factor),
            "scale": float(self.scale),
            "interpolation": self.interpolation,
            "fill_value": float(self.fill_value),
            "data_format": self.data_format,
            "seed": self.seed,
        }

    def get_config(self):
        return {
            **super().get_config(),
            "factor": self.factor,
            "scale": self.scale,
            "interpolation": self.interpolation,
            "fill_value": self.fill_value,
            "seed": self.seed,
        }


class MixUp(_Augmentation):
    """Keras 3.15's MixUp on images: in training each image becomes ``w x + (1 - w) x'`` with
    ``x'`` another image of the batch (a random permutation) and ``w ~ Beta(alpha, alpha)``.
    The identity at inference and in the export. Keras mixes labels only when called on a
    ``{"images", "labels"}`` dict; in a model the layer sees its input only, so only images are
    mixed, as in a Keras model. (On one unbatched image Keras mixes it with its own first row
    and returns a batch of one; irtool returns the image unchanged, its batch being itself.)"""

    _prim = aug.MIX_UP

    def __init__(self, alpha=0.2, data_format=None, seed=None, **kwargs):
        super().__init__(seed=seed, data_format=data_format, **kwargs)
        self.alpha = alpha

    def _attrs(self):
        return {"alpha": float(self.alpha), "seed": self.seed}

    def get_config(self):
        return {**super().get_config(), "alpha": self.alpha, "seed": self.seed}


class CutMix(_Augmentation):
    """Keras 3.15's CutMix on images: in training each image gets a random box pasted from
    another image of the batch (box area ``1 - w``, ``w ~ Beta(a, a)``, ``a ~ U(factor)`` per
    batch). The identity at inference, in the export and on one unbatched image, as in Keras.
    Labels are not mixed (in a model the layer sees its input only, as in a Keras model)."""

    _prim = aug.CUT_MIX

    def __init__(self, factor=1.0, seed=None, data_format=None, **kwargs):
        super().__init__(seed=seed, data_format=data_format, **kwargs)
        self.factor = _base_factor(factor, (0, 1))

    def _attrs(self):
        return {"factor": tuple(float(f) for f in self.factor), "data_format": self.data_format, "seed": self.seed}

    def get_config(self):
        return {**super().get_config(), "factor": self.factor, "seed": self.seed}


_ELASTIC_FILL_MODES = {"constant", "nearest", "wrap", "mirror", "reflect"}


class RandomElasticTransform(_Augmentation):
    """Keras 3.15's RandomElasticTransform: in training each image (with probability
    ``U(factor)``) is displaced by a smooth random field of strength drawn from ``scale`` and
    resampled (``interpolation``, ``fill_mode``), then clipped to ``value_range``. The identity at
    inference and in the export. (Keras' torch backend draws the fields from torch's global
    generator, not from ``seed``; irtool draws them from the layer's or the trainer's generator.)"""

    _prim = aug.RANDOM_ELASTIC_TRANSFORM

    def __init__(
        self,
        factor=1.0,
        scale=1.0,
        interpolation="bilinear",
        fill_mode="reflect",
        fill_value=0.0,
        value_range=(0, 255),
        seed=None,
        data_format=None,
        **kwargs,
    ):
        super().__init__(seed=seed, data_format=data_format, **kwargs)
        self.factor = _base_factor(factor, (0, 1))
        self.scale = _named_factor(scale, "scale", (0, 1))
        self.interpolation = interpolation
        self.fill_mode = fill_mode
        self.fill_value = fill_value
        self.value_range = value_range
        if interpolation not in _INTERPOLATIONS:
            raise NotImplementedError(f"Unknown `interpolation` {interpolation}. Expected of one {_INTERPOLATIONS}.")
        if fill_mode not in _ELASTIC_FILL_MODES:
            raise NotImplementedError(f"Unknown `fill_mode` {fill_mode}. Expected of one {_ELASTIC_FILL_MODES}.")

    def _attrs(self):
        return {
            "factor": tuple(float(f) for f in self.factor),
            "scale": tuple(float(f) for f in self.scale),
            "interpolation": self.interpolation,
            "fill_mode": self.fill_mode,
            "fill_value": float(self.fill_value),
            "value_range": tuple(float(v) for v in self.value_range),
            "data_format": self.data_format,
            "seed": self.seed,
        }

    def get_config(self):
        return {
            **super().get_config(),
            "factor": self.factor,
            "scale": self.scale,
            "interpolation": self.interpolation,
            "fill_mode": self.fill_mode,
            "fill_value": self.fill_value,
            "value_range": self.value_range,
            "seed": self.seed,
        }


class RandAugment(_Augmentation):
    """Keras 3.15's RandAugment: in training ``num_ops`` operations chosen at random among
    RandomShear, RandomTranslation, RandomRotation, RandomBrightness, RandomColorDegeneration,
    RandomContrast, RandomSharpness, RandomPosterization, Solarization, AutoContrast and
    Equalization, each built from ``factor`` as Keras builds it. The identity at inference and in
    the export, as in Keras."""

    _prim = aug.RAND_AUGMENT

    def __init__(
        self, value_range=(0, 255), num_ops=2, factor=0.5, interpolation="bilinear", seed=None, data_format=None, **kw
    ):
        super().__init__(seed=seed, data_format=data_format, **kw)
        self.value_range = value_range
        self.num_ops = num_ops
        self.factor = _base_factor(factor, (0, 1))
        self.interpolation = interpolation
        # Keras builds (and so validates) its sub-layers here
        RandomShear(self.factor, self.factor, interpolation=interpolation)
        RandomBrightness(self.factor, value_range)
        _value_range(value_range)

    def _attrs(self):
        return {
            "value_range": tuple(float(v) for v in self.value_range),
            "num_ops": int(self.num_ops),
            "factor": tuple(float(f) for f in self.factor),
            "interpolation": self.interpolation,
            "data_format": self.data_format,
            "seed": self.seed,
        }

    def get_config(self):
        return {
            **super().get_config(),
            "value_range": self.value_range,
            "num_ops": self.num_ops,
            "factor": self.factor,
            "interpolation": self.interpolation,
            "seed": self.seed,
        }


class AugMix(_Augmentation):
    """Keras 3.15's AugMix: in training the image mixed (``Beta(alpha, alpha)``) with a Dirichlet
    mix of ``num_chains`` chains of up to ``chain_depth`` random operations (Keras' sub-layers built
    from ``factor``; ``all_ops=False`` keeps the seven geometric and tone ones), clipped to
    ``value_range``. The identity at inference and in the export, as in Keras. (Keras chooses the
    operations with Python's ``random``, not its seed; irtool draws them from its generator.)"""

    _prim = aug.AUG_MIX

    def __init__(
        self,
        value_range=(0, 255),
        num_chains=3,
        chain_depth=3,
        factor=0.3,
        alpha=1.0,
        all_ops=True,
        interpolation="bilinear",
        seed=None,
        data_format=None,
        **kwargs,
    ):
        super().__init__(seed=seed, data_format=data_format, **kwargs)
        self.value_range = value_range
        self.num_chains = num_chains
        self.chain_depth = chain_depth
        self.factor = _base_factor(factor, (0, 1))
        self.alpha = alpha
        self.all_ops = all_ops
        self.interpolation = interpolation
        RandomShear(self.factor, self.factor, interpolation=interpolation)  # Keras' sub-layers validate
        _value_range(value_range)

    def _attrs(self):
        return {
            "value_range": tuple(float(v) for v in self.value_range),
            "num_chains": int(self.num_chains),
            "chain_depth": int(self.chain_depth),
            "factor": tuple(float(f) for f in self.factor),
            "alpha": float(self.alpha),
            "all_ops": bool(self.all_ops),
            "interpolation": self.interpolation,
            "data_format": self.data_format,
            "seed": self.seed,
        }

    def get_config(self):
        return {
            **super().get_config(),
            "value_range": self.value_range,
            "num_chains": self.num_chains,
            "chain_depth": self.chain_depth,
            "factor": self.factor,
            "alpha": self.alpha,
            "all_ops": self.all_ops,
            "interpolation": self.interpolation,
            "seed": self.seed,
        }
