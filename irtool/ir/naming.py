"""Keras' auto-naming: snake_case class names made unique by a process-wide counter."""

from __future__ import annotations

import re
from collections import defaultdict

_counters: dict[str, int] = defaultdict(int)


def to_snake_case(name: str) -> str:
    """``Conv2DTranspose`` -> ``conv2d_transpose``, ``ReLU`` -> ``re_lu`` (as Keras does)."""
    name = re.sub(r"\W+", "", name)
    name = re.sub("(.)([A-Z][a-z]+)", r"\1_\2", name)
    name = re.sub("([a-z])([A-Z])", r"\1_\2", name)
    return name.lower()


def uniquify(prefix: str) -> str:
    """``dense``, then ``dense_1``, ``dense_2``... until :func:`reset` is called."""
    count = _counters[prefix]
    _counters[prefix] += 1
    return prefix if count == 0 else f"{prefix}_{count}"


def reset() -> None:
    _counters.clear()


def validate_name(name) -> str:
    if not isinstance(name, str) or "/" in name:
        raise ValueError(
            "Argument `name` must be a string and cannot contain character `/`. "
            f"Received: name={name} (of type {type(name)})"
        )
    return name


class UniqueNamer:
    """Hands out unique names within one namespace: ``x``, then ``x_1``, ``x_2``..."""

    def __init__(self):
        self.used: set = set()
        self._next: dict = defaultdict(int)

    def __call__(self, name: str) -> str:
        candidate = name
        while candidate in self.used:
            self._next[name] += 1
            candidate = f"{name}_{self._next[name]}"
        self.used.add(candidate)
        return candidate

    def peek(self, name: str) -> str:
        """The name the next call with ``name`` will hand out (nothing is reserved)."""
        candidate, count = name, self._next[name]
        while candidate in self.used:
            count += 1
            candidate = f"{name}_{count}"
        return candidate
