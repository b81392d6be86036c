"""``keras.applications.inception_resnet_v2``: Inception-ResNet-v2 (Szegedy et al., 2017) with
Keras' layer names, and ``CustomScaleLayer``, the scaled residual sum Keras defines for it."""

from __future__ import annotations

from irtool import layers
from irtool.applications import _functional, imagenet_utils
from irtool.serialization.keras_objects import register_namespace

__all__ = ["CustomScaleLayer", "InceptionResNetV2", "decode_predictions", "preprocess_input"]


class CustomScaleLayer(layers.Layer):
    """``inputs[0] + inputs[1] * scale``: a residual plus its scaled-down update (Keras' layer of
    the same name, so auto-generated names and weights-file paths agree)."""

    def __init__(self, scale, **kwargs):
        super().__init__(**kwargs)
        self.scale = scale

    def get_config(self):
        return {**super().get_config(), "scale": self.scale}

    def call(self, inputs):
        return inputs[0] + inputs[1] * self.scale


# Keras writes this layer under its application's module, so a saved InceptionResNetV2 names it
# there; registering it under that name loads such files with no custom_objects.
register_namespace("keras.src.applications.inception_resnet_v2", {"CustomScaleLayer": CustomScaleLayer})


def conv2d_bn(x, filters, kernel_size, strides=1, padding="same", activation="relu", use_bias=False, name=None):
    """A convolution, a BatchNormalization without scale unless it has a bias, and ``activation``
    (named ``<name>``, ``<name>_bn`` and ``<name>_ac`` when ``name`` is given)."""
    x = layers.Conv2D(filters, kernel_size, strides=strides, padding=padding, use_bias=use_bias, name=name)(x)
    if not use_bias:
        bn_name = None if name is None else f"{name}_bn"
        x = layers.BatchNormalization(axis=_functional.bn_axis(), scale=False, name=bn_name)(x)
    if activation is not None:
        x = layers.Activation(activation, name=None if name is None else f"{name}_ac")(x)
    return x


def inception_resnet_block(x, scale, block_type, block_idx, activation="relu"):
    """One residual Inception module: its branches are concatenated (``<type>_<idx>_mixed``),
    projected back to the input's channels by a 1x1 convolution with bias (``..._conv``), scaled
    by ``scale`` and added to the input, then ``activation`` (``..._ac``)."""
    if block_type == "block35":
        branch_0 = conv2d_bn(x, 32, 1)
        branch_1 = conv2d_bn(x, 32, 1)
        branch_1 = conv2d_bn(branch_1, 32, 3)
        branch_2 = conv2d_bn(x, 32, 1)
        branch_2 = conv2d_bn(branch_2, 48, 3)
        branch_2 = conv2d_bn(branch_2, 64, 3)
        branches = [branch_0, branch_1, branch_2]
    elif block_type == "block17":
        branch_0 = conv2d_bn(x, 192, 1)
        branch_1 = conv2d_bn(x, 128, 1)
        branch_1 = conv2d_bn(branch_1, 160, [1, 7])
        branch_1 = conv2d_bn(branch_1, 192, [7, 1])
        branches = [branch_0, branch_1]
    elif block_type == "block8":
        branch_0 = conv2d_bn(x, 192, 1)
        branch_1 = conv2d_bn(x, 192, 1)
        branch_1 = conv2d_bn(branch_1, 224, [1, 3])
        branch_1 = conv2d_bn(branch_1, 256, [3, 1])
        branches = [branch_0, branch_1]
    else:
        raise ValueError(
            f'Unknown Inception-ResNet block type. Expects "block35", "block17" or "block8", but got: {block_type}'
        )
    block_name = f"{block_type}_{block_idx}"
    channel_axis = _functional.bn_axis()
    mixed = layers.Concatenate(axis=channel_axis, name=f"{block_name}_mixed")(branches)
    up = conv2d_bn(mixed, x.shape[channel_axis], 1, activation=None, use_bias=True, name=f"{block_name}_conv")
    x = CustomScaleLayer(scale)([x, up])
    if activation is not None:
        x = layers.Activation(activation, name=f"{block_name}_ac")(x)
    return x


