"""``ImportedModel``: a functional model read from ONNX, which keeps the ONNX tensor names."""

from __future__ import annotations

import os

from irtool.models.functional import Functional


class ImportedModel(Functional):
    """A ``Functional`` model whose layers are ONNX nodes (see ``irtool.importer.load``).

    Its outputs keep their ONNX names (so an export names the graph outputs as the original did),
    and ``tensor(name)`` / ``submodel(outputs)`` reach any intermediate by its ONNX tensor name.
    """

    def __init__(self, inputs, outputs, onnx_tensors=None, onnx_output_names=None, **kwargs):
        object.__setattr__(self, "onnx_tensors", dict(onnx_tensors or {}))
        object.__setattr__(self, "_onnx_output_names", list(onnx_output_names or []))
        super().__init__(inputs, outputs, **kwargs)

    def save(self, filepath, *args, **kwargs) -> None:
        """Refused: a ``.keras`` file of ONNX nodes would not load back (see the error for what does).

        Each layer is an ONNX node whose converter reads constants and static inputs folded at
        import (shapes, pads, indices, shared weights); Keras' JSON config has no place for them,
        and writing them into it would make a second, worse ONNX format. ONNX itself already is
        this model's file format, and the weights file loads into a fresh import.
        """
        raise NotImplementedError(
            f"Cannot save the imported ONNX model '{self.name}' to {os.fspath(filepath)!r}: its layers are ONNX "
            "nodes (with constants folded at import) that a Keras config cannot describe, so the file would not "
            "load back. Use model.export('model.onnx') (irtool.importer.load reads it back), or "
            "model.save_weights('model.weights.h5'), which loads into the original file imported again."
        )

    @property
    def output_names(self) -> list:
        return list(self._onnx_output_names) or super().output_names

    def tensor(self, name: str):
        """The symbolic tensor that the ONNX graph called ``name``."""
        if name not in self.onnx_tensors:
            known = ", ".join(list(self.onnx_tensors)[:10])
            raise KeyError(f"No tensor named '{name}' in the imported model '{self.name}'. Known tensors: {known}, ...")
        return self.onnx_tensors[name]

    def submodel(self, outputs, inputs=None) -> Functional:
        """A model from ``inputs`` (default: this model's) to the ONNX tensors named ``outputs``."""
        names = [outputs] if isinstance(outputs, str) else list(outputs)
        ins = (
            self.inputs
            if inputs is None
            else [self.tensor(n) for n in ([inputs] if isinstance(inputs, str) else inputs)]
        )
        outs = [self.tensor(n) for n in names]
        return Functional(ins, outs[0] if isinstance(outputs, str) else outs, name=f"{self.name}_sub")
