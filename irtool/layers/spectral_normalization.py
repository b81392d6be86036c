"""SpectralNormalization: a wrapper that divides a layer's kernel by its largest singular value.

Keras 3 semantics: at inference the wrapped layer runs with its kernel as stored; when training,
one power-iteration step per call estimates the kernel's spectral norm, the normalized kernel and
the new ``vector_u`` are *assigned* to the variables, then the layer runs with them. The
assignment is ``ops.spectral.spectral_norm_update`` (an identity on the input whose training
kernel updates the variables in place), so exports are exactly the wrapped layer's.
"""

from __future__ import annotations

from irtool import initializers
from irtool.layers.input_spec import InputSpec
from irtool.layers.wrapper import Wrapper
from irtool.ops.elementwise import cast
from irtool.ops.spectral import spectral_norm_update


class SpectralNormalization(Wrapper):
    """Performs spectral normalization on the weights of a target layer (a GAN stabilizer).

    ``layer`` has a ``kernel`` (``Dense``, ``Conv2D``...) or ``embeddings`` (``Embedding``);
    ``power_iterations`` is the number of power-iteration steps per training call::

        dense = layers.SpectralNormalization(layers.Dense(10))

    Weights, as in Keras: the kernel (tracked by the wrapper too), the non-trainable
    ``vector_u`` of shape ``(1, kernel.shape[-1])``, then the wrapped layer's others.
    """

    def __init__(self, layer, power_iterations=1, **kwargs):
        super().__init__(layer, **kwargs)
        if power_iterations <= 0:
            raise ValueError(
                f"`power_iterations` should be greater than zero. Received: `power_iterations={power_iterations}`"
            )
        self.power_iterations = power_iterations

    def build(self, input_shape):
        super().build(input_shape)
        self.input_spec = InputSpec(min_ndim=1, axes={-1: input_shape[-1]})
        if hasattr(self.layer, "kernel"):
            self.kernel = self.layer.kernel
        elif hasattr(self.layer, "embeddings"):
            self.kernel = self.layer.embeddings
        else:
            raise ValueError(f"{type(self.layer).__name__} object has no attribute 'kernel' nor 'embeddings'")
        # Keras' attribute tracker makes the kernel one of the wrapper's own variables too, which
        # decides the weights' order and the ``.weights.h5`` layout (``vars/0`` kernel, ``vars/1`` u).
        own = self._trainable_variables if self.kernel.trainable else self._non_trainable_variables
        own.append(self.kernel)
        self.kernel_shape = tuple(self.kernel.shape)
        self.vector_u = self.add_weight(
            shape=(1, self.kernel_shape[-1]),
            initializer=initializers.TruncatedNormal(stddev=0.02),
            trainable=False,
            name="vector_u",
            dtype=self.kernel.dtype,
        )

    def call(self, inputs, training=None):
        if training is not False:  # training=None: the update runs when the program trains
            inputs = spectral_norm_update(inputs, self, self.power_iterations, training)
        output = self.layer(inputs)
        return output if output.dtype == inputs.dtype else cast(output, inputs.dtype)

    def compute_output_shape(self, input_shape):
        return self.layer.compute_output_shape(input_shape)

    def get_config(self):
        config = super().get_config()
        config["power_iterations"] = self.power_iterations
        return config
