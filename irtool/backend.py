"""``irtool.backend``: session-level state (Keras' ``keras.backend`` subset)."""

from __future__ import annotations

from irtool.ir import dtypes, naming


def clear_session() -> None:
    """Reset auto-naming counters, so the next Dense is ``dense`` again."""
    naming.reset()


def floatx() -> str:
    """The default float dtype of layers, weights and inputs (``"float32"``)."""
    return dtypes.FLOATX


def set_floatx(value: str) -> None:
    """Change the default float dtype (``"float16"``, ``"float32"`` or ``"float64"``), as Keras'
    ``keras.config.set_floatx``."""
    if value not in ("float16", "float32", "float64"):
        raise ValueError(f"Unknown `floatx` value: {value}. Expected one of {{'float16', 'float32', 'float64'}}")
    dtypes.FLOATX = value


def image_data_format() -> str:
    return "channels_last"
