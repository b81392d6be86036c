"""``keras.applications``: the ImageNet classifiers of Keras with Keras' signatures and layer
names, built from irtool layers, plus ``imagenet_utils`` (``preprocess_input``,
``decode_predictions``). ``weights=None`` initialises freshly, a path loads a weights file, and
``"imagenet"`` reads Keras' weights file from Keras' cache folder (see ``imagenet_utils``)."""

# -- part 2: MobileNet, MobileNetV2/V3, EfficientNet(V2), ConvNeXt, NASNet ----------------------
from irtool.applications import (
    convnext,
    efficientnet,
    efficientnet_v2,
    imagenet_utils,
    mobilenet,
    mobilenet_v2,
    mobilenet_v3,
    nasnet,
)
from irtool.applications.convnext import ConvNeXtBase, ConvNeXtLarge, ConvNeXtSmall, ConvNeXtTiny, ConvNeXtXLarge
from irtool.applications.efficientnet import (
    EfficientNetB0,
    EfficientNetB1,
    EfficientNetB2,
    EfficientNetB3,
    EfficientNetB4,
    EfficientNetB5,
    EfficientNetB6,
    EfficientNetB7,
)
from irtool.applications.efficientnet_v2 import (
    EfficientNetV2B0,
    EfficientNetV2B1,
    EfficientNetV2B2,
    EfficientNetV2B3,
    EfficientNetV2L,
    EfficientNetV2M,
    EfficientNetV2S,
)
from irtool.applications.mobilenet import MobileNet
from irtool.applications.mobilenet_v2 import MobileNetV2
from irtool.applications.mobilenet_v3 import MobileNetV3Large, MobileNetV3Small
from irtool.applications.nasnet import NASNetLarge, NASNetMobile

_PART_2 = [
    "convnext", "efficientnet", "efficientnet_v2", "mobilenet", "mobilenet_v2", "mobilenet_v3", "nasnet",
    "ConvNeXtBase", "ConvNeXtLarge", "ConvNeXtSmall", "ConvNeXtTiny", "ConvNeXtXLarge",
    "EfficientNetB0", "EfficientNetB1", "EfficientNetB2", "EfficientNetB3", "EfficientNetB4", "EfficientNetB5",
    "EfficientNetB6", "EfficientNetB7",
    "EfficientNetV2B0", "EfficientNetV2B1", "EfficientNetV2B2", "EfficientNetV2B3", "EfficientNetV2L",
    "EfficientNetV2M", "EfficientNetV2S",
    "MobileNet", "MobileNetV2", "MobileNetV3Large", "MobileNetV3Small",
    "NASNetLarge", "NASNetMobile",
]  # fmt: skip
# -- end of part 2 ----------------------------------------------------------------------------

__all__ = ["imagenet_utils"] + _PART_2
