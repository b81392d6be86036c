"""Keras parity for the recurrent layers: the same model built with Keras 3 and irtool, Keras'
weights copied with get_weights/set_weights, predictions compared (and irtool's ONNX export)."""

import os

import numpy as np
import pytest

os.environ.setdefault("KERAS_BACKEND", "torch")
real = pytest.importorskip("keras")
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

import irtool  # noqa: E402

from ..conftest import run_onnx  # noqa: E402

RNG = np.random.default_rng(9)
F = 3

CASES = {
    "simple_rnn": lambda L: L.SimpleRNN(4),
    "simple_rnn_relu_seq_state_back": lambda L: L.SimpleRNN(
        4, activation="relu", return_sequences=True, return_state=True, go_backwards=True
    ),
    "lstm": lambda L: L.LSTM(4),
    "lstm_seq_state": lambda L: L.LSTM(4, return_sequences=True, return_state=True),
    "lstm_back_no_bias": lambda L: L.LSTM(4, go_backwards=True, use_bias=False, return_sequences=True),
    "lstm_activations": lambda L: L.LSTM(3, activation="softsign", recurrent_activation="hard_sigmoid"),
    "gru": lambda L: L.GRU(4, return_sequences=True),
    "gru_reset_before_state": lambda L: L.GRU(4, reset_after=False, return_state=True),
    "gru_back_no_bias": lambda L: L.GRU(4, use_bias=False, go_backwards=True, return_state=True),
    "bi_lstm_concat": lambda L: L.Bidirectional(L.LSTM(3, return_sequences=True)),
    "bi_gru_sum_state": lambda L: L.Bidirectional(L.GRU(3, return_state=True), merge_mode="sum"),
    "bi_rnn_none": lambda L: L.Bidirectional(L.SimpleRNN(3, return_sequences=True), merge_mode=None),
    "bi_lstm_mul_state": lambda L: L.Bidirectional(
        L.LSTM(3, return_sequences=True, return_state=True), merge_mode="mul"
    ),
    "bi_gru_reset_before_ave": lambda L: L.Bidirectional(L.GRU(3, reset_after=False), merge_mode="ave"),
    "bi_backward_layer": lambda L: L.Bidirectional(
        L.LSTM(3, return_sequences=True), backward_layer=L.GRU(2, go_backwards=True, return_sequences=True)
    ),
}


def _both(builder, inputs):
    """Build ``builder(lib, x)`` in Keras and irtool on ``inputs(lib)``; copy Keras' weights."""
    real.backend.clear_session(free_memory=False)
    irtool.backend.clear_session()
    real.utils.set_random_seed(0)
    models = []
    for lib in (real, irtool):
        ins = inputs(lib)
        models.append(lib.Model(ins, builder(lib, ins)))
    theirs, ours = models
    assert [w.path for w in ours.weights] == [w.path for w in theirs.weights]
    assert [tuple(w.shape) for w in ours.weights] == [tuple(w.shape) for w in theirs.weights]
    ours.set_weights(theirs.get_weights())
    return theirs, ours


def _compare(theirs, ours, feeds, proto=None):
    """Keras vs irtool's NumPy executor (and ONNX Runtime on ``proto``, when given)."""
    want = theirs(feeds, training=False)
    got = ours.predict(feeds, verbose=0)
    want, got = (list(v) if isinstance(v, (list, tuple)) else [v] for v in (want, got))
    assert len(got) == len(want)
    onnx_got = run_onnx(proto, dict(zip([i.name for i in proto.graph.input], _listed(feeds)))) if proto else got
    for g, o, w in zip(got, onnx_got, want):
        w = real.ops.convert_to_numpy(w)
        np.testing.assert_allclose(g, w, atol=2e-5, rtol=1e-5)
        np.testing.assert_allclose(o, w, atol=1e-4, rtol=1e-4)


def _listed(feeds):
    return list(feeds) if isinstance(feeds, (list, tuple)) else [feeds]


@pytest.mark.parametrize("case", sorted(CASES))
def test_layer_matches_keras_at_several_lengths(case):
    theirs, ours = _both(lambda lib, x: CASES[case](lib.layers)(x), lambda lib: lib.Input((None, F)))
    proto = irtool.onnx.to_onnx(ours)
    for time, batch in ((2, 3), (5, 2), (8, 4)):
        _compare(theirs, ours, RNG.standard_normal((batch, time, F)).astype("float32"), proto)


@pytest.mark.parametrize(
    "case",
    [
        "lstm_seq_state",
        "gru",
        "simple_rnn_relu_seq_state_back",
        "bi_lstm_concat",
        "bi_gru_sum_state",
        "bi_rnn_none",
        "bi_backward_layer",
    ],
)
def test_embedding_masks_match_keras(case):
    def inputs(lib):
        return lib.Input((None,), dtype="int32")

    def builder(lib, tokens):
        return CASES[case](lib.layers)(lib.layers.Embedding(12, F, mask_zero=True)(tokens))

    theirs, ours = _both(builder, inputs)
    proto = irtool.onnx.to_onnx(ours)
    for time in (3, 6):
        ids = RNG.integers(1, 12, (4, time)).astype("int32")
        for row, length in enumerate((time, 1, time - 1, 2)):
            ids[row, length:] = 0  # right padding: exact in ONNX too
        _compare(theirs, ours, ids, proto)
        ids[0, 0] = ids[1, 1] = 0  # holes: Keras semantics are NumPy-only
        _compare(theirs, ours, ids)


@pytest.mark.parametrize("kind", ["LSTM", "GRU", "SimpleRNN"])
def test_initial_states_match_keras(kind):
    n = 2 if kind == "LSTM" else 1

    def inputs(lib):
        return [lib.Input((None, F))] + [lib.Input((3,)) for _ in range(2 * n)]

    def builder(lib, ins):
        x, states = ins[0], ins[1:]
        single = getattr(lib.layers, kind)(3, return_sequences=True)(x, initial_state=states[:n])
        bi = lib.layers.Bidirectional(getattr(lib.layers, kind)(3, return_state=True))(x, initial_state=states)
        return [single, *bi]

    theirs, ours = _both(builder, inputs)
    feeds = [RNG.standard_normal((2, 5, F)).astype("float32")] + [
        RNG.standard_normal((2, 3)).astype("float32") for _ in range(2 * n)
    ]
    _compare(theirs, ours, feeds, irtool.onnx.to_onnx(ours))


def test_configs_match_keras():
    for make in (CASES["lstm_seq_state"], CASES["gru_reset_before_state"], CASES["simple_rnn"]):
        theirs, ours = make(real.layers), make(irtool.layers)
        want, got = theirs.get_config(), ours.get_config()
        assert sorted(got) == sorted(want)
        for key in want:
            if key not in ("name", "kernel_initializer"):
                assert got[key] == want[key], key
    theirs = real.layers.Bidirectional(real.layers.GRU(2), merge_mode="sum").get_config()
    ours = irtool.layers.Bidirectional(irtool.layers.GRU(2), merge_mode="sum").get_config()
    assert sorted(ours) == sorted(theirs) and ours["merge_mode"] == "sum"
    assert sorted(ours["layer"]["config"]) == sorted(theirs["layer"]["config"])
