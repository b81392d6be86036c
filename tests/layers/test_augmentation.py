"""Image augmentation layers (RandomFlip, RandomRotation, RandomZoom, RandomTranslation,
RandomContrast, RandomBrightness): the identity at inference and in the export, Keras'
random transforms when training (against real Keras where a factor range fixes the draw),
configs, validation, a Keras-written .keras file, and ``fit``."""

import json

import numpy as np
import pytest

import irtool
import irtool as keras
from irtool import layers
from irtool.ops.augmentation import affine_transform
from irtool.train.autodiff import GradientProgram

from ..harness import assert_onnx_parity, assert_same_config, require_keras, run_layer_test
from ._augmentation import assert_config_round_trips, assert_identity_at_inference

RNG = np.random.default_rng(7)

LAYERS = [
    ("RandomFlip", {}),
    ("RandomFlip", {"mode": "vertical", "seed": 3}),
    ("RandomRotation", {"factor": 0.2}),
    ("RandomRotation", {"factor": (-0.1, 0.3), "fill_mode": "constant", "interpolation": "nearest", "fill_value": 1.0}),
    ("RandomZoom", {"height_factor": 0.2}),
    ("RandomZoom", {"height_factor": (-0.3, 0.2), "width_factor": 0.1, "fill_mode": "wrap", "seed": 1}),
    ("RandomTranslation", {"height_factor": 0.1, "width_factor": (-0.2, 0.3), "fill_mode": "nearest"}),
    ("RandomContrast", {"factor": 0.2}),
    ("RandomContrast", {"factor": (0.1, 0.4), "value_range": (0, 1), "seed": 2}),
    ("RandomBrightness", {"factor": 0.2}),
    ("RandomBrightness", {"factor": (-0.1, 0.3), "value_range": (1, 0), "data_format": "channels_first"}),
]
IDS = [f"{name}-{i}" for i, (name, _) in enumerate(LAYERS)]


def images(shape=(3, 8, 7, 2), high=255.0):
    return (RNG.random(shape) * high).astype("float32")


@pytest.mark.parametrize("name, kwargs", LAYERS, ids=IDS)
def test_identity_at_inference_and_in_onnx(name, kwargs):
    assert_identity_at_inference(name, kwargs, images(), keras_too=False)


@pytest.mark.parametrize("name, kwargs", LAYERS, ids=IDS)
def test_configs_round_trip_and_match_keras(name, kwargs):
    assert_config_round_trips(name, kwargs, through_json=False)


@pytest.mark.parametrize("name, kwargs", [LAYERS[0], LAYERS[2], LAYERS[7]], ids=["flip", "rotation", "contrast"])
def test_layer_harness(name, kwargs):
    """Shapes, configs, .keras file, ONNX and Keras at inference (tests/harness.py); the
    gradient of the inference identity is the identity."""
    run_layer_test(getattr(layers, name), kwargs, (5, 4, 3))


def test_validation_messages():
    with pytest.raises(ValueError, match=r"in the range \[-1, 1\]. Received: factor=1.5"):
        layers.RandomRotation(1.5)
    with pytest.raises(ValueError, match=r"in the range \[0, 1\]. Received: factor=-0.5"):
        layers.RandomContrast(-0.5)
    with pytest.raises(NotImplementedError, match="Unknown `fill_mode` mirror"):
        layers.RandomZoom(0.1, fill_mode="mirror")
    with pytest.raises(NotImplementedError, match="Unknown `interpolation` bicubic"):
        layers.RandomTranslation(0.1, 0.1, interpolation="bicubic")
    with pytest.raises(ValueError, match=r"range \(-1.0, 1.0\]. Received: input_number=-1"):
        layers.RandomZoom(-1)
    with pytest.raises(ValueError, match="Received: height_factor=\\(0.1, 0.2, 0.3\\)"):
        layers.RandomTranslation((0.1, 0.2, 0.3), 0.1)
    with pytest.raises(ValueError, match="`value_range` argument should be a list of two numbers"):
        layers.RandomBrightness(0.1, value_range=(0, 1, 2))
    with pytest.raises(ValueError, match="Expected image tensor to have rank 3"):
        layers.RandomFlip()(keras.Input((4,)))


def _train_output(layer, x, seed=0):
    inputs = keras.Input(x.shape[1:])
    model = keras.Model(inputs, layer(inputs))
    (y,), _ = GradientProgram(model.graph, [], training=True, rng=np.random.default_rng(seed)).run([x])
    return y


def test_flip_training_rows_are_the_image_or_its_flip():
    x = images((64, 5, 4, 2))
    for mode, axes in (("horizontal", (1,)), ("vertical", (0,)), ("horizontal_and_vertical", (0, 1))):
        y = _train_output(layers.RandomFlip(mode), x)
        flipped = np.array([np.array_equal(a, np.flip(b, axes)) for a, b in zip(y, x)])
        kept = np.array([np.array_equal(a, b) for a, b in zip(y, x)])
        assert (flipped | kept).all() and 15 < flipped.sum() < 49
    y = _train_output(layers.RandomFlip("horizontal", data_format="channels_first"), x)
    assert all(np.array_equal(a, b) or np.array_equal(a, np.flip(b, 2)) for a, b in zip(y, x))
    # the same seed gives the same flips; the gradient flips back
    np.testing.assert_array_equal(
        _train_output(layers.RandomFlip(), x, seed=4), _train_output(layers.RandomFlip(), x, 4)
    )


