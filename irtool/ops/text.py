"""Text primitives for Keras' ``TextVectorization``: standardizing and tokenizing strings.

Both compute what TensorFlow computes for the layer, in Python:

* ``standardize_text``: Keras' ``tf.strings.lower(x)``, which with its default encoding lowercases
  ASCII letters only (``"ÀΣ"`` stays as it is), and the removal of Keras' punctuation class
  (``tf.strings.regex_replace``).
* ``tokenize_text``: ``tf.strings.split`` (runs of the six ASCII whitespace characters, empty
  tokens dropped) or ``tf.strings.unicode_split`` (code points), then ``tf.strings.ngrams``
  (joined by a space, widths in the order given), padded with ``""`` to a dense
  ``(batch, length)`` tensor, the padding the layer's mask token.

The export is exact or refused. ``standardize="lower"`` lowers to ``StringNormalizer`` in the "C"
locale (ASCII letters only, the one locale every C++ runtime has; its default, en_US.UTF-8, is
missing on many machines and would lowercase non-ASCII letters). ``tokenize_text`` lowers for the
whitespace split without ngrams: ONNX ``StringSplit`` splits on spaces only, so the other five
whitespace characters are split on first, one ``StringSplit`` each, every level compacted.
Stripping punctuation (ONNX has no regular-expression replace), the character split and n-grams
(no operator splits a string into characters or joins strings along an axis) refuse, naming the
layer and the argument.
"""

from __future__ import annotations

import re

import numpy as np

from irtool.ir.spec import TensorSpec
from irtool.ops.core import Primitive, apply
from irtool.ops.strings import OUTSIDE_THE_MODEL, _map

STANDARDIZE_MODES = ("lower", "strip_punctuation", "lower_and_strip_punctuation")
SPLIT_MODES = ("whitespace", "character")

# Keras' class r'[!"#$%&()\*\+,-\./:;<=>?@\[\\\]^_`{|}~\']' ("," to "." is a range): exactly the
# 32 ASCII punctuation characters.
_PUNCTUATION = str.maketrans("", "", "!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~")
# tf.strings.split with no separator: absl's ASCII whitespace, not Python's str.split().
_WHITESPACE = " \t\n\v\f\r"
_WHITESPACE_RUN = re.compile(f"[{_WHITESPACE}]+")
_ASCII_LOWER = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")


def standardize_string(text: str, mode: str) -> str:
    if mode in ("lower", "lower_and_strip_punctuation"):
        text = text.translate(_ASCII_LOWER)
    if mode in ("strip_punctuation", "lower_and_strip_punctuation"):
        text = text.translate(_PUNCTUATION)
    return text


def split_string(text: str, split: str) -> list:
    if split == "whitespace":
        return [t for t in _WHITESPACE_RUN.split(text) if t]
    return list(text)


class StandardizeText(Primitive):
    """``x`` lowercased and/or stripped of ASCII punctuation, per element, as TensorFlow does."""

    name = "standardize_text"
    elementwise = True
    accepts_strings = True
    differentiable = False

    def infer(self, specs, mode):
        (x,) = specs
        if x.dtype != "string":
            raise ValueError(f"`standardize_text` needs a string tensor. Received: {x}.")
        return [x]

    def forward(self, x, mode):
        return _map(lambda text: standardize_string(text, mode), np.asarray(x), object)

    def vjp(self, cotangents, inputs, outputs, **attrs):
        return [None]

    def to_onnx(self, ctx, ins, outs, mode):
        if mode != "lower":
            ctx.fail(
                self,
                f"Keras' TextVectorization with standardize={mode!r} cannot be exported: ONNX has no "
                "regular-expression replace to strip punctuation; " + OUTSIDE_THE_MODEL,
            )
        (x,) = ins
        # StringNormalizer takes one axis (and no empty one: an empty batch fails in ONNX Runtime).
        flat = ctx.node("Reshape", [x, ctx.int64s([-1])])[0]
        lowered = ctx.node("StringNormalizer", [flat], case_change_action="LOWER", locale="C")[0]
        ctx.node("Reshape", [lowered, ctx.node("Shape", [x])[0]], outs)


