"""EfficientNetV2B0 ... B3, S, M and L, as ``keras.applications.efficientnet_v2``: fused MBConv
blocks (one full convolution instead of expansion + depthwise) in the early stages, MBConv
blocks with squeeze-and-excite later. The ``Rescaling`` (and for the B variants the ImageNet
``Normalization``) is part of the model unless ``include_preprocessing=False``."""

from __future__ import annotations

import copy
import math

from irtool import backend, initializers, layers
from irtool.applications import imagenet_utils
from irtool.applications._functional import get_uid, global_pool, image_input_of_shape, model_inputs
from irtool.applications.efficientnet import (
    CONV_KERNEL_INITIALIZER,
    DENSE_KERNEL_INITIALIZER,
    bn_axis,
    residual,
    squeeze_excite,
)
from irtool.models import Functional

BASE_WEIGHTS_PATH = imagenet_utils.WEIGHTS_URL + "efficientnet_v2/"

_KEYS = ("kernel_size", "num_repeat", "input_filters", "output_filters", "expand_ratio", "se_ratio", "strides",
         "conv_type")  # fmt: skip
# conv_type 1: fused MBConv, 0: MBConv. The B variants share one table, scaled per variant.
_B_STAGES = [
    (3, 1, 32, 16, 1, 0, 1, 1),
    (3, 2, 16, 32, 4, 0, 2, 1),
    (3, 2, 32, 48, 4, 0, 2, 1),
    (3, 3, 48, 96, 4, 0.25, 2, 0),
    (3, 5, 96, 112, 6, 0.25, 1, 0),
    (3, 8, 112, 192, 6, 0.25, 2, 0),
]
_STAGES = {
    "efficientnetv2-s": [
        (3, 2, 24, 24, 1, 0.0, 1, 1),
        (3, 4, 24, 48, 4, 0.0, 2, 1),
        (3, 4, 48, 64, 4, 0, 2, 1),
        (3, 6, 64, 128, 4, 0.25, 2, 0),
        (3, 9, 128, 160, 6, 0.25, 1, 0),
        (3, 15, 160, 256, 6, 0.25, 2, 0),
    ],
    "efficientnetv2-m": [
        (3, 3, 24, 24, 1, 0, 1, 1),
        (3, 5, 24, 48, 4, 0, 2, 1),
        (3, 5, 48, 80, 4, 0, 2, 1),
        (3, 7, 80, 160, 4, 0.25, 2, 0),
        (3, 14, 160, 176, 6, 0.25, 1, 0),
        (3, 18, 176, 304, 6, 0.25, 2, 0),
        (3, 5, 304, 512, 6, 0.25, 1, 0),
    ],
    "efficientnetv2-l": [
        (3, 4, 32, 32, 1, 0, 1, 1),
        (3, 7, 32, 64, 4, 0, 2, 1),
        (3, 7, 64, 96, 4, 0, 2, 1),
        (3, 10, 96, 192, 4, 0.25, 2, 0),
        (3, 19, 192, 224, 6, 0.25, 1, 0),
        (3, 25, 224, 384, 6, 0.25, 2, 0),
        (3, 7, 384, 640, 6, 0.25, 1, 0),
    ],
    **{f"efficientnetv2-b{i}": _B_STAGES for i in range(4)},
}
DEFAULT_BLOCKS_ARGS = {name: [dict(zip(_KEYS, stage)) for stage in stages] for name, stages in _STAGES.items()}


