"""Keras' backend-specific wrappers (JaxLayer, FlaxLayer, TorchModuleWrapper, TFSMLayer) are
refused on load with a message that names the layer and says what to do."""

import pytest

import irtool
from irtool.saving import deserialize_keras_object

from ..harness import get_keras

BACKEND_LAYERS = ["JaxLayer", "FlaxLayer", "TorchModuleWrapper", "TFSMLayer"]


@pytest.mark.parametrize("class_name", BACKEND_LAYERS)
@pytest.mark.parametrize("module", ["keras.layers", "keras.src.layers.core.wrapper"])
def test_config_is_refused_with_a_clear_message(class_name, module):
    config = {"module": module, "class_name": class_name, "config": {"name": "w"}, "registered_name": None}
    with pytest.raises(TypeError, match=f"Unknown layer: '{class_name}'") as info:
        deserialize_keras_object(config)
    assert "backend code that irtool cannot run" in str(info.value)
    assert "Rebuild that part of the model" in str(info.value)


def test_a_custom_object_of_that_name_still_loads():
    class TorchModuleWrapper(irtool.layers.Identity):
        pass

    config = {"module": "keras.layers", "class_name": "TorchModuleWrapper", "config": {"name": "w"}}
    layer = deserialize_keras_object(config, custom_objects={"TorchModuleWrapper": TorchModuleWrapper})
    assert isinstance(layer, TorchModuleWrapper)


def test_keras_file_with_a_torch_module_is_refused(tmp_path):
    real = get_keras()
    if real is None or real.backend.backend() != "torch":
        pytest.skip("needs keras with the torch backend")
    import torch

    inputs = real.Input((4,))
    wrapper = real.layers.TorchModuleWrapper(torch.nn.Linear(4, 3), output_shape=(None, 3))
    real.Model(inputs, wrapper(inputs)).save(tmp_path / "m.keras")
    with pytest.raises(TypeError, match="TorchModuleWrapper.*PyTorch"):
        irtool.models.load_model(tmp_path / "m.keras")
