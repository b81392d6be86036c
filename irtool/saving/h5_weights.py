"""Keras 3's weights file: ``.weights.h5`` files and the ``model.weights.h5`` member of ``.keras`` archives.

Keras does not store weights by layer name. It walks the model like an object graph and gives every
"saveable" (a layer, a model, the optimizer) an HDF5 group named by the *path of attributes* that
leads to it; the saveable's own variables are datasets ``<path>/vars/0``, ``<path>/vars/1``... in
the order ``trainable + non-trainable`` (Dense: kernel, bias; BatchNormalization: gamma, beta,
moving_mean, moving_variance), and the ``vars`` group carries a ``name`` attribute. The walk:

- a model visits ``layers`` first: a list, whose items are named by their class in snake case,
  made unique within the list (``layers/dense``, ``layers/dense_1``, ``layers/functional``...);
- then every other attribute in sorted order, private ones (``_x``) last, skipping what every
  plain layer has: sublayers appear under their attribute name (``lstm/cell``,
  ``bidirectional/forward_layer/cell``, ``multi_head_attention/query_dense``), lists and dicts
  of layers like ``layers``, and the compiled model's ``optimizer`` as ``optimizer/vars``;
- an object reached twice (a shared layer) is stored at the first path only;
- every saveable gets its ``vars`` group, even with no variables (``layers/input_layer/vars``).

irtool's layers keep Keras' attribute names for their sublayers (``cell``, ``forward_layer``...),
so the same walk over an irtool model yields the same paths. Reading never follows HDF5 links or
external/virtual datasets (they could read other files), checks every array's count, dtype and
shape against the model before assigning anything, and names the layer and shapes when they
disagree.
"""

from __future__ import annotations

import contextlib
import os
import warnings
from collections.abc import Iterator

import h5py
import numpy as np

from irtool.atomic import replacing
from irtool.ir.naming import to_snake_case
from irtool.layers.layer import Layer
from irtool.serialization.keras_objects import model_class
from irtool.train.optimizers.base import Optimizer

__all__ = ["WeightsFormatError", "load_weights", "read_weights", "save_weights", "weight_entries", "write_weights"]


class WeightsFormatError(ValueError):
    """A weights file that is not what the model needs (missing groups, counts, shapes, unsafe HDF5)."""


# -- the walk ---------------------------------------------------------------------------------------
_LAYER_SKIP: set | None = None
# Attributes of irtool's Functional/Sequential/Model that reach layers already stored under
# ``layers`` (or, for Sequential, its InputLayer, which Keras' Sequential does not store).
_MODEL_INTERNALS = {
    "_operations",
    "operations",
    "_stack",
    "_input_layer",
    "_input_calls",
    "_nodes_by_depth",
    "_compile_args",
}
# Weightless sublayers Keras' layers hold where irtool uses a function; Keras writes an empty
# ``vars`` group for each (``(attribute, name attribute)``), so irtool writes them too.
_KERAS_EMPTY_SUBLAYERS = {
    "MultiHeadAttention": (("_softmax", "softmax"),),
    "GroupQueryAttention": (("_softmax", "softmax"),),
}


def _layer_skipset() -> set:
    """What every plain ``Layer`` has (Keras skips ``dir(Layer())`` the same way)."""
    global _LAYER_SKIP
    if _LAYER_SKIP is None:
        # An explicit name, so the reference layer takes no auto-naming counter.
        _LAYER_SKIP = set(dir(Layer(name="weights_walk_reference")))
    return _LAYER_SKIP


def _model_skipset() -> set:
    class_attrs = set(dir(model_class("Functional"))) | set(dir(model_class("Sequential")))
    return (_layer_skipset() | class_attrs | _MODEL_INTERNALS) - {"optimizer"}


def is_saveable(obj) -> bool:
    """Layers, models and optimizers have their own ``vars`` group."""
    return isinstance(obj, (Layer, Optimizer))


def _private_last(name: str) -> str:
    return f"~{name}" if name.startswith("_") else name


