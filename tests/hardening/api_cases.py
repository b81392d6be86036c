"""The Python API cases of the hardening matrix, written against a Keras-like namespace ``k``.

Each case is a function of ``k`` (``irtool`` or the real ``keras``) that must raise, so the same
line runs on both: the test checks irtool's exception type and message, and (``keras=True``) that
Keras refuses the same input too, with an exception of the same family.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class ApiCase:
    run: Callable
    error: type
    fragments: tuple[str, ...]
    keras: bool = True


def dense_model(k, units=3, features=4, name="m"):
    inputs = k.Input((features,), name="x")
    return k.Model(inputs, k.layers.Dense(units, name="out")(inputs), name=name)


def two_input_model(k):
    a, b = k.Input((4,), name="a"), k.Input((2,), name="b")
    return k.Model([a, b], k.layers.Concatenate()([a, b]), name="two")


def call_on(k, layer, shape, dtype="float32"):
    return layer(k.Input(shape, dtype=dtype))


def f32(*shape):
    return np.zeros(shape, "float32")


# fmt: off
CONSTRUCTORS = {
    "Dense negative units": ApiCase(lambda k: k.layers.Dense(-1), ValueError, ("units", "-1")),
    "Dense zero units": ApiCase(lambda k: k.layers.Dense(0), ValueError, ("units", "0")),
    "Dense string units": ApiCase(lambda k: k.layers.Dense("3"), (ValueError, TypeError), ("units",)),
    "Dense bad activation": ApiCase(lambda k: k.layers.Dense(3, activation="relux"), ValueError, ("relux",)),
    "Dense bad initializer": ApiCase(lambda k: k.layers.Dense(3, kernel_initializer="nope"), ValueError, ("nope",)),
    "Dense bad regularizer": ApiCase(lambda k: k.layers.Dense(3, kernel_regularizer="nope"), ValueError, ("nope",)),
    "Dense bad constraint": ApiCase(lambda k: k.layers.Dense(3, kernel_constraint="nope"), ValueError, ("nope",)),
    "Activation unknown": ApiCase(lambda k: k.layers.Activation("sigmoidal"), ValueError, ("sigmoidal",)),
    "Conv2D zero filters": ApiCase(lambda k: k.layers.Conv2D(0, 3), ValueError, ("filters", "0")),
    "Conv2D zero kernel": ApiCase(lambda k: k.layers.Conv2D(4, 0), ValueError, ("kernel_size", "0")),
    "Conv2D zero strides": ApiCase(lambda k: k.layers.Conv2D(4, 3, strides=0), ValueError, ("strides", "0")),
    "Conv2D bad padding": ApiCase(lambda k: k.layers.Conv2D(4, 3, padding="full"), ValueError, ("padding", "full")),
    "Conv2D bad data_format": ApiCase(lambda k: k.layers.Conv2D(4, 3, data_format="nhwc"), ValueError, ("nhwc",)),
    "Conv2D groups not dividing": ApiCase(lambda k: k.layers.Conv2D(5, 3, groups=2), ValueError, ("groups", "5")),
    "Conv1D kernel too long": ApiCase(lambda k: k.layers.Conv1D(2, (3, 3)), ValueError, ("kernel_size",)),
    "Dropout rate above 1": ApiCase(lambda k: k.layers.Dropout(1.5), ValueError, ("rate", "1.5")),
    "Dropout negative rate": ApiCase(lambda k: k.layers.Dropout(-0.1), ValueError, ("rate", "-0.1")),
    "Embedding zero vocabulary": ApiCase(lambda k: k.layers.Embedding(0, 4), ValueError, ("input_dim", "0")),
    "Embedding zero width": ApiCase(lambda k: k.layers.Embedding(10, 0), ValueError, ("output_dim", "0")),
    "LSTM zero units": ApiCase(lambda k: k.layers.LSTM(0), ValueError, ("units", "0")),
    "GRU negative units": ApiCase(lambda k: k.layers.GRU(-2), ValueError, ("units", "-2")),
    "MaxPooling2D zero pool": ApiCase(lambda k: k.layers.MaxPooling2D(pool_size=0), ValueError, ("pool_size", "0")),
    "AveragePooling1D bad padding": ApiCase(lambda k: call_on(k, k.layers.AveragePooling1D(2, padding="full"), (4, 2)), ValueError, ("padding", "full")),
    "MultiHeadAttention zero heads": ApiCase(lambda k: k.layers.MultiHeadAttention(num_heads=0, key_dim=2)(k.Input((3, 4)), k.Input((3, 4))), ValueError, ("num_heads", "0"), keras=False),
    "Reshape two unknown dims": ApiCase(lambda k: k.layers.Reshape((-1, -1)), ValueError, ("at most one unknown dimension", "target_shape=(-1, -1)")),
    "Reshape negative dim": ApiCase(lambda k: k.layers.Reshape((2, -3)), ValueError, ("non-negative integer", "target_shape=(2, -3)")),
    "Reshape wrong size": ApiCase(lambda k: call_on(k, k.layers.Reshape((5,)), (4,)), ValueError, ("(5,)", "4")),
    "Permute not a permutation": ApiCase(lambda k: k.layers.Permute((1, 1)), ValueError, ("(1, 1)",)),
    "Input negative dim": ApiCase(lambda k: k.Input((-2,)), ValueError, ("Negative dimensions are not allowed", "(-2,)")),
    "Input unknown dtype": ApiCase(lambda k: k.Input((2,), dtype="float13"), (ValueError, TypeError), ("float13",)),
    "Input shape and batch_shape": ApiCase(lambda k: k.Input(shape=(2,), batch_shape=(1, 2)), ValueError, ("batch_shape",)),
    "Input shape a string": ApiCase(lambda k: k.Input(shape="abc"), ValueError, ("Cannot convert", "invalid dimension 'a'"), keras=False),
    "Softmax bad axis at call": ApiCase(lambda k: call_on(k, k.layers.Softmax(axis=4), (3,)), ValueError, ("axis",), keras=False),
    "BatchNormalization axis out of range": ApiCase(lambda k: call_on(k, k.layers.BatchNormalization(axis=5), (3,)), ValueError, ("axis",)),
    "LayerNormalization axis out of range": ApiCase(lambda k: call_on(k, k.layers.LayerNormalization(axis=7), (3,)), ValueError, ("axis",)),
    "ZeroPadding2D negative": ApiCase(lambda k: k.layers.ZeroPadding2D(-1), ValueError, ("-1",), keras=False),
    "Flatten bad data_format": ApiCase(lambda k: k.layers.Flatten(data_format="nchw"), ValueError, ("nchw",)),
    "Dense unknown keyword": ApiCase(lambda k: k.layers.Dense(3, unitz=4), ValueError, ("Unrecognized keyword arguments passed to Dense", "unitz")),
}

LAYER_CALLS = {
    "Dense on a scalar input": ApiCase(lambda k: call_on(k, k.layers.Dense(3), ()), ValueError, ("dense",)),
    "Conv2D on rank 3": ApiCase(lambda k: call_on(k, k.layers.Conv2D(2, 3), (8, 3)), ValueError, ("ndim=4", "ndim=3")),
    "Conv2D kernel larger than image": ApiCase(lambda k: call_on(k, k.layers.Conv2D(2, 5), (3, 3, 1)), ValueError, ("3",)),
    "LSTM on rank 2": ApiCase(lambda k: call_on(k, k.layers.LSTM(2), (4,)), ValueError, ("ndim=3", "ndim=2")),
    "MaxPooling1D on rank 4": ApiCase(lambda k: call_on(k, k.layers.MaxPooling1D(), (4, 4, 4)), ValueError, ("ndim=3", "ndim=4")),
    "Add of mismatched shapes": ApiCase(lambda k: k.layers.Add()([k.Input((3,)), k.Input((4,))]), ValueError, ("(None, 3)", "(None, 4)")),
    "Add of no tensors": ApiCase(lambda k: k.layers.Add()([]), (ValueError, TypeError), ("list of inputs",)),
    "Add of a tensor not a list": ApiCase(lambda k: k.layers.Add()(k.Input((3,))), ValueError, ("list",)),
    "Concatenate mismatched": ApiCase(lambda k: k.layers.Concatenate()([k.Input((3, 2)), k.Input((4, 2))]), ValueError, ("(None, 3, 2)", "(None, 4, 2)")),
    "Concatenate bad axis": ApiCase(lambda k: k.layers.Concatenate(axis=3)([k.Input((3,)), k.Input((3,))]), ValueError, ("axis",)),
    "Dot mismatched axes": ApiCase(lambda k: k.layers.Dot(axes=1)([k.Input((3,)), k.Input((4,))]), ValueError, ("3", "4")),
    "Dense rebuilt on another width": ApiCase(lambda k: (lambda d: (d(k.Input((4,))), d(k.Input((5,)))))(k.layers.Dense(2, name="shared")), ValueError, ("shared", "4", "5")),
    "Reshape of a wrong size": ApiCase(lambda k: call_on(k, k.layers.Reshape((2, 3)), (4,)), ValueError, ("(2, 3)",)),
    "MultiHeadAttention value mismatch": ApiCase(lambda k: k.layers.MultiHeadAttention(2, 4)(k.Input((3, 4)), k.Input((5, 4)), k.Input((6, 4))), ValueError, ("5", "6")),
    "a layer on a NumPy list": ApiCase(lambda k: k.layers.Dense(2)([[1.0, 2.0], [3.0]]), (ValueError, TypeError), ("dense",), keras=False),
}

MODELS = {
    "disconnected output": ApiCase(lambda k: k.Model(k.Input((3,), name="a"), k.layers.Dense(2)(k.Input((3,), name="b"))), ValueError, ("not connected",)),
    "output not a tensor": ApiCase(lambda k: k.Model(k.Input((3,)), 3), ValueError, ("3",)),
    "input not an Input": ApiCase(lambda k: (lambda x: k.Model(k.layers.Dense(2)(x), x))(k.Input((3,))), ValueError, ("not connected to `inputs`",)),
    "no inputs": ApiCase(lambda k: k.Model([], []), ValueError, ("inputs",)),
    "duplicate layer names": ApiCase(lambda k: (lambda x: k.Model(x, k.layers.Dense(2, name="d")(k.layers.Dense(2, name="d")(x))))(k.Input((3,))), ValueError, ("d",)),
    "get_layer unknown name": ApiCase(lambda k: dense_model(k).get_layer("nope"), ValueError, ("nope",)),
    "get_layer index past the end": ApiCase(lambda k: dense_model(k).get_layer(index=2), ValueError, ("index", "2")),
    "get_layer nothing": ApiCase(lambda k: dense_model(k).get_layer(), ValueError, ("name", "index")),
    "Sequential add a non-layer": ApiCase(lambda k: k.Sequential().add(3), ValueError, ("3",)),
    "Sequential pop empty": ApiCase(lambda k: k.Sequential(name="s").pop(), IndexError, ("pop() on Sequential model 's'", "no layers")),
    "from_config with a cycle": ApiCase(lambda k: k.Model.from_config(_cyclic_config()), ValueError, ("either has loops or disconnected nodes", "{'a': 1, 'b': 1}"), keras=False),
    "from_config unknown layer": ApiCase(lambda k: k.Model.from_config(_unknown_class_config()), (ValueError, TypeError), ("NoSuchLayer",), keras=False),
    "model_from_json not json": ApiCase(lambda k: k.models.model_from_json("{nope"), ValueError, ("not valid JSON", "line 1 column 2"), keras=False),
    "model_from_json deeply nested": ApiCase(lambda k: k.models.model_from_json("[" * 5000 + "]" * 5000), ValueError, ("5,000 levels deep", "limit of 100 levels"), keras=False),
}

PREDICT = {
    "wrong width": ApiCase(lambda k: dense_model(k).predict(f32(2, 5), verbose=0), ValueError, ("(None, 4)", "(2, 5)")),
    "wrong rank": ApiCase(lambda k: dense_model(k).predict(f32(2, 4, 3), verbose=0), ValueError, ("(None, 4)", "(2, 4, 3)")),
    "rank 1": ApiCase(lambda k: dense_model(k).predict(f32(4), verbose=0), ValueError, ("(4,)",)),
    "strings": ApiCase(lambda k: dense_model(k).predict(np.array([["a"] * 4]), verbose=0), ValueError, ("Input 0 with name 'x' of layer 'm' expects float32 values", "<U1"), keras=False),
    "objects": ApiCase(lambda k: dense_model(k).predict(np.array([[object()] * 4]), verbose=0), TypeError, ("Input 0 with name 'x' of layer 'm' expects float32 values", "object"), keras=False),
    "ragged list": ApiCase(lambda k: dense_model(k).predict([[1.0, 2.0, 3.0, 4.0], [1.0]], verbose=0), ValueError, ("'m' expects 1 input(s)", "received 5"), keras=False),
    "None": ApiCase(lambda k: dense_model(k).predict(None, verbose=0), ValueError, ("name 'x'", "Expected shape (None, 4)"), keras=False),
    "too many inputs": ApiCase(lambda k: dense_model(k).predict([f32(2, 4), f32(2, 4)], verbose=0), ValueError, ("1", "2")),
    "too few inputs": ApiCase(lambda k: two_input_model(k).predict([f32(2, 4)], verbose=0), ValueError, ("2", "1")),
    "batch sizes differ": ApiCase(lambda k: two_input_model(k).predict([f32(2, 4), f32(3, 2)], verbose=0), ValueError, ("2", "3")),
    "dict with unknown key": ApiCase(lambda k: two_input_model(k).predict({"a": f32(2, 4), "c": f32(2, 2)}, verbose=0), ValueError, ("Missing data for input(s) ['b']", "['a', 'b']"), keras=False),
    "negative batch_size": ApiCase(lambda k: dense_model(k).predict(f32(2, 4), batch_size=-1, verbose=0), ValueError, ("batch_size should be a positive integer value, but got batch_size=-1",)),
    "fit negative batch_size": ApiCase(lambda k: _compiled(k).fit(f32(4, 4), f32(4, 3), batch_size=-2, verbose=0), ValueError, ("batch_size=-2",)),
    "call with wrong width": ApiCase(lambda k: dense_model(k)(f32(2, 5)), ValueError, ("(None, 4)", "(2, 5)"), keras=False),
    "evaluate without compile": ApiCase(lambda k: dense_model(k).evaluate(f32(2, 4), f32(2, 3), verbose=0), (ValueError, RuntimeError), ("compile",), keras=False),
    "fit with mismatched rows": ApiCase(lambda k: _compiled(k).fit(f32(4, 4), f32(3, 3), verbose=0), ValueError, ("4", "3"), keras=False),
}

WEIGHTS = {
    "set_weights too few": ApiCase(lambda k: dense_model(k).set_weights([f32(4, 3)]), ValueError, ("2", "1")),
    "set_weights too many": ApiCase(lambda k: dense_model(k).set_weights([f32(4, 3), f32(3), f32(3)]), ValueError, ("2", "3")),
    "set_weights wrong shape": ApiCase(lambda k: dense_model(k).set_weights([f32(3, 4), f32(3)]), ValueError, ("(4, 3)", "(3, 4)")),
    "set_weights swapped": ApiCase(lambda k: dense_model(k).set_weights([f32(3), f32(4, 3)]), ValueError, ("(4, 3)", "(3,)")),
    "set_weights strings": ApiCase(lambda k: dense_model(k).set_weights([np.full((4, 3), "a"), f32(3)]), ValueError, ("could not convert string to float",), keras=False),
    "layer set_weights unbuilt": ApiCase(lambda k: k.layers.Dense(2).set_weights([f32(4, 2), f32(2)]), ValueError, ("0", "2")),
    "layer set_weights wrong shape": ApiCase(lambda k: dense_model(k).get_layer("out").set_weights([f32(4, 2), f32(3)]), ValueError, ("(4, 3)", "(4, 2)")),
    "variable assign wrong shape": ApiCase(lambda k: dense_model(k).get_layer("out").kernel.assign(f32(2, 2)), ValueError, ("(4, 3)", "(2, 2)")),
    "load_weights missing file": ApiCase(lambda k: dense_model(k).load_weights("/nonexistent/m.weights.h5"), FileNotFoundError, ("No such file: /nonexistent/m.weights.h5",), keras=False),
    "load_weights wrong suffix": ApiCase(lambda k: dense_model(k).load_weights("/tmp/m.txt"), ValueError, (".weights.h5",)),
    "weights beyond memory": ApiCase(lambda k: call_on(k, k.layers.Dense(2**20), (2**24,)), ValueError, ("weight 'kernel'", "of memory available", "refusing it before allocating"), keras=False),
    "embedding beyond memory": ApiCase(lambda k: call_on(k, k.layers.Embedding(2**40, 64), (3,), dtype="int64"), ValueError, ("embeddings", "of memory available"), keras=False),
    "huge Input then Dense": ApiCase(lambda k: call_on(k, k.layers.Dense(8), (10**12,)), ValueError, ("(1000000000000, 8)", "of memory available"), keras=False),
}
# fmt: on


def _compiled(k):
    model = dense_model(k)
    model.compile(optimizer="sgd", loss="mse")
    return model


def _layer_config(name, inbound):
    return {
        "module": "keras.layers",
        "class_name": "Dense",
        "config": {"name": name, "units": 4},
        "name": name,
        "inbound_nodes": [
            {
                "args": [
                    {
                        "class_name": "__keras_tensor__",
                        "config": {"shape": [None, 4], "dtype": "float32", "keras_history": [inbound, 0, 0]},
                    }
                ],
                "kwargs": {},
            }
        ],
    }


def _cyclic_config():
    return {
        "name": "cycle",
        "layers": [_layer_config("a", "b"), _layer_config("b", "a")],
        "input_layers": [["a", 0, 0]],
        "output_layers": [["b", 0, 0]],
    }


def _unknown_class_config():
    config = _cyclic_config()
    config["layers"] = [
        {
            "module": "keras.layers",
            "class_name": "InputLayer",
            "config": {"name": "x", "batch_shape": [None, 4], "dtype": "float32"},
            "name": "x",
            "inbound_nodes": [],
        },
        {**_layer_config("a", "x"), "class_name": "NoSuchLayer"},
    ]
    config["input_layers"] = [["x", 0, 0]]
    config["output_layers"] = [["a", 0, 0]]
    return config


FAMILIES = {
    "constructor": CONSTRUCTORS,
    "layer call": LAYER_CALLS,
    "model": MODELS,
    "predict": PREDICT,
    "weights": WEIGHTS,
}
