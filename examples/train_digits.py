"""Train a small CNN on scikit-learn's handwritten digits, export it, and check ONNX Runtime.

The 8x8 digit images ship with scikit-learn (no download). The model trains in NumPy with
irtool's trainer, reaches its test accuracy in a few seconds, and the exported ONNX file gives
the same predictions in ONNX Runtime.

    pip install scikit-learn && python examples/train_digits.py

Extras: scikit-learn (in the ``dev`` extra: ``pip install -e '.[dev]'``).
"""

from __future__ import annotations

import sys

import numpy as np

import irtool as keras
from irtool import layers

TARGET_ACCURACY = 0.95


def load_digits():
    from sklearn.datasets import load_digits as sklearn_digits

    digits = sklearn_digits()
    x = (digits.images / 16.0).astype("float32")[..., None]  # (1797, 8, 8, 1), values in [0, 1]
    y = digits.target.astype("int64")
    rng = np.random.default_rng(0)
    order = rng.permutation(len(x))
    x, y = x[order], y[order]
    split = int(0.8 * len(x))
    return (x[:split], y[:split]), (x[split:], y[split:])


def build_model():
    inputs = keras.Input((8, 8, 1), name="digit")
    x = layers.Conv2D(16, 3, padding="same", activation="relu")(inputs)
    x = layers.MaxPooling2D(2)(x)
    x = layers.Conv2D(32, 3, padding="same", activation="relu")(x)
    x = layers.GlobalAveragePooling2D()(x)
    x = layers.Dropout(0.2)(x)
    outputs = layers.Dense(10, activation="softmax", name="probs")(x)
    return keras.Model(inputs, outputs, name="digits_cnn")


def train(epochs: int = 15, verbose="auto"):
    keras.utils.set_random_seed(0)
    (x_train, y_train), (x_test, y_test) = load_digits()
    model = build_model()
    model.compile(optimizer=keras.optimizers.Adam(0.01), loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    model.fit(x_train, y_train, batch_size=32, epochs=epochs, validation_split=0.1, verbose=verbose)
    _, accuracy = model.evaluate(x_test, y_test, verbose=0)
    return model, accuracy, (x_test, y_test)


def main() -> int:
    import onnxruntime as ort

    model, accuracy, (x_test, y_test) = train()
    print(f"test accuracy: {accuracy:.4f} (target {TARGET_ACCURACY})")
    proto = model.export("digits.onnx")
    session = ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"])
    onnx_probs = session.run(None, {"digit": x_test})[0]
    numpy_probs = model.predict(x_test, verbose=0)
    agree = float((onnx_probs.argmax(1) == numpy_probs.argmax(1)).mean())
    print(f"ONNX Runtime vs NumPy: max |diff| {np.abs(onnx_probs - numpy_probs).max():.2e}, same class for {agree:.0%}")
    return 0 if accuracy >= TARGET_ACCURACY and agree == 1.0 else 1


if __name__ == "__main__":
    sys.exit(main())
