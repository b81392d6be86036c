"""TextVectorization: text to token indices or bag-of-token vectors (Keras 3).

Each example is standardized (lowercased, punctuation stripped), split into tokens (words or
characters), optionally turned into n-grams, and the tokens are looked up in a vocabulary. The
vocabulary is a ``StringLookup`` with the empty string as its mask token, exactly as in Keras, so
``adapt``, ``get_vocabulary``, the output modes, idf weights and the ``.keras`` vocabulary asset
are the lookup layer's (one implementation); this layer adds the text primitives of
``irtool.ops.text``, whose ``""`` padding is that mask token (index 0 in ``"int"`` mode, dropped by
``multi_hot``/``count``/``tf_idf``).

Code-valued arguments (a callable ``standardize`` or ``split``) are refused: irtool loads no code.
The ONNX export is exact or refused: it covers ``standardize=None`` with ``split="whitespace"`` or
``None`` and no ``ngrams``; everything else names the argument that prevents it.
"""

from __future__ import annotations

import numpy as np

from irtool.layers.index_lookup import StringLookup
from irtool.layers.layer import Layer
from irtool.ops.core import SymbolicTensor
from irtool.ops.text import SPLIT_MODES, STANDARDIZE_MODES, standardize_text, tokenize_text
from irtool.strings import to_string_array

_OUTPUT_MODES = ("int", "multi_hot", "count", "tf_idf")


def _refuse_code(argument: str, value) -> None:
    if callable(value) or isinstance(value, dict):
        raise ValueError(
            f"irtool's TextVectorization does not take a callable `{argument}` (irtool loads and runs no Python "
            f"code from configs): use one of the built-in values, or apply your function to the text before the "
            f"model. Received: {argument}={value!r}"
        )


