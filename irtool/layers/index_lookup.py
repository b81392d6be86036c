"""Vocabulary lookups: StringLookup and IntegerLookup (Keras 3's ``IndexLookup`` family).

A token's index is its position in ``[mask] + [oov] * num_oov_indices + vocabulary`` (the mask
slot only in ``"int"`` mode); unknown tokens go to the OOV slot, or with several OOV slots to
``floormod(x, n)`` (integers) or a FarmHash/SipHash bucket (strings, ``oov_method="farmhash"``).
The table is a ``LookupTable`` read when the graph runs, so a vocabulary set after the model was
built (a ``.keras`` file's ``assets/.../vocabulary.txt``, ``adapt``) is the one used, as in Keras.
``idf_weights`` are a Variable for the same reason. The lookup lowers to ONNX ``LabelEncoder``;
only the hashed OOV buckets of strings cannot be exported.
"""

from __future__ import annotations

import collections
import os

import numpy as np

from irtool import ops
from irtool.layers.layer import Layer
from irtool.layers.preprocessing_categorical import encode_categorical
from irtool.ops.core import SymbolicTensor
from irtool.ops.strings import LookupTable, hash_bucket, table_lookup
from irtool.ops.variable import Variable
from irtool.serialization.python_code import in_safe_mode
from irtool.strings import to_string_array

_OUTPUT_MODES = ("int", "one_hot", "multi_hot", "count", "tf_idf")
_INT64_MAX = np.iinfo(np.int64).max
VOCABULARY_FILE = "vocabulary.txt"


