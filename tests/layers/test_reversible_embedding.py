"""ReversibleEmbedding: forward lookup, reverse logits (tied and untied, soft cap, reverse_dtype),
masks, gradients, ONNX, configs, Keras parity and a .keras file written by Keras."""

import numpy as np
import pytest

import irtool
from irtool import layers

from ..harness import assert_same_outputs, keras_parity, require_keras, run_layer_test

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")
RNG = np.random.default_rng(5)
IDS = np.array([[1, 2, 0, 3], [4, 0, 0, 5]], "int32")


def tied_model(lib, **kwargs):
    """ids -> embedding -> reverse projection with the same layer (the language-model head)."""
    ids = lib.Input((4,), dtype="int32")
    embedding = lib.layers.ReversibleEmbedding(6, 3, **kwargs)
    return lib.Model(ids, embedding(embedding(ids), reverse=True))


def test_forward_is_an_embedding_lookup():
    run_layer_test(
        layers.ReversibleEmbedding,
        dict(input_dim=6, output_dim=3),
        input_data=IDS,
        expected_output_shape=(None, 4, 3),
        expected_num_trainable_weights=1,
    )


@pytest.mark.parametrize(
    "kwargs",
    [
        dict(),
        dict(tie_weights=False),
        dict(logit_soft_cap=0.5),
        dict(tie_weights=False, logit_soft_cap=2.0, reverse_dtype="float32"),
    ],
    ids=["tied", "untied", "soft_cap", "untied_cap_dtype"],
)
def test_reverse_projection(kwargs):
    run_layer_test(
        layers.ReversibleEmbedding,
        dict(input_dim=6, output_dim=3, **kwargs),
        input_shape=(4, 3),
        call_kwargs=dict(reverse=True),
        expected_output_shape=(None, 4, 6),
        expected_num_trainable_weights=1 if kwargs.get("tie_weights", True) else 2,
        # reverse_dtype pins float32 even in the harness' float64 twin: finite differences are too coarse
        check_gradients="reverse_dtype" not in kwargs,
    )


def test_reverse_logits_by_hand():
    layer = layers.ReversibleEmbedding(6, 3, tie_weights=False, logit_soft_cap=2.0)
    hidden = RNG.standard_normal((2, 3)).astype("float32")
    layer.build()
    table, reverse = layer.get_weights()
    assert table.shape == (6, 3) and reverse.shape == (3, 6)
    np.testing.assert_allclose(layer(hidden, reverse=True), np.tanh(hidden @ reverse / 2.0) * 2.0, rtol=1e-6)
    tied = layers.ReversibleEmbedding(6, 3)
    tied.build()
    np.testing.assert_allclose(tied(hidden, reverse=True), hidden @ tied.get_weights()[0].T, rtol=1e-6)


def test_mask_follows_the_forward_call_only():
    ids = irtool.Input((4,), dtype="int32")
    embedding = layers.ReversibleEmbedding(6, 3, mask_zero=True)
    hidden = embedding(ids)
    assert hidden._keras_mask is not None
    assert embedding(hidden, reverse=True)._keras_mask is None


@pytest.mark.parametrize("kwargs", [dict(), dict(tie_weights=False, logit_soft_cap=0.7)], ids=["tied", "untied"])
def test_keras_parity(kwargs):
    require_keras()
    ours, _ = keras_parity(
        lambda lib: tied_model(lib, **kwargs),
        IDS,
        weight_paths=True,
        configs=lambda layer: isinstance(layer, layers.ReversibleEmbedding),
        onnx_parity=True,
        direct_call=True,
    )
    assert len(ours.weights) == (1 if not kwargs else 2)


def test_keras_file_loads_in_irtool(tmp_path):
    real = require_keras()
    real.utils.set_random_seed(1)
    source = tied_model(real, tie_weights=False, logit_soft_cap=1.5)
    source.save(tmp_path / "m.keras")
    loaded = irtool.models.load_model(tmp_path / "m.keras")
    assert isinstance(loaded.layers[1], layers.ReversibleEmbedding)
    assert_same_outputs(source, loaded, IDS, quiet=True)
