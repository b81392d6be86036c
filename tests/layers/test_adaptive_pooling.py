"""Adaptive pooling layers: PyTorch's bins (torch as the reference), both data formats, uniform
bins (one pooling primitive) and overlapping ones (slices), configs, ONNX, gradients, Keras files."""

import numpy as np
import pytest
import torch

import irtool
from irtool import layers
from irtool.ops.adaptive_pooling import adaptive_bins

from ..harness import require_keras, run_layer_test

RNG = np.random.default_rng(8)
TORCH = {
    ("average", 1): torch.nn.functional.adaptive_avg_pool1d,
    ("average", 2): torch.nn.functional.adaptive_avg_pool2d,
    ("average", 3): torch.nn.functional.adaptive_avg_pool3d,
    ("max", 1): torch.nn.functional.adaptive_max_pool1d,
    ("max", 2): torch.nn.functional.adaptive_max_pool2d,
    ("max", 3): torch.nn.functional.adaptive_max_pool3d,
}


def torch_ref(x, kind, output_size, data_format):
    rank = x.ndim - 2
    if data_format == "channels_last":
        x = np.moveaxis(x, -1, 1)
    y = TORCH[kind, rank](torch.from_numpy(x.astype("float64")), output_size).numpy()
    return np.moveaxis(y, 1, -1) if data_format == "channels_last" else y


def test_bins_are_pytorchs():
    assert adaptive_bins(5, 3) == [(0, 2), (1, 4), (3, 5)]
    assert adaptive_bins(6, 3) == [(0, 2), (2, 4), (4, 6)]
    assert adaptive_bins(3, 5) == [(0, 1), (0, 2), (1, 2), (1, 3), (2, 3)]


CASES = [
    # (rank, spatial input, output_size, data_format)
    (1, (7,), 3, "channels_last"),
    (1, (8,), 4, "channels_first"),
    (2, (5, 7), (3, 2), "channels_last"),
    (2, (6, 4), 2, "channels_last"),
    (2, (5, 6), (4, 3), "channels_first"),
    (3, (4, 5, 3), (2, 3, 2), "channels_last"),
    (3, (4, 4, 2), 2, "channels_first"),
]


@pytest.mark.parametrize("kind", ["average", "max"])
@pytest.mark.parametrize("rank, spatial, output_size, data_format", CASES)
def test_adaptive_pooling(kind, rank, spatial, output_size, data_format):
    cls = getattr(layers, f"Adaptive{'Average' if kind == 'average' else 'Max'}Pooling{rank}D")
    shape = (*spatial, 3) if data_format == "channels_last" else (3, *spatial)
    x = RNG.standard_normal((2, *shape)).astype("float32")
    size = (output_size,) * rank if isinstance(output_size, int) else output_size
    want_shape = (None, *size, 3) if data_format == "channels_last" else (None, 3, *size)
    run_layer_test(
        cls,
        {"output_size": output_size, "data_format": data_format},
        input_data=x,
        expected_output_shape=want_shape,
        expected_output=torch_ref(x, kind, size, data_format),
        expected_num_trainable_weights=0,
    )


def test_output_size_and_data_format_errors():
    assert layers.AdaptiveAveragePooling2D(3).get_config()["output_size"] == (3, 3)
    assert layers.AdaptiveMaxPooling1D([4]).output_size == (4,)
    with pytest.raises(TypeError, match="output_size"):
        layers.AdaptiveMaxPooling2D((1, 2, 3))
    with pytest.raises(ValueError, match="length 1"):
        layers.AdaptiveAveragePooling1D((1, 2))
    with pytest.raises(ValueError, match="data_format"):
        layers.AdaptiveMaxPooling3D(2, data_format="nchw")
    with pytest.raises(ValueError, match="static spatial sizes"):
        layers.AdaptiveAveragePooling2D(2)(irtool.Input((None, 5, 3)))


def test_keras_file_with_adaptive_pooling_loads(tmp_path):
    keras = require_keras()
    keras.utils.set_random_seed(2)
    inputs = keras.Input((9, 7, 3))
    x = keras.layers.Conv2D(4, 3, padding="same")(inputs)
    x = keras.layers.AdaptiveMaxPooling2D((4, 3))(x)
    x = keras.layers.AdaptiveAveragePooling2D(2, data_format="channels_first")(x)
    model = keras.Model(inputs, x)
    path = tmp_path / "adaptive.keras"
    model.save(path)
    data = RNG.standard_normal((2, 9, 7, 3)).astype("float32")
    ours = irtool.models.load_model(path)
    want = keras.ops.convert_to_numpy(model(data))
    np.testing.assert_allclose(ours.predict(data, verbose=0), want, rtol=1e-5, atol=1e-5)
