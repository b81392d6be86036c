"""Training-mode behaviour: recurrent ``dropout`` / ``recurrent_dropout`` (Keras 3 masks, exact gradients, off
at inference) and nested models called with ``training=False``.

The reference below is written from Keras 3's cells (``keras/src/layers/rnn/{simple_rnn,lstm,gru}.py``,
"implementation 1" when ``recurrent_dropout`` is set): one input mask and one state mask per gate, drawn
once per call and shared by all time steps; only the products with the kernels see the masks (a GRU mixes
the unmasked previous state). With only ``dropout``, all gates share one input mask.
"""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

import irtool as keras
from irtool import layers
from irtool.ops import rnn as rnn_ops
from irtool.train.autodiff import GradientProgram

from ..conftest import assert_onnx_parity
from .test_vjp_norm_rnn import r, training_gradcheck


def _sig(v):
    return 1.0 / (1.0 + np.exp(-v))


def _reference(kind, x, kernel, recurrent, bias, in_masks, rec_masks, reset_after=True):
    """Last output of a forward pass over ``x (B, T, F)`` with the given masks (None: no dropout)."""
    batch, time, _ = x.shape
    units = recurrent.shape[0]
    gates = {"simple_rnn": 1, "lstm": 4, "gru": 3}[kind]
    blk = [slice(k * units, (k + 1) * units) for k in range(gates)]

    def in_m(k):
        return 1.0 if in_masks is None else in_masks[k if len(in_masks) > 1 else 0]

    def rec_m(k):
        return 1.0 if rec_masks is None else rec_masks[k]

    h = np.zeros((batch, units))
    c = np.zeros((batch, units))
    if kind == "gru" and reset_after:
        b_in, b_rec = bias[0], bias[1]
    else:
        b_in, b_rec = bias, np.zeros(gates * units)
    for t in range(time):
        xt = x[:, t]
        xs = [(xt * in_m(k)) @ kernel[:, blk[k]] + b_in[blk[k]] for k in range(gates)]
        if kind == "simple_rnn":
            h = np.tanh(xs[0] + (h * rec_m(0)) @ recurrent)
        elif kind == "lstm":
            i, f, g, o = (xs[k] + (h * rec_m(k)) @ recurrent[:, blk[k]] for k in range(4))
            c = _sig(f) * c + _sig(i) * np.tanh(g)
            h = _sig(o) * np.tanh(c)
        else:
            hz, hr, hh = (h * rec_m(k) for k in range(3))
            z = _sig(xs[0] + hz @ recurrent[:, blk[0]] + b_rec[blk[0]])
            rr = _sig(xs[1] + hr @ recurrent[:, blk[1]] + b_rec[blk[1]])
            if reset_after:
                cand = rr * (hh @ recurrent[:, blk[2]] + b_rec[blk[2]])
            else:
                cand = (rr * hh) @ recurrent[:, blk[2]]
            h = z * h + (1 - z) * np.tanh(xs[2] + cand)
    return h


