"""Image primitives: ``resize`` (nearest, bilinear) and ``center_crop``; ``irtool.ops.image``.

``resize`` follows Keras 3 on its torch backend (``antialias=False``):

- ``bilinear`` is half-pixel bilinear (``align_corners=False``; source coordinates clamped to the
  image). The NumPy kernel computes the coordinates and weights in float32 exactly as ONNX
  Runtime's ``Resize(mode="linear", coordinate_transformation_mode="half_pixel")`` does, so the
  two agree to float32 rounding; torch computes the same quantities in float32 by another
  formula, which differs from both by up to ~1e-6 * size.
- ``nearest`` is torch's ``nearest-exact``: source index ``floor((i + 0.5) * (in / out))`` in
  float32. It lowers to ``Gather`` with those indices (constants when the size is static,
  else computed with the same float32 operations), so NumPy and ONNX Runtime agree exactly.
"""

from __future__ import annotations

import numpy as np

from irtool.ir.dtypes import is_float
from irtool.ir.spec import TensorSpec
from irtool.ops.arrays import pad
from irtool.ops.core import Primitive, apply
from irtool.ops.elementwise import cast
from irtool.ops.operation import top_level_op
from irtool.ops.pooling import lower_nchw, spatial_axes, standardize_data_format
from irtool.ops.shape import expand_dims, get_item, squeeze

INTERPOLATIONS = ("bilinear", "nearest")


def nearest_indices(size: int, out: int) -> np.ndarray:
    """torch's ``nearest-exact`` source indices, in float32 like torch and the ONNX lowering."""
    scale = np.float32(size) / np.float32(out)
    pos = (np.arange(out, dtype=np.float32) + np.float32(0.5)) * scale
    return np.minimum(np.floor(pos).astype(np.int64), size - 1)


def bilinear_weights(size: int, out: int, scale=None):
    """ONNX Runtime's half-pixel bilinear taps: ``(i1, i2, w1, w2)`` with ``x[i1]*w2 + x[i2]*w1``."""
    scale = np.float32(out) / np.float32(size) if scale is None else np.float32(scale)
    if scale == 1:
        coord = np.arange(out, dtype=np.float32)
    else:
        coord = (np.arange(out, dtype=np.float32) + np.float32(0.5)) / scale - np.float32(0.5)
    coord = np.clip(coord, np.float32(0), np.float32(size - 1))
    i1 = np.minimum(coord.astype(np.int64), size - 1)
    i2 = np.minimum(i1 + 1, size - 1)
    w1 = np.abs(coord - i1.astype(np.float32))
    w2 = np.abs(coord - i2.astype(np.float32))
    same = i1 == i2
    w1[same] = 0.5
    w2[same] = 0.5
    return i1, i2, w1, w2