class IndexLookup(Layer):
    """What StringLookup and IntegerLookup share (Keras' ``IndexLookup``)."""

    def __init__(
        self,
        max_tokens,
        num_oov_indices,
        mask_token,
        oov_token,
        vocabulary_dtype,
        vocabulary=None,
        idf_weights=None,
        invert=False,
        output_mode="int",
        sparse=False,
        pad_to_max_tokens=False,
        oov_method="floormod",
        name=None,
        salt=None,
        vocabulary_size=None,
        has_input_vocabulary=None,
        trainable=True,
        dtype=None,
    ):
        kind = type(self).__name__
        if max_tokens is not None and max_tokens <= 1:
            raise ValueError(f"If set, `max_tokens` must be greater than 1. Received: max_tokens={max_tokens}")
        if pad_to_max_tokens and max_tokens is None:
            raise ValueError(f"If pad_to_max_tokens is True, must set `max_tokens`. Received: max_tokens={max_tokens}")
        if num_oov_indices < 0:
            raise ValueError(
                f"`num_oov_indices` must be greater than or equal to 0. Received: num_oov_indices={num_oov_indices}"
            )
        if oov_method not in ("floormod", "farmhash"):
            raise ValueError(
                f"Unknown value for `oov_method` in {kind}: expected 'floormod' or 'farmhash'. "
                f"Received: oov_method={oov_method}"
            )
        if salt is not None:
            if vocabulary_dtype != "string" and oov_method != "farmhash":
                raise ValueError(
                    f"`salt` can only be used when `oov_method='farmhash'`. Received: oov_method={oov_method}"
                )
            if isinstance(salt, (tuple, list)) and len(salt) == 2:
                salt = list(salt)
            elif isinstance(salt, int):
                salt = [salt, salt]
            else:
                raise ValueError(
                    "The `salt` argument for `IndexLookup` can only be a tuple of 2 integers, or a single integer. "
                    f"Received: salt={salt}."
                )
        output_mode = {"binary": "multi_hot", "tf-idf": "tf_idf"}.get(output_mode, output_mode)
        if output_mode not in _OUTPUT_MODES:
            raise ValueError(
                f"Unknown value for `output_mode` in {kind}: expected one of {_OUTPUT_MODES}. "
                f"Received: output_mode={output_mode}"
            )
        if invert and output_mode != "int":
            raise ValueError(
                f"`output_mode` must be `'int'` when `invert` is true. Received: output_mode={output_mode}"
            )
        if sparse:
            # Keras allows it only with the TensorFlow backend; irtool has no sparse tensors.
            raise ValueError(
                f"`sparse=True` is not supported by irtool's {kind} (irtool has no sparse tensors; Keras allows it "
                "only with the TensorFlow backend). Use `sparse=False`."
            )
        if idf_weights is not None and output_mode != "tf_idf":
            raise ValueError(
                "`idf_weights` should only be set if `output_mode` is `'tf_idf'`. "
                f"Received: idf_weights={idf_weights} and output_mode={output_mode}"
            )
        super().__init__(name=name, trainable=trainable, dtype=None)
        self.invert = invert
        self.max_tokens = max_tokens
        self.num_oov_indices = num_oov_indices
        self.mask_token = mask_token
        self.oov_token = oov_token
        self.output_mode = output_mode
        self.sparse = sparse
        self.pad_to_max_tokens = pad_to_max_tokens
        self.vocabulary_dtype = vocabulary_dtype
        self.oov_method = oov_method
        self.salt = salt
        self._frozen_vocab_size = vocabulary_size
        self.input_vocabulary = None if isinstance(vocabulary, str) else _listify(vocabulary)
        self.input_idf_weights = _listify(idf_weights)
        self._has_input_vocabulary = (
            vocabulary is not None if has_input_vocabulary is None else bool(has_input_vocabulary)
        )
        if output_mode == "tf_idf" and self._has_input_vocabulary and idf_weights is None:
            raise ValueError(
                "When specifying the `vocabulary` argument, in TF-IDF output mode, the `idf_weights` argument "
                "must also be provided."
            )
        if invert:
            self._default_value = oov_token
            self.table = LookupTable("int64", vocabulary_dtype, oov_token)
        else:
            # One OOV slot is the table's default; with none or several, -1 marks OOV tokens
            # (an error, or a hashed slot).
            self._default_value = self._oov_start_index() if num_oov_indices == 1 else -1
            self.table = LookupTable(vocabulary_dtype, "int64", self._default_value)
        self._tokens: list = []
        self.idf_weights = None
        if vocabulary is not None:
            self.set_vocabulary(vocabulary, idf_weights)
        self._reset_counts()
        self.built = True

    # -- vocabulary -------------------------------------------------------------------------
    def _oov_start_index(self) -> int:
        return 1 if self.mask_token is not None and self.output_mode == "int" else 0

    def _token_start_index(self) -> int:
        return self._oov_start_index() + self.num_oov_indices

    def _special_tokens(self) -> list:
        return [self.mask_token] * self._oov_start_index() + [self.oov_token] * self.num_oov_indices

    def _convert_token(self, token):
        return str(token) if self.vocabulary_dtype == "string" else int(token)

    def vocabulary_size(self) -> int:
        """The vocabulary's size, mask and OOV slots included."""
        return len(self._tokens) + self._token_start_index()

    def get_vocabulary(self, include_special_tokens: bool = True) -> list:
        """The tokens by index (mask and OOV tokens first unless ``include_special_tokens=False``)."""
        vocab = [self.oov_token] * self._token_start_index() + list(self._tokens)
        if self.mask_token is not None and self.output_mode == "int":
            vocab[0] = self.mask_token
        return vocab if include_special_tokens else vocab[self._token_start_index() :]

    def set_vocabulary(self, vocabulary, idf_weights=None) -> None:
        """Set the vocabulary (a list, an array or a text file path, one token a line) and, for
        ``tf_idf``, its idf weights; Keras' checks and special-token handling."""
        if self.output_mode == "tf_idf":
            if idf_weights is None:
                raise ValueError("`idf_weights` must be set if output_mode is 'tf_idf'.")
        elif idf_weights is not None:
            raise ValueError(
                "`idf_weights` should only be set if output_mode is `'tf_idf'`. "
                f"Received: output_mode={self.output_mode} and idf_weights={idf_weights}"
            )
        if isinstance(vocabulary, (str, os.PathLike)):
            self._set_vocabulary_file(os.fspath(vocabulary))
            return
        vocabulary = [self._convert_token(t) for t in np.asarray(vocabulary, dtype=object).reshape(-1).tolist()]
        if not vocabulary:
            raise ValueError(f"Cannot set an empty vocabulary. Received: vocabulary={vocabulary}")
        token_start = self._token_start_index()
        special = self._special_tokens()
        found_special = vocabulary[:token_start] == special
        tokens = vocabulary[token_start:] if found_special else vocabulary
        repeated = [t for t, n in collections.Counter(tokens).items() if n > 1]
        if repeated:
            raise ValueError(
                "The passed vocabulary has at least one repeated term. Please uniquify your dataset. The repeated "
                f"terms are: {repeated}"
            )
        for reserved, what in ((self.mask_token, "mask"), (self.oov_token if self.invert else None, "OOV")):
            if reserved is not None and reserved in tokens:
                raise ValueError(
                    f"Found reserved {what} token at unexpected location in `vocabulary`. Note that passed "
                    "`vocabulary` does not need to include the OOV and mask tokens. Either remove all mask and OOV "
                    f"tokens, or include them only at the start of the vocabulary in precisely this order: "
                    f"{special}. Received: {what.lower()}_token={reserved} at vocabulary index "
                    f"{len(vocabulary) - 1 - vocabulary[::-1].index(reserved)}"
                )
        if self.max_tokens is not None and token_start + len(tokens) > self.max_tokens:
            raise ValueError(
                "Attempted to set a vocabulary larger than the maximum vocab size. Received vocabulary size is "
                f"{token_start + len(tokens)}; `max_tokens` is {self.max_tokens}."
            )
        self._set_tokens(tokens)
        if self.output_mode == "tf_idf":
            weights = np.asarray(idf_weights, dtype="float64")
            if len(weights) != len(vocabulary):
                raise ValueError(
                    "`idf_weights` must be the same length as vocabulary. "
                    f"len(idf_weights) is {len(weights)}; len(vocabulary) is {len(vocabulary)}"
                )
            if weights.ndim != 1:
                raise ValueError(f"TF-IDF data must be a 1-index array. Received: shape {weights.shape}")
            # Special slots without weights get the average weight (no real document frequency).
            front, front_value = (0, 0.0) if found_special else (token_start, float(np.average(weights)))
            back = self.max_tokens - front - len(weights) if self.pad_to_max_tokens else 0
            self._set_idf(np.pad(weights, (front, back), constant_values=(front_value, 0.0)))

    def _set_vocabulary_file(self, path: str) -> None:
        if in_safe_mode():
            raise ValueError(
                "Requested the loading of a vocabulary file outside of the model archive. This carries a potential "
                "risk of loading arbitrary and sensitive files and thus it is disallowed by default. If you trust "
                "the source of the artifact, you can override this error by passing `safe_mode=False` to the "
                f"loading function. Vocabulary file: '{path}'"
            )
        if not os.path.exists(path):
            raise ValueError(f"Vocabulary file {path} does not exist.")
        if self.output_mode == "tf_idf":
            raise ValueError("output_mode `'tf_idf'` does not support loading a vocabulary from file.")
        with open(path, encoding="utf-8") as f:
            lines = f.read().splitlines()
        while lines and lines[-1] == "":
            lines.pop()
        # As TensorFlow's TextFileInitializer: every line is a token, numbered from the first
        # token slot (a file holds no special tokens).
        self._set_tokens([self._convert_token(line) for line in lines])

    def _set_tokens(self, tokens: list) -> None:
        size = self._token_start_index() + len(tokens)
        if self.output_mode != "int" and not self.pad_to_max_tokens and self._frozen_vocab_size not in (None, size):
            if getattr(self, "_called", False):
                raise RuntimeError(
                    f"When using `output_mode={self.output_mode}` and `pad_to_max_tokens=False`, the vocabulary "
                    f"size cannot be changed after the layer is called. Old vocab size is "
                    f"{self._frozen_vocab_size}, new vocab size is {size}"
                )
        self._tokens = list(tokens)
        indices = list(range(self._token_start_index(), size))
        if self.invert:
            keys, values = indices, list(tokens)
            if self.mask_token is not None:
                keys, values = [0] + keys, [self.mask_token] + values
        else:
            keys, values = list(tokens), indices
            if self.mask_token is not None:
                # The mask token is never a vocabulary token (checked): its slot is 0 in "int"
                # mode, and out of range (dropped by the encodings) otherwise.
                keys.append(self.mask_token)
                values.append(0 if self.output_mode == "int" else _INT64_MAX)
        self.table.set(keys, values)
        self._frozen_vocab_size = size

    def _set_idf(self, weights) -> None:
        weights = np.asarray(weights, dtype="float32")
        if self.idf_weights is None or self.idf_weights.shape != weights.shape:
            self.idf_weights = Variable(weights, dtype="float32", trainable=False, name="idf_weights")
        else:
            self.idf_weights.assign(weights)

    # -- adapt: Keras' counts and ordering ----------------------------------------------------
    def _reset_counts(self) -> None:
        self._token_counts: collections.Counter = collections.Counter()
        self._document_counts: collections.Counter = collections.Counter()
        self._num_documents = 0

    def reset_state(self) -> None:
        self._reset_counts()

    def _as_data(self, data) -> np.ndarray:
        if self.vocabulary_dtype == "string":
            return to_string_array(data)
        return np.asarray(data).astype(np.int64)

    def adapt(self, data, steps=None) -> None:
        """Learn the vocabulary from ``data`` (an array, a list, or an iterable of batches): tokens by
        descending count, ties by descending token, truncated to ``max_tokens``."""
        self.reset_state()
        if hasattr(data, "__iter__") and not isinstance(data, (list, tuple, np.ndarray, str)):
            for i, batch in enumerate(data):
                if steps is not None and i >= steps:
                    break
                self.update_state(batch)
        else:
            data = self._as_data(data)
            if data.ndim == 1:
                data = data[:, None]  # one token per document
            self.update_state(data)
        self.finalize_state()

    def update_state(self, data) -> None:
        if self._has_input_vocabulary:
            raise ValueError(
                f"Cannot adapt layer '{self.name}' after setting a static vocabulary via `vocabulary` argument or "
                "`set_vocabulary()` method."
            )
        data = self._as_data(data)
        if data.ndim <= 1:
            data = data.reshape(1, -1)  # a 1-d batch is a single document
        self._token_counts.update(data.reshape(-1).tolist())
        if self.output_mode == "tf_idf":
            for document in data.reshape(data.shape[0], -1):
                self._document_counts.update(set(document.tolist()))
            self._num_documents += data.shape[0]

    def finalize_state(self) -> None:
        if self._has_input_vocabulary or not self._token_counts:
            return
        counts = dict(self._token_counts)
        for special in (self.mask_token, self.oov_token):
            if special is not None:
                counts.pop(self._convert_token(special), None)

        # Keras sorts (count, token) descending; strings compare as their UTF-8 bytes.
        def order(token):
            return counts[token], token.encode("utf-8") if isinstance(token, str) else token

        tokens = sorted(counts, key=order, reverse=True)
        if self.max_tokens:
            tokens = tokens[: self.max_tokens - self._token_start_index()]
        self._set_tokens(tokens)
        if self.output_mode == "tf_idf":
            document_counts = np.asarray([self._document_counts[t] for t in tokens], dtype="float64")
            idf = np.log(1 + self._num_documents / (1 + document_counts)).astype("float32")
            weights = np.concatenate([np.full(self._token_start_index(), np.mean(idf), "float32"), idf])
            if self.pad_to_max_tokens and self.max_tokens is not None:
                weights = np.pad(weights, (0, self.max_tokens - len(weights)))
            self._set_idf(weights)
        self._reset_counts()

    # -- call ----------------------------------------------------------------------------------
    def _depth(self):
        return self.max_tokens if self.pad_to_max_tokens else self._frozen_vocab_size

    def _check_input(self, inputs):
        if not isinstance(inputs, SymbolicTensor):
            return to_string_array(inputs) if self._input_is_string() else np.asarray(inputs)
        want_string = self._input_is_string()
        if want_string != (inputs.dtype == "string") or not (want_string or inputs.dtype.startswith(("int", "uint"))):
            raise ValueError(
                f"Layer '{self.name}' ({type(self).__name__}) expects {'string' if want_string else 'integer'} "
                f"inputs. Received: an input of dtype {inputs.dtype} and shape {inputs.shape}."
            )
        return inputs

    def _input_is_string(self) -> bool:
        return self.vocabulary_dtype == "string" and not self.invert

    def call(self, inputs):
        if self.output_mode != "int" and not self.pad_to_max_tokens and self._frozen_vocab_size is None:
            raise RuntimeError(
                f"When using `output_mode={self.output_mode}` and `pad_to_max_tokens=False`, you must set the "
                "layer's vocabulary before calling it. Either pass a `vocabulary` argument to the layer, or call "
                "`adapt` with some sample data."
            )
        self._called = True
        inputs = self._check_input(inputs)
        x = inputs
        lookups = table_lookup(x, self.table)
        if not self.invert:
            if self.num_oov_indices == 0 and not isinstance(lookups, SymbolicTensor) and np.any(lookups == -1):
                raise ValueError(
                    "When `num_oov_indices=0` all inputs should be in vocabulary, found OOV values "
                    f"{np.asarray(x)[lookups == -1].tolist()}, consider setting `num_oov_indices=1`."
                )
            if self.num_oov_indices > 1:
                if self.vocabulary_dtype != "string" and self.oov_method != "farmhash":
                    slots = ops.mod(ops.cast(x, "int64"), np.array(self.num_oov_indices, np.int64))
                else:
                    slots = hash_bucket(x, self.num_oov_indices, self.salt)
                slots = ops.add(slots, np.array(self._oov_start_index(), np.int64))
                lookups = ops.where(ops.equal(lookups, np.array(-1, np.int64)), slots, lookups)
        if self.output_mode == "int":
            return lookups
        mode = "count" if self.output_mode == "tf_idf" else self.output_mode
        output = encode_categorical(lookups, mode, self._depth(), "float32")
        if self.output_mode == "tf_idf":
            if self.idf_weights is None:
                self._set_idf(np.zeros(self._depth(), "float32"))  # filled by the weights file
            output = ops.multiply(output, self.idf_weights)
        return output

    def compute_output_shape(self, input_shape):
        if self.output_mode == "int":
            return tuple(input_shape)
        input_shape = tuple(input_shape)
        if self.output_mode == "one_hot":
            if len(input_shape) > 1 and input_shape[-1] == 1:
                return input_shape[:-1] + (self._depth(),)
            return input_shape + (self._depth(),)
        return input_shape[:-1] + (self._depth(),)

    # -- saving: Keras' layout (idf weights in the weights file, an adapted vocabulary as an asset)
    def save_own_variables(self, store) -> None:
        if self.output_mode == "tf_idf":
            store["idf_weights"] = self.idf_weights.numpy()

    def load_own_variables(self, store) -> None:
        if self.output_mode == "tf_idf":
            self._set_idf(np.asarray(store["idf_weights"]))

    def asset_files(self) -> dict:
        """``{file name: bytes}`` stored under this layer's path in the archive's ``assets/``."""
        if self.input_vocabulary is not None:
            return {}  # the vocabulary is in the config
        return {VOCABULARY_FILE: "\n".join(str(t) for t in self.get_vocabulary()).encode("utf-8")}

    def load_asset_files(self, files: dict) -> None:
        if self.input_vocabulary is not None or VOCABULARY_FILE not in files:
            return
        lines = files[VOCABULARY_FILE].decode("utf-8").splitlines()
        while lines and lines[-1] == "":
            lines.pop()
        values = [self._convert_token(line) for line in lines]
        idf = self.idf_weights.numpy() if self.output_mode == "tf_idf" else None
        frozen, self._frozen_vocab_size = self._frozen_vocab_size, None
        try:
            self.set_vocabulary(values, idf_weights=idf)
        finally:
            if self._frozen_vocab_size is None:
                self._frozen_vocab_size = frozen

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "invert": self.invert,
                "max_tokens": self.max_tokens,
                "num_oov_indices": self.num_oov_indices,
                "oov_token": self.oov_token,
                "mask_token": self.mask_token,
                "output_mode": self.output_mode,
                "sparse": self.sparse,
                "pad_to_max_tokens": self.pad_to_max_tokens,
                "vocabulary_dtype": self.vocabulary_dtype,
                "idf_weights": self.input_idf_weights,
                "vocabulary": self.input_vocabulary,
                "vocabulary_size": self._frozen_vocab_size,
                "oov_method": self.oov_method,
                "salt": self.salt,
            }
        )
        return config


