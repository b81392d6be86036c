"""Shapes computed in the graph from run-time dims: ``Shape -> Gather -> Concat -> Reshape``.

torch.onnx exports with ``dynamic_axes`` compute shapes from the input's own dims. irtool's
shapes are static bar ``None`` dims, and it has no run-time shape tensor; so the importer folds
that arithmetic on ``DynamicShape`` values, whose entries are ints, ``DimRef(tensor, axis)`` (a
``None`` dim of a model tensor) or ``None`` (computed from such dims), and maps the places they
end up onto what irtool's ops can say exactly:

* ``Reshape``: a ``DimRef`` to the reshaped tensor's own dim at the same position is ONNX's ``0``
  (irtool's ``None``: keep that dim); one other unknown entry is ``-1`` (the only value that makes
  the reshape valid). Anything else is refused.
* ``Expand`` / ``ConstantOfShape``: the run-time dims come from the referenced tensors
  (``ones_like`` of one row along the axis), so the result has the referenced tensor's dim there.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from irtool import ops
from irtool.importer.registry import OnnxImportError


@dataclass(frozen=True)
class DimRef:
    """Dim ``axis`` of ``tensor``, known only at run time."""

    tensor: object
    axis: int


class DynamicShape:
    """An int64 shape value (1-D, or a scalar) holding entries known only at run time."""

    def __init__(self, dims, scalar: bool = False):
        self.dims = list(dims)
        self.scalar = scalar

    @property
    def shape(self) -> tuple:
        return () if self.scalar else (len(self.dims),)

    def __repr__(self) -> str:
        text = [
            str(d) if isinstance(d, (int, np.integer)) else ("?" if d is None else f"dim{d.axis}") for d in self.dims
        ]
        return f"[{', '.join(text)}]"

    def refs(self) -> list:
        return [d for d in self.dims if isinstance(d, DimRef)]

    def unbound(self) -> DynamicShape:
        """This shape with its referenced tensors taken out (a layer's plan; ``bound`` puts them back)."""
        return DynamicShape([DimRef(None, d.axis) if isinstance(d, DimRef) else d for d in self.dims], self.scalar)

    def bound(self, tensors) -> DynamicShape:
        """The references filled, in order, from the iterator ``tensors`` (a layer call's inputs)."""
        return DynamicShape([DimRef(next(tensors), d.axis) if isinstance(d, DimRef) else d for d in self.dims])


def is_dynamic(value) -> bool:
    return isinstance(value, DynamicShape)


def shape_of(x, start=0, end=None) -> DynamicShape | np.ndarray:
    """``Shape(x)``: an array when every dim is known, else a ``DynamicShape``."""
    dims = [DimRef(x, i) if d is None else int(d) for i, d in enumerate(x.shape)][start:end]
    if all(isinstance(d, int) for d in dims):
        return np.asarray(dims, np.int64)
    return DynamicShape(dims)


def _entries(value) -> tuple:
    """``(entries, scalar)`` of a DynamicShape or an int array (a scalar or 1-D)."""
    if isinstance(value, DynamicShape):
        return value.dims, value.scalar
    array = np.asarray(value)
    return [int(v) for v in array.reshape(-1)], array.ndim == 0


def _result(dims, scalar):
    if all(isinstance(d, (int, np.integer)) for d in dims):
        array = np.asarray(dims, np.int64)
        return array.reshape(()) if scalar else array
    return DynamicShape(dims, scalar)


_ARITHMETIC = {"Add": np.add, "Sub": np.subtract, "Mul": np.multiply, "Div": np.floor_divide}
#: Ops folded on shape values with run-time entries.
SHAPE_OPS = ("Gather", "Unsqueeze", "Squeeze", "Concat", "Slice", "Cast", "Identity", *_ARITHMETIC)


def fold(node, values: list, attributes: dict) -> list:
    """One shape-arithmetic node on values of which at least one is a ``DynamicShape``."""
    op = node.op_type
    where = f"ONNX node '{node.name}' ({op})"
    if op not in SHAPE_OPS:
        shapes = ", ".join(repr(v) for v in values if isinstance(v, DynamicShape))
        raise OnnxImportError(
            f"{where}: its input is a shape computed from run-time dims ({shapes}); irtool folds such shapes "
            f"through {', '.join(SHAPE_OPS)} into Reshape, Expand or ConstantOfShape only (export with fixed sizes)"
        )
    dims, scalar = _entries(values[0])
    if op in ("Cast", "Identity"):
        return [_result(dims, scalar)]
    if op == "Gather":
        index = np.asarray(values[1])
        picked = [dims[int(i)] for i in index.reshape(-1)]
        return [_result(picked, index.ndim == 0)]
    if op == "Unsqueeze":
        return [_result(dims, False)]
    if op == "Squeeze":
        return [_result(dims, len(dims) == 1)]
    if op == "Concat":
        return [_result([d for v in values if v is not None for d in _entries(v)[0]], False)]
    if op == "Slice":
        starts, ends = np.asarray(values[1]).reshape(-1), np.asarray(values[2]).reshape(-1)
        steps = np.asarray(values[4]).reshape(-1) if len(values) > 4 and values[4] is not None else [1]
        end = None if int(ends[0]) >= len(dims) else int(ends[0])
        return [_result(dims[int(starts[0]) : end : int(steps[0])], False)]
    # Elementwise arithmetic: known where both sides are known, else unknown.
    other, other_scalar = _entries(values[1])
    if len(other) == 1:
        other = other * len(dims)
    if len(dims) == 1 and len(other) > 1:
        dims = dims * len(other)
    fn = _ARITHMETIC[op]
    out = [
        int(fn(a, b)) if isinstance(a, (int, np.integer)) and isinstance(b, (int, np.integer)) else None
        for a, b in zip(dims, other)
    ]
    return [_result(out, scalar and other_scalar)]


def reshape_target(node, x, target: DynamicShape, allowzero: int) -> np.ndarray:
    """A computed ``Reshape`` target as irtool's static one: ``0`` keeps a dim, one ``-1``."""
    out, unknown = [], 0
    for j, d in enumerate(target.dims):
        if isinstance(d, (int, np.integer)):
            out.append(int(d))
        elif isinstance(d, DimRef) and d.tensor is x and d.axis == j and not allowzero:
            out.append(0)  # its own dim, in place: ONNX's "copy this dim"
        else:
            out.append(-1)
            unknown += 1
    if unknown > 1 or (unknown == 1 and -1 in [int(d) for d in target.dims if isinstance(d, (int, np.integer))]):
        raise OnnxImportError(
            f"ONNX node '{node.name}' (Reshape): the target shape {target!r} computed from run-time dims has more "
            f"than one entry irtool cannot tell from the input shape {tuple(x.shape)}"
        )
    return np.asarray(out, np.int64)


def ones(shape: DynamicShape, dtype: str):
    """A tensor of ones of ``shape``, its run-time dims taken from the referenced tensors."""
    rank = len(shape.dims)
    static = [d if isinstance(d, (int, np.integer)) else 1 for d in shape.dims]
    result = np.ones(static, dtype)
    for j, d in enumerate(shape.dims):
        if isinstance(d, (int, np.integer)):
            continue
        if d is None:
            raise ValueError(f"entry {j} of the shape {shape!r} is computed from run-time dims; irtool cannot build it")
        key = tuple(slice(None) if k == d.axis else 0 for k in range(len(d.tensor.shape)))
        row = ops.cast(ops.ones_like(ops.get_item(d.tensor, key)), dtype)  # (n,): the run-time dim
        result = ops.multiply(result, ops.reshape(row, [1] * j + [-1] + [1] * (rank - j - 1)))
    return result
