"""Limits on the model configs irtool reads (JSON strings, ``.keras`` files, config dicts).

Reading a config recurses once per nesting level (``json.loads``, ``deserialize_keras_object``,
nested models' ``from_config``), so a config nested thousands of levels deep would end in a
``RecursionError`` deep inside irtool, and a huge one could exhaust memory. Keras has no such
limits; irtool refuses these configs up front with a ``ValueError`` that says which limit was hit
and what was received. The limits are far above real models: a plain functional model's config
is about 12 levels deep and each nested model adds 3, so :data:`MAX_CONFIG_DEPTH` allows ~30
models nested in one another.
"""

from __future__ import annotations

import contextlib
import re
import threading

import numpy as np

#: Largest JSON text accepted (bytes of UTF-8), as for a ``.keras`` file's ``config.json``.
MAX_JSON_BYTES = 64 * 2**20
#: Deepest nesting of dicts and lists accepted in a config.
MAX_CONFIG_DEPTH = 100
#: Most values (dict entries, list items and scalars) accepted in a config: as many as a JSON text
#: of :data:`MAX_JSON_BYTES` can hold (each takes at least two bytes with its separator).
MAX_CONFIG_ITEMS = MAX_JSON_BYTES // 2
# Where check_config stops measuring how deep a config nests.
_DEPTH_CAP = 100_000

# A JSON string literal, escapes included (linear: no nested quantifiers).
_JSON_STRING = re.compile(r'"(?:[^"\\]|\\.)*"', re.DOTALL)


class ConfigLimitError(ValueError):
    """A config deeper or larger than irtool reads."""


def json_depth(text: str) -> int:
    """How deeply ``text``'s arrays and objects nest, without parsing it (so without recursion).

    Brackets inside string literals do not count. Vectorized: only the bracket positions are
    summed, so a 64 MiB text needs no large temporary arrays.
    """
    code = np.frombuffer(_JSON_STRING.sub('""', text).encode("utf-8"), dtype=np.uint8)
    brackets = code[(code == ord("[")) | (code == ord("{")) | (code == ord("]")) | (code == ord("}"))]
    if brackets.size == 0:
        return 0
    steps = np.where((brackets == ord("[")) | (brackets == ord("{")), 1, -1)
    return int(np.cumsum(steps, dtype=np.int64).max())


def check_json_text(text, where: str, max_bytes: int | None = None) -> None:
    """Refuse a JSON text longer than ``max_bytes`` (default :data:`MAX_JSON_BYTES`) or nested
    deeper than :data:`MAX_CONFIG_DEPTH`, before ``json.loads`` could run out of stack or memory."""
    limit = MAX_JSON_BYTES if max_bytes is None else max_bytes
    size = len(text) if isinstance(text, (bytes, bytearray)) else len(text.encode("utf-8", "surrogatepass"))
    if size > limit:
        raise ConfigLimitError(f"{where}: the JSON text is {size:,} bytes, more than the limit of {limit:,} bytes.")
    if isinstance(text, (bytes, bytearray)):
        text = text.decode("utf-8", "replace")
    depth = json_depth(text)
    if depth > MAX_CONFIG_DEPTH:
        raise ConfigLimitError(
            f"{where}: the JSON text nests arrays and objects {depth:,} levels deep, more than the limit of "
            f"{MAX_CONFIG_DEPTH} levels."
        )


def check_config(config, where: str) -> None:
    """Refuse a config (dicts, lists, tuples and scalars) nested deeper than
    :data:`MAX_CONFIG_DEPTH` or holding more than :data:`MAX_CONFIG_ITEMS` values.

    The walk is iterative. It measures the depth of deep configs exactly, to report it, up to
    :data:`_DEPTH_CAP`, where it stops, so a structure that contains itself is refused at once
    rather than walked forever.
    """
    stack = [(config, 1)]
    items = 0
    deepest = 0
    while stack:
        value, depth = stack.pop()
        items += 1
        if items > MAX_CONFIG_ITEMS:
            raise ConfigLimitError(f"{where}: the config holds more than the limit of {MAX_CONFIG_ITEMS:,} values.")
        if isinstance(value, dict):
            children = value.values()
        elif isinstance(value, (list, tuple)):
            children = value
        else:
            continue
        deepest = max(deepest, depth)
        if deepest >= _DEPTH_CAP:
            break
        stack.extend((child, depth + 1) for child in children)
    if deepest >= _DEPTH_CAP:
        raise ConfigLimitError(
            f"{where}: the config nests dicts and lists at least {deepest:,} levels deep (or contains itself), "
            f"more than the limit of {MAX_CONFIG_DEPTH} levels."
        )
    if deepest > MAX_CONFIG_DEPTH:
        raise ConfigLimitError(
            f"{where}: the config nests dicts and lists {deepest:,} levels deep, more than the limit of "
            f"{MAX_CONFIG_DEPTH} levels."
        )


_reading = threading.local()


def is_reading() -> bool:
    """Whether a config is being read (and was checked) in this thread."""
    return getattr(_reading, "active", False)


@contextlib.contextmanager
def reading_config(config, where: str):
    """Check ``config`` once, when the outermost reader starts (nested models' ``from_config``
    and the recursive ``deserialize_keras_object`` calls inside are not checked again).

    Within the limits, rebuilding should never need more than Python's default stack; should a
    custom object's ``from_config`` recurse further anyway, the ``RecursionError`` becomes the
    same kind of ``ValueError``.
    """
    if is_reading():
        yield
        return
    check_config(config, where)
    _reading.active = True
    try:
        yield
    except RecursionError:
        raise ConfigLimitError(
            f"{where}: rebuilding the config exhausted Python's recursion limit; the config is nested too deeply "
            f"for irtool to read (the limit is {MAX_CONFIG_DEPTH} levels of dicts and lists)."
        ) from None
    finally:
        _reading.active = False
