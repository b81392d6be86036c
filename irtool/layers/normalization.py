"""Normalization layers: BatchNormalization, LayerNormalization, RMSNormalization,
GroupNormalization and UnitNormalization, with Keras 3's arguments, defaults, weights and configs.

BatchNormalization records one ``batch_norm`` primitive that reads the moving statistics at
inference and, when the graph runs in training mode (the trainer), normalizes with the batch
statistics and updates the moving ones with Keras' momentum (see ``ops.normalization.BatchNorm``);
a layer with ``trainable=False`` stays in inference mode, and a call with ``training=False`` records
plain inference. An eager call on arrays with ``training=True`` does the same in NumPy.
"""

from __future__ import annotations

import warnings

import numpy as np

from irtool import constraints, initializers, ops, regularizers
from irtool.ir.dtypes import is_float
from irtool.layers.input_spec import InputSpec
from irtool.layers.layer import Layer
from irtool.ops.core import SymbolicTensor
from irtool.ops.normalization import batch_normalization_layer


def _serialize(initializer):
    return initializers.serialize(initializer)


def _axis_list(axis, what: str = "axis"):
    if isinstance(axis, (list, tuple)):
        if not all(isinstance(a, int) and not isinstance(a, bool) for a in axis):
            raise TypeError(
                f"Expected an int or a list/tuple of ints for the argument '{what}', but received: {axis!r}"
            )
        return list(axis)
    if isinstance(axis, int) and not isinstance(axis, bool):
        return axis
    raise TypeError(f"Expected an int or a list/tuple of ints for the argument '{what}', but received: {axis!r}")


def _check_axes(axes, input_shape, layer_axis) -> None:
    rank = len(input_shape)
    for axis in [axes] if isinstance(axes, int) else axes:
        if axis >= rank or axis < -rank:
            raise ValueError(
                f"Axis {axis} is out of bounds for input shape {tuple(input_shape)}. Received: axis={layer_axis}"
            )


def _compute_dtype(x):
    """Integer and boolean inputs are normalized in float32; float inputs keep their dtype."""
    return x if is_float(str(x.dtype)) else ops.cast(x, "float32")


