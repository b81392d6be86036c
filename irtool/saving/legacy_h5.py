"""Keras' legacy HDF5 weights (``.h5``/``.hdf5``): the Keras 2 layout that keras.applications'
ImageNet files still use (``resnet50_weights_tf_dim_ordering_tf_kernels.h5``...).

Unlike Keras 3's ``.weights.h5`` (attribute paths, see ``h5_weights``), the legacy layout stores
weights *per layer name*: the root (or the ``model_weights`` group of a whole-model file) has a
``layer_names`` attribute listing the layers in model order, each layer's group has a
``weight_names`` attribute, and each weight is a dataset at that name inside the layer's group
(``conv1_conv/conv1_conv/kernel:0`` in Keras 2 files, ``conv1_conv/conv1_conv/kernel`` from
Keras 3's legacy writer). Long lists are split over ``layer_names0``, ``layer_names1``...
attributes. A layer's weights are in the order ``trainable + non-trainable``.

Loading follows Keras' ``load_weights_from_hdf5_group``: by default *topologically*, the file's
layers that have weights matched in order with the model's layers that have weights (names may
differ, as auto-generated ones do between sessions); with ``by_name=True`` by layer name, layers
without a match left as they are. As in ``h5_weights``, nothing is assigned before every count,
shape and dtype was checked and every array read, and no HDF5 link or external dataset is followed.
"""

from __future__ import annotations

import os
import warnings

import h5py
import numpy as np

from irtool.saving.h5_weights import WeightsFormatError, _corrupt_file_errors, open_h5, own_variables

__all__ = ["is_legacy_h5", "load_weights"]


def is_legacy_h5(filepath: str) -> bool:
    """Whether ``filepath`` names a legacy HDF5 weights file (``.h5``/``.hdf5``, not ``.weights.h5``)."""
    return filepath.endswith((".h5", ".hdf5")) and not filepath.endswith(".weights.h5")


def _legacy_weights(layer) -> list:
    """A layer's weights in the legacy order: trainable, then non-trainable."""
    return list(layer.trainable_weights) + list(layer.non_trainable_weights)


def _names_attribute(group, name: str, source: str) -> list[str]:
    """A list-of-names attribute, joined from its ``<name>0``, ``<name>1``... chunks if split."""
    if name in group.attrs:
        chunks = [group.attrs[name]]
    else:
        chunks, index = [], 0
        while f"{name}{index}" in group.attrs:
            chunks.append(group.attrs[f"{name}{index}"])
            index += 1
    names = []
    for chunk in chunks:
        for item in np.atleast_1d(chunk):
            if isinstance(item, bytes):
                item = item.decode("utf8")
            if not isinstance(item, str):
                raise WeightsFormatError(f"{source}: {group.name} attribute '{name}' holds {item!r}, expected names")
            names.append(item)
    return names


def _child(group, path: str, source: str, want):
    """The group or dataset at ``path`` below ``group``, walking hard links only."""
    node = group
    for part in path.split("/"):
        where = f"{source}: {node.name.rstrip('/')}/{part}"
        if not part or not isinstance(node, h5py.Group) or part not in node:
            raise WeightsFormatError(f"{where} is missing (looked up '{path}' in {group.name})")
        link = node.get(part, getlink=True)
        if not isinstance(link, h5py.HardLink):
            raise WeightsFormatError(f"{where} is a {type(link).__name__}; links are not followed")
        node = node[part]
    if not isinstance(node, want):
        raise WeightsFormatError(f"{source}: {node.name} is a {type(node).__name__}, expected a {want.__name__}")
    if isinstance(node, h5py.Dataset):
        if node.external or node.is_virtual:
            raise WeightsFormatError(f"{source}: {node.name} stores its data outside the file; refusing to read it")
        if node.dtype.kind not in "biuf":
            raise WeightsFormatError(f"{source}: {node.name} has dtype {node.dtype}, expected a numeric array")
    return node


def _saved_layers(root, source: str) -> list[tuple[str, list]]:
    """``(layer name, [dataset, ...])`` for every layer the file lists, in the file's order."""
    names = _names_attribute(root, "layer_names", source)
    saved = []
    for name in names:
        group = _child(root, name, source, h5py.Group)
        weight_names = _names_attribute(group, "weight_names", source)
        saved.append((name, [_child(group, w, source, h5py.Dataset) for w in weight_names]))
    return saved


def _pair_weights(variables: list, datasets: list, where: str, skip_mismatch: bool, plan: list, skipped: list) -> None:
    """Plan ``variable <- dataset`` pairs of one layer; a shape mismatch raises or, with
    ``skip_mismatch``, leaves that variable as it is."""
    for variable, dataset in zip(variables, datasets):
        expected, received = tuple(variable.shape), tuple(dataset.shape)
        if expected != received:
            message = (
                f"Shape mismatch in {where} for weight {variable.path}. Weight expects shape {expected}. "
                f"Received saved weight with shape {received}"
            )
            if not skip_mismatch:
                raise WeightsFormatError(message)
            skipped.append(message)
            continue
        plan.append((variable, dataset))


