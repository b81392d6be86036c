"""What the application builders of part 2 (MobileNet ... NASNet) share beyond ``_functional``:
the image input (a new ``Input`` or the caller's ``input_tensor``), the model's inputs, the
channel axis and the optional global pooling of a headless model."""

from __future__ import annotations

import itertools
from collections import defaultdict

from irtool import backend, layers, ops
from irtool.applications._functional import source_inputs

_uids: defaultdict = defaultdict(lambda: itertools.count(1))


def get_uid(prefix: str) -> int:
    """1, 2, 3... per ``prefix`` (Keras' ``backend.get_uid``), naming blocks built without a name."""
    return next(_uids[prefix])


def channel_axis() -> int:
    return 1 if backend.image_data_format() == "channels_first" else -1


def image_input(input_tensor, input_shape):
    """Keras' rule: a symbolic ``input_tensor`` is used as is, any other tensor is wrapped in an
    ``Input``, and without one a fresh ``Input(input_shape)`` starts the model."""
    if input_tensor is None:
        return layers.Input(shape=input_shape)
    if not ops.is_symbolic(input_tensor):
        return layers.Input(tensor=input_tensor, shape=input_shape)
    return input_tensor


def model_inputs(input_tensor, img_input):
    if input_tensor is None:
        return img_input
    inputs = source_inputs(input_tensor)
    return inputs[0] if len(inputs) == 1 else inputs


def global_pool(x, pooling, avg_name=None, max_name=None):
    """A headless model's ``pooling``: ``"avg"``, ``"max"`` or ``None`` (the feature map)."""
    if pooling == "avg":
        return layers.GlobalAveragePooling2D(name=avg_name)(x)
    if pooling == "max":
        return layers.GlobalMaxPooling2D(name=max_name)(x)
    return x
