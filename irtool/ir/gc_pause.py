"""Pausing Python's cyclic garbage collector around large graph builds and exports."""

from __future__ import annotations

import contextlib
import gc


@contextlib.contextmanager
def gc_paused():
    """Pause the cyclic garbage collector while building large acyclic structures (graph
    walks, ONNX lowering): full collections there scan the whole heap again and again."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()
