"""Whole-model gradients of the Keras guide's models against central finite differences.

Models are built in float64 (``backend.set_floatx``) so differences are meaningful; for each
weight a few sampled entries are perturbed and the loss recomputed through the same graph.
"""

import numpy as np
import pytest

import irtool as keras
from irtool import layers
from irtool.ir.executor import CompiledGraph
from irtool.train.autodiff import GradientProgram

from ..models.test_guide_models import CustomRNN, autoencoder, ticket_classifier, toy_resnet

RNG = np.random.default_rng(4)


def check_model_gradients(model, loss, x, y, samples=4, eps=1e-6, rtol=1e-4, atol=1e-7):
    model.compile(optimizer="sgd", loss=loss)
    for w in model.weights:  # zero biases put ReLUs exactly on their kink, where differences halve
        w.assign(w.numpy() + 0.05 * RNG.standard_normal(w.shape))
    ys = y if isinstance(y, list) else [y]
    config, (train_program, _) = model._prepare(ys)
    graph = train_program.graph
    weights = model.trainable_weights
    program = GradientProgram(graph, weights, training=False)
    xs = x if isinstance(x, list) else [x]
    feeds = config.feeds(xs, ys, [None] * len(ys))
    _, grads = program.run(feeds)
    forward = CompiledGraph(graph)
    checked = 0
    for w, g in zip(weights, grads):
        value = w._value
        for j in RNG.choice(value.size, size=min(samples, value.size), replace=False):
            index = np.unravel_index(j, value.shape)
            saved = value[index]
            value[index] = saved + eps
            plus = float(forward.run(feeds)[0])
            value[index] = saved - eps
            minus = float(forward.run(feeds)[0])
            value[index] = saved
            numeric = (plus - minus) / (2 * eps)
            np.testing.assert_allclose(g.reshape(-1)[j], numeric, rtol=rtol, atol=atol, err_msg=w.path)
            checked += 1
    return checked


@pytest.fixture(autouse=True)
def float64():
    keras.backend.set_floatx("float64")


def test_toy_resnet_gradients():
    model = toy_resnet()
    x = RNG.random((2, 32, 32, 3))
    y = RNG.integers(0, 10, 2)
    loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    assert check_model_gradients(model, loss, x, y, samples=3) >= 40


def test_autoencoder_gradients():
    _, model = autoencoder()
    x = RNG.random((2, 28, 28, 1))
    assert check_model_gradients(model, "mse", x, x, samples=3) >= 20


def test_ticket_classifier_gradients():
    model = ticket_classifier()
    title = RNG.integers(1, 10000, (2, 5)).astype("float64")
    body = RNG.integers(1, 10000, (2, 7)).astype("float64")
    tags = RNG.integers(0, 2, (2, 12)).astype("float64")
    y = {"priority": RNG.random((2, 1)), "department": RNG.integers(0, 4, 2)}
    loss = {"priority": "mse", "department": keras.losses.SparseCategoricalCrossentropy(from_logits=True)}
    model.compile(optimizer="sgd", loss=loss)
    ys = [y["department"], y["priority"]]  # flat output order: sorted dict keys
    assert check_model_gradients(model, loss, [title, body, tags], ys, samples=3) >= 20


def test_custom_rnn_with_conv1d_gradients():
    inputs = keras.Input(batch_shape=(4, 10, 5))
    outputs = CustomRNN()(layers.Conv1D(32, 3)(inputs))
    model = keras.Model(inputs, outputs)
    x = RNG.random((4, 10, 5))
    assert check_model_gradients(model, "mse", x, RNG.random((4, 8, 1)), samples=3) >= 20
