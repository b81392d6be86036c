"""Contrast-limited adaptive histogram equalization (Keras 3.15's CLAHE layer), as one primitive.

Each image channel, scaled from ``value_range`` to [0, 255], is cut into a grid of tiles (the
image symmetric-padded to whole tiles); each tile's 256-bin histogram of the truncated pixel
values is clipped at ``clip_limit * tile pixels / 256`` (truncated to an integer, as on Keras'
torch backend: ``clip_limit_count``) with the excess spread evenly over all
bins, and its cumulative distribution, stretched to [0, 255], maps pixel values. A pixel takes
the bilinear blend of the maps of the four tiles whose centres surround it (edge tiles
repeated). Keras' arithmetic (float32, its order, truncating casts) is followed step by step,
so NumPy and the ONNX lowering reproduce Keras' numbers up to float32 rounding.

Unlike ``Equalization`` (one histogram over the batch, looked up without interpolation) the
histograms here are per image, tile and channel, so the two share no code beyond the idea.

The output depends on the pixels only through their truncation to integers, so it is
piecewise constant: the primitive declares no gradient (Keras' cast to int32 has none either).
"""

from __future__ import annotations

import numpy as np
from onnx import TensorProto, numpy_helper

from irtool.ir.spec import TensorSpec
from irtool.ops.core import Primitive

_BINS = 256


def clahe_geometry(height: int, width: int, tile_grid_size) -> dict:
    """Tile sizes, the symmetric-padding row/column indices and each pixel row's/column's
    interpolation: the neighbouring tiles (in the edge-padded grid) and the weight of the second."""
    grid_h, grid_w = tile_grid_size
    geometry = {}
    for axis, size, grid in (("y", height, grid_h), ("x", width, grid_w)):
        tile = (size + grid - 1) // grid
        padded = np.arange(tile * grid)
        # np.pad's "symmetric": the edge sample repeated, then the image mirrored.
        padded = np.where(padded < size, padded, 2 * size - 1 - padded)
        position = np.arange(size, dtype=np.float32)
        coordinate = (position - np.float32(tile / 2.0)) / np.float32(tile) + np.float32(1.0)
        first = np.floor(coordinate)
        weight = coordinate - first
        geometry[axis] = {
            "tile": tile,
            "padded": padded,
            "first": np.clip(first, 0, grid + 1).astype(np.int64),
            "second": np.clip(first + 1, 0, grid + 1).astype(np.int64),
            "weight": weight.astype(np.float32),
        }
    return geometry


def clip_limit_count(clip_limit: float, tile_pixels: int) -> int:
    """The most pixels a histogram bin keeps: ``clip_limit * tile_pixels / 256`` truncated to an
    integer, as Keras' torch backend computes it (its ``one_hot`` histograms are int64, and Keras
    casts the limit to their dtype; TensorFlow's and JAX's float histograms keep the fraction)."""
    return int(clip_limit * tile_pixels / 256.0)


def _to_range(x, source, target):
    """Keras' ``_transform_value_range`` in float32 (no-op when the ranges are equal)."""
    if tuple(source) == tuple(target):
        return x
    low, high = (np.float32(v) for v in source)
    new_low, new_high = (np.float32(v) for v in target)
    return (x - low) / (high - low) * (new_high - new_low) + new_low


def tile_maps(pixels: np.ndarray, geometry: dict, tile_grid_size, clip_limit: float) -> np.ndarray:
    """``(batch, grid_h + 2, grid_w + 2, channels, 256)`` float32 maps of each tile (edge tiles
    repeated around the grid) from ``(batch, height, width, channels)`` int pixel values."""
    grid_h, grid_w = tile_grid_size
    tile_h, tile_w = geometry["y"]["tile"], geometry["x"]["tile"]
    padded = pixels[:, geometry["y"]["padded"]][:, :, geometry["x"]["padded"]]
    batch, channels = pixels.shape[0], pixels.shape[-1]
    tiles = padded.reshape(batch, grid_h, tile_h, grid_w, tile_w, channels).transpose(0, 1, 3, 5, 2, 4)
    tiles = tiles.reshape(-1, tile_h * tile_w)
    offsets = np.arange(tiles.shape[0])[:, None] * _BINS
    hists = np.bincount((tiles + offsets).ravel(), minlength=tiles.shape[0] * _BINS)
    hists = hists.reshape(batch, grid_h, grid_w, channels, _BINS).astype(np.float32)
    if clip_limit > 0:
        limit = np.float32(clip_limit_count(clip_limit, tile_h * tile_w))
        clipped = np.clip(hists, np.float32(0), limit)
        excess = np.sum(hists - clipped, axis=-1, keepdims=True, dtype=np.float32)
        hists = clipped + excess / np.float32(256.0)
    cdf = np.cumsum(hists, axis=-1, dtype=np.float32)
    cdf_min = np.min(cdf, axis=-1, keepdims=True)
    denominator = np.float32(tile_h * tile_w) - cdf_min
    denominator = np.where(denominator == 0, np.float32(1), denominator)
    maps = np.clip((cdf - cdf_min) * np.float32(255.0) / denominator, np.float32(0), np.float32(255))
    return np.pad(maps, [(0, 0), (1, 1), (1, 1), (0, 0), (0, 0)], mode="edge")


