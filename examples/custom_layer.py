"""The Keras guide's ``CustomDense`` (a layer with its own weights and ``get_config``) in a
functional model.

    python examples/custom_layer.py
    irtool export examples/custom_layer.py --check

Extras: none.
"""

import numpy as np

import irtool as keras
from irtool import layers, ops

keras.utils.set_random_seed(0)


class CustomDense(layers.Layer):
    def __init__(self, units=32):
        super().__init__()
        self.units = units

    def build(self, input_shape):
        self.w = self.add_weight(
            shape=(input_shape[-1], self.units),
            initializer="random_normal",
            trainable=True,
        )
        self.b = self.add_weight(shape=(self.units,), initializer="random_normal", trainable=True)

    def call(self, inputs):
        return ops.matmul(inputs, self.w) + self.b

    def get_config(self):
        return {"units": self.units}


inputs = keras.Input((4,))
outputs = CustomDense(10)(inputs)
model = keras.Model(inputs, outputs, name="custom_dense_model")

if __name__ == "__main__":
    layer = model.layers[-1]
    config = layer.get_config()
    clone = CustomDense.from_config(config)
    print(f"{layer.name}: config {config}, rebuilt from it as {clone}")
    x = np.random.default_rng(0).random((3, 4), dtype="float32")
    y = model.predict(x, verbose=0)
    expected = x @ layer.w.numpy() + layer.b.numpy()
    print(f"predictions {y.shape}, equal to x @ w + b: {np.allclose(y, expected, atol=1e-6)}")
