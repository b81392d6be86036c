"""Model sources -> something runnable or exportable: the one place that knows model.py, .keras and .onnx.

    loaded = load("examples/mnist_mlp.py")        # LoadedModel(kind="python", model=<Functional>)
    loaded = load("mnist.keras")                  # kind="keras": the saved model, without training config
    loaded = load("mnist.onnx")                   # kind="onnx": the ModelProto (external data not read)
    session = irtool.runtime.make_session(loaded.onnx_bytes())

A Python file is run (as module ``__irtool_model__``, so its ``if __name__ == "__main__":``
block is skipped, with its folder first on ``sys.path``) and the model is picked from its
globals: ``object_name`` (a model or a zero-argument function returning one), else ``model``,
else ``build_model()`` or ``get_model()``, else the only model instance defined. Every failure
is a ``LoadError`` whose message is one line ready for the user; the original exception, if
any, is its ``__cause__``. The CLI (``export``, ``summary``, ``plot``) loads through here, and so
should every command that takes a model source.
"""

from __future__ import annotations

import inspect
import os
import runpy
import sys
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import onnx
from onnx import external_data_helper

from irtool import backend
from irtool.ir import tree
from irtool.models import Functional, Model
from irtool.onnx import to_onnx
from irtool.runtime.ort import load_onnx
from irtool.saving import load_model as load_saved_model

#: The kinds of model source: a Python file that builds the model, a saved ``.keras`` model, an ONNX file.
KINDS = ("python", "keras", "onnx")
#: Model-loading entry points tried, in order, when no ``object_name`` is given.
FACTORY_NAMES = ("build_model", "get_model")
#: Saved-model formats recognised by suffix but not loaded (a Python file that builds the model is needed).
UNSUPPORTED_SUFFIXES = (".h5", ".hdf5", ".pb", ".tflite", ".npz")


class LoadError(Exception):
    """A model source that cannot be loaded; the message is one line meant for the user."""


def describe(error: BaseException) -> str:
    """``"TypeName: message"`` on one line (``"TypeName"`` alone when the message is empty)."""
    message = " ".join(line.strip() for line in str(error).splitlines() if line.strip())
    return f"{type(error).__name__}: {message}" if message else type(error).__name__


@dataclass
class LoadedModel:
    """A loaded model source: an irtool ``model`` (kinds ``python`` and ``keras``) or an ``onnx`` proto."""

    path: Path
    kind: str
    model: Model | None = None
    onnx: onnx.ModelProto | None = None
    weights: Path | None = None
    _exported: dict = field(default_factory=dict, repr=False, compare=False)

    @property
    def fresh_weights(self) -> bool:
        """True for a model.py model given no weights file: its weights are as its initializers drew them."""
        return self.kind == "python" and self.weights is None

    @property
    def name(self) -> str:
        """The model's name, or an ONNX file's name."""
        return self.model.name if self.model is not None else self.path.name

    def onnx_model(self, opset: int | None = None) -> onnx.ModelProto:
        """The model as ONNX: an irtool model exported in memory (at ``opset``; cached), an ONNX file with its weights."""
        if self.kind == "onnx":
            if opset is not None:
                raise LoadError(f"{self.path} is already ONNX; it cannot be converted to opset {opset}")
            if any(external_data_helper.uses_external_data(t) for t in self.onnx.graph.initializer):
                try:  # onnx refuses locations outside the model's folder, absolute ones and symlinks
                    return load_onnx(self.path, external_data=True)
                except (OSError, ValueError) as error:
                    raise LoadError(" ".join(str(error).split())) from error
            return self.onnx
        if opset not in self._exported:
            check_exportable(self.model)
            self._exported[opset] = to_onnx(self.model, opset=opset)
        return self._exported[opset]

    def onnx_bytes(self, opset: int | None = None) -> bytes:
        """``onnx_model(opset)`` serialized, ready for ``irtool.runtime.make_session``."""
        return self.onnx_model(opset).SerializeToString()

    @property
    def input_names(self) -> list[str]:
        """The ONNX graph's input names (exporting an irtool model if needed)."""
        graph = self.onnx_model().graph
        weights = {init.name for init in graph.initializer}
        return [v.name for v in graph.input if v.name not in weights]

    @property
    def output_names(self) -> list[str]:
        """The ONNX graph's output names (exporting an irtool model if needed)."""
        return [v.name for v in self.onnx_model().graph.output]


