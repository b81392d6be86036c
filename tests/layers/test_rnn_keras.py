"""Keras parity for the recurrent layers: the same model built with Keras 3 and irtool, Keras'
weights copied with get_weights/set_weights, predictions compared (and irtool's ONNX export)."""

import numpy as np
import pytest

import irtool

from ..harness import flat_outputs, keras_outputs, keras_parity, require_keras, run_onnx

real = require_keras()
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

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


def _both(builder, inputs, feeds, *extra_feeds):
    """``keras_parity`` of ``builder(lib, x)`` on ``inputs(lib)`` (Keras' weights copied over)."""

    def build(lib):
        ins = inputs(lib)
        return lib.Model(ins, builder(lib, ins))

    ours, theirs = keras_parity(
        build, feeds, extra_inputs=extra_feeds, atol=2e-5, direct_call=True, weight_paths=True, weight_shapes=True
    )
    return theirs, ours


def _compare_onnx(theirs, ours, feeds, proto):
    """ONNX Runtime on ``proto`` against Keras (NumPy against Keras is ``keras_parity``'s)."""
    want = keras_outputs(theirs, feeds)
    got = run_onnx(proto, dict(zip([i.name for i in proto.graph.input], _listed(feeds))))
    assert len(got) == len(want) == len(flat_outputs(ours.predict(feeds, verbose=0)))
    for o, w in zip(got, want):
        np.testing.assert_allclose(o, w, atol=1e-4, rtol=1e-4)


def _listed(feeds):
    return list(feeds) if isinstance(feeds, (list, tuple)) else [feeds]


@pytest.mark.parametrize("case", sorted(CASES))
def test_layer_matches_keras_at_several_lengths(case):
    batches = [RNG.standard_normal((batch, time, F)).astype("float32") for time, batch in ((2, 3), (5, 2), (8, 4))]
    theirs, ours = _both(lambda lib, x: CASES[case](lib.layers)(x), lambda lib: lib.Input((None, F)), *batches)
    proto = irtool.onnx.to_onnx(ours)
    for x in batches:
        _compare_onnx(theirs, ours, x, proto)


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

    padded, holes = [], []
    for time in (3, 6):
        ids = RNG.integers(1, 12, (4, time)).astype("int32")
        for row, length in enumerate((time, 1, time - 1, 2)):
            ids[row, length:] = 0  # right padding: the export's native node
        padded.append(ids.copy())
        ids[0, 0] = ids[1, 1] = 0  # holes and left padding: the export's Scan branch
        holes.append(ids)
    theirs, ours = _both(builder, inputs, *padded, *holes)
    proto = irtool.onnx.to_onnx(ours)
    for ids in padded + holes:
        _compare_onnx(theirs, ours, ids, proto)


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

    feeds = [RNG.standard_normal((2, 5, F)).astype("float32")] + [
        RNG.standard_normal((2, 3)).astype("float32") for _ in range(2 * n)
    ]
    theirs, ours = _both(builder, inputs, feeds)
    _compare_onnx(theirs, ours, feeds, irtool.onnx.to_onnx(ours))


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
