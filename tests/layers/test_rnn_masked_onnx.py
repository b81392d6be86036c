"""Masked recurrence in ONNX, exact for any mask: the export picks the native RNN/GRU/LSTM node
when every row's mask is a prefix (right padding) and a Scan that carries masked steps over
otherwise (left padding, holes, all-masked rows with initial states). Each case compares ONNX
Runtime with the NumPy executor on every mask pattern, and with Keras where it is installed."""

import numpy as np
import onnx
import pytest

import irtool
import irtool as keras
from irtool import layers, ops

from ..harness import get_keras, keras_outputs, keras_parity, run_onnx

RNG = np.random.default_rng(12)
F = 3

MASKS = {
    "right_padded": [[1, 1, 1, 0, 0], [1, 1, 1, 1, 1], [1, 0, 0, 0, 0], [1, 1, 0, 0, 0]],
    "left_padded": [[0, 0, 1, 1, 1], [1, 1, 1, 1, 1], [0, 0, 0, 0, 1], [0, 1, 1, 1, 1]],
    "holes": [[1, 0, 1, 0, 1], [0, 1, 1, 0, 1], [1, 1, 0, 1, 1], [1, 1, 1, 1, 0]],
    "all_masked_rows": [[0, 0, 0, 0, 0], [1, 1, 0, 0, 0], [0, 0, 0, 0, 0], [1, 0, 1, 1, 0]],
    "all_masked_right_padded": [[0, 0, 0, 0, 0], [1, 1, 1, 0, 0], [1, 1, 1, 1, 1], [0, 0, 0, 0, 0]],
    "unmasked": [[1] * 5] * 4,
    "length_1": [[1], [0], [1], [0]],
    "length_2_left": [[0, 1], [1, 1], [0, 0], [1, 0]],
}

CASES = {
    "simple_rnn_seq": lambda L: L.SimpleRNN(4, return_sequences=True),
    "simple_rnn_back_state_relu": lambda L: L.SimpleRNN(3, activation="relu", go_backwards=True, return_state=True),
    "simple_rnn_back_seq": lambda L: L.SimpleRNN(3, go_backwards=True, return_sequences=True),
    "lstm_last": lambda L: L.LSTM(3),
    "lstm_seq_state": lambda L: L.LSTM(4, return_sequences=True, return_state=True),
    "lstm_back_seq": lambda L: L.LSTM(3, go_backwards=True, return_sequences=True),
    "lstm_no_bias_activations": lambda L: L.LSTM(
        3, use_bias=False, activation="softsign", recurrent_activation="hard_sigmoid", return_sequences=True
    ),
    "gru_reset_after_seq_state": lambda L: L.GRU(4, return_sequences=True, return_state=True),
    "gru_reset_before_back_seq": lambda L: L.GRU(3, reset_after=False, go_backwards=True, return_sequences=True),
    "gru_reset_before_state": lambda L: L.GRU(3, reset_after=False, return_state=True),
    "gru_back_no_bias_state": lambda L: L.GRU(3, use_bias=False, go_backwards=True, return_state=True),
    "bi_lstm_concat_seq": lambda L: L.Bidirectional(L.LSTM(3, return_sequences=True)),
    "bi_gru_sum_state": lambda L: L.Bidirectional(L.GRU(3, return_state=True), merge_mode="sum"),
    "bi_rnn_none_seq": lambda L: L.Bidirectional(L.SimpleRNN(3, return_sequences=True), merge_mode=None),
    "bi_lstm_mul_seq_state": lambda L: L.Bidirectional(
        L.LSTM(3, return_sequences=True, return_state=True), merge_mode="mul"
    ),
    "bi_gru_reset_before_ave": lambda L: L.Bidirectional(L.GRU(3, reset_after=False), merge_mode="ave"),
    "bi_backward_layer_seq": lambda L: L.Bidirectional(
        L.LSTM(3, return_sequences=True), backward_layer=L.GRU(3, go_backwards=True, return_sequences=True)
    ),
}


def _feeds(mask, batch_repeat=1):
    mask = np.tile(np.asarray(mask, bool), (batch_repeat, 1))
    x = RNG.standard_normal((*mask.shape, F)).astype("float32")
    return x, mask


def _explicit_mask_model(lib, case):
    x = lib.Input((None, F))
    m = lib.Input((None,), dtype="bool")
    return lib.Model([x, m], CASES[case](lib.layers)(x, mask=m))


