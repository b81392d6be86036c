"""Where the real Keras 3 is installed, build the same models in both and compare.

Keras runs on its torch or numpy backend (set KERAS_BACKEND before this module imports it).
Weights move with get_weights/set_weights, so this also checks that layouts match.
"""

import numpy as np
import pytest

import irtool

from .harness import require_keras

real = require_keras()
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

RNG = np.random.default_rng(5)
ACTIVATIONS = [
    "relu",
    "sigmoid",
    "tanh",
    "softmax",
    "gelu",
    "silu",
    "swish",
    "elu",
    "selu",
    "softplus",
    "softsign",
    "hard_sigmoid",
    "exponential",
    "linear",
    "leaky_relu",
]


def build_both(builder):
    """Run ``builder(lib)`` with Keras and with irtool; copy Keras' weights into irtool."""
    real.utils.set_random_seed(0)
    real.backend.clear_session()
    theirs = builder(real)
    irtool.backend.clear_session()
    ours = builder(irtool)
    ours.set_weights(theirs.get_weights())
    return theirs, ours


def compare(theirs, ours, feeds, atol=1e-5):
    want = theirs.predict(feeds, verbose=0)
    got = ours.predict(feeds, verbose=0)
    want = want if isinstance(want, list) else [want]
    got = got if isinstance(got, list) else [got]
    for w, g in zip(want, got):
        np.testing.assert_allclose(g, np.asarray(w), atol=atol, rtol=1e-5)
    assert [layer.name for layer in ours.layers] == [layer.name for layer in theirs.layers]
    assert ours.count_params() == theirs.count_params()
    assert [w.path for w in ours.weights] == [w.path for w in theirs.weights]


@pytest.mark.parametrize("activation", ACTIVATIONS)
def test_dense_activations_match_keras(activation):
    def builder(k):
        inputs = k.Input((6,))
        x = k.layers.Dense(8, activation=activation)(inputs)
        x = k.layers.Activation(activation)(x)
        return k.Model(inputs, k.layers.Dense(3)(x))

    theirs, ours = build_both(builder)
    compare(theirs, ours, RNG.standard_normal((5, 6)).astype("float32") * 0.5)


def test_mnist_model_and_summary_match_keras(monkeypatch):
    monkeypatch.setenv("COLUMNS", "200")  # rich crops Keras' table to the terminal otherwise

    def builder(k):
        inputs = k.Input(shape=(784,), name="img")
        x = k.layers.Dense(64, activation="relu")(inputs)
        x = k.layers.Dropout(0.2)(x)
        x = k.layers.Dense(64, activation="relu")(x)
        return k.Model(inputs, k.layers.Dense(10)(x), name="mnist_model")

    theirs, ours = build_both(builder)
    compare(theirs, ours, RNG.random((4, 784), dtype="float32"))
    lines_theirs, lines_ours = [], []
    theirs.summary(line_length=88, print_fn=lambda text, **_: lines_theirs.append(text))
    ours.summary(line_length=88, print_fn=lambda text, **_: lines_ours.append(text))
    assert "\n".join(lines_ours) == "\n".join(lines_theirs)


def test_merges_reshapes_and_multi_io_match_keras():
    def builder(k):
        a = k.Input((4, 3), name="a")
        b = k.Input((12,), name="b")
        flat = k.layers.Flatten()(a)
        both = k.layers.concatenate([flat, b])
        parts = [k.layers.Dense(5)(both) for _ in range(3)]
        merged = [
            k.layers.add(parts),
            k.layers.subtract(parts[:2]),
            k.layers.multiply(parts),
            k.layers.average(parts),
            k.layers.maximum(parts),
            k.layers.minimum(parts),
        ]
        x = k.layers.Concatenate()(merged)
        x = k.layers.Reshape((6, 5))(x)
        x = k.layers.Identity()(x)
        out1 = k.layers.Flatten()(x)
        out2 = k.layers.Dense(2, activation="softmax", name="head")(k.layers.Reshape((-1,))(x))
        return k.Model([a, b], [out1, out2])

    theirs, ours = build_both(builder)
    feeds = [RNG.standard_normal((3, 4, 3)).astype("float32"), RNG.standard_normal((3, 12)).astype("float32")]
    compare(theirs, ours, feeds)


def test_shared_and_nested_models_match_keras():
    def builder(k):
        inner_in = k.Input((4,))
        inner = k.Model(inner_in, k.layers.Dense(4, activation="tanh")(inner_in), name="inner")
        shared = k.layers.Dense(4, name="shared")
        x1, x2 = k.Input((4,), name="x1"), k.Input((4,), name="x2")
        y = k.layers.add([inner(shared(x1)), inner(shared(x2))])
        return k.Model([x1, x2], y)

    theirs, ours = build_both(builder)
    feeds = [RNG.standard_normal((3, 4)).astype("float32") for _ in range(2)]
    compare(theirs, ours, feeds)


def test_calling_a_model_with_training_true_trains_its_layers_as_keras_does():
    """``model(x, training=True)`` on arrays (custom loops, Monte-Carlo dropout): BatchNormalization
    normalizes with the batch's statistics and updates its moving ones, dropout drops. Before, irtool
    ran the inference graph and ignored the flag."""

    def builder(k):
        inputs = k.Input((6,))
        x = k.layers.Dense(8, name="dense")(inputs)
        return k.Model(inputs, k.layers.BatchNormalization(momentum=0.5, name="bn")(x))

    theirs, ours = build_both(builder)
    x = RNG.standard_normal((16, 6)).astype("float32") * 3 + 1
    for _ in range(2):  # the second call normalizes with the moving statistics the first one updated
        np.testing.assert_allclose(
            ours(x, training=True), real.ops.convert_to_numpy(theirs(x, training=True)), atol=1e-5
        )
        for a, b in zip(ours.get_weights(), theirs.get_weights()):
            np.testing.assert_allclose(a, real.ops.convert_to_numpy(b), atol=1e-5, rtol=1e-5)
    np.testing.assert_allclose(ours(x), real.ops.convert_to_numpy(theirs(x)), atol=1e-5)  # inference: the moving ones
    for lib in (irtool, real):
        dropout = lib.Sequential([lib.Input((200,)), lib.layers.Dropout(0.5)])
        dropped = real.ops.convert_to_numpy(dropout(np.ones((4, 200), "float32"), training=True))
        assert 0.4 < (dropped == 0).mean() < 0.6 and set(np.unique(dropped)) == {0.0, 2.0}, lib.__name__
        assert np.array_equal(real.ops.convert_to_numpy(dropout(np.ones((4, 200), "float32"))), np.ones((4, 200)))
