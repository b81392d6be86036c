"""Image augmentation primitives (RandomFlip, RandomRotation, RandomZoom, RandomTranslation,
RandomContrast, RandomBrightness, RandomGrayscale, RandomInvert, RandomPosterization,
Solarization, RandomColorDegeneration, RandomSaturation, RandomHue, RandomSharpness, Equalization, RandomErasing, RandomShear, RandomCrop,
RandomGaussianBlur, RandomColorJitter, RandomPerspective, MixUp, CutMix,
RandomElasticTransform, RandAugment, AugMix).

Like the noise primitives they are the identity at inference (an ``Identity`` that the export
drops) and apply Keras 3.15's random transform in training mode, drawing from the gradient
program's generator. Images are rank 3 (one image) or rank 4 (a batch), in ``data_format``.

The geometric transforms resample the image through Keras' ``affine_transform``
(``(a0, a1, a2, b0, b1, b2, c0, c1)``: output pixel ``(x, y)`` reads the input at
``x' = a0 x + a1 y + a2``, ``y' = b0 x + b1 y + b2``) with the index rules of Keras' torch
backend's ``map_coordinates`` (``reflect``, ``wrap``, ``constant``, ``nearest``; ``bilinear``
or ``nearest`` interpolation). Flips and the colour transforms pass gradients back; the
resampling transforms do not (augmentation sits at a model's input, where nothing is trained).
"""

from __future__ import annotations

import numpy as np

from irtool.ops.image import RESIZE
from irtool.ops.noise import InferenceIdentity


def _batched(x):
    """``x`` as a batch of images and whether a batch axis was added."""
    return (x, False) if x.ndim == 4 else (x[None], True)


def _spatial_axes(data_format: str) -> tuple[int, int]:
    return (1, 2) if data_format == "channels_last" else (2, 3)


class _ImageAugmentation(InferenceIdentity):
    """An inference-identity primitive whose training noise is ``transform(x4, rng, attrs)`` on a
    batch of images (``aux`` from it goes to ``training_vjp``)."""

    def noise(self, x, rng, **attrs):
        x4, added = _batched(x)
        out, aux = self.transform(x4, rng, **attrs)
        return (out[0] if added else out), aux

    def transform(self, x, rng, **attrs):
        raise NotImplementedError


class RandomFlipPrim(_ImageAugmentation):
    """Each image is flipped with probability 1/2; ``horizontal_and_vertical`` flips both axes
    with the same draw (Keras: one draw per image, so the image is kept or turned by 180°)."""

    def _axes(self, mode, data_format):
        h, w = _spatial_axes(data_format)
        return [a for a, m in ((w, "horizontal"), (h, "vertical")) if m in mode]

    def transform(self, x, rng, mode, data_format, seed=None):
        flips = rng.random(x.shape[0]) <= 0.5
        return self.flip(x, flips, self._axes(mode, data_format)), flips

    @staticmethod
    def flip(x, flips, axes):
        out = x.copy()
        if axes:
            out[flips] = np.flip(x[flips], axis=axes)
        return out

    def training_vjp(self, cotangents, inputs, outputs, aux, mode, data_format, seed=None):
        g, added = _batched(cotangents[0])
        g = self.flip(g, aux, self._axes(mode, data_format))  # a flip is its own adjoint
        return [g[0] if added else g]


# -- affine resampling ----------------------------------------------------------------------------


def _mirror(index, size):
    s = size - 1
    return np.abs((index + s) % (2 * s) - s) if s > 0 else np.zeros_like(index)


_INDEX_FIXERS = {
    "constant": lambda i, n: np.clip(i, 0, n - 1),
    "nearest": lambda i, n: np.clip(i, 0, n - 1),
    "wrap": lambda i, n: i % n,
    "reflect": lambda i, n: (_mirror(2 * i + 1, 2 * n + 1) - 1) // 2,
    "mirror": _mirror,
}


def _nodes(coordinate, interpolation):
    """``[(index, weight)]`` of one coordinate array (Keras' ``map_coordinates`` order 0/1)."""
    if interpolation == "nearest":
        return [(np.round(coordinate).astype(np.int64), 1.0)]
    lower = np.floor(coordinate)
    upper_weight = coordinate - lower
    index = lower.astype(np.int64)
    return [(index, 1 - upper_weight), (index + 1, upper_weight)]


def affine_transform(images, transforms, interpolation, fill_mode, fill_value, data_format):
    """Keras' ``ops.image.affine_transform`` on a batch of images, one transform per image."""
    if data_format == "channels_first":
        images = images.transpose(0, 2, 3, 1)
    batch, height, width, _ = images.shape
    t = transforms.astype(np.float32)
    y, x = np.meshgrid(np.arange(height, dtype=np.float32), np.arange(width, dtype=np.float32), indexing="ij")
    a0, a1, a2, b0, b1, b2, c0, c1 = (t[:, i, None, None] for i in range(8))
    k = c0 * x + c1 * y + 1
    xs, ys = (a0 * x + a1 * y + a2) / k, (b0 * x + b1 * y + b2) / k  # (batch, height, width)
    out = map_coordinates(images, ys, xs, interpolation, fill_mode, fill_value)
    return out.transpose(0, 3, 1, 2) if data_format == "channels_first" else out


def map_coordinates(images, ys, xs, interpolation, fill_mode, fill_value):
    """Keras' ``map_coordinates`` (torch backend) on channels-last images: output pixel ``(b, i,
    j)`` reads image ``b`` at ``(ys[b, i, j], xs[b, i, j])``."""
    batch, height, width, _ = images.shape
    b = np.arange(batch)[:, None, None]
    fix = _INDEX_FIXERS[fill_mode]
    out = np.zeros(images.shape, np.float32)
    for iy, wy in _nodes(ys, interpolation):
        for ix, wx in _nodes(xs, interpolation):
            values = images[b, fix(iy, height), fix(ix, width)].astype(np.float32)
            if fill_mode == "constant":
                valid = (iy >= 0) & (iy < height) & (ix >= 0) & (ix < width)
                values = np.where(valid[..., None], values, np.float32(fill_value))
            weight = np.asarray(wy * wx, np.float32)
            out += (weight[..., None] if weight.ndim else weight) * values
    return out.astype(images.dtype)


class _AffinePrim(_ImageAugmentation):
    """Resamples each image through a random affine matrix from ``matrices``."""

    def transform(self, x, rng, fill_mode, interpolation, fill_value, data_format, **attrs):
        h, w = _spatial_axes(data_format)
        matrices = self.matrices(rng, x.shape[0], x.shape[h], x.shape[w], **attrs)
        return affine_transform(x, matrices, interpolation, fill_mode, fill_value, data_format), None

    def matrices(self, rng, batch, height, width, **attrs):
        raise NotImplementedError

    def training_vjp(self, cotangents, inputs, outputs, aux, **attrs):
        return [None]


