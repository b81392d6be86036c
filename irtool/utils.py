"""``irtool.utils``: seeding, one-hot labels, ``pad_sequences``, ``PyDataset`` (and Keras' older
name for it, ``Sequence``), ``plot_model`` / ``model_to_dot`` (from ``irtool.viz``), and the
serialization registry's functions that Keras also exports here (``register_keras_serializable``)."""

from __future__ import annotations

import numpy as np

from irtool.random import set_random_seed
from irtool.saving import get_registered_name, get_registered_object, register_keras_serializable
from irtool.train.data import PyDataset
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


Sequence = PyDataset  # Keras' older name, still exported by keras.utils


def pad_sequences(sequences, maxlen=None, dtype="int32", padding="pre", truncating="pre", value=0.0):
    """Lists of sequences as one ``(len(sequences), maxlen)`` array: each truncated to ``maxlen`` and
    padded with ``value``, at the start (``"pre"``, Keras' default) or the end (``"post"``)."""
    for name, given in (("padding", padding), ("truncating", truncating)):
        if given not in ("pre", "post"):
            raise ValueError(f'`{name}` must be "pre" or "post". Received: {name}={given!r}')
    rows = [np.asarray(s) for s in sequences]
    if maxlen is None:
        maxlen = max((len(r) for r in rows), default=0)
    sample_shape = next((r.shape[1:] for r in rows if len(r)), ())
    is_text = np.issubdtype(np.dtype(dtype), np.str_) or np.issubdtype(np.dtype(dtype), np.object_)
    if isinstance(value, str) and not is_text:
        raise ValueError(f"`dtype` {dtype} is not compatible with `value`'s type str: pass dtype=object or str.")
    out = np.full((len(rows), maxlen, *sample_shape), value, dtype=dtype)
    for i, row in enumerate(rows):
        if not len(row):
            continue
        kept = row[-maxlen:] if truncating == "pre" else row[:maxlen]
        if kept.shape[1:] != sample_shape:
            raise ValueError(
                f"Shape of sample {kept.shape[1:]} of sequence at position {i} is different from expected shape "
                f"{sample_shape}"
            )
        if padding == "post":
            out[i, : len(kept)] = kept
        else:
            out[i, maxlen - len(kept) :] = kept
    return out


__all__ = [
    "PyDataset",
    "Sequence",
    "get_registered_name",
    "get_registered_object",
    "model_to_dot",
    "pad_sequences",
    "plot_model",
    "register_keras_serializable",
    "set_random_seed",
    "to_categorical",
]
