"""Rescaling, Normalization (given statistics and adapt), CenterCrop and Resizing."""

import numpy as np
import pytest

import irtool
import irtool as keras
from irtool import layers

from ..harness import run_layer_test
from ..ops.test_image import resize_ref
from ._spatial import check, model_of, op_types

RNG = np.random.default_rng(23)


def rand(*shape):
    return RNG.standard_normal(shape).astype("float32")


def test_rescaling():
    layer = layers.Rescaling(1 / 255.0, offset=-1.0)
    model = model_of(layer, (4, 3))
    check(model, [rand(2, 4, 3)], lambda a: a / np.float32(255) - 1)
    assert layer.get_config()["scale"] == 1 / 255.0 and layer.get_config()["offset"] == -1.0
    # Per-channel scale, no offset (one Mul), integer input cast to float32.
    per_channel = layers.Rescaling([1.0, 2.0, 0.5])
    model = model_of(per_channel, (2, 3), dtype="uint8")
    assert model.output.dtype == "float32"
    images = RNG.integers(0, 255, (2, 2, 3)).astype("uint8")
    proto = check(model, [images], lambda a: a.astype("float32") * np.float32([1, 2, 0.5]))
    assert op_types(proto) == ["Cast", "Mul"]
    assert per_channel.get_config()["scale"] == [1.0, 2.0, 0.5]
    assert layers.Rescaling.from_config(layer.get_config()).scale == layer.scale
    assert layer.supports_masking


def test_normalization_with_given_statistics():
    layer = layers.Normalization(mean=[1.0, 2.0, 3.0], variance=[1.0, 4.0, 0.0])
    model = model_of(layer, (5, 3))
    assert layer.weights == []
    std = np.maximum(np.sqrt(np.float32([1, 4, 0])), np.float32(1e-7))
    check(model, [rand(2, 5, 3)], lambda a: (a - np.float32([1, 2, 3])) / std, rtol=1e-5, atol=1e-2)
    inverse = model_of(layers.Normalization(mean=2.0, variance=9.0, invert=True), (3,))
    check(inverse, [rand(4, 3)], lambda a: 2 + a * 3)
    # Several axes, mean given for the trailing kept axes only.
    two = layers.Normalization(axis=(1, 2), mean=[1.0, 2.0], variance=[4.0, 1.0])
    check(model_of(two, (3, 2)), [rand(2, 3, 2)], lambda a: (a - np.float32([1, 2])) / np.float32([2, 1]))
    config = layer.get_config()
    assert config["axis"] == (-1,) and config["mean"] == [1.0, 2.0, 3.0] and config["invert"] is False


def test_normalization_adapt_creates_keras_weights():
    data = rand(50, 4) * 3 + 2
    layer = layers.Normalization()
    layer.adapt(data)
    assert [w.path for w in layer.weights] == ["normalization/mean", "normalization/variance", "normalization/count"]
    assert [w.trainable for w in layer.weights] == [False] * 3
    mean, variance, count = layer.get_weights()
    np.testing.assert_allclose(mean, data.mean(0), rtol=1e-6)
    np.testing.assert_allclose(variance, data.var(0), rtol=1e-5)
    assert count.dtype == np.int32 and count == 0
    model = model_of(layer, (4,))
    check(model, [data[:5], data[5:12]], lambda a: (a - data.mean(0)) / np.sqrt(data.var(0)), atol=1e-5)
    # New statistics flow into the compiled model and the export (weights are read at run time).
    layer.adapt(data[:10] * 2)
    check(model, [data[:5]], lambda a: (a - (2 * data[:10]).mean(0)) / np.sqrt((2 * data[:10]).var(0)), atol=1e-5)


