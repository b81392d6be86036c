"""Normalization layers: weights, configs, errors, NumPy vs float64 references and ONNX parity."""

import numpy as np
import pytest

import irtool
import irtool as keras
from irtool import layers

from ..conftest import assert_onnx_parity
from ..harness import run_layer_test

RNG = np.random.default_rng(11)


def randn(*shape):
    return RNG.standard_normal(shape).astype("float32")


def model_of(layer, shape, **input_kwargs):
    inputs = keras.Input(shape, **input_kwargs)
    return keras.Model(inputs, layer(inputs))


def randomize(layer):
    """Random weights (variances positive) so the tests see every parameter."""
    weights = []
    for w in layer.weights:
        value = randn(*w.shape)
        weights.append(np.abs(value) + 0.1 if "variance" in w.name or "stddev" in w.name else value)
    layer.set_weights(weights)
    return weights


def bn_ref(x, gamma, beta, mean, var, axis, eps):
    shape = [1] * x.ndim
    shape[axis] = -1
    y = (x.astype("float64") - mean.reshape(shape)) / np.sqrt(var.reshape(shape) + eps)
    if gamma is not None:
        y = y * gamma.reshape(shape)
    if beta is not None:
        y = y + beta.reshape(shape)
    return y


@pytest.mark.parametrize(
    "kwargs, shape",
    [
        ({}, (6,)),
        ({"axis": 1}, (4, 5)),
        ({"axis": -1, "epsilon": 0.1}, (3, 4, 5)),
        ({"center": False}, (5,)),
        ({"scale": False, "axis": 2}, (4, 3, 2)),
        ({"center": False, "scale": False}, (3, 4)),
    ],
)
def test_batch_normalization_inference(kwargs, shape):
    bn = layers.BatchNormalization(**kwargs)
    model = model_of(bn, shape)
    weights = dict(zip([w.name for w in bn.weights], randomize(bn)))
    assert [w.name for w in bn.weights][-2:] == ["moving_mean", "moving_variance"]
    assert [w.name for w in bn.trainable_weights] == [n for n in ("gamma", "beta") if n in weights]
    x = randn(3, *shape)
    axis = kwargs.get("axis", -1) % x.ndim
    want = bn_ref(
        x,
        weights.get("gamma"),
        weights.get("beta"),
        weights["moving_mean"],
        weights["moving_variance"],
        axis,
        kwargs.get("epsilon", 1e-3),
    )
    np.testing.assert_allclose(model.predict(x, verbose=0), want, rtol=1e-5, atol=1e-5)
    proto = assert_onnx_parity(model, x)
    assert [n.op_type for n in proto.graph.node] == ["Mul", "Add"]
    assert_onnx_parity(model, x, opset=13)


def test_batch_normalization_dynamic_dims_config_and_errors():
    bn = layers.BatchNormalization(momentum=0.9, name="bn")
    model = model_of(bn, (None, 4))
    randomize(bn)
    for steps in (2, 7):
        assert_onnx_parity(model, randn(3, steps, 4))
    config = bn.get_config()
    assert config["momentum"] == 0.9 and config["epsilon"] == 0.001 and config["axis"] == -1
    assert config["moving_variance_initializer"]["class_name"] == "Ones" and config["renorm"] is False
    clone = layers.BatchNormalization.from_config(config)
    assert clone.get_config() == config
    with pytest.raises(ValueError, match="expected ndim=3"):
        bn(keras.Input((4,)))
    with pytest.raises(ValueError, match="expected axis -1 of input shape to have value 4"):
        bn(keras.Input((2, 5)))
    with pytest.raises(ValueError, match="should have a defined dimension"):
        layers.BatchNormalization()(keras.Input((None,)))
    with pytest.raises(ValueError, match="only supported with the TensorFlow backend"):
        layers.BatchNormalization(synchronized=True)
    with pytest.raises(ValueError, match="invalid keys for `renorm_clipping`"):
        layers.BatchNormalization(renorm=True, renorm_clipping={"foo": 1})


