"""Dtype names as Keras spells them, and their NumPy equivalents.

irtool's dtypes are plain strings (``"float32"``, ``"int64"``, ``"bool"``), exactly
the strings Keras 3 reports in ``tensor.dtype``. This module standardizes what
users pass (NumPy dtypes, Python types, aliases) into those strings.
"""

from __future__ import annotations

import numpy as np

from irtool.strings import STRING_KINDS as _STRING_KINDS

FLOATX = "float32"

ALLOWED_DTYPES = (
    "float16",
    "float32",
    "float64",
    "int8",
    "int16",
    "int32",
    "int64",
    "uint8",
    "uint16",
    "uint32",
    "uint64",
    "bool",
    "string",
)
_ALIASES = {"float": "float32", "double": "float64", "int": "int64", "half": "float16", "str": "string"}
# String tensors are NumPy ``object`` arrays of Python ``str`` inside irtool; ``str_`` and
# ``bytes_`` arrays (and lists) are converted at the boundary by ``to_string_array`` (irtool.strings).


def standardize_dtype(dtype) -> str:
    """Return the Keras name of ``dtype`` (None means the float default, float32).

    >>> standardize_dtype(np.float64)
    'float64'
    """
    if dtype is None:
        return FLOATX
    if isinstance(dtype, str):
        name = _ALIASES.get(dtype, dtype)
        if name not in ALLOWED_DTYPES and name.startswith(("object", "str", "bytes", "<U", "|S")):
            name = "string"  # NumPy's names for string arrays ("object", "str32", "<U5")
    elif dtype is float:
        name = FLOATX
    elif dtype is int:
        name = "int64"
    elif dtype is bool:
        name = "bool"
    elif dtype is str or dtype is bytes:
        name = "string"
    else:
        try:
            numpy_dtype = np.dtype(dtype)
            name = "string" if numpy_dtype.kind in _STRING_KINDS else numpy_dtype.name
        except TypeError:
            name = str(dtype)
    if name not in ALLOWED_DTYPES:
        raise ValueError(f"Invalid dtype: {dtype!r}. Expected one of {list(ALLOWED_DTYPES)}.")
    return name


def is_string(dtype: str) -> bool:
    return dtype == "string"


def is_float(dtype: str) -> bool:
    return dtype.startswith("float")


def itemsize(dtype: str) -> int:
    return np.dtype(object if dtype == "string" else dtype).itemsize


def result_dtype(*dtypes: str) -> str:
    """The dtype of an elementwise op on operands of ``dtypes`` (NumPy promotion, float32 kept)."""
    dtypes = [d for d in dtypes if d is not None]
    if len(set(dtypes)) == 1:
        return dtypes[0]
    return np.result_type(*[np.dtype(d) for d in dtypes]).name
