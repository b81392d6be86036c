"""Pipeline: a ``.keras`` file real Keras wrote with a Pipeline of preprocessing and
augmentation layers loads in irtool, predicts like Keras (augmentations are the identity at
inference) and exports with ONNX Runtime parity."""

import json

import numpy as np
import pytest

import irtool

from ..harness import assert_onnx_parity, require_keras

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

RNG = np.random.default_rng(5)


def _keras_model(keras):
    keras.utils.set_random_seed(1)
    augment = keras.layers.Pipeline(
        [
            keras.layers.RandomFlip("horizontal"),
            keras.layers.RandomRotation(0.1),
            keras.layers.RandomContrast(0.2),
        ],
        name="augment",
    )
    preprocess = keras.layers.Pipeline(
        [keras.layers.Rescaling(1 / 255.0), keras.layers.CenterCrop(8, 8), keras.layers.AutoContrast((0, 1))],
        name="preprocess",
    )
    inputs = keras.Input((10, 12, 3))
    h = preprocess(augment(inputs))
    h = keras.layers.Conv2D(4, 3, activation="relu")(h)
    outputs = keras.layers.Dense(2)(keras.layers.GlobalAveragePooling2D()(h))
    return keras.Model(inputs, outputs)


def test_keras_written_pipeline_loads_predicts_and_exports(tmp_path):
    keras = require_keras()
    theirs = _keras_model(keras)
    theirs.save(tmp_path / "pipeline.keras")

    ours = irtool.models.load_model(tmp_path / "pipeline.keras")
    augment, preprocess = ours.get_layer("augment"), ours.get_layer("preprocess")
    assert isinstance(augment, irtool.layers.Pipeline) and isinstance(preprocess, irtool.layers.Pipeline)
    assert [type(layer).__name__ for layer in augment.layers] == ["RandomFlip", "RandomRotation", "RandomContrast"]
    assert [type(layer).__name__ for layer in preprocess.layers] == ["Rescaling", "CenterCrop", "AutoContrast"]
    for index in (1, 2):  # the pipelines' configs, as JSON stores them
        mine, keras_config = (json.loads(json.dumps(m.get_config()["layers"][index])) for m in (ours, theirs))
        for layer in keras_config["config"]["layers"]:
            # irtool's stateless layers are built at construction and record no build shape.
            layer.pop("build_config")
        assert mine == keras_config

    x = RNG.uniform(0, 255, size=(3, 10, 12, 3)).astype("float32")
    want = theirs.predict(x, verbose=0)
    np.testing.assert_allclose(ours.predict(x, verbose=0), want, atol=1e-5, rtol=1e-5)
    # Inference leaves the augmentations out: the same as the preprocessing alone.
    np.testing.assert_allclose(np.asarray(theirs.get_layer("augment")(x, training=False)), x)
    np.testing.assert_allclose(augment(x, training=False), x)
    assert_onnx_parity(ours, x, atol=1e-5, rtol=1e-5)

    ours.save(tmp_path / "again.keras")
    again = keras.models.load_model(tmp_path / "again.keras")
    np.testing.assert_allclose(again.predict(x, verbose=0), want, atol=1e-5, rtol=1e-5)


def test_pipeline_in_training_applies_its_augmentations():
    pipeline = irtool.layers.Pipeline([irtool.layers.RandomFlip("horizontal", seed=3)])
    x = RNG.uniform(0, 1, size=(8, 2, 3, 1)).astype("float32")
    flipped = pipeline(x, training=True)
    mirrored = np.all(flipped == x[:, :, ::-1], axis=(1, 2, 3))
    unchanged = np.all(flipped == x, axis=(1, 2, 3))
    assert np.all(mirrored | unchanged) and mirrored.any() and unchanged.any()
