"""The runtime's copy of ``irtool.memory`` (the runtime imports nothing of irtool outside itself, so it
cannot share that module; ``tests/hardening/test_resource_bounds.py`` checks that the two agree).

How much memory an allocation may take: checked before large arrays are made, so a model whose
weights (or inputs) cannot fit fails with a message instead of being killed by the kernel.

NumPy refuses only absurd requests itself (``Unable to allocate 291. TiB``); with Linux's
overcommit a request of 1.5x the free memory succeeds and the process is killed while the
initializer writes it. So we compare the bytes asked for with what the machine (or the
container's cgroup limit) has available, and refuse what cannot fit.
"""

from __future__ import annotations

import math
import os


class MemoryLimitError(ValueError):
    """An allocation larger than the memory available; the message names what, where and both sizes."""


def _meminfo_available() -> int | None:
    try:
        with open("/proc/meminfo") as file:
            for line in file:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (AttributeError, ValueError, OSError):
        return None


def _cgroup_available() -> int | None:
    """What a cgroup v2 memory limit leaves (containers see the host's MemAvailable otherwise)."""
    try:
        with open("/sys/fs/cgroup/memory.max") as file:
            limit = file.read().strip()
        if limit == "max":
            return None
        with open("/sys/fs/cgroup/memory.current") as file:
            return max(int(limit) - int(file.read().strip()), 0)
    except (OSError, ValueError):
        return None


def available_memory() -> int | None:
    """Bytes this process may still allocate, or ``None`` where the platform does not say."""
    known = [n for n in (_meminfo_available(), _cgroup_available()) if n is not None]
    return min(known) if known else None


def format_bytes(n: int) -> str:
    """``n`` bytes for a person: ``"3.6 TiB"``."""
    if n < 1024:
        return f"{n:,} bytes"
    exponent = min((int(n).bit_length() - 1) // 10, 5)  # exact at powers of 1024, unlike a float log
    return f"{n / 1024**exponent:,.1f} {('KiB', 'MiB', 'GiB', 'TiB', 'PiB')[exponent - 1]}"


def array_bytes(shape, itemsize: int) -> int:
    """Bytes of an array of ``shape`` (Python ints: no overflow) and ``itemsize``."""
    return math.prod(int(d) for d in shape) * int(itemsize)


def check_allocation(nbytes: int, what: str) -> None:
    """Raise ``MemoryLimitError`` if ``nbytes`` exceeds the memory available; ``what`` names the array."""
    available = available_memory()
    if available is not None and nbytes > available:
        raise MemoryLimitError(
            f"{what} needs {format_bytes(nbytes)} ({nbytes:,} bytes), more than the {format_bytes(available)} "
            "of memory available; refusing it before allocating"
        )


__all__ = ["MemoryLimitError", "array_bytes", "available_memory", "check_allocation", "format_bytes"]
