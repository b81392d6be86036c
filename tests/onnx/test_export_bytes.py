"""The export's byte-level shortcuts give what the slow, obvious path gives: ``fill_tensor`` the
``TensorProto`` of ``numpy_helper.from_array``, ``serialized_pieces`` the bytes of
``SerializeToString(deterministic=True)``, and the weights-free skeleton the same checks."""

from __future__ import annotations

import gc

import numpy as np
import onnx
import pytest
from onnx import helper, numpy_helper

import irtool as keras
import irtool.onnx.export as export_module
from irtool import layers
from irtool.onnx import lower, save_onnx, to_onnx
from irtool.onnx.context import fill_tensor, fill_tensors
from irtool.onnx.export import serialized_pieces, validate
from irtool.ops.fast_kernels import SPLIT_SIZE

RNG = np.random.default_rng(0)

ARRAYS = {
    "float32": RNG.normal(size=(3, 4)).astype("float32"),
    "float16": RNG.normal(size=(5,)).astype("float16"),
    "float64 0-d": np.array(2.5),
    "int64": np.arange(6, dtype="int64").reshape(2, 3),
    "int8": np.array([-3, 0, 7], dtype="int8"),
    "uint16": np.array([1, 65535], dtype="uint16"),
    "bool": np.array([True, False, True]),
    "complex64": np.array([1 + 2j, 3 - 1j], dtype="complex64"),
    "transposed view": RNG.normal(size=(3, 3, 2, 4)).astype("float32").transpose(3, 2, 0, 1),
    "sliced view": np.arange(20, dtype="float32")[::3],
    "empty": np.zeros((0, 4), dtype="float32"),
    "strings": np.array(["a", "bc"], dtype=object),
}


@pytest.mark.parametrize("key", list(ARRAYS))
def test_fill_tensor_equals_from_array(key):
    array = ARRAYS[key]
    tensor = onnx.TensorProto()
    fill_tensor(tensor, "w", array)
    expected = numpy_helper.from_array(np.asarray(array, order="C"), "w")
    assert tensor.SerializeToString(deterministic=True) == expected.SerializeToString(deterministic=True)
    if key != "strings":
        np.testing.assert_array_equal(numpy_helper.to_array(tensor), array)


def _conv_model():
    inputs = keras.Input((8, 8, 3))
    x = layers.Conv2D(4, 3, padding="same", activation="relu")(inputs)
    x = layers.BatchNormalization()(x)
    x = layers.GlobalAveragePooling2D()(x)
    return keras.Model(inputs, layers.Dense(300)(x), name="small_cnn")


def _proto_with_every_model_field(proto):
    # Fields on both sides of ``graph`` (7) and of ``initializer`` (5), so the splice is exercised everywhere.
    proto.domain = "ai.irtool.test"
    proto.model_version = 3
    proto.graph.doc_string = "graph doc"
    proto.graph.sparse_initializer.add().values.CopyFrom(numpy_helper.from_array(np.ones(2, "float32"), "s"))
    proto.functions.add().name = "f"
    proto.training_info.add().algorithm.name = "t"
    return proto


def test_fill_tensors_copies_large_views_in_two_halves_to_the_same_bytes():
    """Large transposed views (a Conv kernel in ONNX's layout, an odd first dim included) are copied
    by two threads; every tensor, in order, equals ``fill_tensor``'s on its own."""
    side = int(np.ceil((SPLIT_SIZE / 9) ** 0.5)) + 1
    kernel = RNG.normal(size=(3, 3, side, side + 1)).astype("float32")
    arrays = {
        "big view": kernel.transpose(3, 2, 0, 1),  # first dim side + 1: halves of unequal size
        "small": ARRAYS["int64"],
        "big contiguous": np.ascontiguousarray(kernel),
        "big view again": kernel[:, :, :, :-1].transpose(3, 2, 0, 1),
        "strings": ARRAYS["strings"],
    }
    assert arrays["big view"].size >= SPLIT_SIZE and not arrays["big view"].flags.c_contiguous
    graph = onnx.GraphProto()
    fill_tensors(graph.initializer, arrays)
    assert [t.name for t in graph.initializer] == list(arrays)
    for tensor, (name, array) in zip(graph.initializer, arrays.items()):
        alone = onnx.TensorProto()
        fill_tensor(alone, name, array)
        assert tensor == alone, name
        if name != "strings":
            np.testing.assert_array_equal(numpy_helper.to_array(tensor), array)


