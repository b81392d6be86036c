"""``irtool.backend``: session-level state (Keras' ``keras.backend`` subset)."""

from __future__ import annotations

from irtool.ir import naming
from irtool.ir.dtypes import FLOATX


def clear_session() -> None:
    """Reset auto-naming counters, so the next Dense is ``dense`` again."""
    naming.reset()


def floatx() -> str:
    return FLOATX


def image_data_format() -> str:
    return "channels_last"
