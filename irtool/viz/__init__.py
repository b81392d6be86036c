"""``irtool.viz``: pictures of models (``plot_model``, ``model_to_dot``) and of ONNX files (``plot_onnx``)."""

from irtool.viz.layer_view import model_to_dot
from irtool.viz.onnx_view import onnx_to_dot, plot_onnx
from irtool.viz.plot import ModelPlot, plot_model, save_plot
from irtool.viz.render import GraphvizUnavailableError, RenderError, available_renderers

__all__ = [
    "GraphvizUnavailableError",
    "ModelPlot",
    "RenderError",
    "available_renderers",
    "model_to_dot",
    "onnx_to_dot",
    "plot_model",
    "plot_onnx",
    "save_plot",
]
