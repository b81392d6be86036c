"""The Masking layer: zeroed steps, the mask it produces for RNNs and pooling, configs, Keras files."""

import numpy as np
import pytest

import irtool
from irtool import layers

from ..harness import keras_parity, require_keras, run_layer_test

RNG = np.random.default_rng(3)


def padded(batch=3, steps=5, features=4, mask_value=0.0):
    """Sequences whose trailing steps (and one inner step) are all ``mask_value``."""
    x = RNG.standard_normal((batch, steps, features)).astype("float32")
    x[0, 3:] = mask_value
    x[1, 1] = mask_value
    x[2, 4:] = mask_value
    x[2, 0, 0] = mask_value  # one equal feature does not mask the step
    return x


def masking_ref(x, mask_value):
    kept = np.any(x != mask_value, axis=-1)
    return np.where(kept[..., None], x, 0), kept


@pytest.mark.parametrize("mask_value", [0.0, -1.0])
def test_masking(mask_value):
    x = padded(mask_value=mask_value)
    want, kept = masking_ref(x, mask_value)
    run_layer_test(
        layers.Masking,
        {"mask_value": mask_value},
        input_data=x,
        expected_output_shape=(None, 5, 4),
        expected_output=want,
        expected_num_trainable_weights=0,
        # Finite differences at a masked step unmask it: gradients are checked on random steps below.
        check_gradients=False,
    )
    run_layer_test(layers.Masking, {"mask_value": mask_value}, (5, 4), check_onnx=False, keras_parity=False)
    inputs = irtool.Input((5, 4))
    outputs = layers.Masking(mask_value)(inputs)
    assert outputs._keras_mask.shape == (None, 5) and outputs._keras_mask.dtype == "bool"
    mask = irtool.Model(inputs, outputs._keras_mask).predict(x, verbose=0)
    np.testing.assert_array_equal(mask, kept)
    np.testing.assert_array_equal(layers.Masking(mask_value).compute_mask(x), kept)


@pytest.mark.parametrize("rnn", ["LSTM", "GRU", "SimpleRNN"])
def test_masking_feeds_rnns_like_keras(rnn):
    def build(lib):
        inputs = lib.Input((5, 4))
        hidden = getattr(lib.layers, rnn)(3, return_sequences=True)(lib.layers.Masking()(inputs))
        return lib.Model(inputs, lib.layers.GlobalAveragePooling1D()(hidden))

    keras_parity(build, padded(), direct_call=True, weight_paths=True, names=True)


def test_keras_file_with_masking_loads(tmp_path):
    keras = require_keras()
    keras.utils.set_random_seed(1)
    inputs = keras.Input((5, 4))
    hidden = keras.layers.LSTM(3)(keras.layers.Masking(mask_value=-1.0)(inputs))
    model = keras.Model(inputs, keras.layers.Dense(2)(hidden))
    path = tmp_path / "masking.keras"
    model.save(path)
    x = padded(mask_value=-1.0)
    ours = irtool.models.load_model(path)
    assert type(ours.layers[1]) is layers.Masking and ours.layers[1].mask_value == -1.0
    want = keras.ops.convert_to_numpy(model(x))
    np.testing.assert_allclose(ours.predict(x, verbose=0), want, rtol=1e-5, atol=1e-5)
