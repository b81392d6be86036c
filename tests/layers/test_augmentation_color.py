"""Colour augmentation layers (RandomGrayscale, RandomInvert, RandomPosterization,
Solarization, RandomColorDegeneration, RandomSaturation, RandomHue, RandomSharpness, RandomErasing, RandomShear),
Equalization (not random, but only in training, as in Keras) and AutoContrast (not random: it acts at inference and in the export, as in Keras): the identity at inference and in the export, Keras' random transforms when
training (against real Keras where the factors fix the draw, or with the draw injected),
configs, validation, gradients, a Keras-written .keras file, and ``fit``."""

import json

import numpy as np
import pytest

import irtool
import irtool as keras
from irtool import layers
from irtool.ops import augmentation as aug
from irtool.ops.augmentation import affine_transform

from ..harness import assert_onnx_parity, assert_same_config, get_keras, require_keras
from ._augmentation import assert_config_round_trips, assert_identity_at_inference
from .test_augmentation import _train_output

RNG = np.random.default_rng(11)

LAYERS = [
    ("RandomGrayscale", {}),
    ("RandomGrayscale", {"factor": 0.3, "seed": 2, "data_format": "channels_first"}),
    ("RandomInvert", {}),
    ("RandomInvert", {"factor": (0.2, 0.6), "value_range": (0, 1), "seed": 1}),
    ("RandomPosterization", {"factor": 4}),
    ("RandomPosterization", {"factor": (2, 6), "value_range": (1, 0), "seed": 3}),
    ("Solarization", {}),
    ("Solarization", {"addition_factor": 0.2, "threshold_factor": (0.3, 0.7), "value_range": (0, 1), "seed": 5}),
    ("RandomColorDegeneration", {"factor": 0.4}),
    ("RandomColorDegeneration", {"factor": (-0.2, 0.6), "value_range": (1, 0), "seed": 1}),
    ("RandomSaturation", {"factor": 0.5}),
    ("RandomSaturation", {"factor": (0.2, 0.9), "value_range": (0, 1), "data_format": "channels_first"}),
    ("RandomHue", {"factor": 0.3}),
    ("RandomHue", {"factor": (0.1, 0.8), "value_range": (0, 1), "seed": 4}),
    ("RandomSharpness", {"factor": 0.3}),
    ("RandomSharpness", {"factor": (0.1, 0.9), "value_range": (0, 1), "data_format": "channels_first", "seed": 2}),
    ("Equalization", {}),
    ("Equalization", {"value_range": (1, 0), "bins": 32}),
    ("RandomErasing", {}),
    ("RandomErasing", {"factor": (0.3, 0.8), "scale": 0.5, "fill_value": 2.0, "value_range": (0, 1), "seed": 3}),
    ("RandomShear", {"x_factor": 0.3}),
    ("RandomShear", {"x_factor": (0.1, 0.2), "y_factor": 0.4, "fill_mode": "constant", "interpolation": "nearest"}),
]
IDS = [f"{name}-{i}" for i, (name, _) in enumerate(LAYERS)]


def images(shape=(3, 8, 7, 3), high=255.0):
    return (RNG.random(shape) * high).astype("float32")


@pytest.mark.parametrize("name, kwargs", LAYERS, ids=IDS)
def test_identity_at_inference_and_in_onnx(name, kwargs):
    assert_identity_at_inference(name, kwargs, images(), keras_too=True)


@pytest.mark.parametrize("name, kwargs", LAYERS, ids=IDS)
def test_configs_round_trip_and_match_keras(name, kwargs):
    assert_config_round_trips(name, kwargs, through_json=False)


def test_shear_config_with_a_number_loads():
    """Keras saves RandomShear(0.3) as x_factor (-0.3, 0.3), which its own constructor refuses;
    irtool reads the symmetric pair back as 0.3."""
    config = json.loads(json.dumps(layers.RandomShear(0.3, (0.1, 0.2)).get_config()))
    assert config["x_factor"] == [-0.3, 0.3]
    assert layers.RandomShear.from_config(config).x_factor == (-0.3, 0.3)
    with pytest.raises(ValueError, match="input_number=-0.3"):
        layers.RandomShear((-0.3, 0.3))  # as in Keras


