"""Primitives on string (and categorical integer) tensors: vocabulary tables and hashing.

String tensors are NumPy ``object`` arrays of ``str`` (``irtool.strings.to_string_array``). Only the
primitives here accept them (``accepts_strings``); none is differentiable.

* ``table_lookup``: a static key -> value table with a default, i.e. TensorFlow's
  ``StaticHashTable`` that Keras' lookup layers use. It lowers to ONNX ``ai.onnx.ml``
  ``LabelEncoder`` (string -> int64, int64 -> int64, int64 -> string), which ONNX Runtime runs.
* ``hash_bucket`` and ``hash_cross``: TensorFlow's FarmHash/SipHash buckets and
  ``tf.sparse.cross_hashed``. No ONNX operator computes these hashes, so their lowering refuses
  with what to do instead.
"""

from __future__ import annotations

import numpy as np

from irtool.ir.spec import TensorSpec
from irtool.ops.core import Primitive, apply
from irtool.ops.fingerprint import fingerprint64, fingerprint_cat64, siphash24

# ONNX Runtime implements LabelEncoder from ai.onnx.ml opset 2 on (string/int64 keys and values).
ML_DOMAIN = "ai.onnx.ml"
ML_OPSET = 2

OUTSIDE_THE_MODEL = (
    "keep it outside the exported model: preprocess in your input pipeline and export the model from the layer after it"
)


def _is_integer(dtype: str) -> bool:
    return dtype.startswith(("int", "uint"))


def _map(function, x: np.ndarray, dtype) -> np.ndarray:
    """``function`` on every element of ``x`` (Python values), as an array of ``dtype``."""
    flat = [function(v) for v in x.ravel().tolist()]
    if dtype is object:
        out = np.empty(len(flat), dtype=object)
        out[:] = flat
        return out.reshape(x.shape)
    return np.asarray(flat, dtype=dtype).reshape(x.shape)


class LookupTable:
    """A key -> value table with a default, read when the graph runs (like a Variable's value):
    a lookup layer fills it from its vocabulary, adapt or a loaded file after its graph is traced.

    ``keys`` are strings or integers (looked up as int64), ``values`` int64 or strings; the key
    and value kinds are fixed at construction so shapes and dtypes can be inferred before any
    vocabulary is set.
    """

    def __init__(self, key_dtype: str, value_dtype: str, default):
        self.key_dtype, self.value_dtype, self.default = key_dtype, value_dtype, default
        self.set([], [])

    def set(self, keys, values) -> None:
        self.keys, self.values = list(keys), list(values)
        self._dict = dict(zip(self.keys, self.values))
        if self.key_dtype != "string":
            order = np.argsort(np.asarray(self.keys, dtype=np.int64), kind="stable")
            self._sorted_keys = np.asarray(self.keys, dtype=np.int64)[order]
            self._sorted_values = np.empty(
                len(self.keys) + 1, dtype=object if self.value_dtype == "string" else np.int64
            )
            self._sorted_values[:-1] = [self.values[i] for i in order]
            self._sorted_values[-1] = self.default

    def lookup(self, x) -> np.ndarray:
        x = np.asarray(x)
        if self.key_dtype == "string":
            get, default = self._dict.get, self.default
            return _map(lambda v: get(v, default), x, object if self.value_dtype == "string" else np.int64)
        x = x.astype(np.int64)
        where = np.searchsorted(self._sorted_keys, x)
        where[where == len(self._sorted_keys)] = 0
        found = self._sorted_keys[where] == x if len(self._sorted_keys) else np.zeros(x.shape, bool)
        return self._sorted_values[np.where(found, where, len(self._sorted_keys))]

    def __repr__(self) -> str:
        return f"<LookupTable {self.key_dtype}->{self.value_dtype}, {len(self.keys)} keys>"


class TableLookup(Primitive):
    """``table[x]`` for each element of ``x`` (``table.default`` where ``x`` is not a key)."""

    name = "table_lookup"
    accepts_strings = True
    differentiable = False

    def infer(self, specs, table):
        (x,) = specs
        string_keys = table.key_dtype == "string"
        if string_keys != (x.dtype == "string") or not (string_keys or _is_integer(x.dtype)):
            want = "a string tensor" if string_keys else "an integer tensor"
            raise ValueError(f"`table_lookup` with {table.key_dtype} keys needs {want}. Received: {x}.")
        return [TensorSpec(x.shape, table.value_dtype)]

    def forward(self, x, table):
        return table.lookup(x)

    def vjp(self, cotangents, inputs, outputs, **attrs):
        return [None]

    def to_onnx(self, ctx, ins, outs, table):
        if not table.keys:
            ctx.fail(self, "its vocabulary is empty: set one or adapt the layer before exporting")
        ctx.use_domain(ML_DOMAIN, ML_OPSET)
        (x,) = ins
        attrs = {}
        if table.key_dtype == "string":
            attrs["keys_strings"] = list(table.keys)
        else:
            if ctx.dtype_of(x) != "int64":
                x = ctx.node("Cast", [x], to=ctx.onnx_dtype("int64"))[0]
            attrs["keys_int64s"] = [int(k) for k in table.keys]
        if table.value_dtype == "string":
            attrs.update(values_strings=list(table.values), default_string=table.default)
        else:
            attrs.update(values_int64s=[int(v) for v in table.values], default_int64=int(table.default))
        ctx.node("LabelEncoder", [x], outs, domain=ML_DOMAIN, **attrs)