def round_filters(filters, width_coefficient, min_depth, depth_divisor):
    filters *= width_coefficient
    minimum_depth = min_depth or depth_divisor
    return int(max(minimum_depth, int(filters + depth_divisor / 2) // depth_divisor * depth_divisor))


def round_repeats(repeats, depth_coefficient):
    return int(math.ceil(depth_coefficient * repeats))


def _batch_norm(x, momentum, name):
    return layers.BatchNormalization(axis=bn_axis(), momentum=momentum, name=name)(x)


def _conv(filters, kernel_size, strides, name, **kwargs):
    return layers.Conv2D(
        filters,
        kernel_size=kernel_size,
        strides=strides,
        kernel_initializer=CONV_KERNEL_INITIALIZER,
        padding="same",
        use_bias=False,
        name=name,
        **kwargs,
    )


def MBConvBlock(
    input_filters,
    output_filters,
    expand_ratio=1,
    kernel_size=3,
    strides=1,
    se_ratio=0.0,
    bn_momentum=0.9,
    activation="swish",
    survival_probability=0.8,
    name=None,
):
    """1x1 expansion, depthwise convolution, squeeze-and-excite, 1x1 projection (a function of
    the input, as in Keras). ``survival_probability`` is, as in Keras, the drop-connect rate."""
    name = name or get_uid("block0")

    def apply(inputs):
        filters = input_filters * expand_ratio
        x = inputs
        if expand_ratio != 1:
            x = _conv(filters, 1, 1, f"{name}expand_conv")(x)
            x = _batch_norm(x, bn_momentum, f"{name}expand_bn")
            x = layers.Activation(activation, name=f"{name}expand_activation")(x)
        x = layers.DepthwiseConv2D(
            kernel_size=kernel_size,
            strides=strides,
            depthwise_initializer=CONV_KERNEL_INITIALIZER,
            padding="same",
            use_bias=False,
            name=f"{name}dwconv2",
        )(x)
        x = _batch_norm(x, bn_momentum, f"{name}bn")
        x = layers.Activation(activation, name=f"{name}activation")(x)
        if 0 < se_ratio <= 1:
            x = squeeze_excite(x, filters, max(1, int(input_filters * se_ratio)), activation, name)
        x = _conv(output_filters, 1, 1, f"{name}project_conv")(x)
        x = _batch_norm(x, bn_momentum, f"{name}project_bn")
        if strides == 1 and input_filters == output_filters:
            x = residual(x, inputs, survival_probability, name)
        return x

    return apply


def FusedMBConvBlock(
    input_filters,
    output_filters,
    expand_ratio=1,
    kernel_size=3,
    strides=1,
    se_ratio=0.0,
    bn_momentum=0.9,
    activation="swish",
    survival_probability=0.8,
    name=None,
):
    """A full ``kernel_size`` convolution in place of expansion + depthwise, then (with an
    expansion) a 1x1 projection; without one the projection is that convolution."""
    name = name or get_uid("block0")

    def apply(inputs):
        filters = input_filters * expand_ratio
        x = inputs
        if expand_ratio != 1:
            x = _conv(filters, kernel_size, strides, f"{name}expand_conv")(x)
            x = _batch_norm(x, bn_momentum, f"{name}expand_bn")
            x = layers.Activation(activation=activation, name=f"{name}expand_activation")(x)
        if 0 < se_ratio <= 1:
            x = squeeze_excite(x, filters, max(1, int(input_filters * se_ratio)), activation, name)
        expanded = expand_ratio != 1
        x = _conv(output_filters, 1 if expanded else kernel_size, 1 if expanded else strides, f"{name}project_conv")(x)
        x = _batch_norm(x, bn_momentum, f"{name}project_bn")
        if not expanded:
            x = layers.Activation(activation=activation, name=f"{name}project_activation")(x)
        if strides == 1 and input_filters == output_filters:
            x = residual(x, inputs, survival_probability, name)
        return x

    return apply


def EfficientNetV2(
    width_coefficient,
    depth_coefficient,
    default_size,
    dropout_rate=0.2,
    drop_connect_rate=0.2,
    depth_divisor=8,
    min_depth=8,
    bn_momentum=0.9,
    activation="swish",
    blocks_args="default",
    name="efficientnetv2",
    include_top=True,
    weights="imagenet",
    input_tensor=None,
    input_shape=None,
    pooling=None,
    classes=1000,
    classifier_activation="softmax",
    include_preprocessing=True,
    weights_name=None,
):
    """The EfficientNetV2 family (arXiv:2104.00298); the variant builders pick the coefficients.
    ``weights_name`` ("b0" ... "b3", "-s", "-m", "-l") picks the stage table, the preprocessing
    and the weights file (Keras keys them by the model's name, so a renamed model works here)."""
    variant = f"efficientnetv2-{weights_name.lstrip('-')}" if weights_name else name
    if blocks_args == "default":
        blocks_args = DEFAULT_BLOCKS_ARGS[variant]
    imagenet_utils.validate_weights(weights, include_top, classes)
    input_shape = imagenet_utils.obtain_input_shape(
        input_shape,
        default_size=default_size,
        min_size=32,
        data_format=backend.image_data_format(),
        require_flatten=include_top,
        weights=weights,
    )
    img_input = image_input_of_shape(input_tensor, input_shape)

    def filters_of(count):
        return round_filters(count, width_coefficient, min_depth, depth_divisor)

    x = img_input
    if include_preprocessing:
        num_channels = input_shape[bn_axis() - 1]
        if variant.split("-")[-1].startswith("b") and num_channels == 3:
            x = layers.Rescaling(scale=1.0 / 255)(x)
            x = layers.Normalization(
                mean=[0.485, 0.456, 0.406], variance=[0.229**2, 0.224**2, 0.225**2], axis=bn_axis()
            )(x)
        else:
            x = layers.Rescaling(scale=1.0 / 128.0, offset=-1)(x)
    x = _conv(filters_of(blocks_args[0]["input_filters"]), 3, 2, "stem_conv")(x)
    x = _batch_norm(x, bn_momentum, "stem_bn")
    x = layers.Activation(activation, name="stem_activation")(x)

    blocks_args = copy.deepcopy(blocks_args)
    b = 0
    blocks = float(sum(args["num_repeat"] for args in blocks_args))
    for i, args in enumerate(blocks_args):
        if args["num_repeat"] <= 0:
            raise ValueError(
                f"The number of repeats in `EfficientNetV2` must be > 0. Received: num_repeat={args['num_repeat']}"
            )
        args["input_filters"] = filters_of(args["input_filters"])
        args["output_filters"] = filters_of(args["output_filters"])
        block = FusedMBConvBlock if args.pop("conv_type") == 1 else MBConvBlock
        for j in range(round_repeats(args.pop("num_repeat"), depth_coefficient)):
            if j > 0:
                args["strides"] = 1
                args["input_filters"] = args["output_filters"]
            x = block(
                activation=activation,
                bn_momentum=bn_momentum,
                survival_probability=drop_connect_rate * b / blocks,
                name=f"block{i + 1}{chr(j + 97)}_",
                **args,
            )(x)
            b += 1

    x = _conv(filters_of(1280), 1, 1, "top_conv")(x)
    x = _batch_norm(x, bn_momentum, "top_bn")
    x = layers.Activation(activation=activation, name="top_activation")(x)
    if include_top:
        x = layers.GlobalAveragePooling2D(name="avg_pool")(x)
        if dropout_rate > 0:
            x = layers.Dropout(dropout_rate, name="top_dropout")(x)
        imagenet_utils.validate_activation(classifier_activation, weights)
        x = layers.Dense(
            classes,
            activation=classifier_activation,
            kernel_initializer=DENSE_KERNEL_INITIALIZER,
            bias_initializer=initializers.Constant(0.0),
            name="predictions",
        )(x)
    else:
        x = global_pool(x, pooling, avg_name="avg_pool", max_name="max_pool")

    model = Functional(model_inputs(input_tensor, img_input), x, name=name)
    file_name = f"{variant}{'.h5' if include_top else '_notop.h5'}" if weights == "imagenet" else None
    imagenet_utils.load_weights(model, weights, file_name, BASE_WEIGHTS_PATH + str(file_name))
    return model


def _variant(width, depth, size, weights_name):
    default_name = f"efficientnetv2-{weights_name.lstrip('-')}"

    def builder(
        include_top=True,
        weights="imagenet",
        input_tensor=None,
        input_shape=None,
        pooling=None,
        classes=1000,
        classifier_activation="softmax",
        include_preprocessing=True,
        name=default_name,
    ):
        return EfficientNetV2(
            width_coefficient=width,
            depth_coefficient=depth,
            default_size=size,
            name=name,
            include_top=include_top,
            weights=weights,
            input_tensor=input_tensor,
            input_shape=input_shape,
            pooling=pooling,
            classes=classes,
            classifier_activation=classifier_activation,
            include_preprocessing=include_preprocessing,
            weights_name=weights_name,
        )

    variant = weights_name.lstrip("-").upper()
    builder.__name__ = builder.__qualname__ = f"EfficientNetV2{variant}"
    builder.__doc__ = (
        f"EfficientNetV2{variant} ({size}x{size} images) with Keras' signature, layer names and "
        "weights files; takes pixels in [0, 255] (with ``include_preprocessing=False``, what "
        "the preprocessing layers would have given)."
    )
    return builder


EfficientNetV2B0 = _variant(1.0, 1.0, 224, "b0")
EfficientNetV2B1 = _variant(1.0, 1.1, 240, "b1")
EfficientNetV2B2 = _variant(1.1, 1.2, 260, "b2")
EfficientNetV2B3 = _variant(1.2, 1.4, 300, "b3")
EfficientNetV2S = _variant(1.0, 1.0, 384, "-s")
EfficientNetV2M = _variant(1.0, 1.0, 480, "-m")
EfficientNetV2L = _variant(1.0, 1.0, 480, "-l")


def preprocess_input(x, data_format=None):
    """The identity: EfficientNetV2 rescales inside the model."""
    return x


def decode_predictions(preds, top=5):
    """The ``top`` ImageNet classes per row (see ``imagenet_utils.decode_predictions``)."""
    return imagenet_utils.decode_predictions(preds, top=top)