def test_validation_messages():
    with pytest.raises(ValueError, match=r"`factor` should be between 0 and 1. Received: factor=1.5"):
        layers.RandomGrayscale(1.5)
    with pytest.raises(ValueError, match=r"in the range \[0, 1\]. Received: factor=2"):
        layers.RandomInvert(2)
    with pytest.raises(ValueError, match=r"in the range \[1, 8\]. Received: factor=9"):
        layers.RandomPosterization(9)
    with pytest.raises(ValueError, match="`value_range` argument should be a list of two numbers"):
        layers.RandomPosterization(3, value_range=(0, 1, 2))
    with pytest.raises(ValueError, match=r"range \[0, 1\]. Received: input_number=1.5"):
        layers.Solarization(addition_factor=1.5)
    with pytest.raises(ValueError, match=r"Received: threshold_factor=\(0.1, 0.2, 0.3\)"):
        layers.Solarization(threshold_factor=(0.1, 0.2, 0.3))
    with pytest.raises(ValueError, match=r"in the range \[0, 1.0\]. Received: input_number=-0.2"):
        layers.RandomShear(x_factor=(-0.2, 0.1))
    with pytest.raises(NotImplementedError, match="Unknown `fill_mode` mirror"):
        layers.RandomShear(0.1, fill_mode="mirror")
    with pytest.raises(ValueError, match="`scale` argument should be a number"):
        layers.RandomErasing(scale=(0.1, 0.2, 0.3))
    with pytest.raises(ValueError, match="Invalid channel size: expected 3"):
        layers.RandomGrayscale(1.0)(images((1, 4, 4, 2)), training=True)


# Factors that fix the draw, so the training transform must equal Keras' exactly.
FIXED = [
    ("RandomGrayscale", {"factor": 1.0}),
    ("RandomGrayscale", {"factor": 0.0}),
    ("RandomInvert", {"factor": (1.0, 1.0)}),
    ("RandomInvert", {"factor": (1.0, 1.0), "value_range": (0, 1)}),
    ("RandomInvert", {"factor": 0.0}),
    ("RandomPosterization", {"factor": (3, 3)}),
    ("RandomPosterization", {"factor": (6, 6), "value_range": (0, 1)}),
    ("RandomPosterization", {"factor": (8, 8)}),
    ("Solarization", {}),
    ("Solarization", {"value_range": (0, 1)}),
    ("RandomColorDegeneration", {"factor": (0.3, 0.3)}),
    ("RandomColorDegeneration", {"factor": (-0.4, -0.4), "value_range": (0, 1)}),
    ("RandomSaturation", {"factor": (0.3, 0.3)}),
    ("RandomSaturation", {"factor": (0.8, 0.8), "value_range": (0, 1)}),
    ("RandomHue", {"factor": (0.0, 0.0)}),
    ("RandomHue", {"factor": 0.0, "value_range": (0, 1)}),
    ("RandomSharpness", {"factor": (0.2, 0.2)}),
    ("RandomSharpness", {"factor": (0.9, 0.9), "value_range": (0, 1)}),
    ("RandomSharpness", {"factor": (0.5, 0.5)}),
    ("Equalization", {}),
    ("Equalization", {"bins": 16}),
    ("Equalization", {"value_range": (0, 1), "bins": 64}),
    ("RandomErasing", {"factor": (1.0, 1.0), "scale": (1.0, 1.0), "fill_value": 3.0}),
    ("RandomErasing", {"factor": (1.0, 1.0), "scale": (1.0, 1.0), "fill_value": 300.0}),
    ("RandomErasing", {"factor": 0.0, "fill_value": 1.0}),
    ("RandomShear", {"x_factor": 0.0, "y_factor": 0.0}),
]


