"""Preprocessing layers that belong in a graph: Rescaling, Normalization, CenterCrop, Resizing."""

from __future__ import annotations

import math

import numpy as np

from irtool import ops
from irtool.layers.layer import Layer
from irtool.ops.pooling import spatial_axes, standardize_data_format

EPSILON = 1e-7  # Keras' backend.epsilon()


def _plain(value):
    """A config-friendly value: Python scalars stay, arrays become (nested) lists."""
    if isinstance(value, (np.ndarray, np.generic)):
        return value.tolist()
    return value


class Rescaling(Layer):
    """``inputs * scale + offset`` (``scale``/``offset`` scalars or arrays broadcast on the last axes)."""

    def __init__(self, scale, offset=0.0, **kwargs):
        super().__init__(**kwargs)
        self.scale = scale
        self.offset = offset
        self.supports_masking = True
        self.built = True

    def call(self, inputs):
        x = ops.cast(inputs, self.dtype)
        x = ops.multiply(x, np.asarray(self.scale, dtype=self.dtype))
        if np.any(np.asarray(self.offset) != 0):
            x = ops.add(x, np.asarray(self.offset, dtype=self.dtype))
        return x

    def get_config(self):
        config = super().get_config()
        config.update({"scale": _plain(self.scale), "offset": _plain(self.offset)})
        return config


