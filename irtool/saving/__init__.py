"""``irtool.saving``: Keras 3 serialization and saving (``keras.saving``'s names)."""

from irtool.saving.saving_lib import load_model, load_weights, save_model, save_weights
from irtool.serialization.keras_objects import deserialize_keras_object, serialize_keras_object
from irtool.serialization.object_registration import (
    CustomObjectScope,
    custom_object_scope,
    get_custom_objects,
    get_registered_name,
    get_registered_object,
    register_keras_serializable,
)

__all__ = [
    "CustomObjectScope",
    "custom_object_scope",
    "deserialize_keras_object",
    "get_custom_objects",
    "get_registered_name",
    "get_registered_object",
    "load_model",
    "load_weights",
    "register_keras_serializable",
    "save_model",
    "save_weights",
    "serialize_keras_object",
]