@pytest.mark.parametrize("data_format", ["channels_last", "channels_first"])
@pytest.mark.parametrize("name, kwargs", FIXED, ids=[f"{n}-{i}" for i, (n, _) in enumerate(FIXED)])
def test_training_transform_matches_keras(name, kwargs, data_format):
    real = require_keras()
    x = images((3, 7, 6, 3), 1.0 if kwargs.get("value_range") == (0, 1) else 255.0)
    if data_format == "channels_first":
        x = np.ascontiguousarray(x.transpose(0, 3, 1, 2))
    kwargs = dict(kwargs, data_format=data_format)
    want = np.asarray(getattr(real.layers, name)(**kwargs)(x, training=True))
    np.testing.assert_allclose(_train_output(getattr(layers, name)(**kwargs), x), want, atol=1e-4)
    np.testing.assert_allclose(getattr(layers, name)(**kwargs)(x, training=True), want, atol=1e-4)  # eager
    # rank 3 (Equalization's histogram is the batch's, so compare with Keras' single-image call)
    want = np.asarray(getattr(real.layers, name)(**kwargs)(x[0], training=True))
    np.testing.assert_allclose(getattr(layers, name)(**kwargs)(x[0], training=True), want, atol=1e-4)


@pytest.mark.parametrize("value_range", [(0, 255), (0, 1)])
def test_solarization_with_given_draws_matches_keras(value_range):
    """Keras' bounds cannot pin non-zero draws, so both get the same additions and thresholds."""
    real = require_keras()
    x = images((4, 5, 5, 3), value_range[1])
    additions = np.array([0, 10, 40, 90], "float32").reshape(4, 1, 1, 1)
    thresholds = np.array([30, 128, 200, 255], "float32").reshape(4, 1, 1, 1)
    layer = real.layers.Solarization(0.5, 0.5, value_range=value_range)
    given = {"additions": real.ops.convert_to_tensor(additions), "thresholds": real.ops.convert_to_tensor(thresholds)}
    want = real.ops.convert_to_numpy(layer.transform_images(real.ops.convert_to_tensor(x), given, training=True))
    got, _ = aug.SolarizationPrim.solarize(x, additions, thresholds, value_range)
    np.testing.assert_allclose(got, np.asarray(want), atol=1e-4)


@pytest.mark.parametrize("data_format", ["channels_last", "channels_first"])
@pytest.mark.parametrize("value_range", [(0, 255), (0, 1)])
def test_hue_with_given_draws_matches_keras(value_range, data_format):
    """Keras draws the sign of the hue shift, so no factor pins it: both get the same shifts."""
    real = require_keras()
    x = images((4, 5, 5, 3), value_range[1])
    if data_format == "channels_first":
        x = np.ascontiguousarray(x.transpose(0, 3, 1, 2))
    delta = np.array([-0.4, -0.05, 0.2, 0.5], "float32")
    layer = real.layers.RandomHue(0.5, value_range=value_range, data_format=data_format)
    given = {"factor": real.ops.convert_to_tensor(delta)}
    want = real.ops.convert_to_numpy(layer.transform_images(real.ops.convert_to_tensor(x), given, training=True))
    got = aug.RandomHuePrim.shift(x, delta, value_range, data_format)
    np.testing.assert_allclose(got, want, atol=1e-4 * value_range[1])


@pytest.mark.parametrize("data_format", ["channels_last", "channels_first"])
def test_erasing_box_matches_keras(data_format):
    """Keras' box positions are always random: both get the same corners."""
    real = require_keras()
    shape = (3, 7, 6, 3) if data_format == "channels_last" else (3, 3, 7, 6)
    corners = [np.array(c, "float32") for c in ([0.5, 1.2, 2.0], [3.1, 4.0, 6.0], [0.0, 2.5, 1.0], [4.0, 6.9, 3.0])]
    layer = real.layers.RandomErasing(data_format=data_format)
    want = layer._generate_batch_mask(shape, tuple(real.ops.convert_to_tensor(c) for c in corners))
    np.testing.assert_array_equal(aug.RandomErasingPrim.mask(shape, corners, data_format), np.asarray(want))


