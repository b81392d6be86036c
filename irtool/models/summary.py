"""``print_summary``: Keras 3's ``model.summary()`` table, character for character.

Keras builds a ``rich`` table (box ``HEAVY_HEAD``, ``show_lines=True``, fixed column widths,
table width ``line_length``) and prints it without colours when ``print_fn`` is given. This
module computes the same cells as ``keras/src/utils/summary_utils.py`` and lays them out
the way rich does, without depending on rich: rich shrinks the padded columns evenly until
the table (borders included) is ``line_length`` wide, moves words that do not fit to the
next line of their cell, and cuts a word longer than the cell with ``…``.
"""

from __future__ import annotations

import math
import re
import shutil
import sys
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

# Bits per element, as in Keras' ``dtype_utils.DTYPE_TO_SIZE`` (``bool`` counts one bit).
_DTYPE_BITS = {
    **{f"float{i}": i for i in (16, 32, 64)},
    **{f"int{i}": i for i in (8, 16, 32, 64)},
    **{f"uint{i}": i for i in (8, 16, 32, 64)},
    "bfloat16": 16,
    "bool": 1,
}


def print_summary(
    model: Any,
    line_length: int | None = None,
    positions: Sequence[float] | None = None,
    print_fn: Callable[[str], Any] | None = None,
    expand_nested: bool = False,
    show_trainable: bool = False,
    layer_range: Sequence[str] | None = None,
) -> None:
    """Print ``model``'s summary table; ``print_fn`` (if given) is called once with the whole text."""
    text = format_summary(model, line_length, positions, expand_nested, show_trainable, layer_range)
    if print_fn is not None:
        print_fn(text)
    else:
        sys.stdout.write(text)


def format_summary(
    model: Any,
    line_length: int | None = None,
    positions: Sequence[float] | None = None,
    expand_nested: bool = False,
    show_trainable: bool = False,
    layer_range: Sequence[str] | None = None,
) -> str:
    """The text ``print_summary`` prints (ends with a newline, like rich's captured output)."""
    # ``Model.summary`` calls this module, so it tells the model kinds apart by ``_model_kind``
    # (see ``Model``), not with ``isinstance``: anything but a functional model gets the
    # Sequential table of its layers.
    if getattr(model, "_model_kind", None) != "functional":
        sequential_like = True
        layers = list(getattr(model, "layers", None) or model._sublayers())
    else:
        layers = model.operations
        sequential_like = _is_sequential_like(model)
    if sequential_like:
        default_length, positions = 88, list(positions or [0.45, 0.80, 1.0])
        header, justify = ["Layer (type)", "Output Shape", "Param #"], ["left", "left", "right"]
    else:
        default_length, positions = 108, list(positions or [0.3, 0.56, 0.74, 1.0])
        header = ["Layer (type)", "Output Shape", "Param #", "Connected to"]
        justify = ["left", "left", "right", "left"]
    if show_trainable:
        default_length += 12
        positions = [p * 0.90 for p in positions] + [1.0]
        header.append("Trainable")
        justify.append("center")
    line_length = line_length or min(default_length, shutil.get_terminal_size().columns - 4)
    column_widths, current = [], 0
    for pos in positions:
        width = int(pos * line_length) - current
        if width < 4:
            raise ValueError("Insufficient console width to print summary.")
        column_widths.append(width)
        current += width
    if len(column_widths) < len(header):
        raise ValueError(f"`positions` needs {len(header)} entries (one per column). Received: positions={positions}")
    relevant = getattr(model, "_calls", set()) if not sequential_like else set()

    def rows_for(op: Any, owner: Any, level: int) -> list[list[str]]:
        prefix = "   " * level + "└ " if level else ""
        fields = [f"{prefix}{op.name} ({op.class_name})", _format_shape(op, owner), _format_params(op)]
        if not sequential_like:
            fields.append(_connections(op, model, relevant))
        if show_trainable:
            fields.append(("Y" if op.trainable else "N") if getattr(op, "weights", None) else "-")
        rows = [fields]
        nested = getattr(op, "layers", None) if expand_nested else None
        for layer in nested or []:
            rows.extend(rows_for(layer, op, level + 1))
        return rows

    start, stop = _layer_index_bounds(layers, layer_range)
    rows = [row for op in layers[start:stop] for row in rows_for(op, model, 0)]
    table = _render_table(header, justify, column_widths[: len(header)], line_length, rows)
    lines = [f'Model: "{model.name}"', *table, *_footer(model)]
    return "\n".join(lines) + "\n"