@pytest.mark.parametrize(
    "kind, reset_after, dropout, recurrent_dropout",
    [
        ("simple_rnn", False, 0.3, 0.4),
        ("lstm", False, 0.3, 0.0),
        ("lstm", False, 0.3, 0.4),
        ("lstm", False, 0.0, 0.4),
        ("gru", True, 0.3, 0.4),
        ("gru", False, 0.3, 0.4),
        ("gru", True, 0.5, 0.0),
    ],
)
def test_training_forward_matches_keras_cell_with_the_same_masks(kind, reset_after, dropout, recurrent_dropout):
    rng = np.random.default_rng(0)
    batch, time, features, units = 3, 4, 5, 2
    gates = {"simple_rnn": 1, "lstm": 4, "gru": 3}[kind]
    x = rng.standard_normal((batch, time, features))
    kernel = rng.standard_normal((features, gates * units)) * 0.5
    recurrent = rng.standard_normal((units, gates * units)) * 0.5
    bias = rng.standard_normal((2, gates * units) if kind == "gru" and reset_after else (gates * units,)) * 0.3
    attrs = dict(units=units, dropout=dropout, recurrent_dropout=recurrent_dropout, reset_after=reset_after)
    if kind == "simple_rnn":
        attrs["recurrent_activation"] = None
    prim = rnn_ops.recurrent_primitive(kind)
    out, _ = prim.training_kernel(attrs, np.random.default_rng(11))(x, kernel, recurrent, bias)
    config = SimpleNamespace(**{**rnn_ops._DEFAULTS, **attrs})
    in_masks, rec_masks = rnn_ops._dropout_masks(kind, x, config, np.random.default_rng(11))
    if dropout:
        assert in_masks.shape == ((gates if recurrent_dropout else 1), batch, features)
        assert set(np.unique(in_masks)) <= {0.0, 1 / (1 - dropout)}
    if recurrent_dropout:
        assert rec_masks.shape == (gates, batch, units)
    want = _reference(kind, x, kernel, recurrent, bias, in_masks, rec_masks, reset_after)
    np.testing.assert_allclose(out, want, rtol=1e-10, atol=1e-12)
    plain = prim.forward(x, kernel, recurrent, bias, **attrs)  # inference: no masks
    np.testing.assert_allclose(plain, _reference(kind, x, kernel, recurrent, bias, None, None, reset_after))
    assert not np.allclose(out, plain)


@pytest.mark.parametrize(
    "make",
    [
        lambda: layers.SimpleRNN(3, dropout=0.3, recurrent_dropout=0.4, return_sequences=True, dtype="float64"),
        lambda: layers.LSTM(3, dropout=0.3, dtype="float64"),
        lambda: layers.LSTM(3, dropout=0.3, recurrent_dropout=0.4, return_sequences=True, dtype="float64"),
        lambda: layers.GRU(2, dropout=0.2, recurrent_dropout=0.5, dtype="float64"),
        lambda: layers.GRU(2, recurrent_dropout=0.5, reset_after=False, dtype="float64"),
        lambda: layers.Bidirectional(
            layers.GRU(2, dropout=0.3, recurrent_dropout=0.3, dtype="float64"), dtype="float64"
        ),
    ],
)
def test_dropout_training_gradients(make):
    inputs = keras.Input((4, 3), dtype="float64")
    layer = make()
    model = keras.Model(inputs, layer(inputs))
    x = r(3, 4, 3)
    training_gradcheck(model, [x], weights=model.trainable_weights, seed=5)
    (y,), _ = GradientProgram(model.graph, [], training=True, rng=np.random.default_rng(5)).run([x])
    assert not np.allclose(y, model.predict(x, verbose=0))  # dropout acts when training
    np.testing.assert_allclose(model(x), model.predict(x, verbose=0))  # and not at inference


def test_masked_sequences_with_dropout_gradients():
    inputs = keras.Input((5,), dtype="int64")
    x = layers.Embedding(7, 3, mask_zero=True, dtype="float64")(inputs)
    x = layers.LSTM(2, dropout=0.2, recurrent_dropout=0.3, dtype="float64")(x)
    model = keras.Model(inputs, x)
    tokens = np.array([[1, 2, 3, 0, 0], [4, 5, 6, 1, 0]])
    training_gradcheck(model, [tokens], weights=model.trainable_weights, seed=2)


def test_training_false_and_eager_training_true():
    inputs = keras.Input((4, 3))
    layer = layers.LSTM(3, dropout=0.5, recurrent_dropout=0.5)
    frozen = keras.Model(inputs, layer(inputs, training=False))
    x = r(2, 4, 3).astype("float32")
    (y,), _ = GradientProgram(frozen.graph, [], training=True).run([x])
    np.testing.assert_allclose(y, frozen.predict(x, verbose=0), rtol=1e-6)
    keras.utils.set_random_seed(1)
    noisy = layer(x, training=True)
    assert not np.allclose(noisy, layer(x))
    np.testing.assert_allclose(layer(x, training=False), layer(x))


