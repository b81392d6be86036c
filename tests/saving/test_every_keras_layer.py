"""Every Keras 3 layer class, in a `.keras` file written by real Keras, loads in irtool and gives
Keras' outputs in irtool's `predict` and in ONNX Runtime (or its export is refused by name).

The table below holds one small model per layer class; `test_the_table_covers_every_keras_layer`
fails when Keras gains a layer class the table does not name. Keras' weights are randomised before
saving, so a weight that irtool reads in the wrong place cannot hide behind an initialiser.
"""

from __future__ import annotations

import inspect
import json
import warnings
import zipfile
import zlib

import numpy as np
import onnxruntime as ort
import pytest

import irtool

from ..harness import require_keras

keras = require_keras()
pytestmark = pytest.mark.filterwarnings("ignore")

#: Backend-specific wrappers: refused on load (tests/saving/test_backend_layers.py).
BACKEND_WRAPPERS = {"JaxLayer", "FlaxLayer", "TorchModuleWrapper", "TFSMLayer"}
#: Layers whose export irtool refuses with a message naming the layer (README: "Exports irtool refuses").
EXPORT_REFUSED = {"Hashing", "HashedCrossing"}


def floats(*shape):
    return ("float", shape)


def image(*shape):
    """Pixel values in [0, 255], the default `value_range` of Keras' image layers."""
    return ("image", shape)


def ints(high, *shape):
    return ("int", shape, high)


def strings(*shape):
    return ("string", shape)


def single(make, *inputs):
    """A model applying the layer ``make(k)`` to its inputs (one or a list)."""

    def build(k):
        tensors = [_input(k, spec, i) for i, spec in enumerate(inputs)]
        layer = make(k)
        outputs = layer(tensors if len(tensors) > 1 else tensors[0])
        return k.Model(tensors, outputs)

    build.inputs = inputs
    build.layer = make
    return build


def two_args(make, query, value):
    """A model calling the layer as ``layer(query, value)`` (attention layers)."""

    def build(k):
        q, v = _input(k, query, 0), _input(k, value, 1)
        return k.Model([q, v], make(k)(q, v))

    build.inputs = (query, value)
    return build


def _input(k, spec, index):
    kind, shape = spec[0], spec[1]
    dtype = {"float": "float32", "image": "float32", "int": "int32", "string": "string"}[kind]
    return k.Input(shape=shape, dtype=dtype, name=f"in{index}")


def _scale_layer(k):
    """A user layer subclassing `Layer` with a weight, registered in both libraries."""

    class Scale(k.layers.Layer):
        def build(self, input_shape):
            self.w = self.add_weight(shape=(input_shape[-1],), initializer="ones", name="w")

        def call(self, x):
            return x * self.w

    return Scale


def _wrapper_layer(k):
    """A user `Wrapper` subclass: the wrapped layer's output, doubled."""

    class Twice(k.layers.Wrapper):
        def call(self, x):
            return self.layer(x) * 2.0

    return Twice


L = lambda name, *args, **kwargs: lambda k: getattr(k.layers, name)(*args, **kwargs)  # noqa: E731

SEQ = floats(5, 4)
IMG = image(8, 8, 3)
VOL = floats(4, 4, 4, 2)