def _check_onnx(model, proto, feeds, atol=1e-5, direct=False):
    got = run_onnx(proto, {i.name: v for i, v in zip(proto.graph.input, feeds)})
    if direct:  # a direct call: inputs of different batch sizes (weights as inputs)
        want = [np.asarray(w) for w in model(list(feeds))]
    else:
        want = model.predict(list(feeds) if len(feeds) > 1 else feeds[0], verbose=0)
    want = list(want) if isinstance(want, (list, tuple)) else [want]
    assert len(got) == len(want)
    for g, w in zip(got, want):
        assert g.shape == w.shape
        np.testing.assert_allclose(g, w, atol=atol, rtol=1e-5)


@pytest.mark.parametrize("case", sorted(CASES))
def test_every_mask_pattern_matches_numpy(case):
    model = _explicit_mask_model(keras, case)
    proto = irtool.onnx.to_onnx(model)
    onnx.checker.check_model(proto, full_check=True)
    assert "If" in [n.op_type for n in proto.graph.node]
    for mask in MASKS.values():
        for repeat in (1, 2):  # variable batch and time sizes through one graph
            _check_onnx(model, proto, _feeds(mask, repeat))


def test_the_native_node_runs_for_right_padding_and_the_scan_otherwise():
    model = _explicit_mask_model(keras, "lstm_seq_state")
    proto = irtool.onnx.to_onnx(model)
    (if_node,) = [n for n in proto.graph.node if n.op_type == "If"]
    branches = {a.name: a.g for a in if_node.attribute}
    assert [n.op_type for n in branches["then_branch"].node].count("LSTM") == 1
    assert [n.op_type for n in branches["else_branch"].node].count("Scan") == 1
    assert "LSTM" not in [n.op_type for n in branches["else_branch"].node]
    # No mask: the native node alone, no If.
    x = keras.Input((None, F))
    plain = irtool.onnx.to_onnx(keras.Model(x, layers.LSTM(3)(x)))
    assert [n.op_type for n in plain.graph.node].count("LSTM") == 1
    assert "If" not in [n.op_type for n in plain.graph.node]


@pytest.mark.parametrize("kind", ["lstm", "gru", "simple_rnn"])
def test_initial_states_and_all_masked_rows(kind):
    """An all-masked row keeps the given initial states (Keras); the native node would zero them,
    so a right-padded mask with such a row takes the Scan."""
    n = 2 if kind == "lstm" else 1
    cls = {"lstm": layers.LSTM, "gru": layers.GRU, "simple_rnn": layers.SimpleRNN}[kind]
    x = keras.Input((None, F))
    m = keras.Input((None,), dtype="bool")
    states = [keras.Input((3,)) for _ in range(2 * n)]
    single = cls(3, return_sequences=True, return_state=True)(x, mask=m, initial_state=states[:n])
    bi = layers.Bidirectional(cls(3, return_state=True))(x, mask=m, initial_state=states)
    model = keras.Model([x, m, *states], [*single, *bi])
    proto = irtool.onnx.to_onnx(model)
    onnx.checker.check_model(proto, full_check=True)
    for name in ("right_padded", "all_masked_right_padded", "all_masked_rows", "holes", "length_1"):
        xv, mv = _feeds(MASKS[name])
        init = [RNG.standard_normal((len(mv), 3)).astype("float32") for _ in range(2 * n)]
        _check_onnx(model, proto, [xv, mv, *init])


def test_embedding_masks_with_holes_and_stacked_layers():
    tokens = keras.Input((None,), dtype="int32")
    h = layers.Embedding(10, F, mask_zero=True)(tokens)
    h = layers.Bidirectional(layers.GRU(3, return_sequences=True, reset_after=False))(h)
    h = layers.LSTM(3, return_sequences=True, go_backwards=True)(h)
    out = layers.SimpleRNN(2)(h)
    model = keras.Model(tokens, out)
    proto = irtool.onnx.to_onnx(model)
    onnx.checker.check_model(proto, full_check=True)
    for mask in MASKS.values():
        ids = RNG.integers(1, 10, np.shape(mask)).astype("int32") * np.asarray(mask, "int32")
        _check_onnx(model, proto, [ids])


def test_ops_level_masks_and_opset_13():
    rng = np.random.default_rng(3)
    x = keras.Input((None, F))
    m = keras.Input((None,), dtype="bool")
    kernel, recurrent = rng.standard_normal((F, 12)).astype("float32"), rng.standard_normal((3, 12)).astype("float32")
    bias = rng.standard_normal((12,)).astype("float32")
    out = ops.lstm(x, kernel, recurrent, bias, mask=m, return_sequences=True, go_backwards=True)
    model = keras.Model([x, m], out)
    for opset in (13, 21):
        proto = irtool.onnx.to_onnx(model, opset=opset)
        onnx.checker.check_model(proto, full_check=True)
        for name in ("holes", "left_padded", "right_padded"):
            _check_onnx(model, proto, _feeds(MASKS[name]))


