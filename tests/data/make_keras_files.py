"""Write the ``.keras`` / ``.weights.h5`` files in this folder with real Keras 3, and what they compute.

    KERAS_BACKEND=torch python tests/data/make_keras_files.py

For every model of ``tests/saving/_guide_models.py`` it saves ``<name>.keras`` and, in
``keras_expected.npz`` (plain arrays, no pickle), the inputs ``<name>/x<i>`` and Keras' outputs
``<name>/y<i>``, so the tests can check irtool's loading without Keras installed. Three models are
compiled and trained two steps before saving (so their files hold optimizer state): ``mnist_mlp``
(SGD with momentum), ``toy_resnet`` (Adam; BatchNormalization's moving statistics move) and
``ticket_classifier`` (RMSprop, two losses with weights). For those the npz also holds the
training batch ``<name>/train_x<i>`` / ``train_y<i>`` (ticket_classifier: priority, department) and the weights after one more Keras step on
it, ``<name>/after_step/<i>``: loading in irtool and taking the same step must land there.
``mnist_mlp.weights.h5`` is ``save_weights`` of the same MLP. Made with Keras 3.15.1 (torch backend).
"""

from __future__ import annotations

import os
import sys

os.environ.setdefault("KERAS_BACKEND", "torch")

import keras  # noqa: E402
import numpy as np  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(os.path.dirname(HERE)))

from tests.saving._guide_models import BUILDERS, flat_outputs, sample_inputs  # noqa: E402


def _training(name: str, model, rng):
    """``(compile kwargs, x, y)`` for the models saved with a training state, else ``None``."""
    if name == "mnist_mlp":
        compile_kwargs = dict(
            optimizer=keras.optimizers.SGD(learning_rate=0.05, momentum=0.9),
            loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
            metrics=["accuracy"],
        )
        y = [rng.integers(0, 10, (8,))]
    elif name == "toy_resnet":
        compile_kwargs = dict(
            optimizer=keras.optimizers.Adam(learning_rate=0.01),
            loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
            metrics=["acc"],
        )
        y = [rng.integers(0, 10, (8,))]
    elif name == "ticket_classifier":
        compile_kwargs = dict(
            optimizer=keras.optimizers.RMSprop(1e-3),
            loss={
                "priority": keras.losses.BinaryCrossentropy(from_logits=True),
                "department": keras.losses.CategoricalCrossentropy(from_logits=True),
            },
            loss_weights={"priority": 1.0, "department": 0.2},
        )
        y = [rng.integers(0, 2, (8, 1)).astype("float32"), np.eye(4, dtype="float32")[rng.integers(0, 4, 8)]]
    else:
        return None
    return compile_kwargs, sample_inputs(model, batch=8, seed=1), y


def main() -> None:
    keras.utils.set_random_seed(0)
    expected = {}
    for name, build in BUILDERS.items():
        keras.backend.clear_session()
        model = build(keras)
        rng = np.random.default_rng(5)
        training = _training(name, model, rng)
        if training is not None:
            compile_kwargs, x, y = training
            model.compile(**compile_kwargs)
            targets = {"priority": y[0], "department": y[1]} if name == "ticket_classifier" else y[0]
            for _ in range(2):
                model.train_on_batch(x, targets)
        xs = sample_inputs(model)
        for i, value in enumerate(xs):
            expected[f"{name}/x{i}"] = value
        for i, value in enumerate(flat_outputs(model.predict(xs, verbose=0))):
            expected[f"{name}/y{i}"] = value
        model.save(os.path.join(HERE, f"{name}.keras"))
        if name == "mnist_mlp":
            model.save_weights(os.path.join(HERE, f"{name}.weights.h5"))
        if training is not None:
            for i, value in enumerate(x):
                expected[f"{name}/train_x{i}"] = value
            for i, value in enumerate(y):
                expected[f"{name}/train_y{i}"] = value
            model.train_on_batch(x, targets)
            for i, value in enumerate(model.get_weights()):
                expected[f"{name}/after_step/{i}"] = value
    np.savez_compressed(os.path.join(HERE, "keras_expected.npz"), **expected)
    for file in sorted(os.listdir(HERE)):
        print(f"{file}: {os.path.getsize(os.path.join(HERE, file)):,} bytes")


if __name__ == "__main__":
    main()
