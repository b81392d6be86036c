"""Pooling layers: shapes, configs, errors, loop references and ONNX parity (incl. dynamic dims)."""

import functools

import numpy as np
import pytest

import irtool
import irtool as keras
from irtool import layers

from ..harness import run_layer_test
from ..ops.test_pooling import reference_pool
from ._spatial import check, model_of, op_types

RNG = np.random.default_rng(21)

WINDOWED = [
    (layers.MaxPooling1D, "max", 1),
    (layers.MaxPooling2D, "max", 2),
    (layers.MaxPooling3D, "max", 3),
    (layers.AveragePooling1D, "average", 1),
    (layers.AveragePooling2D, "average", 2),
    (layers.AveragePooling3D, "average", 3),
]


def _spatial(rank, size=6):
    return (size, size - 1, size - 2)[:rank]


@pytest.mark.parametrize("cls, mode, rank", WINDOWED)
def test_windowed_pooling_layers(cls, mode, rank):
    combos = [dict(pool_size=2), dict(pool_size=3, strides=2, padding="same"), dict(pool_size=2, strides=1)]
    combos.append(dict(pool_size=3, strides=1, padding="SAME", data_format="channels_first"))
    for kwargs in combos:
        layer = cls(**kwargs)
        data_format = kwargs.get("data_format", "channels_last")
        spatial = _spatial(rank)
        shape = (*spatial, 2) if data_format == "channels_last" else (2, *spatial)
        x = RNG.standard_normal((3, *shape)).astype("float32")
        pool_size = (kwargs["pool_size"],) * rank
        strides = (kwargs.get("strides") or kwargs["pool_size"],) * rank
        padding = kwargs.get("padding", "valid").lower()
        check(
            model_of(layer, shape),
            [x],
            functools.partial(
                reference_pool,
                pool_size=pool_size,
                strides=strides,
                padding=padding,
                data_format=data_format,
                mode=mode,
            ),
        )
        config = layer.get_config()
        assert config["pool_size"] == pool_size and config["strides"] == strides
        assert config["padding"] == kwargs.get("padding", "valid") and config["data_format"] == data_format
        assert cls.from_config(config).get_config() == config


def test_pooling_defaults_and_aliases():
    assert layers.MaxPooling1D().pool_size == (2,) and layers.MaxPooling2D().strides == (2, 2)
    assert layers.MaxPooling3D().pool_size == (2, 2, 2)
    assert layers.AveragePooling2D(3).strides == (3, 3)
    assert layers.MaxPooling2D((2, 3), strides=(1, 2)).strides == (1, 2)
    assert layers.MaxPool2D is layers.MaxPooling2D and layers.AvgPool1D is layers.AveragePooling1D
    assert (
        layers.GlobalAvgPool2D is layers.GlobalAveragePooling2D and layers.GlobalMaxPool3D is layers.GlobalMaxPooling3D
    )
    keras.backend.clear_session()
    assert layers.MaxPooling2D().name == "max_pooling2d"
    with pytest.raises(TypeError):
        layers.AveragePooling2D()  # pool_size is required, as in Keras


def test_pooling_constructor_and_input_errors():
    with pytest.raises(ValueError, match="pool_size"):
        layers.MaxPooling2D((2, 2, 2))
    with pytest.raises(ValueError, match="pool_size"):
        layers.MaxPooling2D(0)
    with pytest.raises(ValueError, match="data_format"):
        layers.MaxPooling2D(data_format="NHWC")
    with pytest.raises(ValueError, match="expected ndim=4"):
        layers.MaxPooling2D()(keras.Input((4, 4)))
    with pytest.raises(ValueError, match="expected ndim=3"):
        layers.GlobalMaxPooling1D()(keras.Input((4, 4, 1)))
    with pytest.raises(ValueError, match="zero or negative"):
        layers.MaxPooling2D(5)(keras.Input((4, 4, 1)))


