"""Redraw the pictures in this folder: ``python docs/images/make_plots.py`` from the repository root.

They are the Keras functional-API guide's models (built in ``tests/viz/guide_models.py``) and
the ONNX export of one of them, drawn with graphviz-pure, which writes the same bytes on every
platform, so a rerun changes a picture only when the plotting code changes.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

import irtool  # noqa: E402
from irtool.viz import plot_onnx  # noqa: E402
from tests.viz.guide_models import GUIDE_MODELS  # noqa: E402

HERE = Path(__file__).resolve().parent
DPI = 120
PICTURES = [
    ("mnist_mlp", "mnist_mlp", {"show_shapes": True, "show_layer_activations": True}),
    ("ticket_classifier", "ticket_classifier", {"show_shapes": True}),
    ("toy_resnet", "toy_resnet", {"show_shapes": True}),
    ("nested_autoencoder", "nested_autoencoder", {"show_shapes": True}),
    ("nested_autoencoder", "nested_autoencoder_expanded", {"show_shapes": True, "expand_nested": True}),
    ("shared_embedding", "shared_embedding", {"show_shapes": True, "show_dtype": True, "show_trainable": True}),
]


def main() -> None:
    for builder, name, options in PICTURES:
        irtool.backend.clear_session()  # the layer names of a fresh process
        model = GUIDE_MODELS[builder]()
        plot = irtool.utils.plot_model(model, HERE / f"{name}.png", dpi=DPI, renderer="graphviz-pure", **options)
        print(plot)
    irtool.backend.clear_session()
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "ticket_classifier.onnx"
        GUIDE_MODELS["ticket_classifier"]().export(str(path))
        print(plot_onnx(path, HERE / "ticket_classifier_onnx.png", dpi=DPI, renderer="graphviz-pure"))


if __name__ == "__main__":
    main()
