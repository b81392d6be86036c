"""``irtool.models``: Model, Sequential, saving, cloning and JSON configs."""

from irtool.models.cloning import clone_model
from irtool.models.functional import Functional
from irtool.models.functional_config import model_from_json
from irtool.models.model import Model
from irtool.models.sequential import Sequential
from irtool.saving.saving_lib import load_model, save_model
from irtool.serialization.keras_objects import register_namespace

__all__ = ["Functional", "Model", "Sequential", "clone_model", "load_model", "model_from_json", "save_model"]

register_namespace("keras", {"Model": Model, "Sequential": Sequential})
register_namespace("keras.src.models.functional", {"Functional": Functional})
