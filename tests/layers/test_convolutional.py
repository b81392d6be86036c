"""Convolution layers: outputs against naive references, weights and names, config, errors,
dynamic dims, and the ONNX graph (one node per layer, bias and activation fused by ORT)."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest

import irtool
import irtool as keras
from irtool import layers

from ..conftest import assert_onnx_parity, run_onnx
from ..harness import run_layer_test
from ..ops.conv_reference import ref_conv, ref_conv_transpose, ref_depthwise

RNG = np.random.default_rng(11)


def rand(*shape):
    return RNG.uniform(-1, 1, size=shape).astype("float32")


def _spatial_input(layer, spatial, channels=4, batch=3):
    if getattr(layer, "data_format", "channels_last") == "channels_first":
        return rand(batch, channels, *spatial)
    return rand(batch, *spatial, channels)


def _randomize(layer):
    layer.set_weights([rand(*w.shape) for w in layer.get_weights()])


ACT = {None: lambda y: y, "relu": lambda y: np.maximum(y, 0), "tanh": np.tanh}


def _reference(layer, x):
    """The layer's output from its weights and the naive references."""
    weights = layer.get_weights()
    fmt = layer.data_format
    geometry = dict(strides=layer.strides, padding=layer.padding, data_format=fmt, dilation=layer.dilation_rate)
    bias = weights[-1] if layer.use_bias else None
    if isinstance(layer, layers.SeparableConv1D | layers.SeparableConv2D):
        y = ref_depthwise(x, weights[0], **geometry)
        y = ref_conv(y, weights[1], data_format=fmt, bias=bias)
    elif isinstance(layer, layers.DepthwiseConv1D | layers.DepthwiseConv2D):
        y = ref_depthwise(x, weights[0], **geometry)
        if bias is not None:
            y = y + (bias.reshape(-1, *[1] * (x.ndim - 2)) if fmt == "channels_first" else bias)
    elif "Transpose" in type(layer).__name__:
        y = ref_conv_transpose(x, weights[0], output_padding=layer.output_padding, bias=bias, **geometry)
    else:
        y = ref_conv(x, weights[0], bias=bias, **geometry)
    name = None if layer.activation is keras.activations.linear else layer.activation.__name__
    return ACT[name](y)


CASES = [
    (layers.Conv1D, dict(filters=5, kernel_size=3), (9,)),
    (layers.Conv1D, dict(filters=6, kernel_size=2, padding="causal", dilation_rate=2, activation="relu"), (9,)),
    (layers.Conv1D, dict(filters=4, kernel_size=4, strides=2, padding="same", groups=2), (10,)),
    (layers.Conv1D, dict(filters=4, kernel_size=3, padding="causal", data_format="channels_first"), (7,)),
    (layers.Conv2D, dict(filters=5, kernel_size=3, strides=2, padding="same", activation="relu"), (7, 6)),
    (layers.Conv2D, dict(filters=5, kernel_size=(2, 3), padding="same", dilation_rate=2, use_bias=False), (7, 6)),
    (layers.Conv2D, dict(filters=6, kernel_size=3, groups=2, data_format="channels_first"), (7, 6)),
    (layers.Conv2D, dict(filters=3, kernel_size=4, strides=(2, 1), padding="same", activation="tanh"), (8, 7)),
    (layers.Conv3D, dict(filters=3, kernel_size=3, padding="same"), (4, 5, 3)),
    (layers.Conv3D, dict(filters=4, kernel_size=2, strides=2, groups=4, data_format="channels_first"), (4, 5, 3)),
    (layers.Conv1DTranspose, dict(filters=3, kernel_size=3, strides=2, padding="same"), (5,)),
    (layers.Conv1DTranspose, dict(filters=3, kernel_size=4, strides=2, output_padding=1), (5,)),
    (layers.Conv1DTranspose, dict(filters=2, kernel_size=3, dilation_rate=2, data_format="channels_first"), (5,)),
    (layers.Conv2DTranspose, dict(filters=3, kernel_size=3, strides=2, padding="same", activation="relu"), (4, 5)),
    (layers.Conv2DTranspose, dict(filters=3, kernel_size=4, strides=2, padding="same"), (4, 5)),
    (layers.Conv2DTranspose, dict(filters=2, kernel_size=3, strides=2, padding="same", output_padding=0), (4, 5)),
    (layers.Conv2DTranspose, dict(filters=2, kernel_size=(3, 2), strides=(2, 3), output_padding=(1, 2)), (3, 4)),
    (layers.Conv2DTranspose, dict(filters=2, kernel_size=2, strides=3, data_format="channels_first"), (3, 4)),
    (layers.Conv3DTranspose, dict(filters=2, kernel_size=3, strides=2, padding="same", use_bias=False), (3, 2, 4)),
    (
        layers.Conv3DTranspose,
        dict(filters=2, kernel_size=2, strides=(1, 2, 1), data_format="channels_first"),
        (3, 2, 4),
    ),
    (layers.DepthwiseConv1D, dict(kernel_size=3, depth_multiplier=2, padding="same"), (9,)),
    (layers.DepthwiseConv1D, dict(kernel_size=2, strides=2, data_format="channels_first", activation="relu"), (9,)),
    (layers.DepthwiseConv2D, dict(kernel_size=3), (7, 6)),
    (layers.DepthwiseConv2D, dict(kernel_size=3, strides=2, padding="same", depth_multiplier=3), (7, 6)),
    (layers.DepthwiseConv2D, dict(kernel_size=(2, 3), dilation_rate=2, data_format="channels_first"), (7, 6)),
    (layers.SeparableConv1D, dict(filters=5, kernel_size=3, padding="same", depth_multiplier=2), (8,)),
    (layers.SeparableConv1D, dict(filters=3, kernel_size=2, strides=2, data_format="channels_first"), (9,)),
    (layers.SeparableConv2D, dict(filters=5, kernel_size=3, strides=2, padding="same", activation="relu"), (7, 6)),
    (layers.SeparableConv2D, dict(filters=4, kernel_size=2, dilation_rate=2, use_bias=False), (7, 6)),
]


