"""TextVectorization against real Keras (its layer runs TensorFlow eagerly on the same strings, with
the same vocabulary or adapt data), ONNX Runtime for the exportable configurations, and Keras'
.keras files both ways."""

from __future__ import annotations

import numpy as np
import pytest

import irtool

from ..harness import assert_onnx_parity, require_keras

VOCAB = ["the", "cat", "sat", "on", "mat", "à", "日本", "the cat", "ÀΣ", "x\x00y", "a-b"]
# Unicode, runs of every ASCII whitespace character, whitespace that TensorFlow does not split on
# (no-break space, ideographic space), punctuation, NUL, empty and blank strings.
TEXTS = [
    "The cat sat on the mat.",
    "  the\t\tcat \n sat\v\fon\r\nthe   mat  ",
    "À à ÀΣ ΣΑΣ 日本 日本語 🙂",
    "the\u00a0cat\u3000sat",
    "a-b a_b (the) [cat]! x\x00y X\x00Y",
    "",
    " \t\n ",
    "THE CAT",
]


def _strings(texts):
    out = np.empty(len(texts), dtype=object)
    out[:] = list(texts)
    return out


X = _strings(TEXTS)


def _both(keras, **config):
    return irtool.layers.TextVectorization(**config), keras.layers.TextVectorization(**config)


def _assert_same(mine, theirs, x):
    got = np.asarray(mine(x))
    want = np.asarray(theirs(x))
    assert got.shape == want.shape, (got.shape, want.shape)
    np.testing.assert_allclose(got, want, rtol=1e-6)
    return got


CONFIGS = [
    dict(),
    dict(output_sequence_length=6),
    dict(output_sequence_length=30),
    dict(standardize=None),
    dict(standardize="lower"),
    dict(standardize="strip_punctuation", output_sequence_length=5),
    dict(split="character", standardize=None),
    dict(split="character", output_sequence_length=8, max_tokens=50),
    dict(ngrams=2),
    dict(ngrams=(3, 1), standardize="lower", output_mode="count"),
    dict(output_mode="multi_hot"),
    dict(output_mode="count", standardize=None),
    dict(output_mode="multi_hot", max_tokens=20, pad_to_max_tokens=True),
    dict(output_mode="tf_idf", idf_weights=[0.5, 1.0, 1.5, 2.0, 0.25, 3.0, 0.1, 0.2, 0.3, 0.4, 0.7]),
    dict(split=None, standardize=None),
    dict(split=None, output_mode="multi_hot"),
]


@pytest.mark.parametrize("config", CONFIGS, ids=str)
def test_matches_keras(config):
    keras = require_keras()
    mine, theirs = _both(keras, vocabulary=VOCAB, name="tv", **config)
    _assert_same(mine, theirs, X)
    _assert_same(mine, theirs, X[:, None])  # (batch, 1) works like (batch,)
    assert mine.get_vocabulary() == theirs.get_vocabulary()
    assert mine.vocabulary_size() == theirs.vocabulary_size()
    assert mine.get_config() == theirs.get_config()
    again = irtool.layers.TextVectorization.from_config(mine.get_config())
    np.testing.assert_array_equal(np.asarray(again(X)), np.asarray(mine(X)))


def test_pretokenized_rows_match_keras():
    keras = require_keras()
    rows = np.array([["the", "cat", "sat"], ["on", "", "mat"], ["日本", "the", "x"]])
    for config in (
        dict(split=None, standardize=None),
        dict(split=None, ngrams=2),
        dict(split=None, output_sequence_length=5),
        dict(split=None, output_sequence_length=2, ngrams=(2,)),
        dict(split=None, output_mode="count", ngrams=2),
    ):
        _assert_same(*_both(keras, vocabulary=VOCAB, **config), rows)


def test_standardize_and_split_every_code_point_like_keras():
    """Keras lowercases ASCII letters only (tf.strings.lower without an encoding) and splits on the
    six ASCII whitespace characters: every code point, between letters, through Keras' own layer."""
    keras = require_keras()
    points = [c for c in range(0x30000) if not 0xD800 <= c < 0xE000] + [0x10FFFF, 0xE0041]
    texts = _strings([f"Ab{chr(c)}C{chr(c)}{chr(c)}d" for c in points])
    for config in (
        dict(standardize="lower_and_strip_punctuation", split=None),
        dict(standardize=None, split="whitespace"),
        dict(standardize="lower", split="whitespace"),
    ):
        mine = irtool.layers.TextVectorization(vocabulary=["a"], **config)
        theirs = keras.layers.TextVectorization(vocabulary=["a"], **config)
        want = theirs._preprocess(texts)
        want = want.to_list() if hasattr(want, "to_list") else want.numpy().tolist()
        got = mine._tokens(texts, length=None).tolist()
        if config["split"] is None:
            assert got == [w.decode("utf-8") for w in want]
        else:
            assert [[t for t in row if t] for row in got] == [[w.decode("utf-8") for w in row] for row in want]


ADAPT_DATA = [
    "The cat sat on the mat",
    "the dog sat!",
    "a cat, a dog; a mat",
    "Ünïcode ünïcode 日本 日本 日本",
    "",
    "cat\tcat\ncat",
]


