"""``keras.applications.densenet``: DenseNet121/169/201 (Huang et al., 2017) with Keras' layer names."""

from __future__ import annotations

from irtool import layers
from irtool.applications import _functional, imagenet_utils

__all__ = ["DenseNet121", "DenseNet169", "DenseNet201", "decode_predictions", "preprocess_input"]

_EPSILON = 1.001e-5
_WEIGHTS_PREFIX = {(6, 12, 24, 16): "densenet121", (6, 12, 32, 32): "densenet169", (6, 12, 48, 32): "densenet201"}


def _bn_relu(x, name):
    x = layers.BatchNormalization(axis=_functional.bn_axis(), epsilon=_EPSILON, name=f"{name}_bn")(x)
    return layers.Activation("relu", name=f"{name}_relu")(x)


def conv_block(x, growth_rate, name):
    """BN-ReLU-1x1 (4 * growth_rate), BN-ReLU-3x3 (growth_rate), concatenated to the input."""
    x1 = _bn_relu(x, f"{name}_0")
    x1 = layers.Conv2D(4 * growth_rate, 1, use_bias=False, name=f"{name}_1_conv")(x1)
    x1 = _bn_relu(x1, f"{name}_1")
    x1 = layers.Conv2D(growth_rate, 3, padding="same", use_bias=False, name=f"{name}_2_conv")(x1)
    return layers.Concatenate(axis=_functional.bn_axis(), name=f"{name}_concat")([x, x1])


def dense_block(x, blocks, name):
    """``blocks`` conv blocks, each adding 32 channels."""
    for i in range(blocks):
        x = conv_block(x, 32, name=f"{name}_block{i + 1}")
    return x


def transition_block(x, reduction, name):
    """BN-ReLU, a 1x1 convolution keeping ``reduction`` of the channels and a 2x2 average pooling."""
    x = _bn_relu(x, name)
    channels = int(x.shape[_functional.bn_axis()] * reduction)
    x = layers.Conv2D(channels, 1, use_bias=False, name=f"{name}_conv")(x)
    return layers.AveragePooling2D(2, strides=2, name=f"{name}_pool")(x)


def DenseNet(
    blocks,
    include_top=True,
    weights="imagenet",
    input_tensor=None,
    input_shape=None,
    pooling=None,
    classes=1000,
    classifier_activation="softmax",
    name="densenet",
):
    """A 7x7 stride-2 stem and four dense blocks of ``blocks`` conv blocks with transitions between."""
    imagenet_utils.validate_weights(weights, include_top, classes)
    img_input = _functional.image_input(input_tensor, input_shape, 224, 32, include_top, weights)
    # Keras leaves the two paddings unnamed.
    x = layers.ZeroPadding2D(padding=((3, 3), (3, 3)))(img_input)
    x = layers.Conv2D(64, 7, strides=2, use_bias=False, name="conv1_conv")(x)
    x = _bn_relu(x, "conv1")
    x = layers.ZeroPadding2D(padding=((1, 1), (1, 1)))(x)
    x = layers.MaxPooling2D(3, strides=2, name="pool1")(x)
    for stage, count in enumerate(blocks, start=2):
        x = dense_block(x, count, name=f"conv{stage}")
        if stage < 5:
            x = transition_block(x, 0.5, name=f"pool{stage}")
    x = layers.BatchNormalization(axis=_functional.bn_axis(), epsilon=_EPSILON, name="bn")(x)
    x = layers.Activation("relu", name="relu")(x)
    x = _functional.classifier_or_pooling(x, include_top, pooling, classes, classifier_activation, weights)
    prefix = _WEIGHTS_PREFIX.get(tuple(blocks))
    file_name = None if prefix is None else _functional.imagenet_file(prefix, include_top)
    return _functional.finish(img_input, input_tensor, x, name, weights, file_name, "densenet/")


def _builder(blocks: list, default_name: str, doc: str):
    def build(
        include_top=True,
        weights="imagenet",
        input_tensor=None,
        input_shape=None,
        pooling=None,
        classes=1000,
        classifier_activation="softmax",
        name=default_name,
    ):
        return DenseNet(
            blocks, include_top, weights, input_tensor, input_shape, pooling, classes, classifier_activation, name=name
        )

    build.__name__ = build.__qualname__ = default_name.replace("densenet", "DenseNet")
    build.__doc__ = doc
    return build


_INPUTS_DOC = """

    Inputs are scaled to [0, 1] and standardized with the ImageNet means and deviations
    (``densenet.preprocess_input``), at least 32x32; 224x224 with ``include_top``."""

DenseNet121 = _builder(
    [6, 12, 24, 16],
    "densenet121",
    "DenseNet121 (keras.applications.DenseNet121): dense blocks of 6, 12, 24 and 16." + _INPUTS_DOC,
)
DenseNet169 = _builder(
    [6, 12, 32, 32],
    "densenet169",
    "DenseNet169 (keras.applications.DenseNet169): dense blocks of 6, 12, 32 and 32." + _INPUTS_DOC,
)
DenseNet201 = _builder(
    [6, 12, 48, 32],
    "densenet201",
    "DenseNet201 (keras.applications.DenseNet201): dense blocks of 6, 12, 48 and 32." + _INPUTS_DOC,
)


def preprocess_input(x, data_format=None):
    """Scaling to [0, 1] and standardizing per channel (``torch`` mode), as DenseNet expects."""
    return imagenet_utils.preprocess_input(x, data_format=data_format, mode="torch")


def decode_predictions(preds, top=5):
    """The ``top`` ImageNet classes of each row of ``preds`` (see ``imagenet_utils``)."""
    return imagenet_utils.decode_predictions(preds, top=top)