def test_fit_with_recurrent_dropout_reduces_the_loss_and_exports():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((64, 6, 2)).astype("float32")
    y = (x[:, :, 0].sum(axis=1, keepdims=True) > 0).astype("float32")
    inputs = keras.Input((6, 2))
    h = layers.GRU(8, dropout=0.1, recurrent_dropout=0.2)(inputs)
    model = keras.Model(inputs, layers.Dense(1, activation="sigmoid")(h))
    model.compile(optimizer=keras.optimizers.Adam(0.02), loss="binary_crossentropy")
    history = model.fit(x, y, epochs=8, batch_size=16, verbose=0)
    assert history.history["loss"][-1] < history.history["loss"][0] * 0.8
    assert np.isfinite(model.evaluate(x, y, verbose=0))
    assert_onnx_parity(model, x[:5])  # the trained model exports; dropout leaves nothing behind


# -- a nested model called with training=False (Keras' transfer-learning pattern) ---------------------


@pytest.mark.parametrize("sequential", [False, True])
def test_nested_model_called_with_training_false_stays_in_inference_mode(sequential):
    if sequential:
        base = keras.Sequential(
            [
                keras.Input((6,)),
                layers.Dense(5),
                layers.BatchNormalization(),
                layers.Dropout(0.5),
                layers.GaussianNoise(1.0),
            ]
        )
    else:
        inner_in = keras.Input((6,))
        h = layers.BatchNormalization()(layers.Dense(5)(inner_in))
        base = keras.Model(inner_in, layers.GaussianNoise(1.0)(layers.Dropout(0.5)(h)))
    bn = next(layer for layer in base.layers if isinstance(layer, layers.BatchNormalization))
    inputs = keras.Input((6,))
    frozen = keras.Model(inputs, layers.Dense(1)(base(inputs, training=False)))
    free = keras.Model(inputs, layers.Dense(1)(base(inputs)))
    x = np.random.default_rng(0).standard_normal((16, 6)).astype("float32")
    moving = [w.numpy().copy() for w in bn.non_trainable_weights]
    (y,), _ = GradientProgram(frozen.graph, [], training=True).run([x])
    np.testing.assert_allclose(y, frozen.predict(x, verbose=0), rtol=1e-5, atol=1e-6)
    for w, before in zip(bn.non_trainable_weights, moving):
        np.testing.assert_array_equal(w.numpy(), before)  # no moving-statistics update
    (y_free,), _ = GradientProgram(free.graph, [], training=True).run([x])
    assert not np.allclose(y_free, free.predict(x, verbose=0))  # the plain call trains as usual
    assert any(not np.array_equal(w.numpy(), b) for w, b in zip(bn.non_trainable_weights, moving))
    frozen.compile(optimizer="sgd", loss="mse")
    frozen.fit(x, x[:, :1], epochs=1, verbose=0)
    assert_onnx_parity(frozen, x[:3])


def test_dropout_called_with_training_true_stays_active_at_inference():
    keras.utils.set_random_seed(0)  # the masks must not depend on what earlier tests drew
    inputs = keras.Input((200,))
    model = keras.Model(inputs, layers.Dropout(0.5)(inputs, training=True))
    x = np.ones((4, 200), "float32")
    a, b = model.predict(x, verbose=0), model.predict(x, verbose=0)
    assert set(np.unique(a)) == {0.0, 2.0} and not np.array_equal(a, b)
    assert abs((a == 0).mean() - 0.5) < 0.09  # 800 draws: 5 standard deviations
    (y,), _ = GradientProgram(model.graph, [], training=True).run([x])
    assert set(np.unique(y)) == {0.0, 2.0}
    # Nested under an outer training=False, the explicit training=True still wins (as in Keras).
    outer_in = keras.Input((200,))
    outer = keras.Model(outer_in, model(outer_in, training=False))
    assert (outer.predict(x, verbose=0) == 0).any()
    # Exported as an ONNX Dropout in training mode: ONNX Runtime drops too.
    import irtool.onnx

    from ..conftest import run_onnx

    proto = irtool.onnx.to_onnx(model)
    assert [n.op_type for n in proto.graph.node] == ["Dropout"]
    (got,) = run_onnx(proto, {proto.graph.input[0].name: x})
    assert set(np.unique(got)) == {0.0, 2.0} and abs((got == 0).mean() - 0.5) < 0.09