@pytest.mark.parametrize(
    "config",
    [
        dict(),
        dict(max_tokens=6),
        dict(ngrams=2, output_mode="tf_idf"),
        dict(output_mode="tf_idf", max_tokens=8, pad_to_max_tokens=True),
        dict(split="character", output_mode="count"),
        dict(standardize=None, output_sequence_length=4),
    ],
    ids=str,
)
def test_adapt_matches_keras(config):
    keras = require_keras()
    mine, theirs = _both(keras, **config)
    data = np.array(ADAPT_DATA)
    mine.adapt(data)
    theirs.adapt(data)
    assert mine.get_vocabulary() == theirs.get_vocabulary()
    _assert_same(mine, theirs, X)
    if config.get("output_mode") == "tf_idf":
        np.testing.assert_allclose(mine._lookup_layer.idf_weights.numpy(), theirs._lookup_layer.idf_weights, rtol=1e-6)
    # The same data as batches, as from a dataset, and as a list.
    batches = irtool.layers.TextVectorization(**config)
    batches.adapt(iter([data[:2], data[2:]]))
    assert batches.get_vocabulary() == mine.get_vocabulary()
    listed = irtool.layers.TextVectorization(**config)
    listed.adapt(ADAPT_DATA)
    assert listed.get_vocabulary() == mine.get_vocabulary()


def test_set_vocabulary_and_file(tmp_path):
    keras = require_keras()
    mine, theirs = _both(keras, output_mode="tf_idf")
    mine.set_vocabulary(VOCAB[:4], idf_weights=[1.0, 2.0, 3.0, 4.0])
    theirs.set_vocabulary(VOCAB[:4], idf_weights=[1.0, 2.0, 3.0, 4.0])
    _assert_same(mine, theirs, X)
    path = tmp_path / "vocab.txt"
    path.write_text("the\ncat\n日本\n", encoding="utf-8")
    mine, theirs = _both(keras, vocabulary=str(path), output_sequence_length=4)
    assert mine.get_vocabulary() == theirs.get_vocabulary() == ["", "[UNK]", "the", "cat", "日本"]
    _assert_same(mine, theirs, X)
    # A config naming a file outside the archive is refused in safe mode, as for StringLookup.
    config = irtool.saving.serialize_keras_object(irtool.layers.TextVectorization(vocabulary=str(path)))
    config["config"]["vocabulary"] = str(path)
    with pytest.raises(ValueError, match="outside of the model archive"):
        irtool.saving.deserialize_keras_object(config)


# -- ONNX: exact where ONNX Runtime can do it, refused by name elsewhere --------------------------------
EXPORTABLE = [
    dict(standardize=None),
    dict(standardize="lower"),
    dict(standardize="lower", output_sequence_length=7),
    dict(standardize=None, output_sequence_length=3),
    dict(standardize="lower", output_mode="multi_hot"),
    dict(standardize="lower", output_mode="count", max_tokens=16, pad_to_max_tokens=True),
    dict(standardize=None, output_mode="tf_idf", idf_weights=[0.5, 1.0, 1.5, 2.0, 0.25, 3.0, 0.1, 0.2, 0.3, 0.4, 0.7]),
    dict(standardize="lower", split=None),
]
# Every ASCII whitespace character in runs, at the ends, and between every other kind of text.
MANY = _strings(
    TEXTS
    + [
        f"{a}{w}{b}"
        for w in (" ", "\t", "\n\n", "\v \f", "\r\n", "  \t ")
        for a, b in (("The", "CAT"), ("日本", "À"), ("", ""))
    ]
    + ["\t".join(VOCAB), "\n".join(t.upper() for t in VOCAB), " " * 5, "ÀΣ İ ǅ ΣΑΣ x\x00Y"]
)


@pytest.mark.parametrize("config", EXPORTABLE, ids=str)
@pytest.mark.parametrize("rank", [1, 2])
def test_onnx_runtime_parity(config, rank):
    keras = require_keras()
    shape = () if rank == 1 else (1,)
    inputs = irtool.Input(shape, dtype="string")
    layer = irtool.layers.TextVectorization(vocabulary=VOCAB, **config)
    model = irtool.Model(inputs, layer(inputs))
    feed = MANY if rank == 1 else MANY[:, None]
    proto = assert_onnx_parity(model, feed)
    theirs = keras.layers.TextVectorization(vocabulary=VOCAB, **config)
    np.testing.assert_allclose(model.predict(feed, verbose=0), np.asarray(theirs(feed)), rtol=1e-6)
    # Batches of one and rows with no tokens at all export too.
    assert_onnx_parity(model, feed[:1])
    assert_onnx_parity(model, _strings([" ", ""]).reshape((2,) + shape))
    if config.get("split", "whitespace") == "whitespace":
        assert any(node.op_type == "StringSplit" for node in proto.graph.node)