def _uniform(rng, low, high, size):
    return rng.uniform(low, high, size).astype(np.float32)


class RandomRotationPrim(_AffinePrim):
    """Rotation about the image centre by ``factor * 360`` degrees, one angle per image."""

    def matrices(self, rng, batch, height, width, factor, seed=None):
        angle = np.deg2rad(_uniform(rng, factor[0] * 360.0, factor[1] * 360.0, batch))
        cx, cy = 0.5 * (width - 1), 0.5 * (height - 1)
        cos, sin = np.cos(angle), np.sin(angle)
        a0, a1, b0, b1 = cos, -sin, sin, cos
        zero = np.zeros(batch, np.float32)
        return np.stack([a0, a1, cx - cx * a0 - cy * a1, b0, b1, cy - cx * b0 - cy * b1, zero, zero], 1)


class RandomZoomPrim(_AffinePrim):
    """Zoom about the centre by ``1 + U(height range)`` (and width range, else the same)."""

    def matrices(self, rng, batch, height, width, height_range, width_range=None, seed=None):
        zy = _uniform(rng, 1.0 + height_range[0], 1.0 + height_range[1], batch)
        zx = zy if width_range is None else _uniform(rng, 1.0 + width_range[0], 1.0 + width_range[1], batch)
        zero = np.zeros(batch, np.float32)
        x_offset, y_offset = (width - 1.0) / 2.0 * (1.0 - zx), (height - 1.0) / 2.0 * (1.0 - zy)
        return np.stack([zx, zero, x_offset, zero, zy, y_offset, zero, zero], 1)


class RandomTranslationPrim(_AffinePrim):
    """Shifts by ``U(height range) * height`` rows and ``U(width range) * width`` columns."""

    def matrices(self, rng, batch, height, width, height_range, width_range, seed=None):
        ty = _uniform(rng, height_range[0], height_range[1], batch) * height
        tx = _uniform(rng, width_range[0], width_range[1], batch) * width
        one, zero = np.ones(batch, np.float32), np.zeros(batch, np.float32)
        return np.stack([one, zero, -tx, zero, one, -ty, zero, zero], 1)


class RandomShearPrim(_AffinePrim):
    """Keras' RandomShear: ``x' = x + sx y``, ``y' = sy x + y`` (about the origin), ``(sx, sy)``
    drawn from the factors and both negated when ``U(0, 1) > 0.5`` (Keras' draw order: sign,
    y, x)."""

    def matrices(self, rng, batch, height, width, x_factor, y_factor, seed=None):
        sign = np.where(_uniform(rng, 0.0, 1.0, batch) > 0.5, np.float32(-1), np.float32(1))
        shear_y = _uniform(rng, y_factor[0], y_factor[1], batch)
        shear_x = _uniform(rng, x_factor[0], x_factor[1], batch)
        return self.shear_matrix(np.stack([shear_x * sign, shear_y * sign], 1))

    @staticmethod
    def shear_matrix(shear):
        one, zero = np.ones(len(shear), np.float32), np.zeros(len(shear), np.float32)
        return np.stack([one, shear[:, 0], zero, shear[:, 1], one, zero, zero, zero], 1).astype(np.float32)


class RandomCropPrim(_ImageAugmentation):
    """Keras 3.15's RandomCrop in training: one ``height`` x ``width`` box for the whole batch at
    ``int(U(0, H - height + 1))``, ``int(U(0, W - width + 1))`` when the image is larger in both
    axes; otherwise the centred crop of the target's aspect ratio resized (bilinear) to it. The
    output's spatial size therefore differs from the inference identity's (see the layer)."""

    def transform(self, x, rng, height, width, data_format, seed=None):
        h, w = _spatial_axes(data_format)
        size_h, size_w = x.shape[h], x.shape[w]
        if size_h > height and size_w > width:
            h_start = int(np.float32(rng.uniform(0, float(size_h - height + 1))))
            w_start = int(np.float32(rng.uniform(0, float(size_w - width + 1))))
            resized = False
        else:
            crop_h = max(min(size_h, int(float(size_w * height) / width)), 1)
            crop_w = max(min(size_w, int(float(size_h * width) / height)), 1)
            h_start, w_start = int(float(size_h - crop_h) / 2), int(float(size_w - crop_w) / 2)
        index = [slice(None)] * 4
        index[h], index[w] = slice(h_start, h_start + height), slice(w_start, w_start + width)
        out = x[tuple(index)]
        resized = out.shape[h] != height or out.shape[w] != width
        if resized:
            out = RESIZE.forward(
                out, size=(height, width), factors=None, interpolation="bilinear", data_format=data_format
            )
        return out.astype(np.float32), None if resized else (tuple(index), x.shape)

    def training_vjp(self, cotangents, inputs, outputs, aux, **attrs):
        if aux is None:  # resized: no gradient
            return [None]
        index, shape = aux
        g, added = _batched(cotangents[0])
        dx = np.zeros(shape, np.float32)
        dx[index] = g
        return [(dx[0] if added else dx).astype(inputs[0].dtype, copy=False)]


# -- colour ---------------------------------------------------------------------------------------


class RandomContrastPrim(_ImageAugmentation):
    """``(x - mean) * f + mean`` per image and channel (mean over the pixels), ``f`` drawn from
    ``U(1 - factor[0], 1 + factor[1])`` per image, clipped to ``value_range``."""

    def transform(self, x, rng, factor, value_range, data_format, seed=None):
        f = _uniform(rng, 1.0 - factor[0], 1.0 + factor[1], (x.shape[0], 1, 1, 1)).astype(x.dtype)
        mean = x.mean(axis=_spatial_axes(data_format), keepdims=True)
        out = (x - mean) * f + mean
        inside = (out >= value_range[0]) & (out <= value_range[1])
        return np.clip(out, value_range[0], value_range[1]).astype(x.dtype), (f, inside)

    def training_vjp(self, cotangents, inputs, outputs, aux, data_format, **attrs):
        g, added = _batched(cotangents[0])
        f, inside = aux
        g = g * inside
        g = f * g + (1 - f) * g.mean(axis=_spatial_axes(data_format), keepdims=True)
        return [(g[0] if added else g).astype(inputs[0].dtype, copy=False)]


class RandomBrightnessPrim(_ImageAugmentation):
    """Adds ``U(factor) * (value_range[1] - value_range[0])`` per image, clipped to the range."""

    def transform(self, x, rng, factor, value_range, seed=None):
        low, high = value_range
        delta = _uniform(rng, factor[0], factor[1], (x.shape[0], 1, 1, 1)) * np.float32(high - low)
        out = x + delta.astype(x.dtype)
        inside = (out >= low) & (out <= high)
        return np.clip(out, low, high).astype(x.dtype), inside

    def training_vjp(self, cotangents, inputs, outputs, aux, **attrs):
        g, added = _batched(cotangents[0])
        g = g * aux
        return [(g[0] if added else g).astype(inputs[0].dtype, copy=False)]