MODELS = {
    "Activation": single(L("Activation", "relu"), floats(4)),
    "ActivityRegularization": single(L("ActivityRegularization", l1=0.01), floats(4)),
    "AdaptiveAveragePooling1D": single(L("AdaptiveAveragePooling1D", 2), floats(6, 3)),
    "AdaptiveAveragePooling2D": single(L("AdaptiveAveragePooling2D", (2, 3)), floats(6, 6, 2)),
    "AdaptiveAveragePooling3D": single(L("AdaptiveAveragePooling3D", 2), VOL),
    "AdaptiveMaxPooling1D": single(L("AdaptiveMaxPooling1D", 2), floats(6, 3)),
    "AdaptiveMaxPooling2D": single(L("AdaptiveMaxPooling2D", (2, 3)), floats(6, 6, 2)),
    "AdaptiveMaxPooling3D": single(L("AdaptiveMaxPooling3D", 2), VOL),
    "Add": single(L("Add"), floats(4), floats(4)),
    "AdditiveAttention": single(L("AdditiveAttention"), floats(3, 4), floats(5, 4)),
    "AlphaDropout": single(L("AlphaDropout", 0.3), floats(4)),
    "Attention": single(L("Attention"), floats(3, 4), floats(5, 4)),
    "AugMix": single(L("AugMix"), IMG),
    "AutoContrast": single(L("AutoContrast"), IMG),
    "Average": single(L("Average"), floats(4), floats(4)),
    "AveragePooling1D": single(L("AveragePooling1D", 2), floats(6, 3)),
    "AveragePooling2D": single(L("AveragePooling2D", 2), floats(6, 6, 2)),
    "AveragePooling3D": single(L("AveragePooling3D", 2), VOL),
    "BatchNormalization": single(L("BatchNormalization"), floats(4)),
    "Bidirectional": single(lambda k: k.layers.Bidirectional(k.layers.LSTM(3, return_sequences=True)), SEQ),
    "CategoryEncoding": single(L("CategoryEncoding", 6, output_mode="multi_hot"), ints(6, 3)),
    "CenterCrop": single(L("CenterCrop", 4, 5), IMG),
    "Concatenate": single(L("Concatenate"), floats(4), floats(3)),
    "ContrastLimitedAdaptiveHistogramEqualization": single(
        L("ContrastLimitedAdaptiveHistogramEqualization", tile_grid_size=(2, 2)), IMG
    ),
    "Conv1D": single(L("Conv1D", 3, 2), floats(6, 4)),
    "Conv1DTranspose": single(L("Conv1DTranspose", 3, 2, strides=2), floats(6, 4)),
    "Conv2D": single(L("Conv2D", 3, 2, padding="same"), floats(6, 6, 2)),
    "Conv2DTranspose": single(L("Conv2DTranspose", 3, 2, strides=2), floats(5, 5, 2)),
    "Conv3D": single(L("Conv3D", 3, 2), VOL),
    "Conv3DTranspose": single(L("Conv3DTranspose", 3, 2), VOL),
    "ConvLSTM1D": single(L("ConvLSTM1D", 2, 3, padding="same", return_sequences=True), floats(3, 6, 2)),
    "ConvLSTM2D": single(L("ConvLSTM2D", 2, 3), floats(3, 5, 5, 2)),
    "ConvLSTM3D": single(L("ConvLSTM3D", 2, 2), floats(2, 4, 4, 4, 1)),
    "Cropping1D": single(L("Cropping1D", 1), floats(6, 3)),
    "Cropping2D": single(L("Cropping2D", ((1, 0), (0, 2))), floats(6, 6, 2)),
    "Cropping3D": single(L("Cropping3D", 1), VOL),
    "CutMix": single(L("CutMix"), IMG),
    "Dense": single(L("Dense", 3, activation="tanh"), floats(4)),
    "DepthwiseConv1D": single(L("DepthwiseConv1D", 2, depth_multiplier=2), floats(6, 3)),
    "DepthwiseConv2D": single(L("DepthwiseConv2D", 2), floats(6, 6, 3)),
    "Discretization": single(L("Discretization", bin_boundaries=[-0.5, 0.0, 0.5]), floats(4)),
    "Dot": single(L("Dot", axes=1), floats(4), floats(4)),
    "Dropout": single(L("Dropout", 0.5), floats(4)),
    "ELU": single(L("ELU"), floats(4)),
    "EinsumDense": single(L("EinsumDense", "ab,bc->ac", output_shape=3, bias_axes="c"), floats(4)),
    "Embedding": single(L("Embedding", 10, 3), ints(10, 5)),
    "Equalization": single(L("Equalization"), IMG),  # see _saved_by_keras
    "Flatten": single(L("Flatten"), floats(3, 2)),
    "GRU": single(L("GRU", 3), SEQ),
    "GRUCell": single(lambda k: k.layers.RNN(k.layers.GRUCell(3), return_sequences=True), SEQ),
    "GaussianDropout": single(L("GaussianDropout", 0.3), floats(4)),
    "GaussianNoise": single(L("GaussianNoise", 0.3), floats(4)),
    "GlobalAveragePooling1D": single(L("GlobalAveragePooling1D"), floats(6, 3)),
    "GlobalAveragePooling2D": single(L("GlobalAveragePooling2D"), floats(6, 6, 2)),
    "GlobalAveragePooling3D": single(L("GlobalAveragePooling3D"), VOL),
    "GlobalMaxPooling1D": single(L("GlobalMaxPooling1D"), floats(6, 3)),
    "GlobalMaxPooling2D": single(L("GlobalMaxPooling2D"), floats(6, 6, 2)),
    "GlobalMaxPooling3D": single(L("GlobalMaxPooling3D"), VOL),
    "GroupNormalization": single(L("GroupNormalization", groups=2), floats(6, 4)),
    "GroupQueryAttention": two_args(
        L("GroupQueryAttention", head_dim=2, num_query_heads=2, num_key_value_heads=1), floats(3, 4), floats(5, 4)
    ),
    "HashedCrossing": single(L("HashedCrossing", 5), ints(100, 1), ints(100, 1)),
    "Hashing": single(L("Hashing", 4), ints(100, 3)),
    "Identity": single(L("Identity"), floats(4)),
    "InputLayer": single(L("Identity"), floats(4)),
    "IntegerLookup": single(L("IntegerLookup", vocabulary=[3, 5, 7]), ints(9, 4)),
    "LSTM": single(L("LSTM", 3, return_state=True), SEQ),
    "LSTMCell": single(lambda k: k.layers.RNN(k.layers.LSTMCell(3), go_backwards=True), SEQ),
    "Lambda": single(lambda k: k.layers.Lambda(lambda x: x * 2.0 + 1.0), floats(4)),
    "Layer": single(lambda k: _scale_layer(k)(), floats(4)),
    "LayerNormalization": single(L("LayerNormalization"), floats(6, 4)),
    "LeakyReLU": single(L("LeakyReLU", negative_slope=0.2), floats(4)),
    "Masking": single(L("Masking", 0.0), SEQ),
    "MaxNumBoundingBoxes": single(L("MaxNumBoundingBoxes", 3), IMG),
    "MaxPooling1D": single(L("MaxPooling1D", 2), floats(6, 3)),
    "MaxPooling2D": single(L("MaxPooling2D", 2), floats(6, 6, 2)),
    "MaxPooling3D": single(L("MaxPooling3D", 2), VOL),
    "Maximum": single(L("Maximum"), floats(4), floats(4)),
    "MelSpectrogram": single(
        L("MelSpectrogram", fft_length=16, sequence_stride=4, sequence_length=8, num_mel_bins=6, sampling_rate=800),
        floats(64),
    ),
    "Minimum": single(L("Minimum"), floats(4), floats(4)),
    "MixUp": single(L("MixUp"), IMG),
    "MultiHeadAttention": two_args(L("MultiHeadAttention", num_heads=2, key_dim=2), floats(3, 4), floats(5, 4)),
    "Multiply": single(L("Multiply"), floats(4), floats(4)),
    "Normalization": single(L("Normalization", mean=[0.5, 1.0, -1.0, 2.0], variance=[1.0, 4.0, 0.25, 2.0]), floats(4)),
    "PReLU": single(L("PReLU"), floats(4)),
    "Permute": single(L("Permute", (2, 1)), floats(3, 2)),
    "Pipeline": single(lambda k: k.layers.Pipeline([k.layers.RandomFlip(), k.layers.Rescaling(1 / 255.0)]), IMG),
    "RMSNormalization": single(L("RMSNormalization"), floats(6, 4)),
    "RNN": single(lambda k: k.layers.RNN(k.layers.SimpleRNNCell(3), return_sequences=True), SEQ),
    "RandAugment": single(L("RandAugment"), IMG),
    "RandomBrightness": single(L("RandomBrightness", 0.2), IMG),
    "RandomColorDegeneration": single(L("RandomColorDegeneration", 0.5), IMG),
    "RandomColorJitter": single(L("RandomColorJitter", brightness_factor=0.2), IMG),
    "RandomContrast": single(L("RandomContrast", 0.2), IMG),
    "RandomCrop": single(L("RandomCrop", 4, 6), IMG),
    "RandomElasticTransform": single(L("RandomElasticTransform"), IMG),
    "RandomErasing": single(L("RandomErasing"), IMG),
    "RandomFlip": single(L("RandomFlip"), IMG),
    "RandomGaussianBlur": single(L("RandomGaussianBlur"), IMG),
    "RandomGrayscale": single(L("RandomGrayscale"), IMG),
    "RandomHue": single(L("RandomHue", 0.2), IMG),
    "RandomInvert": single(L("RandomInvert"), IMG),
    "RandomPerspective": single(L("RandomPerspective"), IMG),
    "RandomPosterization": single(L("RandomPosterization", (1, 4)), IMG),
    "RandomRotation": single(L("RandomRotation", 0.1), IMG),
    "RandomSaturation": single(L("RandomSaturation", 0.2), IMG),
    "RandomSharpness": single(L("RandomSharpness", 0.2), IMG),
    "RandomShear": single(L("RandomShear", x_factor=0.2), IMG),
    "RandomTranslation": single(L("RandomTranslation", 0.1, 0.1), IMG),
    "RandomZoom": single(L("RandomZoom", 0.1), IMG),
    "ReLU": single(L("ReLU", max_value=1.0), floats(4)),
    "RepeatVector": single(L("RepeatVector", 3), floats(4)),
    "Rescaling": single(L("Rescaling", 1 / 127.5, offset=-1.0), IMG),
    "Reshape": single(L("Reshape", (2, 3)), floats(6)),
    "Resizing": single(L("Resizing", 4, 5), IMG),
    "ReversibleEmbedding": single(L("ReversibleEmbedding", 10, 3), ints(10, 5)),
    "STFTSpectrogram": single(L("STFTSpectrogram", frame_length=8, frame_step=4, fft_length=8), floats(64, 1)),
    "SeparableConv1D": single(L("SeparableConv1D", 3, 2), floats(6, 4)),
    "SeparableConv2D": single(L("SeparableConv2D", 3, 2), floats(6, 6, 2)),
    "SimpleRNN": single(L("SimpleRNN", 3), SEQ),
    "SimpleRNNCell": single(lambda k: k.layers.RNN(k.layers.SimpleRNNCell(3)), SEQ),
    "Softmax": single(L("Softmax"), floats(4)),
    "Solarization": single(L("Solarization"), IMG),
    "SpatialDropout1D": single(L("SpatialDropout1D", 0.3), floats(6, 3)),
    "SpatialDropout2D": single(L("SpatialDropout2D", 0.3), floats(6, 6, 2)),
    "SpatialDropout3D": single(L("SpatialDropout3D", 0.3), VOL),
    "SpectralNormalization": single(lambda k: k.layers.SpectralNormalization(k.layers.Dense(3)), floats(4)),
    "StackedRNNCells": single(
        lambda k: k.layers.RNN(k.layers.StackedRNNCells([k.layers.SimpleRNNCell(3), k.layers.GRUCell(2)])), SEQ
    ),
    "StringLookup": single(L("StringLookup", vocabulary=["a", "b", "c"]), strings(4)),
    "Subtract": single(L("Subtract"), floats(4), floats(4)),
    "TextVectorization": single(
        L("TextVectorization", vocabulary=["the", "cat", "sat"], standardize="lower", output_sequence_length=4),
        strings(),
    ),
    "TimeDistributed": single(lambda k: k.layers.TimeDistributed(k.layers.Dense(3)), SEQ),
    "UnitNormalization": single(L("UnitNormalization"), floats(4)),
    "UpSampling1D": single(L("UpSampling1D", 2), floats(3, 2)),
    "UpSampling2D": single(L("UpSampling2D", 2, interpolation="bilinear"), floats(3, 3, 2)),
    "UpSampling3D": single(L("UpSampling3D", 2), floats(2, 2, 2, 1)),
    "Wrapper": single(lambda k: _wrapper_layer(k)(k.layers.Dense(3)), floats(4)),
    "ZeroPadding1D": single(L("ZeroPadding1D", 1), floats(6, 3)),
    "ZeroPadding2D": single(L("ZeroPadding2D", ((1, 0), (2, 1))), floats(6, 6, 2)),
    "ZeroPadding3D": single(L("ZeroPadding3D", 1), VOL),
}

