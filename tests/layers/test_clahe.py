"""ContrastLimitedAdaptiveHistogramEqualization: against real Keras, a Keras-written ``.keras``
file and ONNX Runtime, plus closed forms."""

import numpy as np
import pytest

import irtool
from irtool.ops.clahe import clahe

from ..harness import assert_onnx_parity, keras_parity, layers_from, require_keras, run_layer_test

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

RNG = np.random.default_rng(12)
# Keras' float32 steps are reproduced in order, so NumPy agrees with Keras exactly in these
# cases; ONNX Runtime's CumSum and blends round differently, within a few ulps of 255.
ONNX_ATOL = 1e-4


def images(shape, high=255.0, low=0.0):
    return RNG.uniform(low, high, size=shape).astype("float32")


CASES = [
    ({}, (16, 16, 3), (0, 255)),
    ({"tile_grid_size": (3, 4), "clip_limit": 2.0}, (10, 13, 2), (0, 255)),  # padded tiles, clipping
    ({"tile_grid_size": (4, 4), "clip_limit": 9.0}, (12, 12, 1), (0, 255)),  # limit 9 * 9 / 256 truncates to 0
    ({"tile_grid_size": (2, 2), "clip_limit": 0.0, "value_range": (0, 1)}, (9, 7, 1), (0, 1)),
    ({"tile_grid_size": (3, 2), "data_format": "channels_first", "value_range": (-1, 1)}, (2, 11, 9), (-1, 1)),
]


@pytest.mark.parametrize("kwargs, shape, value_range", CASES)
def test_clahe_matches_keras(kwargs, shape, value_range):
    require_keras()

    def build(k):
        inputs = k.Input(shape)
        return k.Model(inputs, k.layers.ContrastLimitedAdaptiveHistogramEqualization(**kwargs)(inputs))

    x = images((3, *shape), *value_range[::-1])
    ours, _ = keras_parity(
        build,
        x,
        atol=1e-6,
        rtol=1e-6,
        seed=None,
        output_shape=True,
        names=True,
        configs=layers_from("clahe"),
        config_ignore=(),
        config_nested="exact",
    )
    assert_onnx_parity(ours, x, atol=ONNX_ATOL, rtol=1e-6)


def test_clahe_on_one_image_matches_keras():
    keras = require_keras()
    x = images((10, 12, 3))
    want = np.asarray(keras.layers.ContrastLimitedAdaptiveHistogramEqualization(tile_grid_size=(2, 3))(x))
    got = irtool.layers.ContrastLimitedAdaptiveHistogramEqualization(tile_grid_size=(2, 3))(x)
    np.testing.assert_array_equal(got, want)


def test_keras_written_file_acts_at_inference_and_exports(tmp_path):
    keras = require_keras()
    inputs = keras.Input((12, 12, 3))
    h = keras.layers.ContrastLimitedAdaptiveHistogramEqualization(clip_limit=3.0, tile_grid_size=(3, 3))(inputs)
    theirs = keras.Model(inputs, keras.layers.Conv2D(2, 3)(h))
    theirs.save(tmp_path / "clahe.keras")
    ours = irtool.models.load_model(tmp_path / "clahe.keras")
    x = images((2, 12, 12, 3))
    np.testing.assert_allclose(ours.predict(x, verbose=0), theirs.predict(x, verbose=0), atol=1e-4, rtol=1e-5)
    assert_onnx_parity(ours, x, atol=1e-3, rtol=1e-5)


def test_one_tile_without_clipping_is_histogram_equalization():
    """A closed form: one tile, no clip limit, a constant map: the stretched cumulative
    histogram, ``(cdf(v) - cdf(0)) * 255 / (n - cdf(0))``, of each pixel's value."""
    x = RNG.integers(0, 256, size=(1, 6, 7, 1)).astype("float32")
    counts = np.bincount(x.astype(int).ravel(), minlength=256)
    cdf = np.cumsum(counts)
    expected = (cdf[x.astype(int)] - cdf[0]) * 255.0 / (x.size - cdf[0])
    got = clahe(x, (0, 255), 0.0, (1, 1), "channels_last")
    np.testing.assert_allclose(got, expected, rtol=1e-6)


def test_clahe_round_trips_and_has_no_gradient():
    run_layer_test(
        irtool.layers.ContrastLimitedAdaptiveHistogramEqualization,
        {"tile_grid_size": (2, 2), "clip_limit": 2.0},
        input_data=images((2, 6, 6, 2)),
        expected_output_shape=(None, 6, 6, 2),
        expected_num_trainable_weights=0,
        check_gradients=False,
        atol=ONNX_ATOL,
    )


def test_wrong_rank_and_unknown_size_are_refused():
    layer = irtool.layers.ContrastLimitedAdaptiveHistogramEqualization(name="clahe")
    with pytest.raises(ValueError, match=r"(?s)Layer .clahe. expects images of rank 3 .*=\(None, 8\)"):
        layer(irtool.Input((8,)))
    with pytest.raises(ValueError, match=r"(?s)known height, width and channels. Received: \(None, None, 8, 3\)"):
        layer(irtool.Input((None, 8, 3)))