def _channel_axis(data_format: str) -> int:
    return 3 if data_format == "channels_last" else 1


_GRAY = (0.2989, 0.587, 0.114)  # Keras' (torchvision's) luminance weights


class RandomGrayscalePrim(_ImageAugmentation):
    """Each image becomes its luminance on every channel when ``U(0, 1) < factor`` (Keras'
    ``rgb_to_grayscale``: 3 channels weighted, 1 channel kept)."""

    def transform(self, x, rng, factor, data_format, seed=None):
        apply = rng.uniform(0.0, 1.0, x.shape[0]).astype(np.float32) < factor
        axis = _channel_axis(data_format)
        if x.shape[axis] not in (1, 3):
            raise ValueError(
                "Invalid channel size: expected 3 (RGB) or 1 (Grayscale). "
                f"Received input with shape: images.shape={x.shape}"
            )
        if x.shape[axis] == 1:
            return x, None
        r, g, b = (np.take(x, i, axis=axis) for i in range(3))
        gray = np.expand_dims((_GRAY[0] * r + _GRAY[1] * g + _GRAY[2] * b).astype(x.dtype), axis)
        return np.where(apply[:, None, None, None], gray, x).astype(x.dtype, copy=False), apply

    def training_vjp(self, cotangents, inputs, outputs, aux, data_format, **attrs):
        if aux is None:
            return [cotangents[0]]
        g, added = _batched(cotangents[0])
        axis = _channel_axis(data_format)
        total = g.sum(axis=axis, keepdims=True)
        shape = [1, 1, 1, 1]
        shape[axis] = 3
        through_gray = total * np.asarray(_GRAY, g.dtype).reshape(shape)
        g = np.where(aux[:, None, None, None], through_gray, g)
        return [(g[0] if added else g).astype(inputs[0].dtype, copy=False)]


class RandomInvertPrim(_ImageAugmentation):
    """``value_range[1] - x`` for each image where ``U(0, 1) < U(factor)`` (Keras draws the
    probability first, then the threshold)."""

    def transform(self, x, rng, factor, value_range, seed=None):
        probability = _uniform(rng, factor[0], factor[1], x.shape[0])
        threshold = _uniform(rng, 0.0, 1.0, x.shape[0])
        apply = (threshold < probability)[:, None, None, None]
        return np.where(apply, np.asarray(value_range[1], x.dtype) - x, x).astype(x.dtype, copy=False), apply

    def training_vjp(self, cotangents, inputs, outputs, aux, **attrs):
        g, added = _batched(cotangents[0])
        g = np.where(aux, -g, g)
        return [(g[0] if added else g).astype(inputs[0].dtype, copy=False)]


def _to_range(x, original, target):
    """Keras' ``_transform_value_range`` (in float32)."""
    if tuple(original) == tuple(target):
        return x
    low, high = np.float32(original[0]), np.float32(original[1])
    scaled = (x.astype(np.float32) - low) / (high - low)
    return scaled * (np.float32(target[1]) - np.float32(target[0])) + np.float32(target[0])


class RandomPosterizationPrim(_ImageAugmentation):
    """Keeps the top ``bits`` bits of each 8-bit pixel (in ``value_range`` mapped to [0, 255]),
    ``bits`` drawn per image from ``randint(factor[0], factor[1])`` (upper bound excluded, as
    torch's) or ``factor[0]`` when the bounds agree. No gradient (it is a step function)."""

    def transform(self, x, rng, factor, value_range, seed=None):
        if factor[0] != factor[1]:
            bits = rng.integers(int(factor[0]), int(factor[1]), x.shape[0])
        else:
            bits = np.full(x.shape[0], int(factor[0]))
        shift = (8 - bits).astype(np.uint8)[:, None, None, None]
        pixels = _to_range(x, value_range, (0, 255)).astype(np.uint8)
        pixels = ((pixels >> shift) << shift).astype(np.float32)
        return _to_range(pixels, (0, 255), value_range).astype(x.dtype), None

    def training_vjp(self, cotangents, inputs, outputs, aux, **attrs):
        return [None]


class SolarizationPrim(_ImageAugmentation):
    """Keras' Solarization in [0, 255]: ``y = clip(x + a, 0, 255)``, then ``255 - y`` where
    ``y >= t``, with ``a ~ U(addition[0], 255 addition[1])`` and ``t ~ U(threshold[0],
    255 threshold[1])`` per image (Keras' bounds, drawn in that order)."""

    def transform(self, x, rng, addition_factor, threshold_factor, value_range, seed=None):
        size = (x.shape[0], 1, 1, 1)
        additions = _uniform(rng, addition_factor[0], addition_factor[1] * 255, size)
        thresholds = _uniform(rng, threshold_factor[0], threshold_factor[1] * 255, size)
        return self.solarize(x, additions, thresholds, value_range)

    @staticmethod
    def solarize(x, additions, thresholds, value_range):
        y = _to_range(x, value_range, (0, 255)) + additions
        inside = (y > 0) & (y < 255)
        y = np.clip(y, 0, 255)
        kept = y < thresholds
        y = np.where(kept, y, 255 - y)
        slope = (np.where(kept, 1, -1) * inside).astype(np.float32)  # d out / d x, the scales cancel
        return _to_range(y, (0, 255), value_range).astype(x.dtype), slope

    def training_vjp(self, cotangents, inputs, outputs, aux, **attrs):
        g, added = _batched(cotangents[0])
        g = g * aux
        return [(g[0] if added else g).astype(inputs[0].dtype, copy=False)]


class RandomColorDegenerationPrim(_ImageAugmentation):
    """``x + f (gray(x) - x)`` per image with ``f ~ U(factor)``, clipped to ``value_range``
    (Keras' RandomColorDegeneration; ``gray`` is ``rgb_to_grayscale``)."""

    def transform(self, x, rng, factor, value_range, data_format, seed=None):
        f = _uniform(rng, factor[0], factor[1], (x.shape[0], 1, 1, 1))
        return self.degenerate(x, f, value_range, data_format)

    @staticmethod
    def degenerate(x, f, value_range, data_format):
        axis = _channel_axis(data_format)
        if x.shape[axis] not in (1, 3):
            raise ValueError(
                "Invalid channel size: expected 3 (RGB) or 1 (Grayscale). "
                f"Received input with shape: images.shape={x.shape}"
            )
        x = x.astype(np.float32)
        gray = x
        if x.shape[axis] == 3:
            r, g, b = (np.take(x, i, axis=axis) for i in range(3))
            gray = np.expand_dims(_GRAY[0] * r + _GRAY[1] * g + _GRAY[2] * b, axis).astype(np.float32)
        y = x + f * (gray - x)
        inside = (y >= value_range[0]) & (y <= value_range[1])
        return np.clip(y, value_range[0], value_range[1]).astype(np.float32), (f, inside, axis, x.shape[axis])

    def training_vjp(self, cotangents, inputs, outputs, aux, **attrs):
        g, added = _batched(cotangents[0])
        f, inside, axis, channels = aux
        dx = g = g * inside
        if channels == 3:  # one channel: the image itself
            shape = [1, 1, 1, 1]
            shape[axis] = 3
            dx = (1 - f) * g + f * g.sum(axis=axis, keepdims=True) * np.asarray(_GRAY, np.float32).reshape(shape)
        return [(dx[0] if added else dx).astype(inputs[0].dtype, copy=False)]


