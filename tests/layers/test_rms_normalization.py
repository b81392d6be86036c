"""RMSNormalization: Keras 3's formula and weight, configs, ONNX, gradients, Keras files."""

import numpy as np
import pytest

import irtool
from irtool import layers

from ..harness import require_keras, run_layer_test

RNG = np.random.default_rng(5)


def rms_ref(x, scale, axes, eps):
    x = x.astype("float64")
    return x / np.sqrt(np.mean(x * x, axis=axes, keepdims=True) + eps) * scale


@pytest.mark.parametrize(
    "kwargs, shape, axes",
    [({}, (3, 6), (-1,)), ({"axis": [-2, -1], "epsilon": 1e-3}, (3, 4), (-2, -1)), ({"axis": 1}, (4, 3), (1,))],
)
def test_rms_normalization(kwargs, shape, axes):
    model = run_layer_test(
        layers.RMSNormalization,
        kwargs,
        shape,
        expected_output_shape=(None, *shape),
        expected_num_trainable_weights=1,
        # Keras' torch path (F.rms_norm) takes trailing axes only.
        keras_parity=axes[-1] == -1,
    )
    layer = model.layers[-1]
    assert [w.path for w in layer.weights] == [f"{layer.name}/scale"]
    x = RNG.standard_normal((2, *shape)).astype("float32")
    scale = layer.get_weights()[0]
    if axes == (1,):
        scale = scale.reshape(-1, 1)
    want = rms_ref(x, scale, axes, kwargs.get("epsilon", 1e-6))
    np.testing.assert_allclose(model.predict(x, verbose=0), want, rtol=1e-5, atol=1e-5)


def test_rms_normalization_config_and_errors():
    layer = layers.RMSNormalization()
    assert layer.get_config()["axis"] == -1
    layer.build((None, 3, 5))
    assert layer.get_config()["axis"] == [-1] and layer.scale.shape == (5,)
    with pytest.raises(ValueError, match="out of bounds"):
        layers.RMSNormalization(axis=3).build((None, 4))
    with pytest.raises(ValueError, match="defined"):
        layers.RMSNormalization().build((None, None))


def test_rms_normalization_op_at_top_level_round_trips():
    x = irtool.Input((4,))
    model = irtool.Model(x, irtool.ops.rms_normalization(x, axis=-1, epsilon=1e-5))
    rebuilt = irtool.Model.from_config(model.get_config())
    data = RNG.standard_normal((2, 4)).astype("float32")
    np.testing.assert_allclose(rebuilt.predict(data, verbose=0), rms_ref(data, 1.0, (-1,), 1e-5), rtol=1e-5)


def test_keras_file_with_rms_normalization_loads(tmp_path):
    keras = require_keras()
    inputs = keras.Input((5, 6))
    norm = keras.layers.RMSNormalization(epsilon=1e-4)
    model = keras.Model(inputs, norm(inputs))
    norm.set_weights([RNG.standard_normal(6).astype("float32")])
    path = tmp_path / "rms.keras"
    model.save(path)
    x = RNG.standard_normal((3, 5, 6)).astype("float32")
    want = keras.ops.convert_to_numpy(model(x))
    ours = irtool.models.load_model(path)
    np.testing.assert_allclose(ours.predict(x, verbose=0), want, rtol=1e-5, atol=1e-5)
