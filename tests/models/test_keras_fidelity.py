"""Keras behaviours found by trying Keras' own cases (issue 11, item 7).

Each test asserts irtool's behaviour directly, and where real Keras is installed (CI installs it)
runs the same code on Keras to check that the expectation is Keras' own.
"""

from __future__ import annotations

import numpy as np
import pytest

import irtool

from ..harness import require_keras


def real_keras():
    """Real Keras, or skip the comparison part of a test."""
    return require_keras()


def _error(fn):
    """``(exception type name, message)`` of ``fn()``, which must raise."""
    try:
        fn()
    except Exception as error:  # noqa: BLE001 - the point is to compare any error
        return type(error).__name__, str(error)
    raise AssertionError("expected an error")


# -- 1. raw ops on symbolic tensors are Keras-named operations ---------------------------------


def _raw_ops_model(keras):
    ops = keras.ops
    x = keras.Input((3, 4))
    y = keras.Input((3, 4))
    outputs = [
        x[:, 0],
        x * 2,
        x + y,
        ops.matmul(x, ops.transpose(y, (0, 2, 1))),
        x - y,
        x / y,
        -x,
        ops.reshape(x, (-1, 12)),
        ops.sum(x, axis=1),
        x**2,
        abs(x),
        x > y,
        ops.concatenate([x, y]),
        ops.mean(x),
    ]
    return keras.Model([x, y], outputs)


def _op_classes(model):
    return [(type(op).__name__, op.__class__.__name__, op.name) for op in model.operations]


def test_raw_ops_have_keras_class_names():
    model = _raw_ops_model(irtool)
    names = _op_classes(model)
    assert ("GetItem", "GetItem", "get_item") in names
    assert ("Multiply", "Multiply", "multiply") in names
    assert ("Add", "Add", "add") in names
    assert ("Matmul", "Matmul", "matmul") in names
    add = next(op for op in model.operations if op.name == "add")
    assert isinstance(add, irtool.ops.operation.RawOperation)
    # One class per op: two calls of `*` are two operations of the same class.
    x = irtool.Input((2,))
    a, b = x * 2, x * 3
    assert type(a._keras_history[0].operation) is type(b._keras_history[0].operation)
    # Revived from a config, the ops keep their classes and names.
    assert _op_classes(irtool.Model.from_config(model.get_config())) == names


def test_raw_op_classes_match_keras():
    keras = real_keras()
    keras.backend.clear_session()  # Keras' op names count per session, like irtool's (reset per test)
    ours = _op_classes(_raw_ops_model(irtool))
    theirs = _op_classes(_raw_ops_model(keras))
    # Input layers are named by a global counter that differs between the two sessions.
    assert [c for c in ours if c[0] != "InputLayer"] == [c for c in theirs if c[0] != "InputLayer"]
    revived = _op_classes(keras.Model.from_config(_raw_ops_model(keras).get_config()))
    assert [c[:2] for c in revived] == [c[:2] for c in ours]


# -- 2. Sequential's errors and edge cases ------------------------------------------------------


def _set_layers(keras):
    model = keras.Sequential([keras.layers.Dense(2)])
    model.layers = [keras.layers.Dense(3)]


def _two_inputs(keras):
    keras.Sequential([keras.Input((3,)), keras.Input((3,)), keras.layers.Dense(2)], name="two_inputs")


def _input_layer_after_build(keras):
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)], name="late_input")
    model.add(keras.layers.InputLayer(shape=(2,)))


def _duplicate_names(keras):
    keras.Sequential([keras.layers.Dense(2, name="d"), keras.layers.Dense(2, name="d")])


def _build_empty(keras):
    keras.Sequential(name="empty").build((None, 3))


def _call_empty(keras):
    keras.Sequential(name="empty")(np.ones((2, 3), "float32"))


def _build_other_shape(keras):
    keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)], name="fixed").build((None, 4))


def _unbuilt_inputs(keras):
    return keras.Sequential([keras.layers.Dense(2)], name="unbuilt").inputs


def _unbuilt_outputs(keras):
    return keras.Sequential([keras.layers.Dense(2)], name="unbuilt").outputs