def test_batch_normalization_renorm_weights_and_eager_training():
    bn = layers.BatchNormalization(renorm=True)
    bn.build((None, 3))
    assert [w.name for w in bn.weights] == [
        "gamma",
        "beta",
        "moving_mean",
        "moving_variance",
        "moving_stddev",
        "renorm_mean",
        "renorm_stddev",
    ]
    assert len(bn.trainable_weights) == 2
    bn = layers.BatchNormalization(momentum=0.5)
    x = randn(8, 3) * 2 + 1
    y = bn(x, training=True)
    np.testing.assert_allclose(y, (x - x.mean(0)) / np.sqrt(x.var(0) + 1e-3), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(bn.moving_mean.numpy(), 0.5 * x.mean(0), rtol=1e-5)
    np.testing.assert_allclose(bn.moving_variance.numpy(), 0.5 + 0.5 * x.var(0), rtol=1e-5)
    np.testing.assert_allclose(bn(x), bn_ref(x, None, None, 0.5 * x.mean(0), 0.5 + 0.5 * x.var(0), 1, 1e-3), rtol=1e-4)
    # Traced training mode (batch statistics in the graph) is tested in tests/train/test_vjp_norm_rnn.py.
    assert bn(keras.Input((3,)), training=True).shape == (None, 3)


def ln_ref(x, axes, gamma, beta, eps=1e-3):
    x64 = x.astype("float64")
    axes = tuple(a % x.ndim for a in axes)
    y = (x64 - x64.mean(axes, keepdims=True)) / np.sqrt(x64.var(axes, keepdims=True) + eps)
    shape = [d if i in axes else 1 for i, d in enumerate(x.shape)]
    if gamma is not None:
        y = y * gamma.reshape(shape)
    if beta is not None:
        y = y + beta.reshape(shape)
    return y


@pytest.mark.parametrize(
    "kwargs, shape",
    [
        ({}, (5,)),
        ({"axis": [1, 2]}, (3, 4)),
        ({"axis": 1, "epsilon": 1e-5}, (3, 4)),
        ({"axis": [-2, -1], "center": False}, (2, 3, 4)),
        ({"scale": False}, (None, 6)),
        ({"axis": (1, 3)}, (3, 2, 4)),
    ],
)
def test_layer_normalization(kwargs, shape):
    ln = layers.LayerNormalization(**kwargs)
    model = model_of(ln, shape)
    weights = dict(zip([w.name for w in ln.weights], randomize(ln)))
    axis = kwargs.get("axis", -1)
    axes = [axis] if isinstance(axis, int) else list(axis)
    assert ln.get_config()["axis"] == sorted(axes)  # a list after build, as in Keras
    for steps in (3, 5) if None in shape else (3,):
        x = randn(2, *(d or steps for d in shape)) * 3 + 1
        want = ln_ref(x, axes, weights.get("gamma"), weights.get("beta"), kwargs.get("epsilon", 1e-3))
        np.testing.assert_allclose(model.predict(x, verbose=0), want, rtol=1e-4, atol=1e-5)
        assert_onnx_parity(model, x)
        assert_onnx_parity(model, x, opset=16)


def test_layer_normalization_config_and_errors():
    ln = layers.LayerNormalization(epsilon=1e-6, beta_initializer="ones")
    ln.build((None, 3))
    assert ln.beta.numpy().tolist() == [1, 1, 1]
    config = ln.get_config()
    assert config["epsilon"] == 1e-6 and config["rms_scaling"] is False
    assert layers.LayerNormalization.from_config(config).get_config() == config
    with pytest.raises(TypeError, match="list/tuple of ints"):
        layers.LayerNormalization(axis="x")
    with pytest.raises(ValueError, match="out of bounds"):
        layers.LayerNormalization(axis=3)(keras.Input((4,)))
    with pytest.raises(ValueError, match="defined dimensions"):
        layers.LayerNormalization()(keras.Input((None,)))


def gn_ref(x, groups, axis, gamma, beta, eps=1e-3):
    axis = axis % x.ndim
    grouped = np.moveaxis(x.astype("float64"), axis, -1)
    shape = grouped.shape
    grouped = grouped.reshape(shape[0], -1, groups, shape[-1] // groups)
    mean = grouped.mean(axis=(1, 3), keepdims=True)
    var = grouped.var(axis=(1, 3), keepdims=True)
    y = ((grouped - mean) / np.sqrt(var + eps)).reshape(shape) * gamma + beta
    return np.moveaxis(y, -1, axis)


@pytest.mark.parametrize(
    "kwargs, shape",
    [
        ({"groups": 2}, (6,)),
        ({"groups": 3}, (4, 6)),
        ({"groups": 2, "axis": 1}, (4, 3, 5)),
        ({"groups": -1}, (5, 4)),
        ({"groups": 4}, (None, 8)),
        ({"groups": 2, "axis": 1}, (4, None)),
        ({"groups": 1, "epsilon": 0.1}, (2, 3, 4)),
    ],
)
def test_group_normalization(kwargs, shape):
    gn = layers.GroupNormalization(**kwargs)
    model = model_of(gn, shape)
    gamma, beta = randomize(gn)
    axis = kwargs.get("axis", -1)
    for n in (3, 5) if None in shape else (3,):
        x = randn(2, *(d or n for d in shape)) * 2 - 1
        want = gn_ref(x, gn.groups, axis, gamma, beta, kwargs.get("epsilon", 1e-3))
        np.testing.assert_allclose(model.predict(x, verbose=0), want, rtol=1e-4, atol=1e-5)
        assert_onnx_parity(model, x)


def test_group_normalization_config_and_errors():
    gn = layers.GroupNormalization(groups=-1)
    gn.build((None, 5))
    assert gn.get_config()["groups"] == 5  # -1 resolves to the channel count, as in Keras
    with pytest.raises(ValueError, match="expected a positive integer"):
        layers.GroupNormalization(groups=0)
    with pytest.raises(ValueError, match="cannot be more than the number of channels"):
        layers.GroupNormalization(groups=8)(keras.Input((4,)))
    with pytest.raises(ValueError, match="must be a multiple"):
        layers.GroupNormalization(groups=3)(keras.Input((4,)))
    with pytest.raises(ValueError, match="expected ndim=2"):
        gn(keras.Input((2, 5)))


@pytest.mark.parametrize("axis, shape", [(-1, (5,)), (1, (3, 4)), ([1, 2], (3, 4)), (-1, (None, 3))])
def test_unit_normalization(axis, shape):
    layer = layers.UnitNormalization(axis=axis)
    model = model_of(layer, shape)
    axes = tuple(a % (len(shape) + 1) for a in ([axis] if isinstance(axis, int) else axis))
    for n in (2, 4):
        x = randn(3, *(d or n for d in shape))
        x[0] = 0.0
        want = x / np.maximum(np.sqrt((x.astype("float64") ** 2).sum(axes, keepdims=True)), 1e-12)
        np.testing.assert_allclose(model.predict(x, verbose=0), want, rtol=1e-5, atol=1e-6)
        assert_onnx_parity(model, x)
    assert layer.get_config()["axis"] == axis
    with pytest.raises(TypeError, match="Invalid value for `axis`"):
        layers.UnitNormalization(axis=None)
    with pytest.raises(ValueError, match="out of bounds"):
        layers.UnitNormalization(axis=4)(keras.Input((3,)))


def test_normalization_layers_pass_masks():
    inputs = keras.Input((4,), dtype="int32")
    x = layers.Embedding(10, 6, mask_zero=True)(inputs)
    for layer in (
        layers.BatchNormalization(),
        layers.LayerNormalization(),
        layers.GroupNormalization(groups=2),
        layers.UnitNormalization(),
    ):
        x = layer(x)
        assert x._keras_mask is not None and x._keras_mask.shape == (None, 4)


def test_conv_stack_with_batchnorm_prelu_and_noise_keeps_two_transposes():
    """BatchNorm, PReLU and the noise layers are elementwise: the layout pass moves the NHWC->NCHW
    transposes through them, and the folded statistics come out per channel (C, 1, 1)."""
    inputs = keras.Input((8, 8, 3))
    x = layers.Conv2D(4, 3, padding="same")(inputs)
    x = layers.BatchNormalization()(x)
    x = layers.PReLU(shared_axes=[1, 2])(x)
    x = layers.SpatialDropout2D(0.2)(layers.GaussianNoise(0.1)(x))
    x = layers.Conv2D(4, 3)(x)
    x = layers.BatchNormalization(center=False)(x)
    model = keras.Model(inputs, layers.PReLU()(x))
    for layer in model.layers:
        if layer.weights:
            randomize(layer)
    # Outputs reach ~100 (random gammas over small variances): compare at 1e-4 absolute.
    proto = assert_onnx_parity(model, RNG.random((2, 8, 8, 3)).astype("float32"), atol=1e-4)
    ops_used = [n.op_type for n in proto.graph.node]
    assert ops_used.count("Transpose") == 2
    assert ops_used == ["Transpose", "Conv", "Mul", "Add", "PRelu", "Conv", "Mul", "Add", "PRelu", "Transpose"]


HARNESS_CASES = [
    ("BatchNormalization", {}, (4,)),
    ("LayerNormalization", {}, (3, 4)),
    ("GroupNormalization", {"groups": 2}, (3, 4)),
    ("UnitNormalization", {}, (5,)),
]


@pytest.mark.parametrize("name, kwargs, shape", HARNESS_CASES, ids=[c[0] for c in HARNESS_CASES])
def test_layer_harness(name, kwargs, shape):
    """Shapes, configs, .keras file, ONNX, gradients and (where installed) Keras: tests/harness.py."""
    run_layer_test(getattr(irtool.layers, name), kwargs, shape)
