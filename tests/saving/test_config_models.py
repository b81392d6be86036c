"""Model configs (functional, Sequential, nested, shared, multi-IO, raw ops), JSON and clone_model."""

from __future__ import annotations

import json

import numpy as np
import pytest

import irtool as keras
from irtool import layers, ops
from irtool.models import clone_model, model_from_json

from ..harness import assert_same_outputs as assert_same_predictions


def feeds(model, seed=0):
    rng = np.random.default_rng(seed)
    out = []
    for t in model.inputs:
        shape = tuple(3 if d is None else d for d in t.shape)
        if t.dtype.startswith("int"):
            out.append(rng.integers(0, 10, shape).astype(t.dtype))
        else:
            out.append(rng.standard_normal(shape).astype(t.dtype))
    return out if len(out) > 1 else out[0]


def mlp():
    inputs = keras.Input(shape=(8,), name="img")
    x = layers.Dense(6, activation="relu", kernel_regularizer="l2")(inputs)
    x = layers.Dropout(0.2)(x)
    return keras.Model(inputs, layers.Dense(3)(x), name="mlp")


def multi_io():
    title = keras.Input(shape=(None,), dtype="int32", name="title")
    tags = keras.Input(shape=(4,), name="tags")
    features = layers.LSTM(5)(layers.Embedding(20, 4, mask_zero=True)(title))
    x = layers.concatenate([features, tags])
    return keras.Model(
        inputs={"title": title, "tags": tags},
        outputs={"priority": layers.Dense(1, name="priority")(x), "department": layers.Dense(3, name="dept")(x)},
        name="tickets",
    )


def shared_layers():
    a = keras.Input(shape=(6,), name="a")
    b = keras.Input(shape=(6,), name="b")
    shared = layers.Dense(6, activation="tanh", name="shared")
    # Called at two depths, so one node must wait for the other when the model is rebuilt.
    deep = shared(shared(a))
    return keras.Model([a, b], [deep, shared(b)], name="shared")


def raw_ops():
    a = keras.Input(shape=(4,), name="a")
    b = keras.Input(shape=(4,), name="b")
    x = a + b * 2.0
    y = ops.sum(ops.reshape(x, (-1, 2, 2)), axis=1)
    z = ops.concatenate([x[:, 1:3], y], axis=-1)
    w = ops.where(z > 0, z, ops.negative(z))
    e = ops.einsum("ij,ij->i", a, b)
    return keras.Model([a, b], [layers.Dense(2, name="head")(w), ops.expand_dims(e, -1)], name="raw_ops")


def nested():
    encoder_input = keras.Input(shape=(6,), name="enc_in")
    encoder = keras.Model(encoder_input, layers.Dense(3, name="code")(encoder_input), name="encoder")
    decoder = keras.Sequential([keras.Input((3,)), layers.Dense(6, name="dec")], name="decoder")
    x = keras.Input(shape=(6,), name="x")
    code = encoder(x)
    again = encoder(decoder(code))  # the nested model called twice: node indices 0 and 1
    return keras.Model(x, [decoder(code), again], name="autoencoder")


def sequential():
    return keras.Sequential(
        [keras.Input((5,)), layers.Dense(4, activation="relu"), layers.BatchNormalization(), layers.Dense(2)],
        name="seq",
    )


BUILDERS = {
    "mlp": mlp,
    "multi_io": multi_io,
    "shared_layers": shared_layers,
    "raw_ops": raw_ops,
    "nested": nested,
    "sequential": sequential,
}


@pytest.mark.parametrize("builder", BUILDERS.values(), ids=BUILDERS.keys())
def test_from_config_rebuilds_the_model(builder):
    model = builder()
    config = model.get_config()
    text = json.dumps(config)
    clone = type(model).from_config(json.loads(text))
    assert type(clone) is type(model)
    assert clone.name == model.name
    assert [op.name for op in clone.operations] == [op.name for op in model.operations]
    assert [type(op).__name__ for op in clone.layers] == [type(op).__name__ for op in model.layers]
    assert clone.output_shape == model.output_shape
    assert json.dumps(clone.get_config()) == text
    clone.set_weights(model.get_weights())
    assert_same_predictions(model, clone, feeds(model))


