"""Masks through the merge layers (Keras 3 rules): OR of the input masks when every input is
masked; Maximum/Minimum/Multiply keep masked entries out of the values; Concatenate joins masks."""

import numpy as np
import pytest

import irtool
import irtool as keras
from irtool import layers, ops

from ..conftest import assert_onnx_parity
from ..harness import run_layer_test


class MaskOut(layers.Layer):
    """Outputs the incoming mask as float32 (or -1s when there is none)."""

    supports_masking = True

    def call(self, inputs, mask=None):
        if mask is None:
            return ops.ones_like(inputs[..., 0]) * -1.0
        return ops.cast(mask, "float32")


IDS_A = np.array([[1, 2, 0, 0], [3, 0, 4, 0]], "int32")
IDS_B = np.array([[5, 0, 6, 0], [0, 0, 1, 2]], "int32")


def two_branches(mask_b=True):
    a, b = keras.Input((4,), dtype="int32"), keras.Input((4,), dtype="int32")
    ea = layers.Embedding(8, 3, mask_zero=True)(a)
    eb = layers.Embedding(8, 3, mask_zero=mask_b)(b)
    return (a, b), (ea, eb)


def tables(model):
    return [layer.get_weights()[0] for layer in model.layers if isinstance(layer, layers.Embedding)]


def keras_extremum(op, xs, ms):
    out, out_mask = xs[0], ms[0]
    for x, m in zip(xs[1:], ms[1:]):
        if m is not None:
            x = np.where(m, x, out)
        if out_mask is not None:
            out = np.where(out_mask, out, x)
        out_mask = (out_mask | m) if m is not None and out_mask is not None else None
        out = op(out, x)
    return out


@pytest.mark.parametrize(
    "cls", [layers.Add, layers.Subtract, layers.Average, layers.Multiply, layers.Maximum, layers.Minimum]
)
@pytest.mark.parametrize("mask_b", [True, False])
def test_merge_masks_and_values(cls, mask_b):
    inputs, (ea, eb) = two_branches(mask_b)
    merged = cls()([ea, eb])
    assert (merged._keras_mask is not None) == mask_b
    model = keras.Model(list(inputs), [merged, MaskOut()(merged)])
    ta, tb = tables(model)
    xa, xb = ta[IDS_A], tb[IDS_B]
    ma, mb = (IDS_A != 0)[..., None], (IDS_B != 0)[..., None] if mask_b else None
    if cls in (layers.Maximum, layers.Minimum):
        want = keras_extremum(np.maximum if cls is layers.Maximum else np.minimum, [xa, xb], [ma, mb])
    elif cls is layers.Multiply:
        want = np.where(ma, xa, 1) * (np.where(mb, xb, 1) if mb is not None else xb)
        if mb is not None:
            want = np.where(ma | mb, want, 0)
    else:
        want = {layers.Add: xa + xb, layers.Subtract: xa - xb, layers.Average: (xa + xb) / 2}[cls]
    values, mask = model.predict([IDS_A, IDS_B], verbose=0)
    np.testing.assert_allclose(values, want, rtol=1e-6)
    want_mask = ((IDS_A != 0) | (IDS_B != 0)).astype("float32") if mask_b else -np.ones((2, 4), "float32")
    np.testing.assert_array_equal(mask, want_mask)
    assert_onnx_parity(model, [IDS_A, IDS_B])


@pytest.mark.parametrize("axis", [-1, 1])
@pytest.mark.parametrize("mask_b", [True, False])
def test_concatenate_masks(axis, mask_b):
    inputs, (ea, eb) = two_branches(mask_b)
    joined = layers.Concatenate(axis=axis)([ea, eb])
    model = keras.Model(list(inputs), MaskOut()(joined))
    ma, mb = IDS_A != 0, IDS_B != 0 if mask_b else np.ones((2, 4), bool)
    want = np.concatenate([ma, mb], axis=1) if axis == 1 else ma | mb
    np.testing.assert_array_equal(model.predict([IDS_A, IDS_B], verbose=0), want.astype("float32"))
    assert_onnx_parity(model, [IDS_A, IDS_B])


def test_concatenate_full_rank_mask_and_unmasked_inputs():
    class FullMask(layers.Layer):
        supports_masking = True

        def call(self, inputs):
            return inputs

        def compute_mask(self, inputs, previous_mask):
            return ops.greater(inputs, 0.0)

    a, b = keras.Input((2, 3)), keras.Input((2, 3))
    joined = layers.Concatenate(axis=1)([FullMask()(a), b])
    plain = layers.Concatenate()([a, b])
    assert plain._keras_mask is None
    model = keras.Model([a, b], MaskOut()(joined))
    x, y = np.random.default_rng(0).standard_normal((2, 2, 2, 3)).astype("float32")
    want = np.concatenate([(x > 0).any(-1), np.ones((2, 2), bool)], axis=1).astype("float32")
    np.testing.assert_array_equal(model.predict([x, y], verbose=0), want)
    assert_onnx_parity(model, [x, y])


HARNESS_CASES = [
    ("Add", {}, [(4,), (4,)]),
    ("Multiply", {}, [(3, 2), (3, 2)]),
    ("Concatenate", {"axis": 1}, [(3, 2), (4, 2)]),
    ("Maximum", {}, [(4,), (4,)]),
]


@pytest.mark.parametrize("name, kwargs, shape", HARNESS_CASES, ids=[c[0] for c in HARNESS_CASES])
def test_layer_harness(name, kwargs, shape):
    """Shapes, configs, .keras file, ONNX, gradients and (where installed) Keras: tests/harness.py."""
    run_layer_test(getattr(irtool.layers, name), kwargs, shape)


@pytest.mark.parametrize("name", ["Add", "Subtract", "Multiply", "Average", "Maximum", "Minimum"])
def test_inputs_of_lower_rank_get_axes_after_the_batch_axis(name):
    """Keras expands a lower-rank input at axis 1; NumPy's broadcasting adds the axis in front,
    which paired sample i of one input with every sample of the other ((3, 3, 4) instead of (3, 1, 4))."""
    from ..harness import keras_parity

    def build(lib):
        a, b = lib.Input((1, 4)), lib.Input((4,))
        return lib.Model([a, b], getattr(lib.layers, name)()([a, b]))

    rng = np.random.default_rng(0)
    inputs = [rng.standard_normal((3, 1, 4)).astype("float32"), rng.standard_normal((3, 4)).astype("float32")]
    keras_parity(build, inputs, output_shape=True, onnx_parity=True)
