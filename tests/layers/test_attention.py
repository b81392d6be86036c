"""Attention layers and EinsumDense: NumPy references, ONNX Runtime parity, dynamic dims, errors."""

import warnings

import numpy as np
import onnx
import pytest

import irtool
import irtool as keras
from irtool import layers, ops
from irtool.layers.einsum_dense import einsum_matmul
from irtool.onnx.export import ExportError

from ..conftest import assert_onnx_parity, run_onnx
from ..harness import run_layer_test

RNG = np.random.default_rng(11)


def rand(*shape):
    return RNG.standard_normal(shape).astype("float32")


class MakeMask(layers.Layer):
    """Marks the time steps whose features sum to zero as padding (like Embedding(mask_zero=True))."""

    supports_masking = True

    def call(self, inputs):
        return inputs

    def compute_mask(self, inputs, previous_mask=None):
        return ops.not_equal(ops.sum(inputs, axis=-1), 0.0)


def randomize(layer):
    layer.set_weights([RNG.standard_normal(w.shape).astype("float32") * 0.5 for w in layer.get_weights()])


# ---------------------------------------------------------------------------------------
# A plain NumPy multi-head attention (rank-3 inputs) with the layer's weights


def softmax(x, axis=-1):
    e = np.exp(x - x.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


def reference_mha(weights, q, v, k=None, mask=None, scores_path=False, use_bias=True, key_dim=None):
    """``weights``: Keras order (query, key, value, attention_output; kernels then biases).
    ``mask`` (B, T, S) bool. ``scores_path``: Keras' masked-Softmax numerics (masked logits -1e9,
    masked probabilities zeroed) instead of dot_product_attention's additive -0.7*3.38953e38."""
    k = v if k is None else k
    w = list(weights)
    take = (lambda: (w.pop(0), w.pop(0))) if use_bias else (lambda: (w.pop(0), 0.0))
    (wq, bq), (wk, bk), (wv, bv), (wo, bo) = take(), take(), take(), take()
    qh = np.einsum("btd,dhk->bthk", q, wq) + bq
    kh = np.einsum("bsd,dhk->bshk", k, wk) + bk
    vh = np.einsum("bsd,dhk->bshk", v, wv) + bv
    logits = np.einsum("bthk,bshk->bhts", qh / np.sqrt(key_dim or wq.shape[-1]), kh).astype("float64")
    if mask is not None:
        m = np.broadcast_to(mask[:, None], logits.shape)
        logits = np.where(m, logits, -1e9) if scores_path else logits + np.where(m, 0.0, -0.7 * 3.38953e38)
    probs = softmax(logits)
    if mask is not None and scores_path:
        probs = np.where(m, probs, 0.0)
    out = np.einsum("bhts,bshk->bthk", probs, vh)
    return np.einsum("bthk,hkd->btd", out, wo) + bo, probs


def mha_model(value_len=7, key_dim=None, call_kwargs=None, mask_input=False, masked_inputs=False, **layer_kwargs):
    q = keras.Input((None, 8))
    v = keras.Input((None, 6))
    k = keras.Input((None, 4)) if key_dim else None
    m = keras.Input((None, None), dtype="bool") if mask_input else None
    layer = layers.MultiHeadAttention(num_heads=2, key_dim=3, **layer_kwargs)
    qq, vv = (MakeMask()(q), MakeMask()(v)) if masked_inputs else (q, v)
    kwargs = dict(call_kwargs or {})
    if k is not None:
        kwargs["key"] = k
    if m is not None:
        kwargs["attention_mask"] = m
    out = layer(qq, vv, **kwargs)
    inputs = [q, v] + ([k] if k is not None else []) + ([m] if m is not None else [])
    return keras.Model(inputs, out), layer


def test_mha_weights_paths_and_default_output():
    model, mha = mha_model()
    assert mha.name == "multi_head_attention"
    assert [(w.path, w.shape) for w in mha.weights] == [
        ("multi_head_attention/query/kernel", (8, 2, 3)),
        ("multi_head_attention/query/bias", (2, 3)),
        ("multi_head_attention/key/kernel", (6, 2, 3)),
        ("multi_head_attention/key/bias", (2, 3)),
        ("multi_head_attention/value/kernel", (6, 2, 3)),
        ("multi_head_attention/value/bias", (2, 3)),
        ("multi_head_attention/attention_output/kernel", (2, 3, 8)),
        ("multi_head_attention/attention_output/bias", (8,)),
    ]
    assert model.output.shape == (None, None, 8)
    assert model.count_params() == (8 * 6 + 6) + 2 * (6 * 6 + 6) + (6 * 8 + 8)
    randomize(mha)
    q, v = rand(3, 5, 8), rand(3, 7, 6)
    want, _ = reference_mha(mha.get_weights(), q, v)
    np.testing.assert_allclose(model.predict([q, v], verbose=0), want, rtol=1e-5, atol=1e-5)
    # Keras consumed the `softmax` and `dropout` auto-names while building.
    assert layers.Dropout(0.1).name == "dropout_1"


@pytest.mark.parametrize("scores", [False, True])
def test_mha_key_attention_mask_and_scores(scores):
    model, mha = mha_model(key_dim=4, mask_input=True, call_kwargs={"return_attention_scores": scores})
    randomize(mha)
    q, v, k = rand(2, 5, 8), rand(2, 7, 6), rand(2, 7, 4)
    mask = RNG.random((2, 5, 7)) > 0.4
    mask[1, 3] = False  # a fully masked query row
    got = model.predict([q, v, k, mask], verbose=0)
    want, probs = reference_mha(mha.get_weights(), q, v, k, mask=mask, scores_path=scores)
    if scores:
        out, got_scores = got
        assert got_scores.shape == (2, 2, 5, 7)
        np.testing.assert_allclose(got_scores, probs, rtol=1e-5, atol=1e-6)
        assert np.all(got_scores[1, :, 3] == 0)  # Keras' masked Softmax zeroes a fully masked row
    else:
        out = got
    np.testing.assert_allclose(out, want, rtol=1e-5, atol=1e-5)
    feeds = [q, v, k, mask]
    assert_onnx_parity(model, feeds)


@pytest.mark.parametrize("scores", [False, True])
def test_mha_causal_mask_and_input_masks(scores):
    model, mha = mha_model(masked_inputs=True, call_kwargs={"use_causal_mask": True, "return_attention_scores": scores})
    randomize(mha)
    q, v = rand(3, 6, 8), rand(3, 6, 6)
    q[0, 4:] = 0.0
    v[1, 2:] = 0.0
    qm, vm = q.sum(-1) != 0, v.sum(-1) != 0
    mask = qm[:, :, None] & vm[:, None, :] & np.tril(np.ones((6, 6), bool))[None]
    want, probs = reference_mha(mha.get_weights(), q, v, mask=mask, scores_path=scores)
    got = model.predict([q, v], verbose=0)
    out = got[0] if scores else got
    np.testing.assert_allclose(out, want, rtol=1e-5, atol=1e-5)
    if scores:
        np.testing.assert_allclose(got[1], probs, rtol=1e-5, atol=1e-6)
    output = model.outputs[0]
    assert output._keras_mask is not None and output._keras_mask.shape == (None, None)
    assert_onnx_parity(model, [q, v])


def test_mha_causal_with_different_lengths_and_sliding_window():
    model, mha = mha_model(sliding_window=2, call_kwargs={"use_causal_mask": True, "return_attention_scores": True})
    randomize(mha)
    q, v = rand(2, 4, 8), rand(2, 6, 6)
    band = np.tril(np.ones((4, 6), bool)) & ~np.tril(np.ones((4, 6), bool), -2)
    want, probs = reference_mha(mha.get_weights(), q, v, mask=np.broadcast_to(band, (2, 4, 6)), scores_path=True)
    out, scores = model.predict([q, v], verbose=0)
    np.testing.assert_allclose(out, want, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(scores, probs, rtol=1e-5, atol=1e-6)
    assert_onnx_parity(model, [q, v])


def test_mha_value_dim_output_shape_no_bias_and_gate():
    model, mha = mha_model(value_dim=5, output_shape=(2, 3), use_bias=False)
    assert [w.shape for w in mha.weights] == [(8, 2, 3), (6, 2, 3), (6, 2, 5), (2, 5, 2, 3)]
    assert model.output.shape == (None, None, 2, 3)
    randomize(mha)
    q, v = rand(2, 3, 8), rand(2, 4, 6)
    wq, wk, wv, wo = mha.get_weights()
    want, _ = reference_mha([wq, wk, wv, wo.reshape(2, 5, 6)], q, v, use_bias=False, key_dim=3)
    np.testing.assert_allclose(model.predict([q, v], verbose=0), want.reshape(2, 3, 2, 3), rtol=1e-5, atol=1e-5)
    assert_onnx_parity(model, [q, v])

    gated, gate_layer = mha_model(use_gate=True)
    assert [w.path.split("/")[1] for w in gate_layer.weights][::2] == [
        "query",
        "key",
        "gate",
        "value",
        "attention_output",
    ]
    randomize(gate_layer)
    q, v = rand(2, 3, 8), rand(2, 4, 6)
    weights = gate_layer.get_weights()
    wg, bg = weights[4], weights[5]
    plain = weights[:4] + weights[6:]
    _, probs = reference_mha(plain, q, v)
    vh = np.einsum("bsd,dhk->bshk", v, plain[4]) + plain[5]
    gate = 1 / (1 + np.exp(-(np.einsum("btd,dhk->bthk", q, wg) + bg)))
    mixed = np.einsum("bhts,bshk->bthk", probs, vh) * gate
    want = np.einsum("bthk,hkd->btd", mixed, plain[6]) + plain[7]
    np.testing.assert_allclose(gated.predict([q, v], verbose=0), want, rtol=1e-5, atol=1e-5)
    assert_onnx_parity(gated, [q, v])


@pytest.mark.parametrize("axes", [(1, 2), (2,)])
def test_mha_attention_axes_match_flattened_attention(axes):
    q_in, v_in = keras.Input((3, 4, 8)), keras.Input((3, 2, 6))
    mha = layers.MultiHeadAttention(2, 3, attention_axes=axes)
    out, scores = mha(q_in, v_in, return_attention_scores=True)
    model = keras.Model([q_in, v_in], [out, scores])
    randomize(mha)
    q, v = rand(2, 3, 4, 8), rand(2, 3, 2, 6)
    got_out, got_scores = model.predict([q, v], verbose=0)
    if axes == (1, 2):  # attention over both axes = attention over the flattened sequence
        want, probs = reference_mha(mha.get_weights(), q.reshape(2, 12, 8), v.reshape(2, 6, 6))
        assert got_scores.shape == (2, 2, 3, 4, 3, 2)
        np.testing.assert_allclose(got_scores.reshape(2, 2, 12, 6), probs, rtol=1e-5, atol=1e-6)
    else:  # attention along axis 2, independently for each index of axis 1
        want, probs = reference_mha(mha.get_weights(), q.reshape(6, 4, 8), v.reshape(6, 2, 6))
        assert got_scores.shape == (2, 3, 2, 4, 2)
        np.testing.assert_allclose(got_scores, probs.reshape(2, 3, 2, 4, 2), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(got_out, want.reshape(got_out.shape), rtol=1e-5, atol=1e-5)
    assert mha.get_config()["attention_axes"] == axes
    assert_onnx_parity(model, [q, v])


@pytest.mark.parametrize(
    "call_kwargs", [{}, {"use_causal_mask": True}, {"return_attention_scores": True, "use_causal_mask": True}]
)
def test_mha_onnx_dynamic_batch_and_lengths(call_kwargs):
    model, mha = mha_model(call_kwargs=call_kwargs)
    randomize(mha)
    for batch in (1, 4):
        for t, s in ((2, 3), (6, 6)):
            proto = assert_onnx_parity(model, [rand(batch, t, 8), rand(batch, s, 6)])
    ops_used = [n.op_type for n in proto.graph.node]
    assert "Einsum" not in ops_used and ops_used.count("MatMul") == 6 and ops_used.count("Softmax") == 1
    assert ops_used.count("Transpose") == 4 and ops_used.count("Reshape") == 4
    dims = [[d.dim_param or d.dim_value for d in i.type.tensor_type.shape.dim] for i in proto.graph.input]
    assert dims == [["batch", "dim_0_1", 8], ["batch", "dim_1_1", 6]]
    for opset in (14, 17):
        assert_onnx_parity(model, [rand(2, 3, 8), rand(2, 5, 6)], opset=opset)


def test_causal_mask_needs_opset_14():
    model, _ = mha_model(call_kwargs={"use_causal_mask": True})
    with pytest.raises(ExportError, match="opset >= 14"):
        keras.onnx.to_onnx(model, opset=13)


def test_mha_on_embedding_with_mask_zero():
    tokens = keras.Input((None,), dtype="int32")
    embedded = layers.Embedding(10, 6, mask_zero=True)(tokens)
    mha = layers.MultiHeadAttention(2, 3)
    model = keras.Model(tokens, mha(embedded, embedded))
    randomize(mha)
    ids = np.array([[1, 4, 2, 0, 0], [3, 3, 3, 3, 3]], "int32")
    x = model.layers[1].get_weights()[0][ids]
    keep = ids != 0
    want, _ = reference_mha(mha.get_weights(), x, x, mask=keep[:, :, None] & keep[:, None, :])
    np.testing.assert_allclose(model.predict(ids, verbose=0), want, rtol=1e-5, atol=1e-5)
    assert_onnx_parity(model, ids)
    assert_onnx_parity(model, ids[:1, :2])


def test_mha_eager_self_attention_and_shared_call():
    mha = layers.MultiHeadAttention(num_heads=3, key_dim=2, dropout=0.5)
    x = rand(2, 4, 6)
    out, scores = mha(x, x, return_attention_scores=True)
    assert out.shape == (2, 4, 6) and scores.shape == (2, 3, 4, 4)
    want, probs = reference_mha(mha.get_weights(), x, x)
    np.testing.assert_allclose(out, want, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(scores, probs, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(mha(x, x), want, rtol=1e-5, atol=1e-5)  # dropout is inference-only by default
    assert not np.allclose(mha(x, x, training=True), want, atol=1e-4)
    inputs = keras.Input((None, 6))
    model = keras.Model(inputs, mha(inputs, inputs))
    np.testing.assert_allclose(model.predict(x, verbose=0), want, rtol=1e-5, atol=1e-5)
    assert_onnx_parity(model, x)


def test_mha_inside_a_custom_layer_gets_nested_weight_paths():
    class Block(layers.Layer):
        def __init__(self, **kwargs):
            super().__init__(**kwargs)
            self.attention = layers.MultiHeadAttention(2, 4)
            self.dense = layers.Dense(3)

        def call(self, x):
            return self.dense(self.attention(x, x))

    inputs = keras.Input((5, 8))
    model = keras.Model(inputs, Block()(inputs))
    paths = [w.path for w in model.weights]
    assert paths[0] == "block/multi_head_attention/query/kernel" and paths[-1] == "block/dense/bias"
    assert len(paths) == 10
    assert_onnx_parity(model, rand(2, 5, 8))


def test_mha_config_round_trip():
    mha = layers.MultiHeadAttention(4, 8, value_dim=6, dropout=0.1, output_shape=16, attention_axes=-2, name="att")
    config = mha.get_config()
    assert config["output_shape"] == (16,) and config["attention_axes"] == (-2,) and config["value_dim"] == 6
    assert config["kernel_initializer"]["class_name"] == "GlorotUniform" and config["seed"] is None
    clone = layers.MultiHeadAttention.from_config(config)
    assert clone.get_config() == config
    x = rand(2, 3, 5)
    clone(x, x)
    assert clone.get_config()["attention_axes"] == (1,)  # normalized when built, as in Keras
    assert [w.shape for w in clone.weights][-2:] == [(4, 6, 16), (16,)]


def test_mha_errors():
    with pytest.raises(ValueError, match="num_heads"):
        layers.MultiHeadAttention(0, 2)
    with pytest.raises(ValueError, match="key_dim"):
        layers.MultiHeadAttention(2, None)
    with pytest.raises(ValueError, match="value_dim"):
        layers.MultiHeadAttention(2, 2, value_dim=-1)
    with pytest.raises(ValueError, match="attention_axes"):
        layers.MultiHeadAttention(2, 2, attention_axes="1")
    with pytest.raises(ValueError, match="sliding_window"):
        layers.MultiHeadAttention(2, 2, sliding_window=0)
    with pytest.raises(ValueError, match="flash attention"):
        layers.MultiHeadAttention(2, 2, dropout=0.1, flash_attention=True)
    q, v = keras.Input((5, 8)), keras.Input((7, 6))
    with pytest.raises(ValueError, match="except the last one"):
        layers.MultiHeadAttention(2, 2)(q, v, keras.Input((6, 6)))
    with pytest.raises(ValueError, match="same rank"):
        layers.MultiHeadAttention(2, 2)(q, keras.Input((7, 2, 6)))
    with pytest.raises(ValueError, match="broadcastable"):
        layers.MultiHeadAttention(2, 2)(q, v, attention_mask=keras.Input((5, 6), dtype="bool"))
    with pytest.raises(ValueError, match="single axis"):
        layers.MultiHeadAttention(2, 2, attention_axes=(1, 2))(
            keras.Input((3, 4, 8)), use_causal_mask=True, value=keras.Input((3, 4, 8))
        )
    mha = layers.MultiHeadAttention(2, 2)
    mha(q, v)
    with pytest.raises(ValueError, match="einsum_dense|query"):
        mha(keras.Input((5, 9)), v)


# ---------------------------------------------------------------------------------------
# EinsumDense


@pytest.mark.parametrize(
    "equation, output_shape, bias_axes, input_shape, kernel_shape, bias_shape",
    [
        ("ab,bc->ac", 4, "c", (6,), (6, 4), (4,)),
        ("abc,cd->abd", (None, 4), "d", (5, 6), (6, 4), (4,)),
        ("abc,cde->abde", (None, 2, 3), "de", (5, 6), (6, 2, 3), (2, 3)),
        ("abcd,cde->abe", (None, 4), "e", (5, 2, 3), (2, 3, 4), (4,)),
        ("...b,bc->...c", 4, "c", (5, 6), (6, 4), (4,)),
        ("...b,bc->...c", 4, None, (3, 5, 6), (6, 4), None),
        ("ab...,bc->ac...", (4, 5), "c", (6, 5), (6, 4), (4, 1)),
        ("abc,cd->abd", (5, 4), "b", (5, 6), (6, 4), (5, 1)),
        ("abc,bcd->ad", 4, "d", (5, 6), (5, 6, 4), (4,)),
    ],
)
def test_einsum_dense_shapes_values_and_onnx(equation, output_shape, bias_axes, input_shape, kernel_shape, bias_shape):
    inputs = keras.Input(input_shape)
    layer = layers.EinsumDense(equation, output_shape, bias_axes=bias_axes, activation="relu")
    model = keras.Model(inputs, layer(inputs))
    assert layer.name == "einsum_dense"
    assert [w.shape for w in layer.weights] == [kernel_shape] + ([bias_shape] if bias_shape else [])
    assert [w.path for w in layer.weights] == ["einsum_dense/kernel", "einsum_dense/bias"][: len(layer.weights)]
    randomize(layer)
    x = rand(3, *input_shape)
    kernel = layer.get_weights()[0]
    plain = equation.replace("...", "")
    if "..." in equation:  # name the elided axes for NumPy
        extra = "xyz"[: x.ndim - len(plain.split(",")[0])]
        lhs, out = equation.split("->")
        plain = lhs.replace("...", extra) + "->" + out.replace("...", extra)
    want = np.einsum(plain, x, kernel)
    if bias_shape:
        want = want + layer.get_weights()[1]
    np.testing.assert_allclose(model.predict(x, verbose=0), np.maximum(want, 0), rtol=1e-5, atol=1e-5)
    proto = assert_onnx_parity(model, x)
    assert "Einsum" not in [n.op_type for n in proto.graph.node]


def test_einsum_dense_dynamic_dims_config_and_errors():
    inputs = keras.Input((None, 6))
    layer = layers.EinsumDense("abc,cde->abde", output_shape=(None, 2, 3), bias_axes="e", name="proj")
    model = keras.Model(inputs, layer(inputs))
    assert model.output.shape == (None, None, 2, 3)
    for batch, steps in ((1, 2), (3, 7)):
        assert_onnx_parity(model, rand(batch, steps, 6))
    config = layer.get_config()
    assert config["equation"] == "abc,cde->abde" and config["output_shape"] == (None, 2, 3)
    assert config["bias_axes"] == "e" and config["activation"] == "linear"
    assert layers.EinsumDense.from_config(config).get_config() == config
    assert layer.compute_output_shape((None, 4, 6)) == (None, None, 2, 3)  # as Keras: None stays None
    with pytest.raises(ValueError, match="Invalid einsum equation"):
        layers.EinsumDense("ab->b", 3)(keras.Input((4,)))
    with pytest.raises(ValueError, match="Bias dimension 'x'"):
        layers.EinsumDense("ab,bc->ac", 3, bias_axes="x")(keras.Input((4,)))
    with pytest.raises(ValueError, match="do not match at shared dimension"):
        layers.EinsumDense("abc,cd->abd", (5, 3))(keras.Input((4, 6)))
    with pytest.raises(ValueError, match="Weight dimension 'e'"):
        layers.EinsumDense("ab,bce->ac", 3)(keras.Input((4,)))
    with pytest.raises(ValueError, match="expected ndim=3"):
        layer(keras.Input((4,)))
    with pytest.raises(ValueError, match="was built for inputs with dim 6"):
        layer(keras.Input((4, 5)))
    with pytest.raises(ValueError, match="LoRA"):
        layers.EinsumDense("ab,bc->ac", 3, lora_rank=2)


def test_einsum_dense_kernel_fans_follow_input_and_output_axes():
    # Keras' EinsumDense draws glorot_uniform with fan_in = contracted size, fan_out = output size.
    layer = layers.EinsumDense("abc,cde->abde", (None, 50, 40))
    layer.build((None, 3, 100))
    limit = np.sqrt(6.0 / (100 + 2000))
    kernel = layer.get_weights()[0]
    assert np.abs(kernel).max() <= limit and np.abs(kernel).max() > 0.9 * limit


@pytest.mark.parametrize(
    "equation, a, b",
    [
        ("abc,cde->abde", (2, 3, 4), (4, 5, 6)),
        ("aecd,abcd->acbe", (2, 7, 3, 4), (2, 5, 3, 4)),
        ("acbe,aecd->abcd", (2, 3, 5, 7), (2, 7, 3, 4)),
        ("abc,bd->adc", (2, 3, 4), (3, 5)),
        ("ab,cd->abcd", (2, 3), (4, 5)),
        ("abc,c->ab", (2, 3, 4), (4,)),
        ("bc,abc->a", (3, 4), (2, 3, 4)),
        ("abcde,abfge->abdcfg", (2, 3, 4, 5, 6), (2, 3, 7, 8, 6)),
        ("abc,cd->ad", (2, 3, 4), (4, 5)),  # a summed-out letter: ops.einsum
        ("aab,bc->ac", (3, 3, 4), (4, 5)),  # a repeated letter: ops.einsum
    ],
)
def test_einsum_matmul_matches_numpy(equation, a, b):
    x, y = rand(*a), rand(*b)
    np.testing.assert_allclose(einsum_matmul(equation, x, y), np.einsum(equation, x, y), rtol=1e-5, atol=1e-5)


def test_tril_triu_ops_and_onnx():
    x = rand(2, 3, 4)
    np.testing.assert_array_equal(ops.tril(x), np.tril(x))
    np.testing.assert_array_equal(ops.triu(x, 1), np.triu(x, 1))
    inputs = keras.Input((None, None))
    model = keras.Model(inputs, [ops.tril(inputs, -1), ops.triu(inputs, 2)])
    assert_onnx_parity(model, x)
    with pytest.raises(ValueError, match="rank >= 2"):
        ops.tril(keras.Input(batch_shape=(3,)))


# ---------------------------------------------------------------------------------------
# Attention and AdditiveAttention


def reference_attention(q, v, k, mode, scale=None, concat_weight=None, q_mask=None, v_mask=None, causal=False):
    scale = 1.0 if scale is None else scale
    if mode == "dot":
        scores = q @ np.swapaxes(k, -1, -2) * scale
    elif mode == "concat":
        scores = concat_weight * np.tanh(scale * (q[:, :, None] + k[:, None])).sum(-1)
    else:  # additive
        scores = (scale * np.tanh(q[:, :, None] + k[:, None])).sum(-1)
    keep = np.ones(scores.shape, bool)
    if v_mask is not None:
        keep &= v_mask[:, None, :]
    if causal:
        keep &= np.tril(np.ones(scores.shape[-2:], bool))[None]
    scores = np.where(keep, scores, scores - 1e9)
    probs = softmax(scores.astype("float64"))
    out = probs @ v
    if q_mask is not None:
        out = np.where(q_mask[..., None], out, 0.0)
    return out, probs


@pytest.mark.parametrize(
    "cls, kwargs, mode",
    [
        (layers.Attention, {}, "dot"),
        (layers.Attention, {"use_scale": True}, "dot"),
        (layers.Attention, {"score_mode": "concat"}, "concat"),
        (layers.Attention, {"score_mode": "concat", "use_scale": True}, "concat"),
        (layers.AdditiveAttention, {}, "additive"),
        (layers.AdditiveAttention, {"use_scale": False}, "additive"),
    ],
)
@pytest.mark.parametrize("causal", [False, True])
def test_attention_layers_against_numpy_and_onnx(cls, kwargs, mode, causal):
    q_in, v_in, k_in = keras.Input((None, 4)), keras.Input((None, 4)), keras.Input((None, 4))
    layer = cls(**kwargs)
    q_masked, v_masked = MakeMask()(q_in), MakeMask()(v_in)
    out, scores = layer([q_masked, v_masked, k_in], return_attention_scores=True, use_causal_mask=causal)
    assert out._keras_mask is not None
    model = keras.Model([q_in, v_in, k_in], [out, scores])
    randomize(layer)
    weights = layer.get_weights()
    scale = weights[0] if kwargs.get("use_scale", mode == "additive") else None
    concat_weight = weights[-1] if mode == "concat" else None
    q, v, k = rand(3, 5, 4), rand(3, 6, 4), rand(3, 6, 4)
    q[0, 3:] = 0.0
    v[1, 4:] = 0.0
    want_out, want_scores = reference_attention(
        q, v, k, mode, scale, concat_weight, q_mask=q.sum(-1) != 0, v_mask=v.sum(-1) != 0, causal=causal
    )
    got_out, got_scores = model.predict([q, v, k], verbose=0)
    np.testing.assert_allclose(got_out, want_out, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(got_scores, want_scores, rtol=1e-5, atol=1e-6)
    for batch, (tq, tv) in ((1, (2, 3)), (4, (5, 6))):
        assert_onnx_parity(model, [rand(batch, tq, 4), rand(batch, tv, 4), rand(batch, tv, 4)])


def test_attention_value_as_key_mask_argument_and_eager():
    q, v = rand(2, 3, 4), rand(2, 5, 4)
    layer = layers.Attention(use_scale=True)
    out = layer([q, v])
    want, _ = reference_attention(q, v, v, "dot", scale=1.0)
    np.testing.assert_allclose(out, want, rtol=1e-5, atol=1e-5)
    v_mask = np.array([[True] * 5, [True, True, False, False, False]])
    out = layer([q, v], mask=[None, v_mask])
    want, _ = reference_attention(q, v, v, "dot", scale=1.0, v_mask=v_mask)
    np.testing.assert_allclose(out, want, rtol=1e-5, atol=1e-5)
    assert [w.path for w in layer.weights] == ["attention/scale"] and layer.weights[0].shape == ()
    additive = layers.AdditiveAttention()
    additive([q, v])
    assert [(w.path, w.shape) for w in additive.weights] == [("additive_attention/scale", (4,))]
    concat = layers.Attention(score_mode="concat", use_scale=True)
    concat([q, v])
    assert [w.path for w in concat.weights] == ["attention_1/scale", "attention_1/concat_score_weight"]
    dropped = layers.Attention(dropout=0.5, seed=3)
    np.testing.assert_allclose(dropped([q, v]), reference_attention(q, v, v, "dot")[0], rtol=1e-5, atol=1e-5)
    assert not np.allclose(dropped([q, v], training=True), reference_attention(q, v, v, "dot")[0])
    q_in, v_in = keras.Input((3, 4)), keras.Input((5, 4))
    model = keras.Model([q_in, v_in], layers.Attention(dropout=0.2)([q_in, v_in]))
    assert_onnx_parity(model, [q, v])


def test_attention_configs_and_errors():
    config = layers.Attention(use_scale=True, score_mode="concat", dropout=0.1, seed=2).get_config()
    assert {k: config[k] for k in ("use_scale", "score_mode", "dropout", "seed")} == {
        "use_scale": True,
        "score_mode": "concat",
        "dropout": 0.1,
        "seed": 2,
    }
    assert layers.Attention.from_config(config).get_config() == config
    additive = layers.AdditiveAttention().get_config()
    assert "score_mode" not in additive and additive["use_scale"] is True
    assert layers.AdditiveAttention.from_config(additive).get_config() == additive
    with pytest.raises(ValueError, match="score_mode"):
        layers.Attention(score_mode="add")
    q, v = keras.Input((3, 4)), keras.Input((5, 4))
    with pytest.raises(ValueError, match="list of inputs"):
        layers.Attention()((q, v))
    with pytest.raises(ValueError, match="length 2 or 3"):
        layers.Attention()([q])
    with pytest.raises(ValueError, match="last dimension of query and key"):
        layers.Attention()([q, keras.Input((5, 3))])
    with pytest.raises(ValueError, match="same number of steps"):
        layers.AdditiveAttention()([q, v, keras.Input((6, 4))])
    with pytest.raises(ValueError, match="mask must be a list"):
        layers.Attention()([rand(1, 3, 4), rand(1, 5, 4)], mask=np.ones((1, 5), bool))


def test_attention_in_a_model_does_not_warn_about_masks():
    inputs = keras.Input((None, 4))
    masked = MakeMask()(inputs)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        out = layers.MultiHeadAttention(2, 2)(masked, masked)
        out = layers.Attention()([out, masked])
    model = keras.Model(inputs, out)
    x = rand(2, 5, 4)
    x[1, 3:] = 0.0
    proto = assert_onnx_parity(model, x)
    onnx.checker.check_model(proto, full_check=True)
    assert run_onnx(proto, {proto.graph.input[0].name: x})[0].shape == (2, 5, 4)


HARNESS_CASES = [("EinsumDense", {"equation": "ab,bc->ac", "output_shape": 4, "bias_axes": "c"}, (6,))]


@pytest.mark.parametrize("name, kwargs, shape", HARNESS_CASES, ids=[c[0] for c in HARNESS_CASES])
def test_layer_harness(name, kwargs, shape):
    """Shapes, configs, .keras file, ONNX, gradients and (where installed) Keras: tests/harness.py."""
    run_layer_test(getattr(irtool.layers, name), kwargs, shape)
