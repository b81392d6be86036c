"""Element types ONNX Runtime's CPU provider has no kernel for, for the ops irtool emits, and the
wider type each is computed in.

irtool's ops follow NumPy on every dtype (a ``bool`` sum of masks, ``int16`` maxima, ``uint8``
negation wrapping around), but ONNX Runtime registers most kernels for a few types only: a model
that uses ``Max`` on ``int16`` passes ``onnx.checker`` and then fails to load with
NOT_IMPLEMENTED, and a ``ReduceSum`` on ``bool`` fails ONNX's own type check. ``LoweringContext.node``
looks each node up here: when its data type is missing, the data inputs are cast to the wider type
(``int32``, or ``int64`` for 32- and 64-bit unsigned values), the op runs there, and the outputs
that carry the data type are cast back, which wraps around as NumPy does. The one case no wider
type holds, ordering ``uint64`` values (``ORDERED``), is refused with a message.

``MISSING`` was measured with one node per op and type on ONNX Runtime 1.32's CPU provider, opset 21;
``tests/onnx/test_ort_kernels.py`` measures it again on the installed version, so a table that no
longer holds fails a test instead of an export.
"""

from __future__ import annotations

_SMALL = {"int8", "uint8", "int16", "uint16"}
_UNSIGNED_WIDE = {"uint32", "uint64"}

MISSING: dict[str, frozenset] = {
    op: frozenset(types)
    for op, types in {
        "Add": {"bool"},
        "Sub": {"bool"},
        "Mul": {"bool"},
        "Div": {"bool"},
        "Mod": {"bool"},
        "Pow": {"bool", *_SMALL, *_UNSIGNED_WIDE},
        "Max": {"bool", "int16", "uint16"},
        "Min": {"bool", "int16", "uint16"},
        "Abs": {"bool"},
        "Sign": {"bool"},
        "Neg": {"bool", "uint8", "uint16", *_UNSIGNED_WIDE},
        "Clip": {"bool", "int16", "uint16"},
        "Where": {"bool", "int16", "uint16", "uint64"},
        "Pad": {"int16", "uint16"},
        "ArgMax": {"bool", "int16", "uint16", *_UNSIGNED_WIDE},
        "ArgMin": {"bool", "int16", "uint16", *_UNSIGNED_WIDE},
        "ReduceMax": {"int16", "uint16", *_UNSIGNED_WIDE},
        "ReduceMin": {"int16", "uint16", *_UNSIGNED_WIDE},
        "ReduceSum": {"bool", *_SMALL, *_UNSIGNED_WIDE},
        "ReduceProd": {"bool", *_SMALL, *_UNSIGNED_WIDE},
        "TopK": {"bool", "uint16", *_UNSIGNED_WIDE},
        "MatMul": {"bool", *_SMALL},
        "Less": {"bool"},
        "Greater": {"bool"},
        "LessOrEqual": {"bool"},
        "GreaterOrEqual": {"bool"},
        "CumSum": {"bool", *_SMALL, *_UNSIGNED_WIDE},
        "Trilu": {*_SMALL, *_UNSIGNED_WIDE},
        "Einsum": {"bool", *_SMALL, *_UNSIGNED_WIDE},
    }.items()
}

# Inputs that hold the data (the rest are conditions, indices, axes, pads...); default: all.
_DATA_INPUTS = {
    "Where": (1, 2),
    "Pad": (0, 2),
    "TopK": (0,),
    "ArgMax": (0,),
    "ArgMin": (0,),
    "ReduceMax": (0,),
    "ReduceMin": (0,),
    "ReduceSum": (0,),
    "ReduceProd": (0,),
    "CumSum": (0,),
    "Trilu": (0,),
}
# Outputs of the data type, cast back after the op; default: all. Comparisons give bool and
# ArgMax/ArgMin int64 indices, as do TopK's second output.
_TYPED_OUTPUTS = {
    "Less": (),
    "Greater": (),
    "LessOrEqual": (),
    "GreaterOrEqual": (),
    "ArgMax": (),
    "ArgMin": (),
    "TopK": (0,),
}


# Ops that compare their data: int64 keeps uint64's arithmetic (it wraps the same way) but not its
# order, so these refuse uint64 instead (values from 2**63 on would sort as negative).
ORDERED = frozenset({"ArgMax", "ArgMin", "ReduceMax", "ReduceMin", "TopK"})


def wider(dtype: str) -> str:
    """The type a missing kernel's data is computed in (every op in ``MISSING`` has it)."""
    return "int64" if dtype in _UNSIGNED_WIDE else "int32"


def data_inputs(op_type: str, count: int) -> tuple:
    return tuple(i for i in _DATA_INPUTS.get(op_type, range(count)) if i < count)


def typed_outputs(op_type: str, count: int) -> tuple:
    return tuple(i for i in _TYPED_OUTPUTS.get(op_type, range(count)) if i < count)