def _channels_last(x, data_format):
    return x if data_format == "channels_last" else x.transpose(0, 2, 3, 1)


def _from_channels_last(x, data_format):
    return x if data_format == "channels_last" else x.transpose(0, 3, 1, 2)


def rgb_to_hsv(images):
    """Keras' (dm_pix's) ``rgb_to_hsv`` on channels-last float32 images."""
    eps = np.finfo(np.float32).eps
    images = np.where(np.abs(images) < eps, np.float32(0), images).astype(np.float32)
    r, g, b = images[..., 0], images[..., 1], images[..., 2]
    value = np.maximum(np.maximum(r, g), b)
    range_ = value - np.minimum(np.minimum(r, g), b)
    safe_value = np.where(value > 0, value, np.float32(1))
    safe_range = np.where(range_ > 0, range_, np.float32(1))
    saturation = np.where(value > 0, range_ / safe_value, np.float32(0))
    norm = np.float32(1) / (np.float32(6) * safe_range)
    hue = np.where(value == g, norm * (b - r) + np.float32(2 / 6), norm * (r - g) + np.float32(4 / 6))
    hue = np.where(value == r, norm * (g - b), hue)
    hue = np.where(range_ > 0, hue, np.float32(0)) + (hue < 0).astype(np.float32)
    return np.stack([hue, saturation, value], -1).astype(np.float32)


def hsv_to_rgb(images):
    """Keras' (dm_pix's) ``hsv_to_rgb`` on channels-last float32 images."""
    hue, saturation, value = images[..., 0], images[..., 1], images[..., 2]
    dh = np.remainder(hue, np.float32(1)) * np.float32(6)
    dr = np.clip(np.abs(dh - 3) - 1, 0, 1)
    dg = np.clip(2 - np.abs(dh - 2), 0, 1)
    db = np.clip(2 - np.abs(dh - 4), 0, 1)
    one_minus_s = 1 - saturation
    planes = [value * (one_minus_s + saturation * d) for d in (dr, dg, db)]
    return np.stack(planes, -1).astype(np.float32)


class RandomSaturationPrim(_ImageAugmentation):
    """Keras' RandomSaturation: the HSV saturation times ``f / (1 - f + epsilon)`` with
    ``f ~ U(factor)`` per image, clipped to ``value_range`` (as Keras does, although saturation
    lies in [0, 1]). No gradient."""

    def transform(self, x, rng, factor, value_range, data_format, seed=None):
        f = _uniform(rng, factor[0], factor[1], x.shape[0])
        f = (f / (1 - f + np.float32(1e-7))).astype(np.float32)
        return self.saturate(x, f, value_range, data_format), None

    @staticmethod
    def saturate(x, f, value_range, data_format):
        hsv = rgb_to_hsv(_channels_last(x.astype(np.float32), data_format))
        hsv[..., 1] = np.clip(hsv[..., 1] * f[:, None, None], value_range[0], value_range[1])
        return _from_channels_last(hsv_to_rgb(hsv), data_format)

    def training_vjp(self, cotangents, inputs, outputs, aux, **attrs):
        return [None]


class RandomHuePrim(_ImageAugmentation):
    """Keras' RandomHue: shifts the HSV hue (of the image scaled from ``value_range`` to [0, 1])
    by ``±U(factor) / 2`` per image (the sign drawn first), clipped back to [0, 1] RGB. No
    gradient."""

    def transform(self, x, rng, factor, value_range, data_format, seed=None):
        sign = np.where(_uniform(rng, 0.0, 1.0, x.shape[0]) > 0.5, np.float32(-1), np.float32(1))
        delta = (sign * _uniform(rng, factor[0], factor[1], x.shape[0]) * np.float32(0.5)).astype(np.float32)
        return self.shift(x, delta, value_range, data_format), None

    @staticmethod
    def shift(x, delta, value_range, data_format):
        images = _to_range(x.astype(np.float32), value_range, (0, 1))
        hsv = rgb_to_hsv(_channels_last(images, data_format))
        hue = hsv[..., 0] + delta[:, None, None]
        hue = np.where(hue > 1, hue - 1, hue)
        hsv[..., 0] = np.where(hue < 0, hue + 1, hue)
        rgb = np.clip(hsv_to_rgb(hsv), 0, 1)
        return _from_channels_last(_to_range(rgb, (0, 1), value_range), data_format).astype(np.float32)

    def training_vjp(self, cotangents, inputs, outputs, aux, **attrs):
        return [None]


def _smooth(x):
    """Keras' sharpness blur: a depthwise 3x3 convolution (1/13 around, 5/13 at the centre),
    ``same`` zero padding, on channels-last images. Its kernel is symmetric: it is its adjoint."""
    a, b = np.float32(1 / 13), np.float32(5 / 13)
    padded = np.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)))
    height, width = x.shape[1:3]
    out = np.zeros_like(x)
    for i in range(3):
        for j in range(3):
            out += (b if i == j == 1 else a) * padded[:, i : i + height, j : j + width]
    return out


class RandomSharpnessPrim(_ImageAugmentation):
    """Keras' RandomSharpness: ``x + (1 - 2f) (blur(x) - x)`` per image, ``f ~ U(factor)``
    (0.5: unchanged), clipped to ``value_range``."""

    def transform(self, x, rng, factor, value_range, data_format, seed=None):
        s = _uniform(rng, factor[0], factor[1], x.shape[0]) * np.float32(2)
        return self.sharpen(x, s.reshape(-1, 1, 1, 1), value_range, data_format)

    @staticmethod
    def sharpen(x, s, value_range, data_format):
        images = _channels_last(x.astype(np.float32), data_format)
        y = images + (np.float32(1) - s) * (_smooth(images) - images)
        inside = (y >= value_range[0]) & (y <= value_range[1])
        y = np.clip(y, value_range[0], value_range[1])
        return _from_channels_last(y, data_format), (s, inside)

    def training_vjp(self, cotangents, inputs, outputs, aux, data_format, **attrs):
        g, added = _batched(cotangents[0])
        s, inside = aux
        g = _channels_last(g.astype(np.float32), data_format) * inside
        dx = _from_channels_last(s * g + (1 - s) * _smooth(g), data_format)
        return [(dx[0] if added else dx).astype(inputs[0].dtype, copy=False)]


