"""What the convolution layers share: Keras' argument checks, the geometry arguments
(``kernel_size``, ``strides``, ``padding``, ``data_format``, ``dilation_rate``), the channel
axis and the output-shape rule with Keras' errors."""

from __future__ import annotations

from irtool import activations
from irtool.layers.input_spec import InputSpec
from irtool.layers.layer import Layer
from irtool.ops.conv_utils import standardize_data_format, standardize_padding, standardize_tuple


def _args(local_vars: dict) -> dict:
    """A subclass ``__init__``'s arguments, to forward to its base (``**kwargs`` flattened)."""
    args = {k: v for k, v in local_vars.items() if k not in ("self", "__class__", "kwargs")}
    args.update(local_vars.get("kwargs", {}))
    return args


def _positive_int(value, name: str, what: str):
    if value is not None and value <= 0:
        raise ValueError(f"Invalid value for argument `{name}`. Expected a strictly positive value. Received {what}.")


def _check_sizes(kernel_size, strides, strides_note: str = "") -> None:
    if not all(kernel_size):
        raise ValueError(f"The argument `kernel_size` cannot contain 0. Received kernel_size={kernel_size}.")
    if not all(strides):
        raise ValueError(f"The argument `strides` cannot contains 0. Received strides={strides}{strides_note}")


def _check_dilation(strides, dilation_rate) -> None:
    if max(strides) > 1 and max(dilation_rate) > 1:
        raise ValueError(
            "`strides > 1` not supported in conjunction with `dilation_rate > 1`. "
            f"Received: strides={strides} and dilation_rate={dilation_rate}"
        )


class _SpatialLayer(Layer):
    """What every convolution layer shares: geometry arguments, channel axis, output shape."""

    rank = 2

    def _init_geometry(self, kernel_size, strides, padding, data_format, dilation_rate, activation, use_bias):
        self.kernel_size = standardize_tuple(kernel_size, self.rank, "kernel_size")
        self.strides = standardize_tuple(strides, self.rank, "strides")
        self.dilation_rate = standardize_tuple(dilation_rate, self.rank, "dilation_rate")
        self.padding = standardize_padding(padding, allow_causal=self._allow_causal())
        self.data_format = standardize_data_format(data_format)
        self.activation = activations.get(activation)
        self.use_bias = use_bias
        self.input_spec = InputSpec(min_ndim=self.rank + 2)

    def _allow_causal(self) -> bool:
        return False

    @property
    def _channel_axis(self) -> int:
        return -1 if self.data_format == "channels_last" else 1

    def _input_channel(self, input_shape) -> int:
        input_shape = tuple(input_shape)
        if len(input_shape) != self.rank + 2:
            raise ValueError(
                f"Kernel shape must have the same length as input, but received kernel of shape "
                f"{self.kernel_size + (None, None)} and input of shape {input_shape}."
            )
        channels = input_shape[self._channel_axis]
        if channels is None:
            raise ValueError(
                f"The channel dimension of the inputs to {type(self).__name__} should be defined. "
                f"Found None. Full input shape received: {input_shape}"
            )
        self.input_spec = InputSpec(min_ndim=self.rank + 2, axes={self._channel_axis: channels})
        return channels

    def _output_shape(self, input_shape, channels, lengths):
        input_shape = tuple(input_shape)
        if self.data_format == "channels_last":
            spatial = input_shape[1:-1]
        else:
            spatial = input_shape[2:]
        out = tuple(lengths(*args) for args in zip(spatial, self.kernel_size, self.strides, self.dilation_rate))
        for n, o in zip(spatial, out):
            if n is not None and o <= 0:
                raise ValueError(
                    f"Computed output size would be zero or negative. Received `inputs shape={input_shape}`, "
                    f"`kernel shape={self.kernel_size}`, `dilation_rate={self.dilation_rate}`, "
                    f"`strides={self.strides}`, `padding={self.padding}`."
                )
        if self.data_format == "channels_last":
            return (input_shape[0], *out, channels)
        return (input_shape[0], channels, *out)

    def _activate(self, x):
        return x if self.activation is activations.linear else self.activation(x)

    def _geometry_config(self) -> dict:
        return {
            "kernel_size": self.kernel_size,
            "strides": self.strides,
            "padding": self.padding,
            "data_format": self.data_format,
            "dilation_rate": self.dilation_rate,
        }