#: Layers a user subclasses; their .keras files need the subclass as a custom object.
CUSTOM = {"Layer": _scale_layer, "Wrapper": _wrapper_layer}
WORDS = np.array(["a", "b", "c", "z", "", "the cat", "The CAT sat", "a b"], dtype=object)


def keras_layer_classes() -> dict:
    """Keras' public layer classes, each once: by its class name where that is public (not the
    alias MaxPool2D), else by its public name (GroupQueryAttention, class GroupedQueryAttention)."""
    names = {}
    for name in sorted(dir(keras.layers)):
        value = getattr(keras.layers, name)
        if inspect.isclass(value) and issubclass(value, keras.layers.Layer):
            if value not in names or name == value.__name__:
                names[value] = name
    return {name: cls for cls, name in names.items()}


def test_the_table_covers_every_keras_layer():
    missing = sorted(set(keras_layer_classes()) - set(MODELS) - BACKEND_WRAPPERS)
    assert not missing, f"no .keras round trip for {missing}"
    assert set(MODELS) <= set(keras_layer_classes())


def _data(spec, rng, batch=3):
    kind, shape = spec[0], spec[1]
    if kind == "float":
        return rng.normal(size=(batch, *shape)).astype("float32")
    if kind == "image":
        return rng.uniform(0, 255, size=(batch, *shape)).astype("float32")
    if kind == "int":
        return rng.integers(0, spec[2], size=(batch, *shape)).astype("int32")
    return rng.choice(WORDS, size=(batch, *shape))


