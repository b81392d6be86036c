"""STFTSpectrogram and MelSpectrogram: against real Keras (same inputs, Keras' weights), a
``.keras`` file Keras wrote, ONNX Runtime, finite differences, and closed forms."""

import numpy as np
import pytest

import irtool
from irtool.ops.signal import stft

from ..harness import assert_onnx_parity, keras_parity, layers_from, require_keras, run_layer_test

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

RNG = np.random.default_rng(2024)
# Float32 FFTs (torch's, NumPy's) and convolutions differ by rounding only; the log and decibel
# outputs are of order 1-100, so 1e-4 is a few float32 ulps of the sums.
ATOL = RTOL = 1e-4
# ONNX Runtime's STFT is an FFT for power-of-two lengths (within 1e-4 here too) but a float32 DFT
# otherwise, measured 20-100x further from a float64 reference than NumPy's float32 FFT (1.5e-4
# absolute on bins of order 10 for a 100-point transform): the decibels then differ by up to 1e-3.
ONNX_TOL_NOT_POWER_OF_TWO = 2e-3


def signal(*shape):
    return RNG.standard_normal(shape).astype("float32")


def _compare(name, shape, kwargs, x):
    def build(k):
        inputs = k.Input(shape)
        return k.Model(inputs, getattr(k.layers, name)(**kwargs)(inputs))

    fft = kwargs.get("fft_length", 2048)
    onnx_tol = ATOL if name == "STFTSpectrogram" or fft & (fft - 1) == 0 else ONNX_TOL_NOT_POWER_OF_TWO
    ours, theirs = keras_parity(
        build,
        x,
        atol=ATOL,
        rtol=RTOL,
        seed=None,
        weight_paths=True,
        weight_shapes=True,
        trainable=True,
        output_shape=True,
        names=True,
        configs=layers_from("audio_preprocessing"),
        config_ignore=(),
        config_nested="exact",
    )
    assert_onnx_parity(ours, x, atol=onnx_tol, rtol=onnx_tol)
    return ours, theirs


STFT_CASES = [
    {"mode": "log", "frame_length": 16, "frame_step": 5, "fft_length": 32},
    {"mode": "magnitude", "frame_length": 16},
    {"mode": "psd", "frame_length": 12, "frame_step": 4, "window": "hamming", "scaling": "spectrum"},
    {"mode": "real", "frame_length": 16, "frame_step": 3, "window": None, "scaling": None},
    {"mode": "imag", "frame_length": 16, "frame_step": 3, "periodic": True},
    {"mode": "angle", "frame_length": 16, "frame_step": 7, "window": "blackman"},
    {"mode": "stft", "frame_length": 8, "frame_step": 4, "fft_length": 16, "padding": "same"},
    {"mode": "log", "frame_length": 16, "frame_step": 5, "padding": "same", "expand_dims": True},
    {"mode": "psd", "frame_length": 16, "data_format": "channels_first"},
    {"mode": "magnitude", "frame_length": 15, "frame_step": 4, "data_format": "channels_first", "expand_dims": True},
]


@pytest.mark.parametrize("kwargs", STFT_CASES)
def test_stft_spectrogram_matches_keras(kwargs):
    require_keras()
    shape = (2, 60) if kwargs.get("data_format") == "channels_first" else (60, 2)
    ours, theirs = _compare("STFTSpectrogram", shape, kwargs, signal(3, *shape))
    # Keras' DFT kernels, as irtool's STFT initializer makes them (same windows, same scaling).
    for mine, keras_weight in zip(ours.layers[1].weights, theirs.layers[1].weights):
        np.testing.assert_allclose(mine.numpy(), np.asarray(keras_weight.numpy()), atol=2e-7)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"fft_length": 64, "sequence_stride": 16, "num_mel_bins": 10, "sampling_rate": 8000},
        {"fft_length": 64, "sequence_stride": 10, "sequence_length": 40, "window": "hamming", "num_mel_bins": 12},
        {"fft_length": 32, "sequence_stride": 8, "num_mel_bins": 8, "power_to_db": False, "mag_exp": 1.0},
        {
            "fft_length": 32,
            "sequence_stride": 8,
            "num_mel_bins": 8,
            "top_db": 20.0,
            "ref_power": 2.0,
            "min_freq": 100.0,
        },
        {"fft_length": 48, "sequence_stride": 7, "window": None, "num_mel_bins": 6, "max_freq": 3000.0},
    ],
)
def test_mel_spectrogram_matches_keras(kwargs):
    require_keras()
    _compare("MelSpectrogram", (400,), kwargs, signal(2, 400))


