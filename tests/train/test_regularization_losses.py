"""Keras' ``model.losses`` in training: weight regularizers and activity regularizers add to the loss
(``regularizer(weight)``; ``regularizer(output) / batch_size``), in fit, evaluate and the gradients."""

from __future__ import annotations

import numpy as np

import irtool as keras
from irtool import layers, regularizers

from ..harness import require_keras

RNG = np.random.default_rng(3)


def _data(n=8, features=5):
    return RNG.standard_normal((n, features)).astype("float32"), RNG.standard_normal((n, 3)).astype("float32")


def test_weight_regularizers_add_to_the_loss_and_gradients():
    x, y = _data()
    inputs = keras.Input((5,))
    dense = layers.Dense(3, kernel_regularizer=regularizers.L2(0.1), bias_regularizer="l1")
    model = keras.Model(inputs, dense(inputs))
    model.compile(optimizer=keras.optimizers.SGD(0.05), loss="mse")
    kernel, bias = (w.copy() for w in dense.get_weights())
    pred = x @ kernel + bias
    mse = np.mean((pred - y) ** 2)
    want = mse + 0.1 * np.sum(kernel**2) + 0.01 * np.sum(np.abs(bias))
    np.testing.assert_allclose(model.evaluate(x, y, verbose=0), want, rtol=1e-5)
    assert len(model.losses) == 2
    np.testing.assert_allclose(sum(float(v) for v in model.losses), want - mse, rtol=1e-5)
    model.train_on_batch(x, y)
    d_pred = 2 * (pred - y) / pred.size
    grad_k = x.T @ d_pred + 2 * 0.1 * kernel
    grad_b = d_pred.sum(0) + 0.01 * np.sign(bias)
    np.testing.assert_allclose(dense.kernel.numpy(), kernel - 0.05 * grad_k, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(dense.bias.numpy(), bias - 0.05 * grad_b, rtol=1e-4, atol=1e-6)


def test_activity_regularizers_are_divided_by_the_batch_size():
    x, y = _data(n=6)
    inputs = keras.Input((5,))
    dense = layers.Dense(4, activity_regularizer=regularizers.L1(0.2))
    h = dense(inputs)
    reg = layers.ActivityRegularization(l2=0.3)
    out = layers.Dense(3)(reg(h))
    model = keras.Model(inputs, out)
    model.compile(optimizer="sgd", loss="mae")
    hidden = x @ dense.kernel.numpy() + dense.bias.numpy()
    pred = model.predict(x, verbose=0)
    want = np.mean(np.abs(pred - y)) + 0.2 * np.abs(hidden).sum() / 6 + 0.3 * np.square(hidden).sum() / 6
    np.testing.assert_allclose(model.evaluate(x, y, batch_size=6, verbose=0), want, rtol=1e-5)
    history = model.fit(x, y, batch_size=3, epochs=3, verbose=0)
    assert np.all(np.isfinite(history.history["loss"]))


def test_no_regularizers_leave_the_training_graph_alone():
    x, y = _data()
    inputs = keras.Input((5,))
    model = keras.Model(inputs, layers.Dense(3)(inputs))
    model.compile(optimizer="sgd", loss="mse")
    np.testing.assert_allclose(
        model.evaluate(x, y, verbose=0), np.mean((model.predict(x, verbose=0) - y) ** 2), rtol=1e-5
    )


def test_matches_keras_fit():
    keras_ = require_keras()
    x, y = _data(n=16)

    def build(k, r):
        inputs = k.Input((5,))
        h = k.layers.Dense(
            4, activation="tanh", kernel_regularizer=r.L1L2(0.01, 0.02), activity_regularizer=r.L2(0.05)
        )(inputs)
        return k.Model(inputs, k.layers.Dense(3, bias_regularizer=r.L2(0.1))(h))

    ours, theirs = build(keras, regularizers), build(keras_, keras_.regularizers)
    theirs.set_weights(ours.get_weights())
    for m, k in ((ours, keras), (theirs, keras_)):
        m.compile(optimizer=k.optimizers.SGD(0.1), loss="mse")
    np.testing.assert_allclose(ours.evaluate(x, y, verbose=0), theirs.evaluate(x, y, verbose=0), rtol=1e-5)
    h_ours = ours.fit(x, y, batch_size=4, epochs=2, shuffle=False, verbose=0).history["loss"]
    h_theirs = theirs.fit(x, y, batch_size=4, epochs=2, shuffle=False, verbose=0).history["loss"]
    np.testing.assert_allclose(h_ours, h_theirs, rtol=1e-4)
    for a, b in zip(ours.get_weights(), theirs.get_weights()):
        np.testing.assert_allclose(a, np.asarray(b), rtol=1e-4, atol=1e-6)


def test_activity_regularizers_inside_nested_models_count_like_keras():
    keras_ = require_keras()
    x, y = _data(n=8)

    def build(k, r):
        inner_in = k.Input((5,))
        h = k.layers.Dense(4, activation="relu", activity_regularizer=r.L1(0.1))(inner_in)
        inner = k.Model(inner_in, k.layers.ActivityRegularization(l2=0.2)(h))
        inputs = k.Input((5,))
        twice = k.layers.Add()([inner(inputs), inner(k.layers.Dense(5)(inputs))])
        return k.Model(inputs, k.layers.Dense(3)(twice))

    ours, theirs = build(keras, regularizers), build(keras_, keras_.regularizers)
    theirs.set_weights(ours.get_weights())
    for m, k in ((ours, keras), (theirs, keras_)):
        m.compile(optimizer=k.optimizers.SGD(0.05), loss="mse")
    np.testing.assert_allclose(ours.evaluate(x, y, verbose=0), theirs.evaluate(x, y, verbose=0), rtol=1e-5)
    h_ours = ours.fit(x, y, batch_size=4, epochs=2, shuffle=False, verbose=0).history["loss"]
    h_theirs = theirs.fit(x, y, batch_size=4, epochs=2, shuffle=False, verbose=0).history["loss"]
    np.testing.assert_allclose(h_ours, h_theirs, rtol=1e-4)


def test_activity_regularizers_inside_nested_models_closed_form():
    x, y = _data(n=6)
    inner_in = keras.Input((5,))
    dense = layers.Dense(4, activity_regularizer=regularizers.L2(0.3))
    inner = keras.Model(inner_in, dense(inner_in))
    inputs = keras.Input((5,))
    model = keras.Model(inputs, layers.Dense(3)(inner(inputs)))
    model.compile(optimizer="sgd", loss="mse")
    hidden = x @ dense.kernel.numpy() + dense.bias.numpy()
    want = np.mean((model.predict(x, verbose=0) - y) ** 2) + 0.3 * np.square(hidden).sum() / 6
    np.testing.assert_allclose(model.evaluate(x, y, batch_size=6, verbose=0), want, rtol=1e-5)
