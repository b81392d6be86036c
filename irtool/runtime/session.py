"""``Session``: an ONNX model ready to run, with its inputs checked and its providers verified.

    session = Session("mnist.onnx", providers=("cuda", "cpu"))
    session.inputs                 # [TensorInfo(name='digits', dtype=float32, shape=('batch', 784))]
    session.run(x)                 # {'predictions': array(...)}, by output name
    session.predict(x, batch_size=256)

A ``Session`` wraps one ``onnxruntime.InferenceSession`` made by ``ort.make_session`` (the one
place irtool opens sessions), so providers, their defaults and the check that they really run
are decided there. What it adds: declared inputs and outputs as ``TensorInfo``s, the model's
metadata, feeds checked with one-line errors (``feeds.py``), batching, warm-up of the declared
shapes, and IO binding (``Binding``) for inference that keeps its tensors on the device.

It depends on ONNX, ONNX Runtime and NumPy only. ``Session.from_model(model)`` exports any
object with a ``to_onnx(opset=None) -> onnx.ModelProto`` method (an irtool ``Model`` has one) in
memory; the runtime never imports the model code.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
import onnx
import onnxruntime as ort

from irtool.runtime.feeds import InputCheck, InputError, build_feeds, split_batches
from irtool.runtime.ort import OnnxSource, TensorInfo, graph_io, load_onnx, make_session, random_inputs
from irtool.runtime.providers import CUDA


class ExportsOnnx(Protocol):
    """What ``Session.from_model`` needs of a model: an in-memory ONNX export."""

    def to_onnx(self, opset: int | None = None) -> onnx.ModelProto: ...


@dataclass(frozen=True)
class Metadata:
    """What an ONNX file says about itself (what Netron shows in its model panel)."""

    producer: str
    producer_version: str
    ir_version: int
    opset: int | None
    opsets: dict[str, int]
    graph_name: str
    doc_string: str = ""
    props: dict[str, str] = field(default_factory=dict)

    @classmethod
    def of(cls, proto: onnx.ModelProto) -> Metadata:
        opsets = {o.domain or "ai.onnx": int(o.version) for o in proto.opset_import}
        return cls(
            producer=proto.producer_name,
            producer_version=proto.producer_version,
            ir_version=int(proto.ir_version),
            opset=opsets.get("ai.onnx"),
            opsets=opsets,
            graph_name=proto.graph.name,
            doc_string=proto.doc_string,
            props={p.key: p.value for p in proto.metadata_props},
        )


def _warmup_batch_sizes(warmup: bool | Sequence[int]) -> tuple[int, ...]:
    if warmup is True:
        return (1,)
    if warmup is False or warmup is None:
        return ()
    sizes = tuple(int(b) for b in warmup)
    if any(b < 1 for b in sizes):
        raise ValueError(f"warmup: expected positive batch sizes, received {list(warmup)}")
    return sizes


class Session:
    """An ONNX model on ONNX Runtime, run by input name with checked inputs.

    Args:
        source: an ONNX file's path, serialized ONNX bytes or an ``onnx.ModelProto``.
        providers: execution providers in priority order: aliases (``"cpu"``, ``"cuda"``,
            ``"tensorrt"``, ``"dml"``, ``"coreml"``), ONNX Runtime names, or ``(name, options)``
            pairs (``irtool.runtime.providers.resolve``; CUDA gets HEURISTIC convolution search
            and TF32 off unless told otherwise).
        strict: a requested provider that is not installed or did not start is a
            ``ProviderError``; with ``strict=False`` it is one ``RuntimeWarning`` naming what was
            asked for, what runs and the fix.
        threads: intra-op threads (default: ONNX Runtime's, one per physical core).
        optimization: ``"all"`` (default), ``"extended"``, ``"basic"`` or ``"disable"``.
        provider_options: more options by provider name, e.g. ``{"cuda": {"device_id": 1,
            "memory_limit": 2**30}}``.
        warmup: run each declared input shape once now (batch size 1), or a list of batch sizes
            to run; ``False`` to skip. The first run of a new shape is the slow one (memory
            arenas, cuDNN algorithm search), so serving warms up the sizes it will see.

    >>> session = Session("mnist.onnx")  # doctest: +SKIP
    >>> session.run(np.zeros((2, 784), "float32"))["predictions"].shape  # doctest: +SKIP
    (2, 10)
    """

    def __init__(
        self,
        source: OnnxSource,
        providers: Any = ("cpu",),
        *,
        strict: bool = True,
        threads: int | None = None,
        optimization: str = "all",
        provider_options: Mapping[str, Mapping[str, Any]] | None = None,
        warmup: bool | Sequence[int] = True,
    ):
        proto = load_onnx(source)
        self.metadata = Metadata.of(proto)
        inputs, outputs = graph_io(proto)
        self.inputs: list[TensorInfo] = inputs
        self.outputs: list[TensorInfo] = outputs
        self.input_names = [i.name for i in inputs]
        self.output_names = [o.name for o in outputs]
        self._checks = [InputCheck(info) for info in inputs]
        self.ort_session = make_session(
            source,
            providers,
            provider_options=provider_options,
            strict=strict,
            threads=threads,
            optimization=optimization,
        )
        # InferenceSession.run re-validates names in Python on every call; the feeds are checked
        # here already, so runs go straight to the C++ session (the 5% budget at batch 1 is ~0.3 us)
        self._run = getattr(self.ort_session, "_sess", self.ort_session).run
        self.warmed_up: list[str] = []
        if not self._cuda_graph:
            self._warm_up(_warmup_batch_sizes(warmup))

    @classmethod
    def from_model(cls, model: ExportsOnnx, opset: int | None = None, **options: Any) -> Session:
        """A session on ``model`` exported in memory (``model.to_onnx(opset)``); ``options`` as for ``Session``."""
        to_onnx = getattr(model, "to_onnx", None)
        if not callable(to_onnx):
            raise TypeError(
                f"Session.from_model expects a model with a to_onnx() method (an irtool Model), "
                f"received a {type(model).__name__}"
            )
        return cls(to_onnx(opset=opset), **options)

    # -- what runs -------------------------------------------------------------------------------
    @property
    def providers(self) -> list[str]:
        """The providers the session actually runs on, in priority order."""
        return self.ort_session.get_providers()

    @property
    def provider_options(self) -> dict[str, dict[str, str]]:
        """Each active provider's options as ONNX Runtime reports them."""
        return self.ort_session.get_provider_options()

    @property
    def _cuda_graph(self) -> bool:
        return self.provider_options.get(CUDA, {}).get("enable_cuda_graph") == "1"

    def __repr__(self) -> str:
        ins = ", ".join(f"{i.name}: {_shape_text(i)}" for i in self.inputs)
        outs = ", ".join(f"{o.name}: {_shape_text(o)}" for o in self.outputs)
        return f"<Session {self.metadata.graph_name!r} ({ins}) -> ({outs}) on {', '.join(self.providers)}>"

    def _warm_up(self, batch_sizes: tuple[int, ...]) -> None:
        if not batch_sizes:
            return
        if any(i.shape is None or i.dtype is None or i.dtype.kind not in "biuf" for i in self.inputs):
            return  # no declared shape or a non-numeric input: nothing sensible to feed
        seen = set()
        for run, batch in enumerate(batch_sizes):
            arrays = random_inputs(self.inputs, batch, run=run)
            shapes = tuple(a.shape for a in arrays)
            if shapes in seen:
                continue
            seen.add(shapes)
            try:
                self._run(self.output_names, dict(zip(self.input_names, arrays)), None)
            except Exception as error:  # noqa: BLE001 - ORT's error types; random values can be invalid data
                # (indices past a table, a shape input): the model is fine, only the warm-up is not
                first = (str(error).strip().splitlines() or [type(error).__name__])[0]
                warnings.warn(
                    f"warm-up skipped: the model fails on random inputs ({first}); runs on valid inputs are not "
                    f"affected, the first one is slower. Pass warmup=False to skip it quietly.",
                    stacklevel=3,
                )
                return
            self.warmed_up.append(", ".join(f"{n} {s}" for n, s in zip(self.input_names, shapes)))

    # -- running ---------------------------------------------------------------------------------
    def feeds(self, inputs: Any) -> dict[str, np.ndarray]:
        """``inputs`` (a dict by name, a list in input order, or one array) checked and converted."""
        return build_feeds(self._checks, inputs)

    def _output_names(self, outputs: Sequence[str] | str | None) -> list[str]:
        if outputs is None:
            return self.output_names
        names = [outputs] if isinstance(outputs, str) else list(outputs)
        unknown = [n for n in names if n not in self.output_names]
        if unknown:
            raise InputError(
                f"unknown output name {', '.join(map(repr, unknown))}: the model's outputs are "
                f"{', '.join(map(repr, self.output_names))}"
            )
        return names

    def run_list(self, inputs: Any, outputs: Sequence[str] | str | None = None) -> list[np.ndarray]:
        """The outputs in order (all, or those named in ``outputs``) for ``inputs``."""
        names = self.output_names if outputs is None else self._output_names(outputs)
        return self._run(names, build_feeds(self._checks, inputs), None)

    def run(self, inputs: Any, outputs: Sequence[str] | str | None = None) -> dict[str, np.ndarray]:
        """``{output name: array}`` for ``inputs`` (a dict by name, a list in input order, or one array).

        Names, ranks, fixed dimensions and dtypes are checked first (``InputError``, one line);
        only lossless casts are made (see ``irtool.runtime.feeds``).
        """
        names = self.output_names if outputs is None else self._output_names(outputs)
        return dict(zip(names, self._run(names, build_feeds(self._checks, inputs), None)))

    def predict(
        self, inputs: Any, batch_size: int | None = None, outputs: Sequence[str] | str | None = None
    ) -> dict[str, np.ndarray]:
        """``run`` over ``inputs`` in pieces of ``batch_size`` samples (axis 0), outputs concatenated."""
        feeds = build_feeds(self._checks, inputs)
        names = self._output_names(outputs)
        if batch_size is None:
            return dict(zip(names, self._run(names, feeds, None)))
        if int(batch_size) < 1:
            raise ValueError(f"batch_size: expected a positive integer, received {batch_size!r}")
        parts = [self._run(names, piece, None) for piece in split_batches(feeds, int(batch_size))]
        return {name: np.concatenate([p[k] for p in parts], axis=0) for k, name in enumerate(names)}

    # -- IO binding ------------------------------------------------------------------------------
    def bind(self, inputs: Any, device: str = "cpu", device_id: int = 0) -> Binding:
        """A ``Binding`` with ``inputs`` copied once to ``device`` (``"cpu"`` or ``"cuda"``) and the
        outputs kept there; see ``Binding``."""
        return Binding(self, inputs, device, device_id)

    def run_with_iobinding(self, binding: Binding) -> None:
        """Run ``binding`` (its outputs stay on its device; ``binding.numpy()`` copies them to the host)."""
        binding.run()


def _shape_text(info: TensorInfo) -> str:
    dims = "?" if info.shape is None else "[" + ", ".join("?" if d is None else str(d) for d in info.shape) + "]"
    return f"{info.dtype}{dims}"


class Binding:
    """Inputs and outputs bound to device memory, owned by the caller (ONNX Runtime's ``IOBinding``).

    Without binding, every ``run`` copies its inputs host -> device and its outputs device ->
    host. A ``Binding`` copies the inputs once into device ``OrtValue``s and binds the outputs on
    the same device, so back-to-back runs make no host copies: ``update(inputs)`` writes new data
    into the bound input buffers (same shapes; another shape rebinds), ``run()`` runs, and
    ``outputs()`` returns the device ``OrtValue``s (``numpy()`` copies them to the host).

    Outputs whose shapes follow from the inputs (fixed dims, or symbolic dims named like an input
    dim) get preallocated buffers that every run reuses, which is what CUDA graph capture needs
    (``provider_options={"cuda": {"cuda_graph": True}}``: the first ``run()`` captures, later ones
    replay, and inputs must keep their shapes). Other outputs are allocated by ONNX Runtime.
    """

    def __init__(self, session: Session, inputs: Any, device: str = "cpu", device_id: int = 0):
        if device not in ("cpu", "cuda"):
            raise ValueError(f"device: expected 'cpu' or 'cuda', received {device!r}")
        if device == "cuda" and CUDA not in session.providers:
            raise ValueError(
                f"device='cuda' needs a session on {CUDA}; this one runs on {', '.join(session.providers)}"
            )
        self.session = session
        self.device = device
        self.device_id = int(device_id)
        self.io = session.ort_session.io_binding()
        self._inputs: dict[str, ort.OrtValue] = {}
        self._bind_inputs(session.feeds(inputs))

    def _bind_inputs(self, feeds: dict[str, np.ndarray]) -> None:
        self.io.clear_binding_inputs()
        for name, array in feeds.items():
            # on the CPU an OrtValue shares the array's memory: copy, so update() never writes the caller's data
            array = np.array(array, order="C", copy=True) if self.device == "cpu" else np.ascontiguousarray(array)
            value = ort.OrtValue.ortvalue_from_numpy(array, self.device, self.device_id)
            self.io.bind_ortvalue_input(name, value)
            self._inputs[name] = value
        self._bind_outputs({name: a.shape for name, a in feeds.items()})

    def _bind_outputs(self, input_shapes: dict[str, tuple[int, ...]]) -> None:
        sizes: dict[str, int] = {}
        for info in self.session.inputs:
            for dim, size in zip(info.shape or (), input_shapes[info.name]):
                if isinstance(dim, str):
                    sizes.setdefault(dim, size)
        self.io.clear_binding_outputs()
        self.preallocated: list[str] = []
        for info in self.session.outputs:
            dims = [d if isinstance(d, int) else sizes.get(d) for d in info.shape or [None]]
            if info.shape is None or info.dtype is None or any(d is None for d in dims):
                self.io.bind_output(info.name, self.device, self.device_id)
                continue
            value = ort.OrtValue.ortvalue_from_shape_and_type(dims, info.dtype, self.device, self.device_id)
            self.io.bind_ortvalue_output(info.name, value)
            self.preallocated.append(info.name)

    def update(self, inputs: Any) -> None:
        """New input data: copied into the bound buffers when the shapes are unchanged, else rebound."""
        feeds = self.session.feeds(inputs)
        if all(tuple(self._inputs[n].shape()) == a.shape for n, a in feeds.items()):
            for name, array in feeds.items():
                self._inputs[name].update_inplace(np.ascontiguousarray(array))
        else:
            self._bind_inputs(feeds)

    def run(self) -> None:
        """Run on the bound inputs; the outputs stay on the binding's device."""
        self.io.synchronize_inputs()
        self.session.ort_session.run_with_iobinding(self.io)
        self.io.synchronize_outputs()

    def outputs(self) -> list[ort.OrtValue]:
        """The outputs of the last run as ``OrtValue``s on the device, in output order (no copy)."""
        return self.io.get_outputs()

    def numpy(self) -> dict[str, np.ndarray]:
        """The outputs of the last run copied to the host, by name."""
        return dict(zip(self.session.output_names, (v.numpy() for v in self.io.get_outputs())))


__all__ = ["Binding", "ExportsOnnx", "Metadata", "Session"]
