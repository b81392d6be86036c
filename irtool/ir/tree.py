"""Nested structures (lists, tuples, dicts) flattened the way Keras does: dicts by sorted key."""

from __future__ import annotations


def flatten(structure) -> list:
    if isinstance(structure, dict):
        return [leaf for key in sorted(structure) for leaf in flatten(structure[key])]
    if isinstance(structure, (list, tuple)):
        return [leaf for item in structure for leaf in flatten(item)]
    return [structure]


def flatten_with_paths(structure, prefix: str = "") -> list:
    """``[(path, leaf)]`` with paths like ``0``, ``a``, ``a.0`` (empty for a bare leaf)."""
    join = (lambda k: f"{prefix}.{k}") if prefix else str
    if isinstance(structure, dict):
        return [p for key in sorted(structure) for p in flatten_with_paths(structure[key], join(key))]
    if isinstance(structure, (list, tuple)):
        return [p for i, item in enumerate(structure) for p in flatten_with_paths(item, join(i))]
    return [(prefix, structure)]


def pack_like(structure, leaves: list):
    """Rebuild ``structure`` with ``leaves`` (in flatten order)."""
    it = iter(leaves)

    def build(s):
        if isinstance(s, dict):
            built = {key: build(s[key]) for key in sorted(s)}
            return {key: built[key] for key in s}
        if isinstance(s, (list, tuple)):
            return type(s)(build(item) for item in s)
        return next(it)

    return build(structure)


def map_structure(fn, structure):
    return pack_like(structure, [fn(x) for x in flatten(structure)])
