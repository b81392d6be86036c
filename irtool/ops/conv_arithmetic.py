"""The padding and output-length arithmetic of ``conv`` and ``conv_transpose``, one spatial dim at a
time: plain integers, shared by the NumPy kernels (``conv_utils``) and the ONNX Runtime training
kernels (``fast_kernels``)."""

from __future__ import annotations


def conv_pads(n: int, k: int, s: int, d: int, padding: str) -> tuple:
    """(begin, end) padding of one spatial dim of length ``n``."""
    eff = (k - 1) * d + 1
    if padding == "valid":
        return 0, 0
    if padding == "causal":
        return eff - 1, 0
    need = max((-(-n // s) - 1) * s + eff - n, 0)
    return need // 2, need - need // 2


def conv_output_length(n, k: int, s: int, d: int, padding: str):
    if n is None:
        return None
    if padding == "valid":
        return (n - (k - 1) * d - 1) // s + 1
    return -(-n // s)


def conv_transpose_crops(k: int, s: int, d: int, padding: str, output_padding) -> tuple:
    """(P, R): crop at the start and end of the full scatter of length ``(n-1)*s + K``."""
    eff = (k - 1) * d + 1
    if padding == "valid":
        extra = max(eff, s) - eff if output_padding is None else output_padding
        return 0, -extra
    pad_len = s + eff - 2 if output_padding is None else eff + eff % 2 - 2 + output_padding
    left = min(pad_len // 2 + pad_len % 2, eff - 1)
    return eff - 1 - left, eff - 1 - (pad_len - left)


def conv_transpose_output_length(n, k: int, s: int, d: int, padding: str, output_padding):
    if n is None:
        return None
    begin, end = conv_transpose_crops(k, s, d, padding, output_padding)
    return (n - 1) * s + (k - 1) * d + 1 - begin - end