def _unbuilt_input_shape(keras):
    return keras.Sequential([keras.layers.Dense(2)], name="unbuilt").input_shape


def _unbuilt_output_shape(keras):
    return keras.Sequential([keras.layers.Dense(2)], name="unbuilt").output_shape


def _add_non_layer(keras):
    keras.Sequential().add("dense")


SEQUENTIAL_ERRORS = {
    _set_layers: (
        "AttributeError",
        "`Sequential.layers` attribute is reserved and should not be used. "
        "Use `add()` and `pop()` to change the layers in this model.",
    ),
    _two_inputs: (
        "ValueError",
        "Sequential model 'two_inputs' has already been configured to use input shape (None, 3). "
        "You cannot add a different Input layer to it.",
    ),
    _input_layer_after_build: (
        "ValueError",
        "Sequential model 'late_input' has already been configured to use input shape (None, 3). "
        "You cannot add a different Input layer to it.",
    ),
    _duplicate_names: (
        "ValueError",
        "All layers added to a Sequential model should have unique names. Name 'd' is already the name of a "
        "layer in this model. Update the `name` argument to pass a unique name.",
    ),
    _build_empty: (
        "ValueError",
        "Sequential model empty cannot be built because it has no layers. Call `model.add(layer)`.",
    ),
    _call_empty: (
        "ValueError",
        "Sequential model empty cannot be built because it has no layers. Call `model.add(layer)`.",
    ),
    _build_other_shape: (
        "ValueError",
        "Sequential model 'fixed' has already been configured to use input shape (None, 3). "
        "You cannot build it with input_shape (None, 4)",
    ),
    _unbuilt_inputs: ("AttributeError", "Sequential model 'unbuilt' has no defined inputs yet."),
    _unbuilt_outputs: ("AttributeError", "Sequential model 'unbuilt' has no defined outputs yet."),
    _unbuilt_input_shape: ("AttributeError", "Sequential model 'unbuilt' has no defined input shape yet."),
    _unbuilt_output_shape: ("AttributeError", "Sequential model 'unbuilt' has no defined output shape yet."),
    _add_non_layer: (
        "ValueError",
        "Only instances of `keras.Layer` can be added to a Sequential model. Received: dense (of type <class 'str'>)",
    ),
}


@pytest.mark.parametrize("case", list(SEQUENTIAL_ERRORS), ids=lambda f: f.__name__.strip("_"))
def test_sequential_errors(case):
    assert _error(lambda: case(irtool)) == SEQUENTIAL_ERRORS[case]


# Keras' Sequential raises these AttributeErrors from properties, so Python retries the
# lookup through `Layer.__getattr__`, which replaces Keras' message with a generic one.
# irtool keeps the message Keras wrote; the type is the same.
UNBUILT = {_unbuilt_inputs: "inputs", _unbuilt_outputs: "outputs", _unbuilt_input_shape: "input_shape"}
UNBUILT[_unbuilt_output_shape] = "output_shape"


@pytest.mark.parametrize("case", list(SEQUENTIAL_ERRORS), ids=lambda f: f.__name__.strip("_"))
def test_sequential_errors_match_keras(case):
    keras = real_keras()
    if case in UNBUILT:
        assert _error(lambda: case(keras)) == (
            "AttributeError",
            f"'Sequential' object has no attribute '{UNBUILT[case]}'",
        )
    else:
        assert _error(lambda: case(keras)) == SEQUENTIAL_ERRORS[case]


def _functional_first(keras):
    inputs = keras.Input((3,))
    inner = keras.Model(inputs, keras.layers.Dense(4)(inputs), name="inner")
    model = keras.Sequential([inner, keras.layers.Dense(2, name="head")], name="outer")
    return {
        "built": model.built,
        "layers": [layer.name for layer in model.layers],
        "input_shape": tuple(model.inputs[0].shape),
        "output_shape": tuple(model.outputs[0].shape),
        "params": model.count_params(),
        "first_config_layer": model.get_config()["layers"][0]["class_name"],
        "build_config": {k: list(v) for k, v in model.get_build_config().items()},  # JSON makes tuples lists
    }


