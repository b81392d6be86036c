"""MobileNetV3Small and MobileNetV3Large, as ``keras.applications.mobilenet_v3``: inverted
residual blocks with squeeze-and-excite (hard-sigmoid gate) and hard-swish, or, with
``minimalistic=True``, 3x3 kernels, ReLU and no squeeze-and-excite. The ``Rescaling`` to [-1, 1]
is part of the model unless ``include_preprocessing=False``."""

from __future__ import annotations

import warnings

from irtool import backend, layers, ops
from irtool.applications import imagenet_utils
from irtool.applications._functional import channel_axis, global_pool, image_input_of_shape, model_inputs
from irtool.applications.mobilenet import _rows_cols
from irtool.applications.mobilenet_v2 import _check_tensor_matches_shape
from irtool.applications.mobilenet_v2 import _make_divisible as _depth
from irtool.models import Functional

BASE_WEIGHT_PATH = imagenet_utils.WEIGHTS_URL + "mobilenet_v3/"
_BN = {"epsilon": 1e-3, "momentum": 0.999}


def _relu(x):
    return layers.ReLU()(x)


def _hard_sigmoid(x):
    # Keras writes it with top-level ops, which become model operations of their own.
    return layers.ReLU(6.0)(x + 3.0) * (1.0 / 6.0)


def _hard_swish(x):
    return layers.Activation("hard_swish")(x)


# (expansion, filters, kernel ("k": 5 unless minimalistic), stride, squeeze-excite, activation ("a":
# hard-swish unless minimalistic)) of the inverted residual blocks, numbered from 0.
_SMALL = [
    (1, 16, 3, 2, True, _relu),
    (72.0 / 16, 24, 3, 2, False, _relu),
    (88.0 / 24, 24, 3, 1, False, _relu),
    (4, 40, "k", 2, True, "a"),
    (6, 40, "k", 1, True, "a"),
    (6, 40, "k", 1, True, "a"),
    (3, 48, "k", 1, True, "a"),
    (3, 48, "k", 1, True, "a"),
    (6, 96, "k", 2, True, "a"),
    (6, 96, "k", 1, True, "a"),
    (6, 96, "k", 1, True, "a"),
]
_LARGE = [
    (1, 16, 3, 1, False, _relu),
    (4, 24, 3, 2, False, _relu),
    (3, 24, 3, 1, False, _relu),
    (3, 40, "k", 2, True, _relu),
    (3, 40, "k", 1, True, _relu),
    (3, 40, "k", 1, True, _relu),
    (6, 80, 3, 2, False, "a"),
    (2.5, 80, 3, 1, False, "a"),
    (2.3, 80, 3, 1, False, "a"),
    (2.3, 80, 3, 1, False, "a"),
    (6, 112, 3, 1, True, "a"),
    (6, 112, 3, 1, True, "a"),
    (6, 160, "k", 2, True, "a"),
    (6, 160, "k", 1, True, "a"),
    (6, 160, "k", 1, True, "a"),
]


def MobileNetV3Small(
    input_shape=None,
    alpha=1.0,
    minimalistic=False,
    include_top=True,
    weights="imagenet",
    input_tensor=None,
    classes=1000,
    pooling=None,
    dropout_rate=0.2,
    classifier_activation="softmax",
    include_preprocessing=True,
    name="MobileNetV3Small",
):
    """MobileNetV3Small (arXiv:1905.02244) with Keras' signature, layer names and weights files.
    Takes pixels in [0, 255] (in [-1, 1] with ``include_preprocessing=False``)."""
    return _mobilenet_v3(_SMALL, 1024, "small", **locals())


def MobileNetV3Large(
    input_shape=None,
    alpha=1.0,
    minimalistic=False,
    include_top=True,
    weights="imagenet",
    input_tensor=None,
    classes=1000,
    pooling=None,
    dropout_rate=0.2,
    classifier_activation="softmax",
    include_preprocessing=True,
    name="MobileNetV3Large",
):
    """MobileNetV3Large (arXiv:1905.02244) with Keras' signature, layer names and weights files.
    Takes pixels in [0, 255] (in [-1, 1] with ``include_preprocessing=False``)."""
    return _mobilenet_v3(_LARGE, 1280, "large", **locals())