def test_stft_matches_torch_stft():
    """``ops.stft`` against ``torch.stft`` itself (what Keras' torch backend calls)."""
    require_keras()
    import torch

    x = signal(2, 50)
    for length, stride, fft, window in [(16, 4, 16, "hann"), (12, 5, 16, "hamming"), (10, 3, 16, None)]:
        real, imag = stft(x, length, stride, fft, window)
        samples = {"hann": torch.hann_window, "hamming": torch.hamming_window}
        win = samples[window](length, periodic=True) if window else torch.ones(length)
        want = torch.stft(
            torch.tensor(x), n_fft=fft, hop_length=stride, win_length=length, window=win, return_complex=True
        ).transpose(-2, -1)
        np.testing.assert_allclose(real, want.real.numpy(), atol=2e-6)
        np.testing.assert_allclose(imag, want.imag.numpy(), atol=2e-6)


def test_stft_of_a_pure_tone_peaks_at_its_bin():
    """A closed form: a cosine of bin k (boxcar window, no centring) has magnitude N/2 at bin k."""
    n, k = 16, 3
    x = np.cos(2 * np.pi * k * np.arange(64) / n).astype("float32")
    real, imag = stft(x, n, n, n, window=None, center=False)
    magnitude = np.hypot(real, imag)
    np.testing.assert_allclose(magnitude[:, k], n / 2, rtol=1e-5)
    np.testing.assert_allclose(np.delete(magnitude, k, axis=1), 0, atol=1e-4)


def test_keras_written_file_loads_predicts_and_exports(tmp_path):
    keras = require_keras()
    keras.utils.set_random_seed(3)
    audio = keras.Input((300,))
    mel = keras.layers.MelSpectrogram(fft_length=64, sequence_stride=16, num_mel_bins=12, name="mel")(audio)
    frames = keras.layers.Reshape((300, 1))(audio)
    spec = keras.layers.STFTSpectrogram(mode="log", frame_length=32, frame_step=8, trainable=False, name="stft")(frames)
    dense = keras.layers.Dense(4)(spec)
    theirs = keras.Model(audio, [mel, dense])
    # Train the spectrogram kernels away from the initializer's values, so loading must read them.
    weights = theirs.get_weights()
    theirs.set_weights([w + 0.01 * RNG.standard_normal(w.shape).astype(w.dtype) for w in weights])
    theirs.save(tmp_path / "audio.keras")

    ours = irtool.models.load_model(tmp_path / "audio.keras")
    x = signal(3, 300)
    for got, want in zip(ours.predict(x, verbose=0), theirs.predict(x, verbose=0)):
        np.testing.assert_allclose(got, want, atol=ATOL, rtol=RTOL)
    layer = ours.get_layer("stft")
    assert [w.path for w in layer.weights] == ["stft/real_kernel", "stft/imag_kernel"]
    assert not layer.trainable and not layer.trainable_weights
    assert_onnx_parity(ours, x, atol=ATOL, rtol=RTOL)


