"""The padding and output-length arithmetic of ``conv`` and ``conv_transpose``, one spatial dim at a
time (plain integers), and the convolution that gives a unit-stride conv's input gradient: shared by
the NumPy kernels (``conv_utils``) and the ONNX Runtime training kernels (``fast_kernels``)."""

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


def input_grad_conv(kernel, groups: int, pads, dilation) -> tuple:
    """``(kernel', pads')``: a unit-stride conv's input gradient is the conv of its output gradient
    with ``kernel'`` and ``pads'``. ``gx[p] = sum_j gy[p + lo - j*d] k[j]``, so ``kernel'`` is the
    Keras-layout ``kernel`` flipped in space with input and output channels swapped within each
    group, and ``pads'`` is ``(eff - 1 - lo, eff - 1 - hi)`` per spatial dim (``eff`` the dilated
    kernel size); None when a pad is larger than that (the gradient then needs cropping)."""
    nd = kernel.ndim - 2
    ksize = kernel.shape[:nd]
    eff = [(k - 1) * d + 1 for k, d in zip(ksize, dilation)]
    back = [(e - 1 - lo, e - 1 - hi) for e, (lo, hi) in zip(eff, pads)]
    if any(lo < 0 or hi < 0 for lo, hi in back):
        return None
    cg, og = kernel.shape[nd], kernel.shape[nd + 1] // groups
    flipped = kernel[(slice(None, None, -1),) * nd].reshape(*ksize, cg, groups, og)
    return flipped.transpose(*range(nd), nd + 2, nd + 1, nd).reshape(*ksize, og, cg * groups), back
