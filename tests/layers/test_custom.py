"""Custom layers from the Keras functional-API guide: CustomDense and the unrolled CustomRNN."""

import numpy as np
import pytest

import irtool as keras
from irtool import layers, ops

from ..conftest import assert_onnx_parity
from ..harness import run_layer_test


class CustomDense(layers.Layer):
    def __init__(self, units=32):
        super().__init__()
        self.units = units

    def build(self, input_shape):
        self.w = self.add_weight(shape=(input_shape[-1], self.units), initializer="random_normal", trainable=True)
        self.b = self.add_weight(shape=(self.units,), initializer="random_normal", trainable=True)

    def call(self, inputs):
        return ops.matmul(inputs, self.w) + self.b

    def get_config(self):
        return {"units": self.units}


def test_custom_dense_runs_exports_and_round_trips_its_config():
    inputs = keras.Input((4,))
    layer = CustomDense(10)
    model = keras.Model(inputs, layer(inputs))
    assert layer.name == "custom_dense"
    assert [w.path for w in layer.weights] == ["custom_dense/variable", "custom_dense/variable_1"]
    assert model.count_params() == 50
    x = np.random.default_rng(1).random((3, 4), dtype="float32")
    w, b = layer.get_weights()
    np.testing.assert_allclose(model.predict(x, verbose=0), x @ w + b, rtol=1e-6)
    assert_onnx_parity(model, x)
    revived = CustomDense.from_config(layer.get_config())
    assert revived.units == 10 and revived.name == "custom_dense_1"
    # Weights are read at run time: assigning changes the model's output.
    layer.set_weights([np.ones((4, 10)), np.zeros(10)])
    np.testing.assert_allclose(model.predict(x, verbose=0), np.repeat(x.sum(1, keepdims=True), 10, 1), rtol=1e-6)


class CustomRNN(layers.Layer):
    def __init__(self, units=32):
        super().__init__()
        self.units = units
        self.projection_1 = layers.Dense(units=units, activation="tanh")
        self.projection_2 = layers.Dense(units=units, activation="tanh")
        self.classifier = layers.Dense(1)

    def call(self, inputs):
        outputs = []
        state = ops.zeros(shape=(inputs.shape[0], self.units))
        for t in range(inputs.shape[1]):
            x = inputs[:, t, :]
            h = self.projection_1(x)
            y = h + self.projection_2(state)
            state = y
            outputs.append(y)
        features = ops.stack(outputs, axis=1)
        return self.classifier(features)


def reference_rnn(layer: CustomRNN, x: np.ndarray) -> np.ndarray:
    (k1, b1), (k2, b2), (kc, bc) = (d.get_weights() for d in (layer.projection_1, layer.projection_2, layer.classifier))
    state = np.zeros((x.shape[0], layer.units), "float32")
    outs = []
    for t in range(x.shape[1]):
        state = np.tanh(x[:, t] @ k1 + b1) + np.tanh(state @ k2 + b2)
        outs.append(state)
    return np.stack(outs, 1) @ kc + bc


def test_custom_rnn_unrolls_inside_a_functional_model():
    inputs = keras.Input(batch_shape=(16, 10, 5))
    x = layers.Dense(32)(inputs)  # the guide uses Conv1D(32, 3); convolutions come with layer coverage
    rnn = CustomRNN()
    outputs = rnn(x)
    model = keras.Model(inputs, outputs)
    assert outputs.shape == (16, 10, 1)
    assert len(model.weights) == 8
    assert [w.path for w in rnn.weights][:2] == ["custom_rnn/dense_1/kernel", "custom_rnn/dense_1/bias"]
    assert [layer.name for layer in model.layers] == ["input_layer", "dense", "custom_rnn"]
    model.graph.lint()
    data = np.random.default_rng(2).random((16, 10, 5), dtype="float32")
    features = model.get_layer("dense")(data)
    np.testing.assert_allclose(model.predict(data, verbose=0), reference_rnn(rnn, features), rtol=1e-5, atol=1e-6)
    assert_onnx_parity(model, data)


def test_custom_rnn_needs_a_static_batch():
    inputs = keras.Input((10, 5))
    with pytest.raises(ValueError, match="`ops.zeros` needs a static shape"):
        CustomRNN()(inputs)


class Scale(layers.Layer):
    """A layer with a non-trainable weight and a sublayer assigned in a list."""

    def __init__(self, factor=2.0, **kwargs):
        super().__init__(**kwargs)
        self.factor = factor
        self.blocks = [layers.Dense(3), layers.Dense(3)]

    def build(self, input_shape):
        self.scale = self.add_weight(shape=(), initializer="ones", trainable=False, name="scale")

    def call(self, inputs):
        return self.blocks[1](self.blocks[0](inputs)) * (self.scale * self.factor)


def test_sublayers_in_lists_are_tracked_and_auto_config():
    layer = Scale(3.0)
    model = keras.Model(inputs := keras.Input((2,)), layer(inputs))
    assert len(layer.weights) == 5
    assert [w.name for w in layer.non_trainable_weights] == ["scale"]
    assert len(layer.trainable_weights) == 4
    assert model.count_params() == 1 + 9 + 12
    config = layer.get_config()
    assert config["factor"] == 3.0 and config["name"] == "scale"
    x = np.ones((2, 2), "float32")
    assert_onnx_parity(model, x)


def test_sublayers_held_in_a_dict_are_tracked_and_trained():
    import numpy as np

    import irtool as keras
    from irtool import layers

    class Heads(layers.Layer):
        def __init__(self, **kwargs):
            super().__init__(**kwargs)
            self.heads = {"a": layers.Dense(2), "b": layers.Dense(3)}

        def call(self, x):
            return keras.ops.concatenate([self.heads["a"](x), self.heads["b"](x)], axis=-1)

    inputs = keras.Input((4,))
    model = keras.Model(inputs, Heads()(inputs))
    assert len(model.trainable_weights) == 4
    model.compile(optimizer="sgd", loss="mse")
    before = [w.copy() for w in model.get_weights()]
    model.train_on_batch(np.ones((2, 4), "float32"), np.zeros((2, 5), "float32"))
    assert all(not np.array_equal(a, b) for a, b in zip(before, model.get_weights()))


def test_custom_dense_layer_harness():
    """Shapes, configs, .keras file, ONNX and gradients of a custom layer (tests/harness.py)."""
    run_layer_test(
        CustomDense, {"units": 3}, (4,), expected_output_shape=(None, 3), custom_objects={"CustomDense": CustomDense}
    )