def _randomise(model, rng):
    """Fresh random values for every float weight (positive, so variances stay valid)."""
    weights = []
    for w in model.get_weights():
        w = np.asarray(w)
        weights.append(rng.uniform(0.2, 1.0, w.shape).astype(w.dtype) if w.dtype.kind == "f" else w)
    model.set_weights(weights)


def _flat(outputs):
    outputs = outputs if isinstance(outputs, (list, tuple)) else [outputs]
    return [np.asarray(o) for o in outputs]


#: Keras 3.15 cannot build a functional model around these: at inference the layer returns its
#: input tensor itself, which Keras' graph walk rejects ("... is part of a cycle"). Their files
#: are Keras' file of the same model with an Identity in the layer's place, the Identity's entry
#: then replaced by Keras' own serialization of the layer; Keras' reference output is the layer
#: called eagerly at inference.
RETURNS_ITS_INPUT = {"Equalization"}


def _saved_by_keras(name, build, path, rng):
    """Keras' model for ``name``, with random weights, saved at ``path``; and Keras' predict."""
    if name not in RETURNS_ITS_INPUT:
        model = build(keras)
        _randomise(model, rng)
        model.save(path)
        if any(spec[0] == "string" for spec in build.inputs):
            # Keras' torch backend has no string tensors: its string layers run eagerly (on TF).
            layer = model.layers[-1]
            return model, lambda x, verbose=0: keras.ops.convert_to_numpy(layer(x))
        return model, model.predict
    layer = build.layer(keras)
    model = single(lambda k: k.layers.Identity(name=layer.name), *build.inputs)(keras)
    model.save(path)
    with zipfile.ZipFile(path) as archive:
        members = {n: archive.read(n) for n in archive.namelist()}
    config = json.loads(members["config.json"])
    entry = next(e for e in config["config"]["layers"] if e["name"] == layer.name)
    entry.update({k: v for k, v in keras.saving.serialize_keras_object(layer).items() if k != "build_config"})
    members["config.json"] = json.dumps(config).encode()
    with zipfile.ZipFile(path, "w") as archive:
        for member, data in members.items():
            archive.writestr(member, data)
    return model, lambda x, verbose=0: layer(x, training=False)


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    return tmp_path_factory.mktemp("every_layer")