class EqualizationPrim(_ImageAugmentation):
    """Keras' Equalization (in training only, as Keras does; not random): each channel's
    histogram over the whole batch (``bins`` bins of [0, 255] after scaling from
    ``value_range``) is flattened through its cumulative distribution. No gradient."""

    def transform(self, x, rng, value_range, bins, data_format, seed=None):
        axis = _channel_axis(data_format)
        channels = [self.equalize(np.take(x, i, axis=axis), value_range, bins) for i in range(x.shape[axis])]
        return np.stack(channels, axis).astype(np.float32), None

    @staticmethod
    def equalize(channel, value_range, bins):
        low, high = value_range
        scale = np.float32(255 / (high - low))
        channel = channel.astype(np.float32) * scale + np.float32(0 - low * scale)
        indices = np.clip((channel * np.float32(bins - 1) / np.float32(255)).astype(np.int32), 0, bins - 1)
        hist = np.bincount(indices.ravel(), minlength=bins)
        if np.count_nonzero(hist) > 1:
            cdf = np.cumsum(hist)
            cdf_min = cdf[np.nonzero(cdf)[0][0]]
            denominator = cdf[-1] - cdf_min
            lookup = np.clip(np.round(((cdf - cdf_min) * 255) / (denominator if denominator else 1)), 0, 255)
            lookup = lookup.astype(np.float32)
            scaled = (channel / np.float32(255)) * np.float32(bins - 1)
            channel = lookup[np.clip(scaled, 0, bins - 1).astype(np.int32)]
        back = np.float32((high - low) / 255)
        return channel * back + np.float32(low)

    def training_vjp(self, cotangents, inputs, outputs, aux, **attrs):
        return [None]


class RandomErasingPrim(_ImageAugmentation):
    """Keras' RandomErasing: per image a box of ``sqrt(U(scale))`` of the width and of the height
    at ``U(0, 1)`` of the free room, filled (when ``U(0, 1) < U(factor)``) with ``fill_value``
    or, when it is None, ``N(0, 1) * value_range[1]``, clipped to ``value_range``. Keras' draw
    order: box sizes, x start, y start, probability, threshold, fill."""

    def transform(self, x, rng, factor, scale, fill_value, value_range, data_format, seed=None):
        batch = x.shape[0]
        h, w = _spatial_axes(data_format)
        sizes = np.sqrt(_uniform(rng, scale[0], scale[1], (batch, 2)))
        corners = []
        for ratio, length in ((sizes[:, 0], x.shape[w]), (sizes[:, 1], x.shape[h])):
            crop = (ratio * np.float32(length)).astype(np.float32)
            start = _uniform(rng, 0.0, 1.0, batch) * (np.float32(length) - crop)
            corners += [start, start + crop]
        probability = _uniform(rng, factor[0], factor[1], batch)
        apply = _uniform(rng, 0.0, 1.0, batch) < probability
        if fill_value is None:
            fill = rng.standard_normal(x.shape).astype(np.float32) * np.float32(value_range[1])
        else:
            fill = np.broadcast_to(np.asarray(fill_value, np.float32), x.shape)
        fill = np.clip(fill, value_range[0], value_range[1])
        erased = self.mask(x.shape, corners, data_format) & apply[:, None, None, None]
        return np.where(erased, fill, x.astype(np.float32)), erased

    @staticmethod
    def mask(shape, corners, data_format):
        """Keras' ``_generate_batch_mask``: ``x0 <= x < x1`` and ``y0 <= y < y1``, all channels."""
        h, w = _spatial_axes(data_format)
        grid_y, grid_x = np.meshgrid(
            np.arange(shape[h], dtype=np.float32), np.arange(shape[w], dtype=np.float32), indexing="ij"
        )
        grid_x, grid_y = (
            g[None, :, :, None] if data_format == "channels_last" else g[None, None] for g in (grid_x, grid_y)
        )
        x0, x1, y0, y1 = (c[:, None, None, None] for c in corners)
        inside = (grid_x >= x0) & (grid_x < x1) & (grid_y >= y0) & (grid_y < y1)
        return np.broadcast_to(inside, shape)

    def training_vjp(self, cotangents, inputs, outputs, aux, **attrs):
        g, added = _batched(cotangents[0])
        g = np.where(aux, 0, g)
        return [(g[0] if added else g).astype(inputs[0].dtype, copy=False)]


def gaussian_kernel(kernel_size, sigma):
    """Keras' (torch backend's) ``gaussian_blur`` kernel: ``outer(k_y, k_x)`` of the normalised 1-D
    Gaussians (``k_x`` of ``kernel_size[0]`` taps at ``sigma[0]``, ``k_y`` of ``kernel_size[1]``
    at ``sigma[1]``), laid out as ``kernel_size[0]`` x ``kernel_size[1]`` as Keras reshapes it."""

    def one(size, s):
        x = np.arange(size, dtype=np.float32) - np.float32((size - 1) / 2)
        k = np.exp(np.float32(-0.5) * (x / np.float32(s)) ** 2).astype(np.float32)
        return k / k.sum()

    k = np.outer(one(kernel_size[1], sigma[1]), one(kernel_size[0], sigma[0])).astype(np.float32)
    return k.reshape(int(kernel_size[0]), int(kernel_size[1]))


def gaussian_blur(images, kernel_size, sigma, data_format):
    """Keras' ``ops.image.gaussian_blur`` (torch backend) on a batch: a depthwise correlation with
    ``gaussian_kernel`` and ``kernel_size[0] // 2`` zero padding on both axes."""
    kernel = gaussian_kernel(kernel_size, sigma)
    x = _channels_last(images.astype(np.float32), data_format)
    pad = int(kernel_size[0]) // 2
    padded = np.pad(x, ((0, 0), (pad, pad), (pad, pad), (0, 0)))
    kh, kw = kernel.shape
    height, width = padded.shape[1] - kh + 1, padded.shape[2] - kw + 1
    out = np.zeros((x.shape[0], height, width, x.shape[3]), np.float32)
    for i in range(kh):
        for j in range(kw):
            out += kernel[i, j] * padded[:, i : i + height, j : j + width]
    return _from_channels_last(out, data_format)


