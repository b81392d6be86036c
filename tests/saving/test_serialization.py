"""serialize_keras_object / deserialize_keras_object: registration, custom objects, safe mode,
regularizers, constraints, initializers and activations."""

from __future__ import annotations

import json

import numpy as np
import pytest

import irtool as keras
from irtool import constraints, initializers, layers, ops, regularizers
from irtool.saving import (
    custom_object_scope,
    deserialize_keras_object,
    get_custom_objects,
    get_registered_name,
    get_registered_object,
    register_keras_serializable,
    serialize_keras_object,
)

from ..harness import require_keras


class CustomDense(layers.Layer):
    """The functional API guide's custom layer: ``__init__`` takes only ``units``."""

    def __init__(self, units=32):
        super().__init__()
        self.units = units

    def build(self, input_shape):
        self.w = self.add_weight(shape=(input_shape[-1], self.units), initializer="random_normal", trainable=True)
        self.b = self.add_weight(shape=(self.units,), initializer="random_normal", trainable=True)

    def call(self, inputs):
        return ops.matmul(inputs, self.w) + self.b

    def get_config(self):
        return {"units": self.units}


def guide_model(layer_class=CustomDense):
    inputs = keras.Input((4,))
    return keras.Model(inputs, layer_class(10)(inputs))


def to_json(obj):
    return json.loads(json.dumps(obj))


def test_guide_custom_layer_round_trips_with_custom_objects():
    model = guide_model()
    config = to_json(model.get_config())
    entry = config["layers"][1]
    assert entry["class_name"] == "CustomDense" and entry["module"] == __name__
    assert entry["registered_name"] == "CustomDense" and entry["config"] == {"units": 10}
    with pytest.raises(TypeError, match=r"Unknown layer: 'CustomDense'.*custom_objects.*register_keras_serializable"):
        keras.Model.from_config(config)
    restored = keras.Model.from_config(config, custom_objects={"CustomDense": CustomDense})
    restored.set_weights(model.get_weights())
    x = np.random.default_rng(0).standard_normal((2, 4)).astype("float32")
    np.testing.assert_allclose(restored.predict(x, verbose=0), model.predict(x, verbose=0), rtol=1e-6)
    with custom_object_scope({"CustomDense": CustomDense}):
        assert isinstance(keras.models.model_from_json(model.to_json()).layers[1], CustomDense)


def test_registered_layer_round_trips_without_custom_objects():
    @register_keras_serializable(package="TestPkg")
    class Doubler(layers.Layer):
        def call(self, inputs):
            return inputs * 2.0

    try:
        assert get_registered_name(Doubler) == "TestPkg>Doubler"
        assert get_registered_object("TestPkg>Doubler") is Doubler
        assert get_custom_objects()["TestPkg>Doubler"] is Doubler
        inputs = keras.Input((3,))
        model = keras.Model(inputs, Doubler(name="twice")(inputs))
        entry = to_json(model.get_config())["layers"][1]
        assert entry["registered_name"] == "TestPkg>Doubler"
        restored = keras.models.model_from_json(model.to_json())
        assert isinstance(restored.get_layer("twice"), Doubler)
        np.testing.assert_allclose(restored.predict(np.ones((1, 3), "float32"), verbose=0), 2.0)
    finally:
        del get_custom_objects()["TestPkg>Doubler"]
    with pytest.raises(ValueError, match="get_config"):
        register_keras_serializable()(type("NoConfig", (), {}))


def test_auto_config_from_init_arguments():
    class Scale(layers.Layer):
        def __init__(self, factor, axes=(1, 2), **kwargs):
            super().__init__(**kwargs)
            self.factor, self.axes = factor, axes

        def call(self, inputs):
            return inputs * self.factor

    config = Scale(3.0, name="s").get_config()
    assert config["factor"] == 3.0 and config["axes"] == (1, 2) and config["name"] == "s"
    assert Scale.from_config(config).factor == 3.0

    class Holder(layers.Layer):
        def __init__(self, inner, **kwargs):
            super().__init__(**kwargs)
            self.inner = inner

    with pytest.raises(NotImplementedError, match="must override `get_config\\(\\)`"):
        Holder(layers.Dense(2)).get_config()


def test_unknown_classes_are_refused_and_modules_never_imported():
    config = {"module": "os", "class_name": "system", "config": {}, "registered_name": None}
    with pytest.raises(TypeError, match="Unknown object: 'system' \\(module 'os'\\)"):
        deserialize_keras_object(config)
    config = {"module": "keras.layers", "class_name": "Conv4D", "config": {}, "registered_name": None}
    with pytest.raises(TypeError, match="Unknown layer: 'Conv4D'.*does not implement"):
        deserialize_keras_object(config)
    function = {"module": "builtins", "class_name": "function", "config": "eval", "registered_name": "eval"}
    with pytest.raises(TypeError, match="Unknown function: 'eval'"):
        deserialize_keras_object(function)
    op = {
        "module": "keras.src.ops.numpy",
        "class_name": "Digitize",
        "config": {"name": "d"},
        "registered_name": "Digitize",
    }
    with pytest.raises(TypeError, match="Unknown operation: 'Digitize'"):
        deserialize_keras_object(op)


