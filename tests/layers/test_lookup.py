"""StringLookup and IntegerLookup against real Keras (same vocabulary or adapt data), ONNX Runtime
(LabelEncoder) and Keras' .keras files both ways."""

from __future__ import annotations

import numpy as np
import pytest

import irtool

from ..harness import assert_onnx_parity, require_keras, run_onnx

VOCAB = ["a", "b", "c", "日本", ""]
WORDS = np.array([["a", "z", "b"], ["日本", "[M]", "a"], ["", "c", "zz"]])
INTS = np.array([[5, 6, -7], [7, 0, 42], [13, 5, -1]])


def _strings(x):
    out = np.empty(np.shape(x), dtype=object)
    out[...] = np.asarray(x).tolist()
    return out


def _keras_values(x):
    if isinstance(x, list):
        return np.asarray(x, dtype=object)
    return np.asarray(x)


STRING_CONFIGS = [
    dict(),
    dict(mask_token="[M]"),
    dict(num_oov_indices=0, vocabulary=["a", "b", "c", "日本", "", "z", "[M]", "zz"]),
    dict(num_oov_indices=3),
    dict(num_oov_indices=3, salt=[5, 9]),
    dict(output_mode="one_hot"),
    dict(output_mode="multi_hot", mask_token="[M]"),
    dict(output_mode="count", num_oov_indices=2),
    dict(output_mode="tf_idf", idf_weights=[0.5, 0.25, 2.0, 1.0, 3.0]),
    dict(output_mode="multi_hot", max_tokens=9, pad_to_max_tokens=True),
]


@pytest.mark.parametrize("config", STRING_CONFIGS, ids=str)
def test_string_lookup_matches_keras(config):
    keras = require_keras()
    config = {"vocabulary": VOCAB, **config}
    mine = irtool.layers.StringLookup(**config, name="lookup")
    theirs = keras.layers.StringLookup(**config, name="lookup")
    np.testing.assert_allclose(np.asarray(mine(WORDS)), np.asarray(theirs(WORDS)), rtol=1e-6)
    assert mine.get_vocabulary() == theirs.get_vocabulary()
    assert mine.vocabulary_size() == theirs.vocabulary_size()
    assert mine.get_config() == theirs.get_config()
    again = irtool.layers.StringLookup.from_config(mine.get_config())
    np.testing.assert_array_equal(np.asarray(again(WORDS)), np.asarray(mine(WORDS)))


def test_string_lookup_invert_matches_keras():
    keras = require_keras()
    for config in (dict(), dict(mask_token="[M]")):
        indices = np.array([0, 1, 2, 5, 4, 9])
        got = irtool.layers.StringLookup(vocabulary=VOCAB, invert=True, **config)(indices)
        want = keras.layers.StringLookup(vocabulary=VOCAB, invert=True, **config)(indices)
        assert got.tolist() == list(want)


INT_CONFIGS = [
    dict(),
    dict(mask_token=0),
    dict(num_oov_indices=3),
    dict(num_oov_indices=3, oov_method="farmhash"),
    dict(num_oov_indices=2, oov_method="farmhash", salt=11),
    dict(output_mode="count"),
    dict(output_mode="one_hot", mask_token=0),
    dict(invert=True),
    dict(invert=True, mask_token=0),
]


@pytest.mark.parametrize("config", INT_CONFIGS, ids=str)
def test_integer_lookup_matches_keras(config):
    keras = require_keras()
    config = {"vocabulary": [5, 7, 13, 2] if config.get("invert") else [5, 7, 13, -1], **config}
    data = np.array([[1, 2, 0], [4, 5, 9]]) if config.get("invert") else INTS
    mine = irtool.layers.IntegerLookup(**config, name="lookup")
    theirs = keras.layers.IntegerLookup(**config, name="lookup")
    np.testing.assert_array_equal(np.asarray(mine(data)), np.asarray(theirs(data)))
    assert mine.get_vocabulary() == theirs.get_vocabulary()
    assert mine.get_config() == theirs.get_config()


@pytest.mark.parametrize("layer", ["StringLookup", "IntegerLookup"])
@pytest.mark.parametrize("config", [dict(), dict(max_tokens=4, mask_token=None), dict(output_mode="tf_idf")], ids=str)
def test_adapt_matches_keras(layer, config):
    keras = require_keras()
    rng = np.random.default_rng(3)
    if layer == "StringLookup":
        data = rng.choice(np.array(["x", "y", "zz", "日", "é", "b", "a"]), size=(12, 4))
        probe = np.array([["x", "a", "q"], ["日", "é", "zz"]])
    else:
        data = rng.integers(-3, 6, size=(12, 4))
        probe = np.array([[1, -3, 99], [0, 5, 2]])
    mine = getattr(irtool.layers, layer)(**config)
    theirs = getattr(keras.layers, layer)(**config)
    mine.adapt(data)
    theirs.adapt(data)
    assert mine.get_vocabulary() == theirs.get_vocabulary()
    np.testing.assert_allclose(np.asarray(mine(probe)), np.asarray(theirs(probe)), rtol=1e-6)
    # Batches one by one, as from a dataset.
    batches = getattr(irtool.layers, layer)(**config)
    batches.adapt(iter([data[:5], data[5:]]))
    assert batches.get_vocabulary() == mine.get_vocabulary()


def test_vocabulary_file(tmp_path):
    keras = require_keras()
    path = tmp_path / "vocab.txt"
    path.write_text("a\nb\n日本\n", encoding="utf-8")
    mine = irtool.layers.StringLookup(vocabulary=str(path), mask_token="[M]")
    theirs = keras.layers.StringLookup(vocabulary=str(path), mask_token="[M]")
    assert mine.get_vocabulary() == theirs.get_vocabulary()
    np.testing.assert_array_equal(np.asarray(mine(WORDS)), np.asarray(theirs(WORDS)))