def _states(keras):
    """Whether each Sequential is built, in Keras' cases that build it or wait."""
    layers = keras.layers
    inputs = keras.Input((3,))
    inner = keras.Model(inputs, layers.Dense(4)(inputs))
    popped = keras.Sequential([keras.Input((3,)), layers.Dense(2), layers.Dense(5)])
    popped.pop(rebuild=False)
    added = keras.Sequential([keras.Input((3,)), layers.Dense(2)])
    added.add(layers.Dense(4), rebuild=False)
    built_by_call = keras.Sequential([layers.Dense(2)])
    built_by_call(np.ones((2, 3), "float32"))
    return {
        "input_only": keras.Sequential([keras.Input((3,))]).built,
        "functional_only": keras.Sequential([inner]).built,
        "input_shape_argument": keras.Sequential([layers.Dense(2, input_shape=(3,))]).built,
        "pop_rebuild_false": (popped.built, len(popped.layers)),
        "add_rebuild_false": (added.built, len(added.layers)),
        "built_by_call": built_by_call.built,
    }


def test_sequential_with_a_functional_first_layer_builds():
    got = _functional_first(irtool)
    assert got == {
        "built": True,
        "layers": ["inner", "head"],
        "input_shape": (None, 3),
        "output_shape": (None, 2),
        "params": 3 * 4 + 4 + 4 * 2 + 2,
        "first_config_layer": "InputLayer",
        "build_config": {"input_shape": [None, 3]},
    }
    # A Sequential model first works the same way.
    inner = irtool.Sequential([irtool.Input((3,)), irtool.layers.Dense(2)])
    model = irtool.Sequential([inner, irtool.layers.Dense(1)])
    assert model.built and model.output_shape == (None, 1)


def test_sequential_build_states():
    assert _states(irtool) == {
        "input_only": False,
        "functional_only": False,
        "input_shape_argument": True,
        "pop_rebuild_false": (False, 1),
        "add_rebuild_false": (False, 2),
        "built_by_call": True,
    }
    # Built by a call, the batch size stays free (Keras fixes it to the first batch's).
    model = irtool.Sequential([irtool.layers.Dense(2)])
    model(np.ones((2, 3), "float32"))
    assert model.output_shape == (None, 2)
    # build() without one input shape waits, as in Keras (which then sets `built` with no graph).
    model = irtool.Sequential([irtool.layers.Dense(2)])
    model.build()
    model.build([(None, 3), (None, 3)])
    assert not model.built


def test_sequential_cases_match_keras():
    import warnings

    keras = real_keras()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # Keras warns about `input_shape=`
        theirs = _states(keras)
        functional = _functional_first(keras)
    assert _states(irtool) == theirs
    assert _functional_first(irtool) == functional


# -- 3. from_config keeps the output container types ------------------------------------------


def _structures(keras):
    """For models with each kind of input/output structure: the types of the original's
    outputs, of from_config's and of a JSON round trip's (``kind[inner kind]`` for nesting)."""
    layers = keras.layers
    a, b = keras.Input((2,), name="a"), keras.Input((2,), name="b")
    d1, d2 = layers.Dense(1, name="d1")(a), layers.Dense(1, name="d2")(b)
    models = {
        "tuple": keras.Model((a, b), (d1, d2)),
        "list": keras.Model([a, b], [d1, d2]),
        "dict": keras.Model({"a": a, "b": b}, {"x": d1, "y": d2}),
        "single": keras.Model(a, d1),
        "one_tuple": keras.Model((a,), (d1,)),
        "list_of_tuple": keras.Model([a, b], [d1, (d2, d1)]),
        "dict_of_tuple": keras.Model([a, b], {"x": (d1, d2)}),
    }

    def kind(structure):
        if isinstance(structure, dict):
            return {k: kind(v) for k, v in structure.items()}
        if isinstance(structure, (list, tuple)):
            return [type(structure).__name__, [kind(v) for v in structure]]
        return "tensor"

    result = {}
    for name, model in models.items():
        revived = keras.Model.from_config(model.get_config())
        from_json = keras.models.model_from_json(model.to_json())
        result[name] = [kind(m.output) for m in (model, revived, from_json)]
        result[name].append(kind(revived.input))
    return result