class RandomGaussianBlurPrim(_ImageAugmentation):
    """Keras' RandomGaussianBlur: each image blurred when ``U(0, 1) < U(factor)``, with one
    ``sigma ~ U(sigma) + 1e-6`` pair for the whole batch (Keras' draw order: probabilities,
    thresholds, the two sigmas), clipped to ``value_range``."""

    def transform(self, x, rng, factor, kernel_size, sigma, value_range, data_format, seed=None):
        batch = x.shape[0]
        probability = _uniform(rng, factor[0], factor[1], batch)
        apply = _uniform(rng, 0.0, 1.0, batch) < probability
        sigmas = _uniform(rng, sigma[0], sigma[1], 2) + np.float32(1e-6)
        return self.blur(x, apply, sigmas, kernel_size, value_range, data_format)

    @staticmethod
    def blur(x, apply, sigmas, kernel_size, value_range, data_format):
        images = x.astype(np.float32)
        y = np.where(apply[:, None, None, None], gaussian_blur(images, kernel_size, sigmas, data_format), images)
        inside = (y >= value_range[0]) & (y <= value_range[1])
        aux = (apply, sigmas, inside) if kernel_size[0] == kernel_size[1] else None
        return np.clip(y, value_range[0], value_range[1]).astype(np.float32), aux

    def training_vjp(self, cotangents, inputs, outputs, aux, kernel_size, data_format, **attrs):
        if aux is None:  # a non-square kernel changes the size: no gradient
            return [None]
        apply, sigmas, inside = aux
        g, added = _batched(cotangents[0])
        g = g.astype(np.float32) * inside
        # the kernel is symmetric and square with "same" padding: the blur is its own adjoint
        dx = np.where(apply[:, None, None, None], gaussian_blur(g, kernel_size, sigmas, data_format), g)
        return [(dx[0] if added else dx).astype(inputs[0].dtype, copy=False)]


class RandomColorJitterPrim(_ImageAugmentation):
    """Keras' RandomColorJitter: RandomBrightness, RandomContrast, RandomSaturation and RandomHue
    in that order (those whose factor is given), each drawing in turn. Keras builds the four with
    the default data format, not the jitter's: ``step_data_format`` is that default."""

    def _steps(self, brightness, contrast, saturation, hue, value_range, step_data_format):
        steps = [
            (RANDOM_BRIGHTNESS, brightness, {"value_range": tuple(sorted(value_range))}),
            (RANDOM_CONTRAST, contrast, {"data_format": step_data_format}),
            (RANDOM_SATURATION, saturation, {"data_format": step_data_format}),
            (RANDOM_HUE, hue, {"data_format": step_data_format}),
        ]
        return [(p, {"factor": f, "value_range": tuple(value_range), **a}) for p, f, a in steps if f is not None]

    def transform(self, x, rng, brightness, contrast, saturation, hue, value_range, step_data_format, seed=None):
        done = []
        for prim, attrs in self._steps(brightness, contrast, saturation, hue, value_range, step_data_format):
            y, aux = prim.transform(x.astype(np.float32), rng, **attrs)
            done.append((prim, x, y, aux, attrs))
            x = y
        return x.astype(np.float32), done

    def training_vjp(self, cotangents, inputs, outputs, aux, **attrs):
        g, added = _batched(cotangents[0])
        for prim, x, y, step_aux, step_attrs in reversed(aux):
            (g,) = prim.training_vjp([g], [x], [y], step_aux, **step_attrs)
            if g is None:
                return [None]
        return [(g[0] if added else g).astype(inputs[0].dtype, copy=False)]


def homography(start_points, end_points):
    """Keras' ``compute_homography_matrix``: the 8 coefficients (``affine_transform``'s layout)
    mapping each output point ``end`` to its input point ``start``, solved in float32."""
    start = start_points.astype(np.float32)
    end = end_points.astype(np.float32)
    rows = []
    for i in range(4):
        sx, sy, ex, ey = start[:, i, 0], start[:, i, 1], end[:, i, 0], end[:, i, 1]
        one, zero = np.ones_like(ex), np.zeros_like(ex)
        rows.append(np.stack([ex, ey, one, zero, zero, zero, -sx * ex, -sx * ey], -1))
        rows.append(np.stack([zero, zero, zero, ex, ey, one, -sy * ex, -sy * ey], -1))
    target = start.reshape(len(start), 8, 1)
    return np.linalg.solve(np.stack(rows, 1), target).reshape(-1, 8).astype(np.float32)


class RandomPerspectivePrim(_ImageAugmentation):
    """Keras' RandomPerspective: each image (when ``U(0, 1) < U(factor)``) is resampled through
    the homography moving its corners by ``corner * U(-scale / 2, scale / 2)`` per coordinate,
    filled with ``fill_value`` outside (Keras' draw order: probabilities, thresholds, the
    corner factors). No gradient."""

    def transform(self, x, rng, factor, scale, interpolation, fill_value, data_format, seed=None):
        batch = x.shape[0]
        probability = _uniform(rng, factor[0], factor[1], batch)
        apply = _uniform(rng, 0.0, 1.0, batch) < probability
        offsets = _uniform(rng, -0.5 * scale, 0.5 * scale, (batch, 4, 2))
        return self.perspective(x, apply, offsets, interpolation, fill_value, data_format), None

    @staticmethod
    def corners(batch, height, width):
        start = np.array([[0, 0], [width - 1, 0], [0, height - 1], [width - 1, height - 1]], np.float32)
        return np.repeat(start[None], batch, 0)

    @classmethod
    def perspective(cls, x, apply, offsets, interpolation, fill_value, data_format):
        h, w = _spatial_axes(data_format)
        start = cls.corners(x.shape[0], x.shape[h], x.shape[w])
        matrices = homography(start, start + start * offsets)
        images = x.astype(np.float32)
        out = affine_transform(images, matrices, interpolation, "constant", fill_value, data_format)
        return np.where(apply[:, None, None, None], out, images)

    def training_vjp(self, cotangents, inputs, outputs, aux, **attrs):
        return [None]


class MixUpPrim(_ImageAugmentation):
    """Keras' MixUp on the images: ``w x + (1 - w) x[permutation]`` with a random permutation of
    the batch and ``w ~ Beta(alpha, alpha)`` per image (Keras' draw order: permutation, weights).
    Labels are not mixed (in a model the layer sees only its input)."""

    def transform(self, x, rng, alpha, seed=None):
        batch = x.shape[0]
        permutation = rng.permutation(batch)
        weights = rng.beta(alpha, alpha, batch).astype(np.float32)
        return self.mix(x, weights, permutation), (weights, permutation)

    @staticmethod
    def mix(x, weights, permutation):
        images = x.astype(np.float32)
        w = weights.reshape(-1, 1, 1, 1).astype(np.float32)
        return w * images + (np.float32(1) - w) * images[permutation]

    def training_vjp(self, cotangents, inputs, outputs, aux, **attrs):
        g, added = _batched(cotangents[0])
        weights, permutation = aux
        w = weights.reshape(-1, 1, 1, 1)
        dx = w * g
        np.add.at(dx, permutation, (1 - w) * g)
        return [(dx[0] if added else dx).astype(inputs[0].dtype, copy=False)]