@pytest.mark.parametrize("mode", ["log", "psd", "angle", "stft"])
def test_stft_spectrogram_layer_gradients_and_round_trips(mode):
    """Input and kernel gradients by finite differences, config and ``.keras`` round trips, ONNX."""
    run_layer_test(
        irtool.layers.STFTSpectrogram,
        {"mode": mode, "frame_length": 8, "frame_step": 3, "fft_length": 8},
        input_data=signal(2, 20, 2),
        expected_output_shape=(None, 5, 2 * 5 * (2 if mode == "stft" else 1)),  # 5 frames, 5 bins, 2 channels
        expected_num_trainable_weights=2,
        atol=ATOL,
        rtol=RTOL,
    )


def test_mel_spectrogram_layer_gradients_and_round_trips():
    # No decibels: the top_db floor (a max over the batch) has kinks a finite difference can hit.
    run_layer_test(
        irtool.layers.MelSpectrogram,
        {"fft_length": 16, "sequence_stride": 4, "num_mel_bins": 5, "power_to_db": False, "sampling_rate": 800},
        input_data=signal(2, 40),
        expected_output_shape=(None, 5, 11),
        expected_num_trainable_weights=0,
        atol=ATOL,
        rtol=RTOL,
    )


def test_arguments_are_checked_as_in_keras():
    layers = irtool.layers
    with pytest.raises(ValueError, match="frame_step"):
        layers.STFTSpectrogram(frame_length=8, frame_step=9)
    with pytest.raises(ValueError, match="fft_length"):
        layers.STFTSpectrogram(frame_length=8, fft_length=4)
    with pytest.raises(ValueError, match="mode=spectrum"):
        layers.STFTSpectrogram(mode="spectrum")
    with pytest.raises(ValueError, match="Unsupported window 'kaiser'"):
        layers.STFTSpectrogram(window="kaiser")
    with pytest.raises(ValueError, match="`sequence_length`=64, `fft_length`=32"):
        layers.MelSpectrogram(fft_length=32, sequence_length=64)
    with pytest.raises(ValueError, match="ndim=3"):
        layers.STFTSpectrogram()(irtool.Input((50,)))
    with pytest.raises(ValueError, match=r"reflect-pads by fft_length // 2 = 32 .* \(None, 20\)"):
        layers.MelSpectrogram(fft_length=64)(irtool.Input((20,)))


def test_stft_and_arctan2_as_top_level_ops():
    """Keras' ``ops.stft``/``ops.arctan2`` on symbolic tensors outside a layer: recorded as raw
    ops (Keras' ``STFT``/``Arctan2``), run and exported like any."""
    inputs = irtool.Input((64,))
    real, imag = irtool.ops.stft(inputs, 16, 8, 16, center=False)
    # Not the DC and Nyquist bins, nor (center=False) a reflect-padded first frame: their
    # imaginary parts are zero, whose rounding (+-0 or +-1e-8) puts a negative real part's angle
    # at either end of (-pi, pi].
    model = irtool.Model(inputs, irtool.ops.arctan2(imag[:, :, 1:-1], real[:, :, 1:-1]))
    assert [type(op).__name__ for op in model.operations[1:]] == ["STFT", "GetItem", "GetItem", "Arctan2"]
    x = signal(2, 64)
    want_real, want_imag = stft(x, 16, 8, 16, center=False)
    want = np.arctan2(want_imag[:, :, 1:-1], want_real[:, :, 1:-1])
    np.testing.assert_allclose(model.predict(x, verbose=0), want, atol=1e-6)
    assert_onnx_parity(model, x, atol=ATOL, rtol=RTOL)


def test_export_below_opset_17_refuses_the_fft():
    inputs = irtool.Input((100,))
    model = irtool.Model(inputs, irtool.layers.MelSpectrogram(fft_length=32, sequence_stride=8, num_mel_bins=4)(inputs))
    with pytest.raises(ValueError, match="Cannot lower 'stft' in 'mel_spectrogram'.*opset 17"):
        irtool.onnx.to_onnx(model, opset=16)