# Factor ranges of width 0 fix the draw, so the training transform must equal Keras' exactly.
FIXED = [
    ("RandomRotation", {"factor": (0.25, 0.25)}),
    ("RandomRotation", {"factor": (0.1, 0.1), "fill_mode": "constant", "interpolation": "nearest", "fill_value": 3.0}),
    ("RandomRotation", {"factor": (-0.07, -0.07), "fill_mode": "wrap"}),
    ("RandomZoom", {"height_factor": (0.5, 0.5), "width_factor": (-0.3, -0.3), "fill_mode": "wrap"}),
    ("RandomZoom", {"height_factor": (-0.4, -0.4), "fill_mode": "nearest"}),
    ("RandomTranslation", {"height_factor": (0.2, 0.2), "width_factor": (-0.3, -0.3), "fill_mode": "nearest"}),
    ("RandomTranslation", {"height_factor": (-0.5, -0.5), "width_factor": (0.15, 0.15), "fill_mode": "constant"}),
    ("RandomBrightness", {"factor": (0.1, 0.1)}),
    ("RandomBrightness", {"factor": (-0.2, -0.2), "value_range": (0, 1)}),
    ("RandomContrast", {"factor": (0.0, 0.0)}),
]


@pytest.mark.parametrize("data_format", ["channels_last", "channels_first"])
@pytest.mark.parametrize("name, kwargs", FIXED, ids=[f"{n}-{i}" for i, (n, _) in enumerate(FIXED)])
def test_training_transform_matches_keras(name, kwargs, data_format):
    real = require_keras()
    x = images((3, 7, 6, 2), 1.0 if kwargs.get("value_range") == (0, 1) else 255.0)
    if data_format == "channels_first":
        x = np.ascontiguousarray(x.transpose(0, 3, 1, 2))
    kwargs = dict(kwargs, data_format=data_format)
    want = np.asarray(getattr(real.layers, name)(**kwargs)(x, training=True))
    np.testing.assert_allclose(_train_output(getattr(layers, name)(**kwargs), x), want, atol=1e-4)
    np.testing.assert_allclose(getattr(layers, name)(**kwargs)(x, training=True), want, atol=1e-4)  # eager
    np.testing.assert_allclose(getattr(layers, name)(**kwargs)(x[0], training=True), want[0], atol=1e-4)  # rank 3


@pytest.mark.parametrize("fill_mode", ["reflect", "wrap", "constant", "nearest"])
@pytest.mark.parametrize("interpolation", ["bilinear", "nearest"])
def test_affine_transform_matches_keras(fill_mode, interpolation):
    real = require_keras()
    x = images((3, 7, 6, 2))
    t = RNG.normal(size=(3, 8)).astype("float32")
    t[:, [0, 4]] += 1
    t[:, [2, 5]] *= 3
    t[:, 6:] = 0
    want = real.ops.image.affine_transform(x, t, interpolation=interpolation, fill_mode=fill_mode, fill_value=0.5)
    got = affine_transform(x, t, interpolation, fill_mode, 0.5, "channels_last")
    # Pixels up to 255: the float32 sampling coordinates round differently by CPU and backend, and a
    # 1e-6 shift in a coordinate moves a bilinear sample by up to ~255e-6 (1.5e-4 seen on an Intel Xeon).
    np.testing.assert_allclose(got, np.asarray(want), atol=1e-3 if interpolation == "bilinear" else 1e-4)


def test_random_draws_have_keras_ranges():
    x = images((200, 6, 6, 1))
    # contrast: (x - mean) * f + mean with f in [1 - lower, 1 + upper], per image
    y = _train_output(layers.RandomContrast((0.2, 0.5), value_range=(-1e9, 1e9)), x)
    mean = x.mean(axis=(1, 2), keepdims=True)
    f = ((y - mean) / (x - mean)).reshape(200, -1)
    np.testing.assert_allclose(f, f[:, :1].repeat(36, 1), rtol=1e-3)
    assert 0.8 <= f.min() < 0.85 and 1.45 < f.max() <= 1.5
    # brightness: one delta per image, in factor * range, clipped to the range
    y = _train_output(layers.RandomBrightness(0.1), x)
    assert y.min() >= 0 and y.max() <= 255
    inside = (y > 0) & (y < 255)
    delta = np.where(inside, y - x, np.nan)
    assert np.nanmax(np.abs(delta)) <= 25.5 + 1e-3 and np.nanmin(delta) < -20 and np.nanmax(delta) > 20
    # rotation of a constant image (reflect): the image itself; the draws differ per image
    y = _train_output(layers.RandomRotation(0.5), np.ones((4, 5, 5, 1), "float32"))
    np.testing.assert_allclose(y, 1.0, atol=1e-5)
    y = _train_output(layers.RandomRotation(0.5), x[:8])
    assert len({float(v) for v in y.sum(axis=(1, 2, 3)).round(2)}) == 8


