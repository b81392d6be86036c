"""The lowering context: what a primitive's ``to_onnx`` rule uses to emit ONNX nodes.

It hands out unique node and value names scoped by the op being lowered (``dense/MatMul``),
stores constants as initializers, knows the target opset (and hides the opset differences
of Squeeze/Unsqueeze/Reduce*), and remembers the dtype of every value it has seen.
"""

from __future__ import annotations

import sys

import numpy as np
import onnx
from onnx import helper, numpy_helper

from irtool.ir.naming import UniqueNamer
from irtool.onnx import ort_kernels
from irtool.onnx.layout import channels_first, has_channels_last_ops
from irtool.ops.fast_kernels import SPLIT_SIZE, by_halves


class LoweringError(ValueError):
    """An op cannot be lowered (unsupported attribute combination or opset too low)."""


class LoweringContext:
    def __init__(self, opset: int):
        self.opset = opset
        self.nodes: list = []
        self.initializers: dict = {}  # initializer name -> NumPy value; made TensorProtos once, in the model
        self.dtypes: dict = {}
        self.scope = ""
        self.layer = ""
        self.unique = UniqueNamer()
        self._node_names = UniqueNamer()
        self.constants: dict = {}  # initializer name -> NumPy value (for folding at lowering)
        self.shapes: dict = {}  # value name -> static shape (None for unknown dims), where known
        self.domains: dict = {}  # operator domain other than ONNX's own (ai.onnx.ml) -> opset version

    def use_domain(self, domain: str, version: int) -> None:
        """Declare that the model uses ``domain``'s operators (it gets an opset import)."""
        self.domains[domain] = max(version, self.domains.get(domain, version))

    # -- emission ------------------------------------------------------------------------------
    def node(self, op_type: str, inputs: list, outputs=1, **attrs) -> list:
        """Emit one node; ``outputs`` is a list of names or a count of fresh names. A node whose
        data type ONNX Runtime has no kernel for is computed in a wider type (``ort_kernels``)."""
        missing = ort_kernels.MISSING.get(op_type)
        if missing is not None:
            data = ort_kernels.data_inputs(op_type, len(inputs))
            dtype = next((self.dtypes.get(inputs[i]) for i in data if inputs[i]), None)
            if dtype in missing:
                return self._widened(op_type, list(inputs), outputs, attrs, dtype, data)
        return self._emit(op_type, inputs, outputs, attrs)

    def _widened(self, op_type, inputs, outputs, attrs, dtype, data) -> list:
        if dtype == "uint64" and op_type in ort_kernels.ORDERED:
            raise LoweringError(
                f"'{self.layer}': ONNX Runtime has no {op_type} kernel for uint64, and int64 would order values "
                "from 2**63 on as negative; cast the tensor to int64 (or float64) in the model if its values allow."
            )
        wide = ort_kernels.wider(dtype)
        for i in data:
            if inputs[i]:
                value = self.constant_value(inputs[i])
                if value is not None:  # a constant operand (Clip's bounds) is converted now
                    inputs[i] = self.const(value.astype(wide), f"{inputs[i]}__{wide}")
                else:
                    inputs[i] = self._emit("Cast", [inputs[i]], 1, {"to": self.onnx_dtype(wide)})[0]
                    self.dtypes[inputs[i]] = wide
        requested = [None] * outputs if isinstance(outputs, int) else list(outputs)
        back = ort_kernels.typed_outputs(op_type, len(requested))
        base = f"{self.scope}/{op_type}" if self.scope else op_type
        raw = [
            self.unique(f"{name or base}__{wide}") if j in back else name or self.unique(base)
            for j, name in enumerate(requested)
        ]
        self._emit(op_type, inputs, raw, attrs)
        names = list(raw)
        for j in back:  # back to the data type: NumPy's wrap-around, and bool from nonzero
            names[j] = self._emit(
                "Cast", [raw[j]], [requested[j]] if requested[j] else 1, {"to": self.onnx_dtype(dtype)}
            )[0]
            self.dtypes[names[j]] = dtype
        return names

    def _emit(self, op_type: str, inputs: list, outputs, attrs: dict) -> list:
        base = f"{self.scope}/{op_type}" if self.scope else op_type
        if isinstance(outputs, int):
            outputs = [self.unique(base + ("" if i == 0 else f":{i}")) for i in range(outputs)]
        node = helper.make_node(op_type, list(inputs), list(outputs), name=self._node_names(base), **attrs)
        self.nodes.append(node)
        return list(outputs)

    def const(self, array, name: str | None = None) -> str:
        # A view stays a view (a Conv kernel permuted to ONNX's layout): ``fill_tensor`` reads it in C
        # order straight into the model's bytes, so the permuted copy is made once, there.
        array = np.asarray(array)
        name = self.unique(name or (f"{self.scope}/const" if self.scope else "const"))
        self.add_initializer(name, array)
        return name

    def add_initializer(self, name: str, array: np.ndarray) -> None:
        """Store ``array`` under an already-unique ``name``.

        Only the array is kept (a view, no copy): the export writes the initializers that some
        node reads straight into the model's ``TensorProto``s (``fill_tensor``), so a weight is
        copied once and a Keras-layout original that lowering folded away is never copied.
        """
        self.initializers[name] = array
        self.constants[name] = array
        self.dtypes[name] = _dtype_name(array.dtype)
        self.shapes[name] = tuple(np.shape(array))

    def constant_value(self, name: str):
        """The NumPy value of ``name`` if it is an initializer (a weight or constant), else None."""
        return self.constants.get(name)

    def static_dim(self, name: str, axis: int):
        """The static size of ``name``'s ``axis`` if known here (an initializer or a value whose
        shape was recorded), else None."""
        value = self.constant_value(name)
        if value is not None:
            return value.shape[axis]
        shape = self.shapes.get(name)
        return None if shape is None else shape[axis]

    def permuted(self, x: str, perm: list) -> str:
        """``x`` transposed by ``perm``: a new initializer when ``x`` is one (folded now, no
        node), else a ``Transpose`` node. Use it for weights in Keras layout (Conv kernels)."""
        perm = list(perm)
        if perm == list(range(len(perm))):
            return x
        value = self.constant_value(x)
        if value is not None:
            return self.const(np.transpose(value, perm), f"{x}__T")
        out = self.node("Transpose", [x], perm=perm)[0]
        self.dtypes[out] = self.dtypes.get(x)
        return out

    def reshaped(self, x: str, shape: list) -> str:
        """``x`` reshaped to ``shape`` (folded when ``x`` is an initializer)."""
        value = self.constant_value(x)
        if value is not None:
            return self.const(np.reshape(value, shape), f"{x}__R")
        out = self.node("Reshape", [x, self.int64s(shape)])[0]
        self.dtypes[out] = self.dtypes.get(x)
        return out

    def int64s(self, values) -> str:
        return self.const(np.asarray(list(values), dtype=np.int64))

    # -- graphs ------------------------------------------------------------------------------------
    def lower_ops(self, graph, names: dict, final: dict) -> None:
        """Emit every op of ``graph`` in order. ``names`` maps the values already named here (inputs,
        weights) and receives the rest; ``final`` gives some values fixed names (graph outputs)."""
        saved = self.scope, self.layer
        for key in graph.ops:
            op = graph.op(key)
            ins = []
            for v in op.inputs:
                name = names.get(v)
                if name is None:  # a constant, stored on first use
                    name = names[v] = self.const(graph.constant_array(v), graph.name(v))
                ins.append(name)
            outs = []
            for v in op.outputs:
                name = final.get(v) or self.unique(graph.name(v))
                names[v] = name
                spec = graph.spec(v)
                self.dtypes[name] = spec.dtype
                self.shapes[name] = tuple(spec.shape)
                outs.append(name)
            self.scope = op.name.rsplit("/", 1)[0] if "/" in op.name else op.name
            self.layer = self.scope
            try:
                op.prim.to_onnx(self, ins, outs, **op.attrs)
            except NotImplementedError as error:
                raise LoweringError(f"op '{op.name}' of layer '{self.layer}': {error}") from None
        self.scope, self.layer = saved

    def lower_graph(self, graph, input_names: list) -> list:
        """Emit the ops of a nested ``graph`` (a primitive's body, e.g. ``ops.scan``'s step) into the
        nodes being collected now, its inputs bound to ``input_names`` (a subgraph's formal inputs
        or outer-scope names, such as weights), and return the names of its outputs.

        Primitives in ``irtool.ops`` cannot import this package (it sits above them), so a nested
        graph is lowered through the context they are given. Channels-last spatial ops in it are
        converted first, as for a model's graph; its own weights, if any, become initializers.
        """
        if has_channels_last_ops(graph):
            graph = channels_first(graph)
        names = dict(zip(graph.inputs, input_names))
        for v in graph.values("weight"):
            if v not in names:
                names[v] = self.const(graph.constant_array(v), graph.name(v))
        self.lower_ops(graph, names, {})
        return [names[v] for v in graph.outputs]

    # -- opset-dependent helpers -------------------------------------------------------------------
    def unsqueeze(self, x: str, axes: list, outputs=1) -> list:
        if not axes:
            return self.node("Identity", [x], outputs)
        return self.node("Unsqueeze", [x, self.int64s(axes)], outputs)

    def squeeze(self, x: str, axes: list, outputs=1) -> list:
        if not axes:
            # An empty `axes` means "every size-1 dim" to ONNX (a batch of 1 too): keep all.
            return self.node("Identity", [x], outputs)
        return self.node("Squeeze", [x, self.int64s(axes)], outputs)

    def reduce(self, op_type: str, x: str, axes: list, keepdims: bool, outputs=1) -> list:
        if not axes:
            return self.node("Identity", [x], outputs)
        if op_type == "ReduceSum" or self.opset >= 18:
            return self.node(op_type, [x, self.int64s(axes)], outputs, keepdims=int(keepdims))
        return self.node(op_type, [x], outputs, axes=list(axes), keepdims=int(keepdims))

    # -- types -------------------------------------------------------------------------------------
    def dtype_of(self, name: str) -> str:
        try:
            return self.dtypes[name]
        except KeyError:
            raise LoweringError(f"Lowering of '{self.scope}' asked for the dtype of unknown value {name!r}.") from None

    @staticmethod
    def onnx_dtype(dtype: str) -> int:
        if dtype == "string":
            return onnx.TensorProto.STRING
        return helper.np_dtype_to_tensor_dtype(np.dtype(dtype))

    def fail(self, prim, message: str):
        raise LoweringError(f"Cannot lower '{prim.name}' in '{self.layer}' to ONNX: {message}.")


