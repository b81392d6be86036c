"""Layers that only move data around: Flatten, Reshape, Identity, Permute, RepeatVector,
UpSampling1D/2D/3D, ZeroPadding1D/2D/3D and Cropping1D/2D/3D (Keras' ``layers/reshaping``).

Permute, RepeatVector, padding and cropping are layout-agnostic array ops on explicit axes
(transpose, repeat, pad, slicing). UpSampling uses the layout-aware ``resize`` primitive.
"""

from __future__ import annotations

import math

from irtool import ops
from irtool.ir.dtypes import is_float
from irtool.layers.input_spec import InputSpec
from irtool.layers.layer import Layer
from irtool.ops.pooling import spatial_axes, standardize_data_format, standardize_tuple

_ORDINALS = ("1st", "2nd", "3rd")


class Flatten(Layer):
    """Flattens all axes but the batch axis: ``(None, 4, 5) -> (None, 20)``."""

    def __init__(self, data_format=None, **kwargs):
        super().__init__(**kwargs)
        self.data_format = standardize_data_format(data_format)
        self.built = True

    def call(self, inputs):
        if self.data_format == "channels_first" and len(inputs.shape) > 2:
            inputs = ops.transpose(inputs, (0, *range(2, len(inputs.shape)), 1))
        rest = inputs.shape[1:]
        if None in rest:
            return ops.reshape(inputs, (None, -1))
        return ops.reshape(inputs, (None, math.prod(rest)))

    def get_config(self):
        config = super().get_config()
        config["data_format"] = self.data_format
        return config


class Reshape(Layer):
    """Reshapes the non-batch axes to ``target_shape`` (which may hold one -1)."""

    def __init__(self, target_shape, **kwargs):
        super().__init__(**kwargs)
        self.target_shape = tuple(target_shape)
        # Checked here, as Keras does, rather than at the first call far from the constructor.
        if any(isinstance(d, int) and d < -1 for d in self.target_shape):
            raise ValueError(
                "Each dimension in `target_shape` must be a non-negative integer, or `-1` for a single unknown "
                f"dimension. Received: target_shape={self.target_shape}."
            )
        if self.target_shape.count(-1) > 1:
            raise ValueError(
                "There must be at most one unknown dimension (-1) in `target_shape`. "
                f"Received: target_shape={self.target_shape}."
            )
        self.built = True

    def call(self, inputs):
        try:
            return ops.reshape(inputs, (None,) + self.target_shape)
        except ValueError:
            raise ValueError(
                f"The total size of the tensor must be unchanged. Received: input_shape={tuple(inputs.shape[1:])}, "
                f"target_shape={self.target_shape}"
            ) from None

    def get_config(self):
        config = super().get_config()
        config["target_shape"] = list(self.target_shape)
        return config


class Identity(Layer):
    """Returns its input unchanged (a placeholder layer)."""

    supports_masking = True

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.built = True

    def call(self, inputs):
        return inputs


class Permute(Layer):
    """Permutes the non-batch axes: ``dims`` is 1-based, e.g. ``(2, 1)`` swaps them."""

    def __init__(self, dims, **kwargs):
        super().__init__(**kwargs)
        self.dims = tuple(dims)
        if sorted(dims) != list(range(1, len(dims) + 1)):
            raise ValueError(
                "Invalid permutation argument `dims` for Permute Layer. The set of indices in `dims` must be "
                f"consecutive and start from 1. Received dims={dims}"
            )
        self.input_spec = InputSpec(ndim=len(self.dims) + 1)
        self.built = True

    def call(self, inputs):
        return ops.transpose(inputs, axes=(0,) + self.dims)

    def get_config(self):
        config = super().get_config()
        config["dims"] = self.dims
        return config


class RepeatVector(Layer):
    """Repeats a ``(batch, features)`` input ``n`` times: ``(batch, n, features)``."""

    def __init__(self, n, **kwargs):
        super().__init__(**kwargs)
        if not isinstance(n, int) or isinstance(n, bool):
            raise TypeError(f"Expected an integer value for `n`, got {type(n)}.")
        if n <= 0:
            raise ValueError(f"Argument `n` should be a positive integer. Received: n={n}")
        self.n = n
        self.input_spec = InputSpec(ndim=2)
        self.built = True

    def call(self, inputs):
        # Keras repeats the new axis; tiling it is the same and needs no static sizes to lower.
        return ops.tile(ops.expand_dims(inputs, 1), (1, self.n, 1))

    def get_config(self):
        config = super().get_config()
        config["n"] = self.n
        return config


