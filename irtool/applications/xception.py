"""``keras.applications.xception``: Xception (Chollet, 2017) with Keras' layer names."""

from __future__ import annotations

from irtool import layers
from irtool.applications import _functional, imagenet_utils

__all__ = ["Xception", "decode_predictions", "preprocess_input"]


def _sepconv_bn(x, filters, name, relu_first: bool):
    """(ReLU,) a 3x3 separable convolution and its BatchNormalization, named ``<name>`` and ``<name>_bn``."""
    channel_axis = _functional.bn_axis()
    if relu_first:
        x = layers.Activation("relu", name=f"{name}_act")(x)
    x = layers.SeparableConv2D(filters, (3, 3), padding="same", use_bias=False, name=name)(x)
    return layers.BatchNormalization(axis=channel_axis, name=f"{name}_bn")(x)


def _downsampling_block(x, filters: tuple, block: int, relu_first: bool):
    """Two separable convolutions and a strided max pooling, added to a strided 1x1 projection
    (Keras leaves the projection and its BatchNormalization unnamed)."""
    residual = layers.Conv2D(filters[1], (1, 1), strides=(2, 2), padding="same", use_bias=False)(x)
    residual = layers.BatchNormalization(axis=_functional.bn_axis())(residual)
    x = _sepconv_bn(x, filters[0], f"block{block}_sepconv1", relu_first)
    x = _sepconv_bn(x, filters[1], f"block{block}_sepconv2", True)
    x = layers.MaxPooling2D((3, 3), strides=(2, 2), padding="same", name=f"block{block}_pool")(x)
    return layers.add([x, residual])


def Xception(
    include_top=True,
    weights="imagenet",
    input_tensor=None,
    input_shape=None,
    pooling=None,
    classes=1000,
    classifier_activation="softmax",
    name="xception",
):
    """Xception (keras.applications.Xception): an entry flow of strided separable blocks, eight
    middle-flow residual blocks and an exit flow.

    Inputs are scaled to [-1, 1] (``xception.preprocess_input``), at least 71x71; 299x299 with
    ``include_top``.

    >>> model = Xception(weights=None, include_top=False, input_shape=(71, 71, 3))
    >>> model.output.shape
    (None, 3, 3, 2048)
    """
    imagenet_utils.validate_weights(weights, include_top, classes)
    img_input = _functional.image_input(input_tensor, input_shape, 299, 71, include_top, weights)
    channel_axis = _functional.bn_axis()
    x = layers.Conv2D(32, (3, 3), strides=(2, 2), use_bias=False, name="block1_conv1")(img_input)
    x = layers.BatchNormalization(axis=channel_axis, name="block1_conv1_bn")(x)
    x = layers.Activation("relu", name="block1_conv1_act")(x)
    x = layers.Conv2D(64, (3, 3), use_bias=False, name="block1_conv2")(x)
    x = layers.BatchNormalization(axis=channel_axis, name="block1_conv2_bn")(x)
    x = layers.Activation("relu", name="block1_conv2_act")(x)

    # Block 2's first separable convolution follows block 1's ReLU directly.
    x = _downsampling_block(x, (128, 128), 2, relu_first=False)
    x = _downsampling_block(x, (256, 256), 3, relu_first=True)
    x = _downsampling_block(x, (728, 728), 4, relu_first=True)
    for block in range(5, 13):
        residual = x
        for conv in (1, 2, 3):
            x = _sepconv_bn(x, 728, f"block{block}_sepconv{conv}", True)
        x = layers.add([x, residual])
    x = _downsampling_block(x, (728, 1024), 13, relu_first=True)

    x = layers.SeparableConv2D(1536, (3, 3), padding="same", use_bias=False, name="block14_sepconv1")(x)
    x = layers.BatchNormalization(axis=channel_axis, name="block14_sepconv1_bn")(x)
    x = layers.Activation("relu", name="block14_sepconv1_act")(x)
    x = layers.SeparableConv2D(2048, (3, 3), padding="same", use_bias=False, name="block14_sepconv2")(x)
    x = layers.BatchNormalization(axis=channel_axis, name="block14_sepconv2_bn")(x)
    x = layers.Activation("relu", name="block14_sepconv2_act")(x)
    x = _functional.classifier_or_pooling(
        x, include_top, pooling, classes, classifier_activation, weights, pool_names=(None, None)
    )
    file_name = _functional.imagenet_file("xception", include_top)
    return _functional.finish(img_input, input_tensor, x, name, weights, file_name, "xception/")


def preprocess_input(x, data_format=None):
    """Scaling to [-1, 1] (``tf`` mode), as Xception expects."""
    return imagenet_utils.preprocess_input(x, data_format=data_format, mode="tf")


def decode_predictions(preds, top=5):
    """The ``top`` ImageNet classes of each row of ``preds`` (see ``imagenet_utils``)."""
    return imagenet_utils.decode_predictions(preds, top=top)
