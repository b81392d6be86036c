"""``irtool.models``: Model, Sequential and (later) saving and cloning."""

from irtool.models.functional import Functional
from irtool.models.model import Model
from irtool.models.sequential import Sequential

__all__ = ["Functional", "Model", "Sequential"]
