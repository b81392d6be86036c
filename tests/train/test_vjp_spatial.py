"""The spatial primitives' vjp rules (conv, depthwise conv, conv transpose, pooling, resize,
center crop, pad, repeat, tile) against central finite differences (float64), and whole-layer
weight gradients of small conv models."""

import numpy as np
import pytest

import irtool as keras
from irtool import layers, ops
from irtool.train.autodiff import GradientProgram

from .gradcheck import check_gradients

RNG = np.random.default_rng(0)
FORMATS = ["channels_last", "channels_first"]


def r(*shape):
    return RNG.uniform(-1.0, 1.0, shape)


def image(batch, spatial, channels, data_format):
    return r(batch, *spatial, channels) if data_format == "channels_last" else r(batch, channels, *spatial)


# -- convolutions -------------------------------------------------------------------------------------

CONV_CASES = [
    # spatial, kernel size, channels in/out, strides, padding, dilation, groups
    ((6, 5), (3, 2), (4, 4), 1, "valid", 1, 1),
    ((7, 6), (3, 3), (3, 2), 2, "same", 1, 1),
    ((6, 6), (2, 3), (2, 3), 1, "same", 2, 1),
    ((7, 5), (3, 2), (2, 2), (2, 1), "valid", 1, 1),
    ((6, 5), (3, 3), (4, 4), 1, "same", 1, 2),
    ((7, 6), (2, 2), (4, 6), 2, "valid", 1, 2),
    ((6, 5), (3, 2), (4, 2), 1, "same", 1, 2),  # one filter per group
    ((6, 6), (3, 3), (4, 4), 2, "same", 1, 4),  # groups == channels: the depthwise kernel path
    ((9,), (3,), (3, 2), 1, "causal", 2, 1),
    ((9,), (2,), (2, 3), 2, "causal", 1, 1),
    ((8,), (3,), (4, 2), 2, "same", 1, 2),
    ((4, 3, 4), (2, 2, 3), (2, 2), (1, 2, 1), "same", 1, 1),
    ((4, 4, 3), (2, 2, 2), (2, 2), 2, "valid", 1, 1),
]


