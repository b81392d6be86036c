"""``irtool.utils``: seeding, one-hot labels, and ``plot_model`` / ``model_to_dot`` (from ``irtool.viz``)."""

from __future__ import annotations

import numpy as np

from irtool.random import set_random_seed
from irtool.viz import model_to_dot, plot_model


def to_categorical(x, num_classes=None) -> np.ndarray:
    """One-hot encode integer class labels (Keras' semantics: a trailing 1 axis is dropped).

    >>> to_categorical([0, 2], 3).tolist()
    [[1.0, 0.0, 0.0], [0.0, 0.0, 1.0]]
    """
    x = np.asarray(x, dtype="int64")
    shape = x.shape
    if shape and shape[-1] == 1 and len(shape) > 1:
        shape = shape[:-1]
    x = x.reshape(-1)
    if num_classes is None:
        num_classes = int(x.max()) + 1
    out = np.zeros((x.shape[0], num_classes), dtype="float32")
    out[np.arange(x.shape[0]), x] = 1.0
    return out.reshape(shape + (num_classes,))


__all__ = ["model_to_dot", "plot_model", "set_random_seed", "to_categorical"]
