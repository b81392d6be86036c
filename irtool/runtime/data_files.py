"""Input arrays from files, for ``irtool run --input``: ``.npy``, ``.npz`` and ``.json``.

A spec is ``name=path`` (the file holds that input) or ``path`` alone: an ``.npz`` file or a JSON
object gives arrays by name (its keys must be input names), a ``.npy`` file or a JSON list is the
model's only input. JSON numbers have no dtype; ``Session`` gives them the declared one when
nothing is lost (``irtool.runtime.feeds``). Files are read with ``allow_pickle=False``.
"""

from __future__ import annotations

import json
import zipfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

SUFFIXES = (".npy", ".npz", ".json")


class DataFileError(ValueError):
    """An input spec or file that cannot be read; the message is one line."""


def _read(path: Path) -> Any:
    """An array (``.npy``), a dict of arrays (``.npz``) or the parsed JSON value."""
    if path.suffix.lower() not in SUFFIXES:
        raise DataFileError(f"--input {path}: expected a .npy, .npz or .json file")
    if not path.is_file():
        raise DataFileError(f"no such input file: {path}")
    try:
        if path.suffix.lower() == ".npy":
            return np.load(path, allow_pickle=False)
        if path.suffix.lower() == ".npz":
            with np.load(path, allow_pickle=False) as archive:
                return {key: archive[key] for key in archive.files}
        return json.loads(path.read_text(encoding="utf-8"))
    except RecursionError:  # Python's JSON parser recurses once per nesting level
        raise DataFileError(f"cannot read the input file {path}: its JSON is nested too deeply") from None
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as error:
        reason = " ".join(str(error).split()) or type(error).__name__
        raise DataFileError(f"cannot read the input file {path}: {reason}") from error


def read_inputs(specs: Sequence[str], input_names: Sequence[str]) -> dict[str, Any]:
    """``{input name: data}`` from ``--input`` specs; every name must be one of ``input_names``."""
    found: dict[str, Any] = {}
    for spec in specs:
        name, sep, file = spec.partition("=")
        if sep and not name:
            raise DataFileError(f"--input {spec!r}: expected NAME=FILE or FILE")
        if not sep:
            name, file = "", spec
        data = _read(Path(file))
        if name:
            pieces = {name: data}
        elif isinstance(data, dict):
            pieces = data
        elif len(input_names) == 1:
            pieces = {input_names[0]: data}
        else:
            raise DataFileError(
                f"--input {file}: the model has {len(input_names)} inputs ({', '.join(input_names)}); "
                "write NAME=FILE, or pass an .npz file or a JSON object keyed by input name"
            )
        for key, value in pieces.items():
            if key in found:
                raise DataFileError(f"input '{key}' is given twice")
            found[key] = value
    return found


__all__ = ["SUFFIXES", "DataFileError", "read_inputs"]