def _id(case):
    cls, kwargs, _ = case
    return cls.__name__ + "-" + "-".join(f"{k}={v}" for k, v in kwargs.items() if k not in ("filters", "kernel_size"))


@pytest.mark.parametrize("case", CASES, ids=[_id(c) for c in CASES])
def test_layer_matches_reference_and_onnx(case):
    cls, kwargs, spatial = case
    layer = cls(**kwargs)
    x = _spatial_input(layer, spatial)
    inputs = keras.Input(x.shape[1:])
    outputs = layer(inputs)
    model = keras.Model(inputs, outputs)
    _randomize(layer)
    want = _reference(layer, x)
    assert outputs.shape == (None, *want.shape[1:])
    assert layer.compute_output_shape((None, *x.shape[1:])) == outputs.shape
    for batch in (3, 1):
        np.testing.assert_allclose(model.predict(x[:batch], verbose=0), want[:batch], rtol=1e-5, atol=1e-5)
    proto = assert_onnx_parity(model, x)
    # One ONNX node per layer (two for SeparableConv), activation apart, transposes at the ends only.
    convs = [n.op_type for n in proto.graph.node if n.op_type.startswith("Conv")]
    assert len(convs) == (2 if "Separable" in cls.__name__ else 1)
    transposes = sum(n.op_type == "Transpose" for n in proto.graph.node)
    assert transposes == (0 if layer.data_format == "channels_first" else 2)
    assert not any(n.op_type in ("Add", "Pad") for n in proto.graph.node)


@pytest.mark.parametrize(
    "make,channels,sizes",
    [
        (lambda: layers.Conv2D(4, 3, strides=2, padding="same", activation="relu"), 3, [(7, 6), (8, 9)]),
        (lambda: layers.Conv2D(4, 2, strides=3, padding="same"), 3, [(7, 6), (8, 9)]),
        (lambda: layers.Conv2DTranspose(4, 3, strides=2, padding="same"), 3, [(4, 5), (3, 3)]),
        (lambda: layers.Conv2DTranspose(4, 3, strides=2, output_padding=1), 3, [(4, 5), (3, 3)]),
        (lambda: layers.DepthwiseConv2D(3, strides=2, padding="same", depth_multiplier=2), 3, [(7, 6), (8, 9)]),
        (lambda: layers.SeparableConv2D(4, 3, padding="same", data_format="channels_first"), 3, [(5, 6), (8, 9)]),
        (lambda: layers.Conv1D(4, 3, padding="causal", dilation_rate=2), 3, [(5,), (12,)]),
        (lambda: layers.Conv3D(2, 2, strides=2, padding="same"), 2, [(3, 4, 5), (4, 4, 2)]),
    ],
)
def test_dynamic_spatial_dims(make, channels, sizes):
    layer = make()
    nd = len(sizes[0])
    shape = (None,) * nd + (channels,) if layer.data_format == "channels_last" else (channels,) + (None,) * nd
    inputs = keras.Input(shape)
    model = keras.Model(inputs, layer(inputs))
    spatial_out = model.output_shape[1:-1] if layer.data_format == "channels_last" else model.output_shape[2:]
    assert spatial_out == (None,) * nd
    _randomize(layer)
    proto = None
    for size in sizes:
        x = _spatial_input(layer, size, channels)
        want = _reference(layer, x)
        np.testing.assert_allclose(model.predict(x, verbose=0), want, rtol=1e-5, atol=1e-5)
        proto = proto or assert_onnx_parity(model, x)
        np.testing.assert_allclose(run_onnx(proto, {proto.graph.input[0].name: x})[0], want, rtol=1e-5, atol=1e-5)


