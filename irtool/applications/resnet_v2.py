"""``keras.applications.resnet_v2``: ResNet50V2/101V2/152V2 (He et al., 2016: pre-activation
residual units) with Keras' layer names."""

from __future__ import annotations

from irtool.applications import imagenet_utils
from irtool.applications.resnet import ResNet, stack_residual_blocks_v2

__all__ = ["ResNet50V2", "ResNet101V2", "ResNet152V2", "decode_predictions", "preprocess_input"]


def _v2_stacks(conv3_blocks: int, conv4_blocks: int):
    def stack_fn(x):
        x = stack_residual_blocks_v2(x, 64, 3, name="conv2")
        x = stack_residual_blocks_v2(x, 128, conv3_blocks, name="conv3")
        x = stack_residual_blocks_v2(x, 256, conv4_blocks, name="conv4")
        return stack_residual_blocks_v2(x, 512, 3, stride1=1, name="conv5")

    return stack_fn


def ResNet50V2(
    include_top=True,
    weights="imagenet",
    input_tensor=None,
    input_shape=None,
    pooling=None,
    classes=1000,
    classifier_activation="softmax",
    name="resnet50v2",
):
    """ResNet50V2 (keras.applications.ResNet50V2): v2 stacks of 3, 4, 6 and 3 blocks.

    Inputs are scaled to [-1, 1] (``resnet_v2.preprocess_input``), at least 32x32; 224x224 with
    ``include_top``.

    >>> model = ResNet50V2(weights=None, include_top=False, input_shape=(32, 32, 3))
    >>> model.output.shape
    (None, 1, 1, 2048)
    """
    return ResNet(
        _v2_stacks(4, 6),
        True,
        True,
        include_top,
        weights,
        input_tensor,
        input_shape,
        pooling,
        classes,
        classifier_activation,
        name=name,
        weights_name="resnet50v2",
    )


def ResNet101V2(
    include_top=True,
    weights="imagenet",
    input_tensor=None,
    input_shape=None,
    pooling=None,
    classes=1000,
    classifier_activation="softmax",
    name="resnet101v2",
):
    """ResNet101V2 (keras.applications.ResNet101V2): v2 stacks of 3, 4, 23 and 3 blocks."""
    return ResNet(
        _v2_stacks(4, 23),
        True,
        True,
        include_top,
        weights,
        input_tensor,
        input_shape,
        pooling,
        classes,
        classifier_activation,
        name=name,
        weights_name="resnet101v2",
    )


def ResNet152V2(
    include_top=True,
    weights="imagenet",
    input_tensor=None,
    input_shape=None,
    pooling=None,
    classes=1000,
    classifier_activation="softmax",
    name="resnet152v2",
):
    """ResNet152V2 (keras.applications.ResNet152V2): v2 stacks of 3, 8, 36 and 3 blocks."""
    return ResNet(
        _v2_stacks(8, 36),
        True,
        True,
        include_top,
        weights,
        input_tensor,
        input_shape,
        pooling,
        classes,
        classifier_activation,
        name=name,
        weights_name="resnet152v2",
    )


def preprocess_input(x, data_format=None):
    """Scaling to [-1, 1] (``tf`` mode), as the v2 ResNets expect."""
    return imagenet_utils.preprocess_input(x, data_format=data_format, mode="tf")


def decode_predictions(preds, top=5):
    """The ``top`` ImageNet classes of each row of ``preds`` (see ``imagenet_utils``)."""
    return imagenet_utils.decode_predictions(preds, top=top)
