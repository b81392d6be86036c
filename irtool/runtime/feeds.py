"""Input feeds: what a caller passes to ``Session.run``, checked against the model's declared inputs.

A small codec in the MLServer sense: pure functions from user data (a dict by name, a list in
input order, or one array) to the ``{name: array}`` feed ONNX Runtime takes, with errors that
say what was expected and what was received, Keras-style:

    input 'img': expected shape (None, 784) float32, received (2, 783) float64

ONNX Runtime's own messages ("Got invalid dimensions for input: x ... index: 1 Got: 4 Expected:
3") are correct but arrive from C++ one problem at a time; these checks run first and cost well
under a microsecond per input when the array already fits.

Casts are made only where no value can change:

- an array whose dtype NumPy casts *safely* to the declared one (``np.can_cast(..., "safe")``):
  int8/int16/int32/uint8/uint16/uint32 to int64, float16 to float32, any integer of at most 16
  bits or float32/float16 to float64, bool to any number;
- Python lists and numbers (which have no dtype of their own) take the declared dtype when their
  kind fits (integers into integer inputs only if every value is in range; integers or floats
  into float inputs; booleans into bool inputs).

String inputs take text in any form (``str``, ``bytes``, ``str_``/``bytes_``/``object`` arrays,
lists) and get ``str`` elements, bytes decoded as UTF-8 (``irtool.strings``): ONNX Runtime reads a
``bytes`` element as its ``repr``.

Everything else (float64 into float32, int64 into int32, floats into integers) is an error that
names the cast to make if the loss is acceptable.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from irtool.runtime.ort import TensorInfo
from irtool.strings import to_string_array


class InputError(ValueError):
    """Inputs that do not fit the model's declared inputs; the message is one line."""


def format_shape(shape: tuple | None) -> str:
    """``(None, 784)``: symbolic and unknown dims print as ``None``, as Keras prints shapes."""
    if shape is None:
        return "(unknown rank)"
    dims = ["None" if not isinstance(d, int) else str(d) for d in shape]
    return "(" + ", ".join(dims) + ("," if len(dims) == 1 else "") + ")"


class InputCheck:
    """One declared input, prepared for fast checks: its dtype, rank and fixed dimensions."""

    __slots__ = ("dtype", "fixed", "info", "name", "rank", "strings")

    def __init__(self, info: TensorInfo):
        self.info = info
        self.name = info.name
        self.dtype = info.dtype
        self.strings = info.dtype is not None and info.dtype.kind == "O"  # a tensor(string)
        self.rank = None if info.shape is None else len(info.shape)
        self.fixed = () if info.shape is None else tuple((a, d) for a, d in enumerate(info.shape) if isinstance(d, int))

    def _error(self, value: Any, reason: str = "") -> InputError:
        got_shape = tuple(np.shape(value)) if hasattr(value, "shape") else "a " + type(value).__name__
        got_dtype = getattr(value, "dtype", "")
        received = f"{format_shape(got_shape) if isinstance(got_shape, tuple) else got_shape} {got_dtype}".strip()
        expected = f"{format_shape(self.info.shape)} {'string' if self.strings else self.dtype}"
        return InputError(f"input '{self.name}': expected shape {expected}, received {received}{reason}")

    def __call__(self, value: Any) -> np.ndarray:
        """``value`` as an array ONNX Runtime accepts for this input, or ``InputError``."""
        if type(value) is np.ndarray and value.dtype == self.dtype and not self.strings:
            array = value
        else:
            array = self._convert(value)
        if self.rank is not None:
            if array.ndim != self.rank:
                raise self._error(array, f" (rank {array.ndim}, the model wants rank {self.rank})")
            shape = array.shape
            for axis, size in self.fixed:
                if shape[axis] != size:
                    raise self._error(array, f" (axis {axis} has size {shape[axis]}, the model wants {size})")
        return array

    def _convert(self, value: Any) -> np.ndarray:
        if self.dtype is None:  # an element type NumPy has no dtype for: let ONNX Runtime judge
            return np.asarray(value)
        if self.strings:  # str elements: ONNX Runtime would read bytes as their repr
            try:
                return to_string_array(value)
            except ValueError as error:
                raise self._error(value, f" ({error})") from None
        if isinstance(value, np.generic):
            value = np.asarray(value)
        if isinstance(value, np.ndarray):
            if np.can_cast(value.dtype, self.dtype, "safe"):
                return value.astype(self.dtype)
            raise self._error(
                value,
                f" (casting {value.dtype} to {self.dtype} could change values; "
                f"pass x.astype('{self.dtype}') if that is acceptable)",
            )
        if hasattr(value, "__array__") and not isinstance(value, (list, tuple)):
            return self._convert(np.asarray(value))
        try:
            array = np.asarray(value)
        except ValueError as error:  # ragged nested lists
            raise self._error(value, f" ({' '.join(str(error).split())})") from None
        if array.dtype == self.dtype or array.size == 0:
            return array.astype(self.dtype)
        kinds = {"b": "b", "i": "iu", "u": "iu", "f": "fiub"}.get(self.dtype.kind, "")
        if array.dtype.kind == "b" and self.dtype.kind != "b":
            kinds = ""  # booleans only into bool inputs
        if array.dtype.kind not in kinds:
            raise self._error(array, f" (values of kind {array.dtype} do not fit {self.dtype})")
        if self.dtype.kind in "iu":
            limits = np.iinfo(self.dtype)
            if array.min() < limits.min or array.max() > limits.max:
                raise self._error(array, f" (values outside {self.dtype}'s range)")
        return array.astype(self.dtype)