def test_training_true_dropout_trains():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((32, 6)).astype("float32")
    inputs = keras.Input((6,))
    h = layers.Dropout(0.3)(layers.Dense(8, activation="relu")(inputs), training=True)
    model = keras.Model(inputs, layers.Dense(1)(h))
    model.compile(optimizer="adam", loss="mse")
    history = model.fit(x, x[:, :1], epochs=5, verbose=0)
    assert np.all(np.isfinite(history.history["loss"]))
    training_gradcheck(keras.Model(inputs, h), [x[:3].astype("float64")], seed=1, atol=1e-4, rtol=1e-3)


def test_keras_transfer_learning_recipe():
    """Keras' guide: freeze a base, call it with training=False, train a head, then unfreeze and
    fine-tune; the base's BatchNormalization stays in inference mode throughout."""
    rng = np.random.default_rng(0)
    x = rng.random((32, 8, 8, 3), dtype="float32")
    y = rng.integers(0, 2, (32, 1)).astype("float32")
    base_in = keras.Input((8, 8, 3))
    h = layers.BatchNormalization()(layers.Conv2D(4, 3, activation="relu")(base_in))
    base = keras.Model(base_in, layers.GlobalAveragePooling2D()(h), name="base")
    base.trainable = False
    inputs = keras.Input((8, 8, 3))
    outputs = layers.Dense(1)(layers.Dropout(0.2)(base(inputs, training=False)))
    model = keras.Model(inputs, outputs)
    model.compile(optimizer=keras.optimizers.Adam(), loss=keras.losses.BinaryCrossentropy(from_logits=True))
    assert len(model.trainable_weights) == 2
    before = [w.copy() for w in base.get_weights()]
    model.fit(x, y, epochs=2, verbose=0)
    assert all(np.array_equal(a, b) for a, b in zip(before, base.get_weights()))
    base.trainable = True
    model.compile(optimizer=keras.optimizers.Adam(1e-3), loss=keras.losses.BinaryCrossentropy(from_logits=True))
    model.fit(x, y, epochs=1, verbose=0)
    after = base.get_weights()
    assert not np.array_equal(before[0], after[0])  # the conv kernel fine-tunes
    np.testing.assert_array_equal(before[-2], after[-2])  # moving mean: still inference mode
    np.testing.assert_array_equal(before[-1], after[-1])  # moving variance


def test_seeded_dropout_draws_a_new_reproducible_mask_per_call():
    x = np.ones((4, 50), "float32")
    layer = layers.Dropout(0.5, seed=7)
    first, second = layer(x, training=True), layer(x, training=True)
    assert not np.array_equal(first, second)  # the layer's stream advances, as Keras' SeedGenerator
    again = layers.Dropout(0.5, seed=7)
    np.testing.assert_array_equal(again(x, training=True), first)  # and the seed reproduces it
    inputs = keras.Input((50,))
    model = keras.Model(inputs, layers.Dropout(0.5, seed=3)(inputs, training=True))
    assert not np.array_equal(model.predict(x, verbose=0), model.predict(x, verbose=0))


def test_spatial_dropout_called_with_training_true_stays_active():
    inputs = keras.Input((6, 6, 40))
    model = keras.Model(inputs, layers.SpatialDropout2D(0.5)(inputs, training=True))
    y = model.predict(np.ones((2, 6, 6, 40), "float32"), verbose=0)
    per_channel = y.reshape(2, 36, 40)
    assert (per_channel == per_channel[:, :1]).all()  # whole channels are dropped or kept
    assert set(np.unique(y)) == {0.0, 2.0}
