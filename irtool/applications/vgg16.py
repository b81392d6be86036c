"""``keras.applications.vgg16``: VGG16 (Simonyan & Zisserman, 2015) with Keras' layer names, and
the VGG network both VGG16 and VGG19 are built by."""

from __future__ import annotations

from irtool import layers
from irtool.applications import _functional, imagenet_utils

__all__ = ["VGG16", "decode_predictions", "preprocess_input"]


def VGG(
    convs_per_block: tuple,
    include_top: bool,
    weights,
    input_tensor,
    input_shape,
    pooling,
    classes: int,
    classifier_activation,
    name: str,
    weights_prefix: str,
):
    """Five blocks of 3x3 'same' convolutions (64, 128, 256, 512, 512 filters; ``convs_per_block``
    of them per block), each block ending in a 2x2 max pooling, then two 4096-unit Dense layers
    and the classifier."""
    imagenet_utils.validate_weights(weights, include_top, classes)
    img_input = _functional.image_input(input_tensor, input_shape, 224, 32, include_top, weights)
    x = img_input
    for block, (filters, convs) in enumerate(zip((64, 128, 256, 512, 512), convs_per_block), start=1):
        for conv in range(1, convs + 1):
            x = layers.Conv2D(filters, (3, 3), activation="relu", padding="same", name=f"block{block}_conv{conv}")(x)
        x = layers.MaxPooling2D((2, 2), strides=(2, 2), name=f"block{block}_pool")(x)
    if include_top:
        x = layers.Flatten(name="flatten")(x)
        x = layers.Dense(4096, activation="relu", name="fc1")(x)
        x = layers.Dense(4096, activation="relu", name="fc2")(x)
        imagenet_utils.validate_activation(classifier_activation, weights)
        x = layers.Dense(classes, activation=classifier_activation, name="predictions")(x)
    else:
        # Keras leaves VGG's pooling layers unnamed.
        x = _functional.classifier_or_pooling(x, False, pooling, classes, None, weights, pool_names=(None, None))
    file_name = _functional.imagenet_file(weights_prefix, include_top)
    return _functional.finish(img_input, input_tensor, x, name, weights, file_name, f"{weights_prefix}/")


def VGG16(
    include_top=True,
    weights="imagenet",
    input_tensor=None,
    input_shape=None,
    pooling=None,
    classes=1000,
    classifier_activation="softmax",
    name="vgg16",
):
    """VGG16 (keras.applications.VGG16): 13 convolutions in five blocks and three Dense layers.

    Inputs are BGR images centred on the ImageNet means (``vgg16.preprocess_input``), at least
    32x32; 224x224 with ``include_top``. ``weights``: ``None``, ``"imagenet"`` (read from Keras'
    cache folder) or a weights file's path.

    >>> model = VGG16(weights=None, include_top=False, input_shape=(32, 32, 3))
    >>> model.get_layer("block5_conv3").output.shape
    (None, 2, 2, 512)
    """
    return VGG(
        (2, 2, 3, 3, 3),
        include_top,
        weights,
        input_tensor,
        input_shape,
        pooling,
        classes,
        classifier_activation,
        name,
        "vgg16",
    )


def preprocess_input(x, data_format=None):
    """RGB to BGR and ImageNet mean subtraction (``caffe`` mode), as VGG16 expects."""
    return imagenet_utils.preprocess_input(x, data_format=data_format, mode="caffe")


def decode_predictions(preds, top=5):
    """The ``top`` ImageNet classes of each row of ``preds`` (see ``imagenet_utils``)."""
    return imagenet_utils.decode_predictions(preds, top=top)
