"""Signal processing: window functions, ``arctan2`` and the short-time Fourier transform.

``stft`` is Keras' ``ops.stft`` as its torch backend computes it (``torch.stft``): the signal
is reflect-padded by ``fft_length // 2`` on both sides when ``center``, cut into frames of
``fft_length`` samples every ``sequence_stride``, multiplied by a window of
``sequence_length`` samples zero-padded (centred) to ``fft_length``, and transformed by a
one-sided DFT. It returns the real and imaginary parts, ``(..., frames, fft_length // 2 + 1)``.
It lowers to ONNX's ``STFT`` (opset 17), which takes the same padded window, so the export is
an FFT too rather than a dense DFT matrix (2048 bins would need 16 MB of constants).

``arctan2`` is elementwise; ONNX has no ``Atan2``, so it lowers to ``Atan`` of the quotient
with the quadrant corrections NumPy's definition makes (signed zeros aside: ``-0.0`` counts as
``0.0``, as for any ``y >= 0`` comparison).
"""

from __future__ import annotations

import numpy as np

from irtool.ir.spec import TensorSpec, broadcast_shapes
from irtool.ops.core import Primitive, apply
from irtool.ops.core import as_operand as _tensor
from irtool.ops.gradients import unbroadcast
from irtool.ops.operation import top_level_op

# Generalized cosine windows: ``sum_k (-1)^k a_k cos(2 pi k n / (M - 1))``, as
# ``scipy.signal.get_window`` defines them (Keras' STFT initializer calls it).
_COSINE_WINDOWS = {
    "hann": (0.5, 0.5),
    "hamming": (0.54, 0.46),
    "blackman": (0.42, 0.5, 0.08),
    "boxcar": (1.0,),
}
WINDOWS = (*_COSINE_WINDOWS, "bartlett")


def get_window(window: str, length: int, periodic: bool) -> np.ndarray:
    """``scipy.signal.get_window(window, length, fftbins=periodic)`` in float64, for the windows
    in ``WINDOWS``: a periodic window is the symmetric one of ``length + 1`` samples, truncated."""
    if window not in WINDOWS:
        raise ValueError(f"Unsupported window {window!r}: expected one of {list(WINDOWS)} or an array of samples.")
    if length == 1:
        return np.ones(1)
    size = length + 1 if periodic else length
    if window == "bartlett":
        n = np.arange(size)
        samples = 1.0 - np.abs(2.0 * n / (size - 1) - 1.0)
    else:
        phase = 2.0 * np.pi * np.arange(size) / (size - 1)
        samples = sum((-1) ** k * a * np.cos(k * phase) for k, a in enumerate(_COSINE_WINDOWS[window]))
    return samples[:length]


def stft_window(window, sequence_length: int, fft_length: int, dtype: str) -> np.ndarray:
    """The window ``torch.stft`` applies (as Keras' torch backend builds it: periodic Hann or
    Hamming, ones for ``None``, or the given samples), zero-padded in the middle of
    ``fft_length``."""
    if window is None:
        samples = np.ones(sequence_length)
    elif isinstance(window, str):
        if window not in ("hann", "hamming"):
            raise ValueError(
                f'If a string is passed to `window`, it must be one of "hann", "hamming". Received: {window}'
            )
        samples = get_window(window, sequence_length, periodic=True)
    else:
        samples = np.asarray(window, dtype=np.float64)
        if samples.shape != (sequence_length,):
            raise ValueError(
                f"The shape of `window` must be equal to [sequence_length]. Received: window shape={samples.shape}"
            )
    left = (fft_length - sequence_length) // 2
    padded = np.zeros(fft_length)
    padded[left : left + sequence_length] = samples
    return padded.astype(dtype)


def _frame_indices(samples: int, sequence_stride: int, fft_length: int, center: bool) -> np.ndarray:
    """``(frames, fft_length)`` indices into the unpadded signal: frame ``f``'s sample ``n``
    reads ``x[..., idx[f, n]]`` (the reflect padding folded into the indices)."""
    pad = fft_length // 2 if center else 0
    padded = samples + 2 * pad
    frames = 1 + (padded - fft_length) // sequence_stride
    positions = np.arange(frames)[:, None] * sequence_stride + np.arange(fft_length)[None, :] - pad
    # Reflection without repeating the edge sample (np.pad's and torch's "reflect").
    positions = np.abs(positions)
    return np.where(positions > samples - 1, 2 * (samples - 1) - positions, positions)