def test_names_weights_and_config():
    inputs = keras.Input((8, 8, 4))
    made = [
        layers.Conv2D(6, 3, groups=2),
        layers.Conv2D(2, 1),
        layers.Conv2DTranspose(3, 2),
        layers.DepthwiseConv2D(3, depth_multiplier=2),
        layers.SeparableConv2D(5, 3),
        layers.Convolution2D(2, 1),
    ]
    for layer in made:
        layer(inputs)
    assert [layer.name for layer in made] == [
        "conv2d",
        "conv2d_1",
        "conv2d_transpose",
        "depthwise_conv2d",
        "separable_conv2d",
        "conv2d_2",
    ]
    assert [[(w.path, w.shape) for w in layer.weights] for layer in made] == [
        [("conv2d/kernel", (3, 3, 2, 6)), ("conv2d/bias", (6,))],
        [("conv2d_1/kernel", (1, 1, 4, 2)), ("conv2d_1/bias", (2,))],
        [("conv2d_transpose/kernel", (2, 2, 3, 4)), ("conv2d_transpose/bias", (3,))],
        [("depthwise_conv2d/kernel", (3, 3, 4, 2)), ("depthwise_conv2d/bias", (8,))],
        [
            ("separable_conv2d/depthwise_kernel", (3, 3, 4, 1)),
            ("separable_conv2d/pointwise_kernel", (1, 1, 4, 5)),
            ("separable_conv2d/bias", (5,)),
        ],
        [("conv2d_2/kernel", (1, 1, 4, 2)), ("conv2d_2/bias", (2,))],
    ]
    names = [layers.Conv1D(1, 1).name, layers.Conv3DTranspose(1, 1).name, layers.DepthwiseConv1D(1).name]
    assert names == ["conv1d", "conv3d_transpose", "depthwise_conv1d"]
    assert layers.SeparableConv1D(1, 1).name == "separable_conv1d"
    config = made[0].get_config()
    assert config["kernel_size"] == (3, 3) and config["strides"] == (1, 1) and config["groups"] == 2
    assert config["padding"] == "valid" and config["data_format"] == "channels_last"
    assert config["kernel_initializer"]["class_name"] == "GlorotUniform"
    for layer in made[:5]:
        clone = type(layer).from_config(layer.get_config())
        assert clone.get_config() == layer.get_config()
    t = layers.Conv3DTranspose(2, 3, 2, "same", "channels_first", 1)  # Keras' order: data_format first here
    assert t.data_format == "channels_first" and t.output_padding == (1, 1, 1)
    assert layers.Conv2DTranspose(2, 3, 2, "same", 1).output_padding == (1, 1)
    assert layers.DepthwiseConv2D(3, 1, "same", 4).depth_multiplier == 4
    assert layers.SeparableConv2D(2, 3, 1, "valid", None, 1, 3).depth_multiplier == 3


def test_default_initializers_are_glorot_and_zeros():
    layer = layers.Conv2D(8, 3)
    layer.build((None, 10, 10, 16))
    kernel, bias = layer.get_weights()
    limit = np.sqrt(6 / (9 * 16 + 9 * 8))
    assert np.all(np.abs(kernel) <= limit) and kernel.std() > limit / 3
    assert not bias.any()


@pytest.mark.parametrize(
    "make,message",
    [
        (lambda: layers.Conv2D(0, 3), "Expected a strictly positive value"),
        (lambda: layers.Conv2D(5, 3, groups=2), "evenly divisible by the number of groups"),
        (lambda: layers.Conv2D(4, 3, groups=0), "groups must be a positive integer"),
        (lambda: layers.Conv2D(4, 0), "do not satisfy `value > 0`"),
        (lambda: layers.Conv2D(4, (3, 3, 3)), "`kernel_size` argument must be a tuple of 2"),
        (lambda: layers.Conv2D(4, 3, strides=0), "`strides` argument must be a tuple of 2 integers"),
        (lambda: layers.Conv2D(4, 3, strides=2, dilation_rate=2), "not supported in conjunction"),
        (lambda: layers.Conv2D(4, 3, padding="causal"), "`padding` argument must be"),
        (lambda: layers.Conv1D(4, 3, padding="full"), "`padding` argument must be"),
        (lambda: layers.Conv2D(4, 3, data_format="NHWC"), "`data_format` argument must be"),
        (lambda: layers.Conv2DTranspose(4, 3, strides=2, output_padding=2), "strictly less than `strides`"),
        (lambda: layers.Conv1DTranspose(4, 3, padding="causal"), "`padding` argument must be"),
        (lambda: layers.DepthwiseConv2D(3, depth_multiplier=0), "Expected a strictly positive value"),
        (lambda: layers.SeparableConv2D(0, 3), "Expected a strictly positive value"),
        (lambda: layers.Conv2D(4, 3, unknown=1), "Unrecognized keyword arguments"),
    ],
)
def test_constructor_errors(make, message):
    with pytest.raises(ValueError, match=message):
        make()