class BatchNormalization(Layer):
    """Normalizes per channel of ``axis`` with ``(x - mean) / sqrt(var + epsilon) * gamma + beta``.

    Weights (Keras' order): ``gamma``, ``beta`` (trainable, if ``scale``/``center``), then
    ``moving_mean`` and ``moving_variance`` (non-trainable); with ``renorm=True`` also
    ``moving_stddev``, ``renorm_mean`` and ``renorm_stddev`` (Keras' weight layout only:
    inference ignores them and training with ``renorm=True`` raises ``NotImplementedError``). At
    inference the moving statistics are used; the ONNX export folds everything into one ``Mul``
    and one ``Add``.
    """

    def __init__(
        self,
        axis=-1,
        momentum=0.99,
        epsilon=1e-3,
        center=True,
        scale=True,
        beta_initializer="zeros",
        gamma_initializer="ones",
        moving_mean_initializer="zeros",
        moving_variance_initializer="ones",
        beta_regularizer=None,
        gamma_regularizer=None,
        beta_constraint=None,
        gamma_constraint=None,
        renorm=False,
        renorm_clipping=None,
        renorm_momentum=0.99,
        synchronized=False,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.axis = int(axis)
        if synchronized:
            raise ValueError("Argument synchronized=True is only supported with the TensorFlow backend.")
        self.synchronized = synchronized
        self.momentum = float(momentum)
        self.epsilon = float(epsilon)
        self.center = center
        self.scale = scale
        self.beta_initializer = initializers.get(beta_initializer)
        self.gamma_initializer = initializers.get(gamma_initializer)
        self.moving_mean_initializer = initializers.get(moving_mean_initializer)
        self.moving_variance_initializer = initializers.get(moving_variance_initializer)
        self.beta_regularizer = regularizers.get(beta_regularizer)
        self.gamma_regularizer = regularizers.get(gamma_regularizer)
        self.beta_constraint = constraints.get(beta_constraint)
        self.gamma_constraint = constraints.get(gamma_constraint)
        self.supports_masking = True
        self.renorm = renorm
        if renorm:
            renorm_clipping = renorm_clipping or {}
            keys = ["rmax", "rmin", "dmax"]
            if set(renorm_clipping) - set(keys):
                raise ValueError(
                    f"Received invalid keys for `renorm_clipping` argument: {renorm_clipping}. Supported values: {keys}."
                )
            rmax, rmin, dmax = (renorm_clipping.get(k) for k in keys)
            if rmax is not None and rmin is not None and rmax < rmin:
                raise ValueError(
                    "rmax should be greater than rmin in the `renorm_clipping` argument. "
                    f"Received: rmax={rmax}, rmin={rmin}."
                )
            if dmax is not None and dmax < 0:
                raise ValueError(
                    f"dmax should be non-negative in the `renorm_clipping` argument. Received: dmax={dmax}."
                )
        self.renorm_clipping = renorm_clipping
        self.renorm_momentum = renorm_momentum
        self.gamma = None
        self.beta = None
        self.moving_mean = None
        self.moving_variance = None

    def build(self, input_shape):
        _check_axes(self.axis, input_shape, self.axis)
        channels = input_shape[self.axis]
        if channels is None:
            raise ValueError(
                f"Axis {self.axis} of the input to BatchNormalization should have a defined dimension. "
                f"Received: input_shape={tuple(input_shape)}"
            )
        shape = (channels,)
        if self.scale:
            self.gamma = self.add_weight(
                shape=shape,
                name="gamma",
                initializer=self.gamma_initializer,
                regularizer=self.gamma_regularizer,
                constraint=self.gamma_constraint,
                autocast=False,
            )
        if self.center:
            self.beta = self.add_weight(
                shape=shape,
                name="beta",
                initializer=self.beta_initializer,
                regularizer=self.beta_regularizer,
                constraint=self.beta_constraint,
                autocast=False,
            )
        self.moving_mean = self.add_weight(
            shape=shape, name="moving_mean", initializer=self.moving_mean_initializer, trainable=False, autocast=False
        )
        self.moving_variance = self.add_weight(
            shape=shape,
            name="moving_variance",
            initializer=self.moving_variance_initializer,
            trainable=False,
            autocast=False,
        )
        if self.renorm:
            variance_init = self.moving_variance_initializer

            def stddev_init(shape, dtype=None):
                return np.sqrt(np.asarray(initializers.get(_serialize(variance_init))(shape, dtype=dtype)))

            self.moving_stddev = self.add_weight(
                shape=shape, name="moving_stddev", initializer=stddev_init, trainable=False, autocast=False
            )
            self.renorm_mean = self.add_weight(
                shape=shape,
                name="renorm_mean",
                initializer=initializers.get(_serialize(self.moving_mean_initializer)),
                trainable=False,
                autocast=False,
            )
            self.renorm_stddev = self.add_weight(
                shape=shape, name="renorm_stddev", initializer=stddev_init, trainable=False, autocast=False
            )
        self.input_spec = InputSpec(ndim=len(input_shape), axes={self.axis: channels})
        reduction_axes = list(range(len(input_shape)))
        del reduction_axes[self.axis]
        self._reduction_axes = reduction_axes
        self.built = True

    def call(self, inputs, training=None, mask=None):
        if mask is not None and len(mask.shape) != len(inputs.shape) - 1:
            raise ValueError(
                "The mask provided should be one dimension less than the inputs. Received: "
                f"mask.shape={mask.shape}, inputs.shape={inputs.shape}"
            )
        inputs = _compute_dtype(inputs)
        dtype = str(inputs.dtype)
        gamma = ops.cast(self.gamma, dtype) if self.scale else None
        beta = ops.cast(self.beta, dtype) if self.center else None
        if isinstance(inputs, SymbolicTensor):
            if training is not None and not training:  # called with training=False: always inference
                mean, variance = ops.cast(self.moving_mean, dtype), ops.cast(self.moving_variance, dtype)
                outputs = ops.batch_normalization(
                    inputs, mean, variance, axis=self.axis, offset=beta, scale=gamma, epsilon=self.epsilon
                )
            else:  # mode-agnostic: batch statistics when the graph runs in training mode (or training=True)
                outputs = batch_normalization_layer(
                    inputs, self, self.axis, beta, gamma, self.epsilon, mask=mask, training=training
                )
            return ops.cast(outputs, self.dtype)
        mean, variance = ops.cast(self.moving_mean, dtype), ops.cast(self.moving_variance, dtype)
        if training and self.trainable:
            if self.renorm:
                raise NotImplementedError(
                    f"BatchNormalization '{self.name}': training with renorm=True is not supported."
                )
            mean, variance = self._batch_moments(inputs, mask)
        outputs = ops.batch_normalization(
            inputs, mean, variance, axis=self.axis, offset=beta, scale=gamma, epsilon=self.epsilon
        )
        return ops.cast(outputs, self.dtype)

    def _batch_moments(self, inputs, mask):
        """Eager batch statistics (masked steps excluded), updating the moving statistics."""
        axes = tuple(self._reduction_axes)
        if mask is None:
            mean = inputs.mean(axis=axes)
            variance = np.square(inputs - inputs.mean(axis=axes, keepdims=True)).mean(axis=axes)
        else:
            weights = np.broadcast_to(np.expand_dims(np.asarray(mask, bool), -1), inputs.shape).astype(inputs.dtype)
            total = weights.sum(axis=axes, keepdims=True) + np.asarray(1e-7, inputs.dtype)
            mean = (inputs * weights).sum(axis=axes, keepdims=True) / total
            variance = (np.square(inputs - mean) * weights).sum(axis=axes, keepdims=True) / total
            mean, variance = mean.reshape(-1), variance.reshape(-1)
        m = np.asarray(self.momentum, inputs.dtype)
        self.moving_mean.assign(self.moving_mean.numpy() * m + mean * (1 - m))
        self.moving_variance.assign(self.moving_variance.numpy() * m + variance * (1 - m))
        return mean.astype(inputs.dtype), variance.astype(inputs.dtype)

    def compute_output_shape(self, input_shape):
        _check_axes(self.axis, input_shape, self.axis)
        return tuple(input_shape)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "axis": self.axis,
                "momentum": self.momentum,
                "epsilon": self.epsilon,
                "center": self.center,
                "scale": self.scale,
                "beta_initializer": _serialize(self.beta_initializer),
                "gamma_initializer": _serialize(self.gamma_initializer),
                "moving_mean_initializer": _serialize(self.moving_mean_initializer),
                "moving_variance_initializer": _serialize(self.moving_variance_initializer),
                "beta_regularizer": regularizers.serialize(self.beta_regularizer),
                "gamma_regularizer": regularizers.serialize(self.gamma_regularizer),
                "beta_constraint": constraints.serialize(self.beta_constraint),
                "gamma_constraint": constraints.serialize(self.gamma_constraint),
                "synchronized": self.synchronized,
                "renorm": self.renorm,
                "renorm_clipping": self.renorm_clipping,
                "renorm_momentum": self.renorm_momentum,
            }
        )
        return config


