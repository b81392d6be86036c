"""``Layer.add_loss`` (Keras' guide: "the add_loss() method") and ``layer.losses`` after eager calls."""

from __future__ import annotations

import numpy as np
import pytest

import irtool as keras
from irtool import layers, ops

from ..harness import get_keras

X = np.random.default_rng(0).random((6, 3)).astype("float32")


def _penalized(lib, rate=1e-2):
    class ActivityPenalty(lib.layers.Layer):
        def call(self, inputs):
            self.add_loss(rate * lib.ops.mean(inputs))
            return inputs

    inputs = lib.Input((3,))
    hidden = lib.layers.Dense(3, kernel_initializer="ones", name="dense")(inputs)
    return lib.Model(inputs, ActivityPenalty()(hidden))


def test_an_added_loss_joins_the_training_loss_as_in_keras():
    model = _penalized(keras)
    model.compile(optimizer=keras.optimizers.SGD(0.01), loss="mse")
    hidden = X @ np.ones((3, 3), "float32")
    want = np.mean(np.square(hidden - X)) + 1e-2 * hidden.mean()
    np.testing.assert_allclose(model.evaluate(X, X, verbose=0), want, rtol=1e-5)
    real = get_keras()
    if real is None:
        pytest.skip("keras is not installed")
    theirs = _penalized(real)
    theirs.compile(optimizer=real.optimizers.SGD(0.01), loss="mse")
    model.set_weights([real.ops.convert_to_numpy(w) for w in theirs.get_weights()])
    np.testing.assert_allclose(
        model.fit(X, X, epochs=3, shuffle=False, verbose=0).history["loss"],
        theirs.fit(X, X, epochs=3, shuffle=False, verbose=0).history["loss"],
        rtol=1e-5,
    )


def test_a_subclassed_models_add_loss_trains_it():
    """The VAE pattern: the model adds its own regularizer in ``call``; fit minimizes both terms."""

    class Shrunk(keras.Model):
        def __init__(self, **kwargs):
            super().__init__(**kwargs)
            self.dense = layers.Dense(3)

        def call(self, x):
            y = self.dense(x)
            self.add_loss(0.1 * ops.sum(ops.square(y)))
            return y

    model = Shrunk()
    model.compile(optimizer=keras.optimizers.SGD(0.05), loss="mse")
    before = model.evaluate(X, X, verbose=0)
    y = model.predict(X, verbose=0)
    np.testing.assert_allclose(before, np.mean(np.square(y - X)) + 0.1 * np.sum(np.square(y)), rtol=1e-5)
    history = model.fit(X, X, epochs=10, verbose=0)
    assert history.history["loss"][-1] < before


def test_losses_of_an_eager_call():
    dense = layers.Dense(2, activity_regularizer=keras.regularizers.l1(0.1), kernel_initializer="ones")
    dense(np.ones((1, 3), "float32"))
    np.testing.assert_allclose(dense.losses, [0.6], rtol=1e-6)  # as Keras: l1 of the outputs / batch size
    dense(np.ones((2, 3), "float32"))
    np.testing.assert_allclose(dense.losses, [0.6], rtol=1e-6)  # the last call's only

    class Adds(layers.Layer):
        def call(self, x):
            self.add_loss(ops.sum(x))
            return x

    layer = Adds()
    layer(np.ones((2, 2), "float32"))
    assert [float(v) for v in layer.losses] == [4.0]
    with pytest.raises(ValueError, match="`add_loss` on symbolic tensors belongs inside the layer's `call\\(\\)`"):
        layer.add_loss(ops.sum(keras.Input((2,))))


def test_losses_of_layers_called_inside_other_layers_and_subclassed_models():
    class AddsMeanSquare(layers.Layer):
        def call(self, x):
            self.add_loss(ops.mean(ops.square(x)))
            return x

    class Outer(layers.Layer):
        def __init__(self, **kwargs):
            super().__init__(**kwargs)
            self.inner = AddsMeanSquare()

        def call(self, x):
            return self.inner(x)

    class Regularized(keras.Model):
        def __init__(self, **kwargs):
            super().__init__(**kwargs)
            self.dense = layers.Dense(
                2, kernel_initializer="ones", use_bias=False, activity_regularizer=keras.regularizers.L1(1.0)
            )

        def call(self, x):
            return self.dense(x)

    x = np.ones((4, 2), "float32")
    inputs = keras.Input((2,))
    nested = keras.Model(inputs, Outer()(inputs))
    nested.compile(loss="mse")
    assert nested.evaluate(x, x, verbose=0) == 1.0  # mse 0 + the inner layer's mean square
    sub = Regularized()
    sub.compile(loss="mse")
    assert sub.evaluate(x, np.full((4, 2), 2.0, "float32"), verbose=0) == 4.0  # the activity penalty
    i = keras.Input((2,))
    inner_model = keras.Model(i, AddsMeanSquare()(i))
    j = keras.Input((2,))
    outer = keras.Model(j, inner_model(j))
    outer.compile(loss="mse")
    with pytest.warns(
        UserWarning, match="nested in .* adds losses with `add_loss`, which irtool's training loss leaves out"
    ):
        outer.evaluate(x, x, verbose=0)