def test_lambda_layers_need_safe_mode_off():
    inputs = keras.Input((3,))
    model = keras.Model(inputs, layers.Lambda(lambda x: ops.sin(x) * 2.0, name="wave")(inputs))
    text = model.to_json()
    with pytest.raises(ValueError, match="Refusing to load Lambda layer 'wave'.*safe_mode=False"):
        keras.models.model_from_json(text)
    with pytest.raises(ValueError, match="Lambda layer 'wave'"):
        deserialize_keras_object(json.loads(text), safe_mode=True)
    restored = deserialize_keras_object(json.loads(text), safe_mode=False)
    x = np.linspace(-1, 1, 6, dtype="float32").reshape(2, 3)
    np.testing.assert_allclose(restored.predict(x, verbose=0), np.sin(x) * 2.0, rtol=1e-6)
    with pytest.raises(ValueError, match="Refusing"):
        layers.Lambda.from_config(to_json(model.layers[1].get_config()))


def test_named_functions_in_lambda_resolve_by_name():
    def double(x):
        return x * 2.0

    layer = layers.Lambda(double, name="dbl")
    config = to_json(serialize_keras_object(layer))
    assert config["config"]["function"] == {
        "module": __name__,
        "class_name": "function",
        "config": "double",
        "registered_name": "double",
    }
    with pytest.raises(TypeError, match="Unknown function: 'double'"):
        deserialize_keras_object(config)
    assert deserialize_keras_object(config, custom_objects={"double": double}).function is double
    builtin = to_json(serialize_keras_object(layers.Lambda(ops.sin)))
    assert builtin["config"]["function"]["module"] == "keras.ops"
    assert deserialize_keras_object(builtin).function is ops.sin


def test_generic_lambda_values_need_safe_mode_off():
    with pytest.warns(UserWarning, match="lambda"):
        config = to_json(serialize_keras_object(lambda x: x + 1))
    assert config["class_name"] == "__lambda__"
    with pytest.raises(ValueError, match="safe_mode=False"):
        deserialize_keras_object(config)
    assert deserialize_keras_object(config, safe_mode=False)(1) == 2


def test_special_values_round_trip():
    values = [slice(1, None, 2), Ellipsis, b"abc", np.arange(3, dtype="int64"), np.float32(1.5), (1, [2, None])]
    restored = deserialize_keras_object(to_json(serialize_keras_object(values)))
    assert restored[0] == slice(1, None, 2) and restored[1] is Ellipsis and restored[2] == b"abc"
    np.testing.assert_array_equal(restored[3], np.arange(3))
    assert restored[4] == 1.5 and restored[5] == [1, [2, None]]


# -- regularizers, constraints, initializers, activations ----------------------------------------------

WEIGHT = np.array([[1.0, -2.0, 0.5], [3.0, 4.0, -1.0]], "float32")
REGULARIZERS = [
    regularizers.L1(0.3),
    regularizers.L2(0.2),
    regularizers.L1L2(l1=0.1, l2=0.05),
    regularizers.OrthogonalRegularizer(0.5, "rows"),
    regularizers.OrthogonalRegularizer(0.5, "columns"),
]
CONSTRAINTS = [
    constraints.MaxNorm(2.0, axis=0),
    constraints.NonNeg(),
    constraints.UnitNorm(axis=1),
    constraints.MinMaxNorm(0.5, 1.5, rate=0.7, axis=0),
]


def test_regularizer_penalties():
    assert np.isclose(regularizers.L1(0.3)(WEIGHT), 0.3 * np.abs(WEIGHT).sum())
    assert np.isclose(regularizers.L2(0.2)(WEIGHT), 0.2 * np.square(WEIGHT).sum())
    rows = WEIGHT / np.linalg.norm(WEIGHT, axis=1, keepdims=True)
    cosine = abs(float(rows[0] @ rows[1]))
    assert np.isclose(regularizers.OrthogonalRegularizer(0.5)(WEIGHT), 0.5 * 0.5 * 2 * cosine / 1.0)
    for name, cls in [("l1", regularizers.L1), ("l2", regularizers.L2), ("l1l2", regularizers.L1L2)]:
        assert isinstance(regularizers.get(name), cls)
    with pytest.raises(ValueError, match="non-negative"):
        regularizers.L2(-1.0)
    with pytest.raises(ValueError, match="Could not interpret regularizer"):
        regularizers.get("l3")


