"""Targets and sample weights for the training loops, in the model's flat output order."""

from __future__ import annotations

import numpy as np


def targets_of(model, y) -> list:
    """``y`` as one array per flat output: an array, a list in output order, or a dict keyed by
    output name (or by the keys of a dict-structured output)."""
    if y is None:
        raise ValueError("`y` is required to train or evaluate a model compiled with a loss.")
    names = list(model.output_names)
    if isinstance(y, dict):
        keys = sorted(model.output) if isinstance(model.output, dict) else names
        missing = [k for k in keys if k not in y]
        if missing:
            raise ValueError(f"Missing targets for output(s) {missing}. Expected the keys {keys}.")
        return [np.asarray(y[k]) for k in keys]
    if isinstance(y, (list, tuple)) and len(names) > 1:
        if len(y) != len(names):
            raise ValueError(f"The model has {len(names)} outputs but `y` has {len(y)} entries.")
        return [np.asarray(v) for v in y]
    return [np.asarray(y)]


def sample_weights_for(y: list, sample_weight, class_weight, n_outputs: int) -> list:
    """Per-output sample weights (None means all ones), from ``sample_weight`` or ``class_weight``."""
    if class_weight is not None and sample_weight is not None:
        raise ValueError("You cannot `class_weight` and `sample_weight` at the same time.")
    if class_weight is not None:
        if n_outputs > 1:
            raise ValueError("`class_weight` is only supported for Models with a single output.")
        labels = y[0]
        if labels.ndim > 1 and labels.shape[-1] > 1:
            classes = np.argmax(labels, axis=-1)
        else:
            classes = np.round(labels).reshape(len(labels)).astype(int)
        return [np.array([class_weight.get(int(c), 1.0) for c in classes], dtype="float32")]
    if sample_weight is None:
        return [None] * n_outputs
    if isinstance(sample_weight, (list, tuple)):
        return [None if w is None else np.asarray(w, "float32").reshape(len(w)) for w in sample_weight]
    if isinstance(sample_weight, dict):
        raise ValueError("Pass `sample_weight` as an array, or a list with one array per output.")
    weights = np.asarray(sample_weight, "float32")
    return [weights.reshape(len(weights))] * n_outputs