def clahe(images: np.ndarray, value_range, clip_limit: float, tile_grid_size, data_format: str) -> np.ndarray:
    """Keras' ``ContrastLimitedAdaptiveHistogramEqualization`` on a batch, in NumPy."""
    dtype = images.dtype
    x = images if data_format == "channels_last" else np.moveaxis(images, 1, -1)
    x = _to_range(x.astype(np.float32), value_range, (0, 255))
    batch, height, width, channels = x.shape
    geometry = clahe_geometry(height, width, tile_grid_size)
    pixels = np.clip(x.astype(np.int32), 0, 255)
    maps = tile_maps(pixels, geometry, tile_grid_size, clip_limit)
    b = np.arange(batch)[:, None, None, None]
    c = np.arange(channels)[None, None, None, :]
    y, xx = geometry["y"], geometry["x"]

    def at(rows, cols):
        return maps[b, rows[None, :, None, None], cols[None, None, :, None], c, pixels]

    wy = y["weight"][None, :, None, None]
    wx = xx["weight"][None, None, :, None]
    top = at(y["first"], xx["first"]) * (np.float32(1.0) - wx) + at(y["first"], xx["second"]) * wx
    bottom = at(y["second"], xx["first"]) * (np.float32(1.0) - wx) + at(y["second"], xx["second"]) * wx
    result = top * (np.float32(1.0) - wy) + bottom * wy
    result = _to_range(result, (0, 255), value_range).astype(dtype)
    return result if data_format == "channels_last" else np.moveaxis(result, -1, 1)


