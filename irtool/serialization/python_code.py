"""Python code inside configs, and the safe-mode switch that guards loading it.

Keras stores a ``lambda`` (in a ``Lambda`` layer, or anywhere a function is serialized) as its
marshalled bytecode in base64, because a lambda has no name to look up. Loading that bytecode
runs code from the file, so it is refused unless the caller passes ``safe_mode=False``: only do
that for files you trust, since a crafted file can then run anything. Named functions are never
stored as code; they are looked up by name among the registered and custom objects.
"""

from __future__ import annotations

import base64
import builtins
import marshal
import sys
import threading
import types

import numpy as np


class _SafeModeStack(threading.local):
    def __init__(self):
        self.values: list = []


_safe_mode = _SafeModeStack()


class SafeModeScope:
    """Inside ``with SafeModeScope(False):`` loading may run Python code stored in a config."""

    def __init__(self, safe_mode=True):
        self.safe_mode = safe_mode

    def __enter__(self):
        _safe_mode.values.append(self.safe_mode)
        return self

    def __exit__(self, *exc_info):
        _safe_mode.values.pop()


def in_safe_mode():
    """The innermost ``SafeModeScope``'s value, ``None`` outside any (callers treat that as safe)."""
    return _safe_mode.values[-1] if _safe_mode.values else None


def dump_function(fn) -> tuple:
    """``(code, defaults, closure)`` of a Python function: its marshalled bytecode in base64,
    as Keras stores a ``lambda`` (``python_utils.func_dump``)."""
    code = base64.encodebytes(marshal.dumps(fn.__code__)).decode("ascii")
    closure = tuple(cell.cell_contents for cell in fn.__closure__) if fn.__closure__ else None
    return code, fn.__defaults__, closure


def load_function(code, defaults=None, closure=None, name: str = "lambda"):
    """Rebuild a function from :func:`dump_function`'s output. This RUNS CODE FROM THE CONFIG:
    callers must have checked that the user opted in (``safe_mode=False``)."""
    if isinstance(code, (list, tuple)):
        code, defaults, closure = code
    try:
        raw = base64.decodebytes(code.encode("ascii"))
        function_code = marshal.loads(raw)
    except (ValueError, TypeError, EOFError) as error:
        raise ValueError(
            f"Could not load the Python function of '{name}': its bytecode is invalid or was written by another "
            f"Python version ({error})."
        ) from None
    if not isinstance(function_code, types.CodeType):
        raise ValueError(f"Could not load the Python function of '{name}': the config does not hold bytecode.")
    # The public package, read at run time: any irtool import runs irtool/__init__ first, so it is
    # complete by now, and importing it here would tie serialization to every package above it.
    irtool = sys.modules["irtool"]
    globals_ = {"__builtins__": builtins, "ops": irtool.ops, "keras": irtool, "irtool": irtool, "np": np}
    cells = tuple(types.CellType(value) for value in closure) if closure is not None else None
    return types.FunctionType(
        function_code, globals_, function_code.co_name, tuple(defaults) if defaults else None, cells
    )