STANDARDIZE_TEXT = StandardizeText()


def standardize_text(x, mode: str):
    """Each string of ``x`` standardized like Keras' TextVectorization (``mode`` in ``STANDARDIZE_MODES``)."""
    if mode not in STANDARDIZE_MODES:
        raise ValueError(f"`standardize_text` mode must be one of {STANDARDIZE_MODES}. Received: mode={mode!r}")
    return apply(STANDARDIZE_TEXT, [x], mode=mode)[0]


class TokenizeText(Primitive):
    """Token sequences, one row per example, padded with ``""`` to ``length`` (or to the longest).

    ``x`` is ``(batch,)`` or ``(batch, 1)`` strings split by ``split`` ("whitespace" or "character"), or with
    ``split=None`` ``(batch, k)`` rows that already are tokens; ``ngrams`` (a tuple of widths or
    ``None``) then replaces each row by its n-grams, and rows longer than ``length`` are cut.
    Without ``length`` the rows are as long as the longest, and at least ``min_length``: the bag
    encodings need one column even when no row has a token.
    """

    name = "tokenize_text"
    accepts_strings = True
    differentiable = False

    def infer(self, specs, split, ngrams, length, min_length):
        (x,) = specs
        if split is not None:
            fits = len(x.shape) == 1 or (len(x.shape) == 2 and x.shape[1] in (1, None))
        else:
            fits = len(x.shape) == 2
        if x.dtype != "string" or not fits:
            want = "a (batch,) or (batch, 1)" if split is not None else "a (batch, tokens)"
            raise ValueError(f"`tokenize_text` with split={split!r} needs {want} string tensor. Received: {x}.")
        if length is None and split is None and ngrams is None:
            length = x.shape[1]
        return [TensorSpec((x.shape[0], length), "string")]

    def forward(self, x, split, ngrams, length, min_length):
        x = np.asarray(x)
        if split is not None:
            if x.ndim not in (1, 2) or x.size != len(x):
                raise ValueError(
                    f"`tokenize_text` with split={split!r} needs (batch,) or (batch, 1) strings. Received shape {x.shape}."
                )
            rows = [split_string(text, split) for text in x.reshape(len(x), -1)[:, 0].tolist()]
        else:
            rows = x.tolist()
        if ngrams is not None:
            rows = [ngrams_of(row, ngrams) for row in rows]
        if length is None:
            length = max([min_length] + [len(row) for row in rows])
        out = np.full((len(rows), length), "", dtype=object)
        for i, row in enumerate(rows):
            row = row[:length]
            out[i, : len(row)] = row
        return out

    def vjp(self, cotangents, inputs, outputs, **attrs):
        return [None]

    def to_onnx(self, ctx, ins, outs, split, ngrams, length, min_length):
        why = None
        if split == "character":
            why = "split='character': ONNX has no operator that splits a string into characters"
        elif ngrams is not None:
            why = f"ngrams={ngrams}: ONNX has no operator that joins strings along an axis"
        elif split is not None and ctx.opset < 20:
            why = f"split='whitespace' needs ONNX's StringSplit, opset 20 or later. Received: opset {ctx.opset}"
        if why:
            ctx.fail(self, f"Keras' TextVectorization with {why}; " + OUTSIDE_THE_MODEL)
        (x,) = ins
        if split is None:
            width = ctx.static_dim(x, 1)
            _fit(ctx, x, length, outs[0], known_width=width)  # split=None without ngrams keeps the input's width
            return
        tokens = x  # (batch,) or (batch, 1): StringSplit adds an axis, flattened below
        # StringSplit's default splits on runs of spaces only; TensorFlow splits on all six ASCII
        # whitespace characters. Split on the other five one at a time (empty pieces appear between
        # repeated separators), keep each level's non-empty pieces in order, then split on spaces.
        for separator in _WHITESPACE[1:]:
            pieces = ctx.node("StringSplit", [tokens], 2, delimiter=separator)[0]
            tokens = _compact(ctx, _flatten(ctx, pieces), None)
        pieces = ctx.node("StringSplit", [tokens], 2)[0]
        _compact(ctx, _flatten(ctx, pieces), length, outs[0], min_length)


