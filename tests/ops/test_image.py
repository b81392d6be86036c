"""ops.image.resize / upsample / center_crop: independent references, both layouts, dynamic
sizes, ONNX Runtime parity and argument errors."""

import functools

import numpy as np
import pytest

import irtool as keras
from irtool import ops

from ..layers._spatial import check, op_types

RNG = np.random.default_rng(12)


def nearest_ref_indices(n, m):
    """torch's nearest-exact: floor((i + 0.5) * n / m), in exact integer arithmetic."""
    return np.minimum(((2 * np.arange(m) + 1) * n) // (2 * m), n - 1)


def bilinear_ref_axis(x, axis, m, scale=None):
    """Half-pixel bilinear along one axis in float64 (coordinates clamped to the image)."""
    n = x.shape[axis]
    scale = n / m if scale is None else 1 / scale
    out = []
    for i in range(m):
        c = min(max((i + 0.5) * scale - 0.5, 0.0), n - 1)
        lo = int(np.floor(c))
        hi = min(lo + 1, n - 1)
        w = c - lo
        out.append(np.take(x, lo, axis=axis) * (1 - w) + np.take(x, hi, axis=axis) * w)
    return np.stack(out, axis=axis)


def resize_ref(x, size, interpolation, data_format="channels_last"):
    axes = (1, 2) if data_format == "channels_last" else (2, 3)
    y = x.astype(np.float64)
    for axis, m in zip(axes, size):
        if interpolation == "nearest":
            y = np.take(y, nearest_ref_indices(y.shape[axis], m), axis=axis)
        else:
            y = bilinear_ref_axis(y, axis, m)
    return y.astype(np.float32)


def upsampled_ref(a, axes, interpolation, data_format):
    size = (a.shape[axes[0]] * 2, a.shape[axes[1]] * 3)
    return resize_ref(a, size, interpolation, data_format)


@pytest.mark.parametrize("interpolation", ["nearest", "bilinear"])
@pytest.mark.parametrize("data_format", ["channels_last", "channels_first"])
def test_resize_matches_reference_up_and_down(interpolation, data_format):
    for size in [(3, 4), (11, 13), (6, 5), (1, 1)]:
        shape = (2, 6, 5, 3) if data_format == "channels_last" else (2, 3, 6, 5)
        x = RNG.standard_normal(shape).astype("float32")
        inputs = keras.Input(shape[1:])
        out = ops.image.resize(inputs, size, interpolation=interpolation, data_format=data_format)
        expected = (None, *size, 3) if data_format == "channels_last" else (None, 3, *size)
        assert out.shape == expected
        check(
            keras.Model(inputs, out),
            [x],
            functools.partial(resize_ref, size=size, interpolation=interpolation, data_format=data_format),
        )


@pytest.mark.parametrize("interpolation", ["nearest", "bilinear"])
def test_resize_dynamic_input_sizes(interpolation):
    inputs = keras.Input((None, None, 2))
    model = keras.Model(inputs, ops.image.resize(inputs, (7, 4), interpolation=interpolation))
    xs = [RNG.standard_normal((2, 5, 9, 2)).astype("float32"), RNG.standard_normal((1, 12, 3, 2)).astype("float32")]
    for opset in (13, 21):
        check(model, xs, lambda a: resize_ref(a, (7, 4), interpolation), opset=opset)


def test_nearest_resize_is_a_gather_with_exact_indices():
    inputs = keras.Input((None, None, 1))
    model = keras.Model(inputs, ops.image.resize(inputs, (9, 7), interpolation="nearest"))
    proto = check(
        model, [np.arange(30, dtype="float32").reshape(1, 5, 6, 1)], lambda a: resize_ref(a, (9, 7), "nearest")
    )
    assert "Resize" not in op_types(proto) and op_types(proto).count("Gather") >= 2


def test_resize_unbatched_and_int_images():
    image = RNG.integers(0, 255, (6, 5, 3)).astype("uint8")
    out = ops.image.resize(image, (3, 4))
    assert out.dtype == np.float32 and out.shape == (3, 4, 3)
    np.testing.assert_allclose(out, resize_ref(image[None].astype("float32"), (3, 4), "bilinear")[0], atol=1e-4)
    inputs = keras.Input((6, 5, 3))
    assert ops.image.resize(inputs[0], (2, 2)).shape == (2, 2, 3)


def test_resize_crop_and_pad_to_aspect_ratio():
    x = RNG.standard_normal((2, 6, 9, 1)).astype("float32")
    inputs = keras.Input((6, 9, 1))
    crop = keras.Model(inputs, ops.image.resize(inputs, (4, 4), crop_to_aspect_ratio=True))
    check(crop, [x], lambda a: resize_ref(a[:, :, 1:7], (4, 4), "bilinear"))
    pad = keras.Model(inputs, ops.image.resize(inputs, (4, 4), pad_to_aspect_ratio=True, fill_value=2.0))
    padded = np.pad(x, ((0, 0), (1, 1), (0, 0), (0, 0)), constant_values=2.0)
    check(
        pad,
        [x],
        lambda a: resize_ref(np.pad(a, ((0, 0), (1, 1), (0, 0), (0, 0)), constant_values=2.0), (4, 4), "bilinear"),
    )
    assert padded.shape == (2, 8, 9, 1)


def test_upsample_by_factors_with_dynamic_sizes():
    for interpolation in ("nearest", "bilinear"):
        for data_format in ("channels_last", "channels_first"):
            shape = (None, None, 2) if data_format == "channels_last" else (2, None, None)
            inputs = keras.Input(shape)
            model = keras.Model(inputs, ops.image.upsample(inputs, (2, 3), interpolation, data_format))
            xs = [RNG.standard_normal((2, 4, 5, 2)), RNG.standard_normal((1, 3, 7, 2))]
            if data_format == "channels_first":
                xs = [a.transpose(0, 3, 1, 2) for a in xs]
            xs = [a.astype("float32") for a in xs]
            axes = (1, 2) if data_format == "channels_last" else (2, 3)

            check(
                model,
                xs,
                functools.partial(upsampled_ref, axes=axes, interpolation=interpolation, data_format=data_format),
            )


def test_center_crop_op_static_and_dynamic():
    x = RNG.standard_normal((2, 9, 8, 3)).astype("float32")
    for shape in [(9, 8, 3), (None, None, 3)]:
        inputs = keras.Input(shape)
        out = ops.image.center_crop(inputs, 4, 5)
        assert out.shape == (None, 4, 5, 3)
        model = keras.Model(inputs, out)
        xs = [x] if shape[0] else [x, RNG.standard_normal((1, 6, 11, 3)).astype("float32")]

        def reference(a):
            h0, w0 = (a.shape[1] - 4) // 2, (a.shape[2] - 5) // 2
            return a[:, h0 : h0 + 4, w0 : w0 + 5]

        check(model, xs, reference)
    first = keras.Input((3, None, None))
    model = keras.Model(first, ops.image.center_crop(first, 2, 2, data_format="channels_first"))
    xc = x.transpose(0, 3, 1, 2).copy()
    check(model, [xc], lambda a: a[:, :, 3:5, 3:5])
    np.testing.assert_array_equal(ops.image.center_crop(x[0], 3, 3), x[0, 3:6, 2:5])


def test_image_op_errors():
    images = keras.Input((6, 6, 3))
    with pytest.raises(ValueError, match="interpolation"):
        ops.image.resize(images, (2, 2), interpolation="bicubic")
    with pytest.raises(ValueError, match="antialias"):
        ops.image.resize(images, (2, 2), antialias=True)
    with pytest.raises(ValueError, match="two elements"):
        ops.image.resize(images, (2, 2, 2))
    with pytest.raises(ValueError, match="Only one of"):
        ops.image.resize(images, (2, 2), crop_to_aspect_ratio=True, pad_to_aspect_ratio=True)
    with pytest.raises(ValueError, match="rank"):
        ops.image.resize(keras.Input((6,)), (2, 2))
    with pytest.raises(ValueError, match="static height and width"):
        ops.image.resize(keras.Input((None, 6, 3)), (2, 2), crop_to_aspect_ratio=True)
    with pytest.raises(ValueError, match="cannot crop"):
        ops.image.center_crop(images, 7, 2)
    with pytest.raises(ValueError, match="factors"):
        ops.image.upsample(images, (0, 2))
