"""String tensors as irtool and ONNX Runtime hold them: NumPy ``object`` arrays of ``str``.

ONNX Runtime's Python API reads a string tensor's elements as ``str``: a ``bytes`` element
reaches the model as its ``repr`` (``"b'abc'"``) and a fixed-width ``bytes_`` array as its raw
buffer, so text given as bytes (NumPy ``bytes_`` arrays, Triton's BYTES, TensorFlow's strings) is
decoded as UTF-8 wherever data enters: the NumPy executor's feeds and the runtime's (``Session``,
``irtool run``, the server). One rule in one place, on NumPy alone: a leaf that both ``ir`` and
``runtime`` import.
"""

from __future__ import annotations

import numpy as np

#: NumPy kinds that hold text: ``object`` (str or bytes elements), ``str_`` and ``bytes_``.
STRING_KINDS = "OUS"


def to_string_array(x) -> np.ndarray:
    """``x`` (a ``str_``/``bytes_``/``object`` array, a list, a string) as an ``object`` array of
    ``str``, bytes decoded as UTF-8. A ``ValueError`` names an element that is not text or not UTF-8."""
    array = np.asarray(x)
    if array.dtype == object and all(type(v) is str for v in array.flat):
        return array
    if array.dtype.kind not in STRING_KINDS:
        raise ValueError(f"Expected string data (str or bytes). Received: an array of dtype {array.dtype}.")
    out = np.empty(array.shape, dtype=object)
    for index, value in np.ndenumerate(array):
        if isinstance(value, bytes):
            try:
                value = value.decode("utf-8")
            except UnicodeDecodeError as error:
                raise ValueError(
                    f"Expected UTF-8 text. Received: bytes that are not UTF-8 at index {list(index)} ({error.reason})."
                ) from None
        elif not isinstance(value, str):
            raise ValueError(
                f"Expected string data (str or bytes). Received: a {type(value).__name__} at index {list(index)}."
            )
        out[index] = value
    return out
