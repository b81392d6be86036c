"""The fused recurrent primitives: NumPy vs an independent reference, ONNX Runtime vs both, at
several sequence lengths and batch sizes through one exported model with a dynamic time axis."""

import numpy as np
import onnx
import pytest

import irtool as keras
from irtool import ops
from irtool.onnx.export import ExportError
from irtool.ops import rnn

from ..conftest import assert_onnx_parity, run_onnx
from ..harness import all_nodes
from . import _rnn_reference as ref

F, H = 3, 4
# (time, batch) pairs run through one model: the time axis and the batch are dynamic.
SIZES = ((2, 3), (5, 4), (7, 2))
ONNX_OP = {"simple_rnn": "RNN", "lstm": "LSTM", "gru": "GRU"}


def _inputs(kind, with_init, masked, directions=1):
    x = keras.Input((None, F))
    init = [keras.Input((H,)) for _ in range(ref.N_STATES[kind] * directions)] if with_init else None
    mask = keras.Input((None,), dtype="bool") if masked else None
    return x, init, mask, [x] + (init or []) + ([mask] if masked else [])


def _feeds(rng, kind, time, batch, with_init, masked, directions=1):
    x = rng.standard_normal((batch, time, F)).astype("float32")
    init = [rng.standard_normal((batch, H)).astype("float32") for _ in range(ref.N_STATES[kind] * directions)]
    mask = ref.right_padded_mask(batch, time, rng)
    return x, (init if with_init else None), (mask if masked else None)


