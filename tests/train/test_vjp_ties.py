"""Ties in maximum/minimum: the whole gradient goes to the first operand, as TensorFlow's
gradients (and so Keras on TF) do; finite differences cannot see this (they average the two
sides of a kink), so the rule is checked against TensorFlow itself where it is installed."""

from __future__ import annotations

import numpy as np
import pytest

import irtool as keras
from irtool import ops
from irtool.train.autodiff import GradientProgram

A = np.array([[1.0, 2.0, 3.0, -1.0]], "float32")
B = np.array([[1.0, 0.5, 3.0, 4.0]], "float32")  # ties at columns 0 and 2


def gradients(name):
    inputs = [keras.Input(batch_shape=A.shape), keras.Input(batch_shape=B.shape)]
    model = keras.Model(inputs, ops.sum(getattr(ops, name)(*inputs)))
    program = GradientProgram(model.graph, list(model.graph.inputs), training=False)
    _, grads = program.run([A, B])
    return grads


@pytest.mark.parametrize(
    "name, first, second",
    [
        ("maximum", [[1, 1, 1, 0]], [[0, 0, 0, 1]]),
        ("minimum", [[1, 0, 1, 1]], [[0, 1, 0, 0]]),
    ],
)
def test_a_tie_sends_the_gradient_to_the_first_operand(name, first, second):
    grad_a, grad_b = gradients(name)
    np.testing.assert_array_equal(grad_a, first)
    np.testing.assert_array_equal(grad_b, second)


@pytest.mark.parametrize("name", ["maximum", "minimum"])
def test_ties_match_tensorflow(name):
    tf = pytest.importorskip("tensorflow")
    a, b = tf.Variable(A), tf.Variable(B)
    with tf.GradientTape() as tape:
        total = tf.reduce_sum(getattr(tf, name)(a, b))
    want = tape.gradient(total, [a, b])
    for ours, theirs in zip(gradients(name), want):
        np.testing.assert_array_equal(ours, theirs.numpy())
