"""Keras parity for Embedding (ids of several dtypes, mask_zero) and for masks through merges."""

import numpy as np
import pytest

from ..harness import assert_same_config, keras_parity, require_keras

require_keras()
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

RNG = np.random.default_rng(23)
IDS_A = np.array([[1, 2, 0, 0], [3, 0, 4, 0], [0, 0, 0, 0]], "int32")
IDS_B = np.array([[5, 0, 6, 0], [0, 0, 1, 2], [0, 3, 0, 0]], "int32")


def check(builder, feeds, atol=1e-6):
    return keras_parity(builder, feeds, atol=atol, weight_paths=True)


def mask_out(k):
    """A layer returning its input mask as float32, -1s when there is none (same code in both)."""

    class MaskOut(k.layers.Layer):
        def __init__(self, **kwargs):
            super().__init__(**kwargs)
            self.supports_masking = True

        def call(self, inputs, mask=None):
            if mask is None:
                return k.ops.ones_like(inputs[..., 0]) * -1.0
            return k.ops.cast(mask, "float32")

        def compute_output_shape(self, input_shape):
            return input_shape[:-1]

    return MaskOut()


@pytest.mark.parametrize("dtype", ["int32", "int64", "float32"])
def test_embedding_lookup(dtype):
    def builder(k):
        tokens = k.Input((None,), dtype=dtype)
        return k.Model(tokens, k.layers.Embedding(10, 4)(tokens))

    ids = RNG.integers(0, 10, (3, 5)).astype(dtype)
    ours, theirs = check(builder, ids, atol=0)
    assert_same_config(ours.layers[1].get_config(), theirs.layers[1].get_config(), ignore=("dtype",))


def test_embedding_mask_zero():
    def builder(k):
        tokens = k.Input((4,), dtype="int32")
        x = k.layers.Embedding(8, 3, mask_zero=True)(tokens)
        return k.Model(tokens, [x, mask_out(k)(x)])

    check(builder, IDS_A)


@pytest.mark.parametrize("name", ["Add", "Subtract", "Average", "Multiply", "Maximum", "Minimum"])
@pytest.mark.parametrize("mask_b", [True, False])
def test_merge_masks(name, mask_b):
    def builder(k):
        a, b = k.Input((4,), dtype="int32"), k.Input((4,), dtype="int32")
        ea = k.layers.Embedding(8, 3, mask_zero=True)(a)
        eb = k.layers.Embedding(8, 3, mask_zero=mask_b)(b)
        merged = getattr(k.layers, name)()([ea, eb])
        return k.Model([a, b], [merged, mask_out(k)(merged)])

    check(builder, [IDS_A, IDS_B])


@pytest.mark.parametrize("axis", [-1, 1])
@pytest.mark.parametrize("mask_b", [True, False])
def test_concatenate_masks(axis, mask_b):
    def builder(k):
        a, b = k.Input((4,), dtype="int32"), k.Input((4,), dtype="int32")
        ea = k.layers.Embedding(8, 3, mask_zero=True)(a)
        eb = k.layers.Embedding(8, 3, mask_zero=mask_b)(b)
        joined = k.layers.Concatenate(axis=axis)([ea, eb])
        return k.Model([a, b], [joined, mask_out(k)(joined)])

    check(builder, [IDS_A, IDS_B])