def _is_sequential_like(model: Any) -> bool:
    """Keras' test: one call per depth, each with at most one input tensor, and no layer used twice."""
    calls: set = set()
    for depth_calls in model._nodes_by_depth.values():
        if len(depth_calls) > 1 or (len(depth_calls) == 1 and len(depth_calls[0].input_tensors) > 1):
            return False
        calls.update(depth_calls)
    return all(sum(call in calls for call in layer._inbound_nodes) <= 1 for layer in model.layers)


def _format_shape(op: Any, owner: Any) -> str:
    """Output shape(s) of ``op``'s last call in ``owner`` (else its last call anywhere, as Keras); ``?`` if never called."""
    calls = list(getattr(op, "_inbound_nodes", []))
    owned = getattr(owner, "_calls", None)
    mine = [call for call in calls if owned is not None and call in owned]
    if not (mine or calls):
        return "?"
    shapes = [f"({', '.join(str(d) for d in t.shape)})" for t in (mine or calls)[-1].output_tensors]
    return shapes[0] if len(shapes) == 1 else f"[{', '.join(shapes)}]"


def _format_params(op: Any) -> str:
    if not hasattr(op, "built"):
        return "0"
    if not op.built:
        return "0 (unbuilt)"
    return f"{op.count_params():,}"


def _connections(op: Any, model: Any, relevant: set) -> str:
    """``producer[call index][tensor index]`` for each input of ``op``'s calls that belong to ``model``."""
    input_calls = getattr(model, "_input_calls", {})
    parts = []
    for call in getattr(op, "_inbound_nodes", []):
        if relevant and call not in relevant:
            continue
        for tensor in call.input_tensors:
            if id(tensor) in input_calls:
                producer, tensor_index = input_calls[id(tensor)], 0
            elif tensor._keras_history is not None:
                producer, tensor_index = tensor._keras_history
            else:
                continue
            parts.append(f"{producer.operation.name}[{producer.index}][{tensor_index}]")
    return ", ".join(parts) or "-"


def _layer_index_bounds(layers: list, layer_range: Sequence[str] | None) -> tuple[int, int]:
    """``[first, last + 1)`` of the layers whose names match ``layer_range`` (Keras' regex rules)."""
    if layer_range is None:
        return 0, len(layers)
    if len(layer_range) != 2:
        raise ValueError(
            "layer_range must be a list or tuple of length 2. Received: "
            f"layer_range = {layer_range} of length {len(layer_range)}"
        )
    if not isinstance(layer_range[0], str) or not isinstance(layer_range[1], str):
        raise ValueError(f"layer_range should contain string type only. Received: {layer_range}")
    lower = [i for i, layer in enumerate(layers) if re.match(layer_range[0], layer.name)]
    upper = [i for i, layer in enumerate(layers) if re.match(layer_range[1], layer.name)]
    if not lower or not upper:
        raise ValueError(f"Passed layer_names do not match the layer names in the model. Received: {layer_range}")
    if min(lower) > max(upper):
        return min(upper), max(lower) + 1
    return min(lower), max(upper) + 1


def _footer(model: Any) -> list[str]:
    """Parameter counts and sizes; the optimizer line appears once a built optimizer exists."""
    groups = [("Trainable", list(model.trainable_weights)), ("Non-trainable", list(model.non_trainable_weights))]
    optimizer = getattr(model, "optimizer", None)
    if getattr(model, "compiled", False) and optimizer is not None and getattr(optimizer, "built", False):
        groups.append(("Optimizer", list(optimizer.variables)))
    counts = [sum(math.prod(w.shape) for w in weights) for _, weights in groups]
    sizes = [_memory_size(weights) for _, weights in groups]
    lines = [f" Total params: {sum(counts):,} ({_readable_size(sum(sizes))})"]
    lines += [f" {label} params: {n:,} ({_readable_size(s)})" for (label, _), n, s in zip(groups, counts, sizes)]
    return lines


def _memory_size(weights: list) -> float:
    """Bytes held by ``weights`` (each variable once), from Keras' bits-per-dtype table."""
    unique = {id(w): w for w in weights}.values()
    bits = sum(math.prod(w.shape) * _DTYPE_BITS.get(str(w.dtype), np.dtype(w.dtype).itemsize * 8) for w in unique)
    return bits / 8