class LayerNormalization(Layer):
    """Normalizes each example over ``axis`` (int or list), then ``* gamma + beta``.

    ``gamma`` and ``beta`` have the sizes of the normalized axes. Exported as ONNX
    ``LayerNormalization`` (opset >= 17) when the axes are the trailing ones and ``rms_scaling``
    is off, else as ``ReduceMean``/``Sub``/``Mul``/``Sqrt``/``Div``.
    """

    def __init__(
        self,
        axis=-1,
        epsilon=1e-3,
        center=True,
        scale=True,
        beta_initializer="zeros",
        gamma_initializer="ones",
        beta_regularizer=None,
        gamma_regularizer=None,
        beta_constraint=None,
        gamma_constraint=None,
        **kwargs,
    ):
        rms_scaling = kwargs.pop("rms_scaling", False)
        if rms_scaling:
            warnings.warn(
                "You passed `rms_scaling=True`, which is deprecated. This argument incorrectly scales the input by "
                "the variance, not the root mean square. To correctly use RMS Normalization, please use "
                "`keras.layers.RMSNormalization` instead.",
                stacklevel=2,
            )
        super().__init__(**kwargs)
        self.axis = _axis_list(axis)
        self.epsilon = epsilon
        self.center = center
        self.scale = scale
        self.rms_scaling = rms_scaling
        self.beta_initializer = initializers.get(beta_initializer)
        self.gamma_initializer = initializers.get(gamma_initializer)
        self.beta_regularizer = regularizers.get(beta_regularizer)
        self.gamma_regularizer = regularizers.get(gamma_regularizer)
        self.beta_constraint = constraints.get(beta_constraint)
        self.gamma_constraint = constraints.get(gamma_constraint)
        self.supports_masking = True
        self.autocast = False
        self.gamma = None
        self.beta = None

    def build(self, input_shape):
        _check_axes(self.axis, input_shape, self.axis)
        if isinstance(self.axis, (list, tuple)):
            self.axis = sorted(self.axis)
            shape = tuple(input_shape[a] for a in self.axis)
        else:
            shape = (input_shape[self.axis],)
            self.axis = [self.axis]
        if None in shape:
            raise ValueError(
                f"The normalized axes {self.axis} of the input to LayerNormalization should have defined "
                f"dimensions. Received: input_shape={tuple(input_shape)}"
            )
        if self.scale or self.rms_scaling:
            self.gamma = self.add_weight(
                name="gamma",
                shape=shape,
                initializer=self.gamma_initializer,
                regularizer=self.gamma_regularizer,
                constraint=self.gamma_constraint,
                autocast=False,
            )
        if self.center and not self.rms_scaling:
            self.beta = self.add_weight(
                name="beta",
                shape=shape,
                initializer=self.beta_initializer,
                regularizer=self.beta_regularizer,
                constraint=self.beta_constraint,
                autocast=False,
            )
        self.built = True

    def call(self, inputs):
        inputs = _compute_dtype(inputs)
        dtype = str(inputs.dtype)
        gamma = None if self.gamma is None else ops.cast(self.gamma, dtype)
        beta = None if self.beta is None else ops.cast(self.beta, dtype)
        outputs = ops.layer_normalization(
            inputs, gamma, beta, axis=self.axis, epsilon=self.epsilon, rms_scaling=self.rms_scaling
        )
        return ops.cast(outputs, self.dtype)

    def compute_output_shape(self, input_shape):
        _check_axes(self.axis, input_shape, self.axis)
        return tuple(input_shape)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "axis": self.axis,
                "epsilon": self.epsilon,
                "center": self.center,
                "scale": self.scale,
                "rms_scaling": self.rms_scaling,
                "beta_initializer": _serialize(self.beta_initializer),
                "gamma_initializer": _serialize(self.gamma_initializer),
                "beta_regularizer": regularizers.serialize(self.beta_regularizer),
                "gamma_regularizer": regularizers.serialize(self.gamma_regularizer),
                "beta_constraint": constraints.serialize(self.beta_constraint),
                "gamma_constraint": constraints.serialize(self.gamma_constraint),
            }
        )
        return config


