"""What keras.applications models share: ImageNet input preprocessing, decoding class scores,
input-shape checks and where pretrained weights live.

This machine, and many a user's, cannot download: pretrained weights and the class index are
read from Keras' own cache folder (``$KERAS_HOME/models``, default ``~/.keras/models``), where
Keras puts them; a missing file is an error that names the file, where to put it and where Keras
downloads it from.
"""

from __future__ import annotations

import json
import os
import warnings

import numpy as np

from irtool import activations, backend, ops

#: Where Keras downloads its application files from (for the message when one is missing).
WEIGHTS_URL = "https://storage.googleapis.com/tensorflow/keras-applications/"
CLASS_INDEX_URL = "https://storage.googleapis.com/download.tensorflow.org/data/imagenet_class_index.json"
CLASS_INDEX_FILE = "imagenet_class_index.json"

_MODES = {
    # mode: (flip RGB to BGR, scale, mean per RGB-order channel, std per channel)
    "caffe": (True, 1.0, (123.68, 116.779, 103.939), None),
    "torch": (False, 1 / 255.0, (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)),
}
_class_index = None


def keras_cache_dir() -> str:
    """Keras' cache folder for application files: ``$KERAS_HOME/models`` or ``~/.keras/models``."""
    home = os.environ.get("KERAS_HOME") or os.path.join(os.path.expanduser("~"), ".keras")
    return os.path.join(home, "models")


def cached_file(file_name: str, url: str, alternative: str = "") -> str:
    """The path of ``file_name`` in Keras' cache folder; if it is not there, say where to put it
    (and ``alternative``, another way to go on)."""
    path = os.path.join(keras_cache_dir(), file_name)
    if not os.path.isfile(path):
        raise FileNotFoundError(
            f"{file_name} is not in Keras' cache folder and irtool does not download files. "
            f"Download {url} and save it as {path} (or set KERAS_HOME to the folder that holds "
            f"models/){alternative}."
        )
    return path


def validate_weights(weights, include_top: bool, classes: int, imagenet_classes: int = 1000) -> None:
    """Keras' checks on the ``weights`` argument of an application builder."""
    if not (weights in {"imagenet", None} or (isinstance(weights, (str, os.PathLike)) and os.path.exists(weights))):
        raise ValueError(
            "The `weights` argument should be either `None` (random initialization), 'imagenet' "
            "(pre-training on ImageNet), or the path to the weights file to be loaded. "
            f"Received: weights={weights}"
        )
    if weights == "imagenet" and include_top and classes != imagenet_classes:
        raise ValueError(
            "If using `weights='imagenet'` with `include_top=True`, `classes` should be "
            f"{imagenet_classes}. Received classes={classes}"
        )


def load_weights(model, weights, file_name: str | None, url: str | None = None) -> None:
    """Load ``weights`` into an application ``model``: ``None`` keeps the fresh initialisation,
    ``"imagenet"`` reads ``file_name`` from Keras' cache folder, anything else is a weights file
    (``.weights.h5``, ``.keras`` or Keras' legacy ``.h5``) loaded with ``model.load_weights``."""
    if weights is None:
        return
    if weights == "imagenet":
        if file_name is None:
            raise ValueError(f"{model.name} has no ImageNet weights for this configuration.")
        weights = cached_file(
            file_name, url or WEIGHTS_URL + file_name, ", or pass the path of a weights file as `weights=`"
        )
    model.load_weights(os.fspath(weights))


def validate_activation(classifier_activation, weights) -> None:
    """Pretrained classifiers end in softmax (or no activation); anything else is refused."""
    if weights is None:
        return
    activation = activations.get(classifier_activation)
    if activation not in {activations.get("softmax"), activations.get(None)}:
        raise ValueError(
            "Only `None` and `softmax` activations are allowed for the `classifier_activation` "
            "argument when using pretrained weights, with `include_top=True`; Received: "
            f"classifier_activation={classifier_activation}"
        )