def build_feeds(checks: Sequence[InputCheck], data: Any) -> dict[str, np.ndarray]:
    """The ``{name: array}`` feed for ``data``: a dict by input name, a list or tuple in input order,
    or one array when the model has one input."""
    # the common cases first, without ABC checks: they are most of the per-run cost at batch 1
    if type(data) is np.ndarray and len(checks) == 1:
        return {checks[0].name: checks[0](data)}
    if type(data) is dict or isinstance(data, Mapping):
        try:
            feeds = {c.name: c(data[c.name]) for c in checks}
        except KeyError:
            feeds = {}
        if len(feeds) != len(data) or len(feeds) != len(checks):
            raise _name_error(checks, data)
        return feeds
    if isinstance(data, (list, tuple)) and not (len(checks) == 1 and _is_values(data)):
        if len(data) != len(checks):
            raise InputError(
                f"expected {len(checks)} input array{'s' * (len(checks) != 1)} "
                f"({', '.join(repr(c.name) for c in checks)}), received {len(data)}"
            )
        return {c.name: c(x) for c, x in zip(checks, data)}
    if len(checks) != 1:
        raise InputError(
            f"the model has {len(checks)} inputs ({', '.join(repr(c.name) for c in checks)}); "
            "pass a dict by name or a list in that order, received one array"
        )
    return {checks[0].name: checks[0](data)}


def _name_error(checks: Sequence[InputCheck], data: Mapping) -> InputError:
    names = [c.name for c in checks]
    unknown = [k for k in data if k not in names]
    missing = [n for n in names if n not in data]
    parts = []
    if unknown:
        parts.append(f"unknown input name{'s' * (len(unknown) > 1)} {', '.join(map(repr, unknown))}")
    if missing:
        parts.append(f"missing {', '.join(map(repr, missing))}")
    return InputError(f"{'; '.join(parts)}: the model's inputs are {', '.join(map(repr, names))}")


def _is_values(data: Sequence) -> bool:
    """A list of numbers (or of lists of numbers) is one input's values, not a list of inputs."""
    return bool(data) and not any(isinstance(x, np.ndarray) for x in data)


def split_batches(feeds: Mapping[str, np.ndarray], batch_size: int) -> list[dict[str, np.ndarray]]:
    """``feeds`` cut along axis 0 into pieces of at most ``batch_size`` rows (every input must agree)."""
    sizes = {name: a.shape[0] for name, a in feeds.items() if a.ndim}
    if len(set(sizes.values())) > 1:
        found = ", ".join(f"'{n}' has {s}" for n, s in sizes.items())
        raise InputError(f"inputs disagree on the number of samples (axis 0): {found}")
    total = next(iter(sizes.values()), 1)
    return [
        {name: (a[start : start + batch_size] if a.ndim else a) for name, a in feeds.items()}
        for start in range(0, max(total, 1), batch_size)
    ]


__all__ = ["InputCheck", "InputError", "build_feeds", "format_shape", "split_batches"]