class RMSNormalization(Layer):
    """``x / sqrt(mean(square(x), axis) + epsilon) * scale`` (Keras 3's RMS normalization).

    ``scale`` (ones at first) has the sizes of the normalized axes. As in Keras, ``axis`` becomes
    a sorted list when the layer is built, and the layer neither casts nor passes masks.
    """

    def __init__(self, axis=-1, epsilon=1e-6, **kwargs):
        super().__init__(**kwargs)
        self.axis = axis
        self.epsilon = epsilon
        self.scale = None

    def build(self, input_shape):
        _check_axes(self.axis, input_shape, self.axis)
        self.axis = sorted(self.axis) if isinstance(self.axis, (list, tuple)) else [self.axis]
        shape = tuple(input_shape[a] for a in self.axis)
        if None in shape:
            raise ValueError(
                f"The normalized axes {self.axis} of the input to RMSNormalization should have defined "
                f"dimensions. Received: input_shape={tuple(input_shape)}"
            )
        self.scale = self.add_weight(name="scale", shape=shape, initializer="ones")
        self.built = True

    def call(self, x):
        return ops.rms_normalization(x, scale=self.scale, axis=self.axis, epsilon=self.epsilon)

    def compute_output_shape(self, input_shape):
        _check_axes(self.axis, input_shape, self.axis)
        return tuple(input_shape)

    def get_config(self):
        config = super().get_config()
        config.update({"axis": self.axis, "epsilon": self.epsilon})
        return config


