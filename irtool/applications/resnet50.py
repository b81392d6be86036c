"""``keras.applications.resnet50``: Keras' public module for ResNet50 (the same as ``resnet``'s)."""

from irtool.applications.resnet import ResNet50, decode_predictions, preprocess_input

__all__ = ["ResNet50", "decode_predictions", "preprocess_input"]