class CutMixPrim(_ImageAugmentation):
    """Keras' CutMix on the images: per image a box of ``sqrt(1 - w)`` of the width and of the
    height, at ``U(0, 1)`` of the free room, is replaced by the same box of another image of the
    batch (a random permutation); ``w ~ Beta(a, a)`` with one ``a ~ U(factor) + 1e-6`` per batch
    (Keras' draw order: ``a``, ``w``, x starts, y starts, permutation). One unbatched image is
    kept, as Keras does."""

    def noise(self, x, rng, **attrs):
        if x.ndim == 3:
            return x, None
        return self.transform(x, rng, **attrs)

    def transform(self, x, rng, factor, data_format, seed=None):
        batch = x.shape[0]
        h, w = _spatial_axes(data_format)
        alpha = float(_uniform(rng, factor[0], factor[1], ())) + 1e-6
        ratio = np.sqrt(np.float32(1) - rng.beta(alpha, alpha, batch).astype(np.float32))
        corners = []
        for length in (x.shape[w], x.shape[h]):
            crop = (ratio * np.float32(length)).astype(np.float32)
            start = _uniform(rng, 0.0, 1.0, batch) * (np.float32(length) - crop)
            corners += [start, start + crop]
        permutation = rng.permutation(batch)
        mask = RandomErasingPrim.mask(x.shape, corners, data_format)
        return self.cut(x, mask, permutation), (mask, permutation)

    @staticmethod
    def cut(x, mask, permutation):
        images = x.astype(np.float32)
        return np.where(mask, images[permutation], images)

    def training_vjp(self, cotangents, inputs, outputs, aux, **attrs):
        if aux is None:
            return [cotangents[0]]
        mask, permutation = aux
        g = cotangents[0]
        dx = np.where(mask, 0, g)
        np.add.at(dx, permutation, np.where(mask, g, 0))
        return [dx.astype(inputs[0].dtype, copy=False)]


class RandomElasticTransformPrim(_ImageAugmentation):
    """Keras' RandomElasticTransform (torch backend's ``elastic_transform``): with ``d ~ U(scale)``
    per batch, ``alpha = 0.1 d max(H, W)`` and ``sigma = 0.05 d min(H, W)``, each image (when
    ``U(0, 1) < U(factor)``) is resampled at ``(y + alpha dy, x + alpha dx)`` where ``dx``,
    ``dy`` are ``N(0, 1) sigma`` fields blurred by a ``int(6 sigma) | 1`` Gaussian, then clipped
    to ``value_range``. Keras' draw order: probabilities, thresholds, ``d``, ``dx``, ``dy``.
    Nothing happens when the upper bound of ``scale`` or ``factor`` is 0. No gradient."""

    def transform(
        self, x, rng, factor, scale, interpolation, fill_mode, fill_value, value_range, data_format, seed=None
    ):
        if scale[1] == 0 or factor[1] == 0:
            return x, None
        batch = x.shape[0]
        h, w = _spatial_axes(data_format)
        probability = _uniform(rng, factor[0], factor[1], batch)
        apply = _uniform(rng, 0.0, 1.0, batch) < probability
        distortion = _uniform(rng, scale[0], scale[1], ())
        noise = [rng.standard_normal((batch, x.shape[h], x.shape[w])).astype(np.float32) for _ in range(2)]
        return self.elastic(
            x, apply, distortion, *noise, interpolation, fill_mode, fill_value, value_range, data_format
        ), None

    @staticmethod
    def elastic(x, apply, distortion, dx, dy, interpolation, fill_mode, fill_value, value_range, data_format):
        """``dx``, ``dy``: the ``N(0, 1)`` fields, before the scaling by sigma and the blur."""
        images = _channels_last(x.astype(np.float32), data_format)
        height, width = images.shape[1:3]
        distortion = np.float32(distortion)
        alpha = np.float32(max(height, width)) * (np.float32(0.1) * distortion)
        sigma = np.float32(min(height, width)) * (np.float32(0.05) * distortion)
        size = int(6 * sigma) | 1
        fields = [
            gaussian_blur((d * sigma)[..., None], (size, size), (sigma, sigma), "channels_last")[..., 0]
            for d in (dx, dy)
        ]
        gy, gx = np.meshgrid(np.arange(height, dtype=np.float32), np.arange(width, dtype=np.float32), indexing="ij")
        xs, ys = gx[None] + alpha * fields[0], gy[None] + alpha * fields[1]
        out = map_coordinates(images, ys, xs, interpolation, fill_mode, fill_value)
        out = np.where(apply[:, None, None, None], out, images)
        out = np.clip(out, value_range[0], value_range[1])
        return _from_channels_last(out, data_format).astype(np.float32)

    def training_vjp(self, cotangents, inputs, outputs, aux, **attrs):
        return [None]


def auto_contrast(x, value_range, data_format):
    """Keras' AutoContrast on a batch (min and max over axes 1 and 2, as Keras reduces), a flat
    channel kept."""
    low_range, high_range = float(value_range[0]), float(value_range[1])
    original = x.astype(np.float32)
    images = _to_range(original, (low_range, high_range), (0, 255))
    low = images.min(axis=(1, 2), keepdims=True)
    high = images.max(axis=(1, 2), keepdims=True)
    flat = high == low
    results = np.clip((images - low) * (np.float32(255) / np.where(flat, np.float32(1), high - low)), 0, 255)
    results = _to_range(results, (0, 255), (low_range, high_range))
    return np.where(flat, original, results).astype(np.float32)


RAND_AUGMENT_OPS = (
    "random_shear",
    "random_translation",
    "random_rotation",
    "random_brightness",
    "random_color_degeneration",
    "random_contrast",
    "random_sharpness",
    "random_posterization",
    "solarization",
    "auto_contrast",
    "equalization",
)