class Normalization(Layer):
    """``(inputs - mean) / max(sqrt(variance), 1e-7)`` per index of ``axis`` (``invert`` undoes it).

    Give ``mean`` and ``variance`` (then the layer has no weights), or call ``adapt(data)`` on
    NumPy data: that creates Keras' non-trainable weights ``mean``, ``variance`` and ``count``
    (``count`` stays 0 for array data, as in Keras) and fills them with the data's statistics.
    """

    def __init__(self, axis=-1, mean=None, variance=None, invert=False, **kwargs):
        super().__init__(**kwargs)
        if axis is None:
            axis = ()
        elif isinstance(axis, int):
            axis = (axis,)
        else:
            axis = tuple(axis)
        self.axis = axis
        self.input_mean = mean
        self.input_variance = variance
        self.invert = invert
        self.supports_masking = True
        self._build_input_shape = None
        self.mean = None
        if (mean is not None) != (variance is not None):
            raise ValueError(
                "When setting values directly, both `mean` and `variance` must be set. "
                f"Received: mean={mean} and variance={variance}"
            )
        if mean is not None:
            if np.shape(mean) != np.shape(variance):
                raise ValueError(
                    "When setting values directly, `mean` and `variance` must have the same shape. "
                    f"Received: mean shape {np.shape(mean)} and variance shape {np.shape(variance)}"
                )
            if len(np.shape(mean)) > len(self.axis):
                raise ValueError(
                    f"The rank of `mean` must be less than or equal to the number of axes ({len(self.axis)}). "
                    f"Received: mean shape {np.shape(mean)} for axis {self.axis}"
                )

    def build(self, input_shape):
        if input_shape is None:
            return
        ndim = len(input_shape)
        self._build_input_shape = tuple(input_shape)
        if any(a < -ndim or a >= ndim for a in self.axis):
            raise ValueError(
                f"All `axis` values must be in the range [-ndim, ndim). Received inputs with ndim={ndim}, "
                f"while axis={self.axis}"
            )
        self._keep_axis = tuple(sorted(d if d >= 0 else d + ndim for d in self.axis))
        for d in self._keep_axis:
            if input_shape[d] is None:
                raise ValueError(
                    f"All `axis` values to be kept must have a known shape. Received axis={self.axis}, "
                    f"inputs.shape={tuple(input_shape)}, with unknown axis at index {d}"
                )
        self._reduce_axis = tuple(d for d in range(ndim) if d not in self._keep_axis)
        self._broadcast_shape = tuple(input_shape[d] if d in self._keep_axis else 1 for d in range(ndim))
        self._mean_and_var_shape = tuple(input_shape[d] for d in self._keep_axis)
        if self.input_mean is None:
            self.adapt_mean = self.add_weight(
                name="mean", shape=self._mean_and_var_shape, initializer="zeros", trainable=False
            )
            self.adapt_variance = self.add_weight(
                name="variance", shape=self._mean_and_var_shape, initializer="ones", trainable=False
            )
            self.count = self.add_weight(name="count", shape=(), dtype="int32", initializer="zeros", trainable=False)
            self.mean = self.adapt_mean
        else:
            self.mean, self.variance = (self._broadcast(v) for v in (self.input_mean, self.input_variance))
        self.built = True

    def _broadcast(self, value) -> np.ndarray:
        """A given mean/variance in the broadcast shape (trailing dims match the kept axes)."""
        value = np.asarray(value)
        ndim = len(self._broadcast_shape)
        if value.ndim:
            expanded = [1] * ndim
            for i in range(1, value.ndim + 1):
                expanded[self._keep_axis[-i]] = value.shape[-i]
            value = value.reshape(expanded)
        return np.broadcast_to(value, self._broadcast_shape).astype(self.dtype)

    def adapt(self, data):
        """Compute the mean and variance of ``data`` (an array or an iterable of array batches)."""
        batches = None
        if hasattr(data, "shape") and not isinstance(data, (list, tuple)):
            data = np.asarray(data)
            input_shape = data.shape
        elif hasattr(data, "__iter__"):
            batches = iter(data)
            first = next(batches, None)
            if first is None:
                raise ValueError("adapt() received an empty iterable (no batches). Expected at least one batch.")
            first = np.asarray(first[0] if isinstance(first, tuple) else first)
            input_shape = first.shape
        else:
            raise TypeError(f"Unsupported data type: {type(data)}. `adapt` supports arrays and iterables of arrays.")
        if not self.built:
            self.build(input_shape)
        else:
            for d in self._keep_axis:
                if input_shape[d] != self._build_input_shape[d]:
                    raise ValueError(
                        f"The layer was built with input_shape={self._build_input_shape}, but adapt() is being "
                        f"called with data with an incompatible shape, data.shape={input_shape}"
                    )
        if self.input_mean is not None:
            raise ValueError("adapt() cannot be used on a Normalization layer created with `mean` and `variance`.")
        if batches is None:
            mean = np.mean(data, axis=self._reduce_axis)
            var = np.var(data, axis=self._reduce_axis)
        else:
            mean = np.zeros(self._mean_and_var_shape, self.dtype)
            var = np.zeros(self._mean_and_var_shape, self.dtype)
            total = 0
            for batch in _chain(first, batches):
                batch = np.asarray(batch[0] if isinstance(batch, tuple) else batch, dtype=self.dtype)
                batch_mean = np.mean(batch, axis=self._reduce_axis)
                batch_var = np.var(batch, axis=self._reduce_axis)
                count = math.prod(batch.shape[d] for d in self._reduce_axis) if self._reduce_axis else 1
                total += count
                weight = float(count) / total
                new_mean = mean * (1.0 - weight) + batch_mean * weight
                var = (var + (mean - new_mean) ** 2) * (1.0 - weight) + (
                    batch_var + (batch_mean - new_mean) ** 2
                ) * weight
                mean = new_mean
        self.adapt_mean.assign(np.asarray(mean, dtype=self.dtype))
        self.adapt_variance.assign(np.asarray(var, dtype=self.dtype))

    def call(self, inputs):
        x = ops.cast(inputs, self.dtype)
        if self.input_mean is None:
            mean = ops.reshape(self.adapt_mean, self._broadcast_shape)
            variance = ops.reshape(self.adapt_variance, self._broadcast_shape)
        else:
            mean, variance = self.mean, self.variance
        std = ops.maximum(ops.sqrt(variance), EPSILON)
        if self.invert:
            return ops.add(mean, ops.multiply(x, std))
        return ops.divide(ops.subtract(x, mean), std)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "axis": self.axis,
                "invert": self.invert,
                "mean": np.array(self.input_mean).tolist(),
                "variance": np.array(self.input_variance).tolist(),
            }
        )
        return config