class Resize(Primitive):
    """Resize the spatial axes of a batch to ``size``, or by integer ``factors`` (``size=None``).

    Bilinear needs two spatial axes; nearest by ``factors`` works on 1, 2 or 3 (UpSampling)."""

    name = "resize"
    layout_sensitive = True
    layout_inputs = (0,)

    def infer(self, specs, size, factors, interpolation, data_format):
        (x,) = specs
        spatial = len(size if size is not None else factors)
        if len(x.shape) != spatial + 2:
            raise ValueError(
                f"`resize` to {size if size is not None else f'factors {factors}'} expects a batch of rank "
                f"{spatial + 2}. Received input shape: {x.shape}"
            )
        if interpolation != "nearest" and spatial != 2:
            raise ValueError(f"`resize` with {interpolation!r} interpolation needs 2 spatial axes. Received: {x.shape}")
        if not is_float(x.dtype):
            raise ValueError(f"`resize` needs a float input. Received dtype={x.dtype}")
        shape = list(x.shape)
        for i, axis in enumerate(spatial_axes(len(shape), data_format)):
            if size is not None:
                shape[axis] = size[i]
            elif shape[axis] is not None:
                shape[axis] *= factors[i]
        return [TensorSpec(tuple(shape), x.dtype)]

    def forward(self, x, size, factors, interpolation, data_format):
        out = x
        for i, axis in enumerate(spatial_axes(x.ndim, data_format)):
            n = x.shape[axis]
            if size is None and interpolation == "nearest":
                out = np.repeat(out, factors[i], axis=axis)  # what nearest-exact gives for integer factors
                continue
            m = size[i] if size is not None else n * factors[i]
            if interpolation == "nearest":
                out = np.take(out, nearest_indices(n, m), axis=axis)
                continue
            i1, i2, w1, w2 = bilinear_weights(n, m, None if size is not None else factors[i])
            shape = [1] * x.ndim
            shape[axis] = m
            a = np.take(out, i1, axis=axis)
            a *= w2.reshape(shape).astype(x.dtype)
            b = np.take(out, i2, axis=axis)
            b *= w1.reshape(shape).astype(x.dtype)
            a += b
            out = a
        return out.astype(x.dtype, copy=False)

    def vjp(self, cotangents, inputs, outputs, size, factors, interpolation, data_format):
        """The adjoint of the interpolation: per spatial axis, in reverse order, each output's
        gradient goes back to its source pixel(s) with the forward's weights (sums over runs of
        equal, sorted indices, so no ``np.add.at``)."""
        (x,) = inputs
        g = np.asarray(cotangents[0], dtype=x.dtype)
        for i, axis in reversed(list(enumerate(spatial_axes(x.ndim, data_format)))):
            n = x.shape[axis]
            if size is None and interpolation == "nearest":
                f = factors[i]
                g = g.reshape(*g.shape[:axis], n, f, *g.shape[axis + 1 :]).sum(axis=axis + 1)
                continue
            m = size[i] if size is not None else n * factors[i]
            if interpolation == "nearest":
                g = _take_adjoint(g, nearest_indices(n, m), n, axis)
                continue
            i1, i2, w1, w2 = bilinear_weights(n, m, None if size is not None else factors[i])
            shape = [1] * x.ndim
            shape[axis] = m
            a = _take_adjoint(g * w2.reshape(shape).astype(x.dtype), i1, n, axis)
            a += _take_adjoint(g * w1.reshape(shape).astype(x.dtype), i2, n, axis)
            g = a
        return [g]

    def to_onnx(self, ctx, ins, outs, size, factors, interpolation, data_format):
        rank = len(size if size is not None else factors) + 2
        axes = spatial_axes(rank, data_format)
        if interpolation == "nearest" and factors is not None:
            # Integer factors: floor(i / f) in any layout (ONNX Runtime's nearest Resize takes NHWC too).
            scales = np.ones(rank, np.float32)
            scales[axes] = factors
            attrs = {"mode": "nearest", "coordinate_transformation_mode": "asymmetric", "nearest_mode": "floor"}
            ctx.node("Resize", [ins[0], "", ctx.const(scales)], outs, **attrs)
            return
        if interpolation == "nearest":
            x = ins[0]
            for i, axis in enumerate(axes):
                idx = self._nearest(ctx, ins[0], axis, size[i])
                x = ctx.node("Gather", [x, idx], outs if i == len(axes) - 1 else 1, axis=axis)[0]
            return
        attrs = {"mode": "linear", "coordinate_transformation_mode": "half_pixel"}
        if factors is not None:
            scales = ctx.const(np.asarray([1, 1, *factors], dtype=np.float32))
            lower_nchw(ctx, "Resize", [ins[0], "", scales], outs, data_format, 4, **attrs)
            return

        # Full-rank sizes (the input's shape with the spatial dims replaced), not `axes`: ONNX
        # Runtime's transpose optimizer mishandles Resize's `axes` attribute.
        def emit(x, outputs):
            keep = ctx.node("Mul", [ctx.node("Shape", [x])[0], ctx.int64s([1, 1, 0, 0])])[0]
            sizes = ctx.node("Add", [keep, ctx.int64s([0, 0, *size])])[0]
            return ctx.node("Resize", [x, "", "", sizes], outputs, **attrs)

        lower_nchw(ctx, emit, ins, outs, data_format, 4)

    def _nearest(self, ctx, x, axis, out):
        n = ctx.static_dim(x, axis)
        if n is not None:
            return ctx.const(nearest_indices(n, out))
        return self._dynamic_indices(ctx, x, axis, out)

    @staticmethod
    def _dynamic_indices(ctx, x, axis, out):
        """``nearest_indices`` computed at run time from ``x``'s size on ``axis`` (float32 ops)."""
        n = ctx.node("Gather", [ctx.node("Shape", [x])[0], ctx.int64s([axis])], axis=0)[0]
        nf = ctx.node("Cast", [n], to=ctx.onnx_dtype("float32"))[0]
        scale = ctx.node("Div", [nf, ctx.const(np.asarray([out], np.float32))])[0]
        pos = ctx.node("Mul", [ctx.const(np.arange(out, dtype=np.float32) + np.float32(0.5)), scale])[0]
        idx = ctx.node("Cast", [ctx.node("Floor", [pos])[0]], to=ctx.onnx_dtype("int64"))[0]
        last = ctx.node("Sub", [n, ctx.int64s([1])])[0]
        return ctx.node("Min", [idx, last])[0]


RESIZE = Resize()