ONNX_CASES = [
    ("StringLookup", dict(), WORDS),
    ("StringLookup", dict(mask_token="[M]"), WORDS),
    ("StringLookup", dict(output_mode="one_hot"), WORDS),
    ("StringLookup", dict(output_mode="multi_hot", mask_token="[M]"), WORDS),
    ("StringLookup", dict(output_mode="count", num_oov_indices=0, vocabulary=["a", "b", "z"]), WORDS),
    ("StringLookup", dict(output_mode="tf_idf", idf_weights=[0.5, 0.25, 2.0, 1.0, 3.0]), WORDS),
    ("IntegerLookup", dict(vocabulary=[5, 7, 13, -1]), INTS),
    ("IntegerLookup", dict(vocabulary=[5, 7, 13, -1], num_oov_indices=3, mask_token=0), INTS),
    ("IntegerLookup", dict(vocabulary=[5, 7, 13, -1], output_mode="multi_hot"), INTS.astype("int32")),
    ("IntegerLookup", dict(vocabulary=[5, 7, 13, 2], invert=True, mask_token=0), np.array([[0, 1, 2], [9, 4, 3]])),
]


@pytest.mark.parametrize(("layer", "config", "data"), ONNX_CASES, ids=[f"{c[0]}-{c[1]}" for c in ONNX_CASES])
def test_onnx_runtime_parity(layer, config, data):
    config = {"vocabulary": VOCAB, **config}
    dtype = "string" if data.dtype.kind == "U" else data.dtype.name
    inputs = irtool.Input((3,), dtype=dtype)
    model = irtool.Model(inputs, getattr(irtool.layers, layer)(**config)(inputs))
    feed = _strings(data) if dtype == "string" else data
    proto = assert_onnx_parity(model, feed)
    assert any(node.op_type == "LabelEncoder" and node.domain == "ai.onnx.ml" for node in proto.graph.node)


def test_onnx_string_outputs():
    inputs = irtool.Input((3,), dtype="int64")
    model = irtool.Model(inputs, irtool.layers.StringLookup(vocabulary=VOCAB, invert=True)(inputs))
    data = np.array([[0, 1, 2], [5, 4, 9]])
    proto = irtool.onnx.to_onnx(model)
    (got,) = run_onnx(proto, {proto.graph.input[0].name: data})
    assert got.tolist() == model.predict(data, verbose=0).tolist() == [["[UNK]", "a", "b"], ["", "日本", "[UNK]"]]


def test_hashed_oov_buckets_refuse_export():
    inputs = irtool.Input((3,), dtype="string")
    layer = irtool.layers.StringLookup(vocabulary=VOCAB, num_oov_indices=2, name="words")
    model = irtool.Model(inputs, layer(inputs))
    with pytest.raises(irtool.onnx.ExportError, match="words") as info:
        irtool.onnx.to_onnx(model)
    assert "keep it outside the exported model" in str(info.value)


def test_validation():
    with pytest.raises(ValueError, match="sparse=True"):
        irtool.layers.StringLookup(vocabulary=VOCAB, output_mode="multi_hot", sparse=True)
    with pytest.raises(ValueError, match="repeated"):
        irtool.layers.StringLookup(vocabulary=["a", "a"])
    with pytest.raises(ValueError, match="`output_mode` must be `'int'`"):
        irtool.layers.IntegerLookup(invert=True, output_mode="count")
    with pytest.raises(ValueError, match="expects string inputs"):
        irtool.layers.StringLookup(vocabulary=VOCAB, name="lk")(irtool.Input((2,), dtype="int64"))
    with pytest.raises(ValueError, match="num_oov_indices=0"):
        irtool.layers.StringLookup(vocabulary=VOCAB, num_oov_indices=0)(np.array(["nope"]))


def _keras_model(keras, layer):
    inputs = keras.Input((3,), dtype="string")
    return keras.Model(inputs, layer(inputs))


@pytest.mark.parametrize("adapted", [False, True])
def test_keras_written_file_loads_and_back(adapted, tmp_path):
    keras = require_keras()
    if adapted:
        layer = keras.layers.StringLookup(output_mode="tf_idf")
        layer.adapt(np.array([["a", "b", "b"], ["c", "a", "a"], ["日本", "a", "c"]]))
    else:
        layer = keras.layers.StringLookup(vocabulary=VOCAB, output_mode="count", mask_token="[M]")
    want = np.asarray(layer(WORDS))
    _keras_model(keras, layer).save(tmp_path / "keras.keras")
    ours = irtool.models.load_model(tmp_path / "keras.keras")
    np.testing.assert_allclose(ours.predict(WORDS, verbose=0), want, rtol=1e-6)
    assert ours.layers[1].get_vocabulary() == layer.get_vocabulary()
    assert_onnx_parity(ours, _strings(WORDS))
    ours.save(tmp_path / "ours.keras")
    again = keras.saving.load_model(tmp_path / "ours.keras")
    np.testing.assert_allclose(np.asarray(again.layers[1](WORDS)), want, rtol=1e-6)
    assert again.layers[1].get_vocabulary() == layer.get_vocabulary()
    # Keras' unzipped folder too.
    ours.save(tmp_path / "folder", zipped=False)
    folder = irtool.models.load_model(tmp_path / "folder")
    np.testing.assert_allclose(folder.predict(WORDS, verbose=0), want, rtol=1e-6)
