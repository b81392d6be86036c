"""``keras.applications.vgg19``: VGG19 (Simonyan & Zisserman, 2015) with Keras' layer names."""

from __future__ import annotations

from irtool.applications import imagenet_utils
from irtool.applications.vgg16 import VGG

__all__ = ["VGG19", "decode_predictions", "preprocess_input"]


def VGG19(
    include_top=True,
    weights="imagenet",
    input_tensor=None,
    input_shape=None,
    pooling=None,
    classes=1000,
    classifier_activation="softmax",
    name="vgg19",
):
    """VGG19 (keras.applications.VGG19): 16 convolutions in five blocks and three Dense layers.

    Inputs are BGR images centred on the ImageNet means (``vgg19.preprocess_input``), at least
    32x32; 224x224 with ``include_top``. ``weights``: ``None``, ``"imagenet"`` (read from Keras'
    cache folder) or a weights file's path.

    >>> model = VGG19(weights=None, include_top=False, input_shape=(32, 32, 3))
    >>> model.get_layer("block5_conv4").output.shape
    (None, 2, 2, 512)
    """
    return VGG(
        (2, 2, 4, 4, 4),
        include_top,
        weights,
        input_tensor,
        input_shape,
        pooling,
        classes,
        classifier_activation,
        name,
        "vgg19",
    )


def preprocess_input(x, data_format=None):
    """RGB to BGR and ImageNet mean subtraction (``caffe`` mode), as VGG19 expects."""
    return imagenet_utils.preprocess_input(x, data_format=data_format, mode="caffe")


def decode_predictions(preds, top=5):
    """The ``top`` ImageNet classes of each row of ``preds`` (see ``imagenet_utils``)."""
    return imagenet_utils.decode_predictions(preds, top=top)