# NumPy's ``dtype.name`` is Python code (5 us a call with the checks around it), and an export
# asks for it once per initializer, ~900 times for MobileNetV2 (a fifth of its lowering).
_DTYPE_NAMES: dict = {}
_ONNX_TYPES: dict = {}


def _dtype_name(dtype: np.dtype) -> str:
    name = _DTYPE_NAMES.get(dtype)
    if name is None:
        name = _DTYPE_NAMES[dtype] = "string" if dtype.kind in "OUS" else dtype.name
    return name


def _onnx_type(dtype: np.dtype) -> int:
    code = _ONNX_TYPES.get(dtype)
    if code is None:
        code = _ONNX_TYPES[dtype] = helper.np_dtype_to_tensor_dtype(dtype)
    return code


def fill_tensor(tensor: onnx.TensorProto, name: str, array, raw: bytes | None = None) -> None:
    """Fill the empty ``tensor`` (e.g. ``graph.initializer.add()``) with ``array``, as
    ``numpy_helper.from_array`` would, but copying the bytes once: ``tobytes`` reads a
    transposed view in C order directly, where ``from_array`` of ``ascontiguousarray`` copies twice,
    and filling the message in place avoids the copy ``RepeatedCompositeContainer.extend`` makes.
    ``raw``: ``array.tobytes()``, when the caller made it already (``fill_tensors``)."""
    array = np.asarray(array)
    if _raw_data_ok(array):
        tensor.dims.extend(array.shape)
        if name:
            tensor.name = name
        tensor.data_type = _onnx_type(array.dtype)
        tensor.raw_data = array.tobytes() if raw is None else raw
    else:  # strings, big-endian data, packed 4-bit types: numpy_helper knows the rules
        tensor.CopyFrom(numpy_helper.from_array(np.asarray(array, order="C"), name))


