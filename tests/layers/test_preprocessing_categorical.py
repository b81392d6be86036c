"""CategoryEncoding and Discretization: Keras 3's outputs, configs, files and exact ONNX."""

import numpy as np
import pytest

import irtool

from ..harness import assert_onnx_parity, require_keras, run_layer_test

RNG = np.random.default_rng(5)
TOKENS = np.array([[0, 1, 3], [0, 0, 4], [2, 2, 2], [4, 1, 0]], dtype="int32")


@pytest.mark.parametrize("mode", ["one_hot", "multi_hot", "count", "binary"])
@pytest.mark.parametrize("data", [TOKENS, TOKENS[:, :1], TOKENS[:, 0]], ids=["rank2", "last1", "rank1"])
def test_category_encoding(mode, data):
    run_layer_test(
        irtool.layers.CategoryEncoding,
        {"num_tokens": 5, "output_mode": mode},
        input_data=data,
        expected_output_dtype="float32",
        check_gradients=False,
    )


def test_category_encoding_count_weights_and_out_of_range():
    layer = irtool.layers.CategoryEncoding(num_tokens=4, output_mode="count")
    weights = np.array([[0.1, 0.2], [0.1, 0.1], [0.2, 0.3], [0.4, 0.2]], dtype="float32")
    got = layer(np.array([[0, 1], [0, 0], [1, 2], [3, 1]]), count_weights=weights)
    want = [[0.1, 0.2, 0, 0], [0.2, 0, 0, 0], [0, 0.2, 0.3, 0], [0, 0.2, 0, 0.4]]
    np.testing.assert_allclose(got, want, rtol=1e-6)
    # torch's one_hot (clamped, then masked) encodes a negative index to zeros; so do we.
    np.testing.assert_array_equal(
        irtool.layers.CategoryEncoding(3, "one_hot")(np.array([-1, 2])), [[0, 0, 0], [0, 0, 1]]
    )


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({}, "num_tokens must be set"),
        ({"num_tokens": 0}, "must be >= 1"),
        ({"num_tokens": 3, "output_mode": "int"}, "Unknown arg for output_mode"),
        ({"num_tokens": 3, "sparse": True}, "sparse=True"),
    ],
)
def test_category_encoding_validation(kwargs, message):
    with pytest.raises(ValueError, match=message):
        irtool.layers.CategoryEncoding(**kwargs)


@pytest.mark.parametrize("mode", ["int", "one_hot", "multi_hot", "count"])
def test_discretization(mode):
    data = np.array([[-1.5, 0.0, 0.5], [1.0, 2.5, np.nan], [-0.0, 1.0, 3.0]], dtype="float32")
    run_layer_test(
        irtool.layers.Discretization,
        {"bin_boundaries": [0.0, 1.0, 2.5], "output_mode": mode},
        input_data=data,
        expected_output_dtype="int32" if mode == "int" else "float32",
        check_gradients=False,
    )


def test_discretization_integer_inputs():
    run_layer_test(
        irtool.layers.Discretization,
        {"bin_boundaries": [1.0, 3.0]},
        input_data=np.array([[0, 1, 2], [3, 4, -2]], dtype="int64"),
        check_gradients=False,
    )


def keras_adapted(keras, num_bins, batches, epsilon=0.01):
    """Keras' adapt on arrays, minus its tf.data check (Keras 3.15's adapt imports TensorFlow)."""
    layer = keras.layers.Discretization(num_bins=num_bins, epsilon=epsilon)
    layer.reset_state()
    for batch in batches:
        layer.update_state(batch)
    layer.finalize_state()
    return layer


@pytest.mark.parametrize("num_bins, epsilon, batches", [(4, 0.01, 1), (5, 0.1, 3), (3, 0.001, 2)])
def test_discretization_adapt_matches_keras(num_bins, epsilon, batches):
    keras = require_keras()
    data = RNG.standard_normal((batches, 200, 3)).astype("float32") * 3
    theirs = keras_adapted(keras, num_bins, list(data), epsilon)
    ours = irtool.layers.Discretization(num_bins=num_bins, epsilon=epsilon)
    ours.adapt(list(data) if batches > 1 else data[0])
    assert ours.bin_boundaries == theirs.bin_boundaries
    assert {**ours.get_config(), "name": None} == {**theirs.get_config(), "name": None}
    sample = data[0, :20]
    np.testing.assert_array_equal(ours(sample), keras.ops.convert_to_numpy(theirs(sample)))
    restored = irtool.layers.Discretization.from_config(theirs.get_config())
    assert restored.bin_boundaries == theirs.bin_boundaries and restored.num_bins == num_bins
    inputs = irtool.Input((3,))
    assert_onnx_parity(irtool.Model(inputs, ours(inputs)), sample)


def test_discretization_validation():
    with pytest.raises(ValueError, match="either `num_bins` or `bin_boundaries`"):
        irtool.layers.Discretization()
    with pytest.raises(ValueError, match="should not be set"):
        irtool.layers.Discretization(bin_boundaries=[0.0], num_bins=2)
    with pytest.raises(ValueError, match="Cannot adapt"):
        irtool.layers.Discretization(bin_boundaries=[0.0]).adapt(np.zeros(3))
    with pytest.raises(ValueError, match="output_mode"):
        irtool.layers.Discretization(num_bins=2, output_mode="tf_idf")


def test_keras_written_file_loads_and_predicts(tmp_path):
    keras = require_keras()
    data = RNG.standard_normal((100, 1)).astype("float32")
    disc = keras_adapted(keras, 4, [data])
    inputs = keras.Input((1,))
    buckets = disc(inputs)
    outputs = keras.layers.CategoryEncoding(num_tokens=4, output_mode="one_hot")(buckets)
    model = keras.Model(inputs, [buckets, outputs])
    model.save(tmp_path / "m.keras")
    ours = irtool.models.load_model(tmp_path / "m.keras")
    sample = data[:10]
    for mine, theirs in zip(ours.predict(sample, verbose=0), model.predict(sample, verbose=0)):
        np.testing.assert_array_equal(mine, theirs)
    assert_onnx_parity(ours, sample)