def _mobilenet_v3(
    blocks,
    last_point_ch,
    model_type,
    *,
    input_shape,
    alpha,
    minimalistic,
    include_top,
    weights,
    input_tensor,
    classes,
    pooling,
    dropout_rate,
    classifier_activation,
    include_preprocessing,
    name,
):
    imagenet_utils.validate_weights(weights, include_top, classes)
    if input_tensor is not None and ops.is_symbolic(input_tensor):
        if input_shape is not None:
            _check_tensor_matches_shape(input_tensor, input_shape)
        else:  # Keras' shape from the tensor, rows and columns swapped as Keras does
            rows, cols = _rows_cols(input_tensor.shape[1:])
            channels_first = backend.image_data_format() == "channels_first"
            input_shape = (3, cols, rows) if channels_first else (cols, rows, 3)
    if input_shape is None:
        input_shape = (3, None, None) if backend.image_data_format() == "channels_first" else (None, None, 3)
    rows, cols = _rows_cols(input_shape)
    if rows and cols and (rows < 32 or cols < 32):
        raise ValueError(f"Input size must be at least 32x32; Received `input_shape={input_shape}`")
    if weights == "imagenet":
        if (not minimalistic and alpha not in (0.75, 1.0)) or (minimalistic and alpha != 1.0):
            raise ValueError(
                "If imagenet weights are being loaded, alpha can be one of `0.75`, `1.0` for non "
                "minimalistic or `1.0` for minimalistic only."
            )
        if rows != cols or rows != 224:
            warnings.warn(
                "`input_shape` is undefined or non-square, or `rows` is not 224. Weights for input "
                "shape (224, 224) will be loaded as the default.",
                stacklevel=3,
            )
    img_input = image_input_of_shape(input_tensor, input_shape)
    kernel, activation, se_ratio = (3, _relu, None) if minimalistic else (5, _hard_swish, 0.25)

    x = img_input
    if include_preprocessing:
        x = layers.Rescaling(scale=1.0 / 127.5, offset=-1.0)(x)
    x = layers.Conv2D(16, kernel_size=3, strides=(2, 2), padding="same", use_bias=False, name="conv")(x)
    x = layers.BatchNormalization(axis=channel_axis(), **_BN, name="conv_bn")(x)
    x = activation(x)
    for block_id, (expansion, filters, block_kernel, stride, squeeze, block_activation) in enumerate(blocks):
        x = _inverted_res_block(
            x,
            expansion,
            _depth(filters * alpha),
            kernel if block_kernel == "k" else block_kernel,
            stride,
            se_ratio if squeeze else None,
            activation if block_activation == "a" else block_activation,
            block_id,
        )
    last_conv_ch = _depth(x.shape[channel_axis()] * 6)
    if alpha > 1.0:
        last_point_ch = _depth(last_point_ch * alpha)
    x = layers.Conv2D(last_conv_ch, kernel_size=1, padding="same", use_bias=False, name="conv_1")(x)
    x = layers.BatchNormalization(axis=channel_axis(), **_BN, name="conv_1_bn")(x)
    x = activation(x)

    if include_top:
        x = layers.GlobalAveragePooling2D(keepdims=True)(x)
        x = layers.Conv2D(last_point_ch, kernel_size=1, padding="same", use_bias=True, name="conv_2")(x)
        x = activation(x)
        if dropout_rate > 0:
            x = layers.Dropout(dropout_rate)(x)
        x = layers.Conv2D(classes, kernel_size=1, padding="same", name="logits")(x)
        x = layers.Flatten()(x)
        imagenet_utils.validate_activation(classifier_activation, weights)
        x = layers.Activation(activation=classifier_activation, name="predictions")(x)
    else:
        x = global_pool(x, pooling, avg_name="avg_pool", max_name="max_pool")

    model = Functional(model_inputs(input_tensor, img_input), x, name=name)
    file_name = None
    if weights == "imagenet":
        weights_name = f"{model_type}{'_minimalistic' if minimalistic else ''}_224_{alpha}_float"
        file_name = f"weights_mobilenet_v3_{weights_name}{'' if include_top else '_no_top_v2'}.h5"
    imagenet_utils.load_weights(model, weights, file_name, BASE_WEIGHT_PATH + str(file_name))
    return model


def _se_block(inputs, filters, se_ratio, prefix):
    x = layers.GlobalAveragePooling2D(keepdims=True, name=f"{prefix}squeeze_excite_avg_pool")(inputs)
    x = layers.Conv2D(_depth(filters * se_ratio), kernel_size=1, padding="same", name=f"{prefix}squeeze_excite_conv")(x)
    x = layers.ReLU(name=f"{prefix}squeeze_excite_relu")(x)
    x = layers.Conv2D(filters, kernel_size=1, padding="same", name=f"{prefix}squeeze_excite_conv_1")(x)
    x = _hard_sigmoid(x)
    return layers.Multiply(name=f"{prefix}squeeze_excite_mul")([inputs, x])


def _inverted_res_block(x, expansion, filters, kernel_size, stride, se_ratio, activation, block_id):
    shortcut = x
    infilters = x.shape[channel_axis()]
    prefix = "expanded_conv_"
    if block_id:
        prefix = f"expanded_conv_{block_id}_"
        x = layers.Conv2D(
            _depth(infilters * expansion), kernel_size=1, padding="same", use_bias=False, name=f"{prefix}expand"
        )(x)
        x = layers.BatchNormalization(axis=channel_axis(), **_BN, name=f"{prefix}expand_bn")(x)
        x = activation(x)
    if stride == 2:
        x = layers.ZeroPadding2D(padding=imagenet_utils.correct_pad(x, kernel_size), name=f"{prefix}depthwise_pad")(x)
    x = layers.DepthwiseConv2D(
        kernel_size,
        strides=stride,
        padding="same" if stride == 1 else "valid",
        use_bias=False,
        name=f"{prefix}depthwise",
    )(x)
    x = layers.BatchNormalization(axis=channel_axis(), **_BN, name=f"{prefix}depthwise_bn")(x)
    x = activation(x)
    if se_ratio:
        x = _se_block(x, _depth(infilters * expansion), se_ratio, prefix)
    x = layers.Conv2D(filters, kernel_size=1, padding="same", use_bias=False, name=f"{prefix}project")(x)
    x = layers.BatchNormalization(axis=channel_axis(), **_BN, name=f"{prefix}project_bn")(x)
    if stride == 1 and infilters == filters:
        x = layers.Add(name=f"{prefix}add")([shortcut, x])
    return x


def preprocess_input(x, data_format=None):
    """The identity: MobileNetV3 rescales inside the model (its ``Rescaling`` layer)."""
    return x


def decode_predictions(preds, top=5):
    """The ``top`` ImageNet classes per row (see ``imagenet_utils.decode_predictions``)."""
    return imagenet_utils.decode_predictions(preds, top=top)
