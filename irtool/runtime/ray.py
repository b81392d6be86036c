"""Offline batch inference on Ray Data: an ONNX model over a ``ray.data.Dataset``, a Session per actor.

    import ray
    from irtool.runtime.ray import map_batches

    features = irtool.Model(model.input, model.get_layer("hidden").output)  # a submodel
    out = map_batches(ray.data.from_numpy(images), features, columns={"pixels": "data"},
                      batch_size=1024, concurrency=2)

``OnnxBatchPredictor`` is the callable class ``Dataset.map_batches`` runs in its actors (use it
directly for options this helper does not pass on); ``map_batches`` wires it up. Models travel
to the actors as ONNX bytes and each actor opens its own ``Session``, so a worker node needs
neither the model file nor the code that built it. Like the rest of ``irtool.runtime`` this
module knows models only as ONNX or as an object with ``to_onnx()`` (an irtool model or
submodel); model.py and ``.keras`` files go through ``irtool.loading`` first
(``load(path).onnx_bytes()``). It imports nothing of Ray itself: it only calls the dataset's
methods, so it needs the ``ray`` extra (``pip install 'irtool[ray]'``) only where a dataset exists.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import onnx

from irtool.runtime.session import Session


def onnx_bytes(model) -> bytes:
    """A model as serialized ONNX: bytes, a ``ModelProto``, an ``.onnx`` path, or an object with ``to_onnx()``."""
    if isinstance(model, bytes):
        return model
    if isinstance(model, onnx.ModelProto):
        return model.SerializeToString()
    if hasattr(model, "to_onnx"):
        return model.to_onnx().SerializeToString()
    if isinstance(model, (str, Path)):
        path = Path(model)
        if path.suffix != ".onnx":
            raise ValueError(
                f"model: expected an .onnx file, received {str(path)!r}; load a model.py or .keras file with "
                "irtool.loading.load(path) and pass the model (or its onnx_bytes())"
            )
        return path.read_bytes()
    raise TypeError(
        f"model: expected ONNX bytes, a ModelProto, an .onnx path or an object with to_onnx(), "
        f"received {type(model).__name__}"
    )


class OnnxBatchPredictor:
    """A callable class for ``Dataset.map_batches(..., batch_format="numpy")``: one ``Session`` per
    actor, opened in the actor from ONNX bytes.

    A batch is a dict of NumPy columns. Model input ``name`` is read from column
    ``columns.get(name, name)``; the result holds the requested ``outputs`` (default: all) as
    columns named like the outputs, plus the ``keep`` columns copied from the batch (an id, a
    label), so the rows stay joined to what identifies them.

        ds.map_batches(OnnxBatchPredictor, fn_constructor_kwargs={"model": onnx_bytes(m)},
                       batch_format="numpy", batch_size=1024, concurrency=2)
    """

    def __init__(
        self,
        model: bytes,
        outputs: Sequence[str] | None = None,
        columns: Mapping[str, str] | None = None,
        keep: Sequence[str] = (),
        providers=("cpu",),
        threads: int | None = 1,
    ):
        self.session = Session(model, providers, threads=threads)
        self.outputs = list(self.session.output_names if outputs is None else outputs)
        self.columns = {i.name: (columns or {}).get(i.name, i.name) for i in self.session.inputs}
        self.keep = list(keep)

    def __call__(self, batch: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        missing = [column for column in [*self.columns.values(), *self.keep] if column not in batch]
        if missing:
            wanted = ", ".join(f"{name!r} from column {column!r}" for name, column in self.columns.items())
            raise KeyError(
                f"the batch has no column {missing[0]!r} (columns: {sorted(batch)}); the model reads {wanted} "
                "(map other columns with columns={input name: column})"
            )
        feeds = {name: np.asarray(batch[column]) for name, column in self.columns.items()}
        result = dict(zip(self.outputs, self.session.run_list(feeds, self.outputs)))
        for column in self.keep:
            result[column] = batch[column]
        return result


def map_batches(
    dataset,
    model,
    *,
    outputs: Sequence[str] | None = None,
    columns: Mapping[str, str] | None = None,
    keep: Sequence[str] = (),
    batch_size: int = 1024,
    concurrency: int = 1,
    providers=("cpu",),
    threads: int | None = 1,
    num_cpus: float = 1,
    preserve_order: bool = True,
):
    """``dataset`` with ``model``'s ``outputs`` for every row, computed by ``concurrency`` actors
    (each one ``OnnxBatchPredictor``, ``threads`` ONNX Runtime threads, ``num_cpus`` Ray CPUs) on
    batches of ``batch_size`` rows. Lazy, as every Ray Data transform.

    ``preserve_order`` (default on) sets Ray Data's ``preserve_order`` execution option on the
    dataset's ``DataContext`` (which datasets derived from one another share), so the rows come
    back in the input's order; without it, actors finishing out of turn reorder blocks.
    """
    if preserve_order:
        dataset.context.execution_options.preserve_order = True
    return dataset.map_batches(
        OnnxBatchPredictor,
        fn_constructor_kwargs={
            "model": onnx_bytes(model),
            "outputs": outputs,
            "columns": dict(columns or {}),
            "keep": tuple(keep),
            "providers": tuple(providers),
            "threads": threads,
        },
        batch_format="numpy",
        batch_size=batch_size,
        concurrency=concurrency,
        num_cpus=num_cpus,
    )
