"""Hashing and HashedCrossing: TensorFlow's FarmHash/SipHash buckets, computed in Python.

Keras builds both on TensorFlow string hashes (``to_hash_bucket_fast``/``_strong``,
``tf.sparse.cross_hashed``); ``irtool.ops.fingerprint`` implements them from the published
algorithms. They run in the NumPy executor; the ONNX export refuses them (no ONNX operator
computes these hashes) with a message saying to keep them in the input pipeline.
"""

from __future__ import annotations

import numpy as np

from irtool import ops
from irtool.ir.dtypes import standardize_dtype
from irtool.layers.layer import Layer
from irtool.layers.preprocessing_categorical import encode_categorical
from irtool.ops.core import SymbolicTensor
from irtool.ops.strings import LookupTable, hash_bucket, hash_cross, table_lookup
from irtool.strings import to_string_array

_OUTPUT_MODES = ("int", "one_hot", "multi_hot", "count")


def _eager(x):
    if isinstance(x, SymbolicTensor):
        return x
    x = np.asarray(x)
    return to_string_array(x) if x.dtype.kind in "OUS" else x


def _check_output_mode(output_mode, sparse):
    if output_mode not in _OUTPUT_MODES:
        raise ValueError(
            f"Invalid value for argument `output_mode`. Expected one of {_OUTPUT_MODES}. "
            f"Received: output_mode={output_mode}"
        )
    if sparse:
        raise ValueError("`sparse=True` is not supported by irtool (it has no sparse tensors). Use `sparse=False`.")


class Hashing(Layer):
    """Hash strings or numbers into ``num_bins`` buckets, as Keras 3 (TensorFlow's FarmHash, or
    SipHash-2-4 keyed by ``salt``); ``mask_value`` maps to bin 0 and the rest to ``1 + hash % (n - 1)``.
    Numbers are hashed as their decimal digits (floats truncated first).

    >>> Hashing(num_bins=3)(np.array([["A"], ["B"], ["C"], ["D"], ["E"]])).ravel().tolist()
    [1, 0, 1, 1, 2]
    """

    def __init__(self, num_bins, mask_value=None, salt=None, output_mode="int", sparse=False, **kwargs):
        if kwargs.get("dtype") is None:
            kwargs["dtype"] = "int64" if output_mode == "int" else "float32"
        super().__init__(**kwargs)
        if num_bins is None or num_bins <= 0:
            raise ValueError(
                f"The `num_bins` for `Hashing` cannot be `None` or non-positive values. Received: num_bins={num_bins}."
            )
        if output_mode == "int" and self.dtype not in ("int32", "int64"):
            raise ValueError(
                "When `output_mode=\"int\"`, `dtype` should be an integer type, 'int32' or 'in64'. "
                f"Received: dtype={self.dtype}"
            )
        _check_output_mode(output_mode, sparse)
        if salt is not None:
            if isinstance(salt, (tuple, list)) and len(salt) == 2:
                salt = list(salt)
            elif isinstance(salt, int):
                salt = [salt, salt]
            else:
                raise ValueError(
                    "The `salt` argument for `Hashing` can only be a tuple of size 2 integers, or a single integer. "
                    f"Received: salt={salt}."
                )
        self.num_bins = num_bins
        self.mask_value = mask_value
        self.salt = salt
        self.output_mode = output_mode
        self.sparse = sparse
        self.built = True

    def call(self, inputs):
        x = _eager(inputs)
        bins = self.num_bins
        masked = self.mask_value is not None and bins > 1
        if masked:
            bins -= 1
        hashed = hash_bucket(x, bins, self.salt)
        if masked:
            # Compared before any cast, as Keras does: a float mask matches only that float.
            if standardize_dtype(x.dtype) == "string":
                # String equality is a one-key table (no comparison primitive takes strings).
                table = LookupTable("string", "int64", 0)
                table.set([str(self.mask_value)], [1])
                mask = ops.equal(table_lookup(x, table), np.ones((), np.int64))
            else:
                mask = ops.equal(x, np.asarray(self.mask_value, dtype=standardize_dtype(x.dtype)))
            hashed = ops.where(mask, np.zeros((), np.int64), ops.add(hashed, np.ones((), np.int64)))
        if self.output_mode == "one_hot" and len(hashed.shape) and hashed.shape[-1] == 1:
            hashed = ops.squeeze(hashed, -1)  # after hashing: shape ops take no strings
        return encode_categorical(hashed, self.output_mode, self.num_bins, self.dtype)

    def compute_output_shape(self, input_shape):
        if self.output_mode == "int":
            return tuple(input_shape)
        if len(input_shape) == 0:
            return (self.num_bins,)
        return tuple(input_shape[:-1]) + (self.num_bins,)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "num_bins": self.num_bins,
                "salt": self.salt,
                "mask_value": self.mask_value,
                "output_mode": self.output_mode,
                "sparse": self.sparse,
            }
        )
        return config


class HashedCrossing(Layer):
    """Cross two or more categorical features (strings or integers of shape ``()``, ``(batch,)``
    or ``(batch, 1)``) into ``num_bins`` buckets, as ``tf.sparse.cross_hashed`` (Keras 3)."""

    def __init__(self, num_bins, output_mode="int", sparse=False, name=None, dtype=None, **kwargs):
        if dtype is None:
            dtype = "int64" if output_mode == "int" else "float32"
        super().__init__(name=name, dtype=dtype, **kwargs)
        if sparse:
            raise ValueError("`sparse=True` is not supported by irtool (it has no sparse tensors). Use `sparse=False`.")
        if output_mode not in ("int", "one_hot"):
            raise ValueError(
                f"Invalid value for argument `output_mode`. Expected one of ('int', 'one_hot'). "
                f"Received: output_mode={output_mode}"
            )
        self.num_bins = num_bins
        self.output_mode = output_mode
        self.sparse = sparse
        self.built = True

    def call(self, inputs):
        if not isinstance(inputs, (list, tuple)) or len(inputs) < 2:
            raise ValueError(
                f"`HashedCrossing` should be called on a list or tuple of at least two inputs. Received: inputs={inputs}"
            )
        inputs = [_eager(x) for x in inputs]
        shape = tuple(inputs[0].shape)
        if len(shape) > 2 or (len(shape) == 2 and shape[-1] != 1):
            raise ValueError(
                "All `HashedCrossing` inputs should have shape `()`, `(batch_size)` or `(batch_size, 1)`. "
                f"Received: shapes {[tuple(x.shape) for x in inputs]}"
            )
        if any(tuple(x.shape) != shape for x in inputs[1:]):
            raise ValueError(
                f"All `HashedCrossing` inputs should have equal shape. Received: shapes {[tuple(x.shape) for x in inputs]}"
            )
        crossed = hash_cross(inputs, self.num_bins)
        return encode_categorical(crossed, self.output_mode, self.num_bins, self.dtype)

    def compute_output_shape(self, input_shape):
        shape = tuple(input_shape[0])
        if self.output_mode == "int":
            return shape
        if not shape:
            return (self.num_bins,)
        if shape[-1] != 1:
            return shape + (self.num_bins,)
        return shape[:-1] + (self.num_bins,)

    def get_config(self):
        return {
            "num_bins": self.num_bins,
            "output_mode": self.output_mode,
            "sparse": self.sparse,
            "name": self.name,
            "dtype": self.dtype,
        }