def _readable_size(size: float) -> str:
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if size / 1024 < 1:
            return f"{size:.2f} {unit}"
        size /= 1024
    return f"{size:.2f} PB"


# -- table layout (what rich does for Keras' table) ---------------------------------------------
def _render_table(
    header: list[str], justify: list[str], column_widths: list[int], line_length: int, rows: list[list[str]]
) -> list[str]:
    """Box-drawn lines of a table exactly ``line_length`` wide (rich's ``HEAVY_HEAD``, ``show_lines``)."""
    widths = _fit_widths(column_widths, line_length)

    def rule(left: str, fill: str, mid: str, right: str) -> str:
        return left + mid.join(fill * w for w in widths) + right

    def body(cells: list[str], bar: str, bottom_align: bool) -> list[str]:
        columns = [_cell_lines(text, w, how) for text, w, how in zip(cells, widths, justify)]
        height = max(len(c) for c in columns)
        blank = [[" " * w] * (height - len(c)) for c, w in zip(columns, widths)]
        columns = [b + c if bottom_align else c + b for c, b in zip(columns, blank)]
        return [bar + bar.join(parts) + bar for parts in zip(*columns)]

    lines = [rule("┏", "━", "┳", "┓"), *body(header, "┃", True), rule("┡", "━", "╇", "┩")]
    for i, row in enumerate(rows):
        if i:
            lines.append(rule("├", "─", "┼", "┤"))
        lines.extend(body(row, "│", False))
    lines.append(rule("└", "─", "┴", "┘"))
    return lines


def _fit_widths(column_widths: list[int], line_length: int) -> list[int]:
    """Padded cell widths: shrink evenly (rich's ``ratio_reduce``) or grow (``ratio_distribute``) to fit."""
    max_width = line_length - (len(column_widths) + 1)
    widths = [max(min(w + 2, max_width), 0) or 1 for w in column_widths]
    excess = sum(widths) - max_width
    if excess > 0:
        remaining, ratio_left, reduced = excess, len(widths), []
        for w in widths:
            cut = min(w, round(remaining / ratio_left))
            reduced.append(w - cut)
            remaining, ratio_left = remaining - cut, ratio_left - 1
        return [max(w, 0) for w in reduced]
    if excess < 0:
        remaining, ratio_left, grown = -excess, sum(widths), []
        for w in widths:
            extra = math.ceil(w * remaining / ratio_left) if ratio_left > 0 else remaining
            grown.append(w + extra)
            remaining, ratio_left = remaining - extra, ratio_left - w
        return grown
    return widths


def _cell_lines(text: str, width: int, justify: str) -> list[str]:
    """One cell's lines, one space of padding each side (rich ``Text.wrap`` with ``overflow="ellipsis"``)."""
    inner = width - 2
    if inner < 1:  # rich renders nothing into a zero-width cell
        return [" " * max(width, 0)]
    lines = []
    for paragraph in text.split("\n"):
        bounds = [0, *_line_breaks(paragraph, inner), len(paragraph)]
        lines += [_justify(paragraph[a:b], inner, justify) for a, b in zip(bounds, bounds[1:])]
    return [f" {line[:inner]} " for line in lines]


def _line_breaks(text: str, width: int) -> list[int]:
    """Offsets where rich breaks ``text``: a word that does not fit moves down; a longer-than-width word stays whole."""
    breaks, offset = [], 0
    for match in re.finditer(r"\s*\S+\s*", text):
        start, word = match.start(), match.group(0)
        length = len(word.rstrip())
        if width - offset >= length:
            offset += len(word)
        elif length > width:
            if start:
                breaks.append(start)
            offset = len(word)
        elif offset and start:
            breaks.append(start)
            offset = len(word)
    return breaks


def _justify(line: str, width: int, how: str) -> str:
    if len(line) > width:  # rich's rstrip_end: drop trailing spaces that overflow
        trailing = len(line) - len(line.rstrip())
        line = line[: len(line) - min(trailing, len(line) - width)]
    if how != "left":
        line = line.rstrip()
    if len(line) > width:
        line = line[: max(width - 1, 0)] + "…"
    if how == "right":
        return line.rjust(width)
    if how == "center":
        left = (width - len(line)) // 2
        return (" " * left + line).ljust(width)
    return line.ljust(width)
