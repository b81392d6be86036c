"""Property test: random DAGs of irtool layers export to ONNX and ONNX Runtime agrees with the
NumPy executor.

Each example draws 1-2 inputs (rank 2 or 3, ``None`` batch), a handful of layer applications
(Dense with any activation, Activation, Dropout, Flatten, Reshape, Identity, the merge
layers and Concatenate on compatible shapes) and 1-2 outputs that together depend on every
input, then runs the exported model at two batch sizes.
"""

from __future__ import annotations

import math

import numpy as np
import onnx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import irtool
import irtool as keras
from irtool import layers

from .conftest import assert_onnx_parity, run_onnx

ACTIVATIONS = [
    "relu",
    "sigmoid",
    "tanh",
    "softmax",
    "gelu",
    "silu",
    "swish",
    "elu",
    "selu",
    "softplus",
    "softsign",
    "hard_sigmoid",
    "exponential",
    "linear",
    "leaky_relu",
    "relu6",
    "log_softmax",
    "hard_silu",
    None,
]
MERGES = [layers.Add, layers.Subtract, layers.Multiply, layers.Average, layers.Maximum, layers.Minimum]
KINDS = ["dense", "activation", "dropout", "flatten", "reshape", "identity", "merge", "concat"]


class Node:
    """A tensor in the DAG under construction and the model inputs it depends on."""

    def __init__(self, tensor, deps: frozenset):
        self.tensor = tensor
        self.deps = deps

    @property
    def shape(self) -> tuple:
        return tuple(self.tensor.shape)


def _divisors(n: int) -> list:
    return [d for d in range(1, n + 1) if n % d == 0]


def _project(draw, node: Node, shape: tuple) -> Node:
    """``node`` brought to ``shape`` (same rank assumed) by a Dense on the last axis."""
    if node.shape == shape:
        return node
    act = draw(st.sampled_from(ACTIVATIONS))
    return Node(layers.Dense(shape[-1], activation=act)(node.tensor), node.deps)