@pytest.mark.parametrize("data_format", ["channels_last", "channels_first"])
@pytest.mark.parametrize("fill_mode", ["reflect", "wrap", "constant", "nearest"])
@pytest.mark.parametrize("interpolation", ["bilinear", "nearest"])
def test_shear_with_given_factors_matches_keras(fill_mode, interpolation, data_format):
    """Keras draws the shear's sign, so no factor pins it: both get the same shear factors."""
    real = require_keras()
    x = images((3, 7, 6, 2))
    if data_format == "channels_first":
        x = np.ascontiguousarray(x.transpose(0, 3, 1, 2))
    shear = np.array([[0.3, -0.2], [-0.5, 0.1], [0.0, 0.7]], "float32")
    layer = real.layers.RandomShear(0.5, 0.5, interpolation, fill_mode, fill_value=2.0, data_format=data_format)
    given = {"shear_factor": real.ops.convert_to_tensor(shear)}
    want = layer._transform_images(real.ops.convert_to_tensor(x), given, interpolation)
    got = affine_transform(x, aug.RandomShearPrim.shear_matrix(shear), interpolation, fill_mode, 2.0, data_format)
    np.testing.assert_allclose(got, real.ops.convert_to_numpy(want), atol=1e-4)


def test_random_draws():
    x = images((200, 4, 4, 3))
    y = _train_output(layers.RandomGrayscale(0.5), x)
    gray = np.array([np.allclose(a, a[..., :1]) for a in y])
    kept = np.array([np.array_equal(a, b) for a, b in zip(y, x)])
    assert (gray | kept).all() and 60 < gray.sum() < 140
    y = _train_output(layers.RandomInvert((0.5, 0.5)), x)
    inverted = np.array([np.allclose(a, 255 - b) for a, b in zip(y, x)])
    assert (inverted | np.array([np.array_equal(a, b) for a, b in zip(y, x)])).all() and 60 < inverted.sum() < 140
    y = _train_output(layers.RandomPosterization((1, 8)), x)
    bits = [8 - int(np.log2(np.gcd.reduce(a.astype(np.int64).ravel() | 256))) for a in y]
    assert set(bits) <= set(range(1, 8)) and len(set(bits)) > 3  # 8 is never drawn, as in Keras
    y = _train_output(layers.RandomErasing((1.0, 1.0), scale=(0.1, 0.3), fill_value=-1.0), x)
    erased = (y == 0).reshape(200, -1).sum(1)  # fill -1 is clipped to 0; each image has a box
    assert (erased > 0).all() and len(set(erased.tolist())) > 3 and (y[y != 0] == x[y != 0]).all()
    y = _train_output(layers.Solarization(0.0, (0.5, 1.0)), x)
    assert ((y == x) | np.isclose(y, 255 - x)).all()


def test_gradients():
    from irtool.train.autodiff import GradientProgram

    x = images((4, 5, 5, 3), 1.0)
    for layer in (
        layers.RandomGrayscale(0.5),
        layers.RandomInvert(0.5, value_range=(0, 1)),
        layers.Solarization(0.0, 0.0, value_range=(0, 1)),  # threshold 0 and no addition: no jumps or kinks
        layers.RandomColorDegeneration(0.8, value_range=(0, 1)),
        layers.RandomSharpness(0.9, value_range=(-9, 9)),  # no clipping: no kinks in the numeric check
        layers.RandomSharpness(0.6, value_range=(-9, 9), data_format="channels_first"),
        layers.RandomErasing(0.7, fill_value=0.5),
    ):
        inputs = keras.Input((5, 5, 3))
        model = keras.Model(inputs, layers.Dense(1)(layer(inputs)))
        program = GradientProgram(model.graph, model.graph.inputs, training=True, rng=np.random.default_rng(1))
        _, (g,) = program.run([x])
        v = RNG.standard_normal(x.shape)
        eps = 1e-3

        def loss(z, model=model):
            (y,), _ = GradientProgram(model.graph, [], training=True, rng=np.random.default_rng(1)).run([z])
            return float(np.sum(y))

        numeric = (loss(x + eps * v) - loss(x - eps * v)) / (2 * eps)
        np.testing.assert_allclose(np.sum(g * v), numeric, rtol=3e-2, atol=3e-2, err_msg=type(layer).__name__)