def test_from_config_keeps_output_structure():
    got = _structures(irtool)
    pair = ["tuple", ["tensor", "tensor"]]
    as_list = ["list", ["tensor", "tensor"]]
    assert got["tuple"] == [pair, pair, as_list, pair]  # JSON has no tuples: lists, as in Keras
    assert got["list"] == [as_list, as_list, as_list, as_list]
    assert got["dict"][1] == {"x": "tensor", "y": "tensor"} and got["dict"][3] == {"a": "tensor", "b": "tensor"}
    assert got["single"] == ["tensor", "tensor", "tensor", "tensor"]
    assert got["one_tuple"][1] == ["tuple", ["tensor"]]
    assert got["list_of_tuple"][1] == ["list", ["tensor", pair]]
    assert got["dict_of_tuple"][1] == {"x": pair}
    # The revived model's predictions come back in the same structure.
    x = irtool.Input((2,))
    model = irtool.Model((x,), (irtool.layers.Dense(1)(x), irtool.layers.Dense(3)(x)))
    revived = irtool.Model.from_config(model.get_config())
    predictions = revived.predict((np.ones((1, 2), "float32"),), verbose=0)
    assert isinstance(predictions, tuple) and [p.shape for p in predictions] == [(1, 1), (1, 3)]


def test_from_config_structures_match_keras():
    keras = real_keras()
    assert _structures(irtool) == _structures(keras)


# -- 4. Input's dimensions ---------------------------------------------------------------------

INPUT_CASES = {
    "negative": ({"shape": (-1, 3)}, "Cannot convert '(-1, 3)' to a shape. Negative dimensions are not allowed."),
    "float": (
        {"shape": (2.5,)},
        "Cannot convert '(2.5,)' to a shape. Found invalid dimension '2.5' of type '<class 'float'>'. ",
    ),
    "whole_float": (
        {"shape": (2.0,)},
        "Cannot convert '(2.0,)' to a shape. Found invalid dimension '2.0' of type '<class 'float'>'. ",
    ),
    "string": (
        {"shape": ("a",)},
        "Cannot convert '('a',)' to a shape. Found invalid dimension 'a' of type '<class 'str'>'. ",
    ),
    "nested": (
        {"shape": ((2,), 3)},
        "Cannot convert '((2,), 3)' to a shape. Found invalid dimension '(2,)' of type '<class 'tuple'>'. ",
    ),
    "negative_batch_shape": (
        {"batch_shape": (None, -2)},
        "Cannot convert '(None, -2)' to a shape. Negative dimensions are not allowed.",
    ),
    "negative_batch_size": (
        {"shape": (3,), "batch_size": -1},
        "Cannot convert '(-1, 3)' to a shape. Negative dimensions are not allowed.",
    ),
    "zero": ({"shape": (0, 3)}, (None, 0, 3)),
    "zero_batch": ({"shape": (3,), "batch_size": 0}, (0, 3)),
    "numpy_ints": ({"shape": (np.int64(2), None)}, (None, 2, None)),
    "list": ({"shape": [2, 3]}, (None, 2, 3)),
}


def _input_outcome(keras, kwargs):
    try:
        return tuple(keras.Input(**kwargs).shape)
    except ValueError as error:
        return str(error)


@pytest.mark.parametrize("case", list(INPUT_CASES))
def test_input_dimensions(case):
    kwargs, expected = INPUT_CASES[case]
    assert _input_outcome(irtool, kwargs) == expected
    if isinstance(expected, str):
        with pytest.raises(ValueError):
            irtool.layers.InputLayer(**kwargs)


@pytest.mark.parametrize("case", list(INPUT_CASES))
def test_input_dimensions_match_keras(case):
    keras = real_keras()
    kwargs, expected = INPUT_CASES[case]
    assert _input_outcome(keras, kwargs) == expected


def test_input_takes_a_bare_int():
    # An irtool extension: Keras refuses `Input(3)` ("Cannot convert '3' to a shape.").
    assert irtool.Input(3).shape == (None, 3)