def _check(model, rng, kind, reference, with_init, masked, directions=1, one_node=True):
    """Export once, then compare NumPy and ORT with ``reference(x, init, mask)`` at every size."""
    proto = keras.onnx.to_onnx(model)
    onnx.checker.check_model(proto, full_check=True)
    if one_node:
        assert [n.op_type for n in all_nodes(proto)].count(ONNX_OP[kind]) == 1
    time_dim = proto.graph.input[0].type.tensor_type.shape.dim[1]
    assert time_dim.dim_param and not time_dim.HasField("dim_value")
    for time, batch in SIZES:
        x, init, mask = _feeds(rng, kind, time, batch, with_init, masked, directions)
        feeds = [x] + (init or []) + ([mask] if mask is not None else [])
        want = reference(x, init, mask)
        got = model.predict(feeds if len(feeds) > 1 else x, verbose=0)
        got = got if isinstance(got, list) else [got]
        onnx_got = run_onnx(proto, {i.name: f for i, f in zip(proto.graph.input, feeds)})
        assert len(got) == len(want) == len(onnx_got)
        for g, o, w in zip(got, onnx_got, want):
            assert g.shape == w.shape and g.dtype == np.float32
            np.testing.assert_allclose(g, w, atol=2e-5, rtol=1e-5)
            np.testing.assert_allclose(o, w, atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("kind", ["simple_rnn", "lstm", "gru"])
@pytest.mark.parametrize("return_sequences", [False, True])
@pytest.mark.parametrize("go_backwards", [False, True])
def test_single_direction_matches_reference_and_onnx(kind, return_sequences, go_backwards):
    rng = np.random.default_rng(7)
    for with_init, masked, use_bias in [(False, False, True), (True, True, True), (False, True, False)]:
        weights = ref.random_weights(rng, kind, F, H, use_bias)
        x, init, mask, inputs = _inputs(kind, with_init, masked)
        out = rnn.recurrent(
            kind,
            x,
            *weights,
            initial_state=init,
            mask=mask,
            reset_after=True,
            return_sequences=return_sequences,
            go_backwards=go_backwards,
            return_state=True,
        )
        model = keras.Model(inputs, out)

        def reference(xv, iv, mv, weights=weights):
            return ref.layer(kind, xv, weights, iv, mv, return_sequences, go_backwards)

        _check(model, rng, kind, reference, with_init, masked)


@pytest.mark.parametrize("kind", ["simple_rnn", "lstm", "gru"])
@pytest.mark.parametrize("merge_mode", ["concat", "sum", "mul", "ave", None])
def test_bidirectional_is_one_node_and_matches_reference(kind, merge_mode):
    rng = np.random.default_rng(11)
    for return_sequences, with_init, masked in [(True, False, False), (False, True, True), (True, True, True)]:
        forward, backward = ref.random_weights(rng, kind, F, H), ref.random_weights(rng, kind, F, H)
        x, init, mask, inputs = _inputs(kind, with_init, masked, directions=2)
        out = rnn.recurrent(
            kind,
            x,
            *forward,
            initial_state=init,
            mask=mask,
            reset_after=True,
            backward=backward,
            merge_mode=merge_mode,
            return_sequences=return_sequences,
            return_state=True,
        )
        model = keras.Model(inputs, out)

        def reference(xv, iv, mv, forward=forward, backward=backward, return_sequences=return_sequences):
            return ref.bidirectional(kind, xv, forward, backward, iv, mv, return_sequences, merge_mode)

        _check(model, rng, kind, reference, with_init, masked, directions=2)


def test_gru_reset_before_and_without_bias():
    rng = np.random.default_rng(2)
    for use_bias in (True, False):
        weights = ref.random_weights(rng, "gru", F, H, use_bias, reset_after=False)
        x, _, mask, inputs = _inputs("gru", False, True)
        model = keras.Model(inputs, ops.gru(x, *weights, mask=mask, reset_after=False, return_sequences=True))

        def reference(xv, iv, mv, weights=weights):
            return ref.layer("gru", xv, weights, None, mv, True, reset_after=False)[:1]

        _check(model, rng, "gru", reference, False, True)


ONNX_ACTIVATIONS = ["tanh", "sigmoid", "relu", "linear", "hard_sigmoid", "softsign", "softplus", "elu", "leaky_relu"]


@pytest.mark.parametrize("activation", ONNX_ACTIVATIONS)
def test_activations_lower_with_their_parameters(activation):
    rng = np.random.default_rng(5)
    recurrent_activation = "hard_sigmoid" if activation == "tanh" else "sigmoid"
    for kind in ("simple_rnn", "lstm", "gru"):
        weights = ref.random_weights(rng, kind, F, H, scale=0.3)
        x, _, _, inputs = _inputs(kind, False, False)
        out = rnn.recurrent(
            kind,
            x,
            *weights,
            activation=activation,
            recurrent_activation=recurrent_activation,
            reset_after=True,
            return_sequences=True,
        )
        model = keras.Model(inputs, out)
        cell = {"act": activation, "rec_act": recurrent_activation} if kind != "simple_rnn" else {"act": activation}

        def reference(xv, iv, mv, weights=weights, kind=kind, cell=cell):
            return ref.layer(kind, xv, weights, return_sequences=True, **cell)[:1]

        _check(model, rng, kind, reference, False, False)


def test_unsupported_activation_runs_in_numpy_and_fails_to_lower_clearly():
    rng = np.random.default_rng(0)
    weights = ref.random_weights(rng, "lstm", F, H)
    x = keras.Input((None, F))
    model = keras.Model(x, ops.lstm(x, *weights, activation="selu"))
    assert model.predict(rng.standard_normal((2, 3, F)).astype("float32"), verbose=0).shape == (2, H)
    with pytest.raises(ExportError, match="activation 'selu' is not one ONNX's LSTM supports"):
        keras.onnx.to_onnx(model)


@pytest.mark.parametrize("kind", ["lstm", "gru"])
def test_weights_computed_in_the_graph_are_packed_with_nodes(kind):
    rng = np.random.default_rng(3)
    forward, backward = ref.random_weights(rng, kind, F, H), ref.random_weights(rng, kind, F, H)
    x = keras.Input((None, F))
    ws = [keras.Input(batch_shape=w.shape) for w in forward + backward]
    out = rnn.recurrent(kind, x, *ws[:3], backward=ws[3:], reset_after=True, return_sequences=True, merge_mode="sum")
    model = keras.Model([x] + ws, out)
    proto = keras.onnx.to_onnx(model)
    (node,) = [n for n in proto.graph.node if n.op_type == ONNX_OP[kind]]
    assert not {*node.input[1:4]} & {i.name for i in proto.graph.initializer}  # W, R, B come from nodes
    for time in (2, 5):
        xv = rng.standard_normal((2, time, F)).astype("float32")
        want = ref.bidirectional(kind, xv, forward, backward, return_sequences=True, merge_mode="sum")[0]
        np.testing.assert_allclose(model([xv] + forward + backward), want, atol=2e-5)
        got = run_onnx(proto, {i.name: v for i, v in zip(proto.graph.input, [xv] + forward + backward)})[0]
        np.testing.assert_allclose(got, want, atol=1e-4)


def test_masks_that_are_not_right_padded_are_exact_in_onnx_too():
    """ONNX's sequence_lens can only express right padding: a hole in the mask takes the Scan."""
    rng = np.random.default_rng(4)
    weights = ref.random_weights(rng, "lstm", F, H)
    x, _, mask, inputs = _inputs("lstm", False, True)
    model = keras.Model(inputs, ops.lstm(x, *weights, mask=mask, return_sequences=True))
    xv = rng.standard_normal((2, 5, F)).astype("float32")
    holes = np.array([[False, True, True, False, True], [True, True, True, True, True]])
    want = ref.layer("lstm", xv, weights, None, holes, True)[0]
    np.testing.assert_allclose(model.predict([xv, holes], verbose=0), want, atol=2e-5)
    proto = keras.onnx.to_onnx(model)
    got = run_onnx(proto, {proto.graph.input[0].name: xv, proto.graph.input[1].name: holes})[0]
    np.testing.assert_allclose(got, want, atol=1e-5)


def test_eager_calls_and_float_masks():
    rng = np.random.default_rng(8)
    weights = ref.random_weights(rng, "gru", F, H)
    xv = rng.standard_normal((2, 4, F)).astype("float32")
    mask = ref.right_padded_mask(2, 4, rng)
    out, h = ops.gru(xv, *weights, mask=mask.astype("float32"), return_sequences=True, return_state=True)
    want = ref.layer("gru", xv, weights, None, mask, True)
    np.testing.assert_allclose(out, want[0], atol=2e-5)
    np.testing.assert_allclose(h, want[1], atol=2e-5)
    single = ops.simple_rnn(xv, *ref.random_weights(rng, "simple_rnn", F, H), go_backwards=True)
    assert single.shape == (2, H) and single.dtype == np.float32


def test_shape_and_argument_errors():
    rng = np.random.default_rng(0)
    kernel, recurrent, bias = ref.random_weights(rng, "lstm", F, H)
    with pytest.raises(ValueError, match="expects inputs of rank 3"):
        ops.lstm(keras.Input((F,)), kernel, recurrent, bias)
    with pytest.raises(ValueError, match="expects inputs of rank 3"):
        ops.lstm(np.zeros((2, 3, 4, F), "float32"), kernel, recurrent, bias)
    with pytest.raises(ValueError, match="expects `kernel` of shape"):
        ops.lstm(keras.Input((None, F + 1)), kernel, recurrent, bias)
    with pytest.raises(ValueError, match="expects `bias` of shape"):
        ops.gru(keras.Input((None, F)), *ref.random_weights(rng, "gru", F, H, reset_after=False))
    with pytest.raises(ValueError, match="expects 2 initial state"):
        ops.lstm(keras.Input((None, F)), kernel, recurrent, bias, initial_state=[keras.Input((H,))])
    with pytest.raises(ValueError, match="initial state of shape"):
        ops.lstm(keras.Input((None, F)), kernel, recurrent, bias, initial_state=[keras.Input((H + 1,))] * 2)
    with pytest.raises(ValueError, match="boolean mask of shape"):
        ops.lstm(keras.Input((None, F)), kernel, recurrent, bias, mask=keras.Input((None, 2), dtype="bool"))
    with pytest.raises(ValueError, match="floating-point inputs"):
        ops.lstm(keras.Input((None, F), dtype="int32"), kernel, recurrent, bias)
    with pytest.raises(ValueError, match="Invalid merge mode"):
        ops.lstm(keras.Input((None, F)), kernel, recurrent, bias, backward=(kernel, recurrent, bias), merge_mode="x")
    with pytest.raises(ValueError, match="Unknown recurrent kind"):
        rnn.recurrent("rnn", keras.Input((None, F)), kernel, recurrent, bias)
    with pytest.raises(ValueError, match="Unknown RNN activation"):
        ops.lstm(keras.Input((None, F)), kernel, recurrent, bias, activation="nope")


def test_symbolic_shapes():
    rng = np.random.default_rng(0)
    weights = ref.random_weights(rng, "lstm", F, H)
    x = keras.Input((6, F), batch_size=2)
    out, h, c = ops.lstm(x, *weights, return_sequences=True, return_state=True)
    assert out.shape == (2, 6, H) and h.shape == (2, H) and c.shape == (2, H)
    pair = ops.lstm(keras.Input((None, F)), *weights, backward=weights, merge_mode=None)
    assert [t.shape for t in pair] == [(None, H), (None, H)]
    both = ops.lstm(keras.Input((None, F)), *weights, backward=weights, return_sequences=True)
    assert both.shape == (None, None, 2 * H)


@pytest.mark.parametrize("go_backwards", [False, True])
@pytest.mark.parametrize("flip_output", [False, True])
def test_zero_output_for_mask_and_flipped_outputs(go_backwards, flip_output):
    """The options Bidirectional uses when its directions cannot be fused."""
    rng = np.random.default_rng(13)
    for return_sequences in (False, True):
        weights = ref.random_weights(rng, "lstm", F, H)
        x, _, mask, inputs = _inputs("lstm", False, True)
        out = ops.lstm(
            x,
            *weights,
            mask=mask,
            return_sequences=return_sequences,
            go_backwards=go_backwards,
            flip_output=flip_output,
            zero_output_for_mask=True,
        )
        model = keras.Model(inputs, out)

        def reference(xv, iv, mv, weights=weights, return_sequences=return_sequences):
            seq = ref.run("lstm", xv, weights, None, mv, go_backwards, zero_output_for_mask=True)[0]
            if not return_sequences:
                return [seq[:, -1]]
            return [seq[:, ::-1] if flip_output else seq]

        _check(model, rng, "lstm", reference, False, True)


@pytest.mark.parametrize("opset", [13, 17])
def test_older_opsets(opset):
    rng = np.random.default_rng(6)
    forward, backward = ref.random_weights(rng, "gru", F, H), ref.random_weights(rng, "gru", F, H)
    x, _, mask, inputs = _inputs("gru", False, True)
    outs = [
        ops.gru(x, *forward, mask=mask, backward=backward, merge_mode=mode, return_sequences=True)
        for mode in ("sum", "ave", "mul", "concat")
    ] + [ops.lstm(x, *ref.random_weights(rng, "lstm", F, H), mask=mask, return_sequences=True)]
    model = keras.Model(inputs, outs)
    xv, _, mv = _feeds(rng, "gru", 5, 3, False, True)
    assert_onnx_parity(model, [xv, mv], atol=1e-4, rtol=1e-4, opset=opset)