def test_build_and_call_errors():
    with pytest.raises(ValueError, match="expected min_ndim=4"):
        layers.Conv2D(4, 3)(keras.Input((8, 3)))
    with pytest.raises(ValueError, match="same length as input"):
        layers.Conv2D(4, 3)(keras.Input((8, 8, 8, 3)))
    with pytest.raises(ValueError, match="number of input channels must be evenly divisible"):
        layers.Conv2D(4, 3, groups=2)(keras.Input((8, 8, 3)))
    with pytest.raises(ValueError, match="channel dimension"):
        layers.Conv2D(4, 3)(keras.Input((8, 8, None)))
    with pytest.raises(ValueError, match="zero or negative"):
        layers.Conv2D(4, 5)(keras.Input((3, 8, 2)))
    layer = layers.Conv2D(4, 3)
    layer(keras.Input((8, 8, 3)))
    with pytest.raises(ValueError, match="expected axis -1 of input shape to have value 3"):
        layer(keras.Input((8, 8, 5)))
    with pytest.raises(ValueError, match="expected axis 1 of input shape to have value 3"):
        depthwise = layers.DepthwiseConv2D(3, data_format="channels_first")
        depthwise(keras.Input((3, 8, 8)))
        depthwise(keras.Input((4, 8, 8)))


def test_eager_call_on_arrays():
    layer = layers.Conv1D(3, 2, padding="causal")
    x = rand(2, 5, 4)
    y = layer(x)
    assert isinstance(y, np.ndarray) and y.shape == (2, 5, 3)
    np.testing.assert_allclose(y, _reference(layer, x), rtol=1e-5, atol=1e-5)
    # Causal: output t depends only on inputs up to t.
    x2 = x.copy()
    x2[:, 3:] += 1
    np.testing.assert_allclose(layer(x2)[:, :3], y[:, :3], rtol=1e-6)


def test_ort_fuses_conv_bias_and_relu(tmp_path):
    inputs = keras.Input((None, None, 3))
    x = layers.Conv2D(8, 3, strides=2, padding="same", activation="relu")(inputs)
    x = layers.DepthwiseConv2D(3, padding="same", activation="relu")(x)
    x = layers.SeparableConv2D(4, 3, padding="same", activation="relu")(x)
    x = layers.Conv2D(4, 1)(x)
    model = keras.Model(inputs, x)
    proto = assert_onnx_parity(model, rand(2, 9, 8, 3))
    assert [n.op_type for n in proto.graph.node] == [
        "Transpose",
        "Conv",
        "Relu",
        "Conv",
        "Relu",
        "Conv",
        "Conv",
        "Relu",
        "Conv",
        "Transpose",
    ]
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED
    options.optimized_model_filepath = str(tmp_path / "optimized.onnx")
    options.log_severity_level = 3
    ort.InferenceSession(proto.SerializeToString(), options, providers=["CPUExecutionProvider"])
    optimized = [n.op_type for n in onnx.load(options.optimized_model_filepath).graph.node]
    assert "Relu" not in optimized and "Add" not in optimized
    assert optimized.count("FusedConv") == 3 and optimized.count("Transpose") == 2


HARNESS_CASES = [
    ("Conv1D", {"filters": 3, "kernel_size": 3, "padding": "causal"}, (6, 2)),
    ("Conv2D", {"filters": 3, "kernel_size": 3, "strides": 2, "padding": "same", "activation": "relu"}, (5, 5, 2)),
    ("Conv2DTranspose", {"filters": 2, "kernel_size": 3, "strides": 2}, (3, 3, 2)),
    ("DepthwiseConv2D", {"kernel_size": 2, "depth_multiplier": 2}, (4, 4, 2)),
    ("SeparableConv1D", {"filters": 3, "kernel_size": 2, "padding": "same"}, (5, 2)),
]


@pytest.mark.parametrize("name, kwargs, shape", HARNESS_CASES, ids=[c[0] for c in HARNESS_CASES])
def test_layer_harness(name, kwargs, shape):
    """Shapes, configs, .keras file, ONNX, gradients and (where installed) Keras: tests/harness.py."""
    run_layer_test(getattr(irtool.layers, name), kwargs, shape)
