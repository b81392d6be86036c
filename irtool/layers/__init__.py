"""``irtool.layers``: Keras layers written in ``irtool.ops``."""

from irtool.layers.activation import Activation
from irtool.layers.dense import Dense
from irtool.layers.dropout import Dropout
from irtool.layers.input_layer import Input, InputLayer
from irtool.layers.input_spec import InputSpec
from irtool.layers.layer import Layer
from irtool.layers.merging import (
    Add,
    Average,
    Concatenate,
    Maximum,
    Minimum,
    Multiply,
    Subtract,
    add,
    average,
    concatenate,
    maximum,
    minimum,
    multiply,
    subtract,
)
from irtool.layers.reshaping import Flatten, Identity, Reshape

__all__ = [name for name in dir() if not name.startswith("_")]