def _raw_data_ok(array: np.ndarray) -> bool:
    """Whether ``array.tobytes()`` is the tensor's ``raw_data`` as ONNX stores it."""
    return array.dtype.kind in "biufc" and array.dtype.byteorder in "=|<" and sys.byteorder == "little"


def fill_tensors(tensors, arrays: dict) -> None:
    """``fill_tensor(tensors.add(), name, array)`` for each of ``arrays``, in order; a large
    transposed view (a Conv kernel in ONNX's layout) is copied to C order by ``_c_order_bytes``."""
    for name, array in arrays.items():
        array = np.asarray(array)
        large_view = not array.flags.c_contiguous and array.size >= SPLIT_SIZE and _raw_data_ok(array)
        fill_tensor(tensors.add(), name, array, _c_order_bytes(array) if large_view else None)


def _c_order_bytes(array: np.ndarray) -> bytes:
    """``array.tobytes()`` for a large strided view: that strided copy (~1 GB/s) releases the GIL,
    so its two halves along the first axis are copied into one C-order array at once
    (``by_halves``), and ``tobytes`` of that array is a memcpy (~10x faster). This thread makes
    every allocation (a worker's freed memory would stay in its own malloc arena), and no more than
    two copies of the tensor exist at once, as with ``tobytes`` and protobuf's own copy."""
    contiguous = np.empty(array.shape, array.dtype)
    by_halves(lambda a, b: np.copyto(contiguous[a:b], array[a:b]), len(array), array.size)
    return contiguous.tobytes()


def tensor_type(dtype: str, shape, dim_names) -> onnx.TypeProto:
    dims = [d if d is not None else name for d, name in zip(shape, dim_names)]
    return helper.make_tensor_type_proto(LoweringContext.onnx_dtype(dtype), dims)