def source_kind(path: str | os.PathLike) -> str:
    """``"keras"``, ``"onnx"`` or ``"python"`` by suffix; other saved-model formats raise ``LoadError``."""
    suffix = Path(path).suffix.lower()
    if suffix in UNSUPPORTED_SUFFIXES:
        raise _unsupported(suffix)
    return {".keras": "keras", ".onnx": "onnx"}.get(suffix, "python")


def _unsupported(suffix: str) -> LoadError:
    return LoadError(
        f"loading saved models ({suffix} files) is not supported yet; pass the Python file that builds the model"
    )


def load(
    path: str | os.PathLike,
    object_name: str | None = None,
    kinds: Sequence[str] = KINDS,
    weights: str | os.PathLike | None = None,
) -> LoadedModel:
    """Load the model source at ``path``; ``kinds`` are the source kinds the caller accepts.

    ``weights`` (a ``.weights.h5`` file or a ``.keras`` archive) is loaded into the model, so a
    model.py runs with trained weights instead of freshly initialised ones.
    """
    kind = source_kind(path)
    if kind not in kinds:
        raise _unsupported(Path(path).suffix.lower())
    if kind == "onnx":
        if weights is not None:
            raise LoadError(
                f"--weights loads weights into a model.py or .keras model; {path} is ONNX, with its weights"
            )
        return LoadedModel(Path(path), kind, onnx=read_onnx_file(path, object_name))
    if kind == "python":
        model = pick_model(run_model_file(path), object_name, str(path))
    else:
        model = load_keras_file(path, object_name)
    if weights is not None:
        load_weights_file(model, weights)
    return LoadedModel(Path(path), kind, model=model, weights=None if weights is None else Path(weights))


def load_model(
    path: str | os.PathLike, object_name: str | None = None, weights: str | os.PathLike | None = None
) -> Model:
    """The irtool model of a Python file or a ``.keras`` file (an ONNX file is refused)."""
    return load(path, object_name, kinds=("python", "keras"), weights=weights).model


def load_weights_file(model: Model, weights: str | os.PathLike) -> None:
    """Load ``weights`` (``.weights.h5`` or ``.keras``) into ``model``, or raise a one-line ``LoadError``."""
    file = Path(weights)
    if not (file.name.endswith(".weights.h5") or file.suffix == ".keras"):
        raise LoadError(f"--weights expects a .weights.h5 file or a .keras archive, received {weights}")
    if not file.is_file():
        raise LoadError(f"no such weights file: {weights}")
    try:
        model.load_weights(file)
    except Exception as error:
        raise LoadError(f"cannot load the weights {weights} into model '{model.name}': {describe(error)}") from error


# -- Python files ----------------------------------------------------------------------------------
def run_model_file(path: str | os.PathLike) -> dict[str, Any]:
    """Run the Python file at ``path`` with its folder on ``sys.path``; returns its globals."""
    file = Path(path)
    if file.suffix.lower() in (".keras", ".onnx", *UNSUPPORTED_SUFFIXES):
        raise _unsupported(file.suffix.lower())
    if not file.exists():
        raise LoadError(f"no such file: {path}")
    if file.is_dir():
        raise LoadError(f"{path} is a directory; pass the Python file that builds the model")
    filename = os.path.abspath(file)
    folder = os.path.dirname(filename)
    backend.clear_session()  # the file's layers get the names they get in a fresh process
    sys.path.insert(0, folder)
    try:
        return runpy.run_path(filename, run_name="__irtool_model__")
    except SyntaxError as error:
        where = f"{error.filename}, line {error.lineno}" if error.filename else str(path)
        raise LoadError(f"syntax error in {where}: {error.msg}") from error
    except SystemExit as error:
        raise LoadError(f"{path} called sys.exit({error.code!r}) while being loaded") from error
    except Exception as error:
        lines = [f.lineno for f in traceback.extract_tb(error.__traceback__) if f.filename == filename]
        where = f"{path}, line {lines[-1]}" if lines else str(path)
        raise LoadError(f"running {where} raised {describe(error)}") from error
    finally:
        if sys.path and sys.path[0] == folder:
            del sys.path[0]
        elif folder in sys.path:
            sys.path.remove(folder)


def _as_model(obj: Any, name: str, path: str) -> Model:
    """``obj`` if it is a model, else the model returned by calling it with no arguments."""
    if isinstance(obj, Model):
        return obj
    if not callable(obj):
        raise LoadError(f"{name} in {path} is a {type(obj).__name__}, not a model or a function returning one")
    try:
        inspect.signature(obj).bind()
    except TypeError:
        raise LoadError(f"{name}{inspect.signature(obj)} in {path} cannot be called without arguments") from None
    except ValueError:  # no signature available (a builtin): just try it
        pass
    try:
        result = obj()
    except Exception as error:
        raise LoadError(f"{name}() in {path} raised {describe(error)}") from error
    if not isinstance(result, Model):
        raise LoadError(f"{name}() in {path} returned a {type(result).__name__}, not a model")
    return result