@pytest.mark.parametrize("obj", REGULARIZERS + CONSTRAINTS, ids=lambda o: type(o).__name__)
def test_regularizer_and_constraint_configs_round_trip(obj):
    family = "keras.regularizers" if isinstance(obj, regularizers.Regularizer) else "keras.constraints"
    config = to_json(serialize_keras_object(obj))
    assert config["module"] == family and config["class_name"] == type(obj).__name__
    restored = (regularizers if family.endswith("regularizers") else constraints).get(config)
    assert type(restored) is type(obj) and restored.get_config() == obj.get_config()
    np.testing.assert_allclose(np.asarray(restored(WEIGHT)), np.asarray(obj(WEIGHT)), rtol=1e-6)


def test_layer_losses_and_constraints_reach_the_weights():
    layer = layers.Dense(3, kernel_regularizer=regularizers.L2(0.1), bias_regularizer="l1", kernel_constraint="non_neg")
    layer.build((None, 2))
    assert layer.kernel.regularizer is layer.kernel_regularizer
    assert isinstance(layer.kernel.constraint, constraints.NonNeg)
    kernel, bias = layer.get_weights()
    losses = layer.losses
    assert len(losses) == 2
    np.testing.assert_allclose(losses[0], 0.1 * np.square(kernel).sum(), rtol=1e-6)
    np.testing.assert_allclose(losses[1], 0.01 * np.abs(bias).sum(), rtol=1e-6, atol=1e-7)


def test_optimizer_applies_weight_constraints():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((32, 3)).astype("float32")
    inputs = keras.Input((3,))
    dense = layers.Dense(1, kernel_constraint="non_neg")
    model = keras.Model(inputs, dense(inputs))
    model.compile(optimizer="sgd", loss="mse")
    model.fit(x, -x.sum(axis=1, keepdims=True), epochs=2, batch_size=8, verbose=0)
    assert (dense.kernel.numpy() >= 0).all()


def test_initializer_axes_and_configs():
    init = initializers.GlorotUniform(seed=3, input_axes=[0, 1], output_axes=[2])
    config = to_json(serialize_keras_object(init))
    assert config == {
        "module": "keras.initializers",
        "class_name": "GlorotUniform",
        "config": {"seed": 3, "input_axes": [0, 1], "output_axes": [2]},
        "registered_name": None,
    }
    values = initializers.get(config)((4, 5, 6))
    limit = np.sqrt(6.0 / (20 + 6))
    assert np.abs(values).max() <= limit and np.abs(values).max() > 0.8 * limit
    assert initializers.compute_fans((4, 5, 6), [0, 1], [2]) == (20, 6)
    assert isinstance(initializers.get("OrthogonalInitializer"), initializers.Orthogonal)


def test_activation_serialization():
    from irtool import activations

    assert activations.serialize(activations.get("swish")) == "silu"
    assert activations.serialize(activations.relu) == "relu"

    def scaled_tanh(x):
        return ops.tanh(x) * 1.5

    layer = layers.Dense(2, activation=scaled_tanh)
    config = to_json(layer.get_config())
    assert config["activation"] == {
        "module": __name__,
        "class_name": "function",
        "config": "scaled_tanh",
        "registered_name": "scaled_tanh",
    }
    with pytest.raises(TypeError, match="Unknown function: 'scaled_tanh'"):
        layers.Dense.from_config(config)
    with custom_object_scope({"scaled_tanh": scaled_tanh}):
        assert layers.Dense.from_config(config).activation is scaled_tanh


# -- Keras parity of the numbers ------------------------------------------------------------------


@pytest.fixture(scope="module")
def real_keras():
    return require_keras()


@pytest.mark.parametrize("obj", REGULARIZERS + CONSTRAINTS, ids=lambda o: type(o).__name__)
def test_regularizers_and_constraints_match_keras(obj, real_keras):
    theirs = real_keras.saving.deserialize_keras_object(to_json(serialize_keras_object(obj)))
    want = np.asarray(real_keras.ops.convert_to_numpy(theirs(real_keras.ops.convert_to_tensor(WEIGHT))))
    np.testing.assert_allclose(np.asarray(obj(WEIGHT)), want, rtol=1e-5, atol=1e-6)
    back = deserialize_keras_object(to_json(real_keras.saving.serialize_keras_object(theirs)))
    assert type(back) is type(obj)


def test_mixed_precision_policies_load_as_float32():
    config = layers.Dense(2, name="mp").get_config()
    config["dtype"] = {"module": "keras", "class_name": "DTypePolicy", "config": {"name": "mixed_float16"}}
    with pytest.warns(UserWarning, match="'mp' uses Keras' mixed-precision dtype policy 'mixed_float16'"):
        layer = layers.Dense.from_config(config)
    assert layer.dtype == "float32"
    config["dtype"] = "float16"
    assert layers.Dense.from_config(config).dtype == "float16"