def _children(obj) -> Iterator[tuple[str, object]]:
    """``(attribute name, value)`` pairs in Keras' visiting order."""
    Functional, Model = model_class("Functional"), model_class("Model")
    if isinstance(obj, Optimizer):
        return  # the built-in optimizers hold no other saveables
    names = set(dir(obj))
    if isinstance(obj, Functional):
        yield "layers", obj.layers
        skip = _model_skipset()
    elif isinstance(obj, Model):
        # A subclassed model: Keras walks its ``layers`` property (the tracked sublayers) in
        # alphabetical turn, so a sublayer sorted after "layers" is stored as ``layers/<class>``.
        names.add("layers")
        skip = _layer_skipset() | _MODEL_INTERNALS
    else:
        skip = _layer_skipset()
    for attr in sorted(names, key=_private_last):
        if attr.startswith("__") or attr in skip:
            continue
        try:
            value = list(obj._sublayers()) if attr == "layers" and isinstance(obj, Model) else getattr(obj, attr)
        except Exception:  # an unset lazy property (``input`` of an uncalled layer): nothing to store
            continue
        yield attr, value


def weight_entries(model) -> list[tuple[str, object]]:
    """``(group path, saveable)`` for every saveable reachable from ``model``, in Keras' order
    (the model itself is ``""``: its group is the root's ``vars``)."""
    entries: list = []
    visited: set = set()

    def visit(obj, path: str) -> None:
        if id(obj) in visited:
            return
        visited.add(id(obj))
        entries.append((path, obj))
        for attr, child in _children(obj):
            child_path = f"{path}/{attr}" if path else attr
            if is_saveable(child):
                visit(child, child_path)
            elif isinstance(child, (list, tuple, dict)):
                visit_container(child, child_path, set())

    def visit_container(container, path: str, seen: set) -> None:
        if id(container) in seen:
            return
        seen.add(id(container))
        used: dict = {}
        for item in container.values() if isinstance(container, dict) else container:
            if is_saveable(item):
                visit(item, f"{path}/{_unique(to_snake_case(_keras_class_name(item)), used)}")
            elif isinstance(item, (list, tuple, dict)):
                visit_container(item, f"{path}/{_unique('container', used)}", seen)

    visit(model, "")
    return entries


def _keras_class_name(obj) -> str:
    # A layer whose Keras class is named unlike its export (GroupQueryAttention's class is
    # GroupedQueryAttention) says so through ``class_name``; Keras names list items by class.
    return obj.class_name if isinstance(obj, Layer) else type(obj).__name__


def _unique(name: str, used: dict) -> str:
    # Keras counts a name even when the object behind it was already stored elsewhere.
    if name in used:
        used[name] += 1
        return f"{name}_{used[name]}"
    used[name] = 0
    return name


def _vars_path(path: str) -> str:
    return f"{path}/vars" if path else "vars"


def own_variables(obj) -> list:
    """The variables a saveable stores itself (not its sublayers'): trainable then non-trainable."""
    if isinstance(obj, Optimizer):
        return obj.variables
    return list(obj._trainable_variables) + list(obj._non_trainable_variables)


def _has_custom_hook(obj, name: str) -> bool:
    """A user layer that defines Keras' ``save_own_variables``/``load_own_variables`` itself."""
    method = getattr(type(obj), name, None)
    return isinstance(obj, Layer) and method is not None and method is not getattr(Layer, name, None)


# -- writing ----------------------------------------------------------------------------------------
def write_weights(model, h5file: h5py.File) -> None:
    """Write the weights of ``model`` (and its optimizer's) into an open, empty HDF5 file."""
    for path, obj in weight_entries(model):
        if _has_custom_hook(obj, "save_own_variables"):
            store: dict = {}
            obj.save_own_variables(store)
            arrays = [(str(k), np.asarray(v)) for k, v in store.items()]
        else:
            arrays = [(str(i), np.asarray(v.numpy())) for i, v in enumerate(own_variables(obj))]
        group = h5file.create_group(_vars_path(path))
        group.attrs["name"] = obj.name
        for key, value in arrays:
            group.create_dataset(key, data=value)
        for attr, name in _KERAS_EMPTY_SUBLAYERS.get(type(obj).__name__, ()):
            sub = f"{path}/{attr}" if path else attr
            if sub not in h5file:
                h5file.create_group(_vars_path(sub)).attrs["name"] = name


