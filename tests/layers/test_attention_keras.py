"""Keras parity for MultiHeadAttention, Attention, AdditiveAttention and EinsumDense.

Where the real Keras 3 is installed (torch backend), the same model is built in both, Keras'
weights are copied with get_weights/set_weights, and predictions (attention scores and masked
cases included), weight paths, layer names and configs are compared.
"""

import numpy as np
import pytest

from ..harness import assert_same_config, keras_parity, require_keras

require_keras()
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

RNG = np.random.default_rng(21)


def rand(*shape):
    return RNG.standard_normal(shape).astype("float32")


def mask_layer(lib):
    """A layer marking all-zero time steps as padding, in either library."""

    class MakeMask(lib.layers.Layer):
        def __init__(self, **kwargs):
            super().__init__(**kwargs)
            self.supports_masking = True

        def call(self, inputs):
            return inputs * 1.0

        def compute_mask(self, inputs, mask=None):
            return lib.ops.not_equal(lib.ops.sum(inputs, axis=-1), 0.0)

    return MakeMask()


def parity(builder, feeds, *extra_feeds, randomize=False):
    """``keras_parity`` with this family's checks: names, weight paths, parameter counts."""
    return keras_parity(
        builder,
        feeds,
        extra_inputs=extra_feeds,
        weights=(
            (lambda theirs: [RNG.uniform(0.2, 1.0, w.shape).astype("float32") for w in theirs.get_weights()])
            if randomize
            else None
        ),
        direct_call=True,
        names=True,
        weight_paths=True,
        count_params=True,
    )


def same_config(ours, theirs):
    # initializer configs are initializers.py's business
    assert_same_config(ours.get_config(), theirs.get_config(), ignore=("kernel_initializer", "bias_initializer"))


QUERY, VALUE = rand(3, 5, 8), rand(3, 7, 6)
MASK = RNG.random((3, 5, 7)) > 0.4
MASK[0, 2] = False  # one fully masked query row: the two Keras paths treat it differently
PADDED_Q, PADDED_V = QUERY.copy(), VALUE.copy()
PADDED_Q[0, 3:] = 0.0
PADDED_V[1, 5:] = 0.0
PADDED_V[2, 1:] = 0.0


@pytest.mark.parametrize("scores", [False, True])
@pytest.mark.parametrize(
    "case",
    ["plain", "attention_mask", "causal", "input_masks", "everything", "sliding_gate", "axes_1_2", "axis_2"],
)
def test_multi_head_attention_matches_keras(case, scores):
    def builder(lib):
        layers = lib.layers
        q, v = lib.Input((5, 8)), lib.Input((7, 6))
        inputs, kwargs, layer_kwargs = [q, v], {"return_attention_scores": scores}, {}
        if case in ("attention_mask", "everything"):
            m = lib.Input((5, 7), dtype="bool")
            inputs.append(m)
            kwargs["attention_mask"] = m
        if case in ("causal", "everything", "sliding_gate"):
            kwargs["use_causal_mask"] = True
        if case in ("input_masks", "everything"):
            q, v = mask_layer(lib)(q), mask_layer(lib)(v)
        if case == "everything":
            k = lib.Input((7, 4))
            inputs.insert(2, k)
            kwargs["key"] = k
            layer_kwargs = {"value_dim": 4, "output_shape": (3, 2)}
        if case == "sliding_gate":
            layer_kwargs = {"sliding_window": 2, "use_gate": True, "use_bias": False}
        if case.startswith("axes") or case.startswith("axis"):
            q, v = lib.Input((4, 3, 8)), lib.Input((4, 2, 6))
            inputs = [q, v]
            layer_kwargs = {"attention_axes": (1, 2) if case == "axes_1_2" else 2}
        mha = layers.MultiHeadAttention(num_heads=2, key_dim=3, **layer_kwargs)
        out = mha(q, v, **kwargs)
        return lib.Model(inputs, list(out) if scores else out)

    if case.startswith("axes") or case.startswith("axis"):
        feeds = [rand(3, 4, 3, 8), rand(3, 4, 2, 6)]
    else:
        feeds = [PADDED_Q, PADDED_V] if case in ("input_masks", "everything") else [QUERY, VALUE]
        if case == "everything":
            feeds.append(rand(3, 7, 4))
        if case in ("attention_mask", "everything"):
            feeds.append(MASK)
    ours, theirs = parity(builder, feeds)
    same_config(ours.layers[-1], theirs.layers[-1])