@pytest.mark.parametrize(
    ("config", "argument"),
    [
        (dict(), "standardize='lower_and_strip_punctuation'"),
        (dict(standardize="strip_punctuation"), "standardize='strip_punctuation'"),
        (dict(standardize=None, split="character"), "split='character'"),
        (dict(standardize=None, ngrams=2), "ngrams=(1, 2)"),
    ],
    ids=str,
)
def test_export_refusals_name_the_layer_and_argument(config, argument):
    inputs = irtool.Input((), dtype="string")
    model = irtool.Model(inputs, irtool.layers.TextVectorization(vocabulary=VOCAB, name="words", **config)(inputs))
    with pytest.raises(irtool.onnx.ExportError) as info:
        irtool.onnx.to_onnx(model)
    message = str(info.value)
    assert "words" in message and "TextVectorization" in message and argument in message
    assert "keep it outside the exported model" in message


def test_validation_messages():
    layer = irtool.layers.TextVectorization
    with pytest.raises(ValueError, match="callable `standardize`.*loads and runs no Python code"):
        layer(standardize=str.lower)
    with pytest.raises(ValueError, match="callable `split`"):
        layer(split=str.split)
    serialized = {"module": "builtins", "class_name": "function", "config": "my_split", "registered_name": "function"}
    with pytest.raises(ValueError, match="callable `split`"):
        layer.from_config({**layer(vocabulary=VOCAB).get_config(), "split": serialized})
    with pytest.raises(ValueError, match="`standardize` argument .* Received: standardize='upper'"):
        layer(standardize="upper")
    with pytest.raises(ValueError, match="ragged=True"):
        layer(ragged=True)
    with pytest.raises(ValueError, match="sparse=True"):
        layer(output_mode="count", sparse=True)
    with pytest.raises(ValueError, match="Received: output_mode='one_hot'"):
        layer(output_mode="one_hot")
    with pytest.raises(ValueError, match="must not be set if `output_mode` is not 'int'"):
        layer(output_mode="count", output_sequence_length=3)
    with pytest.raises(ValueError, match="`ngrams` must be None"):
        layer(ngrams="2")
    with pytest.raises(ValueError, match=r"Layer 'tv' received: inputs.shape=\(None, 3\)"):
        layer(vocabulary=VOCAB, name="tv")(irtool.Input((3,), dtype="string"))
    with pytest.raises(ValueError, match=r"Layer 'tv2' \(TextVectorization\) with split=None and ngrams=2 needs"):
        layer(vocabulary=VOCAB, split=None, ngrams=2, name="tv2")(irtool.Input((), dtype="string"))
    with pytest.raises(ValueError, match="expects string inputs"):
        layer(vocabulary=VOCAB, name="tv3")(irtool.Input((1,), dtype="int64"))
    with pytest.raises(RuntimeError, match="must set the layer's vocabulary"):
        layer(output_mode="count")(X)


# -- .keras files both ways ------------------------------------------------------------------------------
def _keras_model(keras, layer):
    inputs = keras.Input((), dtype="string")
    return keras.Model(inputs, layer(inputs))


@pytest.mark.parametrize(
    "config",
    [
        dict(adapt=True, ngrams=2, output_mode="tf_idf"),
        dict(adapt=True, standardize="lower", output_sequence_length=5),
        dict(vocabulary=VOCAB, split="character", output_mode="count"),
    ],
    ids=str,
)
def test_keras_written_file_loads_and_back(config, tmp_path):
    keras = require_keras()
    config = dict(config)
    adapt = config.pop("adapt", False)
    layer = keras.layers.TextVectorization(**config)
    if adapt:
        layer.adapt(np.array(ADAPT_DATA))
    want = np.asarray(layer(X))
    _keras_model(keras, layer).save(tmp_path / "keras.keras")
    ours = irtool.models.load_model(tmp_path / "keras.keras")
    np.testing.assert_allclose(ours.predict(X, verbose=0), want, rtol=1e-6)
    assert ours.layers[1].get_vocabulary() == layer.get_vocabulary()
    if config.get("standardize") == "lower":
        assert_onnx_parity(ours, MANY)
    ours.save(tmp_path / "ours.keras")
    again = keras.saving.load_model(tmp_path / "ours.keras")
    np.testing.assert_allclose(np.asarray(again.layers[1](X)), want, rtol=1e-6)
    assert again.layers[1].get_vocabulary() == layer.get_vocabulary()
    folder = tmp_path / "folder"
    ours.save(folder, zipped=False)
    np.testing.assert_allclose(irtool.models.load_model(folder).predict(X, verbose=0), want, rtol=1e-6)


def test_irtool_adapted_file_loads_in_keras(tmp_path):
    keras = require_keras()
    inputs = irtool.Input((), dtype="string")
    layer = irtool.layers.TextVectorization(output_mode="tf_idf", ngrams=(1, 3))
    layer.adapt(np.array(ADAPT_DATA))
    model = irtool.Model(inputs, layer(inputs))
    model.save(tmp_path / "ours.keras")
    theirs = keras.saving.load_model(tmp_path / "ours.keras").layers[1]
    assert theirs.get_vocabulary() == layer.get_vocabulary()
    np.testing.assert_allclose(np.asarray(theirs(X)), model.predict(X, verbose=0), rtol=1e-6)