def save_weights(model, filepath, overwrite: bool = True) -> None:
    """``model.save_weights(filepath)``: Keras 3's ``.weights.h5`` file, written atomically."""
    filepath = os.fspath(filepath)
    if not filepath.endswith(".weights.h5"):
        raise ValueError(f"The filename must end in `.weights.h5`. Received: filepath={filepath}")
    if not getattr(model, "built", True):
        raise ValueError(
            "You are saving a model that has not yet been built. Try building the model first by calling it on "
            "some data or by using `build()`."
        )
    if not overwrite and os.path.exists(filepath):
        raise FileExistsError(f"{filepath} already exists and overwrite=False.")

    def write(tmp: str) -> None:
        with h5py.File(tmp, "w") as h5file:
            write_weights(model, h5file)

    write_atomically(filepath, write)


def write_atomically(filepath: str, write) -> None:
    """Call ``write(tmp)`` on a temporary file in ``filepath``'s folder, then rename it over ``filepath``
    (so an interrupted save never leaves a truncated file behind)."""
    with replacing(os.path.abspath(filepath)) as tmp:
        write(str(tmp))


# -- reading ----------------------------------------------------------------------------------------
class _ReadStore:
    """The ``vars`` group of one saveable, as the mapping Keras' ``load_own_variables`` receives."""

    def __init__(self, group, source: str, path: str):
        self._group = group
        self._source = source
        self._path = path

    def keys(self) -> list:
        return [] if self._group is None else list(self._group.keys())

    def __len__(self) -> int:
        return len(self.keys())

    def __contains__(self, key) -> bool:
        return key in self.keys()

    def dataset(self, key: str):
        where = f"{self._source}: {_vars_path(self._path)}/{key}"
        if self._group is None or key not in self._group:
            raise WeightsFormatError(f"{where} is missing")
        link = self._group.get(key, getlink=True)
        if not isinstance(link, h5py.HardLink):
            raise WeightsFormatError(f"{where} is a {type(link).__name__}; links are not followed")
        dataset = self._group[key]
        if not isinstance(dataset, h5py.Dataset):
            raise WeightsFormatError(f"{where} is a group, expected a dataset")
        if dataset.external or dataset.is_virtual:
            raise WeightsFormatError(f"{where} stores its data outside the file; refusing to read it")
        return dataset

    def __getitem__(self, key: str) -> np.ndarray:
        return _read_array(self.dataset(key))


def _read_array(dataset) -> np.ndarray:
    if dataset.attrs.get("dtype") == "bfloat16" and dataset.dtype.itemsize == 2:
        # Keras stores bfloat16 as raw 16-bit words; they are the high half of a float32.
        bits = np.frombuffer(dataset[()].tobytes(), dtype=np.uint16).astype(np.uint32) << 16
        return bits.view(np.float32).reshape(dataset.shape)
    if dataset.dtype.kind not in "biuf":
        raise WeightsFormatError(f"{dataset.name} has dtype {dataset.dtype}, expected a numeric array")
    return dataset[()]


def _vars_group(h5file, path: str, source: str):
    """The ``<path>/vars`` group, or ``None`` when the file has none; never follows links."""
    group = h5file
    for part in _vars_path(path).split("/"):
        if part not in group:
            return None
        link = group.get(part, getlink=True)
        if not isinstance(link, h5py.HardLink):
            raise WeightsFormatError(
                f"{source}: {group.name.rstrip('/')}/{part} is a {type(link).__name__}; links are not followed"
            )
        group = group[part]
        if not isinstance(group, h5py.Group):
            raise WeightsFormatError(f"{source}: {group.name} is a dataset, expected a group")
    return group


def _describe(obj) -> str:
    kind = "optimizer" if isinstance(obj, Optimizer) else "layer"
    return f"{kind} '{obj.name}' ({type(obj).__name__})"


