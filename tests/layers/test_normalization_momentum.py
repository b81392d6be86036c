"""BatchNormalization's moving statistics follow ``moving = moving * momentum + batch * (1 - momentum)``
with an asymmetric momentum (0.5, the value other tests use, cannot tell the two factors apart),
eagerly and in fit, checked against the closed form and real Keras."""

from __future__ import annotations

import numpy as np

import irtool

from ..harness import get_keras

X = np.random.default_rng(0).normal(loc=1.0, scale=2.0, size=(16, 3)).astype("float32")


def test_eager_training_updates_with_momentum():
    bn = irtool.layers.BatchNormalization(momentum=0.9)
    bn(X, training=True)
    np.testing.assert_allclose(bn.moving_mean.numpy(), 0.1 * X.mean(0), rtol=1e-5)
    np.testing.assert_allclose(bn.moving_variance.numpy(), 0.9 + 0.1 * X.var(0), rtol=1e-5)
    keras = get_keras()
    if keras is not None:
        theirs = keras.layers.BatchNormalization(momentum=0.9)
        theirs(X, training=True)
        np.testing.assert_allclose(bn.moving_mean.numpy(), np.asarray(theirs.moving_mean), rtol=1e-5)
        np.testing.assert_allclose(bn.moving_variance.numpy(), np.asarray(theirs.moving_variance), rtol=1e-5)


def test_fit_updates_with_momentum():
    inputs = irtool.Input((3,))
    bn = irtool.layers.BatchNormalization(momentum=0.8)
    model = irtool.Model(inputs, bn(inputs))
    model.compile(optimizer=irtool.optimizers.SGD(0.0), loss="mse")
    model.fit(X, np.zeros_like(X), batch_size=16, epochs=1, verbose=0, shuffle=False)
    np.testing.assert_allclose(bn.moving_mean.numpy(), 0.2 * X.mean(0), rtol=1e-5)
    np.testing.assert_allclose(bn.moving_variance.numpy(), 0.8 + 0.2 * X.var(0), rtol=1e-5)