@pytest.mark.parametrize("name", sorted(MODELS))
def test_keras_file_loads_predicts_and_exports_like_keras(name, workdir):
    build = MODELS[name]
    rng = np.random.default_rng(zlib.crc32(name.encode()))
    keras.utils.set_random_seed(0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        path = str(workdir / f"{name}.keras")
        theirs, predict = _saved_by_keras(name, build, path, rng)
    feeds = [_data(spec, rng) for spec in build.inputs]
    want = _flat(predict(feeds if len(feeds) > 1 else feeds[0], verbose=0))

    custom = {CUSTOM[name](irtool).__name__: CUSTOM[name](irtool)} if name in CUSTOM else None
    ours = irtool.saving.load_model(path, custom_objects=custom, safe_mode=name != "Lambda")
    got = _flat(ours.predict(feeds if len(feeds) > 1 else feeds[0], verbose=0))
    assert len(got) == len(want)
    for g, w in zip(got, want):
        assert g.shape == w.shape, name
        np.testing.assert_allclose(g, w, rtol=1e-4, atol=1e-4 * max(1.0, float(np.abs(w).max())))

    if name in EXPORT_REFUSED:
        with pytest.raises(ValueError, match=name):
            irtool.onnx.to_onnx(ours)
        return
    proto = irtool.onnx.to_onnx(ours)
    session = ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"])
    names = [i.name for i in session.get_inputs()]
    onnx_out = session.run(None, dict(zip(names, feeds)))
    for o, w in zip(onnx_out, want):
        np.testing.assert_allclose(o, w, rtol=1e-4, atol=1e-4 * max(1.0, float(np.abs(w).max())))