def _chain(first, rest):
    yield first
    yield from rest


class CenterCrop(Layer):
    """Crops the central ``height x width`` of images (rank 3 or 4). Images smaller than that
    (static sizes) are cropped to the target aspect ratio and resized bilinearly, as in Keras."""

    def __init__(self, height, width, data_format=None, **kwargs):
        super().__init__(**kwargs)
        self.height = height
        self.width = width
        self.data_format = standardize_data_format(data_format)
        self.built = True

    def call(self, inputs):
        x = ops.cast(inputs, self.dtype)
        rank = len(x.shape)
        if rank not in (3, 4):
            raise ValueError(
                "`input_shape` must be a non-nested tuple or list of rank-1 with size 3 (unbatched) or 4 "
                f"(batched). Received: inputs.shape={tuple(x.shape)}"
            )
        axes = spatial_axes(4, self.data_format)
        if rank == 3:
            axes = [a - 1 for a in axes]
        height, width = x.shape[axes[0]], x.shape[axes[1]]
        h_diff = None if height is None else height - self.height
        w_diff = None if width is None else width - self.width
        if (h_diff is None or h_diff >= 0) and (w_diff is None or w_diff >= 0):
            if h_diff is None or w_diff is None:
                return ops.image.center_crop(x, self.height, self.width, data_format=self.data_format)
            key = [slice(None)] * rank
            key[axes[0]] = slice(h_diff // 2, h_diff // 2 + self.height)
            key[axes[1]] = slice(w_diff // 2, w_diff // 2 + self.width)
            return ops.get_item(x, tuple(key)) if (h_diff or w_diff) else x
        if height is None or width is None:
            raise ValueError(
                "irtool's CenterCrop needs static height and width when the input can be smaller than the target. "
                f"Received: inputs.shape={tuple(x.shape)}, height={self.height}, width={self.width}"
            )
        return ops.image.resize(x, (self.height, self.width), crop_to_aspect_ratio=True, data_format=self.data_format)

    def get_config(self):
        config = super().get_config()
        config.update({"data_format": self.data_format, "height": self.height, "width": self.width})
        return config


class Resizing(Layer):
    """Resizes images to ``height x width`` (``nearest`` or ``bilinear``, Keras' torch numerics)."""

    def __init__(
        self,
        height,
        width,
        interpolation="bilinear",
        crop_to_aspect_ratio=False,
        pad_to_aspect_ratio=False,
        fill_mode="constant",
        fill_value=0.0,
        antialias=False,
        data_format=None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.height = height
        self.width = width
        self.interpolation = interpolation
        self.data_format = standardize_data_format(data_format)
        self.crop_to_aspect_ratio = crop_to_aspect_ratio
        self.pad_to_aspect_ratio = pad_to_aspect_ratio
        self.fill_mode = fill_mode
        self.fill_value = fill_value
        self.antialias = bool(antialias)
        self.built = True

    def call(self, inputs):
        return ops.image.resize(
            ops.cast(inputs, self.dtype),
            size=(self.height, self.width),
            interpolation=self.interpolation,
            antialias=self.antialias,
            crop_to_aspect_ratio=self.crop_to_aspect_ratio,
            pad_to_aspect_ratio=self.pad_to_aspect_ratio,
            fill_mode=self.fill_mode,
            fill_value=self.fill_value,
            data_format=self.data_format,
        )

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "data_format": self.data_format,
                "height": self.height,
                "width": self.width,
                "interpolation": self.interpolation,
                "crop_to_aspect_ratio": self.crop_to_aspect_ratio,
                "pad_to_aspect_ratio": self.pad_to_aspect_ratio,
                "fill_mode": self.fill_mode,
                "fill_value": self.fill_value,
                "antialias": self.antialias,
            }
        )
        return config
