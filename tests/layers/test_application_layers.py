"""Keras application internals (ConvNeXt's LayerScale and StochasticDepth): written and read
under ``keras.src.applications.convnext``, so Keras-saved models load with no custom objects."""

import numpy as np
import pytest

import irtool
from irtool.layers.convnext import LayerScale, StochasticDepth

from ..harness import require_keras, run_layer_test

RNG = np.random.default_rng(4)


def test_layer_scale():
    model = run_layer_test(
        LayerScale,
        {"init_values": 0.5, "projection_dim": 6},
        (3, 6),
        expected_output_shape=(None, 3, 6),
        expected_num_trainable_weights=1,
    )
    layer = model.layers[-1]
    assert [w.path for w in layer.weights] == [f"{layer.name}/variable"]
    x = RNG.standard_normal((2, 3, 6)).astype("float32")
    np.testing.assert_allclose(model.predict(x, verbose=0), x * layer.get_weights()[0], rtol=1e-6)
    fresh = LayerScale(0.25, 4)
    fresh.build((None, 4))
    np.testing.assert_array_equal(fresh.get_weights()[0], np.full(4, 0.25, "float32"))


def test_stochastic_depth_is_the_identity_at_inference():
    run_layer_test(
        StochasticDepth, {"drop_path_rate": 0.3}, (4, 5), expected_output_shape=(None, 4, 5), check_gradients=True
    )


def test_serialized_under_keras_module_names():
    config = irtool.saving.serialize_keras_object(LayerScale(0.1, 3))
    assert (config["module"], config["class_name"], config["registered_name"]) == (
        "keras.src.applications.convnext",
        "LayerScale",
        "LayerScale",
    )
    assert type(irtool.saving.deserialize_keras_object(config)) is LayerScale
    assert "LayerScale" not in vars(irtool.layers).get("__all__", [])
    with pytest.raises(TypeError, match="Unknown layer"):
        irtool.saving.deserialize_keras_object({**config, "module": "keras.layers"})


def test_stochastic_depth_drops_whole_examples_when_training():
    irtool.utils.set_random_seed(0)
    inputs = irtool.Input((6,))
    model = irtool.Model(inputs, StochasticDepth(0.5)(irtool.layers.Dense(6, use_bias=False)(inputs)))
    model.compile(optimizer="sgd", loss="mse")
    dense = model.layers[1]
    before = dense.get_weights()[0].copy()
    x = np.ones((64, 6), "float32")
    model.fit(x, np.zeros((64, 6), "float32"), batch_size=64, epochs=1, verbose=0)
    assert not np.allclose(dense.get_weights()[0], before)
    eager = StochasticDepth(0.5)(np.ones((200, 3, 2), "float32"), training=True)
    per_example = eager.reshape(200, -1)
    assert set(np.unique(per_example)) <= {0.0, 2.0}
    assert (per_example == per_example[:, :1]).all()  # one decision per example
    assert 0.3 < (per_example[:, 0] > 0).mean() < 0.7


def test_keras_file_with_convnext_layers_loads(tmp_path):
    keras = require_keras()
    from keras.src.applications import convnext

    keras.utils.set_random_seed(3)
    inputs = keras.Input((5, 5, 8))
    x = keras.layers.Conv2D(8, 3, padding="same")(inputs)
    x = convnext.LayerScale(1e-1, 8)(x)
    x = convnext.StochasticDepth(0.2)(x)
    model = keras.Model(inputs, keras.layers.Add()([inputs, x]))
    model.layers[2].set_weights([RNG.standard_normal(8).astype("float32")])
    path = tmp_path / "convnext_block.keras"
    model.save(path)
    data = RNG.standard_normal((2, 5, 5, 8)).astype("float32")
    ours = irtool.models.load_model(path)
    assert [type(layer).__name__ for layer in ours.layers[2:4]] == ["LayerScale", "StochasticDepth"]
    want = keras.ops.convert_to_numpy(model(data))
    np.testing.assert_allclose(ours.predict(data, verbose=0), want, rtol=1e-5, atol=1e-5)
    # and back: irtool's file loads in Keras
    ours.save(tmp_path / "again.keras")
    again = keras.models.load_model(tmp_path / "again.keras")
    np.testing.assert_allclose(keras.ops.convert_to_numpy(again(data)), want, rtol=1e-5, atol=1e-5)