def _plan(obj, store: _ReadStore, path: str, source: str) -> list:
    """``[(variable, dataset)]`` for one saveable, after checking counts, dtypes and shapes."""
    variables = own_variables(obj)
    keys = store.keys()
    where = f"{source}: {_describe(obj)} at '{_vars_path(path)}'"
    if len(keys) != len(variables):
        raise WeightsFormatError(
            f"{where}: expected {len(variables)} variables {[v.name for v in variables]}, but the file has "
            f"{len(keys)}{' (no such group)' if store._group is None else ''}"
        )
    plan = []
    for i, variable in enumerate(variables):
        dataset = store.dataset(str(i))
        if dataset.dtype.kind not in "biuf" and dataset.attrs.get("dtype") != "bfloat16":
            raise WeightsFormatError(
                f"{where}: variable {i} '{variable.name}' is stored with dtype {dataset.dtype}, expected a numeric array"
            )
        if tuple(dataset.shape) != tuple(variable.shape):
            raise WeightsFormatError(
                f"{where}: variable {i} '{variable.name}' has shape {tuple(variable.shape)}, but the file's "
                f"has shape {tuple(dataset.shape)}"
            )
        plan.append((variable, dataset))
    return plan


def read_weights(model, h5file: h5py.File, source: str, skip_mismatch: bool = False) -> None:
    """Assign the weights in an open Keras weights file to ``model`` (and its optimizer).

    Every saveable is checked before anything is assigned, so a mismatch leaves the model as it
    was. With ``skip_mismatch=True`` mismatching layers keep their weights and a warning names
    them. An optimizer that is not built yet, or has a different number of variables, is skipped
    with Keras' warning (its state is only meaningful for the same set of weights).
    """
    plans, errors = [], []
    with _corrupt_file_errors(source):
        for path, obj in weight_entries(model):
            store = _ReadStore(_vars_group(h5file, path, source), source, path)
            if _has_custom_hook(obj, "load_own_variables"):
                plans.append((obj, store))
                continue
            if isinstance(obj, Optimizer) and len(store.keys()) != len(obj.variables):
                warnings.warn(
                    f"Skipping variable loading for optimizer '{obj.name}', because it has {len(obj.variables)} "
                    f"variables whereas the saved optimizer has {len(store.keys())} variables."
                    + ("" if obj.built else " This is likely because the optimizer has not been called/built yet."),
                    stacklevel=3,
                )
                continue
            try:
                plans.append((obj, _plan(obj, store, path, source)))
            except WeightsFormatError as error:
                errors.append(str(error))
        if errors and not skip_mismatch:
            more = f" (and {len(errors) - 1} more: " + "; ".join(errors[1:]) + ")" if len(errors) > 1 else ""
            raise WeightsFormatError(errors[0] + more)
        for message in errors:
            warnings.warn(f"Skipping loading weights: {message}", stacklevel=3)
        # Read everything before assigning anything: a corrupt dataset then changes no weight.
        arrays = [[_read_array(dataset) for _, dataset in plan] for _, plan in plans if isinstance(plan, list)]
    planned = iter(arrays)
    for obj, plan in plans:
        if isinstance(plan, list):
            for (variable, _), value in zip(plan, next(planned)):
                variable.assign(value.astype(variable.dtype, copy=False))
        else:
            obj.load_own_variables(plan)


@contextlib.contextmanager
def _corrupt_file_errors(source: str):
    """h5py reports a damaged file as OSError/RuntimeError/KeyError from wherever it is read."""
    try:
        yield
    except WeightsFormatError:
        raise
    except (OSError, RuntimeError, KeyError) as error:
        raise WeightsFormatError(f"{source} is not a valid HDF5 file: {error}") from None


def open_h5(file_or_path, source: str) -> h5py.File:
    """Open an HDF5 file read-only, turning "not HDF5" into a one-line error naming ``source``."""
    try:
        return h5py.File(file_or_path, "r")
    except OSError as error:
        raise WeightsFormatError(f"{source} is not a valid HDF5 file: {error}") from None


def load_weights(model, filepath, skip_mismatch: bool = False) -> None:
    """``model.load_weights(filepath)`` for ``.weights.h5`` files (``.keras`` archives: see saving_lib)."""
    filepath = os.fspath(filepath)
    if not os.path.exists(filepath):
        raise FileNotFoundError(f"No such file: {filepath}")
    with open_h5(filepath, filepath) as h5file:
        read_weights(model, h5file, filepath, skip_mismatch=skip_mismatch)