class CLAHE(Primitive):
    """Keras' CLAHE on ``(batch, height, width, channels)`` images (or channels-first, per
    ``data_format``), at inference and in training alike.

    Attributes: ``value_range`` (two floats), ``clip_limit``, ``tile_grid_size`` (two ints),
    ``data_format``. Height and width must be known (they fix the tiles).
    """

    name = "clahe"
    differentiable = False

    def infer(self, specs, value_range, clip_limit, tile_grid_size, data_format):
        (x,) = specs
        spatial = x.shape[1:3] if data_format == "channels_last" else x.shape[2:4]
        if len(x.shape) != 4 or None in spatial or (data_format == "channels_first" and x.shape[1] is None):
            raise ValueError(
                "CLAHE needs images of shape (batch, height, width, channels) (channels_last) or (batch, "
                f"channels, height, width) with known height, width and channels. Received: {x.shape}"
            )
        return [TensorSpec(x.shape, x.dtype)]

    def forward(self, x, value_range, clip_limit, tile_grid_size, data_format):
        return clahe(x, value_range, clip_limit, tile_grid_size, data_format)

    def vjp(self, cotangents, inputs, outputs, **attrs):
        return [None]

    def to_onnx(self, ctx, ins, outs, value_range, clip_limit, tile_grid_size, data_format):
        (x,) = ins
        dtype = ctx.dtype_of(x)
        shape = ctx.shapes[x]
        if data_format == "channels_first":
            x = ctx.node("Transpose", [x], perm=[0, 2, 3, 1])[0]
            shape = (shape[0], shape[2], shape[3], shape[1])
        _, height, width, channels = shape
        grid_h, grid_w = tile_grid_size
        geometry = clahe_geometry(height, width, tile_grid_size)
        tile_h, tile_w = geometry["y"]["tile"], geometry["x"]["tile"]

        def f32(value):
            return ctx.const(np.asarray(value, np.float32))

        def to_range(v, source, target):
            if tuple(source) == tuple(target):
                return v
            (low, high), (new_low, new_high) = source, target
            v = ctx.node("Div", [ctx.node("Sub", [v, f32(low)])[0], f32(np.float32(high) - np.float32(low))])[0]
            return ctx.node(
                "Add", [ctx.node("Mul", [v, f32(np.float32(new_high) - np.float32(new_low))])[0], f32(new_low)]
            )[0]

        if dtype != "float32":
            x = ctx.node("Cast", [x], to=TensorProto.FLOAT)[0]
        scaled = to_range(x, value_range, (0, 255))
        pixels = ctx.node("Cast", [scaled], to=TensorProto.INT64)[0]  # truncation toward zero, as Keras' int32 cast
        pixels = ctx.node("Clip", [pixels, ctx.const(np.asarray(0, np.int64)), ctx.const(np.asarray(255, np.int64))])[0]

        # Histograms: a ScatterElements "add" of ones per (image, tile, channel) row.
        padded = ctx.node("Gather", [pixels, ctx.const(geometry["y"]["padded"])], axis=1)[0]
        padded = ctx.node("Gather", [padded, ctx.const(geometry["x"]["padded"])], axis=2)[0]
        tiles = ctx.node("Reshape", [padded, ctx.int64s([-1, grid_h, tile_h, grid_w, tile_w, channels])])[0]
        tiles = ctx.node("Transpose", [tiles], perm=[0, 1, 3, 5, 2, 4])[0]
        tiles = ctx.node("Reshape", [tiles, ctx.int64s([-1, tile_h * tile_w])])[0]
        rows = ctx.node("Shape", [tiles], start=0, end=1)[0]
        zeros = ctx.node("ConstantOfShape", [ctx.node("Concat", [rows, ctx.int64s([_BINS])], axis=0)[0]],
                         value=numpy_helper.from_array(np.zeros(1, np.float32)))[0]  # fmt: skip
        ones = ctx.node(
            "ConstantOfShape", [ctx.node("Shape", [tiles])[0]], value=numpy_helper.from_array(np.ones(1, np.float32))
        )[0]
        hists = ctx.node("ScatterElements", [zeros, tiles, ones], axis=1, reduction="add")[0]
        if clip_limit > 0:
            limit = f32(clip_limit_count(clip_limit, tile_h * tile_w))
            clipped = ctx.node("Clip", [hists, f32(0), limit])[0]
            excess = ctx.reduce("ReduceSum", ctx.node("Sub", [hists, clipped])[0], [1], True)[0]
            hists = ctx.node("Add", [clipped, ctx.node("Div", [excess, f32(256.0)])[0]])[0]
        cdf = ctx.node("CumSum", [hists, ctx.const(np.asarray(1, np.int64))])[0]
        cdf_min = ctx.reduce("ReduceMin", cdf, [1], True)[0]
        denominator = ctx.node("Sub", [f32(tile_h * tile_w), cdf_min])[0]
        denominator = ctx.node("Where", [ctx.node("Equal", [denominator, f32(0)])[0], f32(1), denominator])[0]
        numerator = ctx.node("Mul", [ctx.node("Sub", [cdf, cdf_min])[0], f32(255.0)])[0]
        maps = ctx.node("Clip", [ctx.node("Div", [numerator, denominator])[0], f32(0), f32(255)])[0]
        maps = ctx.node("Reshape", [maps, ctx.int64s([-1, grid_h, grid_w, channels, _BINS])])[0]
        maps = ctx.node("Pad", [maps, ctx.int64s([0, 1, 1, 0, 0, 0, 1, 1, 0, 0])], mode="edge")[0]
        maps = ctx.node("Reshape", [maps, ctx.int64s([-1, (grid_h + 2) * (grid_w + 2) * channels * _BINS])])[0]

        # Per pixel, the four surrounding tiles' maps read at its value: flat offsets in one image.
        stride_x = channels * _BINS
        stride_y = stride_x * (grid_w + 2)
        y, xx = geometry["y"], geometry["x"]
        channel_offsets = (np.arange(channels) * _BINS)[None, None, :]
        pixels_flat = ctx.node("Reshape", [pixels, ctx.int64s([-1, height * width * channels])])[0]

        def at(row_tiles, col_tiles):
            offset = row_tiles[:, None, None] * stride_y + col_tiles[None, :, None] * stride_x + channel_offsets
            index = ctx.node("Add", [pixels_flat, ctx.const(offset.reshape(1, -1).astype(np.int64))])[0]
            return ctx.node("GatherElements", [maps, index], axis=1)[0]

        wx = f32(np.broadcast_to(xx["weight"][None, :, None], (height, width, channels)).reshape(1, -1))
        wy = f32(np.broadcast_to(y["weight"][:, None, None], (height, width, channels)).reshape(1, -1))
        one_minus_wx = ctx.node("Sub", [f32(1.0), wx])[0]
        one_minus_wy = ctx.node("Sub", [f32(1.0), wy])[0]

        def blend(a, b, weight, rest):
            return ctx.node("Add", [ctx.node("Mul", [a, rest])[0], ctx.node("Mul", [b, weight])[0]])[0]

        top = blend(at(y["first"], xx["first"]), at(y["first"], xx["second"]), wx, one_minus_wx)
        bottom = blend(at(y["second"], xx["first"]), at(y["second"], xx["second"]), wx, one_minus_wx)
        result = blend(top, bottom, wy, one_minus_wy)
        result = ctx.node("Reshape", [result, ctx.int64s([-1, height, width, channels])])[0]
        result = to_range(result, (0, 255), value_range)
        if dtype != "float32":
            result = ctx.node("Cast", [result], to=ctx.onnx_dtype(dtype))[0]
        if data_format == "channels_first":
            result = ctx.node("Transpose", [result], perm=[0, 3, 1, 2])[0]
        ctx.node("Identity", [result], outs)


CLAHE_PRIM = CLAHE()