def test_fit_and_keras_written_model(tmp_path):
    real = require_keras()
    inputs = real.Input((8, 8, 3))
    h = real.layers.RandomGrayscale(0.3, seed=1)(inputs)
    h = real.layers.RandomInvert(0.2)(h)
    h = real.layers.RandomPosterization((3, 7))(h)
    h = real.layers.Solarization(0.1, 0.5)(h)
    h = real.layers.RandomColorDegeneration(0.3)(h)
    h = real.layers.RandomSaturation(0.4, seed=2)(h)
    h = real.layers.RandomHue(0.2)(h)
    h = real.layers.RandomSharpness(0.3)(h)
    h = real.layers.RandomErasing(0.5, scale=(0.1, 0.2), seed=4)(h)
    h = real.layers.RandomShear(0.2, 0.1, fill_mode="nearest")(h)
    # (no Equalization: Keras 3.15's returns its input KerasTensor itself, so Keras cannot build
    # a model with it after another layer: "... from operation 'equalization' is part of a cycle")
    h = real.layers.AutoContrast()(h)
    h = real.layers.Conv2D(4, 3)(h)
    theirs = real.Model(inputs, real.layers.Dense(2, activation="softmax")(real.layers.GlobalAveragePooling2D()(h)))
    theirs.save(tmp_path / "aug.keras")
    ours = irtool.models.load_model(tmp_path / "aug.keras")
    x = images((4, 8, 8, 3))
    np.testing.assert_allclose(ours.predict(x, verbose=0), theirs.predict(x, verbose=0), rtol=1e-4, atol=1e-4)
    for mine, keras_layer in zip(ours.layers[1:12], theirs.layers[1:12]):
        as_json = json.loads(json.dumps(keras_layer.get_config()))
        assert_same_config(json.loads(json.dumps(mine.get_config())), as_json, ignore=("dtype",))
    assert_onnx_parity(ours, x, atol=1e-4)
    ours.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    history = ours.fit(images((16, 8, 8, 3)), RNG.integers(0, 2, 16), epochs=2, batch_size=8, verbose=0)
    assert np.isfinite(history.history["loss"]).all()
    assert_onnx_parity(ours, x, atol=1e-4)


AUTO_CONTRAST = [
    {},
    {"value_range": (0, 1)},
    {"value_range": (1, -1), "data_format": "channels_first"},
]


@pytest.mark.parametrize("kwargs", AUTO_CONTRAST, ids=["0-255", "0-1", "reversed-first"])
def test_auto_contrast_matches_keras_at_inference_training_and_in_onnx(kwargs):
    real = get_keras()
    x = images((3, 6, 5, 3), 1.0 if kwargs.get("value_range") == (0, 1) else 255.0)
    x[1, :, :, 2] = x[1, 0, 0, 2]  # a flat channel is kept
    x[2, :, :, :] = 0.5
    shape = (6, 5, 3)
    if kwargs.get("data_format") == "channels_first":
        x, shape = np.ascontiguousarray(x.transpose(0, 3, 1, 2)), (3, 6, 5)
    inputs = keras.Input(shape)
    model = keras.Model(inputs, layers.AutoContrast(**kwargs)(inputs))
    y = model.predict(x, verbose=0)
    assert not np.allclose(y, x)
    np.testing.assert_allclose(layers.AutoContrast(**kwargs)(x), y, rtol=1e-6)  # eager
    np.testing.assert_allclose(_train_output(layers.AutoContrast(**kwargs), x), y, rtol=1e-6)  # training
    assert_onnx_parity(model, x)
    config = model.layers[1].get_config()
    assert layers.AutoContrast.from_config(config).get_config() == config
    if real is not None:
        layer = real.layers.AutoContrast(**kwargs)
        np.testing.assert_allclose(y, np.asarray(layer(x, training=False)), atol=1e-4 * np.abs(x).max())
        np.testing.assert_allclose(y, np.asarray(layer(x, training=True)), atol=1e-4 * np.abs(x).max())
        assert_same_config(config, layer.get_config(), ignore=("dtype", "name"))
    with pytest.raises(ValueError, match="`value_range` argument should be a list of two numbers"):
        layers.AutoContrast(value_range=3)


# -- RandomCrop: Keras 3.15 returns its input unchanged at inference (its declared shape says
# otherwise), and crops (or centre-crops and resizes) in training.

CROP_SIZES = [(8, 6), (8, 4), (10, 3), (5, 6), (2, 9), (6, 6)]