class RandAugmentPrim(_ImageAugmentation):
    """Keras' RandAugment: ``num_ops`` operations drawn from ``RAND_AUGMENT_OPS`` (with
    repetition), each Keras' layer built with ``factor`` as RandAugment builds it. As in Keras
    every operation's random parameters are drawn once per call (after the choice of operations),
    so an operation chosen twice applies the same draw twice: here each operation gets its own
    generator, seeded from the main one in Keras' order, and replayed when applied. No
    gradient."""

    def transform(self, x, rng, value_range, num_ops, factor, interpolation, data_format, seed=None):
        choices = rng.integers(0, len(RAND_AUGMENT_OPS), num_ops)
        seeds = rng.integers(0, 2**63, len(RAND_AUGMENT_OPS))
        return self.augment(x, choices, seeds, value_range, factor, interpolation, data_format), None

    @staticmethod
    def operations(value_range, factor, interpolation, data_format):
        """``{name: (primitive or None, attrs)}`` of Keras' sub-layers."""
        factor = tuple(float(f) for f in factor)
        sorted_range = tuple(sorted(float(v) for v in value_range))
        value_range = tuple(float(v) for v in value_range)
        resample = {
            "fill_mode": "reflect",
            "interpolation": interpolation,
            "fill_value": 0.0,
            "data_format": data_format,
        }
        bits = float(max(1, int(8 * factor[1])))
        return {
            "random_shear": (RANDOM_SHEAR, {**resample, "x_factor": factor, "y_factor": factor}),
            "random_translation": (RANDOM_TRANSLATION, {**resample, "height_range": factor, "width_range": factor}),
            "random_rotation": (RANDOM_ROTATION, {**resample, "factor": factor}),
            "random_brightness": (RANDOM_BRIGHTNESS, {"factor": factor, "value_range": sorted_range}),
            "random_color_degeneration": (
                RANDOM_COLOR_DEGENERATION,
                {"factor": factor, "value_range": sorted_range, "data_format": data_format},
            ),
            "random_contrast": (
                RANDOM_CONTRAST,
                {"factor": factor, "value_range": value_range, "data_format": data_format},
            ),
            "random_sharpness": (
                RANDOM_SHARPNESS,
                {"factor": factor, "value_range": sorted_range, "data_format": data_format},
            ),
            "random_posterization": (RANDOM_POSTERIZATION, {"factor": (1.0, bits), "value_range": sorted_range}),
            "solarization": (
                SOLARIZATION,
                {"addition_factor": factor, "threshold_factor": factor, "value_range": sorted_range},
            ),
            "auto_contrast": (None, {"value_range": sorted_range, "data_format": data_format}),
            "equalization": (EQUALIZATION, {"value_range": sorted_range, "bins": 256, "data_format": data_format}),
        }

    @classmethod
    def augment(cls, x, choices, seeds, value_range, factor, interpolation, data_format):
        operations = cls.operations(value_range, factor, interpolation, data_format)
        images = x.astype(np.float32)
        for choice in choices:
            name = RAND_AUGMENT_OPS[int(choice)]
            prim, attrs = operations[name]
            if prim is None:
                images = auto_contrast(images, **attrs)
            else:
                images = prim.transform(images, np.random.default_rng(int(seeds[int(choice)])), **attrs)[0]
        return images.astype(np.float32)

    def training_vjp(self, cotangents, inputs, outputs, aux, **attrs):
        return [None]


AUG_MIX_OPS_ALL = (
    "random_shear",
    "random_translation",
    "random_rotation",
    "random_posterization",
    "solarization",
    "auto_contrast",
    "equalization",
    "random_brightness",
    "random_color_degeneration",
    "random_contrast",
    "random_sharpness",
)
AUG_MIX_OPS = AUG_MIX_OPS_ALL[:7]


class AugMixPrim(_ImageAugmentation):
    """Keras' AugMix: ``num_chains`` chains of up to ``chain_depth`` operations (each step one of
    Keras' sub-layers, or none, chosen uniformly; each with its own draw), mixed by Dirichlet
    (``alpha``) weights, then ``w x + (1 - w) mix`` with ``w ~ Beta(alpha, alpha)``, clipped to
    ``value_range``. Keras' draw order: chain weights, ``w``, then the steps. No gradient."""

    def transform(
        self,
        x,
        rng,
        value_range,
        num_chains,
        chain_depth,
        factor,
        alpha,
        all_ops,
        interpolation,
        data_format,
        seed=None,
    ):
        gamma = rng.gamma(alpha, size=num_chains).astype(np.float32)
        weights = gamma / gamma.sum()
        mix = np.float32(rng.beta(alpha, alpha))
        names = AUG_MIX_OPS_ALL if all_ops else AUG_MIX_OPS
        chains = []
        for _ in range(num_chains):
            steps = [int(rng.integers(0, len(names) + 1)) for _ in range(chain_depth)]
            chains.append([(names[i], int(rng.integers(0, 2**63))) for i in steps if i < len(names)])
        return self.augmix(x, weights, mix, chains, value_range, factor, interpolation, data_format), None

    @staticmethod
    def augmix(x, weights, mix, chains, value_range, factor, interpolation, data_format):
        """``chains``: per chain the ``(operation name, seed of its draw)`` steps."""
        operations = RandAugmentPrim.operations(value_range, factor, interpolation, data_format)
        images = x.astype(np.float32)
        augmented = np.zeros_like(images)
        for weight, chain in zip(weights, chains):
            chained = images.copy()
            for name, step_seed in chain:
                prim, attrs = operations[name]
                if prim is None:
                    chained = auto_contrast(chained, **attrs)
                else:
                    chained = prim.transform(chained, np.random.default_rng(step_seed), **attrs)[0]
            augmented += chained.astype(np.float32) * np.float32(weight)
        out = np.float32(mix) * images + (np.float32(1) - np.float32(mix)) * augmented
        return np.clip(out, value_range[0], value_range[1]).astype(np.float32)

    def training_vjp(self, cotangents, inputs, outputs, aux, **attrs):
        return [None]


RANDOM_FLIP = RandomFlipPrim("random_flip")
RANDOM_ROTATION = RandomRotationPrim("random_rotation")
RANDOM_ZOOM = RandomZoomPrim("random_zoom")
RANDOM_TRANSLATION = RandomTranslationPrim("random_translation")
RANDOM_CONTRAST = RandomContrastPrim("random_contrast")
RANDOM_BRIGHTNESS = RandomBrightnessPrim("random_brightness")
RANDOM_GRAYSCALE = RandomGrayscalePrim("random_grayscale")
RANDOM_INVERT = RandomInvertPrim("random_invert")
RANDOM_POSTERIZATION = RandomPosterizationPrim("random_posterization")
SOLARIZATION = SolarizationPrim("solarization")
RANDOM_COLOR_DEGENERATION = RandomColorDegenerationPrim("random_color_degeneration")
RANDOM_SATURATION = RandomSaturationPrim("random_saturation")
RANDOM_HUE = RandomHuePrim("random_hue")
RANDOM_SHARPNESS = RandomSharpnessPrim("random_sharpness")
EQUALIZATION = EqualizationPrim("equalization")
RANDOM_ERASING = RandomErasingPrim("random_erasing")
RANDOM_SHEAR = RandomShearPrim("random_shear")
RANDOM_CROP = RandomCropPrim("random_crop")
RANDOM_GAUSSIAN_BLUR = RandomGaussianBlurPrim("random_gaussian_blur")
RANDOM_COLOR_JITTER = RandomColorJitterPrim("random_color_jitter")
RANDOM_PERSPECTIVE = RandomPerspectivePrim("random_perspective")
MIX_UP = MixUpPrim("mix_up")
CUT_MIX = CutMixPrim("cut_mix")
RANDOM_ELASTIC_TRANSFORM = RandomElasticTransformPrim("random_elastic_transform")
RAND_AUGMENT = RandAugmentPrim("rand_augment")
AUG_MIX = AugMixPrim("aug_mix")
