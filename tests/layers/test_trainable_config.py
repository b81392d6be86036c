"""``trainable=False`` survives a config round trip (a layer's, a model's JSON, a .keras file)
and is what Keras reads from irtool's config."""

from __future__ import annotations

import numpy as np

import irtool

from ..harness import get_keras


def frozen_model():
    inputs = irtool.Input((4,), name="x")
    hidden = irtool.layers.Dense(3, name="frozen", trainable=False)(inputs)
    return irtool.Model(inputs, irtool.layers.Dense(2, name="head")(hidden))


def test_layer_config_keeps_trainable_false():
    layer = irtool.layers.Dense(3, trainable=False)
    config = layer.get_config()
    assert config["trainable"] is False
    assert irtool.layers.Dense.from_config(config).trainable is False


def test_model_json_and_keras_file_keep_trainable_false(tmp_path):
    model = frozen_model()
    restored = irtool.models.model_from_json(model.to_json())
    assert restored.get_layer("frozen").trainable is False and restored.get_layer("head").trainable is True
    assert len(restored.trainable_weights) == 2
    model.save(str(tmp_path / "m.keras"))
    loaded = irtool.models.load_model(str(tmp_path / "m.keras"))
    assert loaded.get_layer("frozen").trainable is False and len(loaded.trainable_weights) == 2
    keras = get_keras()
    if keras is not None:
        theirs = keras.models.model_from_json(model.to_json())
        assert theirs.get_layer("frozen").trainable is False
        assert len(theirs.trainable_weights) == 2
    np.testing.assert_array_equal(loaded.get_weights()[0], model.get_weights()[0])
