import numpy as np

import irtool as keras
from irtool import layers

from .conftest import assert_onnx_parity


def test_mnist_mlp_builds_runs_and_exports():
    inputs = keras.Input(shape=(784,))
    x = layers.Dense(64, activation="relu")(inputs)
    x = layers.Dense(64, activation="relu")(x)
    outputs = layers.Dense(10)(x)
    model = keras.Model(inputs=inputs, outputs=outputs, name="mnist_model")
    assert [layer.name for layer in model.layers] == ["input_layer", "dense", "dense_1", "dense_2"]
    assert model.count_params() == 55050
    model.graph.lint()
    x = np.random.default_rng(0).random((7, 784), dtype="float32")
    y = model.predict(x, verbose=0)
    kernel, bias = model.layers[1].get_weights()
    np.testing.assert_allclose(model.layers[1](x), np.maximum(x @ kernel + bias, 0), rtol=1e-6)
    assert y.shape == (7, 10)
    assert_onnx_parity(model, x)