def _listify(x):
    if x is None:
        return None
    if hasattr(x, "numpy") and not isinstance(x, np.ndarray):
        x = x.numpy()
    return np.asarray(x, dtype=object).tolist() if isinstance(x, np.ndarray) else list(x)


class StringLookup(IndexLookup):
    """Strings to vocabulary indices, or indices back to strings with ``invert=True`` (Keras 3).

    >>> layer = StringLookup(vocabulary=["a", "b", "c"])
    >>> layer(np.array([["a", "z"], ["c", "b"]])).tolist()
    [[1, 0], [3, 2]]
    """

    def __init__(
        self,
        max_tokens=None,
        num_oov_indices=1,
        mask_token=None,
        oov_token="[UNK]",
        vocabulary=None,
        idf_weights=None,
        invert=False,
        output_mode="int",
        pad_to_max_tokens=False,
        sparse=False,
        encoding="utf-8",
        name=None,
        salt=None,
        **kwargs,
    ):
        if encoding.lower().replace("_", "-") not in ("utf-8", "utf8"):
            raise ValueError(f"irtool's StringLookup reads UTF-8 text only. Received: encoding={encoding!r}")
        kwargs.pop("vocabulary_dtype", None)
        self.encoding = encoding
        super().__init__(
            max_tokens=max_tokens,
            num_oov_indices=num_oov_indices,
            mask_token=mask_token,
            oov_token=oov_token,
            vocabulary=vocabulary,
            idf_weights=idf_weights,
            invert=invert,
            output_mode=output_mode,
            pad_to_max_tokens=pad_to_max_tokens,
            sparse=sparse,
            name=name,
            salt=salt,
            vocabulary_dtype="string",
            **kwargs,
        )

    def get_config(self):
        config = super().get_config()
        del config["vocabulary_dtype"]  # strings are the only choice
        config["encoding"] = self.encoding
        return config


