"""``irtool.layers``: Keras layers written in ``irtool.ops``."""

from irtool.layers import convnext
from irtool.layers.activation import Activation
from irtool.layers.activations import ELU, LeakyReLU, PReLU, ReLU, Softmax
from irtool.layers.adaptive_pooling import (
    AdaptiveAveragePooling1D,
    AdaptiveAveragePooling2D,
    AdaptiveAveragePooling3D,
    AdaptiveMaxPooling1D,
    AdaptiveMaxPooling2D,
    AdaptiveMaxPooling3D,
)
from irtool.layers.attention import AdditiveAttention, Attention, MultiHeadAttention
from irtool.layers.audio_preprocessing import MelSpectrogram, STFTSpectrogram
from irtool.layers.augmentation import (
    AugMix,
    AutoContrast,
    CutMix,
    Equalization,
    MixUp,
    RandAugment,
    RandomBrightness,
    RandomColorDegeneration,
    RandomColorJitter,
    RandomContrast,
    RandomCrop,
    RandomElasticTransform,
    RandomErasing,
    RandomFlip,
    RandomGaussianBlur,
    RandomGrayscale,
    RandomHue,
    RandomInvert,
    RandomPerspective,
    RandomPosterization,
    RandomRotation,
    RandomSaturation,
    RandomSharpness,
    RandomShear,
    RandomTranslation,
    RandomZoom,
    Solarization,
)
from irtool.layers.bidirectional import Bidirectional
from irtool.layers.bounding_boxes import MaxNumBoundingBoxes
from irtool.layers.clahe import ContrastLimitedAdaptiveHistogramEqualization
from irtool.layers.conv_lstm import ConvLSTM1D, ConvLSTM2D, ConvLSTM3D
from irtool.layers.convolutional import (
    Conv1D,
    Conv1DTranspose,
    Conv2D,
    Conv2DTranspose,
    Conv3D,
    Conv3DTranspose,
    Convolution1D,
    Convolution1DTranspose,
    Convolution2D,
    Convolution2DTranspose,
    Convolution3D,
    Convolution3DTranspose,
)
from irtool.layers.convolutional_depthwise import (
    DepthwiseConv1D,
    DepthwiseConv2D,
    SeparableConv1D,
    SeparableConv2D,
    SeparableConvolution1D,
    SeparableConvolution2D,
)
from irtool.layers.dense import Dense
from irtool.layers.dot import Dot, dot
from irtool.layers.dropout import Dropout
from irtool.layers.einsum_dense import EinsumDense
from irtool.layers.embedding import Embedding
from irtool.layers.group_query_attention import GroupQueryAttention
from irtool.layers.hashing import HashedCrossing, Hashing
from irtool.layers.index_lookup import IntegerLookup, StringLookup
from irtool.layers.input_layer import Input, InputLayer
from irtool.layers.input_spec import InputSpec
from irtool.layers.lambda_layer import Lambda
from irtool.layers.layer import Layer
from irtool.layers.masking import Masking
from irtool.layers.merging import (
    Add,
    Average,
    Concatenate,
    Maximum,
    Minimum,
    Multiply,
    Subtract,
    add,
    average,
    concatenate,
    maximum,
    minimum,
    multiply,
    subtract,
)
from irtool.layers.normalization import (
    BatchNormalization,
    GroupNormalization,
    LayerNormalization,
    RMSNormalization,
    UnitNormalization,
)
from irtool.layers.pipeline import Pipeline
from irtool.layers.pooling import (
    AveragePooling1D,
    AveragePooling2D,
    AveragePooling3D,
    AvgPool1D,
    AvgPool2D,
    AvgPool3D,
    GlobalAveragePooling1D,
    GlobalAveragePooling2D,
    GlobalAveragePooling3D,
    GlobalAvgPool1D,
    GlobalAvgPool2D,
    GlobalAvgPool3D,
    GlobalMaxPool1D,
    GlobalMaxPool2D,
    GlobalMaxPool3D,
    GlobalMaxPooling1D,
    GlobalMaxPooling2D,
    GlobalMaxPooling3D,
    MaxPool1D,
    MaxPool2D,
    MaxPool3D,
    MaxPooling1D,
    MaxPooling2D,
    MaxPooling3D,
)
from irtool.layers.preprocessing import CenterCrop, Normalization, Rescaling, Resizing
from irtool.layers.preprocessing_categorical import CategoryEncoding, Discretization
from irtool.layers.recurrent import RNN, StackedRNNCells
from irtool.layers.regularization import (
    ActivityRegularization,
    AlphaDropout,
    GaussianDropout,
    GaussianNoise,
    SpatialDropout1D,
    SpatialDropout2D,
    SpatialDropout3D,
)
from irtool.layers.reshaping import (
    Cropping1D,
    Cropping2D,
    Cropping3D,
    Flatten,
    Identity,
    Permute,
    RepeatVector,
    Reshape,
    UpSampling1D,
    UpSampling2D,
    UpSampling3D,
    ZeroPadding1D,
    ZeroPadding2D,
    ZeroPadding3D,
)
from irtool.layers.reversible_embedding import ReversibleEmbedding
from irtool.layers.rnn import GRU, LSTM, SimpleRNN
from irtool.layers.rnn_cells import GRUCell, LSTMCell, SimpleRNNCell
from irtool.layers.spectral_normalization import SpectralNormalization
from irtool.layers.text_vectorization import TextVectorization
from irtool.layers.time_distributed import TimeDistributed
from irtool.layers.wrapper import Wrapper
from irtool.serialization.keras_objects import register_namespace

__all__ = [name for name in dir() if not name.startswith("_")]

register_namespace("keras.layers", globals())
# Keras application internals, written and read under Keras' own module name (not keras.layers).
register_namespace(
    "keras.src.applications.convnext",
    {"LayerScale": convnext.LayerScale, "StochasticDepth": convnext.StochasticDepth},
)
