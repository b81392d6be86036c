"""What ``irtool export --check`` feeds a model, and the float64 run that tells rounding from bugs.

The runtime's ``check_parity`` compares an ONNX model with any reference on any inputs and
knows nothing of models; this module knows what an irtool *model* accepts and makes inputs
from it:

- an integer input that an ``Embedding`` reads (a ``take`` from a weight, through casts)
  gets tokens in ``[0, input_dim)``, the smallest vocabulary among its embeddings;
- when that input is also compared with 0 (``mask_zero=True`` makes ``not_equal(tokens, 0)``),
  zeros are placed as padding: sets with no padding, right padding, left padding, a hole in
  the middle, and one row that is all padding, each row with its own amount;
- several batch sizes (``BATCH_SIZES``) and, for inputs with a dynamic sequence axis (axis 1
  of a rank-2 or rank-3 input), several lengths (``LENGTHS``, 1 among them).

Every set is labelled (``"batch 3, length 5, left-padded"``) so a failure names it.
``float64_reference(model)`` runs the model's NumPy executor with float64 weights and inputs,
so ``check_parity`` can tell float32 rounding from a real disagreement.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from irtool.ir.executor import CompiledGraph
from irtool.models import Model
from irtool.runtime.ort import DYNAMIC_SIZES, OnnxSource, TensorInfo, graph_io

#: Batch sizes of ``--check``'s input sets.
BATCH_SIZES = (1, 3)
#: Lengths given to dynamic sequence axes.
LENGTHS = (1, 5)
#: Padding patterns of masked token inputs, by label; patterns that need a longer sequence are
#: left out at short lengths.
PADDINGS = ("right-padded", "left-padded", "with a hole", "with an all-padding row")
#: Integer inputs that no Embedding reads get values in ``[0, OTHER_INTEGERS)``.
OTHER_INTEGERS = 5
#: Primitives an integer input may pass through on its way to an Embedding's ``take``.
_PASS_THROUGH = ("identity", "cast")


@dataclass(frozen=True)
class TokenInput:
    """An integer model input read by embeddings: values in ``[0, vocabulary)``, 0 is padding if ``padded``."""

    vocabulary: int
    padded: bool


@dataclass
class CheckInputs:
    """The labelled input sets of a check and a short description of them for the report."""

    sets: list[tuple[str, list[np.ndarray]]]
    summary: str


def token_inputs(model: Model) -> dict[int, TokenInput]:
    """The model's flat inputs (by position) that feed embeddings, read from its graph."""
    graph = model.graph
    found = {}
    for position, value in enumerate(graph.inputs):
        vocabulary, padded = None, False
        seen, todo = {value}, [value]
        while todo:
            current = todo.pop()
            for op in graph.consumers(current):
                name = graph.prim(op).name
                operands = graph.op_inputs(op)
                if name in _PASS_THROUGH:
                    for out in graph.op_outputs(op):
                        if out not in seen:
                            seen.add(out)
                            todo.append(out)
                elif name == "take" and len(operands) > 1 and operands[1] is current:
                    if graph.kind(operands[0]) == "weight" and graph.spec(operands[0]).shape:
                        size = int(graph.spec(operands[0]).shape[0])
                        vocabulary = size if vocabulary is None else min(vocabulary, size)
                elif name == "not_equal" and current is value:
                    others = [v for v in operands if v is not current]
                    padded = padded or any(
                        graph.kind(v) == "const" and np.all(np.asarray(graph.constant_array(v)) == 0) for v in others
                    )
        if vocabulary is not None:
            found[position] = TokenInput(vocabulary, padded and vocabulary > 1)
    return found


def _is_sequence(info: TensorInfo) -> bool:
    return info.shape is not None and len(info.shape) in (2, 3) and not isinstance(info.shape[1], int)


def _shape(info: TensorInfo, batch: int, length: int, run: int) -> list[int]:
    if info.shape is None:
        raise ValueError(f"the ONNX input {info.name!r} has no declared shape; --check needs its rank")
    shape = []
    for axis, dim in enumerate(info.shape):
        if isinstance(dim, int):
            shape.append(dim)
        elif axis == 0:
            shape.append(batch)
        elif axis == 1 and _is_sequence(info):
            shape.append(length)
        else:
            shape.append(DYNAMIC_SIZES[(axis + run) % len(DYNAMIC_SIZES)])
    return shape


