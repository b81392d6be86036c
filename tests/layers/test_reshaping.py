"""Permute, RepeatVector, UpSampling1D/2D/3D, ZeroPadding1D/2D/3D, Cropping1D/2D/3D."""

import functools

import numpy as np
import pytest

import irtool
import irtool as keras
from irtool import layers

from ..harness import run_layer_test
from ..ops.test_image import resize_ref
from ._spatial import check, model_of, op_types

RNG = np.random.default_rng(22)


def rand(*shape):
    return RNG.standard_normal(shape).astype("float32")


def test_permute():
    layer = layers.Permute((3, 1, 2))
    model = model_of(layer, (2, 3, 4))
    assert model.output.shape == (None, 4, 2, 3)
    proto = check(model, [rand(2, 2, 3, 4)], lambda a: a.transpose(0, 3, 1, 2))
    assert op_types(proto) == ["Transpose"]
    assert layer.get_config()["dims"] == (3, 1, 2)
    check(model_of(layers.Permute((2, 1)), (None, 5)), [rand(2, 3, 5), rand(1, 6, 5)], lambda a: a.transpose(0, 2, 1))
    with pytest.raises(ValueError, match="consecutive and start from 1"):
        layers.Permute((0, 1))
    with pytest.raises(ValueError, match="expected ndim=3"):
        layers.Permute((2, 1))(keras.Input((2, 3, 4)))


def test_repeat_vector():
    layer = layers.RepeatVector(3)
    model = model_of(layer, (4,))
    assert model.output.shape == (None, 3, 4)
    check(model, [rand(2, 4), rand(5, 4)], lambda a: np.repeat(a[:, None], 3, axis=1))
    assert layer.get_config()["n"] == 3
    with pytest.raises(TypeError, match="integer"):
        layers.RepeatVector(2.0)
    with pytest.raises(ValueError, match="positive"):
        layers.RepeatVector(0)
    with pytest.raises(ValueError, match="expected ndim=2"):
        layers.RepeatVector(2)(keras.Input((2, 3)))
    # A dynamic feature size works too.
    check(model_of(layers.RepeatVector(2), (None,)), [rand(2, 3), rand(2, 5)], lambda a: np.stack([a, a], 1))


def test_upsampling1d():
    layer = layers.UpSampling1D(3)
    assert layers.UpSampling1D().size == 2
    model = model_of(layer, (4, 2))
    assert model.output.shape == (None, 12, 2)
    check(model, [rand(2, 4, 2)], lambda a: np.repeat(a, 3, axis=1))
    dynamic = model_of(layers.UpSampling1D(2), (None, 2))
    check(dynamic, [rand(2, 4, 2), rand(1, 7, 2)], lambda a: np.repeat(a, 2, axis=1))
    with pytest.raises(TypeError):
        layers.UpSampling1D((2,))
    with pytest.raises(ValueError, match="positive"):
        layers.UpSampling1D(0)


@pytest.mark.parametrize("data_format", ["channels_last", "channels_first"])
def test_upsampling2d_nearest(data_format):
    axes = (1, 2) if data_format == "channels_last" else (2, 3)
    for size in [2, (2, 3), (1, 2)]:
        layer = layers.UpSampling2D(size, data_format=data_format)
        factors = (size, size) if isinstance(size, int) else size
        shape = (4, 5, 3) if data_format == "channels_last" else (3, 4, 5)

        def reference(a, factors=factors):
            return np.repeat(np.repeat(a, factors[0], axis=axes[0]), factors[1], axis=axes[1])

        check(model_of(layer, shape), [rand(2, *shape)], reference)
        dynamic = (None, None, 3) if data_format == "channels_last" else (3, None, None)
        small = (3, 2, 3) if data_format == "channels_last" else (3, 3, 2)
        check(
            model_of(layers.UpSampling2D(size, data_format=data_format), dynamic),
            [rand(2, *shape), rand(1, *small)],
            reference,
        )
        assert layer.get_config() == {**layer.get_config(), "size": factors, "interpolation": "nearest"}


@pytest.mark.parametrize("data_format", ["channels_last", "channels_first"])
def test_upsampling2d_bilinear(data_format):
    axes = (1, 2) if data_format == "channels_last" else (2, 3)
    layer = layers.UpSampling2D((2, 3), data_format=data_format, interpolation="BILINEAR")
    assert layer.interpolation == "bilinear"
    shape = (4, 5, 3) if data_format == "channels_last" else (3, 4, 5)

    def reference(a):
        return resize_ref(a, (a.shape[axes[0]] * 2, a.shape[axes[1]] * 3), "bilinear", data_format)

    model = model_of(layer, shape)
    assert model.output.shape == ((None, 8, 15, 3) if data_format == "channels_last" else (None, 3, 8, 15))
    check(model, [rand(2, *shape)], reference)
    dynamic = (None, None, 3) if data_format == "channels_last" else (3, None, None)
    small = (3, 2, 3) if data_format == "channels_last" else (3, 3, 2)
    check(
        model_of(layers.UpSampling2D((2, 3), data_format, "bilinear"), dynamic),
        [rand(2, *shape), rand(1, *small)],
        reference,
    )


