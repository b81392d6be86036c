"""Keras parity for Dot (batch-dot semantics, normalize) and for Lambda with ops functions."""

import numpy as np
import pytest

from ..harness import keras_parity, require_keras

require_keras()
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

RNG = np.random.default_rng(24)


def check(builder, feeds, atol=1e-5):
    keras_parity(builder, feeds, atol=atol, output_shape=True)


CASES = [
    ((5,), (5,), 1, False),
    ((5,), (5,), -1, True),
    ((3, 4), (3, 6), 1, False),
    ((3, 4), (5, 4), 2, True),
    ((3, 4), (4, 5), (2, 1), False),
    ((3, 4), (5, 3), (1, 2), True),
    ((4,), (4, 6), (1, 1), False),
    ((3, 4), (4,), (2, 1), False),
    ((2, 3, 4), (4, 5), (3, 1), False),
    ((2, 3, 4), (3, 2, 6), (2, 1), False),
]


@pytest.mark.parametrize("s1, s2, axes, normalize", CASES)
def test_dot(s1, s2, axes, normalize):
    def builder(k):
        a, b = k.Input(s1), k.Input(s2)
        return k.Model([a, b], k.layers.Dot(axes=axes, normalize=normalize)([a, b]))

    feeds = [RNG.standard_normal((3, *s1)).astype("float32"), RNG.standard_normal((3, *s2)).astype("float32")]
    check(builder, feeds)


def test_functional_dot_and_lambda():
    def builder(k):
        q, v = k.Input((4, 6)), k.Input((5, 6))
        scores = k.layers.dot([q, v], axes=2)
        scaled = k.layers.Lambda(lambda s, scale: s * scale, arguments={"scale": 0.5})(scores)
        weights = k.layers.Softmax()(scaled)
        mixed = k.layers.Lambda(lambda t: k.ops.matmul(t[0], t[1]))([weights, v])
        return k.Model([q, v], k.layers.Dense(3)(mixed))

    check(builder, [RNG.standard_normal((2, 4, 6)).astype("float32"), RNG.standard_normal((2, 5, 6)).astype("float32")])
