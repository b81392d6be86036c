"""``irtool.checking``: the inputs ``export --check`` makes from what a model accepts, and its float64 run."""

from __future__ import annotations

import numpy as np
import pytest

import irtool as keras
from irtool import layers
from irtool.checking import float64_reference, input_sets, pad, token_inputs


def _tokens_model():
    """Masked tokens (vocabulary 7), int64 ids read by two embeddings (vocabularies 9 and 4), a float input."""
    tokens = keras.Input((None,), dtype="int32", name="tokens")
    ids = keras.Input((3,), dtype="int64", name="ids")
    extra = keras.Input((2,), name="extra")
    seq = layers.GlobalAveragePooling1D()(layers.Embedding(7, 4, mask_zero=True)(tokens))
    a = layers.Flatten()(layers.Embedding(9, 2)(ids))
    b = layers.Flatten()(layers.Embedding(4, 2)(ids))
    x = layers.concatenate([seq, a, b, extra])
    return keras.Model([tokens, ids, extra], layers.Dense(2, name="out")(x), name="tokens_model")


def test_token_inputs_are_read_from_the_graph():
    found = token_inputs(_tokens_model())
    assert {i: (t.vocabulary, t.padded) for i, t in found.items()} == {0: (7, True), 1: (4, False)}


def test_input_sets_keep_tokens_within_the_vocabulary_and_label_every_set():
    model = _tokens_model()
    inputs = input_sets(model, keras.onnx.to_onnx(model))
    labels = [label for label, _ in inputs.sets]
    assert len(labels) == len(set(labels))
    assert labels[:4] == [
        "batch 1, length 1",
        "batch 1, length 1, with an all-padding row",
        "batch 3, length 1",
        "batch 3, length 1, with an all-padding row",
    ]
    assert "batch 3, length 5, left-padded" in labels and "batch 1, length 5, with a hole" in labels
    assert inputs.summary == ("batch sizes 1, 3, lengths 1, 5, padding: none, right, left, a hole, an all-padding row")
    for label, (tokens, ids, extra) in inputs.sets:
        batch = int(label.split(",")[0].split()[1])
        length = int(label.split(",")[1].split()[1])
        assert tokens.shape == (batch, length) and tokens.dtype == np.int32
        assert ids.shape == (batch, 3) and ids.dtype == np.int64 and extra.shape == (batch, 2)
        assert 0 <= tokens.min() and tokens.max() < 7 and 0 <= ids.min() and ids.max() < 4
        if "padd" not in label and "hole" not in label:
            assert (tokens != 0).all()


def test_padding_patterns_are_realistic():
    rng = np.random.default_rng(0)
    tokens = np.arange(1, 7 * 8 + 1).reshape(7, 8)
    right = pad(tokens, "right-padded", rng) != 0
    left = pad(tokens, "left-padded", rng) != 0
    hole = pad(tokens, "with a hole", rng) != 0
    row = pad(tokens, "with an all-padding row", rng) != 0
    for mask in right:  # a non-empty prefix of real tokens, then padding
        n = mask.sum()
        assert 1 <= n < 8 and mask[:n].all()
    for mask in left:  # padding, then a non-empty suffix
        n = mask.sum()
        assert 1 <= n < 8 and mask[8 - n :].all()
    for mask in hole:  # real tokens at both ends, zeros between
        assert mask[0] and mask[-1] and not mask.all()
    assert not row[0].any() and row[1:].all()
    assert len({tuple(m) for m in right}) > 1  # rows get different amounts of padding


def test_static_models_get_two_batch_sizes_and_no_lengths():
    inputs = keras.Input((4,), name="x")
    model = keras.Model(inputs, layers.Dense(3)(inputs))
    found = input_sets(model, keras.onnx.to_onnx(model))
    assert [label for label, _ in found.sets] == ["batch 1", "batch 3"] and found.summary == "batch sizes 1, 3"


def test_float64_reference_runs_in_float64_and_agrees_with_predict():
    model = _tokens_model()
    label, arrays = input_sets(model, keras.onnx.to_onnx(model)).sets[-2]
    assert label == "batch 3, length 5, with a hole"
    (exact,) = float64_reference(model)(arrays)
    assert exact.dtype == np.float64
    np.testing.assert_allclose(exact, model.predict(arrays, verbose=0), rtol=1e-5, atol=1e-6)
    assert model.weights[0].numpy().dtype == np.float32  # the model itself is untouched


@pytest.mark.parametrize("fixed", [True, False])
def test_padded_tokens_of_a_fixed_length(fixed):
    length = 6 if fixed else None
    tokens = keras.Input((length,), dtype="int32")
    model = keras.Model(tokens, layers.LSTM(2)(layers.Embedding(3, 2, mask_zero=True)(tokens)))
    labels = [label for label, _ in input_sets(model, keras.onnx.to_onnx(model)).sets]
    assert "batch 3, right-padded" in labels if fixed else "batch 3, length 5, right-padded" in labels
