"""Where the real Keras 3 is installed: every convolution layer, built the same way in both,
with Keras' weights copied over, gives Keras' outputs, names, weight paths and configs."""

from __future__ import annotations

import numpy as np
import pytest

import irtool

from ..harness import keras_parity, require_keras

require_keras()
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning", "ignore::UserWarning")

RNG = np.random.default_rng(21)

CASES = [
    ("Conv1D", dict(filters=5, kernel_size=3)),
    ("Conv1D", dict(filters=6, kernel_size=3, padding="causal", dilation_rate=2, activation="relu")),
    ("Conv1D", dict(filters=4, kernel_size=4, strides=2, padding="same", groups=2)),
    ("Conv1D", dict(filters=4, kernel_size=2, padding="same", data_format="channels_first")),
    ("Conv2D", dict(filters=5, kernel_size=3, strides=2, padding="same", activation="relu")),
    ("Conv2D", dict(filters=4, kernel_size=(2, 3), padding="same", dilation_rate=2, use_bias=False)),
    ("Conv2D", dict(filters=6, kernel_size=3, groups=2, data_format="channels_first")),
    ("Conv2D", dict(filters=3, kernel_size=4, strides=(2, 1), padding="same", activation="tanh")),
    ("Conv3D", dict(filters=3, kernel_size=3, padding="same")),
    ("Conv3D", dict(filters=4, kernel_size=2, strides=2, groups=2, data_format="channels_first")),
    ("Conv1DTranspose", dict(filters=3, kernel_size=3, strides=2, padding="same")),
    ("Conv1DTranspose", dict(filters=3, kernel_size=4, strides=2, output_padding=1)),
    ("Conv1DTranspose", dict(filters=2, kernel_size=3, dilation_rate=2, data_format="channels_first")),
    ("Conv2DTranspose", dict(filters=3, kernel_size=3, strides=2, padding="same", activation="relu")),
    ("Conv2DTranspose", dict(filters=3, kernel_size=4, strides=2, padding="same")),
    ("Conv2DTranspose", dict(filters=2, kernel_size=3, strides=2, padding="same", output_padding=1)),
    ("Conv2DTranspose", dict(filters=2, kernel_size=5, strides=3, padding="same", output_padding=(2, 0))),
    ("Conv2DTranspose", dict(filters=2, kernel_size=(3, 2), strides=(2, 3), output_padding=(1, 2))),
    ("Conv2DTranspose", dict(filters=2, kernel_size=2, strides=3, data_format="channels_first")),
    ("Conv3DTranspose", dict(filters=2, kernel_size=3, strides=2, padding="same")),
    ("Conv3DTranspose", dict(filters=2, kernel_size=2, strides=(1, 2, 1), data_format="channels_first")),
    ("DepthwiseConv1D", dict(kernel_size=3, depth_multiplier=2, padding="same")),
    ("DepthwiseConv1D", dict(kernel_size=2, strides=2, data_format="channels_first", activation="relu")),
    ("DepthwiseConv2D", dict(kernel_size=3)),
    ("DepthwiseConv2D", dict(kernel_size=3, strides=2, padding="same", depth_multiplier=3)),
    ("DepthwiseConv2D", dict(kernel_size=(2, 3), dilation_rate=2, data_format="channels_first")),
    ("SeparableConv1D", dict(filters=5, kernel_size=3, padding="same", depth_multiplier=2)),
    ("SeparableConv1D", dict(filters=3, kernel_size=2, strides=2, data_format="channels_first")),
    ("SeparableConv2D", dict(filters=5, kernel_size=3, strides=2, padding="same", activation="relu")),
    ("SeparableConv2D", dict(filters=4, kernel_size=2, dilation_rate=2, use_bias=False)),
]

SPATIAL = {"1": (9,), "2": (7, 6), "3": (4, 5, 3)}


def _rank(name: str) -> str:
    return next(c for c in name if c.isdigit())


def _input_shape(name, kwargs, spatial=None, channels=4):
    spatial = spatial or SPATIAL[_rank(name)]
    if kwargs.get("data_format") == "channels_first":
        return (channels, *spatial)
    return (*spatial, channels)


def parity(name, kwargs, shape, x, *extra_x):
    """The same one-layer model in Keras and irtool; random Keras weights copied into irtool.

    Keras' session is not cleared here (that costs ~0.4 s), so its auto names carry a suffix
    (``suffixed_names``). The autoencoder test checks exact names after a clear."""

    def builder(lib):
        inputs = lib.Input(shape)
        return lib.Model(inputs, getattr(lib.layers, name)(**kwargs)(inputs))

    return keras_parity(
        builder,
        x,
        extra_inputs=extra_x,
        seed=None,
        suffixed_names=True,
        weights=lambda theirs: [RNG.uniform(-1, 1, w.shape).astype("float32") for w in theirs.get_weights()],
        direct_call=True,
        output_shape=True,
        names=True,
        weight_paths=True,
        count_params=True,
        # Keras 3.15's GlorotUniform config also lists input_axes/output_axes; compare the class only.
        configs=lambda layer: not isinstance(layer, irtool.layers.InputLayer),
        config_ignore=(),
        config_nested="class_name",
    )


@pytest.mark.parametrize("name,kwargs", CASES, ids=[f"{n}-{i}" for i, (n, _) in enumerate(CASES)])
def test_layer_matches_keras(name, kwargs):
    shape = _input_shape(name, kwargs)
    parity(name, kwargs, shape, RNG.standard_normal((3, *shape)).astype("float32"))


@pytest.mark.parametrize(
    "name,kwargs,sizes",
    [
        ("Conv2D", dict(filters=4, kernel_size=3, strides=2, padding="same"), [(7, 6), (8, 9)]),
        ("Conv2DTranspose", dict(filters=4, kernel_size=3, strides=2, padding="same"), [(4, 5), (3, 3)]),
        ("SeparableConv2D", dict(filters=4, kernel_size=3, padding="same"), [(5, 6), (8, 9)]),
        ("Conv1D", dict(filters=4, kernel_size=3, padding="causal"), [(5,), (12,)]),
    ],
)
def test_dynamic_spatial_dims_match_keras(name, kwargs, sizes):
    shape = (None,) * len(sizes[0]) + (3,)
    parity(name, kwargs, shape, *[RNG.standard_normal((2, *size, 3)).astype("float32") for size in sizes])


def test_conv_autoencoder_matches_keras():
    """The functional-API guide's convolutional autoencoder (the conv parts of it)."""

    def build(k):
        inputs = k.Input((28, 28, 1), name="img")
        x = k.layers.Conv2D(16, 3, activation="relu")(inputs)
        x = k.layers.Conv2D(32, 3, activation="relu")(x)
        x = k.layers.Conv2D(16, 3, strides=2, activation="relu")(x)
        x = k.layers.Conv2DTranspose(16, 3, strides=2, activation="relu")(x)
        x = k.layers.Conv2DTranspose(32, 3, activation="relu")(x)
        return k.Model(inputs, k.layers.Conv2DTranspose(1, 3, activation="relu")(x), name="autoencoder")

    x = RNG.uniform(0, 1, (2, 28, 28, 1)).astype("float32")
    ours, theirs = keras_parity(build, x, direct_call=True, output_shape=True, weight_paths=True)
    assert ours.output_shape == theirs.output_shape == (None, 27, 27, 1)
