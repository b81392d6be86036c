"""The table of ONNX op types the importer maps onto irtool ops, and the inputs each converter sees.

A converter is a plain function ``fn(node: NodeInputs, **attributes)`` returning the node's
outputs (one tensor or a list). It is written in ``irtool.ops`` only, so the same function traces
a layer (symbolic tensors) and folds a constant subgraph (NumPy arrays) at import time.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np


class OnnxImportError(ValueError):
    """An ONNX graph (or one node of it) that the importer cannot map onto irtool's primitives."""


@dataclass
class Converter:
    """How one ONNX op type becomes irtool ops.

    ``static`` lists the input positions that must be known at import time (shapes, axes, pads,
    indices of ``Slice``...): they come from initializers, ``Constant`` nodes or folded shape
    computations, and are never trainable. ``defaults`` are the ONNX attribute defaults.
    """

    op_type: str
    fn: Callable
    static: tuple = ()
    defaults: dict = field(default_factory=dict)


CONVERTERS: dict[str, Converter] = {}


def converter(*op_types: str, static: tuple = (), **defaults):
    """Register ``fn`` as the converter of ``op_types`` (ONNX attribute defaults as keywords)."""

    def register(fn):
        for op_type in op_types:
            CONVERTERS[op_type] = Converter(op_type, fn, tuple(static), dict(defaults))
        return fn

    return register


class NodeInputs:
    """What a converter reads: the node's inputs by position, its name and op type (for errors).

    ``node[i]`` is a symbolic tensor, a weight (``Variable``), a NumPy constant, or ``None`` for
    an omitted optional input. ``node.static(i)`` insists on a NumPy value. ``node.weight(i,
    to_irtool)`` is the place where a converter changes a weight's layout once, at import (ONNX's
    ``(out, in, k...)`` Conv kernel to Keras' ``(k..., in, out)``): an initializer is stored in
    irtool's layout, anything else gets the same change applied as ops.
    """

    def __init__(self, name: str, op_type: str, values: list, weight_factory=None, num_outputs: int = 1):
        self.name = name
        self.num_outputs = num_outputs
        self.op_type = op_type
        self._values = values
        self._weight_factory = weight_factory

    def __len__(self) -> int:
        return len(self._values)

    def __getitem__(self, i: int):
        if i >= len(self._values):
            return None
        value = self._values[i]
        if isinstance(value, PendingWeight):
            return self.weight(i)
        return value

    def all(self) -> list:
        return [self[i] for i in range(len(self._values))]

    def shape(self, i: int) -> tuple:
        """Input ``i``'s shape, without turning an initializer into a weight."""
        value = self._values[i]
        return tuple((value.array if isinstance(value, PendingWeight) else value).shape)

    def peek(self, i: int):
        """Input ``i`` with an initializer as its array (a constant: no weight is created), or None."""
        value = self._values[i] if i < len(self._values) else None
        return value.array if isinstance(value, PendingWeight) else value

    def static(self, i: int, what: str = "this input") -> np.ndarray | None:
        value = self._values[i] if i < len(self._values) else None
        if isinstance(value, PendingWeight):
            return value.array
        if value is None or isinstance(value, np.ndarray):
            return value
        raise self.error(f"{what} (input {i}) must be a constant known at import time; it is computed in the graph")

    def weight(self, i: int, to_irtool: Callable | None = None, as_ops: Callable | None = None):
        """Input ``i``, an initializer stored as ``to_irtool(array)``; else ``as_ops(tensor)``."""
        value = self._values[i]
        if isinstance(value, PendingWeight):
            array = value.array if to_irtool is None else np.ascontiguousarray(to_irtool(value.array))
            variable = self._weight_factory(value, array)
            self._values[i] = variable
            return variable
        if value is None or as_ops is None:
            return value
        return as_ops(value)

    def weight_parts(self, i: int, to_irtool: Callable, as_ops: Callable | None = None) -> list:
        """Input ``i`` split at import into several weights: ``to_irtool(array)`` gives ``{suffix: part}``
        (a bidirectional RNN's ``W`` becomes one Keras kernel per direction); else ``as_ops(tensor)``."""
        value = self._values[i]
        if isinstance(value, PendingWeight):
            parts = to_irtool(value.array)
            variables = [
                self._weight_factory(
                    PendingWeight(f"{value.name}.{suffix}", part, value.trainable), np.ascontiguousarray(part)
                )
                for suffix, part in parts.items()
            ]
            self._values[i] = variables
            return variables
        if isinstance(value, list) or value is None:
            return value
        return as_ops(value)

    def error(self, message: str) -> OnnxImportError:
        return OnnxImportError(f"ONNX node '{self.name}' ({self.op_type}): {message}")


@dataclass
class PendingWeight:
    """A float initializer on its way to becoming a trainable (or, for statistics, frozen) weight."""

    name: str
    array: np.ndarray
    trainable: bool = True