def stft_frames(samples, sequence_stride: int, fft_length: int, center: bool):
    """The number of frames of a signal of ``samples`` samples (None when unknown)."""
    if samples is None:
        return None
    padded = samples + (2 * (fft_length // 2) if center else 0)
    return 1 + (padded - fft_length) // sequence_stride


class STFT(Primitive):
    """``(real, imag)`` of the short-time Fourier transform of ``x (..., samples)``.

    Attributes: ``sequence_length``, ``sequence_stride``, ``fft_length``, ``window`` (``"hann"``,
    ``"hamming"``, ``None`` or a tuple of ``sequence_length`` samples) and ``center``.
    """

    name = "stft"
    num_outputs = 2

    def infer(self, specs, sequence_length, sequence_stride, fft_length, window, center):
        (x,) = specs
        if x.dtype not in ("float32", "float64"):
            raise TypeError(f"Invalid input type. Expected `float32` or `float64`. Received: input type={x.dtype}")
        if len(x.shape) not in (1, 2):
            raise ValueError(f"`stft` takes a signal of shape (samples,) or (batch, samples). Received: {x.shape}")
        samples = x.shape[-1]
        if samples is not None:
            if center and samples <= fft_length // 2:
                raise ValueError(
                    f"`stft` with center=True reflect-pads by fft_length // 2 = {fft_length // 2} samples, so the "
                    f"signal needs more samples than that. Received: input shape {x.shape}"
                )
            if not center and samples < fft_length:
                raise ValueError(f"`stft` needs at least fft_length={fft_length} samples. Received: {x.shape}")
        frames = stft_frames(samples, sequence_stride, fft_length, center)
        shape = (*x.shape[:-1], frames, fft_length // 2 + 1)
        return [TensorSpec(shape, x.dtype), TensorSpec(shape, x.dtype)]

    def forward(self, x, sequence_length, sequence_stride, fft_length, window, center):
        frames = x[..., _frame_indices(x.shape[-1], sequence_stride, fft_length, center)]
        frames = frames * stft_window(window, sequence_length, fft_length, x.dtype.name)
        spectrum = np.fft.rfft(frames, n=fft_length, axis=-1)
        return spectrum.real.astype(x.dtype), spectrum.imag.astype(x.dtype)

    def vjp(self, cotangents, inputs, outputs, sequence_length, sequence_stride, fft_length, window, center):
        # real = (frames * w) @ cos, imag = (frames * w) @ -sin: the transpose maps each bin back
        # through the same (real) DFT matrices, then adds every frame sample to the sample it read.
        (x,) = inputs
        indices = _frame_indices(x.shape[-1], sequence_stride, fft_length, center)
        angles = 2 * np.pi * np.outer(np.arange(fft_length), np.arange(fft_length // 2 + 1)) / fft_length
        d_frames = np.zeros((*x.shape[:-1], *indices.shape))
        for g, matrix in zip(cotangents, (np.cos(angles), -np.sin(angles))):
            if g is not None:
                d_frames += g @ matrix.T
        d_frames *= stft_window(window, sequence_length, fft_length, "float64")
        dx = np.zeros(x.shape)
        flat = d_frames.reshape(*x.shape[:-1], -1)
        for position, column in zip(indices.ravel(), np.moveaxis(flat, -1, 0)):
            dx[..., position] += column
        return [dx.astype(x.dtype)]

    def to_onnx(self, ctx, ins, outs, sequence_length, sequence_stride, fft_length, window, center):
        if ctx.opset < 17:
            raise ctx.fail(self, f"ONNX's STFT needs opset 17 or later; export with opset >= 17 (asked: {ctx.opset})")
        (x,) = ins
        rank = len(ctx.shapes[x])
        signal = ctx.unsqueeze(x, [0] if rank == 1 else [])[0]
        if center:
            pad = fft_length // 2
            signal = ctx.node("Pad", [signal, ctx.int64s([0, pad, 0, pad])], mode="reflect")[0]
        signal = ctx.unsqueeze(signal, [2])[0]  # (batch, samples, 1): a real signal
        dtype = ctx.dtype_of(x)
        spectrum = ctx.node(
            "STFT",
            [
                signal,
                ctx.const(np.asarray(sequence_stride, np.int64)),
                ctx.const(stft_window(window, sequence_length, fft_length, dtype)),
                ctx.const(np.asarray(fft_length, np.int64)),
            ],
            onesided=1,  # the default, but ONNX's shape inference assumes two-sided without it
        )[0]
        parts = ctx.node("Split", [spectrum, ctx.int64s([1, 1])], 2, axis=-1)
        squeeze = [3] if rank == 2 else [0, 3]
        for part, out in zip(parts, outs):
            ctx.squeeze(part, squeeze, [out])


STFT_PRIM = STFT()


@top_level_op("STFT")
def stft(x, sequence_length, sequence_stride, fft_length, window="hann", center=True):
    """Keras' ``ops.stft``: ``(real, imag)``, each ``(..., frames, fft_length // 2 + 1)``."""
    if fft_length < sequence_length:
        raise ValueError(
            "`fft_length` must equal or larger than `sequence_length`. "
            f"Received: sequence_length={sequence_length}, fft_length={fft_length}"
        )
    if window is not None and not isinstance(window, str):
        window = tuple(float(v) for v in np.asarray(window).ravel())
    attrs = dict(
        sequence_length=int(sequence_length),
        sequence_stride=int(sequence_stride),
        fft_length=int(fft_length),
        window=window,
        center=bool(center),
    )
    stft_window(window, attrs["sequence_length"], attrs["fft_length"], "float32")  # validates the window now
    return tuple(apply(STFT_PRIM, [_tensor(x)], **attrs))


class Arctan2(Primitive):
    """``arctan2(y, x)``, elementwise with broadcasting, in ``(-pi, pi]``."""

    name = "arctan2"
    elementwise = True

    def infer(self, specs):
        y, x = specs
        if y.dtype != x.dtype or y.dtype not in ("float16", "float32", "float64"):
            raise ValueError(f"`arctan2` needs two float operands of one dtype. Received: {y.dtype} and {x.dtype}.")
        try:
            shape = broadcast_shapes(y.shape, x.shape)
        except ValueError:
            raise ValueError(
                f"Operands of `arctan2` could not be broadcast together. Received: shapes {y.shape} and {x.shape}."
            ) from None
        return [TensorSpec(shape, y.dtype)]

    def forward(self, y, x):
        return np.arctan2(y, x)

    def vjp(self, cotangents, inputs, outputs):
        (g,) = cotangents
        y, x = inputs
        norm = np.square(x) + np.square(y)
        norm = np.where(norm == 0, 1, norm)
        return [unbroadcast(g * x / norm, y.shape).astype(y.dtype), unbroadcast(-g * y / norm, x.shape).astype(x.dtype)]

    def to_onnx(self, ctx, ins, outs):
        y, x = ins
        dtype = ctx.dtype_of(y)

        def c(value):
            return ctx.const(np.asarray(value, dtype))

        zero = c(0)
        x_zero = ctx.node("Equal", [x, zero])[0]
        safe_x = ctx.node("Where", [x_zero, c(1), x])[0]
        base = ctx.node("Atan", [ctx.node("Div", [y, safe_x])[0]])[0]
        y_nonnegative = ctx.node("GreaterOrEqual", [y, zero])[0]
        turn = ctx.node("Where", [y_nonnegative, c(np.pi), c(-np.pi)])[0]
        left = ctx.node("Add", [base, turn])[0]  # x < 0: the quotient's angle is off by half a turn
        axis = ctx.node("Mul", [ctx.node("Sign", [y])[0], c(np.pi / 2)])[0]  # x == 0: +-pi/2 or 0
        x_positive = ctx.node("Greater", [x, zero])[0]
        off_axis = ctx.node("Where", [x_positive, base, left])[0]
        ctx.node("Where", [x_zero, axis, off_axis], outs)


ARCTAN2 = Arctan2()


@top_level_op("Arctan2")
def arctan2(x1, x2):
    """Keras' ``ops.arctan2``: the angle of the point ``(x2, x1)``, elementwise."""
    return apply(ARCTAN2, [_tensor(x1), _tensor(x2)])[0]