TABLE_LOOKUP = TableLookup()


def table_lookup(x, table: LookupTable):
    """Map each element of ``x`` through ``table`` (read when the graph runs)."""
    return apply(TABLE_LOOKUP, [x], table=table)[0]


def hash_key(value) -> bytes:
    """The bytes TensorFlow hashes for one element: a string's UTF-8, an integer's decimal digits
    (``tf.strings.as_string``), a float truncated to an integer first (as Keras' Hashing does)."""
    if isinstance(value, bytes):
        return value
    if isinstance(value, str):
        return value.encode("utf-8")
    return str(int(value)).encode("ascii")


class HashBucket(Primitive):
    """``hash(x) % num_bins`` per element: FarmHash ``Fingerprint64`` (TensorFlow's
    ``to_hash_bucket_fast``), or keyed SipHash-2-4 with ``salt=(k0, k1)`` (``to_hash_bucket_strong``).
    Numbers are hashed as their decimal digits (``hash_key``)."""

    name = "hash_bucket"
    accepts_strings = True
    differentiable = False

    def infer(self, specs, num_bins, salt):
        (x,) = specs
        if x.dtype == "bool":
            raise ValueError(f"`hash_bucket` needs strings or numbers. Received: {x}.")
        return [TensorSpec(x.shape, "int64")]

    def forward(self, x, num_bins, salt):
        x = np.asarray(x)
        if x.dtype.kind == "f":
            x = x.astype(np.int64)  # tf.cast truncates toward zero
        if salt is None:
            return _map(lambda v: fingerprint64(hash_key(v)) % num_bins, x, np.int64)
        return _map(lambda v: siphash24(salt, hash_key(v)) % num_bins, x, np.int64)

    def vjp(self, cotangents, inputs, outputs, **attrs):
        return [None]

    def to_onnx(self, ctx, ins, outs, num_bins, salt):
        which = "FarmHash fingerprint64" if salt is None else "SipHash-2-4"
        ctx.fail(
            self,
            f"Keras' Hashing layer hashes with TensorFlow's {which}, which no ONNX operator computes; "
            + OUTSIDE_THE_MODEL,
        )


HASH_BUCKET = HashBucket()


def hash_bucket(x, num_bins, salt=None):
    return apply(HASH_BUCKET, [x], num_bins=int(num_bins), salt=None if salt is None else tuple(salt))[0]


# tf.sparse.cross_hashed's default hash_key.
_CROSS_HASH_KEY = 0xDECAFCAFFE


class HashCross(Primitive):
    """``tf.sparse.cross_hashed`` on dense inputs of one shape, one value per feature: the chained
    ``FingerprintCat64`` of each feature's hash (a string's ``Fingerprint64``, an integer itself,
    as a 64-bit word), modulo ``num_bins``."""

    name = "hash_cross"
    accepts_strings = True
    differentiable = False

    def infer(self, specs, num_bins):
        shape = specs[0].shape
        for spec in specs:
            if not (spec.dtype == "string" or _is_integer(spec.dtype)):
                raise ValueError(f"`hash_cross` needs string or integer inputs. Received: {list(map(str, specs))}.")
            if len(spec.shape) != len(shape) or any(
                a not in (b, None) and b is not None for a, b in zip(spec.shape, shape)
            ):
                raise ValueError(f"`hash_cross` needs inputs of one shape. Received: {list(map(str, specs))}.")
        return [TensorSpec(shape, "int64")]

    def forward(self, *xs, num_bins):
        columns = []
        for x in xs:
            x = np.asarray(x)
            if x.dtype.kind in "OUS":
                columns.append([fingerprint64(hash_key(v)) for v in x.ravel().tolist()])
            else:
                columns.append([int(v) & 0xFFFFFFFFFFFFFFFF for v in x.astype(np.int64).ravel().tolist()])
        out = []
        for features in zip(*columns):
            hashed = _CROSS_HASH_KEY
            for feature in features:
                hashed = fingerprint_cat64(hashed, feature)
            out.append(hashed % num_bins)
        return np.asarray(out, dtype=np.int64).reshape(np.shape(xs[0]))

    def vjp(self, cotangents, inputs, outputs, **attrs):
        return [None] * len(inputs)

    def to_onnx(self, ctx, ins, outs, num_bins):
        ctx.fail(
            self,
            "Keras' HashedCrossing layer crosses features with TensorFlow's FarmHash fingerprints, which no ONNX operator "
            "computes; " + OUTSIDE_THE_MODEL,
        )


HASH_CROSS = HashCross()


def hash_cross(xs, num_bins):
    return apply(HASH_CROSS, list(xs), num_bins=int(num_bins))[0]