class GroupNormalization(Layer):
    """Splits the ``axis`` channels into ``groups`` and normalizes each group of each example
    (``groups=-1``: one group per channel, instance normalization), then ``* gamma + beta``
    per channel."""

    def __init__(
        self,
        groups=32,
        axis=-1,
        epsilon=1e-3,
        center=True,
        scale=True,
        beta_initializer="zeros",
        gamma_initializer="ones",
        beta_regularizer=None,
        gamma_regularizer=None,
        beta_constraint=None,
        gamma_constraint=None,
        **kwargs,
    ):
        if not isinstance(groups, int) or isinstance(groups, bool) or (groups <= 0 and groups != -1):
            raise ValueError(
                "Received an invalid value for argument `groups`, expected a positive integer (or `-1` for "
                f"instance normalization). Received: groups={groups}"
            )
        super().__init__(**kwargs)
        self.supports_masking = True
        self.autocast = False
        self.groups = groups
        self.axis = axis
        self.epsilon = epsilon
        self.center = center
        self.scale = scale
        self.beta_initializer = initializers.get(beta_initializer)
        self.gamma_initializer = initializers.get(gamma_initializer)
        self.beta_regularizer = regularizers.get(beta_regularizer)
        self.gamma_regularizer = regularizers.get(gamma_regularizer)
        self.beta_constraint = constraints.get(beta_constraint)
        self.gamma_constraint = constraints.get(gamma_constraint)
        self.gamma = None
        self.beta = None

    def build(self, input_shape):
        _check_axes(self.axis, input_shape, self.axis)
        dim = input_shape[self.axis]
        if dim is None:
            raise ValueError(
                f"Axis {self.axis} of input tensor should have a defined dimension but the layer received an input "
                f"with shape {tuple(input_shape)}."
            )
        if self.groups == -1:
            self.groups = dim
        if dim < self.groups:
            raise ValueError(f"Number of groups ({self.groups}) cannot be more than the number of channels ({dim}).")
        if dim % self.groups != 0:
            raise ValueError(f"Number of groups ({self.groups}) must be a multiple of the number of channels ({dim}).")
        self.input_spec = InputSpec(ndim=len(input_shape), axes={self.axis: dim})
        if self.scale:
            self.gamma = self.add_weight(
                shape=(dim,),
                name="gamma",
                initializer=self.gamma_initializer,
                regularizer=self.gamma_regularizer,
                constraint=self.gamma_constraint,
                autocast=False,
            )
        if self.center:
            self.beta = self.add_weight(
                shape=(dim,),
                name="beta",
                initializer=self.beta_initializer,
                regularizer=self.beta_regularizer,
                constraint=self.beta_constraint,
                autocast=False,
            )
        self.built = True

    def call(self, inputs):
        inputs = _compute_dtype(inputs)
        dtype = str(inputs.dtype)
        shape = tuple(inputs.shape)
        rank = len(shape)
        axis = self.axis % rank
        channels = shape[axis]
        # (..., C, ...) -> (..., G, C/G, ...): axes before the channel axis keep their place (None
        # copies a dynamic one); after it, one dynamic axis at most is inferred (-1).
        grouped = self._target(shape[:axis], "before") + (self.groups, channels // self.groups)
        grouped += self._target(shape[axis + 1 :], "after")
        x = ops.reshape(inputs, grouped)
        axes = [a for a in range(1, rank + 1) if a != axis]
        x = ops.layer_normalization(x, axis=axes, epsilon=self.epsilon)
        x = ops.reshape(x, self._target(shape[: axis + 1], "before") + self._target(shape[axis + 1 :], "after"))
        for weight, op in ((self.gamma, ops.multiply), (self.beta, ops.add)):
            if weight is not None:
                weight = ops.cast(weight, dtype)
                if axis != rank - 1:
                    weight = ops.reshape(weight, (channels,) + (1,) * (rank - 1 - axis))
                x = op(x, weight)
        return ops.cast(x, self.dtype)

    def _target(self, dims, where):
        if where == "before":
            return tuple(dims)  # None: keep the input's dim at the same position
        if sum(d is None for d in dims) > 1:
            raise ValueError(
                f"GroupNormalization '{self.name}' supports at most one dynamic dimension after the channel axis. "
                f"Received dimensions {tuple(dims)} after axis {self.axis}."
            )
        return tuple(-1 if d is None else d for d in dims)

    def compute_output_shape(self, input_shape):
        _check_axes(self.axis, input_shape, self.axis)
        return tuple(input_shape)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "groups": self.groups,
                "axis": self.axis,
                "epsilon": self.epsilon,
                "center": self.center,
                "scale": self.scale,
                "beta_initializer": _serialize(self.beta_initializer),
                "gamma_initializer": _serialize(self.gamma_initializer),
                "beta_regularizer": regularizers.serialize(self.beta_regularizer),
                "gamma_regularizer": regularizers.serialize(self.gamma_regularizer),
                "beta_constraint": constraints.serialize(self.beta_constraint),
                "gamma_constraint": constraints.serialize(self.gamma_constraint),
            }
        )
        return config


class UnitNormalization(Layer):
    """Scales each example to unit L2 norm over ``axis`` (int or list): ``x / max(||x||, 1e-12)``."""

    def __init__(self, axis=-1, **kwargs):
        super().__init__(**kwargs)
        if isinstance(axis, (list, tuple)):
            self.axis = list(axis)
        elif isinstance(axis, int) and not isinstance(axis, bool):
            self.axis = axis
        else:
            raise TypeError(
                f"Invalid value for `axis` argument: expected an int or a list/tuple of ints. Received: axis={axis}"
            )
        self.supports_masking = True
        self.built = True

    def call(self, inputs):
        shape = tuple(inputs.shape)
        for axis in [self.axis] if isinstance(self.axis, int) else self.axis:
            if axis >= len(shape) or axis < -len(shape):
                raise ValueError(f"Axis {self.axis} is out of bounds for input shape {shape}.")
        return ops.normalize(inputs, axis=self.axis, order=2, epsilon=1e-12)

    def compute_output_shape(self, input_shape):
        return tuple(input_shape)

    def get_config(self):
        config = super().get_config()
        config["axis"] = self.axis
        return config
