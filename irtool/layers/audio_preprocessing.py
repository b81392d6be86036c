"""Keras 3.15's audio layers: ``STFTSpectrogram`` and ``MelSpectrogram``.

``STFTSpectrogram`` is, as in Keras, a strided 1-D convolution of each input channel with
``real_kernel`` and ``imag_kernel`` (the DFT times a window, from the ``STFT`` initializer):
trainable weights by default, so the layer is differentiable in its input and its kernels, and
the export is an ONNX ``Conv`` per kernel. ``MelSpectrogram`` has no weights: it is the power
of ``ops.stft`` (an FFT, which lowers to ONNX's ``STFT``) through a mel filter bank, in
decibels, as Keras' torch backend computes it.
"""

from __future__ import annotations

import math
import warnings

import numpy as np

from irtool import initializers, ops
from irtool.layers.input_spec import InputSpec
from irtool.layers.layer import Layer
from irtool.ops.conv_utils import standardize_data_format
from irtool.ops.signal import arctan2, get_window, stft

_MODES = ("log", "magnitude", "psd", "real", "imag", "angle", "stft")
_EPSILON = 1e-7  # Keras' backend.epsilon(), which clamps the power before sqrt and log


class STFTSpectrogram(Layer):
    """Spectrogram of each channel of ``(batch, time, channels)`` signals (``channels_last``).

    ``mode`` picks the output: ``"log"`` (default) and ``"magnitude"`` of the transform,
    ``"psd"`` (the power, with the bins between DC and Nyquist doubled), ``"real"``, ``"imag"``,
    ``"angle"`` or ``"stft"`` (real then imaginary bins). Frames are ``frame_length`` samples
    every ``frame_step`` (default ``frame_length // 2``), with ``fft_length`` (default the next
    power of two) giving ``fft_length // 2 + 1`` bins per channel; ``expand_dims`` keeps the
    channels as their own axis (an image) instead of concatenating their bins.

    >>> layer = STFTSpectrogram(mode="log", frame_length=256, frame_step=128, fft_length=512)
    >>> layer(np.zeros((3, 16000, 1), "float32")).shape
    (3, 124, 257)
    """

    def __init__(
        self,
        mode="log",
        frame_length=256,
        frame_step=None,
        fft_length=None,
        window="hann",
        periodic=False,
        scaling="density",
        padding="valid",
        expand_dims=False,
        data_format=None,
        **kwargs,
    ):
        if frame_step is not None and (frame_step > frame_length or frame_step < 1):
            raise ValueError(
                "`frame_step` should be a positive integer not greater than `frame_length`. "
                f"Received frame_step={frame_step}, frame_length={frame_length}"
            )
        if fft_length is not None and fft_length < frame_length:
            raise ValueError(
                "`fft_length` should be not less than `frame_length`. "
                f"Received fft_length={fft_length}, frame_length={frame_length}"
            )
        if fft_length is not None and (fft_length & -fft_length) != fft_length:
            warnings.warn(
                f"`fft_length` is recommended to be a power of two. Received fft_length={fft_length}", stacklevel=2
            )
        if mode not in _MODES:
            raise ValueError(f"Output mode is invalid, it must be one of {', '.join(_MODES)}. Received: mode={mode}")
        if scaling is not None and scaling not in ("density", "spectrum"):
            raise ValueError(
                f"Scaling is invalid, it must be `None`, 'density' or 'spectrum'. Received scaling={scaling}"
            )
        if padding not in ("valid", "same"):
            raise ValueError(f"Padding is invalid, it should be 'valid', 'same'. Received: padding={padding}")
        if isinstance(window, str):
            get_window(window, 1, periodic)  # an unknown window fails now, as in Keras
        super().__init__(**kwargs)
        self.mode = mode
        self.frame_length = frame_length
        self.frame_step = frame_step
        self._frame_step = frame_step or frame_length // 2
        self.fft_length = fft_length
        self._fft_length = fft_length or 2 ** int(math.ceil(math.log2(frame_length)))
        self.window = window
        self.periodic = periodic
        self.scaling = scaling
        self.padding = padding
        self.expand_dims = expand_dims
        self.data_format = standardize_data_format(data_format)
        self.input_spec = InputSpec(ndim=3)

    def build(self, input_shape):
        shape = (self.frame_length, 1, self._fft_length // 2 + 1)
        # Keras' weights, names and order: a mode that needs only one side creates only that one.
        if self.mode != "imag":
            self.real_kernel = self.add_weight(
                name="real_kernel",
                shape=shape,
                initializer=initializers.STFT("real", self.window, self.scaling, self.periodic),
            )
        if self.mode != "real":
            self.imag_kernel = self.add_weight(
                name="imag_kernel",
                shape=shape,
                initializer=initializers.STFT("imag", self.window, self.scaling, self.periodic),
            )
        self.built = True

    def _transform(self, signal, kernel):
        """``(batch, frames, bins)``: one channel ``(batch, time, 1)`` convolved with ``kernel``."""
        kernel = ops.cast(kernel, signal.dtype)
        return ops.conv(signal, kernel, strides=self._frame_step, padding=self.padding, data_format="channels_last")

    def _channel_spectrogram(self, signal):
        """The spectrogram of one channel, ``(batch, frames, bins)`` (``2 * bins`` for "stft")."""
        real = self._transform(signal, self.real_kernel) if self.mode != "imag" else None
        imag = self._transform(signal, self.imag_kernel) if self.mode != "real" else None
        if self.mode == "real":
            return real
        if self.mode == "imag":
            return imag
        if self.mode == "angle":
            return arctan2(imag, real)
        if self.mode == "stft":
            return ops.concatenate([real, imag], axis=-1)
        power = ops.add(ops.square(real), ops.square(imag))
        if self.mode == "psd":
            # One-sided power: every bin but DC and Nyquist also stands for its mirror image.
            inner = ops.pad(power[:, :, 1:-1], [[0, 0], [0, 0], [1, 1]])
            return ops.add(power, inner)
        magnitude = ops.sqrt(ops.maximum(power, _EPSILON))
        if self.mode == "magnitude":
            return magnitude
        return ops.log(ops.maximum(magnitude, _EPSILON))

    def call(self, inputs):
        if inputs.dtype not in ("float16", "float32", "float64"):
            raise TypeError(
                f"Invalid input type. Expected `float16`, `float32` or `float64`. Received: input type={inputs.dtype}"
            )
        channels_last = self.data_format == "channels_last"
        channels = inputs.shape[-1 if channels_last else 1]
        if channels is None:
            raise ValueError(
                f"Layer '{self.name}' needs a known number of input channels. Received: input shape={inputs.shape}"
            )
        # Keras folds the channels into the batch; a loop over the (static) channels is the same
        # computation without reshaping an unknown batch or time axis.
        outputs = []
        for c in range(channels):
            signal = inputs[:, :, c : c + 1] if channels_last else ops.transpose(inputs[:, c : c + 1, :], (0, 2, 1))
            outputs.append(self._channel_spectrogram(signal))
        if self.expand_dims:
            if channels_last:
                return ops.stack(outputs, axis=-1)  # (batch, frames, bins, channels)
            return ops.stack(outputs, axis=1)  # (batch, channels, frames, bins)
        if channels_last:
            return outputs[0] if channels == 1 else ops.concatenate(outputs, axis=-1)  # channel-major bins
        outputs = [ops.transpose(o, (0, 2, 1)) for o in outputs]
        return outputs[0] if channels == 1 else ops.concatenate(outputs, axis=1)

    def get_config(self):
        return {
            **super().get_config(),
            "mode": self.mode,
            "frame_length": self.frame_length,
            "frame_step": self.frame_step,
            "fft_length": self.fft_length,
            "window": self.window,
            "periodic": self.periodic,
            "scaling": self.scaling,
            "padding": self.padding,
            "data_format": self.data_format,
            "expand_dims": self.expand_dims,
        }


# The HTK mel scale (Keras' constants).
_MEL_BREAK_FREQUENCY_HERTZ = 700.0
_MEL_HIGH_FREQUENCY_Q = 1127.0


def _hertz_to_mel(frequencies):
    return np.float32(_MEL_HIGH_FREQUENCY_Q) * np.log(
        np.float32(1.0) + frequencies / np.float32(_MEL_BREAK_FREQUENCY_HERTZ)
    )


def linear_to_mel_weight_matrix(num_mel_bins, num_spectrogram_bins, sampling_rate, lower_edge_hertz, upper_edge_hertz):
    """``(num_spectrogram_bins, num_mel_bins)`` float32 triangular filters, Keras' (TensorFlow's)
    HTK-style matrix: bands evenly spaced in mel between the edges, the DC bin left out."""
    f32 = np.float32
    nyquist = f32(sampling_rate) / f32(2.0)
    linear = np.linspace(f32(0.0), nyquist, num_spectrogram_bins, dtype=np.float32)[1:]
    spectrogram_bins_mel = _hertz_to_mel(linear)[:, None]
    edges = np.linspace(
        _hertz_to_mel(f32(lower_edge_hertz)), _hertz_to_mel(f32(upper_edge_hertz)), num_mel_bins + 2, dtype=np.float32
    )
    lower, center, upper = edges[None, :-2], edges[None, 1:-1], edges[None, 2:]
    lower_slopes = (spectrogram_bins_mel - lower) / (center - lower)
    upper_slopes = (upper - spectrogram_bins_mel) / (upper - center)
    weights = np.maximum(f32(0.0), np.minimum(lower_slopes, upper_slopes))
    return np.pad(weights, [[1, 0], [0, 0]]).astype(np.float32)


class MelSpectrogram(Layer):
    """Mel-frequency spectrogram of ``(batch, samples)`` (or ``(samples,)``) audio, shaped
    ``(batch, num_mel_bins, frames)``: ``|stft| ** mag_exp`` (centred frames of
    ``sequence_length`` samples every ``sequence_stride``, FFT of ``fft_length``), through
    ``num_mel_bins`` triangular filters between ``min_freq`` and ``max_freq`` (default
    ``sampling_rate / 2``), then with ``power_to_db`` in decibels relative to ``ref_power``,
    floored at ``min_power`` and at ``top_db`` below the largest value of the whole batch (as
    Keras does, the maximum is over the batch, not per example).

    >>> MelSpectrogram(fft_length=512, sequence_stride=256, num_mel_bins=40)(np.zeros((2, 16000), "float32")).shape
    (2, 40, 63)
    """

    def __init__(
        self,
        fft_length=2048,
        sequence_stride=512,
        sequence_length=None,
        window="hann",
        sampling_rate=16000,
        num_mel_bins=128,
        min_freq=20.0,
        max_freq=None,
        power_to_db=True,
        top_db=80.0,
        mag_exp=2.0,
        min_power=1e-10,
        ref_power=1.0,
        **kwargs,
    ):
        self.fft_length = fft_length
        self.sequence_stride = sequence_stride
        self.sequence_length = sequence_length or fft_length
        if self.fft_length < self.sequence_length:
            raise ValueError(
                "`fft_length` must be greater than or equal to  `sequence_length`. Received: "
                f"`sequence_length`={self.sequence_length}, `fft_length`={self.fft_length}."
            )
        self.window = window
        self.sampling_rate = sampling_rate
        self.num_mel_bins = num_mel_bins
        self.min_freq = min_freq
        self.max_freq = max_freq or int(sampling_rate / 2)
        self.power_to_db = power_to_db
        self.top_db = top_db
        self.mag_exp = mag_exp
        self.min_power = min_power
        self.ref_power = ref_power
        super().__init__(**kwargs)
        self.built = True

    def call(self, inputs):
        dtype = self.dtype if self.dtype in ("float32", "float64") else "float32"
        x = ops.cast(inputs, dtype)
        real, imag = stft(x, self.sequence_length, self.sequence_stride, self.fft_length, self.window, center=True)
        spectrum = ops.power(ops.sqrt(ops.add(ops.square(real), ops.square(imag))), float(self.mag_exp))
        matrix = linear_to_mel_weight_matrix(
            self.num_mel_bins, self.fft_length // 2 + 1, self.sampling_rate, self.min_freq, self.max_freq
        )
        outputs = ops.matmul(spectrum, matrix.astype(dtype))
        if self.power_to_db:
            outputs = self._decibels(outputs, dtype)
        rank = len(outputs.shape)
        outputs = ops.transpose(outputs, (*range(rank - 2), rank - 1, rank - 2))
        return ops.cast(outputs, self.dtype)

    def _decibels(self, power, dtype):
        to_db = np.asarray(10.0 / np.log(10.0), dtype)  # 10 * log10(p) = 10 / ln(10) * ln(p)
        log_spec = ops.multiply(ops.log(ops.maximum(power, np.asarray(self.min_power, dtype))), to_db)
        reference = 10.0 * np.log10(np.maximum(abs(self.ref_power), self.min_power))
        log_spec = ops.subtract(log_spec, np.asarray(reference, dtype))
        floor = ops.subtract(ops.max(log_spec), np.asarray(self.top_db, dtype))
        return ops.maximum(log_spec, floor)

    def get_config(self):
        return {
            **super().get_config(),
            "fft_length": self.fft_length,
            "sequence_stride": self.sequence_stride,
            "sequence_length": self.sequence_length,
            "window": self.window,
            "sampling_rate": self.sampling_rate,
            "num_mel_bins": self.num_mel_bins,
            "min_freq": self.min_freq,
            "max_freq": self.max_freq,
            "power_to_db": self.power_to_db,
            "top_db": self.top_db,
            "mag_exp": self.mag_exp,
            "min_power": self.min_power,
            "ref_power": self.ref_power,
        }
