"""``keras.applications``: the ImageNet classifiers of Keras with Keras' signatures and layer
names, built from irtool layers, plus ``imagenet_utils`` (``preprocess_input``,
``decode_predictions``). ``weights=None`` initialises freshly, a path loads a weights file, and
``"imagenet"`` reads Keras' weights file from Keras' cache folder (see ``imagenet_utils``)."""

from irtool.applications import imagenet_utils

# -- applications part 1: VGG, ResNet (v1, v2), Xception, Inception V3, Inception-ResNet-v2, DenseNet --
# isort: split
from irtool.applications import (
    densenet,
    inception_resnet_v2,
    inception_v3,
    resnet,
    resnet50,
    resnet_v2,
    vgg16,
    vgg19,
    xception,
)
from irtool.applications.densenet import DenseNet121, DenseNet169, DenseNet201
from irtool.applications.inception_resnet_v2 import InceptionResNetV2
from irtool.applications.inception_v3 import InceptionV3
from irtool.applications.resnet import ResNet50, ResNet101, ResNet152
from irtool.applications.resnet_v2 import ResNet50V2, ResNet101V2, ResNet152V2
from irtool.applications.vgg16 import VGG16
from irtool.applications.vgg19 import VGG19
from irtool.applications.xception import Xception

# isort: split

_PART1 = [
    "DenseNet121",
    "DenseNet169",
    "DenseNet201",
    "InceptionResNetV2",
    "InceptionV3",
    "ResNet50",
    "ResNet101",
    "ResNet152",
    "ResNet50V2",
    "ResNet101V2",
    "ResNet152V2",
    "VGG16",
    "VGG19",
    "Xception",
    "densenet",
    "inception_resnet_v2",
    "inception_v3",
    "resnet",
    "resnet50",
    "resnet_v2",
    "vgg16",
    "vgg19",
    "xception",
]
# -- end of applications part 1 --

__all__ = ["imagenet_utils", *_PART1]
