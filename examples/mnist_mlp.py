"""The MNIST classifier of the Keras functional-API guide, built with irtool.

python examples/mnist_mlp.py                                  # build it and run a prediction
irtool export examples/mnist_mlp.py -o out/mnist.onnx --check  # export it, compare with NumPy

Extras: none.
"""

import numpy as np

import irtool as keras
from irtool import layers

keras.utils.set_random_seed(0)

inputs = keras.Input(shape=(784,), name="img")
x = layers.Dense(64, activation="relu")(inputs)
x = layers.Dense(64, activation="relu")(x)
outputs = layers.Dense(10)(x)
model = keras.Model(inputs=inputs, outputs=outputs, name="mnist_model")

if __name__ == "__main__":
    print(f"{model.name}: {len(model.layers)} layers, {model.count_params():,} params")
    for layer in model.layers:
        print(f"  {layer.name:<12} {type(layer).__name__:<11} {layer.count_params():>7,} params")
    images = np.random.default_rng(0).random((4, 784), dtype="float32")
    logits = model.predict(images, verbose=0)
    print(f"logits for 4 random images: shape {logits.shape}, predicted digits {logits.argmax(axis=-1).tolist()}")
