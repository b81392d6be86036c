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


# -- batches given by the user: Keras' PyDataset, a Sequence, a generator -----------------------------


class PyDataset:
    """Keras' ``keras.utils.PyDataset``: a dataset of batches by index. Subclass it with
    ``__len__`` (the number of batches) and ``__getitem__(index)`` returning ``(x, y)`` or
    ``(x, y, sample_weight)`` (or ``x`` alone, for ``predict``); ``on_epoch_end`` runs after each
    epoch. ``workers``, ``use_multiprocessing`` and ``max_queue_size`` are accepted for Keras code and
    ignored: irtool reads the batches in order, in the calling thread."""

    def __init__(self, workers=1, use_multiprocessing=False, max_queue_size=10):
        self.workers = workers
        self.use_multiprocessing = use_multiprocessing
        self.max_queue_size = max_queue_size

    def __getitem__(self, index):
        raise NotImplementedError(f"{type(self).__name__} must implement `__getitem__(index)`.")

    def __len__(self):
        raise NotImplementedError(f"{type(self).__name__} must implement `__len__()`.")

    @property
    def num_batches(self):
        return len(self)

    def on_epoch_begin(self):
        pass

    def on_epoch_end(self):
        pass


def is_batch_source(x) -> bool:
    """Whether ``x`` gives batches rather than being the data: a PyDataset or Sequence (length and
    indexing, not an array or a list of arrays), a generator or another iterator."""
    if x is None or isinstance(x, (np.ndarray, list, tuple, dict)) or hasattr(x, "__array__"):
        return False
    if isinstance(x, PyDataset) or (hasattr(x, "__len__") and hasattr(x, "__getitem__")):
        return True
    return hasattr(x, "__next__") or (hasattr(x, "__iter__") and not hasattr(x, "shape"))


def source_steps(source, steps) -> int | None:
    """The batches an epoch reads: ``steps`` when given, else the source's length (None: until it ends)."""
    if steps is not None:
        return int(steps)
    return len(source) if hasattr(source, "__len__") else None


def batch_stream(source):
    """What ``epoch_batches`` reads a non-indexed source from, made once for a whole run (an
    iterator goes on where the last epoch stopped); None for an indexed source."""
    return None if is_indexed(source) else iter(source)


def is_indexed(source) -> bool:
    return hasattr(source, "__len__") and hasattr(source, "__getitem__")


def epoch_batches(source, steps, stream=None, order=None):
    """One epoch's ``(x, y, sample_weight)`` batches of ``source`` (``y``/``sample_weight`` None when
    a batch has none). An indexed source is read at ``order`` (a permutation of its batches, as Keras
    shuffles a PyDataset's batches with ``shuffle=True``) or from index 0; an iterator from
    ``stream`` (``batch_stream(source)``)."""
    indexed = is_indexed(source)
    if indexed and hasattr(source, "on_epoch_begin"):
        source.on_epoch_begin()
    it = stream if not indexed else None
    count = 0
    while steps is None or count < steps:
        if indexed:
            if count >= len(source):
                if steps is None:
                    break
                raise ValueError(
                    f"steps={steps} but the dataset has {len(source)} batches: pass steps <= len(dataset)."
                )
            item = source[int(order[count]) if order is not None else count]
        else:
            try:
                item = next(it)
            except StopIteration:
                if steps is not None and count < steps:
                    raise ValueError(
                        f"The generator ran out after {count} batches, but {steps} steps were asked for: make it "
                        "repeat (an infinite loop), or pass fewer steps."
                    ) from None
                break
        yield _unpack(item)
        count += 1
    if indexed and hasattr(source, "on_epoch_end"):
        source.on_epoch_end()


def first_inputs(source):
    """The inputs of an indexed source's first batch (what a subclassed model is traced on)."""
    return _unpack(source[0])[0]


def _unpack(item) -> tuple:
    if isinstance(item, list):  # Keras' unpack_x_y_sample_weight reads a list batch as a tuple
        item = tuple(item)
    if isinstance(item, tuple):
        if not 1 <= len(item) <= 3:
            raise ValueError(
                f"A batch must be x, (x,), (x, y) or (x, y, sample_weight). Received a tuple of {len(item)} items."
            )
        return tuple(item) + (None,) * (3 - len(item))
    return item, None, None
