"""``keras.applications``: the ImageNet classifiers of Keras with Keras' signatures and layer
names, built from irtool layers, plus ``imagenet_utils`` (``preprocess_input``,
``decode_predictions``). ``weights=None`` initialises freshly, a path loads a weights file, and
``"imagenet"`` reads Keras' weights file from Keras' cache folder (see ``imagenet_utils``)."""

from irtool.applications import imagenet_utils

__all__ = ["imagenet_utils"]