# -- 5. deep or huge configs are refused with irtool's own error -------------------------------


def _deep_json(depth: int) -> str:
    # A Dense layer whose `units` is `depth - 2` nested lists (the layer's dicts are 2 levels).
    return (
        '{"module": "keras.layers", "class_name": "Dense", "config": {"name": "d", "units": '
        + "[" * (depth - 2)
        + "]" * (depth - 2)
        + "}}"
    )


def _deep_dict(depth: int) -> dict:
    value: dict = {}
    for _ in range(depth - 1):
        value = {"a": value}
    return value


def test_deep_json_is_refused_before_parsing():
    from irtool.serialization.config_limits import MAX_CONFIG_DEPTH

    with pytest.raises(
        ValueError,
        match=f"nests arrays and objects 5,000 levels deep, more than the limit of {MAX_CONFIG_DEPTH} levels",
    ):
        irtool.models.model_from_json(_deep_json(5000))
    # At the limit the config is read (and refused for what it says, not for its depth).
    with pytest.raises(ValueError, match="units") as error:
        irtool.models.model_from_json(_deep_json(MAX_CONFIG_DEPTH))
    assert "levels" not in str(error.value)
    # Brackets inside strings are not nesting.
    layer = irtool.models.model_from_json(
        '{"module": "keras.layers", "class_name": "Dense", "config": {"units": 2, "name": "' + "[{" * 5000 + '"}}'
    )
    assert layer.name == "[{" * 5000


def test_huge_json_is_refused_before_parsing():
    from irtool.serialization import config_limits

    text = '{"a": "' + "x" * config_limits.MAX_JSON_BYTES + '"}'
    with pytest.raises(ValueError, match=f"is {len(text):,} bytes, more than the limit of 67,108,864 bytes"):
        irtool.models.model_from_json(text)


@pytest.mark.parametrize(
    "read",
    [
        lambda c: irtool.Model.from_config({"name": "m", "layers": [c], "input_layers": [], "output_layers": []}),
        lambda c: irtool.Sequential.from_config({"name": "m", "layers": [c]}),
        lambda c: irtool.saving.deserialize_keras_object({"class_name": "Dense", "config": c}),
    ],
    ids=["Model", "Sequential", "deserialize_keras_object"],
)
def test_deep_config_dicts_are_refused(read):
    with pytest.raises(ValueError, match=r"nests dicts and lists 5,00\d levels deep, more than the limit of 100"):
        read(_deep_dict(5000))
    itself: list = []
    itself.append(itself)
    with pytest.raises(ValueError, match="contains itself"):
        read({"a": itself})


def _with_config_json(source: str, target: str, edit) -> None:
    import zipfile

    with zipfile.ZipFile(source) as archive, zipfile.ZipFile(target, "w") as out:
        for item in archive.infolist():
            data = archive.read(item.filename)
            out.writestr(item, edit(data) if item.filename == "config.json" else data)


def test_deep_keras_file_is_refused(tmp_path):
    model = irtool.Sequential([irtool.Input((2,)), irtool.layers.Dense(2)])
    model.save(tmp_path / "m.keras")
    deep = "[" * 3000 + "]" * 3000
    _with_config_json(
        str(tmp_path / "m.keras"),
        str(tmp_path / "deep.keras"),
        lambda d: d.replace(b'"units": 2', b'"units": ' + deep.encode()),
    )
    with pytest.raises(
        ValueError,
        match=r"deep\.keras: config\.json: the JSON text nests arrays and objects 3,0\d\d "
        "levels deep",
    ):
        irtool.models.load_model(tmp_path / "deep.keras")


def test_nested_keras_models_are_within_the_limit():
    """Real models stay far below the limit: models nested in one another, written by Keras."""
    keras = real_keras()
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(2)])
    for _ in range(6):
        inputs = keras.Input((2,))
        model = keras.Model(inputs, model(inputs))
    revived = irtool.models.model_from_json(model.to_json())
    x = np.ones((1, 2), "float32")
    revived.set_weights(model.get_weights())
    np.testing.assert_allclose(revived.predict(x, verbose=0), np.asarray(model.predict(x, verbose=0)), rtol=1e-6)