def _step(draw, pool: list) -> Node | None:
    kind = draw(st.sampled_from(KINDS))
    node = draw(st.sampled_from(pool))
    x, shape = node.tensor, node.shape
    if kind == "dense":
        units = draw(st.integers(1, 5))
        act = draw(st.sampled_from(ACTIVATIONS))
        use_bias = draw(st.booleans())
        return Node(layers.Dense(units, activation=act, use_bias=use_bias)(x), node.deps)
    if kind == "activation":
        return Node(layers.Activation(draw(st.sampled_from([a for a in ACTIVATIONS if a])))(x), node.deps)
    if kind == "dropout":
        return Node(layers.Dropout(draw(st.sampled_from([0.0, 0.25, 0.5])))(x), node.deps)
    if kind == "identity":
        return Node(layers.Identity()(x), node.deps)
    if kind == "flatten":
        return Node(layers.Flatten()(x), node.deps)
    if kind == "reshape":
        size = math.prod(shape[1:])
        if len(shape) == 2:
            a = draw(st.sampled_from(_divisors(size)))
            target = draw(st.sampled_from([(a, size // a), (a, -1), (-1, size // a)]))
        else:
            target = draw(st.sampled_from([(size,), (-1,), (size, 1)]))
        return Node(layers.Reshape(target)(x), node.deps)
    other = draw(st.sampled_from(pool))
    if len(other.shape) != len(shape):
        other = Node(layers.Flatten()(other.tensor), other.deps)
        if len(shape) != 2:
            node = Node(layers.Flatten()(x), node.deps)
            x, shape = node.tensor, node.shape
    if kind == "merge":
        merge = draw(st.sampled_from(MERGES))
        if draw(st.booleans()) and shape[-1] != 1:
            # Broadcast: one operand with a last dim of 1.
            target = shape[:-1] + (1,)
        else:
            target = shape
        other = _project(draw, other, target)
        if other.shape[:-1] != shape[:-1]:
            return None
        a, b = (node, other) if draw(st.booleans()) else (other, node)
        return Node(merge()([a.tensor, b.tensor]), node.deps | other.deps)
    # Concatenate along the last axis: every other dim must agree.
    if other.shape[:-1] != shape[:-1]:
        other = Node(layers.Flatten()(other.tensor), other.deps)
        node = Node(layers.Flatten()(x), node.deps)
    parts = [node, other] + ([node] if draw(st.booleans()) else [])
    return Node(layers.Concatenate()([p.tensor for p in parts]), node.deps | other.deps)


def build_random_model(draw):
    """A functional model drawn with ``draw`` (``data.draw`` of ``st.data()``)."""
    n_inputs = draw(st.integers(1, 2))
    inputs, pool = [], []
    for i in range(n_inputs):
        shape = draw(st.sampled_from([(3,), (4,), (2, 3), (3, 2)]))
        t = keras.Input(shape=shape)
        inputs.append(t)
        pool.append(Node(t, frozenset([i])))
    for _ in range(draw(st.integers(2, 9))):
        node = _step(draw, pool)
        if node is not None:
            pool.append(node)
    made = pool[n_inputs:] or [Node(layers.Identity()(pool[0].tensor), pool[0].deps)]
    outputs = [made[-1]]
    if draw(st.booleans()):
        extra = draw(st.sampled_from(made))
        if extra is not outputs[0]:
            outputs.append(extra)
    covered = frozenset().union(*(o.deps for o in outputs))
    if len(covered) < n_inputs:
        missing = next(n for n in reversed(pool) if not n.deps <= covered)
        flat = [layers.Flatten()(n.tensor) if len(n.shape) > 2 else n.tensor for n in (outputs[-1], missing)]
        outputs[-1] = Node(layers.Concatenate()(flat), outputs[-1].deps | missing.deps)
    return keras.Model(inputs, [o.tensor for o in outputs])


@settings(
    max_examples=30,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(data=st.data(), seed=st.integers(0, 2**16))
def test_random_dag_onnx_matches_numpy(data, seed):
    irtool.backend.clear_session()
    irtool.utils.set_random_seed(seed)
    model = build_random_model(data.draw)
    rng = np.random.default_rng(seed)
    proto = None
    for batch in (3, 1):
        feeds = [rng.uniform(-1, 1, size=(batch,) + tuple(t.shape[1:])).astype("float32") for t in model.inputs]
        proto = assert_onnx_parity(model, feeds if len(feeds) > 1 else feeds[0], atol=1e-4, rtol=1e-4)
    onnx.checker.check_model(proto, full_check=True)
    assert [o.name for o in proto.graph.output] == list(model.output_names)
    # Every output keeps a symbolic batch dim.
    for out in proto.graph.output:
        assert out.type.tensor_type.shape.dim[0].dim_param == "batch"
    got = run_onnx(proto, {i.name: f for i, f in zip(proto.graph.input, feeds)})
    assert all(np.all(np.isfinite(g)) for g in got)


# Deterministic companions: every activation name and every merge layer appear at least once,
# whatever the property test happens to draw.


def _feeds(model, batch, seed=0):
    rng = np.random.default_rng(seed)
    feeds = [rng.uniform(-1, 1, size=(batch,) + tuple(t.shape[1:])).astype("float32") for t in model.inputs]
    return feeds if len(feeds) > 1 else feeds[0]


@pytest.mark.parametrize("activation", [a for a in ACTIVATIONS if a])
def test_every_activation_in_dense_and_activation_layers(activation):
    x = keras.Input(shape=(2, 5))
    h = layers.Dense(4, activation=activation)(x)
    y = layers.Activation(activation)(layers.Dense(3)(layers.Flatten()(h)))
    model = keras.Model(x, [y, h])
    for batch in (3, 1):
        assert_onnx_parity(model, _feeds(model, batch), atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("merge", MERGES + [layers.Concatenate])
def test_every_merge_layer(merge):
    a = keras.Input(shape=(4,))
    b = keras.Input(shape=(2, 4))
    d = layers.Dropout(0.5)(layers.Reshape((4, 2))(layers.Identity()(b)))
    d = layers.Reshape((2, 4))(d)
    left = layers.Dense(4, activation="tanh")(a)
    right = layers.Dense(4)(layers.Flatten()(d))
    inputs = [left, right] if merge in (layers.Subtract, layers.Concatenate) else [left, right, left]
    model = keras.Model([a, b], merge()(inputs))
    for batch in (3, 1):
        assert_onnx_parity(model, _feeds(model, batch), atol=1e-4, rtol=1e-4)
