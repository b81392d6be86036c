"""model.py sources that the CLI and loading tests write to files."""

TINY = """
import irtool as keras
from irtool import layers

inputs = keras.Input((4,), name="x")
model = keras.Model(inputs, layers.Dense(3, name="out")(inputs), name="tiny")
"""

TWO_MODELS = """
import irtool as keras
from irtool import layers

inputs = keras.Input((4,))
first = keras.Model(inputs, layers.Dense(3)(inputs), name="first")
second = keras.Model(inputs, layers.Dense(2)(inputs), name="second")
alias = second
count = 3


def make(units=5):
    return keras.Model(inputs, layers.Dense(units)(inputs), name="made")


def needs_args(units):
    return make(units)


def not_a_model():
    return 42
"""