def obtain_input_shape(input_shape, default_size, min_size, data_format, require_flatten, weights=None):
    """The model's input shape (Keras' rules): the default for the weights, or ``input_shape``
    checked for three channels (ImageNet weights), the minimum size and, with a flattening
    classifier on top, static spatial dims."""
    channels_first = data_format == "channels_first"
    if weights != "imagenet" and input_shape and len(input_shape) == 3:
        channels = input_shape[0] if channels_first else input_shape[-1]
        if channels not in {1, 3}:
            warnings.warn(
                "This model usually expects 1 or 3 input channels. However, it was passed an "
                f"input_shape with {channels} input channels.",
                stacklevel=2,
            )
        default_shape = (
            (channels, default_size, default_size) if channels_first else (default_size, default_size, channels)
        )
    else:
        default_shape = (3, default_size, default_size) if channels_first else (default_size, default_size, 3)
    if weights == "imagenet" and require_flatten:
        if input_shape is not None and tuple(input_shape) != default_shape:
            raise ValueError(
                "When setting `include_top=True` and loading `imagenet` weights, `input_shape` "
                f"should be {default_shape}.  Received: input_shape={input_shape}"
            )
        return default_shape
    if input_shape:
        if len(input_shape) != 3:
            raise ValueError("`input_shape` must be a tuple of three integers.")
        channels = input_shape[0] if channels_first else input_shape[-1]
        spatial = input_shape[1:] if channels_first else input_shape[:2]
        if channels != 3 and weights == "imagenet":
            raise ValueError(f"The input must have 3 channels; Received `input_shape={input_shape}`")
        if any(d is not None and d < min_size for d in spatial):
            raise ValueError(f"Input size must be at least {min_size}x{min_size}; Received: input_shape={input_shape}")
    elif require_flatten:
        input_shape = default_shape
    else:
        input_shape = (3, None, None) if channels_first else (None, None, 3)
    if require_flatten and None in input_shape:
        raise ValueError(
            f"If `include_top` is True, you should specify a static `input_shape`. Received: input_shape={input_shape}"
        )
    return tuple(input_shape)


def correct_pad(inputs, kernel_size):
    """The ZeroPadding2D that makes a stride-2 'valid' convolution centre like TF's 'same'."""
    spatial_axis = 2 if backend.image_data_format() == "channels_first" else 1
    size = inputs.shape[spatial_axis : spatial_axis + 2]
    if isinstance(kernel_size, int):
        kernel_size = (kernel_size, kernel_size)
    adjust = (1, 1) if size[0] is None else (1 - size[0] % 2, 1 - size[1] % 2)
    half = (kernel_size[0] // 2, kernel_size[1] // 2)
    return ((half[0] - adjust[0], half[0]), (half[1] - adjust[1], half[1]))


def preprocess_input(x, data_format=None, mode="caffe"):
    """ImageNet preprocessing of a batch of images (NumPy array or irtool tensor), as Keras:
    ``caffe`` flips RGB to BGR and subtracts the ImageNet channel means, ``tf`` scales to
    [-1, 1], ``torch`` scales to [0, 1] and standardizes with the ImageNet means and stds.
    A NumPy float array is changed in place, as Keras does."""
    if mode not in {"caffe", "tf", "torch"}:
        raise ValueError(f"Expected mode to be one of `caffe`, `tf` or `torch`. Received: mode={mode}")
    if data_format is None:
        data_format = backend.image_data_format()
    elif data_format not in {"channels_first", "channels_last"}:
        raise ValueError(
            f"Expected data_format to be one of `channels_first` or `channels_last`. Received: data_format={data_format}"
        )
    if isinstance(x, np.ndarray) and not np.issubdtype(x.dtype, np.floating):
        x = x.astype(backend.floatx())
    if mode == "tf":
        return _in_place(x, x / 127.5 - 1.0)
    flip, scale, mean, std = _MODES[mode]
    channel_axis = (1 if x.ndim == 4 else 0) if data_format == "channels_first" else -1
    shape = [1] * x.ndim
    shape[channel_axis] = 3
    dtype = x.dtype if isinstance(x, np.ndarray) else np.float32
    if flip:  # channels become BGR, so the means are taken in BGR order too
        x = np.flip(x, channel_axis) if isinstance(x, np.ndarray) else _flip(x, channel_axis)
        mean = mean[::-1]
    y = (x * scale if scale != 1.0 else x) - np.asarray(mean, dtype).reshape(shape)
    if std is not None:
        y = y / np.asarray(std, dtype).reshape(shape)
    return _in_place(x, y)


def _flip(x, axis):
    return ops.take(x, np.array([2, 1, 0]), axis=axis)


def _in_place(x, y):
    if isinstance(x, np.ndarray) and isinstance(y, np.ndarray) and x.flags.writeable:
        x[...] = y
        return x
    return y


def decode_predictions(preds, top=5):
    """The ``top`` ImageNet classes per row of ``preds`` (shape ``(samples, 1000)``) as
    ``(class_id, class_name, score)`` tuples, best first; reads ``imagenet_class_index.json``
    from Keras' cache folder."""
    global _class_index
    preds = np.asarray(preds)
    if preds.ndim != 2 or preds.shape[1] != 1000:
        raise ValueError(
            "`decode_predictions` expects a batch of predictions (i.e. a 2D array of shape "
            f"(samples, 1000)). Received array with shape: {preds.shape}"
        )
    if _class_index is None:
        with open(cached_file(CLASS_INDEX_FILE, CLASS_INDEX_URL)) as f:
            _class_index = json.load(f)
    results = []
    for row in preds:
        best = row.argsort()[-top:][::-1]
        results.append(
            sorted((tuple(_class_index[str(i)]) + (row[i],) for i in best), key=lambda t: t[2], reverse=True)
        )
    return results