def ngrams_of(tokens: list, widths: tuple) -> list:
    """``tf.strings.ngrams(tokens, widths, separator=" ")`` on one sequence."""
    return [" ".join(tokens[i : i + w]) for w in widths for i in range(len(tokens) - w + 1)]


def _flatten(ctx, x: str) -> str:
    """``(batch, a, b)`` -> ``(batch, a * b)``."""
    out = ctx.node("Reshape", [x, ctx.int64s([0, -1])])[0]
    ctx.dtypes[out] = "string"
    return out


def _compact(ctx, tokens: str, length, out=None, min_length=0) -> str:
    """The non-empty strings of each row of ``tokens``, in order, left-aligned and padded with ""
    to ``length`` (the most a row has, at least ``min_length``, when ``None``); longer rows are cut."""
    empty = ctx.const(np.array([""], dtype=object))
    kept = ctx.node("Not", [ctx.node("Equal", [tokens, empty])[0]])[0]
    counts = ctx.node("Cast", [kept], to=ctx.onnx_dtype("int64"))[0]
    one = ctx.const(np.array(1, np.int64))
    rows = ctx.const(np.array(1, np.int64), "axis")
    slot = ctx.node("Sub", [ctx.node("CumSum", [counts, rows])[0], one])[0]
    if length is None:
        longest = ctx.reduce("ReduceMax", ctx.reduce("ReduceSum", counts, [1], keepdims=False)[0], [0], keepdims=True)[
            0
        ]
        width = ctx.node("Max", [longest, ctx.int64s([min_length])])[0]
    else:
        width = ctx.int64s([length])
    # Dropped strings (empty, or past `length`) all go to one extra column, cut off below.
    kept = ctx.node("And", [kept, ctx.node("Less", [slot, width])[0]])[0]
    slot = ctx.node("Where", [kept, slot, width])[0]
    batch = ctx.node("Slice", [ctx.node("Shape", [tokens])[0], ctx.int64s([0]), ctx.int64s([1])])[0]
    padded_shape = ctx.node("Concat", [batch, ctx.node("Add", [width, one])[0]], axis=0)[0]
    blank = ctx.node("Expand", [empty, padded_shape])[0]
    scattered = ctx.node("ScatterElements", [blank, slot, tokens], axis=1)[0]
    zero = ctx.int64s([0])
    result = ctx.node("Slice", [scattered, zero, width, ctx.int64s([1])], [out] if out else 1)[0]
    ctx.dtypes[result] = "string"
    return result


def _fit(ctx, x: str, length, out: str, known_width) -> None:
    """Rows of ``x`` padded with "" or cut to ``length`` (unchanged when ``None``)."""
    if length is None or length == known_width:
        ctx.node("Identity", [x], [out])
        return
    batch = ctx.node("Slice", [ctx.node("Shape", [x])[0], ctx.int64s([0]), ctx.int64s([1])])[0]
    blank = ctx.node(
        "Expand",
        [ctx.const(np.array([""], dtype=object)), ctx.node("Concat", [batch, ctx.int64s([length])], axis=0)[0]],
    )[0]
    joined = ctx.node("Concat", [x, blank], axis=1)[0]
    ctx.node("Slice", [joined, ctx.int64s([0]), ctx.int64s([length]), ctx.int64s([1])], [out])


TOKENIZE_TEXT = TokenizeText()


def tokenize_text(x, split: str | None, ngrams: tuple | None = None, length: int | None = None, min_length: int = 0):
    """Token rows of ``x`` like Keras' TextVectorization (see ``TokenizeText``), padded with ""."""
    if split is not None and split not in SPLIT_MODES:
        raise ValueError(f"`tokenize_text` split must be one of {SPLIT_MODES} or None. Received: split={split!r}")
    ngrams = None if ngrams is None else tuple(int(w) for w in ngrams)
    length = None if length is None else int(length)
    return apply(TOKENIZE_TEXT, [x], split=split, ngrams=ngrams, length=length, min_length=int(min_length))[0]