@pytest.mark.parametrize("builder", BUILDERS.values(), ids=BUILDERS.keys())
def test_model_from_json(builder):
    model = builder()
    text = model.to_json()
    restored = model_from_json(text)
    assert json.loads(json.dumps(restored.get_config())) == json.loads(text)["config"]
    restored.set_weights(model.get_weights())
    assert_same_predictions(model, restored, feeds(model))
    assert json.loads(model.to_json(indent=2)) == json.loads(text)


def test_functional_config_structure():
    model = multi_io()
    config = json.loads(json.dumps(model.get_config()))
    assert set(config) == {"name", "trainable", "layers", "input_layers", "output_layers"}
    assert config["input_layers"] == {"title": ["title", 0, 0], "tags": ["tags", 0, 0]}
    assert config["output_layers"] == {"priority": ["priority", 0, 0], "department": ["dept", 0, 0]}
    by_name = {entry["name"]: entry for entry in config["layers"]}
    assert by_name["title"]["inbound_nodes"] == []
    lstm = by_name["lstm"]
    assert set(lstm) == {"module", "class_name", "config", "registered_name", "build_config", "name", "inbound_nodes"}
    assert lstm["build_config"] == {"input_shape": [None, None, 4]}
    (node,) = lstm["inbound_nodes"]
    assert node == {
        "args": [
            {
                "class_name": "__keras_tensor__",
                "config": {"shape": [None, None, 4], "dtype": "float32", "keras_history": ["embedding", 0, 0]},
            }
        ],
        "kwargs": {},  # the mask comes back with the Embedding, as in Keras
    }


def test_shared_layer_nodes_and_nested_model_offsets():
    config = shared_layers().get_config()
    shared = next(entry for entry in config["layers"] if entry["name"] == "shared")
    histories = [node["args"][0]["config"]["keras_history"] for node in shared["inbound_nodes"]]
    assert histories == [["a", 0, 0], ["shared", 0, 0], ["b", 0, 0]]
    assert config["output_layers"] == [["shared", 1, 0], ["shared", 2, 0]]

    config = nested().get_config()
    encoder = next(entry for entry in config["layers"] if entry["name"] == "encoder")
    assert encoder["module"] == "keras.src.models.functional" and encoder["registered_name"] == "Functional"
    assert encoder["config"]["layers"][1]["name"] == "code"
    # Node arguments count the encoder's calls from 0; inputs/outputs count Keras' own node first.
    decoder = next(entry for entry in config["layers"] if entry["name"] == "decoder")
    histories = [node["args"][0]["config"]["keras_history"] for node in decoder["inbound_nodes"]]
    assert histories == [["encoder", 0, 0], ["encoder", 0, 0]]
    assert config["output_layers"] == [["decoder", 1, 0], ["encoder", 2, 0]]


def test_raw_ops_are_serialized_like_keras():
    config = raw_ops().get_config()
    by_class = {entry["class_name"]: entry for entry in config["layers"]}
    add = by_class["Add"]
    assert add["module"] == "keras.src.ops.numpy" and add["registered_name"] == "Add"
    assert add["config"] == {"name": add["name"]}
    assert by_class["Multiply"]["inbound_nodes"][0]["args"][1] == 2.0
    assert by_class["Reshape"]["config"]["newshape"] == (-1, 2, 2)
    assert by_class["Sum"]["config"] == {"name": by_class["Sum"]["name"], "axis": 1, "keepdims": False}
    key = by_class["GetItem"]["inbound_nodes"][0]["args"][1]
    assert key[1] == {"class_name": "__slice__", "config": {"start": 1, "stop": 3, "step": None}}
    assert by_class["Concatenate"]["config"]["axis"] == -1
    assert len(by_class["Concatenate"]["inbound_nodes"][0]["args"][0]) == 2
    assert by_class["Einsum"]["config"]["subscripts"] == "ij,ij->i"