def test_upsampling_lowers_to_one_resize_and_keeps_int_inputs():
    proto = check(
        model_of(layers.UpSampling2D((2, 3)), (None, None, 2)),
        [rand(1, 3, 4, 2)],
        lambda a: a.repeat(2, 1).repeat(3, 2),
    )
    assert op_types(proto).count("Resize") == 1 and len(op_types(proto)) <= 3  # (+ the NHWC<->NCHW transposes)
    proto = check(model_of(layers.UpSampling1D(2), (5, 2)), [rand(1, 5, 2)], lambda a: a.repeat(2, 1))
    assert op_types(proto).count("Resize") == 1 and len(op_types(proto)) <= 3
    # Integer images repeat axis by axis (a Resize only takes floats here).
    ints = RNG.integers(0, 9, (2, 3, 4, 1)).astype("int64")
    model = model_of(layers.UpSampling2D(2), (3, 4, 1), dtype="int64")
    assert model.output.dtype == "int64"
    check(model, [ints], lambda a: a.repeat(2, 1).repeat(2, 2))
    # In a channels-last conv stack the upsampling runs in NCHW: no Transpose of its own.
    inputs = keras.Input((6, 6, 2))
    x = layers.Conv2D(3, 3, padding="same")(inputs)
    x = layers.UpSampling2D(2)(x)
    x = layers.Conv2D(2, 3)(x)
    proto = check(keras.Model(inputs, x), [rand(2, 6, 6, 2)], lambda a: keras.Model(inputs, x).predict(a, verbose=0))
    assert op_types(proto) == ["Transpose", "Conv", "Resize", "Conv", "Transpose"]


def test_upsampling3d_and_errors():
    model = model_of(layers.UpSampling3D((1, 2, 3)), (2, 3, 2, 1))
    assert model.output.shape == (None, 2, 6, 6, 1)
    check(model, [rand(2, 2, 3, 2, 1)], lambda a: np.repeat(np.repeat(a, 2, axis=2), 3, axis=3))
    first = model_of(layers.UpSampling3D(2, data_format="channels_first"), (1, 2, 2, 2))
    check(first, [rand(1, 1, 2, 2, 2)], lambda a: a.repeat(2, 2).repeat(2, 3).repeat(2, 4))
    with pytest.raises(ValueError, match="size"):
        layers.UpSampling2D((2, 2, 2))
    with pytest.raises(ValueError, match="expected ndim=4"):
        layers.UpSampling2D()(keras.Input((4, 4)))
    with pytest.raises(ValueError, match="interpolation"):
        layers.UpSampling2D(interpolation="bicubic")(keras.Input((4, 4, 1)))


PADDINGS = {
    1: [(1, ((1, 1),)), ((2, 0), ((2, 0),)), (0, ((0, 0),))],
    2: [(1, ((1, 1), (1, 1))), ((2, 1), ((2, 2), (1, 1))), (((1, 0), (0, 2)), ((1, 0), (0, 2)))],
    3: [
        (1, ((1, 1),) * 3),
        ((1, 0, 2), ((1, 1), (0, 0), (2, 2))),
        (((0, 1), (1, 0), (2, 0)), ((0, 1), (1, 0), (2, 0))),
    ],
}


@pytest.mark.parametrize("rank", [1, 2, 3])
@pytest.mark.parametrize("data_format", ["channels_last", "channels_first"])
def test_zero_padding(rank, data_format):
    cls = {1: layers.ZeroPadding1D, 2: layers.ZeroPadding2D, 3: layers.ZeroPadding3D}[rank]
    spatial = (4, 3, 2)[:rank]
    shape = (*spatial, 2) if data_format == "channels_last" else (2, *spatial)
    first = 1 if data_format == "channels_last" else 2
    for padding, pairs in PADDINGS[rank]:
        layer = cls(padding, data_format=data_format)
        widths = [(0, 0)] * (rank + 2)
        for i, pair in enumerate(pairs):
            widths[first + i] = pair
        reference = functools.partial(np.pad, pad_width=widths)
        proto = check(model_of(layer, shape), [rand(2, *shape)], reference)
        assert op_types(proto) in (["Pad"], ["Identity"])
        dynamic = tuple(None if i >= first - 1 and i < first - 1 + rank else d for i, d in enumerate(shape))
        other = tuple(d + 1 if i >= first - 1 and i < first - 1 + rank else d for i, d in enumerate(shape))
        check(model_of(cls(padding, data_format=data_format), dynamic), [rand(2, *shape), rand(1, *other)], reference)
        config = layer.get_config()
        assert config["padding"] == (pairs[0] if rank == 1 else pairs) and config["data_format"] == data_format


