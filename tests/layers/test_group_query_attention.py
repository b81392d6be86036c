"""GroupQueryAttention: shapes, configs, gradients, ONNX, a NumPy reference for the key/value head
repetition, Keras parity (masks, causal, sliding window, gate, scores) and a Keras-written .keras file."""

import numpy as np
import pytest

import irtool
from irtool import layers

from ..harness import assert_same_outputs, keras_parity, require_keras, run_layer_test

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning", "ignore::UserWarning")
RNG = np.random.default_rng(11)
QUERY = RNG.standard_normal((2, 3, 6)).astype("float32")
VALUE = RNG.standard_normal((2, 5, 6)).astype("float32")


@pytest.mark.parametrize(
    "kwargs",
    [
        dict(head_dim=2, num_query_heads=4, num_key_value_heads=2),
        dict(head_dim=3, num_query_heads=3, num_key_value_heads=1, use_bias=False),
        dict(head_dim=2, num_query_heads=2, num_key_value_heads=2, use_gate=True),
    ],
    ids=["grouped", "one_kv_head_no_bias", "gate"],
)
def test_layer(kwargs):
    run_layer_test(
        layers.GroupQueryAttention,
        kwargs,
        input_shape=[(3, 6), (5, 6)],
        split_inputs=True,
        expected_output_shape=(None, 3, 6),
    )


def test_matches_a_numpy_reference():
    layer = layers.GroupQueryAttention(head_dim=2, num_query_heads=4, num_key_value_heads=2)
    out, scores = layer(QUERY, VALUE, return_attention_scores=True)
    wq, bq, wk, bk, wv, bv, wo, bo = layer.get_weights()
    q = np.einsum("bqm,muh->bquh", QUERY, wq) + bq
    k = np.repeat(np.einsum("bkm,mvh->bkvh", VALUE, wk) + bk, 2, axis=2)
    v = np.repeat(np.einsum("bkm,mvh->bkvh", VALUE, wv) + bv, 2, axis=2)
    logits = np.einsum("bquh,bkuh->buqk", q / np.sqrt(2.0), k)
    want_scores = np.exp(logits - logits.max(-1, keepdims=True))
    want_scores /= want_scores.sum(-1, keepdims=True)
    want = np.einsum("bquh,uhm->bqm", np.einsum("buqk,bkuh->bquh", want_scores, v), wo) + bo
    np.testing.assert_allclose(scores, want_scores, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(out, want, rtol=1e-5, atol=1e-6)


def test_heads_must_divide():
    with pytest.raises(ValueError, match="divisible"):
        layers.GroupQueryAttention(head_dim=2, num_query_heads=3, num_key_value_heads=2)


def _model(lib, masked=False, causal=False, scores=False, **kwargs):
    inputs = [lib.Input((3, 6)), lib.Input((5, 6))]
    query, value = inputs
    if masked:  # rows of zeros are padding
        query, value = lib.layers.Masking()(query), lib.layers.Masking()(value)
    layer = lib.layers.GroupQueryAttention(head_dim=2, num_query_heads=4, num_key_value_heads=2, **kwargs)
    out = layer(query, value, use_causal_mask=causal, return_attention_scores=scores)
    return lib.Model(inputs, out)


@pytest.mark.parametrize(
    "case",
    [
        dict(),
        dict(scores=True),
        dict(causal=True),
        dict(causal=True, scores=True, sliding_window=2),
        dict(masked=True),
        dict(masked=True, scores=True, use_gate=True),
        dict(dropout=0.3, use_bias=False),
    ],
    ids=["plain", "scores", "causal", "sliding_scores", "masked", "masked_gate_scores", "dropout"],
)
def test_keras_parity(case):
    require_keras()
    query, value = QUERY.copy(), VALUE.copy()
    query[1, 2:] = 0.0
    value[0, 3:] = 0.0
    keras_parity(
        lambda lib: _model(lib, **case),
        [query, value],
        direct_call=True,
        weight_paths=True,
        names=True,
        configs=lambda layer: isinstance(layer, layers.GroupQueryAttention),
        onnx_parity=True,
    )


def test_keras_file_loads_in_irtool(tmp_path):
    real = require_keras()
    real.utils.set_random_seed(2)
    source = _model(real, causal=True, use_gate=True)
    source.save(tmp_path / "m.keras")
    loaded = irtool.models.load_model(tmp_path / "m.keras")
    assert isinstance(loaded.layers[-1], layers.GroupQueryAttention)
    assert_same_outputs(source, loaded, [QUERY, VALUE], quiet=True, rtol=1e-5, atol=1e-5)
