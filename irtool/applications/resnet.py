"""``keras.applications.resnet``: ResNet50/101/152 (He et al., 2015) with Keras' layer names, and
the ResNet network and residual stacks that ``resnet_v2`` builds on too."""

from __future__ import annotations

from irtool import layers
from irtool.applications import _functional, imagenet_utils

__all__ = ["ResNet50", "ResNet101", "ResNet152", "decode_predictions", "preprocess_input"]

_EPSILON = 1.001e-5  # the epsilon of every BatchNormalization in Keras' ResNets


def ResNet(
    stack_fn,
    preact: bool,
    use_bias: bool,
    include_top=True,
    weights="imagenet",
    input_tensor=None,
    input_shape=None,
    pooling=None,
    classes=1000,
    classifier_activation="softmax",
    name="resnet",
    weights_name=None,
):
    """A 7x7 stride-2 stem, a 3x3 stride-2 max pooling, ``stack_fn``'s residual stacks and the head.

    ``preact`` (ResNet v2): the stem has no BatchNormalization/ReLU and the stacks are followed by
    ``post_bn``/``post_relu``. ``weights_name`` names the ImageNet weights file."""
    imagenet_utils.validate_weights(weights, include_top, classes)
    img_input = _functional.image_input(input_tensor, input_shape, 224, 32, include_top, weights)
    x = layers.ZeroPadding2D(padding=((3, 3), (3, 3)), name="conv1_pad")(img_input)
    x = layers.Conv2D(64, 7, strides=2, use_bias=use_bias, name="conv1_conv")(x)
    if not preact:
        x = layers.BatchNormalization(axis=_functional.bn_axis(), epsilon=_EPSILON, name="conv1_bn")(x)
        x = layers.Activation("relu", name="conv1_relu")(x)
    x = layers.ZeroPadding2D(padding=((1, 1), (1, 1)), name="pool1_pad")(x)
    x = layers.MaxPooling2D(3, strides=2, name="pool1_pool")(x)
    x = stack_fn(x)
    if preact:
        x = layers.BatchNormalization(axis=_functional.bn_axis(), epsilon=_EPSILON, name="post_bn")(x)
        x = layers.Activation("relu", name="post_relu")(x)
    x = _functional.classifier_or_pooling(x, include_top, pooling, classes, classifier_activation, weights)
    file_name = None if weights_name is None else _functional.imagenet_file(weights_name, include_top)
    return _functional.finish(img_input, input_tensor, x, name, weights, file_name, "resnet/")


def _conv_bn(x, filters, kernel_size, name, strides=1, padding="valid", use_bias=True):
    x = layers.Conv2D(filters, kernel_size, strides=strides, padding=padding, use_bias=use_bias, name=f"{name}_conv")(x)
    return layers.BatchNormalization(axis=_functional.bn_axis(), epsilon=_EPSILON, name=f"{name}_bn")(x)


def residual_block_v1(x, filters, kernel_size=3, stride=1, conv_shortcut=True, name=None):
    """The v1 bottleneck: 1x1 (strided), 3x3, 1x1 to ``4 * filters``, added to the shortcut, then ReLU."""
    shortcut = _conv_bn(x, 4 * filters, 1, f"{name}_0", strides=stride) if conv_shortcut else x
    x = _conv_bn(x, filters, 1, f"{name}_1", strides=stride)
    x = layers.Activation("relu", name=f"{name}_1_relu")(x)
    x = _conv_bn(x, filters, kernel_size, f"{name}_2", padding="same")
    x = layers.Activation("relu", name=f"{name}_2_relu")(x)
    x = _conv_bn(x, 4 * filters, 1, f"{name}_3")
    x = layers.Add(name=f"{name}_add")([shortcut, x])
    return layers.Activation("relu", name=f"{name}_out")(x)


def stack_residual_blocks_v1(x, filters, blocks, stride1=2, name=None):
    """``blocks`` v1 blocks, the first with a projection shortcut and stride ``stride1``."""
    x = residual_block_v1(x, filters, stride=stride1, name=f"{name}_block1")
    for i in range(2, blocks + 1):
        x = residual_block_v1(x, filters, conv_shortcut=False, name=f"{name}_block{i}")
    return x