def test_float64_masked_scan():
    x = keras.Input((None, F), dtype="float64")
    m = keras.Input((None,), dtype="bool")
    model = keras.Model([x, m], layers.GRU(3, return_sequences=True, dtype="float64")(x, mask=m))
    proto = irtool.onnx.to_onnx(model)
    xv, mv = _feeds(MASKS["holes"])
    _check_onnx(model, proto, [xv.astype("float64"), mv], atol=1e-10)


# -- against Keras ---------------------------------------------------------------------------------

KERAS_CASES = [
    "simple_rnn_back_state_relu",
    "lstm_seq_state",
    "lstm_back_seq",
    "gru_reset_after_seq_state",
    "gru_reset_before_back_seq",
    "bi_lstm_concat_seq",
    "bi_gru_sum_state",
    "bi_rnn_none_seq",
    "bi_gru_reset_before_ave",
    "bi_backward_layer_seq",
]


def _token_batches():
    batches = []
    for name in ("left_padded", "holes", "all_masked_rows", "length_1", "right_padded"):
        mask = np.asarray(MASKS[name], "int32")
        batches.append(RNG.integers(1, 12, mask.shape).astype("int32") * mask)
    return batches


@pytest.mark.skipif(get_keras() is None, reason="keras is not installed")
@pytest.mark.parametrize("case", KERAS_CASES)
def test_embedding_masks_match_keras_in_onnx(case):
    def build(lib):
        tokens = lib.Input((None,), dtype="int32")
        return lib.Model(tokens, CASES[case](lib.layers)(lib.layers.Embedding(12, F, mask_zero=True)(tokens)))

    first, *rest = _token_batches()
    ours, theirs = keras_parity(build, first, extra_inputs=rest, atol=2e-5, direct_call=True, seed=None)
    proto = irtool.onnx.to_onnx(ours)
    for ids in [first, *rest]:
        got = run_onnx(proto, {proto.graph.input[0].name: ids})
        want = keras_outputs(theirs, ids)
        assert len(got) == len(want)
        for g, w in zip(got, want):
            np.testing.assert_allclose(g, w, atol=2e-5, rtol=1e-5)


@pytest.mark.skipif(get_keras() is None, reason="keras is not installed")
@pytest.mark.parametrize("case", ["lstm_seq_state", "gru_back_no_bias_state", "bi_lstm_mul_seq_state"])
def test_explicit_masks_match_keras_in_onnx(case):
    batches = [list(_feeds(MASKS[name])) for name in ("holes", "left_padded", "all_masked_rows")]
    ours, theirs = keras_parity(
        lambda lib: _explicit_mask_model(lib, case),
        batches[0],
        extra_inputs=batches[1:],
        atol=2e-5,
        direct_call=True,
        seed=None,
    )
    proto = irtool.onnx.to_onnx(ours)
    for feeds in batches:
        got = run_onnx(proto, {i.name: v for i, v in zip(proto.graph.input, feeds)})
        for g, w in zip(got, keras_outputs(theirs, feeds)):
            np.testing.assert_allclose(g, w, atol=2e-5, rtol=1e-5)


@pytest.mark.parametrize("reset_after", [True, False])
def test_weights_computed_in_the_graph_with_holes(reset_after):
    """Weights that are graph inputs (not initializers) are split with nodes for the Scan."""
    rng = np.random.default_rng(5)
    shapes = [(F, 9), (3, 9), (2, 9) if reset_after else (9,)]
    weights = [rng.standard_normal(s).astype("float32") for s in shapes]
    x = keras.Input((None, F))
    m = keras.Input((None,), dtype="bool")
    ws = [keras.Input(batch_shape=w.shape) for w in weights]
    out = ops.gru(x, *ws, mask=m, reset_after=reset_after, return_sequences=True, return_state=True)
    model = keras.Model([x, m, *ws], out)
    proto = irtool.onnx.to_onnx(model)
    onnx.checker.check_model(proto, full_check=True)
    for name in ("holes", "right_padded", "all_masked_rows"):
        _check_onnx(model, proto, [*_feeds(MASKS[name]), *weights], direct=True)
