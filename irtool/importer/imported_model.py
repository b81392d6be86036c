"""``ImportedModel``: a functional model read from ONNX, which keeps the ONNX tensor names."""

from __future__ import annotations

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
