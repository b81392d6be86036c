"""What the application builders do around their own layers, as Keras' builders do: check the
arguments, make (or adopt) the image input, put the classifier or the pooling on top, make the
functional model and load its weights.

Keras' builders repeat these steps inline; here they are written once, so each family module
holds only its architecture. The families of part 1 (ResNet ... DenseNet) call ``image_input``,
``classifier_or_pooling`` and ``finish``; those of part 2 (MobileNet ... NASNet) build their own
heads from ``image_input_of_shape``, ``global_pool`` and ``model_inputs``, as their Keras modules do.
"""

from __future__ import annotations

import itertools
from collections import defaultdict

from irtool import backend, layers
from irtool.applications import imagenet_utils
from irtool.models import Functional
from irtool.ops.core import SymbolicTensor

#: Where Keras downloads ImageNet weights from; each family has its own folder below it.
WEIGHTS_BASE = imagenet_utils.WEIGHTS_URL


_uids: defaultdict = defaultdict(lambda: itertools.count(1))


def get_uid(prefix: str) -> int:
    """1, 2, 3... per ``prefix`` (Keras' ``backend.get_uid``), naming blocks built without a name."""
    return next(_uids[prefix])


def bn_axis() -> int:
    """The channel axis of a 4D image batch in the current data format, as part 1's Keras modules
    write it (3; part 2's write -1, ``channel_axis``: the layers' configs keep the number)."""
    return 1 if backend.image_data_format() == "channels_first" else 3


def channel_axis() -> int:
    return 1 if backend.image_data_format() == "channels_first" else -1


def image_input(input_tensor, input_shape, default_size: int, min_size: int, include_top: bool, weights):
    """``(image input tensor, input_tensor as given)`` after Keras' input-shape rules.

    ``input_tensor`` may be a symbolic tensor (a model then grows from it, its source inputs
    becoming the model's inputs) or an array-like whose shape becomes the input's shape."""
    input_shape = imagenet_utils.obtain_input_shape(
        input_shape,
        default_size=default_size,
        min_size=min_size,
        data_format=backend.image_data_format(),
        require_flatten=include_top,
        weights=weights,
    )
    return image_input_of_shape(input_tensor, input_shape)


def image_input_of_shape(input_tensor, input_shape):
    """Keras' rule: a symbolic ``input_tensor`` is used as is, any other tensor is wrapped in an
    ``Input``, and without one a fresh ``Input(input_shape)`` starts the model."""
    if input_tensor is None:
        return layers.Input(shape=input_shape)
    if isinstance(input_tensor, SymbolicTensor):
        return input_tensor
    return layers.Input(tensor=input_tensor, shape=input_shape)


def model_inputs(input_tensor, img_input):
    """The model's inputs: the image input, or the Inputs a symbolic ``input_tensor`` came from."""
    if not isinstance(input_tensor, SymbolicTensor):
        return img_input
    inputs = source_inputs(input_tensor)
    return inputs[0] if len(inputs) == 1 else inputs


def source_inputs(tensor: SymbolicTensor) -> list:
    """The Input tensors that ``tensor`` was computed from (Keras' ``get_source_inputs``)."""
    found, seen, stack = [], set(), [tensor]
    while stack:
        current = stack.pop()
        call = current._keras_history[0] if current._keras_history is not None else None
        if call is None or call.is_input:
            if id(current) not in seen:
                found.append(current)
            seen.add(id(current))
            continue
        if id(call) in seen:
            continue
        seen.add(id(call))
        stack.extend(reversed(call.input_tensors))
    return found


def classifier_or_pooling(
    x,
    include_top: bool,
    pooling,
    classes: int,
    classifier_activation,
    weights,
    pool_names: tuple = ("avg_pool", "max_pool"),
):
    """Keras' common head: global average pooling and a ``predictions`` Dense with
    ``include_top``, else the optional ``pooling`` (named as ``pool_names``; ``None`` lets the
    layer take its automatic name, as some families do)."""
    if include_top:
        x = layers.GlobalAveragePooling2D(name="avg_pool")(x)
        imagenet_utils.validate_activation(classifier_activation, weights)
        return layers.Dense(classes, activation=classifier_activation, name="predictions")(x)
    return global_pool(x, pooling, *pool_names)


def global_pool(x, pooling, avg_name=None, max_name=None):
    """A headless model's ``pooling``: ``"avg"``, ``"max"`` or ``None`` (the feature map)."""
    if pooling == "avg":
        return layers.GlobalAveragePooling2D(name=avg_name)(x)
    if pooling == "max":
        return layers.GlobalMaxPooling2D(name=max_name)(x)
    return x


def finish(img_input, input_tensor, outputs, name: str, weights, file_name: str | None, url_folder: str):
    """The functional model from the image input (or ``input_tensor``'s sources) to ``outputs``,
    with ``weights`` loaded; ``file_name`` is Keras' cache name of the ImageNet weights file,
    downloaded by Keras from ``WEIGHTS_BASE + url_folder + file_name``."""
    model = Functional(model_inputs(input_tensor, img_input), outputs, name=name)
    url = None if file_name is None else f"{WEIGHTS_BASE}{url_folder}{file_name}"
    imagenet_utils.load_weights(model, weights, file_name, url)
    return model


def imagenet_file(prefix: str, include_top: bool) -> str:
    """Keras' cache name of an ImageNet weights file: ``<prefix>_weights_tf_dim_ordering_tf_kernels[_notop].h5``."""
    return f"{prefix}_weights_tf_dim_ordering_tf_kernels{'' if include_top else '_notop'}.h5"