def test_normalization_adapt_axes_and_batches():
    images = rand(6, 4, 5, 3)
    layer = layers.Normalization(axis=-1)
    layer.adapt([images[:2], images[2:]])  # an iterable of batches: Keras' running formula
    np.testing.assert_allclose(layer.get_weights()[0], images.mean((0, 1, 2)), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(layer.get_weights()[1], images.var((0, 1, 2)), rtol=1e-5, atol=1e-6)
    per_pixel = layers.Normalization(axis=(1, 2))
    per_pixel.adapt(images[..., 0])
    assert per_pixel.get_weights()[0].shape == (4, 5)
    model = model_of(per_pixel, (4, 5))
    mean, var = images[..., 0].mean(0), images[..., 0].var(0)
    check(model, [images[:3, ..., 0]], lambda a: (a - mean) / np.sqrt(var), atol=1e-5)
    everything = layers.Normalization(axis=None)
    everything.adapt(images)
    assert everything.get_weights()[0].shape == ()


def test_normalization_errors():
    with pytest.raises(ValueError, match="both `mean` and `variance`"):
        layers.Normalization(mean=1.0)
    with pytest.raises(ValueError, match="same shape"):
        layers.Normalization(mean=[1.0, 2.0], variance=[1.0])
    with pytest.raises(ValueError, match="rank of `mean`"):
        layers.Normalization(mean=[[1.0]], variance=[[1.0]])
    with pytest.raises(ValueError, match="known shape"):
        layers.Normalization()(keras.Input((None,)))
    with pytest.raises(ValueError, match=r"range \[-ndim, ndim\)"):
        layers.Normalization(axis=3)(keras.Input((2,)))
    layer = layers.Normalization()
    layer.adapt(rand(3, 4))
    with pytest.raises(ValueError, match="incompatible shape"):
        layer.adapt(rand(3, 5))


def test_center_crop_static_dynamic_and_small_inputs():
    layer = layers.CenterCrop(4, 3)
    model = model_of(layer, (9, 8, 2))
    assert model.output.shape == (None, 4, 3, 2)
    proto = check(model, [rand(2, 9, 8, 2)], lambda a: a[:, 2:6, 2:5])
    assert op_types(proto) == ["Slice"]
    dynamic = model_of(layers.CenterCrop(4, 3), (None, None, 2))
    check(
        dynamic,
        [rand(2, 9, 8, 2), rand(1, 5, 3, 2)],
        lambda a: a[:, (a.shape[1] - 4) // 2 :][:, :4, (a.shape[2] - 3) // 2 :][:, :, :3],
    )
    first = model_of(layers.CenterCrop(2, 2, data_format="channels_first"), (2, 6, 5))
    check(first, [rand(1, 2, 6, 5)], lambda a: a[:, :, 2:4, 1:3])
    # Smaller than the target: crop to the aspect ratio, then resize (bilinear), as Keras does.
    small = model_of(layers.CenterCrop(6, 4), (3, 5, 1))
    check(small, [rand(2, 3, 5, 1)], lambda a: resize_ref(a[:, :, 1:3], (6, 4), "bilinear"))
    assert layer.get_config()["height"] == 4 and layer.get_config()["data_format"] == "channels_last"
    unbatched = layers.CenterCrop(2, 2)(rand(4, 4, 3))
    assert unbatched.shape == (2, 2, 3)
    with pytest.raises(ValueError, match="static height and width"):
        layers.CenterCrop(6, 4)(keras.Input((3, None, 1)))


@pytest.mark.parametrize("interpolation", ["bilinear", "nearest"])
def test_resizing(interpolation):
    layer = layers.Resizing(5, 7, interpolation=interpolation)
    model = model_of(layer, (None, None, 3))
    assert model.output.shape == (None, 5, 7, 3)
    check(model, [rand(2, 8, 6, 3), rand(1, 3, 4, 3)], lambda a: resize_ref(a, (5, 7), interpolation))
    first = model_of(layers.Resizing(4, 4, interpolation, data_format="channels_first"), (3, 6, 9))
    check(first, [rand(2, 3, 6, 9)], lambda a: resize_ref(a, (4, 4), interpolation, "channels_first"))
    crop = model_of(layers.Resizing(4, 4, interpolation, crop_to_aspect_ratio=True), (6, 9, 1))
    check(crop, [rand(2, 6, 9, 1)], lambda a: resize_ref(a[:, :, 1:7], (4, 4), interpolation))
    pad = model_of(layers.Resizing(4, 4, interpolation, pad_to_aspect_ratio=True, fill_value=1.0), (6, 9, 1))
    widths = ((0, 0), (1, 1), (0, 0), (0, 0))
    check(pad, [rand(2, 6, 9, 1)], lambda a: resize_ref(np.pad(a, widths, constant_values=1.0), (4, 4), interpolation))
    config = layer.get_config()
    assert config["interpolation"] == interpolation and config["antialias"] is False and config["height"] == 5


def test_resizing_errors():
    with pytest.raises(ValueError, match="interpolation"):
        layers.Resizing(2, 2, interpolation="lanczos3")(keras.Input((4, 4, 1)))
    with pytest.raises(ValueError, match="antialias"):
        layers.Resizing(2, 2, antialias=True)(keras.Input((4, 4, 1)))
    with pytest.raises(ValueError, match="Only one of"):
        layers.Resizing(2, 2, crop_to_aspect_ratio=True, pad_to_aspect_ratio=True)(keras.Input((4, 4, 1)))


HARNESS_CASES = [
    ("Rescaling", {"scale": 0.5, "offset": 1.0}, (4, 3)),
    ("Resizing", {"height": 4, "width": 5}, (6, 9, 3)),
    ("CenterCrop", {"height": 3, "width": 2}, (5, 4, 2)),
]


@pytest.mark.parametrize("name, kwargs, shape", HARNESS_CASES, ids=[c[0] for c in HARNESS_CASES])
def test_layer_harness(name, kwargs, shape):
    """Shapes, configs, .keras file, ONNX, gradients and (where installed) Keras: tests/harness.py."""
    run_layer_test(getattr(irtool.layers, name), kwargs, shape)