class TextVectorization(Layer):
    """Map strings to token indices (``"int"``) or to one vector per string (``"multi_hot"``,
    ``"count"``, ``"tf_idf"``), as Keras 3's ``TextVectorization``.

    >>> layer = TextVectorization(vocabulary=["earth", "wind", "and", "fire"], output_sequence_length=5)
    >>> layer(np.array(["Earth, wind and FIRE!", "wind"])).tolist()
    [[2, 3, 4, 5, 0], [3, 0, 0, 0, 0]]
    """

    def __init__(
        self,
        max_tokens=None,
        standardize="lower_and_strip_punctuation",
        split="whitespace",
        ngrams=None,
        output_mode="int",
        output_sequence_length=None,
        pad_to_max_tokens=False,
        vocabulary=None,
        idf_weights=None,
        sparse=False,
        ragged=False,
        encoding="utf-8",
        name=None,
        **kwargs,
    ):
        _refuse_code("standardize", standardize)
        _refuse_code("split", split)
        if standardize is not None and standardize not in STANDARDIZE_MODES:
            raise ValueError(
                f"The `standardize` argument of TextVectorization must be None or one of {STANDARDIZE_MODES}. "
                f"Received: standardize={standardize!r}"
            )
        if split is not None and split not in SPLIT_MODES:
            raise ValueError(
                f"The `split` argument of TextVectorization must be None or one of {SPLIT_MODES}. "
                f"Received: split={split!r}"
            )
        output_mode = {"binary": "multi_hot", "tf-idf": "tf_idf"}.get(output_mode, output_mode)
        if output_mode not in _OUTPUT_MODES:
            # Keras accepts "one_hot" here but its call fails on string tokens; say so up front.
            raise ValueError(
                f"The `output_mode` argument of TextVectorization must be one of {_OUTPUT_MODES}. "
                f"Received: output_mode={output_mode!r}"
            )
        if isinstance(ngrams, list):
            ngrams = tuple(ngrams)
        if not (
            ngrams is None
            or (isinstance(ngrams, int) and not isinstance(ngrams, bool))
            or (isinstance(ngrams, tuple) and all(isinstance(w, int) for w in ngrams))
        ):
            raise ValueError(f"`ngrams` must be None, an integer, or a tuple of integers. Received: ngrams={ngrams}")
        widths = tuple(range(1, ngrams + 1)) if isinstance(ngrams, int) else ngrams
        if widths is not None and (not widths or min(widths) < 1):
            raise ValueError(f"`ngrams` widths must be positive integers. Received: ngrams={ngrams}")
        if output_mode == "int" and not (output_sequence_length is None or isinstance(output_sequence_length, int)):
            raise ValueError(
                "`output_sequence_length` must be either None or an integer when `output_mode` is 'int'. "
                f"Received: output_sequence_length={output_sequence_length}"
            )
        if output_mode != "int" and output_sequence_length is not None:
            raise ValueError(
                "`output_sequence_length` must not be set if `output_mode` is not 'int'. "
                f"Received output_sequence_length={output_sequence_length}."
            )
        if sparse:
            raise ValueError(
                "`sparse=True` is not supported by irtool's TextVectorization (irtool has no sparse tensors; Keras "
                "allows it only with the TensorFlow backend). Use `sparse=False`."
            )
        if ragged:
            raise ValueError(
                "`ragged=True` is not supported by irtool's TextVectorization (irtool has no ragged tensors; Keras "
                "allows it only with the TensorFlow backend). Use `ragged=False` (rows padded with 0) and, for a "
                "fixed length, `output_sequence_length`."
            )
        has_input_vocabulary = kwargs.pop("has_input_vocabulary", vocabulary is not None)
        vocabulary_size = kwargs.pop("vocabulary_size", None)
        super().__init__(name=name, **kwargs)
        self._standardize = standardize
        self._split = split
        self._ngrams_arg = ngrams
        self._ngrams = widths
        self._output_mode = output_mode
        self._output_sequence_length = output_sequence_length
        self._ragged = ragged
        self._encoding = encoding
        self._has_input_vocabulary = has_input_vocabulary
        # Keras' attribute name: the .keras file stores the vocabulary and idf weights under it too.
        self._lookup_layer = StringLookup(
            max_tokens=max_tokens,
            vocabulary=vocabulary,
            idf_weights=idf_weights,
            pad_to_max_tokens=pad_to_max_tokens,
            mask_token="",
            output_mode=output_mode,
            sparse=sparse,
            has_input_vocabulary=has_input_vocabulary,
            encoding=encoding,
            vocabulary_size=vocabulary_size,
        )
        self.built = True

    # -- vocabulary: the lookup layer's ---------------------------------------------------------
    def get_vocabulary(self, include_special_tokens: bool = True) -> list:
        """The tokens by index: the padding ``""`` (``"int"`` mode) and ``"[UNK]"`` first, unless
        ``include_special_tokens=False``."""
        return self._lookup_layer.get_vocabulary(include_special_tokens)

    def vocabulary_size(self) -> int:
        return self._lookup_layer.vocabulary_size()

    def set_vocabulary(self, vocabulary, idf_weights=None) -> None:
        """Set the vocabulary (a list, an array, or a text file with one token a line) and, for
        ``"tf_idf"``, its idf weights."""
        self._lookup_layer.set_vocabulary(vocabulary, idf_weights=idf_weights)

    def adapt(self, data, batch_size=None, steps=None) -> None:
        """Learn the vocabulary from ``data`` (strings: an array, a list, or an iterable of batches),
        tokenized as the layer tokenizes: tokens by descending count, ties by descending token."""
        self.reset_state()
        if hasattr(data, "__iter__") and not isinstance(data, (list, tuple, np.ndarray, str)):
            for i, batch in enumerate(data):
                if steps is not None and i >= steps:
                    break
                self.update_state(batch)
        else:
            data = to_string_array(data)
            self.update_state(data[:, None] if data.ndim == 1 else data)
        self.finalize_state()

    def update_state(self, data) -> None:
        self._lookup_layer.update_state(self._tokens(to_string_array(data), length=None))

    def finalize_state(self) -> None:
        self._lookup_layer.finalize_state()

    def reset_state(self) -> None:
        self._lookup_layer.reset_state()

    # -- call -----------------------------------------------------------------------------------
    def _tokens(self, x, length):
        """``x`` standardized and tokenized: the tensor the lookup layer reads."""
        if self._standardize is not None:
            x = standardize_text(x, self._standardize)
        rank = len(x.shape)
        if self._split is not None:
            if rank != 1 and (rank != 2 or x.shape[-1] not in (1, None)):
                raise ValueError(
                    f"When using `TextVectorization` to tokenize strings, the input rank must be 1 or the last "
                    f"shape dimension must be 1. Layer '{self.name}' received: inputs.shape={tuple(x.shape)} "
                    f"with rank={rank}"
                )
            return tokenize_text(x, self._split, self._ngrams, length, self._min_length())
        if self._ngrams is None and length is None:
            return x
        if rank != 2:
            # Keras would take the whole batch as one sequence here (n-grams across examples,
            # `output_sequence_length` cutting the batch).
            what = f"ngrams={self._ngrams_arg}" if self._ngrams is not None else "output_sequence_length"
            raise ValueError(
                f"Layer '{self.name}' (TextVectorization) with split=None and {what} needs inputs of shape "
                f"(batch, tokens), one row of tokens per example. Received: inputs.shape={tuple(x.shape)}"
            )
        return tokenize_text(x, None, self._ngrams, length, self._min_length())

    def _min_length(self) -> int:
        # The bag encodings reduce over the token axis, which must not be empty (a batch of blank
        # strings); an extra "" column is the mask token, which they drop.
        return 0 if self._output_mode == "int" else 1

    def call(self, inputs):
        if isinstance(inputs, SymbolicTensor):
            if inputs.dtype != "string":
                raise ValueError(
                    f"Layer '{self.name}' (TextVectorization) expects string inputs. Received: an input of dtype "
                    f"{inputs.dtype} and shape {inputs.shape}."
                )
        else:
            inputs = to_string_array(inputs)
        length = self._output_sequence_length if self._output_mode == "int" else None
        return self._lookup_layer.call(self._tokens(inputs, length))

    def compute_output_shape(self, input_shape):
        input_shape = tuple(input_shape)
        if self._output_mode == "int":
            if self._split is None and self._ngrams is None and self._output_sequence_length is None:
                return input_shape
            return (input_shape[0], self._output_sequence_length)
        depth = self._lookup_layer._depth()
        return (input_shape[0], depth)

    # -- saving: Keras stores the lookup layer's files under this layer's path as well ----------
    def save_own_variables(self, store) -> None:
        self._lookup_layer.save_own_variables(store)

    def load_own_variables(self, store) -> None:
        self._lookup_layer.load_own_variables(store)

    def asset_files(self) -> dict:
        return self._lookup_layer.asset_files()

    def load_asset_files(self, files: dict) -> None:
        self._lookup_layer.load_asset_files(files)

    def get_config(self):
        lookup = self._lookup_layer
        config = super().get_config()
        config.update(
            {
                "max_tokens": lookup.max_tokens,
                "standardize": self._standardize,
                "split": self._split,
                "ngrams": self._ngrams_arg,
                "output_mode": self._output_mode,
                "output_sequence_length": self._output_sequence_length,
                "pad_to_max_tokens": lookup.pad_to_max_tokens,
                "sparse": lookup.sparse,
                "ragged": self._ragged,
                "vocabulary": lookup.input_vocabulary,
                "idf_weights": lookup.input_idf_weights,
                "encoding": self._encoding,
                "vocabulary_size": self.vocabulary_size(),
            }
        )
        return config
