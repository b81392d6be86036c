"""Checks every augmentation layer's tests share: the identity at inference and in the export, and
configs that round-trip and equal Keras'."""

import json

import numpy as np

import irtool as keras
from irtool import layers

from ..harness import assert_onnx_parity, assert_same_config, get_keras


def assert_identity_at_inference(name: str, kwargs: dict, x: np.ndarray, keras_too: bool = True) -> None:
    """``predict`` and the ONNX export (no node but an Identity) return ``x``; so does Keras."""
    inputs = keras.Input(x.shape[1:])
    model = keras.Model(inputs, getattr(layers, name)(**kwargs)(inputs))
    np.testing.assert_array_equal(model.predict(x, verbose=0), x)
    proto = assert_onnx_parity(model, x)
    assert [n.op_type for n in proto.graph.node] in ([], ["Identity"])
    real = get_keras()
    if keras_too and real is not None:  # Keras is the identity at inference too
        np.testing.assert_array_equal(np.asarray(getattr(real.layers, name)(**kwargs)(x, training=False)), x)


def assert_config_round_trips(name: str, kwargs: dict, through_json: bool = False) -> None:
    """``from_config(get_config())`` gives the same config (also through JSON), equal to Keras'."""
    layer = getattr(layers, name)(**kwargs)
    config = layer.get_config()
    assert type(layer).from_config(config).get_config() == config
    if through_json:
        as_json = json.loads(json.dumps(config))
        assert json.loads(json.dumps(type(layer).from_config(as_json).get_config())) == as_json
    real = get_keras()
    if real is not None:
        assert_same_config(config, getattr(real.layers, name)(**kwargs).get_config(), ignore=("dtype", "name"))