def _take_adjoint(g, indices, n: int, axis: int) -> np.ndarray:
    """Adjoint of ``np.take(x, indices, axis)`` for nondecreasing ``indices`` into an axis of size ``n``.

    Equal indices form runs; each run's sum is gathered ``max run length`` times with ``np.take``
    (contiguous slabs), which is much faster than ``np.add.at`` or ``np.add.reduceat`` on an inner axis.
    """
    m = len(indices)
    starts = np.flatnonzero(np.r_[True, indices[1:] != indices[:-1]])
    counts = np.diff(np.r_[starts, m])
    sums = np.take(g, starts, axis=axis)
    lead = (slice(None),) * axis
    for k in range(1, int(counts.max())):
        longer = np.flatnonzero(counts > k)
        if len(longer) == len(starts):
            sums += np.take(g, starts + k, axis=axis)
        else:
            sums[lead + (longer,)] += np.take(g, starts[longer] + k, axis=axis)
    targets = indices[starts]
    if len(targets) == n:  # every source pixel is used (upsampling): already in place
        return sums
    shape = list(g.shape)
    shape[axis] = n
    out = np.zeros(shape, dtype=g.dtype)
    out[lead + (targets,)] = sums
    return out


class CenterCrop(Primitive):
    """Crop ``axes`` to ``size`` around the center (start ``(n - size) // 2``); any layout."""

    name = "center_crop"

    def infer(self, specs, axes, size):
        (x,) = specs
        shape = list(x.shape)
        for a, s in zip(axes, size):
            if not 0 <= a < len(shape):
                raise ValueError(f"`center_crop` axis {a} is out of range for shape {x.shape}.")
            if shape[a] is not None and shape[a] < s:
                raise ValueError(f"`center_crop` cannot crop axis {a} of size {shape[a]} to {s}.")
            shape[a] = s
        return [TensorSpec(tuple(shape), x.dtype)]

    def forward(self, x, axes, size):
        key = [slice(None)] * x.ndim
        for a, s in zip(axes, size):
            if x.shape[a] < s:
                raise ValueError(f"`center_crop` cannot crop axis {a} of an input of shape {x.shape} to {s}.")
            start = (x.shape[a] - s) // 2
            key[a] = slice(start, start + s)
        return x[tuple(key)]

    def vjp(self, cotangents, inputs, outputs, axes, size):
        (x,) = inputs
        key = [slice(None)] * x.ndim
        for a, s in zip(axes, size):
            start = (x.shape[a] - s) // 2
            key[a] = slice(start, start + s)
        grad = np.zeros(x.shape, dtype=x.dtype)
        grad[tuple(key)] = cotangents[0]
        return [grad]

    def to_onnx(self, ctx, ins, outs, axes, size):
        sizes = [ctx.static_dim(ins[0], a) for a in axes]
        if None not in sizes:
            starts = [(n - s) // 2 for n, s in zip(sizes, size)]
            ends = [b + s for b, s in zip(starts, size)]
        else:
            dims = ctx.node("Gather", [ctx.node("Shape", [ins[0]])[0], ctx.int64s(axes)], axis=0)[0]
            extra = ctx.node("Sub", [dims, ctx.int64s(size)])[0]
            starts = ctx.node("Div", [extra, ctx.int64s([2] * len(axes))])[0]
            ends = ctx.node("Add", [starts, ctx.int64s(size)])[0]
            ctx.node("Slice", [ins[0], starts, ends, ctx.int64s(axes)], outs)
            return
        ctx.node("Slice", [ins[0], ctx.int64s(starts), ctx.int64s(ends), ctx.int64s(axes)], outs)

    def sink_transpose(self, attrs: dict, perm: tuple):
        """For layout passes: with ``x == transpose(x2, perm)``, the crop commutes (axes remapped)."""
        return dict(attrs, axes=tuple(perm[a] for a in attrs["axes"])), perm


CENTER_CROP = CenterCrop()


def _image_batch(images, data_format):
    """``images`` as a rank-4 batch (adding a batch axis to one image), and whether it was added."""

    if not hasattr(images, "shape"):
        images = np.asarray(images, dtype="float32")
    if len(images.shape) not in (3, 4):
        raise ValueError(
            "Invalid images rank: expected rank 3 (single image) or rank 4 (batch of images). Received input "
            f"with shape: images.shape={tuple(images.shape)}"
        )
    if not is_float(str(images.dtype)):
        images = cast(images, "float32")
    if len(images.shape) == 3:
        return expand_dims(images, 0), True
    return images, False


def _unbatch(x, added):

    return squeeze(x, 0) if added else x


@top_level_op("Resize")
def resize(
    images,
    size,
    interpolation="bilinear",
    antialias=False,
    crop_to_aspect_ratio=False,
    pad_to_aspect_ratio=False,
    fill_mode="constant",
    fill_value=0.0,
    data_format=None,
):
    """Resize images to ``size = (height, width)`` (Keras' ``ops.image.resize``, torch numerics).

    ``crop_to_aspect_ratio``/``pad_to_aspect_ratio`` need static height and width. Integer
    images are resized as float32 (the result stays float32).
    """

    data_format = standardize_data_format(data_format)
    if interpolation not in INTERPOLATIONS:
        raise ValueError(
            f"Invalid value for argument `interpolation`. irtool supports {INTERPOLATIONS}. "
            f"Received: interpolation={interpolation}"
        )
    if antialias:
        raise ValueError("irtool's `resize` supports only `antialias=False` (the Keras default).")
    if fill_mode != "constant":
        raise ValueError(
            f"Invalid value for argument `fill_mode`. Only `'constant'` is supported. Received: fill_mode={fill_mode}"
        )
    if pad_to_aspect_ratio and crop_to_aspect_ratio:
        raise ValueError("Only one of `pad_to_aspect_ratio` & `crop_to_aspect_ratio` can be `True`.")
    if len(size) != 2:
        raise ValueError(f"Argument `size` must be a tuple of two elements (height, width). Received: size={size}")
    size = tuple(int(s) for s in size)
    x, added = _image_batch(images, data_format)
    h_axis, w_axis = spatial_axes(4, data_format)
    if crop_to_aspect_ratio or pad_to_aspect_ratio:
        height, width = x.shape[h_axis], x.shape[w_axis]
        if height is None or width is None:
            raise ValueError(
                "irtool's `resize` needs static height and width for crop_to_aspect_ratio/pad_to_aspect_ratio. "
                f"Received: images.shape={tuple(images.shape)}"
            )
        th, tw = size
        if crop_to_aspect_ratio:
            crop_h = max(min(height, int(float(width * th) / tw)), 1)
            crop_w = max(min(width, int(float(height * tw) / th)), 1)
            h0, w0 = int(float(height - crop_h) / 2), int(float(width - crop_w) / 2)
            key = [slice(None)] * 4
            key[h_axis] = slice(h0, h0 + crop_h)
            key[w_axis] = slice(w0, w0 + crop_w)
            if (crop_h, crop_w) != (height, width):
                x = get_item(x, tuple(key))
        else:
            pad_h = int(float(max(height, int(float(width * th) / tw)) - height) / 2)
            pad_w = int(float(max(width, int(float(height * tw) / th)) - width) / 2)
            widths = [(0, 0)] * 4
            widths[h_axis] = (pad_h, pad_h)
            widths[w_axis] = (pad_w, pad_w)
            if pad_h or pad_w:
                x = pad(x, widths, constant_values=fill_value)
    out = apply(RESIZE, [x], size=size, factors=None, interpolation=interpolation, data_format=data_format)[0]
    return _unbatch(out, added)


@top_level_op("Upsample")
def upsample(images, factors, interpolation="bilinear", data_format=None):
    """Resize a batch by integer ``factors`` (one per spatial axis): to ``(h * fh, w * fw)`` for any,
    even unknown, ``h, w`` (irtool extension, used by UpSampling1D/2D/3D; bilinear needs 2 axes)."""
    data_format = standardize_data_format(data_format)
    if interpolation not in INTERPOLATIONS:
        raise ValueError(f"`interpolation` must be one of {INTERPOLATIONS}. Received: interpolation={interpolation}")
    factors = tuple(int(f) for f in factors)
    if not hasattr(images, "shape"):
        images = np.asarray(images, dtype="float32")
    if min(factors) < 1 or len(factors) != len(images.shape) - 2:
        raise ValueError(
            f"`factors` must be one positive integer per spatial axis of a batch of shape {tuple(images.shape)}. "
            f"Received: factors={factors}"
        )
    return apply(RESIZE, [images], size=None, factors=factors, interpolation=interpolation, data_format=data_format)[0]


@top_level_op("CenterCrop")
def center_crop(images, height, width, data_format=None):
    """Crop the center ``height x width`` of images of any (even unknown) size at least that big
    (irtool extension, used by the CenterCrop layer)."""
    data_format = standardize_data_format(data_format)
    if not hasattr(images, "shape"):
        images = np.asarray(images)
    rank = len(images.shape)
    if rank not in (3, 4):
        raise ValueError(f"`center_crop` expects a rank 3 or 4 input. Received: images.shape={tuple(images.shape)}")
    axes = spatial_axes(4, data_format) if rank == 4 else [a - 1 for a in spatial_axes(4, data_format)]
    return apply(CENTER_CROP, [images], axes=tuple(axes), size=(int(height), int(width)))[0]