def test_sequential_config():
    model = sequential()
    config = json.loads(json.dumps(model.get_config()))
    assert config["build_input_shape"] == [None, 5]
    assert [entry["class_name"] for entry in config["layers"]] == [
        "InputLayer",
        "Dense",
        "BatchNormalization",
        "Dense",
    ]
    assert "inbound_nodes" not in config["layers"][1]
    unbuilt = keras.Sequential([layers.Dense(3, name="only")], name="lazy")
    config = unbuilt.get_config()
    assert "build_input_shape" not in config and [entry["class_name"] for entry in config["layers"]] == ["Dense"]
    restored = keras.Sequential.from_config(config)
    assert not restored.built and restored.layers[0].name == "only"
    assert restored.predict(np.ones((2, 4), "float32"), verbose=0).shape == (2, 3)


def test_intermediate_input_submodel_round_trips():
    x = keras.Input((4,), name="x")
    hidden = layers.Dense(3, name="hidden")(x)
    output = layers.Dense(2, name="out")(hidden)
    sub = keras.Model(hidden, output, name="tail")
    clone = keras.Model.from_config(json.loads(json.dumps(sub.get_config())))
    assert clone.input_shape == (None, 3) and [layer.name for layer in clone.layers][1:] == ["out"]
    clone.set_weights(sub.get_weights())
    assert_same_predictions(sub, clone, np.ones((2, 3), "float32"))


def test_training_kwarg_and_multiple_outputs_round_trip():
    inputs = keras.Input((5, 3))
    seq, h, c = layers.LSTM(4, return_sequences=True, return_state=True, name="lstm")(inputs)
    dropped = layers.Dropout(0.5, name="drop")(h, training=False)
    model = keras.Model(inputs, [seq, dropped, c])
    model.trainable = False
    config = json.loads(json.dumps(model.get_config()))
    drop = next(entry for entry in config["layers"] if entry["name"] == "drop")
    assert drop["inbound_nodes"][0]["kwargs"] == {"training": False}
    assert config["output_layers"] == [["lstm", 0, 0], ["drop", 0, 0], ["lstm", 0, 2]]
    clone = keras.Model.from_config(config)
    assert clone.trainable is False
    clone.set_weights(model.get_weights())
    assert_same_predictions(model, clone, feeds(model))


def test_invalid_configs_are_refused():
    config = mlp().get_config()
    config["layers"][1]["inbound_nodes"][0]["args"][0]["config"]["keras_history"] = ["missing", 0, 0]
    with pytest.raises(ValueError, match="unknown layer 'missing'"):
        keras.Model.from_config(config)
    config = mlp().get_config()
    # A loop: the first Dense reads the output of the last one.
    last = config["layers"][-1]["name"]
    config["layers"][1]["inbound_nodes"][0]["args"][0]["config"]["keras_history"] = [last, 0, 0]
    with pytest.raises(ValueError, match="loops or disconnected nodes"):
        keras.Model.from_config(config)
    with pytest.raises(ValueError, match="not valid JSON"):
        model_from_json("{not json")


# -- clone_model ------------------------------------------------------------------------------------


@pytest.mark.parametrize("builder", BUILDERS.values(), ids=BUILDERS.keys())
def test_clone_model_has_new_weights_and_same_structure(builder):
    model = builder()
    clone = clone_model(model)
    assert type(clone) is type(model) and clone.name == model.name
    assert [type(layer).__name__ for layer in clone.layers] == [type(layer).__name__ for layer in model.layers]
    assert [layer.name for layer in clone.layers] == [layer.name for layer in model.layers]
    assert not {id(w) for w in clone.weights} & {id(w) for w in model.weights}
    assert [w.shape for w in clone.weights] == [w.shape for w in model.weights]
    assert clone.output_shape == model.output_shape
    clone.set_weights(model.get_weights())
    assert_same_predictions(model, clone, feeds(model))


def test_clone_model_shares_shared_layers_once():
    model = shared_layers()
    clone = clone_model(model)
    assert len(clone.get_layer("shared")._inbound_nodes) == 3
    assert len(clone.weights) == len(model.weights) == 2