def _upsample_nearest(x, factors, data_format):
    """Repeat each pixel ``factors[i]`` times along spatial axis ``i`` (Keras' ``ops.repeat`` per
    axis). Float tensors use one layout-aware ``resize`` primitive, so the layout pass can move
    it to channels_first with its neighbours; others repeat axis by axis."""
    if is_float(str(x.dtype)):
        return ops.image.upsample(x, factors, interpolation="nearest", data_format=data_format)
    for axis, factor in zip(spatial_axes(len(x.shape), data_format), factors):
        x = ops.repeat(x, factor, axis=axis)
    return x


class UpSampling1D(Layer):
    """Repeats each step ``size`` times along the steps axis."""

    def __init__(self, size=2, **kwargs):
        super().__init__(**kwargs)
        if not isinstance(size, int) or isinstance(size, bool):
            raise TypeError(f"Expected an integer value for `size`, got {type(size)}.")
        if size <= 0:
            raise ValueError(f"Argument `size` should be a positive integer. Received: size={size}")
        self.size = size
        self.input_spec = InputSpec(ndim=3)
        self.built = True

    def call(self, inputs):
        return _upsample_nearest(inputs, (self.size,), "channels_last")

    def get_config(self):
        config = super().get_config()
        config["size"] = self.size
        return config


class UpSampling2D(Layer):
    """Upsamples height and width by ``size``: ``nearest`` repeats pixels, ``bilinear`` resizes
    (half-pixel, like Keras' ``ops.image.resize``)."""

    def __init__(self, size=(2, 2), data_format=None, interpolation="nearest", **kwargs):
        super().__init__(**kwargs)
        self.data_format = standardize_data_format(data_format)
        self.size = standardize_tuple(size, 2, "size")
        self.interpolation = interpolation.lower()
        self.input_spec = InputSpec(ndim=4)
        self.built = True

    def call(self, inputs):
        if self.interpolation == "nearest":
            return _upsample_nearest(inputs, self.size, self.data_format)
        return ops.image.upsample(inputs, self.size, interpolation=self.interpolation, data_format=self.data_format)

    def get_config(self):
        config = super().get_config()
        config.update({"size": self.size, "data_format": self.data_format, "interpolation": self.interpolation})
        return config


class UpSampling3D(Layer):
    """Repeats each voxel ``size`` times along the three spatial axes."""

    def __init__(self, size=(2, 2, 2), data_format=None, **kwargs):
        super().__init__(**kwargs)
        self.data_format = standardize_data_format(data_format)
        self.size = standardize_tuple(size, 3, "size")
        self.input_spec = InputSpec(ndim=5)
        self.built = True

    def call(self, inputs):
        return _upsample_nearest(inputs, self.size, self.data_format)

    def get_config(self):
        config = super().get_config()
        config.update({"size": self.size, "data_format": self.data_format})
        return config


def _pairs(value, n: int, what: str, int_form: str) -> tuple:
    """Keras' padding/cropping forms: an int, ``n`` ints (symmetric) or ``n`` pairs."""
    if isinstance(value, int) and not isinstance(value, bool):
        if value < 0:
            raise ValueError(f"`{what}` cannot be negative. Received: {what}={value}.")
        return ((value, value),) * n
    if hasattr(value, "__len__"):
        if len(value) != n:
            count = "two" if n == 2 else str(n)
            raise ValueError(f"`{what}` should have {count} elements. Received: {what}={value}.")
        return tuple(
            standardize_tuple(v, 2, f"{_ORDINALS[i]} entry of {what}", allow_zero=True) for i, v in enumerate(value)
        )
    raise ValueError(
        f"`{what}` should be either an int, a tuple of {n} ints ({int_form}), or a tuple of {n} tuples of 2 ints. "
        f"Received: {what}={value}."
    )