class IntegerLookup(IndexLookup):
    """Integers to vocabulary indices, or indices back to integers with ``invert=True`` (Keras 3).

    >>> layer = IntegerLookup(vocabulary=[12, 36, 1138, 42])
    >>> layer(np.array([[12, 1138, 42], [42, 1000, 36]])).tolist()
    [[1, 3, 4], [4, 0, 2]]
    """

    def __init__(
        self,
        max_tokens=None,
        num_oov_indices=1,
        mask_token=None,
        oov_token=-1,
        vocabulary=None,
        vocabulary_dtype="int64",
        idf_weights=None,
        invert=False,
        output_mode="int",
        sparse=False,
        pad_to_max_tokens=False,
        oov_method="floormod",
        salt=None,
        name=None,
        **kwargs,
    ):
        if vocabulary_dtype != "int64":
            raise ValueError(
                f"Only `vocabulary_dtype='int64'` is supported at this time. Received: vocabulary_dtype={vocabulary_dtype}"
            )
        super().__init__(
            max_tokens=max_tokens,
            num_oov_indices=num_oov_indices,
            mask_token=None if mask_token is None else int(mask_token),
            oov_token=None if oov_token is None else int(oov_token),
            vocabulary=vocabulary,
            vocabulary_dtype=vocabulary_dtype,
            idf_weights=idf_weights,
            invert=invert,
            output_mode=output_mode,
            sparse=sparse,
            pad_to_max_tokens=pad_to_max_tokens,
            oov_method=oov_method,
            salt=salt,
            name=name,
            **kwargs,
        )