def test_clone_function_replaces_layers():
    model = mlp()

    def widen(layer):
        if isinstance(layer, layers.Dense) and layer.units == 3:
            return layers.Dense(5, name="wide_head")
        return layer.__class__.from_config(layer.get_config())

    clone = clone_model(model, clone_function=widen)
    assert clone.output_shape == (None, 5) and clone.layers[-1].name == "wide_head"
    keep = clone_model(model, clone_function=lambda layer: layer)
    assert keep.layers[1] is model.layers[1]


def test_clone_with_input_tensors_and_call_function():
    model = mlp()
    new_input = keras.Input((8,), name="new_input")
    calls = []

    def call_function(layer, *args, **kwargs):
        calls.append(layer.name)
        return layer(*args, **kwargs)

    clone = clone_model(model, input_tensors=new_input, call_function=call_function)
    assert clone.inputs[0] is new_input
    assert calls == [layer.name for layer in model.layers[1:]]
    seq = sequential()
    seq_clone = clone_model(seq, input_tensors=keras.Input((5,), name="fresh"))
    assert seq_clone.layers[0] is not seq.layers[0] and seq_clone.output_shape == (None, 2)
    with pytest.raises(ValueError, match="call_function"):
        clone_model(seq, call_function=call_function)


def test_recursive_clone_clones_nested_layers():
    model = nested()
    seen = []

    def record(layer):
        seen.append(layer.name)
        return layer.__class__.from_config(layer.get_config())

    clone_model(model, clone_function=record, recursive=True)
    assert {"code", "dec"} <= set(seen) and "encoder" not in seen
    seen.clear()
    clone_model(model, clone_function=record)
    assert "encoder" in seen and "code" not in seen


def test_clone_of_subclassed_model_uses_its_config():
    class Scaled(keras.Model):
        def __init__(self, factor=2.0, **kwargs):
            super().__init__(**kwargs)
            self.factor = factor

        def call(self, inputs):
            return inputs * self.factor

    model = Scaled(3.0, name="scaled")
    clone = clone_model(model)
    assert type(clone) is Scaled and clone.factor == 3.0 and clone is not model
    with pytest.raises(ValueError, match="only supported for Sequential models or Functional"):
        clone_model(model, clone_function=lambda layer: layer)


def test_keras2_style_json_loads():
    # What tf.keras 2 wrote: no "module" keys, string dtypes, list-form inbound nodes.
    text = json.dumps(
        {
            "class_name": "Functional",
            "config": {
                "name": "model",
                "layers": [
                    {
                        "class_name": "InputLayer",
                        "config": {"batch_input_shape": [None, 4], "dtype": "float32", "name": "input_1"},
                        "name": "input_1",
                        "inbound_nodes": [],
                    },
                    {
                        "class_name": "Dense",
                        "config": {
                            "name": "dense",
                            "trainable": True,
                            "dtype": "float32",
                            "units": 2,
                            "activation": "relu",
                            "use_bias": True,
                            "kernel_initializer": {"class_name": "GlorotUniform", "config": {"seed": None}},
                            "bias_initializer": {"class_name": "Zeros", "config": {}},
                            "kernel_regularizer": {"class_name": "L2", "config": {"l2": 0.01}},
                            "bias_regularizer": None,
                            "activity_regularizer": None,
                            "kernel_constraint": None,
                            "bias_constraint": None,
                        },
                        "name": "dense",
                        "inbound_nodes": [[["input_1", 0, 0, {}]]],
                    },
                ],
                "input_layers": [["input_1", 0, 0]],
                "output_layers": [["dense", 0, 0]],
            },
            "keras_version": "2.13.1",
            "backend": "tensorflow",
        }
    )
    model = model_from_json(text)
    assert model.output_shape == (None, 2) and [layer.name for layer in model.layers] == ["input_1", "dense"]
    assert isinstance(model.layers[1].kernel_regularizer, keras.regularizers.L2)