def InceptionResNetV2(
    include_top=True,
    weights="imagenet",
    input_tensor=None,
    input_shape=None,
    pooling=None,
    classes=1000,
    classifier_activation="softmax",
    name="inception_resnet_v2",
):
    """Inception-ResNet-v2 (keras.applications.InceptionResNetV2): a stem, 10 block35, 20 block17
    and 10 block8 residual modules with reductions between them, and ``conv_7b``.

    Inputs are scaled to [-1, 1] (``inception_resnet_v2.preprocess_input``), at least 75x75;
    299x299 with ``include_top``.

    >>> model = InceptionResNetV2(weights=None, include_top=False, input_shape=(75, 75, 3))
    >>> model.get_layer("conv_7b_ac").output.shape
    (None, 1, 1, 1536)
    """
    imagenet_utils.validate_weights(weights, include_top, classes)
    img_input = _functional.image_input(input_tensor, input_shape, 299, 75, include_top, weights)
    channel_axis = _functional.bn_axis()
    x = conv2d_bn(img_input, 32, 3, strides=2, padding="valid")
    x = conv2d_bn(x, 32, 3, padding="valid")
    x = conv2d_bn(x, 64, 3)
    x = layers.MaxPooling2D(3, strides=2)(x)
    x = conv2d_bn(x, 80, 1, padding="valid")
    x = conv2d_bn(x, 192, 3, padding="valid")
    x = layers.MaxPooling2D(3, strides=2)(x)

    # Mixed 5b (Inception-A): 35 x 35 x 320
    branch_0 = conv2d_bn(x, 96, 1)
    branch_1 = conv2d_bn(x, 48, 1)
    branch_1 = conv2d_bn(branch_1, 64, 5)
    branch_2 = conv2d_bn(x, 64, 1)
    branch_2 = conv2d_bn(branch_2, 96, 3)
    branch_2 = conv2d_bn(branch_2, 96, 3)
    branch_pool = layers.AveragePooling2D(3, strides=1, padding="same")(x)
    branch_pool = conv2d_bn(branch_pool, 64, 1)
    x = layers.Concatenate(axis=channel_axis, name="mixed_5b")([branch_0, branch_1, branch_2, branch_pool])
    for block_idx in range(1, 11):
        x = inception_resnet_block(x, scale=0.17, block_type="block35", block_idx=block_idx)

    # Mixed 6a (Reduction-A): 17 x 17 x 1088
    branch_0 = conv2d_bn(x, 384, 3, strides=2, padding="valid")
    branch_1 = conv2d_bn(x, 256, 1)
    branch_1 = conv2d_bn(branch_1, 256, 3)
    branch_1 = conv2d_bn(branch_1, 384, 3, strides=2, padding="valid")
    branch_pool = layers.MaxPooling2D(3, strides=2, padding="valid")(x)
    x = layers.Concatenate(axis=channel_axis, name="mixed_6a")([branch_0, branch_1, branch_pool])
    for block_idx in range(1, 21):
        x = inception_resnet_block(x, scale=0.1, block_type="block17", block_idx=block_idx)

    # Mixed 7a (Reduction-B): 8 x 8 x 2080
    branch_0 = conv2d_bn(x, 256, 1)
    branch_0 = conv2d_bn(branch_0, 384, 3, strides=2, padding="valid")
    branch_1 = conv2d_bn(x, 256, 1)
    branch_1 = conv2d_bn(branch_1, 288, 3, strides=2, padding="valid")
    branch_2 = conv2d_bn(x, 256, 1)
    branch_2 = conv2d_bn(branch_2, 288, 3)
    branch_2 = conv2d_bn(branch_2, 320, 3, strides=2, padding="valid")
    branch_pool = layers.MaxPooling2D(3, strides=2, padding="valid")(x)
    x = layers.Concatenate(axis=channel_axis, name="mixed_7a")([branch_0, branch_1, branch_2, branch_pool])
    for block_idx in range(1, 10):
        x = inception_resnet_block(x, scale=0.2, block_type="block8", block_idx=block_idx)
    x = inception_resnet_block(x, scale=1.0, activation=None, block_type="block8", block_idx=10)

    x = conv2d_bn(x, 1536, 1, name="conv_7b")
    x = _functional.classifier_or_pooling(
        x, include_top, pooling, classes, classifier_activation, weights, pool_names=(None, None)
    )
    file_name = _functional.imagenet_file("inception_resnet_v2", include_top)
    return _functional.finish(img_input, input_tensor, x, name, weights, file_name, "inception_resnet_v2/")


def preprocess_input(x, data_format=None):
    """Scaling to [-1, 1] (``tf`` mode), as Inception-ResNet-v2 expects."""
    return imagenet_utils.preprocess_input(x, data_format=data_format, mode="tf")


def decode_predictions(preds, top=5):
    """The ``top`` ImageNet classes of each row of ``preds`` (see ``imagenet_utils``)."""
    return imagenet_utils.decode_predictions(preds, top=top)