@pytest.mark.parametrize("data_format", FORMATS)
@pytest.mark.parametrize("spatial, ksize, chans, strides, padding, dilation, groups", CONV_CASES)
def test_conv(data_format, spatial, ksize, chans, strides, padding, dilation, groups):
    x = image(2, spatial, chans[0], data_format)
    kernel = r(*ksize, chans[0] // groups, chans[1])
    check_gradients(
        lambda x, k, b: ops.conv(x, k, strides, padding, data_format, dilation, bias=b), [x, kernel, r(chans[1])]
    )


@pytest.mark.parametrize("data_format", FORMATS)
@pytest.mark.parametrize(
    "spatial, ksize, channels, multiplier, strides, padding, dilation",
    [
        ((6, 5), (3, 2), 3, 1, 1, "valid", 1),
        ((7, 6), (3, 3), 2, 2, 2, "same", 1),
        ((7, 7), (2, 2), 2, 1, 1, "same", 2),
        ((9,), (3,), 3, 2, 2, "causal", 1),
    ],
)
def test_depthwise_conv(data_format, spatial, ksize, channels, multiplier, strides, padding, dilation):
    x = image(2, spatial, channels, data_format)
    kernel = r(*ksize, channels, multiplier)
    check_gradients(
        lambda x, k, b: ops.depthwise_conv(x, k, strides, padding, data_format, dilation, bias=b),
        [x, kernel, r(channels * multiplier)],
    )


@pytest.mark.parametrize("data_format", FORMATS)
@pytest.mark.parametrize(
    "spatial, ksize, strides, padding, output_padding, dilation",
    [
        ((4, 3), (3, 2), 1, "valid", None, 1),
        ((3, 4), (3, 3), 2, "same", None, 1),
        ((3, 3), (3, 2), 2, "valid", None, 1),
        ((3, 3), (2, 3), 2, "valid", 1, 1),
        ((3, 2), (3, 3), (3, 2), "same", (2, 1), 1),
        ((3, 3), (2, 2), 1, "same", None, 2),
        ((3, 3), (2, 2), 2, "valid", 0, 2),
        ((5,), (3,), 2, "same", None, 1),
        ((2, 3, 2), (2, 2, 2), 2, "valid", None, 1),
    ],
)
def test_conv_transpose(data_format, spatial, ksize, strides, padding, output_padding, dilation):
    x = image(2, spatial, 3, data_format)
    kernel = r(*ksize, 2, 3)
    check_gradients(
        lambda x, k, b: ops.conv_transpose(x, k, strides, padding, output_padding, data_format, dilation, bias=b),
        [x, kernel, r(2)],
    )


def test_separable_conv():
    x = image(2, (6, 5), 2, "channels_last")
    check_gradients(
        lambda x, d, p: ops.separable_conv(x, d, p, 1, "same"), [x, r(3, 3, 2, 2), r(1, 1, 4, 3)], wrt=[0, 1, 2]
    )


# -- pooling ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["max_pool", "average_pool"])
@pytest.mark.parametrize("data_format", FORMATS)
@pytest.mark.parametrize(
    "spatial, pool_size, strides, padding",
    [
        ((6, 6), 2, None, "valid"),
        ((7, 5), (3, 2), (2, 1), "valid"),
        ((5, 7), 3, 2, "same"),
        ((6, 5), 2, 1, "same"),  # overlapping windows
        ((5, 5), 1, 2, "same"),  # windows smaller than the stride
        ((9,), 3, 2, "same"),
        ((8,), 2, None, "valid"),
        ((4, 3, 5), 2, (1, 2, 2), "same"),
    ],
)
def test_pooling(mode, data_format, spatial, pool_size, strides, padding):
    x = image(2, spatial, 3, data_format)
    check_gradients(lambda x: getattr(ops, mode)(x, pool_size, strides, padding, data_format), [x])


def test_max_pool_ties_go_to_the_first_maximum():
    # Row-major first maximum of each window, as PyTorch (CPU) and TensorFlow's MaxPoolGrad do.
    x = np.zeros((1, 4, 4, 1))
    x[0, 1, 0, 0] = x[0, 0, 1, 0] = 1.0  # a tie in the top-left window: (0, 1) comes first
    inputs = keras.Input(batch_shape=x.shape, dtype="float64")
    model = keras.Model(inputs, ops.sum(ops.max_pool(inputs, 2, 1, "valid") * np.arange(1.0, 10.0).reshape(1, 3, 3, 1)))
    (_, (grad,)) = GradientProgram(model.graph, [model.graph.inputs[0]], training=False).run([x])
    expected = np.zeros((4, 4))  # NumPy's argmax is the first maximum in row-major order
    w = np.arange(1.0, 10.0).reshape(3, 3)
    for i in range(3):
        for j in range(3):
            win = x[0, i : i + 2, j : j + 2, 0]
            a, b = np.unravel_index(np.argmax(win), win.shape)
            expected[i + a, j + b] += w[i, j]
    np.testing.assert_array_equal(grad[0, :, :, 0], expected)


def test_max_pool_ties_match_torch():
    torch = pytest.importorskip("torch")
    x = np.round(RNG.uniform(0, 2, (2, 3, 7, 6))).clip(0, 1)  # many ties (zeros and ones)
    for kernel, stride in [(2, 2), (3, 2), (2, 1)]:
        out_shape = torch.nn.functional.max_pool2d(torch.tensor(x), kernel, stride).shape
        g = r(*out_shape)
        xt = torch.tensor(x, requires_grad=True)
        torch.nn.functional.max_pool2d(xt, kernel, stride).backward(torch.tensor(g))
        inputs = keras.Input(batch_shape=x.shape, dtype="float64")
        pooled = ops.max_pool(inputs, kernel, stride, "valid", "channels_first")
        model = keras.Model(inputs, ops.sum(pooled * g))
        (_, (grad,)) = GradientProgram(model.graph, [model.graph.inputs[0]], training=False).run([x])
        np.testing.assert_allclose(grad, xt.grad.numpy(), atol=1e-12)


# -- image ops ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("data_format", FORMATS)
@pytest.mark.parametrize("interpolation", ["nearest", "bilinear"])
@pytest.mark.parametrize("size", [(7, 9), (13, 11), (3, 2), (4, 5)])
def test_resize(data_format, interpolation, size):
    x = image(2, (4, 5), 2, data_format)
    check_gradients(lambda x: ops.image.resize(x, size, interpolation, data_format=data_format), [x])


@pytest.mark.parametrize("data_format", FORMATS)
@pytest.mark.parametrize(
    "spatial, factors, interpolation",
    [
        ((3, 4), (2, 3), "nearest"),
        ((3, 4), (2, 2), "bilinear"),
        ((5,), (3,), "nearest"),
        ((2, 3, 2), (2, 1, 3), "nearest"),
    ],
)
def test_upsample(data_format, spatial, factors, interpolation):
    x = image(2, spatial, 2, data_format)
    check_gradients(lambda x: ops.image.upsample(x, factors, interpolation, data_format), [x])


@pytest.mark.parametrize("data_format", FORMATS)
def test_center_crop(data_format):
    x = image(2, (6, 5), 2, data_format)
    check_gradients(lambda x: ops.image.center_crop(x, 3, 4, data_format), [x])
    check_gradients(lambda x: ops.image.center_crop(x, 5, 2, data_format), [x[0]])


# -- array ops ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["constant", "reflect", "edge", "symmetric", "wrap"])
@pytest.mark.parametrize("pad_width", [((0, 0), (2, 1), (1, 3)), ((1, 1), (0, 0), (3, 0)), 1])
def test_pad(mode, pad_width):
    value = {"constant_values": 1.5} if mode == "constant" else {}
    check_gradients(lambda x: ops.pad(x, pad_width, mode, **value), [r(2, 4, 4)])


@pytest.mark.parametrize("repeats, axis", [(3, 0), (2, 1), (1, 2), (2, -1), (2, None), (0, 1)])
def test_repeat(repeats, axis):
    check_gradients(lambda x: ops.repeat(x, repeats, axis), [r(2, 3, 4)])


@pytest.mark.parametrize("repeats", [(2, 1, 3), (1, 2), 3, (2, 1, 1, 2), (1, 0, 2)])
def test_tile(repeats):
    check_gradients(lambda x: ops.tile(x, repeats), [r(2, 3, 2)])


# -- whole layers: weight gradients of small models ---------------------------------------------------


def _weight_gradients_match_finite_differences(model, x, eps=1e-6):
    """d sum(model(x) * R) / d weights through GradientProgram, against central differences."""
    out = model.outputs[0]
    projection = RNG.standard_normal(tuple(x.shape[:1]) + tuple(out.shape[1:]))
    loss_model = keras.Model(model.inputs, ops.sum(out * projection))
    weights = [w for w in model.trainable_weights]
    program = GradientProgram(loss_model.graph, weights, training=False)
    _, grads = program.run([x])
    assert len(grads) == len(weights) > 0
    for w, grad in zip(weights, grads):
        value = w._value
        numeric = np.zeros_like(value)
        # A sample of entries per weight keeps this fast; every entry for small weights.
        picks = RNG.permutation(value.size)[:40]
        for j in picks:
            saved = value.flat[j]
            value.flat[j] = saved + eps
            plus = float(loss_model._run_flat([x])[0])
            value.flat[j] = saved - eps
            minus = float(loss_model._run_flat([x])[0])
            value.flat[j] = saved
            numeric.flat[j] = (plus - minus) / (2 * eps)
        np.testing.assert_allclose(grad.flat[picks], numeric.flat[picks], atol=1e-6, rtol=1e-5, err_msg=w.path)


@pytest.mark.parametrize("data_format", FORMATS)
def test_conv_pool_dense_model(data_format):
    inputs = keras.Input(shape=(9, 8, 3) if data_format == "channels_last" else (3, 9, 8), dtype="float64")
    x = layers.Conv2D(4, 3, padding="same", activation="tanh", data_format=data_format, dtype="float64")(inputs)
    x = layers.MaxPooling2D(2, data_format=data_format, dtype="float64")(x)
    x = layers.Conv2D(6, 2, strides=2, groups=2, data_format=data_format, dtype="float64")(x)
    x = layers.Flatten(dtype="float64")(x)
    outputs = layers.Dense(5, dtype="float64")(x)
    model = keras.Model(inputs, outputs)
    _weight_gradients_match_finite_differences(model, r(2, *inputs.shape[1:]))


def test_upsampling_model():
    inputs = keras.Input(shape=(6, 6, 2), dtype="float64")
    x = layers.ZeroPadding2D(1, dtype="float64")(inputs)
    x = layers.DepthwiseConv2D(3, depth_multiplier=2, strides=2, dtype="float64")(x)
    x = layers.AveragePooling2D(2, strides=1, padding="same", dtype="float64")(x)
    x = layers.UpSampling2D(2, interpolation="bilinear", dtype="float64")(x)
    x = layers.Conv2DTranspose(3, 3, strides=2, padding="same", dtype="float64")(x)
    x = layers.SeparableConv2D(2, 3, dtype="float64")(x)
    outputs = layers.Conv1D(2, 3, padding="causal", dtype="float64")(layers.Reshape((-1, 2), dtype="float64")(x))
    model = keras.Model(inputs, outputs)
    _weight_gradients_match_finite_differences(model, r(2, 6, 6, 2))
