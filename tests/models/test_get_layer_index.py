"""``get_layer(index=...)`` past the end is Keras' ValueError, not an IndexError."""

from __future__ import annotations

import pytest

import irtool

from ..harness import get_keras


def three_layers(lib):
    inputs = lib.Input((4,), name="x")
    outputs = lib.layers.Dense(2, name="d2")(lib.layers.Dense(3, name="d1")(inputs))
    return lib.Model(inputs, outputs)


def test_index_equal_to_the_number_of_layers_is_a_value_error():
    model = three_layers(irtool)
    assert model.get_layer(index=len(model.layers) - 1).name == "d2"
    with pytest.raises(ValueError, match="retrieve layer at index 3 but model only has 3 layers"):
        model.get_layer(index=len(model.layers))
    keras = get_keras()
    if keras is not None:  # Keras raises the same type for the same call
        with pytest.raises(ValueError, match="only has 3 layers"):
            three_layers(keras).get_layer(index=3)
