"""Regularization layers: identity at inference (no ONNX node), configs, masks, eager noise."""

import math

import numpy as np
import pytest

import irtool
import irtool as keras
from irtool import layers

from ..conftest import assert_onnx_parity
from ..harness import run_layer_test

RNG = np.random.default_rng(13)

CASES = [
    (lambda: layers.SpatialDropout1D(0.3), (5, 4)),
    (lambda: layers.SpatialDropout2D(0.3), (3, 3, 4)),
    (lambda: layers.SpatialDropout2D(0.3, data_format="channels_first"), (4, 3, 3)),
    (lambda: layers.SpatialDropout3D(0.5, seed=1), (2, 2, 2, 3)),
    (lambda: layers.GaussianNoise(0.5), (None, 4)),
    (lambda: layers.GaussianDropout(0.4), (6,)),
    (lambda: layers.AlphaDropout(0.2, noise_shape=(None, 1, 4)), (None, 4)),
    (lambda: layers.ActivityRegularization(l1=0.01, l2=0.1), (6,)),
]


@pytest.mark.parametrize("make, shape", CASES)
def test_identity_at_inference_and_no_onnx_nodes(make, shape):
    inputs = keras.Input(shape)
    layer = make()
    model = keras.Model(inputs, layers.Dense(2)(layer(inputs)))
    for steps in (2, 5) if None in shape else (2,):
        x = RNG.standard_normal((3, *(d or steps for d in shape))).astype("float32")
        kernel, bias = model.layers[-1].get_weights()
        np.testing.assert_allclose(model.predict(x, verbose=0), x @ kernel + bias, rtol=1e-5, atol=1e-6)
        proto = assert_onnx_parity(model, x)
        assert {n.op_type for n in proto.graph.node} <= {"MatMul", "Add", "Gemm"}  # only the Dense
    assert layer(x) is x  # eager inference: the input itself
    assert layer.weights == []


def test_configs_match_keras():
    assert layers.SpatialDropout1D(0.2, name="s").get_config() == {
        "rate": 0.2,
        "seed": None,
        "name": "s",
        "dtype": "float32",
    }
    assert layers.SpatialDropout2D(0.2, name="s2").get_config()["data_format"] == "channels_last"
    assert layers.SpatialDropout3D(0.1, data_format="channels_first").get_config()["data_format"] == "channels_first"
    config = layers.GaussianNoise(0.1, seed=3).get_config()
    assert config["stddev"] == 0.1 and config["seed"] == 3 and config["trainable"] is True
    assert layers.GaussianDropout(0.1).get_config()["rate"] == 0.1
    assert layers.AlphaDropout(0.1, noise_shape=(None, 1)).get_config()["noise_shape"] == (None, 1)
    config = layers.ActivityRegularization(l1=0.5).get_config()
    assert config["l1"] == 0.5 and config["l2"] == 0.0 and "activity_regularizer" not in config
    for cls, kwargs in [
        (layers.GaussianNoise, {"stddev": 0.2}),
        (layers.GaussianDropout, {"rate": 0.2}),
        (layers.AlphaDropout, {"rate": 0.2}),
        (layers.SpatialDropout1D, {"rate": 0.2}),
    ]:
        layer = cls(**kwargs)
        assert cls.from_config(layer.get_config()).get_config() == layer.get_config()


def test_argument_and_rank_errors():
    with pytest.raises(ValueError, match="`stddev`. Expected a float value between 0 and 1"):
        layers.GaussianNoise(1.5)
    for cls in (layers.GaussianDropout, layers.AlphaDropout, layers.SpatialDropout1D):
        with pytest.raises(ValueError, match="between 0 and 1"):
            cls(-0.1)
    with pytest.raises(ValueError, match="data_format"):
        layers.SpatialDropout2D(0.1, data_format="nchw")
    for cls, shape in [
        (layers.SpatialDropout1D, (4,)),
        (layers.SpatialDropout2D, (4, 4)),
        (layers.SpatialDropout3D, (4, 4, 4)),
    ]:
        with pytest.raises(ValueError, match="expected ndim"):
            cls(0.1)(keras.Input(shape))


def test_masks_pass_through():
    tokens = keras.Input((5,), dtype="int32")
    x = layers.Embedding(7, 4, mask_zero=True)(tokens)
    for layer in (
        layers.SpatialDropout1D(0.1),
        layers.GaussianNoise(0.1),
        layers.GaussianDropout(0.1),
        layers.AlphaDropout(0.1),
        layers.ActivityRegularization(),
    ):
        x = layer(x)
        assert x._keras_mask is not None and x._keras_mask.shape == (None, 5)


def test_eager_training_noise():
    x = np.ones((200, 50), "float32")
    noisy = layers.GaussianNoise(0.5, seed=1)(x, training=True)
    assert abs(noisy.std() - 0.5) < 0.02 and abs(noisy.mean() - 1) < 0.02
    scaled = layers.GaussianDropout(0.5, seed=1)(x, training=True)
    assert abs(scaled.std() - 1.0) < 0.03 and abs(scaled.mean() - 1) < 0.03
    zeros = layers.AlphaDropout(0.3, seed=1)(np.zeros((200, 50), "float32"), training=True)
    assert len(np.unique(zeros)) == 2  # kept entries and the "dropped" value
    normal = RNG.standard_normal((400, 100)).astype("float32")
    alpha = layers.AlphaDropout(0.3, seed=1)(normal, training=True)
    assert abs(alpha.mean()) < 0.02 and abs(alpha.var() - 1.0) < 0.03  # self-normalizing
    channels = layers.SpatialDropout1D(0.5, seed=2)(np.ones((4, 6, 30), "float32"), training=True)
    assert set(np.unique(channels)) <= {0.0, 2.0}
    assert (channels == channels[:, :1, :]).all()  # whole feature maps dropped across steps
    channels_first = layers.SpatialDropout2D(0.5, data_format="channels_first", seed=2)
    dropped = channels_first(np.ones((2, 8, 3, 3), "float32"), training=True)
    assert (dropped == dropped[:, :, :1, :1]).all()
    assert not math.isnan(float(dropped.sum()))


HARNESS_CASES = [
    ("Dropout", {"rate": 0.3}, (4,)),
    ("GaussianNoise", {"stddev": 0.2}, (4,)),
    ("ActivityRegularization", {"l1": 0.1}, (4,)),
    ("SpatialDropout1D", {"rate": 0.2}, (3, 2)),
]


@pytest.mark.parametrize("name, kwargs, shape", HARNESS_CASES, ids=[c[0] for c in HARNESS_CASES])
def test_layer_harness(name, kwargs, shape):
    """Shapes, configs, .keras file, ONNX, gradients and (where installed) Keras: tests/harness.py."""
    run_layer_test(getattr(irtool.layers, name), kwargs, shape)
