"""The process-wide random generator behind initializers and (later) dropout.

``irtool.utils.set_random_seed(seed)`` reseeds it, so model construction is reproducible.
"""

from __future__ import annotations

import random as _py_random

import numpy as np

_generator = np.random.default_rng()


def generator(seed: int | None = None) -> np.random.Generator:
    """The global generator, or a fresh one for an explicit ``seed``."""
    if seed is not None:
        return np.random.default_rng(seed)
    return _generator


def layer_generator(owner, seed: int | None) -> np.random.Generator:
    """The generator of a layer's random ops: without a ``seed`` the global one; with a ``seed``
    one made from it on first use and kept by ``owner``, so successive calls draw new numbers
    (like Keras' per-layer ``SeedGenerator``) and the sequence is reproducible."""
    if seed is None:
        return _generator
    rng = owner.__dict__.get("_seed_generator")
    if rng is None:
        rng = owner.__dict__["_seed_generator"] = np.random.default_rng(seed)
    return rng


def set_random_seed(seed: int) -> None:
    """Seed irtool's generator and Python's and NumPy's global ones (as Keras does)."""
    global _generator
    _generator = np.random.default_rng(seed)
    _py_random.seed(seed)
    np.random.seed(seed % 2**32)