def _count_mismatch(where: str, expected: int, received: int) -> str:
    return f"Weight count mismatch for {where}. Layer expects {expected} weight(s). Received {received} saved weight(s)"


def _plan_topological(model, saved: list, skip_mismatch: bool, plan: list, skipped: list) -> None:
    layers = [layer for layer in model.layers if _legacy_weights(layer)]
    saved = [(name, datasets) for name, datasets in saved if datasets]
    if len(saved) != len(layers):
        raise WeightsFormatError(
            "Layer count mismatch when loading weights from file. "
            f"Model expected {len(layers)} layers, found {len(saved)} saved layers."
        )
    for k, (layer, (name, datasets)) in enumerate(zip(layers, saved)):
        variables = _legacy_weights(layer)
        where = f"layer #{k} (named {layer.name} in the current model, {name} in the save file)"
        if len(variables) != len(datasets):
            raise WeightsFormatError(_count_mismatch(where, len(variables), len(datasets)))
        _pair_weights(variables, datasets, where, skip_mismatch, plan, skipped)


def _plan_by_name(model, saved: list, skip_mismatch: bool, plan: list, skipped: list) -> None:
    by_name: dict = {}
    for layer in model.layers:
        by_name.setdefault(layer.name, []).append(layer)
    for k, (name, datasets) in enumerate(saved):
        for layer in by_name.get(name, []):
            variables = _legacy_weights(layer)
            where = f"layer #{k} (named {layer.name})"
            if len(variables) != len(datasets):
                if not skip_mismatch:
                    raise WeightsFormatError(_count_mismatch(where, len(variables), len(datasets)))
                skipped.append(_count_mismatch(where, len(variables), len(datasets)))
                continue
            _pair_weights(variables, datasets, where, skip_mismatch, plan, skipped)


def load_weights(model, filepath, skip_mismatch: bool = False, by_name: bool = False) -> None:
    """``model.load_weights("x.h5")``: Keras' legacy HDF5 weights (or a legacy whole-model file's
    weights), matched topologically or, with ``by_name``, by layer name. A mismatch raises naming
    the layer and both shapes and changes nothing; with ``skip_mismatch`` the mismatching weights
    keep their values and a warning names them."""
    filepath = os.fspath(filepath)
    if not os.path.exists(filepath):
        raise FileNotFoundError(f"No such file: {filepath}")
    plan: list = []
    skipped: list = []
    with open_h5(filepath, filepath) as h5file, _corrupt_file_errors(filepath):
        root = h5file
        if "layer_names" not in h5file.attrs and "model_weights" in h5file:
            root = _child(h5file, "model_weights", filepath, h5py.Group)
        if "layer_names" not in root.attrs and "layer_names0" not in root.attrs:
            raise WeightsFormatError(
                f"{filepath} is not a Keras legacy HDF5 weights file: it has no 'layer_names' attribute "
                "(Keras 3 weights files end in `.weights.h5`)"
            )
        saved = _saved_layers(root, filepath)
        try:
            (_plan_by_name if by_name else _plan_topological)(model, saved, skip_mismatch, plan, skipped)
            _plan_top_level(model, root, filepath, skip_mismatch, plan, skipped)
        except WeightsFormatError as error:
            raise WeightsFormatError(f"{filepath}: {error}") from None
        # Read everything before assigning anything: a corrupt dataset then changes no weight.
        arrays = [dataset[()] for _, dataset in plan]
    for message in skipped:
        warnings.warn(f"Skipping loading weights: {message}", stacklevel=3)
    for (variable, _), value in zip(plan, arrays):
        variable.assign(np.asarray(value).astype(variable.dtype, copy=False))


def _plan_top_level(model, root, source: str, skip_mismatch: bool, plan: list, skipped: list) -> None:
    """Weights a model holds itself, outside its layers (``top_level_model_weights``)."""
    if "top_level_model_weights" not in root:
        return
    group = _child(root, "top_level_model_weights", source, h5py.Group)
    datasets = [_child(group, w, source, h5py.Dataset) for w in _names_attribute(group, "weight_names", source)]
    variables = own_variables(model)
    if len(variables) != len(datasets):
        raise WeightsFormatError(
            "Weight count mismatch for top-level weights when loading weights from file. "
            f"Model expects {len(variables)} top-level weight(s). Received {len(datasets)} saved top-level weight(s)"
        )
    _pair_weights(variables, datasets, "top-level model", skip_mismatch, plan, skipped)