def test_multi_head_attention_self_attention_dynamic_lengths_and_nested_paths():
    def builder(lib):
        class Block(lib.layers.Layer):
            def __init__(self, **kwargs):
                super().__init__(**kwargs)
                self.attention = lib.layers.MultiHeadAttention(4, 2, dropout=0.1)
                self.dense = lib.layers.Dense(3)

            def call(self, x):
                return self.dense(self.attention(x, x, use_causal_mask=True))

        x = lib.Input((None, 8))
        masked = mask_layer(lib)(x)
        att = lib.layers.MultiHeadAttention(2, 4)
        return lib.Model(x, [att(masked, masked), Block()(x)])

    batches = []
    for batch, steps in ((1, 3), (4, 6)):
        x = rand(batch, steps, 8)
        x[0, steps - 1 :] = 0.0
        batches.append(x)
    parity(builder, *batches)


@pytest.mark.parametrize("scores", [False, True])
def test_embedding_masks_through_attention_layers(scores):
    # Each masked tensor feeds one MHA: Keras' MHA removes the masks of its input tensors while it
    # runs, so a second consumer of the same tensor would see it unmasked there (order-dependent).
    def builder(lib):
        tokens = lib.Input((None,), dtype="int32")
        queries = lib.layers.Embedding(20, 8, mask_zero=True)(tokens)
        values = lib.layers.Embedding(20, 8, mask_zero=True)(tokens)
        mha = lib.layers.MultiHeadAttention(2, 4)
        attended = mha(queries, queries, use_causal_mask=True, return_attention_scores=scores)
        out = attended[0] if scores else attended
        mixed = lib.layers.AdditiveAttention()([out, values])
        return lib.Model(tokens, [out, mixed] + ([attended[1]] if scores else []))

    batches = (np.array([[3, 5, 7, 0, 0], [1, 2, 3, 4, 5], [9, 0, 0, 0, 0]]), np.array([[4, 2, 0]]))
    parity(builder, *[tokens.astype("int32") for tokens in batches])


def test_multi_head_attention_names_and_counters_follow_keras():
    def builder(lib):
        q = lib.Input((5, 8))
        out = lib.layers.MultiHeadAttention(2, 3)(q, q)
        # Keras' MHA creates an auto-named Softmax and Dropout while building.
        out = lib.layers.Dropout(0.1)(out)
        return lib.Model(q, lib.layers.EinsumDense("abc,cd->abd", (None, 4), bias_axes="d")(out))

    ours, _ = parity(builder, QUERY)
    assert [layer.name for layer in ours.layers][-2:] == ["dropout_1", "einsum_dense"]


@pytest.mark.parametrize(
    "cls, kwargs",
    [
        ("Attention", {}),
        ("Attention", {"use_scale": True}),
        ("Attention", {"score_mode": "concat"}),
        ("Attention", {"score_mode": "concat", "use_scale": True, "dropout": 0.2}),
        ("AdditiveAttention", {}),
        ("AdditiveAttention", {"use_scale": False}),
    ],
)
@pytest.mark.parametrize("causal", [False, True])
def test_attention_and_additive_attention_match_keras(cls, kwargs, causal):
    def builder(lib):
        q, v, k = lib.Input((None, 6)), lib.Input((None, 6)), lib.Input((None, 6))
        layer = getattr(lib.layers, cls)(**kwargs)
        out, scores = layer(
            [mask_layer(lib)(q), mask_layer(lib)(v), k], return_attention_scores=True, use_causal_mask=causal
        )
        plain = layer([q, v])
        return lib.Model([q, v, k], [out, scores, plain])

    batches = []
    for tq, tv in ((5, 7), (3, 4)):
        q, v, k = rand(3, tq, 6), rand(3, tv, 6), rand(3, tv, 6)
        q[0, 2:] = 0.0
        v[1, 2:] = 0.0
        batches.append([q, v, k])
    ours, theirs = parity(builder, *batches, randomize=True)
    attention = [layer for layer in ours.layers if layer.name.startswith(("attention", "additive"))][0]
    same_config(attention, [layer for layer in theirs.layers if layer.name == attention.name][0])


@pytest.mark.parametrize(
    "equation, output_shape, bias_axes, input_shape",
    [
        ("ab,bc->ac", 4, "c", (6,)),
        ("abc,cde->abde", (None, 2, 3), "de", (5, 6)),
        ("abcd,cde->abe", (None, 4), "e", (5, 2, 3)),
        ("...b,bc->...c", 4, "c", (5, 6)),
        ("ab...,bc->ac...", (4, 5), "c", (6, 5)),
        ("abc,cd->abd", (5, 4), "b", (5, 6)),
    ],
)
def test_einsum_dense_matches_keras(equation, output_shape, bias_axes, input_shape):
    def builder(lib):
        x = lib.Input(input_shape)
        layer = lib.layers.EinsumDense(equation, output_shape, bias_axes=bias_axes, activation="tanh")
        return lib.Model(x, layer(x))

    ours, theirs = parity(builder, rand(3, *input_shape), randomize=True)
    same_config(ours.layers[-1], theirs.layers[-1])
