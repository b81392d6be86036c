"""Property test: random layer DAGs with a nested model and a shared layer survive export, config
and ``.keras`` round trips.

``tests/test_random_dags.py`` draws the DAGs (mixed layers, 1-2 inputs, 1-2 outputs) and checks
ONNX Runtime against the NumPy executor. Here each drawn model is nested in an outer model that
also calls one Dense layer on every output (a shared layer, several call nodes) and adds the
inner model's input as an extra output branch, then: ONNX Runtime agrees with NumPy, the config
rebuilds the same model (same config, same predictions with the weights copied), and a ``.keras``
file saved and loaded predicts identically.
"""

from __future__ import annotations

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import irtool
from irtool import layers

from ..harness import assert_onnx_parity
from ..test_random_dags import build_random_model


def _flat(tensor):
    return layers.Flatten()(tensor) if len(tensor.shape) > 2 else tensor


def build_shared_model(draw):
    inner = build_random_model(draw)
    inputs = [irtool.Input(tuple(t.shape[1:])) for t in inner.inputs]
    outputs = inner(inputs if len(inputs) > 1 else inputs[0])
    outputs = list(outputs) if isinstance(outputs, (list, tuple)) else [outputs]
    width = draw(st.integers(1, 4))
    branches = [layers.Dense(width)(_flat(t)) for t in [*outputs, inputs[0]]]
    shared = layers.Dense(draw(st.integers(1, 3)), activation=draw(st.sampled_from([None, "tanh"])), name="shared")
    return irtool.Model(inputs, [shared(b) for b in branches])


def _feeds(model, seed):
    rng = np.random.default_rng(seed)
    feeds = [rng.uniform(-1, 1, size=(2, *t.shape[1:])).astype("float32") for t in model.inputs]
    return feeds if len(feeds) > 1 else feeds[0]


@settings(
    max_examples=12,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(data=st.data(), seed=st.integers(0, 2**16))
def test_shared_nested_dags_round_trip(data, seed, tmp_path):
    irtool.backend.clear_session()
    irtool.utils.set_random_seed(seed)
    model = build_shared_model(data.draw)
    feeds = _feeds(model, seed)
    assert_onnx_parity(model, feeds, atol=1e-4, rtol=1e-4)
    want = model.predict(feeds, verbose=0)

    config = model.get_config()
    shared = next(layer for layer in config["layers"] if layer["name"] == "shared")
    assert len(shared["inbound_nodes"]) == len(model.outputs) >= 2  # one layer, a call node per branch
    rebuilt = irtool.Model.from_config(config)
    assert rebuilt.get_config() == config
    rebuilt.set_weights(model.get_weights())
    for got, expected in zip(rebuilt.predict(feeds, verbose=0), want):
        np.testing.assert_array_equal(got, expected)

    path = tmp_path / f"dag_{seed}.keras"
    model.save(path)
    loaded = irtool.saving.load_model(path)
    assert loaded.get_config() == config
    for got, expected in zip(loaded.predict(feeds, verbose=0), want):
        np.testing.assert_array_equal(got, expected)