def pick_model(namespace: dict[str, Any], object_name: str | None = None, path: str = "the file") -> Model:
    """The model among a file's globals (see the module docstring for the order of choices)."""
    models: dict[int, list[str]] = {}
    for name, value in namespace.items():
        if isinstance(value, Model) and not name.startswith("__"):
            models.setdefault(id(value), []).append(name)
    found = ", ".join(names[0] for names in models.values())
    if object_name is not None:
        if object_name not in namespace:
            hint = f" (models defined: {found})" if found else ""
            raise LoadError(f"{path} defines no object named {object_name!r}{hint}")
        return _as_model(namespace[object_name], object_name, path)
    if isinstance(namespace.get("model"), Model):
        return namespace["model"]
    for name in FACTORY_NAMES:
        if callable(namespace.get(name)):
            return _as_model(namespace[name], name, path)
    if len(models) == 1:
        return namespace[next(iter(models.values()))[0]]
    if models:
        raise LoadError(f"{path} defines several models ({found}); choose one with --object NAME")
    raise LoadError(
        f"no model found in {path}: define a variable `model`, a function `build_model()`, or pass --object NAME"
    )


# -- saved files -----------------------------------------------------------------------------------
def load_keras_file(path: str | os.PathLike, object_name: str | None = None) -> Model:
    """The model saved in a ``.keras`` archive, without its training configuration."""
    if object_name is not None:
        raise LoadError(f"--object picks a model in a Python file; {path} holds one saved model")
    if not Path(path).is_file():
        raise LoadError(f"no such file: {path}")
    try:
        return load_saved_model(path, compile=False)
    except Exception as error:
        raise LoadError(f"cannot load {path}: {describe(error)}") from error


def read_onnx_file(path: str | os.PathLike, object_name: str | None = None) -> onnx.ModelProto:
    """The ONNX model at ``path``, without its external data (nothing in it is run)."""
    if object_name is not None:
        raise LoadError(f"--object picks a model in a Python file; {path} is an ONNX file")
    if not Path(path).is_file():
        raise LoadError(f"no such file: {path}")
    try:
        return load_onnx(path)
    except (OSError, ValueError) as error:
        raise LoadError(" ".join(str(error).split())) from error


# -- what the runtime needs from an irtool model ---------------------------------------------------
def check_exportable(model: Model) -> None:
    """Raise ``LoadError`` unless ``model`` is a built functional (or Sequential) model."""
    if not isinstance(model, Functional):
        raise LoadError(
            f"model '{model.name}' is a subclassed {type(model).__name__}; only functional and Sequential "
            "models can be exported"
        )
    if getattr(model, "_graph", None) is None:
        raise LoadError(
            f"model '{model.name}' is not built yet: start the Sequential model with an Input "
            "(or give its first layer input_shape=...)"
        )


def numpy_reference(model: Model) -> Callable[[list[np.ndarray]], list[np.ndarray]]:
    """``model``'s NumPy executor as ``irtool.runtime.check_parity`` wants it: flat inputs -> flat outputs.

    The arrays come in the order of the model's flat inputs (the order of its ONNX export) and
    are predicted in one batch.
    """
    n_inputs = len(model.inputs)

    def reference(arrays: list[np.ndarray]) -> list[np.ndarray]:
        if len(arrays) != n_inputs:
            raise ValueError(f"model '{model.name}' has {n_inputs} inputs, but {len(arrays)} arrays were given")
        batch = max(int(np.shape(arrays[0])[0]) if arrays and np.ndim(arrays[0]) else 1, 1)
        outputs = model.predict(arrays if len(arrays) > 1 else arrays[0], batch_size=batch, verbose=0)
        return tree.flatten(outputs) if isinstance(outputs, (list, tuple, dict)) else [outputs]

    return reference


__all__ = [
    "FACTORY_NAMES",
    "KINDS",
    "LoadError",
    "LoadedModel",
    "check_exportable",
    "describe",
    "load",
    "load_keras_file",
    "load_model",
    "load_weights_file",
    "numpy_reference",
    "pick_model",
    "read_onnx_file",
    "run_model_file",
]