@pytest.mark.parametrize("data_format", ["channels_last", "channels_first"])
@pytest.mark.parametrize("size", CROP_SIZES, ids=[f"{h}x{w}" for h, w in CROP_SIZES])
def test_random_crop_training_matches_keras_where_not_random(size, data_format):
    """Not larger than the target in both axes: Keras' centred aspect-ratio crop and resize."""
    real = require_keras()
    x = images((3, 8, 6, 3))
    if data_format == "channels_first":
        x = np.ascontiguousarray(x.transpose(0, 3, 1, 2))
    kwargs = dict(height=size[0], width=size[1], seed=3, data_format=data_format)
    want = np.asarray(real.layers.RandomCrop(**kwargs)(x, training=True))
    np.testing.assert_allclose(layers.RandomCrop(**kwargs)(x, training=True), want, atol=1e-3)
    np.testing.assert_allclose(_train_output(layers.RandomCrop(**kwargs), x), want, atol=1e-3)
    np.testing.assert_allclose(layers.RandomCrop(**kwargs)(x[0], training=True), want[0], atol=1e-3)


def test_random_crop_random_offsets():
    x = images((2, 8, 6, 3))
    offsets = set()
    for seed in range(40):
        y = _train_output(layers.RandomCrop(4, 4), x, seed=seed)
        assert y.shape == (2, 4, 4, 3)
        found = [(i, j) for i in range(5) for j in range(3) if np.array_equal(y, x[:, i : i + 4, j : j + 4])]
        assert len(found) == 1  # one box for the whole batch, as in Keras
        offsets.add(found[0])
    assert offsets == {(i, j) for i in range(5) for j in range(3)}


def test_random_crop_inference_is_the_input_as_in_keras_and_exports():
    real = get_keras()
    x = images((3, 8, 6, 3))
    inputs = keras.Input((8, 6, 3))
    layer = layers.RandomCrop(4, 4, seed=1)
    model = keras.Model(inputs, layer(inputs))
    assert model.output.shape == (None, 8, 6, 3)  # what predict returns (Keras declares (None, 4, 4, 3))
    assert layer.compute_output_shape((None, 8, 6, 3)) == (None, 4, 4, 3)  # Keras' declared shape
    np.testing.assert_array_equal(model.predict(x, verbose=0), x)
    assert_onnx_parity(model, x)
    config = layer.get_config()
    assert layers.RandomCrop.from_config(config).get_config() == config
    assert isinstance(layers.RandomCrop(3, 3).seed, int)  # Keras draws a default seed into the config
    if real is not None:
        theirs = real.layers.RandomCrop(4, 4, seed=1)
        assert_same_config(config, theirs.get_config(), ignore=("dtype", "name"))
        real_in = real.Input((8, 6, 3))
        real_model = real.Model(real_in, theirs(real_in))
        assert tuple(real_model.output.shape) == (None, 4, 4, 3)
        np.testing.assert_array_equal(real_model.predict(x, verbose=0), x)


def test_random_crop_fit_and_keras_written_model(tmp_path):
    real = require_keras()
    inputs = real.Input((8, 6, 3))
    h = real.layers.RandomCrop(5, 4, seed=2)(inputs)
    h = real.layers.Conv2D(4, 3, padding="same")(h)
    theirs = real.Model(inputs, real.layers.Dense(2, activation="softmax")(real.layers.GlobalAveragePooling2D()(h)))
    theirs.save(tmp_path / "crop.keras")
    ours = irtool.models.load_model(tmp_path / "crop.keras")
    x = images((4, 8, 6, 3))
    np.testing.assert_allclose(ours.predict(x, verbose=0), theirs.predict(x, verbose=0), rtol=1e-4, atol=1e-4)
    as_json = json.loads(json.dumps(theirs.layers[1].get_config()))
    assert_same_config(json.loads(json.dumps(ours.layers[1].get_config())), as_json, ignore=("dtype",))
    assert_onnx_parity(ours, x, atol=1e-4)
    ours.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    history = ours.fit(images((16, 8, 6, 3)), RNG.integers(0, 2, 16), epochs=2, batch_size=8, verbose=0)
    assert np.isfinite(history.history["loss"]).all()
    assert_onnx_parity(ours, x, atol=1e-4)