def test_pooling_dynamic_spatial_dims():
    x1 = RNG.standard_normal((2, 8, 7, 3)).astype("float32")
    x2 = RNG.standard_normal((1, 5, 11, 3)).astype("float32")
    model = model_of(layers.MaxPooling2D(3, 2, padding="same"), (None, None, 3))
    assert model.output.shape == (None, None, None, 3)
    check(model, [x1, x2], lambda a: reference_pool(a, (3, 3), (2, 2), "same", "channels_last", "max"))
    model = model_of(layers.AveragePooling1D(2, padding="same"), (None, 4))
    xs = [RNG.standard_normal((2, 5, 4)).astype("float32"), RNG.standard_normal((2, 8, 4)).astype("float32")]
    check(model, xs, lambda a: reference_pool(a, (2,), (2,), "same", "channels_last", "average"))


GLOBAL = [
    (layers.GlobalMaxPooling1D, np.max, 1),
    (layers.GlobalMaxPooling2D, np.max, 2),
    (layers.GlobalMaxPooling3D, np.max, 3),
    (layers.GlobalAveragePooling1D, np.mean, 1),
    (layers.GlobalAveragePooling2D, np.mean, 2),
    (layers.GlobalAveragePooling3D, np.mean, 3),
]


@pytest.mark.parametrize("cls, fn, rank", GLOBAL)
@pytest.mark.parametrize("data_format", ["channels_last", "channels_first"])
@pytest.mark.parametrize("keepdims", [False, True])
def test_global_pooling(cls, fn, rank, data_format, keepdims):
    spatial = _spatial(rank, 5)
    shape = (*spatial, 3) if data_format == "channels_last" else (3, *spatial)
    axes = tuple(range(1, rank + 1)) if data_format == "channels_last" else tuple(range(2, rank + 2))
    layer = cls(data_format=data_format, keepdims=keepdims)
    model = model_of(layer, shape)
    expected = (
        (None, 3)
        if not keepdims
        else ((None, *(1,) * rank, 3) if data_format == "channels_last" else (None, 3, *(1,) * rank))
    )
    assert model.output.shape == expected
    x = RNG.standard_normal((2, *shape)).astype("float32")
    proto = check(model, [x], lambda a: fn(a, axis=axes, keepdims=keepdims))
    assert op_types(proto) == ["ReduceMax" if fn is np.max else "ReduceMean"]
    assert layer.get_config()["keepdims"] == keepdims and layer.get_config()["data_format"] == data_format


def test_global_pooling_dynamic_spatial_dims():
    model = model_of(layers.GlobalAveragePooling2D(), (None, None, 4))
    xs = [RNG.standard_normal((2, 3, 5, 4)).astype("float32"), RNG.standard_normal((3, 7, 2, 4)).astype("float32")]
    check(model, xs, lambda a: a.mean(axis=(1, 2)))


def test_global_average_pooling1d_honours_masks():
    inputs = keras.Input((None,), dtype="int32")
    embedded = layers.Embedding(10, 4, mask_zero=True)(inputs)
    pooled = layers.GlobalAveragePooling1D()(embedded)
    assert pooled._keras_mask is None
    model = keras.Model(inputs, pooled)
    ids = np.array([[1, 2, 0, 0], [3, 4, 5, 6]], dtype="int32")
    table = model.layers[1].get_weights()[0]
    want = np.stack([table[[1, 2]].mean(0), table[[3, 4, 5, 6]].mean(0)])
    check(model, [ids], lambda a: want if a is ids else None)
    # Eager call with an explicit mask.
    x = RNG.standard_normal((2, 3, 2)).astype("float32")
    mask = np.array([[True, False, True], [True, True, True]])
    got = layers.GlobalAveragePooling1D()(x, mask=mask)
    np.testing.assert_allclose(got, np.stack([x[0, [0, 2]].mean(0), x[1].mean(0)]), rtol=1e-6)


HARNESS_CASES = [
    ("MaxPooling2D", {"pool_size": 2}, (4, 4, 2)),
    ("AveragePooling1D", {"pool_size": 2, "padding": "same"}, (5, 2)),
    ("GlobalAveragePooling2D", {}, (3, 3, 2)),
    ("GlobalMaxPooling1D", {"keepdims": True}, (4, 2)),
]


@pytest.mark.parametrize("name, kwargs, shape", HARNESS_CASES, ids=[c[0] for c in HARNESS_CASES])
def test_layer_harness(name, kwargs, shape):
    """Shapes, configs, .keras file, ONNX, gradients and (where installed) Keras: tests/harness.py."""
    run_layer_test(getattr(irtool.layers, name), kwargs, shape)