def residual_block_v2(x, filters, kernel_size=3, stride=1, conv_shortcut=False, name=None):
    """The v2 (pre-activation) bottleneck: BN-ReLU first, the stride on the 3x3 convolution, no
    activation after the addition; an identity shortcut with a stride is a 1x1 max pooling."""
    preact = layers.BatchNormalization(axis=_functional.bn_axis(), epsilon=_EPSILON, name=f"{name}_preact_bn")(x)
    preact = layers.Activation("relu", name=f"{name}_preact_relu")(preact)
    if conv_shortcut:
        shortcut = layers.Conv2D(4 * filters, 1, strides=stride, name=f"{name}_0_conv")(preact)
    else:
        # Keras leaves this pooling unnamed.
        shortcut = layers.MaxPooling2D(1, strides=stride)(x) if stride > 1 else x
    x = _conv_bn(preact, filters, 1, f"{name}_1", use_bias=False)
    x = layers.Activation("relu", name=f"{name}_1_relu")(x)
    x = layers.ZeroPadding2D(padding=((1, 1), (1, 1)), name=f"{name}_2_pad")(x)
    x = _conv_bn(x, filters, kernel_size, f"{name}_2", strides=stride, use_bias=False)
    x = layers.Activation("relu", name=f"{name}_2_relu")(x)
    x = layers.Conv2D(4 * filters, 1, name=f"{name}_3_conv")(x)
    return layers.Add(name=f"{name}_out")([shortcut, x])


def stack_residual_blocks_v2(x, filters, blocks, stride1=2, name=None):
    """``blocks`` v2 blocks: a projection shortcut first, the stride ``stride1`` on the last."""
    x = residual_block_v2(x, filters, conv_shortcut=True, name=f"{name}_block1")
    for i in range(2, blocks):
        x = residual_block_v2(x, filters, name=f"{name}_block{i}")
    return residual_block_v2(x, filters, stride=stride1, name=f"{name}_block{blocks}")


def _v1_stacks(conv3_blocks: int, conv4_blocks: int):
    def stack_fn(x):
        x = stack_residual_blocks_v1(x, 64, 3, stride1=1, name="conv2")
        x = stack_residual_blocks_v1(x, 128, conv3_blocks, name="conv3")
        x = stack_residual_blocks_v1(x, 256, conv4_blocks, name="conv4")
        return stack_residual_blocks_v1(x, 512, 3, name="conv5")

    return stack_fn


def ResNet50(
    include_top=True,
    weights="imagenet",
    input_tensor=None,
    input_shape=None,
    pooling=None,
    classes=1000,
    classifier_activation="softmax",
    name="resnet50",
):
    """ResNet50 (keras.applications.ResNet50): v1 bottleneck stacks of 3, 4, 6 and 3 blocks.

    Inputs are BGR images centred on the ImageNet means (``resnet50.preprocess_input``), at least
    32x32; 224x224 with ``include_top``.

    >>> model = ResNet50(weights=None, include_top=False, input_shape=(32, 32, 3))
    >>> model.output.shape
    (None, 1, 1, 2048)
    """
    return ResNet(
        _v1_stacks(4, 6),
        False,
        True,
        include_top,
        weights,
        input_tensor,
        input_shape,
        pooling,
        classes,
        classifier_activation,
        name=name,
        weights_name="resnet50",
    )


def ResNet101(
    include_top=True,
    weights="imagenet",
    input_tensor=None,
    input_shape=None,
    pooling=None,
    classes=1000,
    classifier_activation="softmax",
    name="resnet101",
):
    """ResNet101 (keras.applications.ResNet101): v1 bottleneck stacks of 3, 4, 23 and 3 blocks."""
    return ResNet(
        _v1_stacks(4, 23),
        False,
        True,
        include_top,
        weights,
        input_tensor,
        input_shape,
        pooling,
        classes,
        classifier_activation,
        name=name,
        weights_name="resnet101",
    )


def ResNet152(
    include_top=True,
    weights="imagenet",
    input_tensor=None,
    input_shape=None,
    pooling=None,
    classes=1000,
    classifier_activation="softmax",
    name="resnet152",
):
    """ResNet152 (keras.applications.ResNet152): v1 bottleneck stacks of 3, 8, 36 and 3 blocks."""
    return ResNet(
        _v1_stacks(8, 36),
        False,
        True,
        include_top,
        weights,
        input_tensor,
        input_shape,
        pooling,
        classes,
        classifier_activation,
        name=name,
        weights_name="resnet152",
    )


def preprocess_input(x, data_format=None):
    """RGB to BGR and ImageNet mean subtraction (``caffe`` mode), as the v1 ResNets expect."""
    return imagenet_utils.preprocess_input(x, data_format=data_format, mode="caffe")


def decode_predictions(preds, top=5):
    """The ``top`` ImageNet classes of each row of ``preds`` (see ``imagenet_utils``)."""
    return imagenet_utils.decode_predictions(preds, top=top)