def pad(tokens: np.ndarray, padding: str | None, rng: np.random.Generator) -> np.ndarray:
    """``tokens`` (batch, length, ...) with zeros placed as ``padding`` (a ``PADDINGS`` label), row by row."""
    tokens = tokens.copy()
    batch, length = tokens.shape[:2]
    for row in range(batch):
        if padding == "right-padded":
            tokens[row, rng.integers(1, length) :] = 0
        elif padding == "left-padded":
            tokens[row, : rng.integers(1, length)] = 0
        elif padding == "with a hole":
            start = rng.integers(1, length - 1)
            tokens[row, start : rng.integers(start + 1, length)] = 0
        elif padding == "with an all-padding row" and row == 0:
            tokens[row] = 0
    return tokens


def _paddings(length: int) -> list[str | None]:
    """The padding patterns that a sequence of ``length`` can show (``None``: no padding)."""
    usable = {"right-padded": 2, "left-padded": 2, "with a hole": 3, "with an all-padding row": 1}
    return [None] + [p for p in PADDINGS if length >= usable[p]]


def input_sets(
    model: Model,
    onnx: OnnxSource,
    batch_sizes: Sequence[int] = BATCH_SIZES,
    lengths: Sequence[int] = LENGTHS,
    seed: int = 0,
) -> CheckInputs:
    """Labelled input sets for ``check_parity(onnx, ...)`` from what ``model`` accepts (see the module doc)."""
    infos = graph_io(onnx)[0]
    tokens = token_inputs(model)
    if len(infos) != len(model.graph.inputs):
        tokens = {}  # not this model's export: plain random values
    has_sequence = any(_is_sequence(info) for info in infos)
    padded = any(t.padded for t in tokens.values())
    lengths = list(lengths) if has_sequence else [None]
    sets = []
    for run, length in enumerate(lengths):
        for batch in batch_sizes:
            paddings = _paddings(length if length is not None else _fixed_length(infos, tokens)) if padded else [None]
            for padding in paddings:
                rng = np.random.default_rng([seed, run, batch, len(sets)])
                arrays = [_draw(info, i, tokens, batch, length, run, padding, rng) for i, info in enumerate(infos)]
                label = f"batch {batch}" + (f", length {length}" if length is not None else "")
                sets.append((label + (f", {padding}" if padding else ""), arrays))
    summary = "batch sizes " + ", ".join(str(b) for b in batch_sizes)
    if has_sequence:
        summary += ", lengths " + ", ".join(str(n) for n in lengths)
    if padded:
        summary += ", padding: none, right, left, a hole, an all-padding row"
    return CheckInputs(sets, summary)


def _fixed_length(infos: list[TensorInfo], tokens: dict[int, TokenInput]) -> int:
    """The sequence length of padded token inputs whose length is fixed."""
    return min((int(infos[i].shape[1]) for i, t in tokens.items() if t.padded and len(infos[i].shape) > 1), default=1)


def _draw(info, position, tokens, batch, length, run, padding, rng) -> np.ndarray:
    if info.dtype is None or not (info.dtype == np.bool_ or info.dtype.kind in "iuf"):
        raise ValueError(f"the ONNX input {info.name!r} has element type {info.dtype}; --check needs numbers")
    shape = _shape(info, batch, length if length is not None else 1, run)
    token = tokens.get(position)
    if info.dtype == np.bool_:
        return rng.random(shape) < 0.5
    if info.dtype.kind in "iu":
        if token is None:
            return rng.integers(0, OTHER_INTEGERS, size=shape).astype(info.dtype)
        if not token.padded:
            return rng.integers(0, token.vocabulary, size=shape).astype(info.dtype)
        values = rng.integers(1, token.vocabulary, size=shape).astype(info.dtype)
        return pad(values, padding, rng) if values.ndim >= 2 else values
    return rng.standard_normal(shape).astype(info.dtype)


def float64_reference(model: Model) -> Callable[[list[np.ndarray]], list[np.ndarray]]:
    """``model``'s NumPy executor run in float64 (weights, constants and float inputs), flat in, flat out."""
    compiled = CompiledGraph(model.inference_graph, float_dtype=np.float64)

    def reference(arrays: list[np.ndarray]) -> list[np.ndarray]:
        feeds = [
            np.asarray(a, dtype=np.float64) if np.issubdtype(np.asarray(a).dtype, np.floating) else np.asarray(a)
            for a in arrays
        ]
        return compiled.run(feeds)

    return reference


__all__ = [
    "BATCH_SIZES",
    "LENGTHS",
    "PADDINGS",
    "CheckInputs",
    "TokenInput",
    "float64_reference",
    "input_sets",
    "pad",
    "token_inputs",
]
