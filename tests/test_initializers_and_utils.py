"""Initializers (Keras names, defaults, fan rules, seeding) and irtool.utils / irtool.backend."""

import numpy as np
import pytest

import irtool as keras
from irtool import initializers


@pytest.mark.parametrize(
    "name, cls",
    [
        ("glorot_uniform", initializers.GlorotUniform),
        ("glorot_normal", initializers.GlorotNormal),
        ("he_normal", initializers.HeNormal),
        ("he_uniform", initializers.HeUniform),
        ("lecun_normal", initializers.LecunNormal),
        ("random_normal", initializers.RandomNormal),
        ("random_uniform", initializers.RandomUniform),
        ("truncated_normal", initializers.TruncatedNormal),
        ("zeros", initializers.Zeros),
        ("ones", initializers.Ones),
        ("orthogonal", initializers.Orthogonal),
        ("GlorotUniform", initializers.GlorotUniform),
    ],
)
def test_get_by_keras_name(name, cls):
    assert isinstance(initializers.get(name), cls)


def test_fan_based_scales_match_closed_forms():
    shape = (400, 300)
    uniform = initializers.GlorotUniform(seed=1)(shape)
    limit = np.sqrt(6 / (400 + 300))
    assert np.abs(uniform).max() <= limit and np.abs(uniform).max() > 0.95 * limit
    he = initializers.HeNormal(seed=1)(shape)
    np.testing.assert_allclose(he.std(), np.sqrt(2 / 400), rtol=0.05)
    assert np.abs(he).max() <= 2 * np.sqrt(2 / 400) / 0.87962566103423978 + 1e-6  # truncated at 2 sigma
    conv = initializers.GlorotUniform(seed=1)((3, 3, 8, 16))
    assert np.abs(conv).max() <= np.sqrt(6 / (9 * 8 + 9 * 16))
    normal = initializers.RandomNormal(seed=2)((20000,))
    np.testing.assert_allclose([normal.mean(), normal.std()], [0.0, 0.05], atol=2e-3)
    q = initializers.Orthogonal(seed=3)((6, 4))
    np.testing.assert_allclose(q.T @ q, np.eye(4), atol=1e-5)
    assert initializers.Constant(3.0)((2,)).tolist() == [3.0, 3.0]


def test_seeded_initializers_and_global_seed():
    a = initializers.RandomUniform(seed=5)((3,))
    b = initializers.RandomUniform(seed=5)((3,))
    np.testing.assert_array_equal(a, b)
    keras.utils.set_random_seed(11)
    c = initializers.get("random_normal")((4,))
    keras.utils.set_random_seed(11)
    np.testing.assert_array_equal(c, initializers.get("random_normal")((4,)))
    with pytest.raises(ValueError, match="Could not interpret initializer"):
        initializers.get("nope")


def test_to_categorical_and_clear_session():
    np.testing.assert_array_equal(keras.utils.to_categorical([0, 2, 1], 3), np.eye(3)[[0, 2, 1]])
    assert keras.utils.to_categorical(np.array([[1], [0]])).shape == (2, 2)
    assert keras.utils.to_categorical([[0, 1], [1, 1]], 2).shape == (2, 2, 2)
    keras.layers.Dense(1)
    keras.backend.clear_session()
    assert keras.layers.Dense(1).name == "dense"
    assert keras.backend.floatx() == "float32"
