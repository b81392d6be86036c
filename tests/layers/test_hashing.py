"""Hashing and HashedCrossing against real Keras (TensorFlow's FarmHash, SipHash, cross_hashed)."""

from __future__ import annotations

import numpy as np
import pytest

import irtool
from irtool.ops.fingerprint import fingerprint64, siphash24

from ..harness import require_keras

RNG = np.random.default_rng(12)
WORDS = np.array(
    [[""], ["a"], ["héllo"], ["日本語"], ["[UNK]"], ["x" * 17], ["y" * 40], ["z" * 200], ["tab\tand space"]]
)


def _random_strings(n):
    return ["".join(chr(c) for c in RNG.integers(32, 0x3000, size=k)) for k in RNG.integers(0, 150, size=n)]


def test_fingerprint_and_siphash_match_tensorflow():
    tf = pytest.importorskip("tensorflow")
    strings = _random_strings(300) + [w[0] for w in WORDS]
    big = (1 << 63) - 1
    fast = tf.strings.to_hash_bucket_fast(strings, big).numpy()
    strong = tf.strings.to_hash_bucket_strong(strings, big, key=[7, 0xDECAFCAFFE]).numpy()
    np.testing.assert_array_equal([fingerprint64(s.encode()) % big for s in strings], fast)
    np.testing.assert_array_equal([siphash24((7, 0xDECAFCAFFE), s.encode()) % big for s in strings], strong)


CONFIGS = [
    dict(num_bins=3),
    dict(num_bins=5, salt=[133, 137]),
    dict(num_bins=5, salt=42),
    dict(num_bins=4, mask_value=""),
    dict(num_bins=4, output_mode="multi_hot"),
    dict(num_bins=4, output_mode="one_hot"),
    dict(num_bins=4, output_mode="count"),
]


@pytest.mark.parametrize("config", CONFIGS, ids=str)
def test_hashing_strings_match_keras(config):
    keras = require_keras()
    mine = irtool.layers.Hashing(**config, name="h")
    theirs = keras.layers.Hashing(**config, name="h")
    got, want = np.asarray(mine(WORDS)), np.asarray(theirs(WORDS))
    assert got.dtype == want.dtype
    np.testing.assert_array_equal(got, want)
    assert mine.get_config() == theirs.get_config()
    # The same in a traced model (the NumPy executor).
    inputs = irtool.Input((1,), dtype="string")
    np.testing.assert_array_equal(irtool.Model(inputs, mine(inputs)).predict(WORDS, verbose=0), want)


@pytest.mark.parametrize(
    "config", [dict(num_bins=7), dict(num_bins=7, mask_value=0), dict(num_bins=7, salt=3)], ids=str
)
@pytest.mark.parametrize("dtype", ["int64", "int32", "float32"])
def test_hashing_numbers_match_keras(config, dtype):
    keras = require_keras()
    data = np.array([[1], [-2], [0], [123456789], [7]]).astype(dtype)
    if dtype == "float32":
        data = data + np.float32(0.5)  # truncated toward zero before hashing, as in Keras
    np.testing.assert_array_equal(
        np.asarray(irtool.layers.Hashing(**config)(data)), np.asarray(keras.layers.Hashing(**config)(data))
    )


@pytest.mark.parametrize("output_mode", ["int", "one_hot"])
def test_hashed_crossing_matches_keras(output_mode):
    keras = require_keras()
    strings = np.array([["a"], ["b"], ["é"], [""], ["a"]])
    ints = np.array([[1], [2], [-3], [0], [1 << 40]])
    for pair in ([strings, ints], [ints, strings], [strings, strings, ints]):
        got = irtool.layers.HashedCrossing(num_bins=9, output_mode=output_mode)(pair)
        want = keras.layers.HashedCrossing(num_bins=9, output_mode=output_mode)(pair)
        np.testing.assert_array_equal(np.asarray(got), np.asarray(want))


def test_export_is_refused_naming_the_layer(tmp_path):
    inputs = irtool.Input((1,), dtype="string")
    model = irtool.Model(inputs, irtool.layers.Hashing(num_bins=4, name="city_hash")(inputs))
    with pytest.raises(irtool.onnx.ExportError, match="city_hash") as info:
        irtool.onnx.to_onnx(model)
    assert "FarmHash" in str(info.value) and "keep it outside the exported model" in str(info.value)
    a, b = irtool.Input((1,), dtype="string"), irtool.Input((1,), dtype="int64")
    crossed = irtool.Model([a, b], irtool.layers.HashedCrossing(num_bins=4, name="cross")([a, b]))
    with pytest.raises(irtool.onnx.ExportError, match="cross"):
        irtool.onnx.to_onnx(crossed)


def test_keras_written_file_loads(tmp_path):
    keras = require_keras()
    inputs = keras.Input((1,), dtype="string")
    outputs = keras.layers.Hashing(num_bins=6, salt=[1, 2], output_mode="one_hot")(inputs)
    keras.Model(inputs, outputs).save(tmp_path / "m.keras")
    ours = irtool.models.load_model(tmp_path / "m.keras")
    want = keras.layers.Hashing(num_bins=6, salt=[1, 2], output_mode="one_hot")(WORDS)
    np.testing.assert_array_equal(ours.predict(WORDS, verbose=0), np.asarray(want))
    ours.save(tmp_path / "ours.keras")
    again = keras.saving.load_model(tmp_path / "ours.keras")
    assert again.layers[1].get_config()["salt"] == [1, 2]


def test_string_tensors_are_refused_by_numeric_ops():
    inputs = irtool.Input((2,), dtype="string")
    with pytest.raises(ValueError, match="does not accept string tensors") as info:
        irtool.ops.add(inputs, inputs)
    assert "string[?, 2]" in str(info.value)
    with pytest.raises(ValueError, match="does not accept string tensors"):
        irtool.layers.Dense(2)(inputs)