@pytest.mark.parametrize("kind", ["cnn", "every field", "no initializers", "one large weight"])
def test_serialized_pieces_join_to_the_deterministic_bytes(kind, tmp_path):
    if kind == "no initializers":
        inputs = keras.Input((4,))
        proto = to_onnx(keras.Model(inputs, layers.ReLU()(inputs)))
        assert not proto.graph.initializer
    elif kind == "one large weight":
        inputs = keras.Input((64,))
        proto = to_onnx(keras.Model(inputs, layers.Dense(4096)(inputs)))  # 1 MiB kernel: multi-byte varints
    else:
        proto = to_onnx(_conv_model())
        if kind == "every field":
            proto = _proto_with_every_model_field(proto)
    expected = proto.SerializeToString(deterministic=True)
    pieces = list(serialized_pieces(proto))
    assert b"".join(pieces) == expected
    if proto.graph.initializer:
        assert max(map(len, pieces)) < len(expected)  # never everything at once
    save_onnx(proto, tmp_path / "m.onnx")
    assert (tmp_path / "m.onnx").read_bytes() == expected


def test_serialized_pieces_keep_fields_this_onnx_does_not_know(tmp_path):
    # Field 127 (varint 5), appended to the model and, separately, to its graph: what a newer onnx might write.
    unknown = bytes([0xF8, 0x07, 0x05])
    known = to_onnx(_conv_model())
    graph = onnx.GraphProto.FromString(known.graph.SerializeToString() + unknown)
    for proto in (onnx.ModelProto.FromString(known.SerializeToString() + unknown), known):
        if proto is known:
            proto.graph.CopyFrom(graph)
        expected = proto.SerializeToString(deterministic=True)
        assert unknown in expected
        assert b"".join(serialized_pieces(proto)) == expected


def test_export_skeleton_gives_what_validate_of_the_full_model_gives():
    model = _conv_model()
    proto = to_onnx(model)
    unchecked = to_onnx(model, check=False)
    assert [t.name for t in unchecked.graph.initializer] == [t.name for t in proto.graph.initializer]
    assert any(len(t.raw_data) > 1024 for t in proto.graph.initializer)  # the skeleton drops one
    revalidated = validate(unchecked)
    assert revalidated.SerializeToString(deterministic=True) == proto.SerializeToString(deterministic=True)


def test_export_rejects_what_the_checker_rejects_with_the_stage_named():
    proto = to_onnx(_conv_model(), check=False)
    proto.graph.node.append(helper.make_node("Relu", ["no_such_value"], ["y2"]))
    with pytest.raises(ValueError, match="onnx.checker rejected the exported model"):
        validate(proto)


def test_a_second_export_reuses_the_prepared_graph_with_current_weights():
    model = _conv_model()
    first = to_onnx(model)
    assert export_module._PREPARED.get(model.inference_graph) is not None
    conv = model.layers[1]
    kernel, bias = conv.get_weights()
    conv.set_weights([kernel * 2.0, bias + 1.0])
    second = to_onnx(model)
    # What lowering the model's graph from scratch gives (no cache involved).
    fresh = lower(model.inference_graph, name=model.name, output_names=list(model.output_names))
    assert [t.name for t in second.graph.initializer] == [t.name for t in fresh.graph.initializer]
    for got, want in zip(second.graph.initializer, fresh.graph.initializer):
        np.testing.assert_array_equal(numpy_helper.to_array(got), numpy_helper.to_array(want))
    assert second.graph.node == fresh.graph.node and first.graph.node == second.graph.node
    changed = [t.name for t, u in zip(first.graph.initializer, second.graph.initializer) if t != u]
    assert len(changed) == 2  # the Conv's kernel and bias, nothing else


def test_the_prepared_graph_goes_with_its_model():
    model = _conv_model()
    to_onnx(model)
    before = len(export_module._PREPARED)
    del model
    gc.collect()
    assert len(export_module._PREPARED) == before - 1


def test_tensor_size_is_byte_size_without_reading_the_raw_data():
    from irtool.onnx.export import tensor_size
    from irtool.onnx.external_data import raw_data_size

    tensors = [
        numpy_helper.from_array((np.arange(300) % 7).reshape(3, 100).astype(dtype), f"t_{dtype}")
        for dtype in ("float32", "float64", "float16", "int8", "int64", "uint16", "bool")
    ]
    tensors.append(numpy_helper.from_array(np.ones((0, 4), "float32"), "empty"))
    tensors.append(numpy_helper.from_array(np.ones((40, 1000), "float32"), "big"))  # multi-byte lengths
    documented = numpy_helper.from_array(np.ones(5, "float32"), "documented")
    documented.doc_string = "a weight"
    documented.metadata_props.add(key="k", value="v")
    tensors.append(documented)
    tensors.append(onnx.helper.make_tensor("listed", onnx.TensorProto.FLOAT, [3], [1.0, 2.0, 3.0]))  # float_data
    tensors.append(onnx.helper.make_tensor("words", onnx.TensorProto.STRING, [2], [b"a", b"bc"]))
    for tensor in tensors:
        assert tensor_size(tensor) == tensor.ByteSize(), tensor.name
        expected = len(tensor.raw_data) if tensor.HasField("raw_data") else None
        assert raw_data_size(tensor) == expected, tensor.name
