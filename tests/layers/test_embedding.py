"""Embedding: lookups for every integer dtype and floats, masks, configs, dynamic lengths, ONNX."""

import numpy as np
import pytest

import irtool
import irtool as keras
from irtool import layers, ops

from ..conftest import assert_onnx_parity
from ..harness import run_layer_test

RNG = np.random.default_rng(14)


@pytest.mark.parametrize("dtype", ["int32", "int64", "int8", "int16", "uint8", "uint16", "float32"])
def test_lookup_for_every_id_dtype(dtype):
    inputs = keras.Input((None,), dtype=dtype)
    embedding = layers.Embedding(10, 3)
    model = keras.Model(inputs, embedding(inputs))
    (table,) = embedding.get_weights()
    assert table.shape == (10, 3) and np.abs(table).max() <= 0.05  # RandomUniform(-0.05, 0.05)
    for steps in (4, 7):
        ids = RNG.integers(0, 10, (2, steps)).astype(dtype)
        if dtype == "float32":
            ids += 0.7  # floats are truncated to int32, as in Keras
        got = model.predict(ids, verbose=0)
        np.testing.assert_array_equal(got, table[ids.astype("int32")])
        proto = assert_onnx_parity(model, ids, atol=0, rtol=0)
        assert proto.graph.node[-1].op_type == "Gather"


def test_rank_3_ids_and_eager_call():
    embedding = layers.Embedding(5, 2, embeddings_initializer="ones")
    ids = RNG.integers(0, 5, (2, 3, 4)).astype("int64")
    out = embedding(ids)
    assert out.shape == (2, 3, 4, 2) and (out == 1).all()
    inputs = keras.Input((3, 4), dtype="int64")
    assert embedding(inputs).shape == (None, 3, 4, 2)
    assert embedding.compute_output_shape((None, 3)) == (None, 3, 2)


def test_mask_zero_produces_a_mask():
    tokens = keras.Input((None,), dtype="int32")
    embedded = layers.Embedding(8, 4, mask_zero=True)(tokens)
    assert embedded._keras_mask is not None and embedded._keras_mask.shape == (None, None)
    assert embedded._keras_mask.dtype == "bool"
    plain = layers.Embedding(8, 4)(tokens)
    assert plain._keras_mask is None

    class MaskOut(layers.Layer):
        supports_masking = True

        def call(self, inputs, mask=None):
            return ops.cast(mask, "float32")

    model = keras.Model(tokens, MaskOut()(embedded))
    ids = np.array([[3, 0, 1, 0], [0, 0, 7, 2]], "int32")
    np.testing.assert_array_equal(model.predict(ids, verbose=0), (ids != 0).astype("float32"))
    assert_onnx_parity(model, ids)


def test_config_weights_argument_and_errors():
    table = RNG.standard_normal((6, 2)).astype("float32")
    embedding = layers.Embedding(6, 2, weights=table, mask_zero=True, name="emb")
    assert embedding.built
    np.testing.assert_array_equal(embedding.embeddings.numpy(), table)
    assert embedding.embeddings.path == "emb/embeddings"
    config = embedding.get_config()
    assert config["input_dim"] == 6 and config["output_dim"] == 2 and config["mask_zero"] is True
    assert config["embeddings_initializer"]["class_name"] == "RandomUniform"
    assert layers.Embedding.from_config(config).get_config() == config
    with pytest.warns(UserWarning, match="`input_length` is deprecated"):
        layers.Embedding(3, 2, input_length=4)
    for kwargs in ({"input_dim": 0, "output_dim": 2}, {"input_dim": 3, "output_dim": 2.0}):
        with pytest.raises(ValueError, match="must be a positive integer"):
            layers.Embedding(**kwargs)
    with pytest.raises(NotImplementedError, match="LoRA"):
        layers.Embedding(3, 2, lora_rank=2)


def test_float64_layer_dtype():
    inputs = keras.Input((3,), dtype="int32")
    embedding = layers.Embedding(4, 2, dtype="float64")
    model = keras.Model(inputs, embedding(inputs))
    ids = np.array([[0, 1, 3]], "int32")
    out = model.predict(ids, verbose=0)
    assert out.dtype == np.float64
    assert_onnx_parity(model, ids)


HARNESS_CASES = [
    ("Embedding", {"input_dim": 10, "output_dim": 4}, (5,)),
    ("Embedding", {"input_dim": 6, "output_dim": 2, "mask_zero": True}, (3,)),
]


@pytest.mark.parametrize("name, kwargs, shape", HARNESS_CASES, ids=[c[0] for c in HARNESS_CASES])
def test_layer_harness(name, kwargs, shape):
    """Shapes, configs, .keras file, ONNX, gradients and (where installed) Keras: tests/harness.py."""
    run_layer_test(getattr(irtool.layers, name), kwargs, shape, input_dtype="int32")
