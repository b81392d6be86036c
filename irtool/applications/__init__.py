"""``keras.applications``: the ImageNet classifiers of Keras with Keras' signatures and layer
names, built from irtool layers, plus ``imagenet_utils`` (``preprocess_input``,
``decode_predictions``). ``weights=None`` initialises freshly, a path loads a weights file, and
``"imagenet"`` reads Keras' weights file from Keras' cache folder (see ``imagenet_utils``)."""

from irtool.applications import (
    convnext,
    densenet,
    efficientnet,
    efficientnet_v2,
    imagenet_utils,
    inception_resnet_v2,
    inception_v3,
    mobilenet,
    mobilenet_v2,
    mobilenet_v3,
    nasnet,
    resnet,
    resnet50,
    resnet_v2,
    vgg16,
    vgg19,
    xception,
)
from irtool.applications.convnext import ConvNeXtBase, ConvNeXtLarge, ConvNeXtSmall, ConvNeXtTiny, ConvNeXtXLarge
from irtool.applications.densenet import DenseNet121, DenseNet169, DenseNet201
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
from irtool.applications.inception_resnet_v2 import InceptionResNetV2
from irtool.applications.inception_v3 import InceptionV3
from irtool.applications.mobilenet import MobileNet
from irtool.applications.mobilenet_v2 import MobileNetV2
from irtool.applications.mobilenet_v3 import MobileNetV3Large, MobileNetV3Small
from irtool.applications.nasnet import NASNetLarge, NASNetMobile
from irtool.applications.resnet import ResNet50, ResNet101, ResNet152
from irtool.applications.resnet_v2 import ResNet50V2, ResNet101V2, ResNet152V2
from irtool.applications.vgg16 import VGG16
from irtool.applications.vgg19 import VGG19
from irtool.applications.xception import Xception

__all__ = [name for name in dir() if not name.startswith("_")]