class _ZeroPadding(Layer):
    rank = 0

    def __init__(self, padding, data_format=None, **kwargs):
        super().__init__(**kwargs)
        self.data_format = standardize_data_format(data_format)
        if self.rank == 1:
            self.padding = standardize_tuple(padding, 2, "padding", allow_zero=True)
        else:
            self.padding = _pairs(padding, self.rank, "padding", "symmetric padding per spatial axis")
        self.input_spec = InputSpec(ndim=self.rank + 2)
        self.built = True

    def call(self, inputs):
        pads = (self.padding,) if self.rank == 1 else self.padding
        widths = [(0, 0)] * (self.rank + 2)
        for axis, pair in zip(spatial_axes(self.rank + 2, self.data_format), pads):
            widths[axis] = pair
        return ops.pad(inputs, widths)

    def get_config(self):
        config = super().get_config()
        config.update({"padding": self.padding, "data_format": self.data_format})
        return config


class ZeroPadding1D(_ZeroPadding):
    """Pads the steps axis with zeros: ``padding`` is an int or ``(left, right)``."""

    rank = 1

    def __init__(self, padding=1, data_format=None, **kwargs):
        super().__init__(padding, data_format, **kwargs)


class ZeroPadding2D(_ZeroPadding):
    """Pads height and width: an int, ``(sym_h, sym_w)`` or ``((top, bottom), (left, right))``."""

    rank = 2

    def __init__(self, padding=(1, 1), data_format=None, **kwargs):
        super().__init__(padding, data_format, **kwargs)


class ZeroPadding3D(_ZeroPadding):
    """Pads three spatial axes (int, 3 ints or 3 pairs)."""

    rank = 3

    def __init__(self, padding=((1, 1), (1, 1), (1, 1)), data_format=None, **kwargs):
        super().__init__(padding, data_format, **kwargs)


class _Cropping(Layer):
    rank = 0

    def __init__(self, cropping, data_format=None, **kwargs):
        super().__init__(**kwargs)
        self.data_format = standardize_data_format(data_format)
        if self.rank == 1:
            self.cropping = standardize_tuple(cropping, 2, "cropping", allow_zero=True)
        else:
            self.cropping = _pairs(cropping, self.rank, "cropping", "symmetric cropping per spatial axis")
        self.input_spec = InputSpec(ndim=self.rank + 2)
        self.built = True

    def call(self, inputs):
        crops = (self.cropping,) if self.rank == 1 else self.cropping
        key = [slice(None)] * (self.rank + 2)
        for axis, (lo, hi) in zip(spatial_axes(self.rank + 2, self.data_format), crops):
            size = inputs.shape[axis]
            if size is not None and lo + hi >= size:
                raise ValueError(
                    f"Values in `cropping` argument should be smaller than the corresponding spatial dimension of "
                    f"the input. Received: inputs.shape={tuple(inputs.shape)}, cropping={self.cropping}"
                )
            key[axis] = slice(lo, -hi if hi else None)
        return ops.get_item(inputs, tuple(key))

    def get_config(self):
        config = super().get_config()
        config.update({"cropping": self.cropping, "data_format": self.data_format})
        return config


class Cropping1D(_Cropping):
    """Crops the steps axis: ``cropping`` is an int or ``(start, end)``."""

    rank = 1

    def __init__(self, cropping=(1, 1), **kwargs):
        super().__init__(cropping, None, **kwargs)

    def get_config(self):
        config = super().get_config()
        del config["data_format"]  # Keras' Cropping1D has none
        return config


class Cropping2D(_Cropping):
    """Crops height and width: an int, ``(sym_h, sym_w)`` or ``((top, bottom), (left, right))``."""

    rank = 2

    def __init__(self, cropping=((0, 0), (0, 0)), data_format=None, **kwargs):
        super().__init__(cropping, data_format, **kwargs)


class Cropping3D(_Cropping):
    """Crops three spatial axes (int, 3 ints or 3 pairs)."""

    rank = 3

    def __init__(self, cropping=((1, 1), (1, 1), (1, 1)), data_format=None, **kwargs):
        super().__init__(cropping, data_format, **kwargs)