def test_zero_padding_defaults_and_errors():
    assert layers.ZeroPadding1D().padding == (1, 1)
    assert layers.ZeroPadding2D().padding == ((1, 1), (1, 1))
    assert layers.ZeroPadding3D().padding == ((1, 1),) * 3
    with pytest.raises(ValueError, match="two elements"):
        layers.ZeroPadding2D((1, 2, 3))
    with pytest.raises(ValueError, match="padding"):
        layers.ZeroPadding1D((1, 2, 3))
    with pytest.raises(ValueError, match="2nd entry of padding"):
        layers.ZeroPadding2D((1, (1, 2, 3)))
    with pytest.raises(ValueError, match="3 elements"):
        layers.ZeroPadding3D((1, 1))
    with pytest.raises(ValueError, match="expected ndim=5"):
        layers.ZeroPadding3D()(keras.Input((2, 2, 2)))


CROPPINGS = {
    1: [(1, ((1, 1),)), ((2, 0), ((2, 0),)), ((0, 3), ((0, 3),))],
    2: [(1, ((1, 1), (1, 1))), ((2, 1), ((2, 2), (1, 1))), (((1, 0), (0, 2)), ((1, 0), (0, 2)))],
    3: [
        (1, ((1, 1),) * 3),
        ((1, 0, 2), ((1, 1), (0, 0), (2, 2))),
        (((0, 1), (1, 0), (2, 0)), ((0, 1), (1, 0), (2, 0))),
    ],
}


@pytest.mark.parametrize(
    "rank, data_format",
    # Cropping1D has no data_format, as in Keras.
    [(1, "channels_last"), (2, "channels_last"), (2, "channels_first"), (3, "channels_last"), (3, "channels_first")],
)
def test_cropping(rank, data_format):
    cls = {1: layers.Cropping1D, 2: layers.Cropping2D, 3: layers.Cropping3D}[rank]
    kwargs = {} if rank == 1 else {"data_format": data_format}
    spatial = (7, 6, 5)[:rank]
    shape = (*spatial, 2) if data_format == "channels_last" else (2, *spatial)
    first = 1 if data_format == "channels_last" else 2
    for cropping, pairs in CROPPINGS[rank]:
        layer = cls(cropping, **kwargs)

        def reference(a, pairs=pairs):
            key = [slice(None)] * (rank + 2)
            for i, (lo, hi) in enumerate(pairs):
                key[first + i] = slice(lo, a.shape[first + i] - hi)
            return a[tuple(key)]

        model = model_of(layer, shape)
        check(model, [rand(2, *shape)], reference)
        dynamic = tuple(None if first - 1 <= i < first - 1 + rank else d for i, d in enumerate(shape))
        other = tuple(d + 2 if first - 1 <= i < first - 1 + rank else d for i, d in enumerate(shape))
        check(model_of(cls(cropping, **kwargs), dynamic), [rand(2, *shape), rand(1, *other)], reference)
        config = layer.get_config()
        assert config["cropping"] == (pairs[0] if rank == 1 else pairs)
        assert ("data_format" in config) == (rank != 1)


def test_cropping_defaults_and_errors():
    assert layers.Cropping1D().cropping == (1, 1)
    assert layers.Cropping2D().cropping == ((0, 0), (0, 0))
    assert layers.Cropping3D().cropping == ((1, 1),) * 3
    with pytest.raises(ValueError, match="cannot be negative"):
        layers.Cropping2D(-1)
    with pytest.raises(ValueError, match="two elements"):
        layers.Cropping2D((1, 1, 1))
    with pytest.raises(ValueError, match="smaller than"):
        layers.Cropping2D(((2, 2), (0, 0)))(keras.Input((4, 4, 1)))
    with pytest.raises(ValueError, match="smaller than"):
        layers.Cropping1D((3, 3))(keras.Input((6, 1)))
    with pytest.raises(ValueError, match="expected ndim=3"):
        layers.Cropping1D()(keras.Input((6, 6, 1)))


HARNESS_CASES = [
    ("Permute", {"dims": (2, 1)}, (3, 4)),
    ("UpSampling2D", {"size": 2}, (2, 3, 2)),
    ("ZeroPadding2D", {"padding": 1}, (2, 3, 2)),
    ("Cropping1D", {"cropping": (1, 1)}, (5, 2)),
    ("RepeatVector", {"n": 3}, (4,)),
]


@pytest.mark.parametrize("name, kwargs, shape", HARNESS_CASES, ids=[c[0] for c in HARNESS_CASES])
def test_layer_harness(name, kwargs, shape):
    """Shapes, configs, .keras file, ONNX, gradients and (where installed) Keras: tests/harness.py."""
    run_layer_test(getattr(irtool.layers, name), kwargs, shape)