def test_eager_calls_and_nested_inference():
    x = images((16, 5, 5, 1))
    flip = layers.RandomFlip("horizontal", seed=1)
    assert flip(x, training=False) is x
    y = flip(x, training=True)
    assert not np.array_equal(y, x) and all(np.array_equal(a, b) or np.array_equal(a, b[:, ::-1]) for a, b in zip(y, x))
    inner_in = keras.Input((5, 5, 1))
    inner = keras.Model(inner_in, layers.RandomRotation(0.3)(layers.RandomFlip()(inner_in)))
    inputs = keras.Input((5, 5, 1))
    frozen = keras.Model(inputs, inner(inputs, training=False))
    np.testing.assert_array_equal(_train_output_model(frozen, x), x)  # training=False: no augmentation
    free = keras.Model(inputs, inner(inputs))
    assert not np.allclose(_train_output_model(free, x), x)


def _train_output_model(model, x):
    (y,), _ = GradientProgram(model.graph, [], training=True, rng=np.random.default_rng(0)).run([x])
    return y


def test_gradients_through_flip_contrast_and_brightness():
    x = images((4, 5, 5, 2), 1.0)
    for layer in (layers.RandomFlip(), layers.RandomContrast(0.5, value_range=(0, 1)), layers.RandomBrightness(0.3)):
        inputs = keras.Input((5, 5, 2))
        dense = layers.Dense(1)
        model = keras.Model(inputs, dense(layer(inputs)))
        program = GradientProgram(model.graph, model.graph.inputs, training=True, rng=np.random.default_rng(1))
        _, (g,) = program.run([x])
        # recompute the same forward (same seed) and differentiate numerically along a direction
        v = RNG.standard_normal(x.shape).astype("float64")
        eps = 1e-3

        def loss(z, model=model):
            (y,), _ = GradientProgram(model.graph, [], training=True, rng=np.random.default_rng(1)).run([z])
            return float(np.sum(y))

        numeric = (loss(x + eps * v) - loss(x - eps * v)) / (2 * eps)
        np.testing.assert_allclose(np.sum(g * v), numeric, rtol=2e-2, atol=2e-2)


def test_fit_trains_a_model_with_augmentation_and_exports():
    irtool.utils.set_random_seed(0)
    model = keras.Sequential(
        [
            keras.Input((8, 8, 3)),
            layers.RandomFlip("horizontal"),
            layers.RandomRotation(0.1),
            layers.RandomZoom(0.1),
            layers.RandomTranslation(0.1, 0.1),
            layers.RandomContrast(0.1),
            layers.RandomBrightness(0.1),
            layers.Rescaling(1 / 255.0),
            layers.Conv2D(4, 3, activation="relu"),
            layers.GlobalAveragePooling2D(),
            layers.Dense(2, activation="softmax"),
        ]
    )
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    x, labels = images((32, 8, 8, 3)), RNG.integers(0, 2, 32)
    history = model.fit(x, labels, epochs=2, batch_size=8, verbose=0)
    assert len(history.history["loss"]) == 2 and np.isfinite(history.history["loss"]).all()
    proto = assert_onnx_parity(model, x[:4])
    assert not {n.op_type for n in proto.graph.node} & {"Identity"}


def test_keras_written_model_loads_predicts_and_exports(tmp_path):
    real = require_keras()
    inputs = real.Input((8, 8, 3))
    h = real.layers.RandomFlip("horizontal", seed=1)(inputs)
    h = real.layers.RandomRotation(0.1, fill_mode="nearest")(h)
    h = real.layers.RandomZoom(0.1, 0.2)(h)
    h = real.layers.RandomTranslation(0.1, 0.1, fill_mode="constant")(h)
    h = real.layers.RandomContrast(0.2)(h)
    h = real.layers.RandomBrightness(0.2)(h)
    h = real.layers.Conv2D(4, 3)(h)
    theirs = real.Model(inputs, real.layers.GlobalAveragePooling2D()(h))
    theirs.save(tmp_path / "aug.keras")
    ours = irtool.models.load_model(tmp_path / "aug.keras")
    x = images((2, 8, 8, 3))
    np.testing.assert_allclose(ours.predict(x, verbose=0), theirs.predict(x, verbose=0), rtol=1e-4, atol=1e-3)
    for mine, keras_layer in zip(ours.layers[1:7], theirs.layers[1:7]):
        as_json = json.loads(json.dumps(keras_layer.get_config()))  # tuples as the file has them
        assert_same_config(json.loads(json.dumps(mine.get_config())), as_json, ignore=("dtype",))
    assert_onnx_parity(ours, x, atol=1e-3)
