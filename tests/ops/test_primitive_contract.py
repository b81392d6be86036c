"""The primitive contract, enforced for every primitive that exists.

A primitive (``irtool.ops.core.Primitive``) declares ``infer``, ``forward``, ``vjp`` and
``to_onnx`` side by side. This file finds every primitive by walking the ``irtool.ops`` and
``irtool.layers`` modules (module-level instances, and every ``Primitive`` subclass, so a class
whose instances come from a factory, like the recurrent ones, is found too) and checks that

* each class overrides all four rules (none is still the base class' ``NotImplementedError``);
* each instance has at least one case in ``EXAMPLES`` below, and each class is exercised by one
  (a new primitive without an example fails here, asking for one);
* for each case: ``infer`` on the input specs gives exactly the shapes and dtypes ``forward``
  returns (also with an unknown batch dimension, where it must stay compatible); the ONNX
  lowering of a one-op model (traced through the public ``Input``/``Model`` API, exported with
  ``irtool.onnx.to_onnx``, run in ONNX Runtime) matches ``forward``; ``vjp`` returns one gradient
  per input, shaped and typed like it, that matches central finite differences in float64
  (``tests/train/gradcheck.check_gradients``) for the float inputs;
* a primitive that says ``differentiable = False`` (comparisons, logical ops, argmax...) returns
  no gradient at all, and a differentiable one has at least one case that is gradient-checked.
  A case whose outputs are not floats (a cast to int) must get ``None`` gradients too.
"""

from __future__ import annotations

import dataclasses
import importlib
import pkgutil

import numpy as np
import pytest

import irtool as keras
import irtool.layers
import irtool.ops
from irtool.ir.dtypes import standardize_dtype
from irtool.ir.spec import TensorSpec
from irtool.ops.core import Primitive, apply
from irtool.ops.operation import top_level_op
from irtool.ops.rnn import KINDS, recurrent_primitive
from irtool.ops.scan import scan_primitive, trace_step
from irtool.ops.strings import LookupTable
from irtool.ops.variable import Variable

from ..conftest import run_onnx
from ..train.gradcheck import check_gradients

RULES = ("infer", "forward", "vjp", "to_onnx")


# -- discovery ------------------------------------------------------------------------------------
def _modules():
    for package in (irtool.ops, irtool.layers):
        yield package
        for info in pkgutil.walk_packages(package.__path__, package.__name__ + "."):
            yield importlib.import_module(info.name)


def _module_primitives() -> dict:
    """``{name: instance}`` for every primitive instance bound at module level."""
    found = {}
    for module in _modules():
        for value in vars(module).values():
            if isinstance(value, Primitive):
                other = found.setdefault(value.name, value)
                assert other is value, f"two primitives are named {value.name!r}: {other!r} and {value!r}"
    return found


def _subclasses(cls=Primitive) -> list:
    out = []
    for sub in cls.__subclasses__():
        out += [sub, *_subclasses(sub)]
    return list(dict.fromkeys(out))


PRIMITIVES = _module_primitives()
CLASSES = [c for c in _subclasses() if c.__module__.startswith("irtool.")]


# -- the example table ----------------------------------------------------------------------------
RNG = np.random.default_rng(7)


def f(*shape, low=-2.0, high=2.0, dtype="float32"):
    return RNG.uniform(low, high, size=shape).astype(dtype)


def away(*shape, dtype="float32"):
    """Floats at least 0.2 from any integer or half-integer (kinks of relu, abs, floor, round...)."""
    whole = RNG.integers(-2, 2, size=shape)
    return (whole + RNG.uniform(0.2, 0.3, size=shape) * RNG.choice([1, -1], size=shape)).astype(dtype)


def pos(*shape, dtype="float32"):
    return RNG.uniform(0.5, 2.0, size=shape).astype(dtype)


def i(*shape, low=-5, high=5, dtype="int32"):
    return RNG.integers(low, high, size=shape).astype(dtype)


def nonzero_i(*shape, dtype="int32"):
    return (RNG.integers(1, 4, size=shape) * RNG.choice([1, -1], size=shape)).astype(dtype)


def b(*shape):
    return RNG.random(shape) < 0.5


@dataclasses.dataclass
class Case:
    """One example: the input arrays, the attributes, and which inputs the ONNX model gets as
    constants (weights that a lowering folds, e.g. a conv kernel with ``padding="same"``)."""

    inputs: list
    attrs: dict
    const: tuple = ()
    prim: Primitive | None = None  # for primitives made by a factory (no module-level instance)
    atol: float = 1e-5
    refused: str = ""  # the export refuses this op with a message containing this (no ONNX operator)


def C(*inputs, const=(), prim=None, atol=1e-5, refused="", **attrs):
    return Case(list(inputs), attrs, tuple(const), prim, atol, refused)


def s(*words, shape=None):
    """A string tensor (an object array of str, irtool's representation)."""
    out = np.empty(len(words), dtype=object)
    out[:] = list(words)
    return out.reshape(shape or (len(words),))


def _table(key_dtype, value_dtype, default, keys, values):
    table = LookupTable(key_dtype, value_dtype, default)
    table.set(keys, values)
    return table


def _unary_cases(name):
    if name in ("sqrt", "log", "reciprocal"):
        return [C(pos(2, 3))]
    if name == "gelu":
        return [C(f(2, 3), approximate=True), C(f(2, 3), approximate=False)]
    if name == "leaky_relu":
        return [C(away(2, 3), negative_slope=0.2)]
    if name == "elu":
        return [C(away(2, 3), alpha=1.5)]
    if name == "logical_not":
        return [C(b(2, 3))]
    cases = [C(away(2, 3))]
    if name in ("negative", "abs", "square", "relu", "relu6", "sign"):
        cases.append(C(i(2, 3)))  # these also take integers
    return cases


_BINARY = {
    "add": [C(f(2, 3), f(3)), C(i(2, 3), i(2, 1))],
    "subtract": [C(f(2, 3), f(2, 1)), C(i(3), i(2, 3))],
    "multiply": [C(f(2, 3), f(3)), C(i(2, 3), i(2, 3))],
    "divide": [C(f(2, 3), pos(3))],
    "power": [C(pos(2, 3), f(3))],
    "maximum": [C(f(2, 3), f(3)), C(i(2, 3), i(3))],
    "minimum": [C(f(2, 3), f(2, 1)), C(i(2, 3), i(3))],
    "mod": [C(f(2, 3), away(3) + np.float32(3)), C(i(2, 3), nonzero_i(3))],
    "floor_divide": [C(f(2, 3), away(3) + np.float32(3)), C(i(2, 3), nonzero_i(3))],
    "truncate_divide": [C(i(2, 3), nonzero_i(3)), C(i(4, dtype="int64"), nonzero_i(4, dtype="int64"))],
}
for _name in ("less", "less_equal", "greater", "greater_equal", "equal", "not_equal"):
    _BINARY[_name] = [C(f(2, 3), f(3)), C(i(2, 3, low=-2, high=2), i(3, low=-2, high=2))]
for _name in ("logical_and", "logical_or", "logical_xor"):
    _BINARY[_name] = [C(b(2, 3), b(3))]


def _recurrent_cases():
    """One case per recurrent configuration: every kind, one or two directions (merged or
    split), with or without final states, with and without initial states, masks, biases."""
    cases = []
    units, features = 2, 3
    for kind, (gates, n_states, _) in KINDS.items():
        for bidirectional, split in ((False, False), (True, False), (True, True)):
            for with_states in (False, True):
                prim = recurrent_primitive(kind, bidirectional, split, with_states)
                directions = 2 if bidirectional else 1
                reset_after = kind == "gru"
                use_bias = not (bidirectional and with_states)
                has_initial_state = with_states
                has_mask = not bidirectional and not with_states
                x = f(2, 4, features, low=-1, high=1)
                items = [x]
                for _ in range(directions):
                    items += [
                        f(features, gates * units, low=-0.7, high=0.7),
                        f(units, gates * units, low=-0.7, high=0.7),
                    ]
                    if use_bias:
                        items.append(f(*((2, gates * units) if reset_after else (gates * units,)), low=-0.5, high=0.5))
                if has_initial_state:
                    items += [f(2, units, low=-0.5, high=0.5) for _ in range(n_states * directions)]
                if has_mask:
                    items.append(np.array([[True] * 4, [True, True, True, False]]))  # right-padded
                attrs = dict(
                    units=units,
                    activation="tanh",
                    recurrent_activation=None if kind == "simple_rnn" else "sigmoid",
                    use_bias=use_bias,
                    reset_after=reset_after,
                    has_initial_state=has_initial_state,
                    has_mask=has_mask,
                    return_sequences=bidirectional or not with_states,
                    go_backwards=kind == "gru" and not bidirectional,
                    merge_mode=None if split else ("concat" if bidirectional else None),
                )
                weights = range(1, 1 + directions * (3 if use_bias else 2))
                cases.append(Case(items, attrs, tuple(weights), prim, 1e-5))
    return cases


def _conv_cases():
    common = dict(dilation_rate=(1, 1))
    return {
        "conv": [
            C(f(1, 5, 5, 2), f(3, 3, 2, 3), f(3), const=(1,), strides=(1, 1), padding="same",
              data_format="channels_last", groups=1, **common),
            C(f(1, 4, 5, 6), f(2, 2, 2, 4), strides=(2, 1), padding="valid", data_format="channels_first",
              groups=2, **common),
            C(f(1, 6, 2), f(3, 2, 2), const=(1,), strides=(1,), padding="causal", data_format="channels_last",
              dilation_rate=(2,), groups=1),
        ],
        "depthwise_conv": [
            C(f(1, 4, 4, 2), f(2, 2, 2, 2), f(4), const=(1,), strides=(1, 1), padding="same",
              data_format="channels_last", **common),
        ],
        "conv_transpose": [
            C(f(1, 3, 3, 2), f(3, 3, 4, 2), f(4), const=(1,), strides=(2, 2), padding="same", output_padding=None,
              data_format="channels_last", **common),
            C(f(1, 2, 3, 3), f(2, 2, 3, 2), const=(1,), strides=(1, 2), padding="valid", output_padding=(0, 1),
              data_format="channels_first", **common),
        ],
    }  # fmt: skip


def _scan_cases():
    """``scan`` over a small step traced from ops (two weights; a plain and a masked, reversed run)."""
    kernel, recurrent = Variable(f(3, 2, low=-0.7, high=0.7)), Variable(f(2, 2, low=-0.7, high=0.7))

    def step(x, states):
        h = irtool.ops.tanh(irtool.ops.matmul(x, kernel) + irtool.ops.matmul(states[0], recurrent))
        return h * 2.0, [h]

    body, _, _ = trace_step(step, TensorSpec((None, 3), "float32"), [TensorSpec((None, 2), "float32")])
    common = dict(body=body, go_backwards=False, zero_output_for_mask=False, state_shapes=((2,),))
    holes = np.array([[True, False, True, True], [False, False, True, False]])
    return [
        C(f(2, 4, 3), kernel.numpy(), recurrent.numpy(), prim=scan_primitive(1), has_initial_state=False,
          has_mask=False, **common),
        C(f(2, 4, 3), f(2, 2), holes, kernel.numpy(), recurrent.numpy(), prim=scan_primitive(1),
          has_initial_state=True, has_mask=True, **{**common, "go_backwards": True}),
        C(f(2, 4, 3), holes, kernel.numpy(), recurrent.numpy(), prim=scan_primitive(1), has_initial_state=False,
          has_mask=True, **{**common, "zero_output_for_mask": True}),
    ]  # fmt: skip


EXAMPLES: dict[str, list[Case]] = {
    **{
        name: _unary_cases(name)
        for name in (
            "negative",
            "abs",
            "square",
            "sqrt",
            "exp",
            "log",
            "tanh",
            "sigmoid",
            "relu",
            "relu6",
            "softplus",
            "softsign",
            "selu",
            "hard_sigmoid",
            "erf",
            "gelu",
            "leaky_relu",
            "elu",
            "floor",
            "ceil",
            "round",
            "sign",
            "reciprocal",
            "sin",
            "cos",
            "logical_not",
        )
    },  # fmt: skip
    **_BINARY,
    # irtool/ops/math.py: inputs inside each function's domain, away from its poles
    "tan": [C(f(2, 3, low=-1.2, high=1.2))],
    "sinh": [C(f(2, 3))],
    "cosh": [C(f(2, 3))],
    "arcsin": [C(f(2, 3, low=-0.9, high=0.9))],
    "arccos": [C(f(2, 3, low=-0.9, high=0.9))],
    "arctan": [C(f(2, 3))],
    "arcsinh": [C(f(2, 3))],
    "arccosh": [C(f(2, 3, low=1.2, high=3.0))],
    "arctanh": [C(f(2, 3, low=-0.9, high=0.9))],
    "log1p": [C(f(2, 3, low=-0.9, high=2.0))],
    "expm1": [C(f(2, 3))],
    "log2": [C(pos(2, 3))],
    "log10": [C(pos(2, 3))],
    "trunc": [C(away(2, 3) * np.float32(2.5))],
    "isnan": [C(np.array([[0.5, np.nan, -np.inf], [np.inf, -1.0, np.nan]], "float32"))],
    "isinf": [C(np.array([[0.5, np.nan, -np.inf], [np.inf, -1.0, np.nan]], "float32"))],
    "isfinite": [C(np.array([[0.5, np.nan, -np.inf], [np.inf, -1.0, np.nan]], "float32"))],
    "cumsum": [C(f(2, 3, 4), axis=1), C(i(2, 3), axis=0), C(i(2, 3, dtype="int8"), axis=1)],
    "top_k": [
        C(f(2, 5), k=3, axis=1, largest=True),
        C(f(3, 4), k=None, axis=0, largest=False),
        C(np.array([[3, 1, 3, -(2**31)], [0, 0, 5, 2**31 - 1]], "int32"), k=4, axis=1, largest=True),
    ],
    "broadcast_to": [C(f(3, 1), shape=(2, 3, 4)), C(i(1, 4), shape=(3, 4))],
    "stop_gradient": [C(f(2, 3)), C(i(2, 3))],
    "take_along_axis": [
        C(f(3, 4), np.array([[0, 3], [1, 1], [2, -1]], "int64"), axis=1),
        C(i(3, 4), np.array([[2, 0, 1, 2]], "int32"), axis=0),
    ],
    "cast": [C(f(2, 3), dtype="float64"), C(away(2, 3), dtype="int32"), C(i(2, 3), dtype="float32")],
    # arrays
    "pad": [
        C(f(2, 3), pads=((0, 1), (2, 1)), mode="constant", value=0.5),
        C(f(2, 4), pads=((1, 1), (2, 3)), mode="reflect", value=0),
        C(f(2, 3), pads=((0, 0), (2, 1)), mode="edge", value=0),
        C(f(2, 3), pads=((1, 0), (2, 3)), mode="wrap", value=0),
    ],
    "repeat": [C(f(2, 3), repeats=2, axis=1)],
    "tile": [C(f(2, 3), repeats=(2, 2))],
    **_conv_cases(),
    "scan": _scan_cases(),
    # image
    "resize": [
        C(f(1, 3, 4, 2), size=(5, 6), factors=None, interpolation="bilinear", data_format="channels_last"),
        C(f(1, 2, 3, 2), size=None, factors=(2, 3), interpolation="nearest", data_format="channels_first"),
    ],
    "center_crop": [C(f(1, 4, 5, 2), axes=(1, 2), size=(2, 3))],
    # linalg
    "matmul": [C(f(2, 3), f(3, 4)), C(f(2, 2, 3), f(3, 2))],
    "matmul_add": [C(f(2, 3), f(3, 4), f(4)), C(f(2, 3), f(3, 4), f(4), activation="relu")],
    "einsum": [C(f(2, 3), f(3, 4), equation="ij,jk->ik"), C(f(2, 3, 4), equation="abc->ca")],
    "trilu": [C(f(3, 4), k=0, upper=False), C(f(2, 3, 3), k=1, upper=True)],
    # nn
    "softmax": [C(f(2, 3), axis=1)],
    "log_softmax": [C(f(2, 3, 2), axis=1)],
    # noise (the identity at inference)
    "gaussian_noise": [C(f(2, 3), stddev=0.1, seed=None)],
    # augmentation (the identity at inference)
    "random_flip": [C(f(2, 3, 3, 2), mode="horizontal", data_format="channels_last", seed=None)],
    "random_rotation": [
        C(
            f(2, 3, 3, 2),
            factor=(-0.2, 0.2),
            fill_mode="reflect",
            interpolation="bilinear",
            fill_value=0.0,
            data_format="channels_last",
            seed=None,
        )
    ],
    "random_zoom": [
        C(
            f(3, 3, 2),
            height_range=(-0.2, 0.2),
            width_range=None,
            fill_mode="reflect",
            interpolation="bilinear",
            fill_value=0.0,
            data_format="channels_last",
            seed=None,
        )
    ],
    "random_translation": [
        C(
            f(2, 3, 3, 2),
            height_range=(-0.2, 0.2),
            width_range=(0.0, 0.1),
            fill_mode="constant",
            interpolation="nearest",
            fill_value=0.0,
            data_format="channels_last",
            seed=None,
        )
    ],
    "random_contrast": [
        C(f(2, 3, 3, 2), factor=(0, 0.2), value_range=(0.0, 255.0), data_format="channels_last", seed=None)
    ],
    "random_brightness": [C(f(2, 2, 3, 3), factor=(-0.2, 0.2), value_range=(0.0, 255.0), seed=None)],
    "random_color_degeneration": [
        C(f(2, 3, 3, 3), factor=(-0.2, 0.5), value_range=(0.0, 255.0), data_format="channels_last", seed=None)
    ],
    "random_saturation": [
        C(f(2, 3, 3, 3), factor=(0.2, 0.7), value_range=(0.0, 255.0), data_format="channels_first", seed=None)
    ],
    "random_hue": [C(f(3, 3, 3), factor=(0.0, 0.5), value_range=(0.0, 255.0), data_format="channels_last", seed=None)],
    "random_sharpness": [
        C(f(2, 3, 4, 2), factor=(0.1, 0.9), value_range=(0.0, 255.0), data_format="channels_last", seed=None)
    ],
    "equalization": [C(f(2, 3, 4, 2), value_range=(-3.0, 3.0), bins=16, data_format="channels_last")],
    "random_erasing": [
        C(
            f(2, 4, 4, 3),
            factor=(0.5, 1.0),
            scale=(0.1, 0.4),
            fill_value=None,
            value_range=(0.0, 255.0),
            data_format="channels_last",
            seed=None,
        )
    ],
    "random_shear": [
        C(
            f(2, 4, 3, 2),
            x_factor=(-0.3, 0.3),
            y_factor=(0.0, 0.2),
            fill_mode="reflect",
            interpolation="bilinear",
            fill_value=0.0,
            data_format="channels_last",
            seed=None,
        )
    ],
    "random_crop": [C(f(2, 5, 4, 2), height=3, width=2, data_format="channels_last", seed=None)],
    "random_gaussian_blur": [
        C(
            f(2, 5, 4, 2),
            factor=(0.0, 1.0),
            kernel_size=(3, 3),
            sigma=(0.0, 1.0),
            value_range=(0.0, 255.0),
            data_format="channels_last",
            seed=None,
        )
    ],
    "cut_mix": [C(f(3, 4, 4, 2), factor=(0.0, 1.0), data_format="channels_last", seed=None)],
    "mix_up": [C(f(3, 4, 4, 2), alpha=0.4, seed=None)],
    "random_elastic_transform": [
        C(
            f(2, 5, 4, 2),
            factor=(0.0, 1.0),
            scale=(0.0, 1.0),
            interpolation="bilinear",
            fill_mode="reflect",
            fill_value=0.0,
            value_range=(0.0, 255.0),
            data_format="channels_last",
            seed=None,
        )
    ],
    "rand_augment": [
        C(
            f(2, 5, 4, 3),
            value_range=(0.0, 255.0),
            num_ops=2,
            factor=(0.0, 0.5),
            interpolation="bilinear",
            data_format="channels_last",
            seed=None,
        )
    ],
    "aug_mix": [
        C(
            f(2, 5, 4, 3),
            value_range=(0.0, 255.0),
            num_chains=2,
            chain_depth=2,
            factor=(0.0, 0.3),
            alpha=1.0,
            all_ops=True,
            interpolation="bilinear",
            data_format="channels_last",
            seed=None,
        )
    ],
    "random_perspective": [
        C(
            f(2, 5, 4, 2),
            factor=(0.0, 1.0),
            scale=0.5,
            interpolation="bilinear",
            fill_value=0.0,
            data_format="channels_last",
            seed=None,
        )
    ],
    "random_color_jitter": [
        C(
            f(2, 4, 4, 3),
            brightness=(-0.1, 0.1),
            contrast=(0.0, 0.3),
            saturation=None,
            hue=(0.0, 0.2),
            value_range=(0.0, 255.0),
            step_data_format="channels_last",
            seed=None,
        )
    ],
    "random_grayscale": [C(f(2, 3, 3, 3), factor=0.5, data_format="channels_last", seed=None)],
    "random_invert": [C(f(2, 3, 3, 2), factor=(0.0, 0.5), value_range=(0.0, 255.0), seed=None)],
    "random_posterization": [C(f(3, 3, 2), factor=(1.0, 4.0), value_range=(0.0, 255.0), seed=None)],
    "solarization": [
        C(f(2, 3, 3, 2), addition_factor=(0.0, 0.1), threshold_factor=(0.2, 0.5), value_range=(0.0, 1.0), seed=None)
    ],
    "gaussian_dropout": [C(f(2, 3), rate=0.3, seed=None)],
    "alpha_dropout": [C(f(2, 3), rate=0.3, noise_shape=None, seed=None)],
    "dropout": [C(f(2, 3), rate=0.5, noise_shape=None, seed=None)],
    # normalization
    "batch_norm": [
        C(f(2, 3), f(3), pos(3), f(3), f(3), epsilon=1e-3, has_scale=True, has_offset=True),
        C(f(2, 3, 2, 2), f(3, 1, 1), pos(3, 1, 1), epsilon=1e-3, has_scale=False, has_offset=False),
    ],
    "layer_norm": [
        C(f(2, 3, 4), f(4), f(4), axes=(-1,), epsilon=1e-3, has_gamma=True, has_beta=True, rms=False, norm_shape=(4,)),
        C(
            f(2, 3, 4),
            f(3, 4),
            axes=(-2, -1),
            epsilon=1e-3,
            has_gamma=True,
            has_beta=False,
            rms=True,
            norm_shape=(3, 4),
        ),
    ],  # fmt: skip
    # pooling
    "max_pool": [
        C(f(1, 4, 5, 2), pool_size=(2, 2), strides=(2, 2), padding="valid", data_format="channels_last"),
        C(f(1, 2, 5), pool_size=(2,), strides=(2,), padding="same", data_format="channels_first"),
    ],
    "average_pool": [
        C(f(1, 4, 5, 2), pool_size=(2, 2), strides=(1, 2), padding="valid", data_format="channels_last"),
        C(f(1, 5, 2), pool_size=(3,), strides=(2,), padding="same", data_format="channels_last"),
    ],
    "prelu": [C(away(2, 3), f(3))],
    # strings: vocabulary tables (ONNX LabelEncoder) and TensorFlow's hashes (no ONNX operator)
    "table_lookup": [
        C(s("a", "é", "zz", "", shape=(2, 2)), table=_table("string", "int64", 0, ["a", "é", ""], [1, 2, 3])),
        C(i(2, 3, dtype="int64"), table=_table("int64", "int64", -1, [-5, 0, 3], [7, 8, 9])),
        C(i(2, 3, low=0, high=4), table=_table("int64", "string", "[UNK]", [1, 2], ["x", "y"])),
    ],
    "hash_bucket": [
        C(s("a", "日本", "", shape=(3, 1)), num_bins=5, salt=None, refused="FarmHash fingerprint64"),
        C(i(2, 3, dtype="int64"), num_bins=7, salt=(1, 2), refused="SipHash"),
    ],
    "hash_cross": [C(s("a", "b", "c"), i(3, dtype="int64"), num_bins=11, refused="FarmHash")],
    # text (TextVectorization): ASCII lowercasing (StringNormalizer), the whitespace split (StringSplit)
    "standardize_text": [
        C(s("AbC Ü", "", "X\x00Y", "a.B!", shape=(2, 2)), mode="lower"),
        C(s("A.b, c!", "日本?"), mode="lower_and_strip_punctuation", refused="regular-expression"),
    ],
    "tokenize_text": [
        C(s(" a\tb  c\n", "", "日本 x", shape=(3, 1)), split="whitespace", ngrams=None, length=4, min_length=0),
        C(s("a b c d", "e"), split="whitespace", ngrams=None, length=2, min_length=0),
        C(s("ab", "c"), split="character", ngrams=None, length=3, min_length=0, refused="split='character'"),
        C(s("a", "b", "c", "d", shape=(2, 2)), split=None, ngrams=None, length=3, min_length=0),
        C(s("a", "b", "c", "d", shape=(2, 2)), split=None, ngrams=(1, 2), length=3, min_length=0, refused="ngrams"),
    ],
    # reductions
    **{
        name: [C(f(2, 3, 2), axes=(1,), keepdims=False), C(f(2, 3), axes=(0, 1), keepdims=True)]
        for name in ("sum", "mean", "max", "min", "prod")
    },
    "argmax": [C(f(2, 3), axis=1, keepdims=False), C(f(2, 3), axis=0, keepdims=True)],
    "argmin": [C(f(2, 3), axis=1, keepdims=True)],
    # shape
    "identity": [C(f(2, 3))],
    "reshape": [C(f(2, 3), shape=(3, 2)), C(f(2, 3, 2), shape=(2, -1))],
    "transpose": [C(f(2, 3, 4), perm=(2, 0, 1))],
    "expand_dims": [C(f(2, 3), axes=(0, 2))],
    "squeeze": [C(f(2, 1, 3, 1), axes=(1, 3))],
    "concatenate": [C(f(2, 3), f(2, 1), axis=1), C(f(1, 2), f(2, 2), f(1, 2), axis=0)],
    "get_item": [
        C(f(3, 4), key=((1, None, None), 2, None)),
        C(f(2, 5, 3), key=((None, None, None), (4, 0, -2), None, (0, 2, None))),
    ],
    "take": [C(f(3, 4), np.array([[0, 2], [1, -1]], "int32"), axis=1)],
    "where": [C(b(2, 3), f(2, 3), f(3)), C(b(3), i(2, 3), i(2, 3))],
    "clip": [C(away(2, 3), low=-1.0, high=1.0)],
    # TimeDistributed's reshapes
    "fold_time": [C(f(2, 3, 4))],
    # SpectralNormalization's training-time update: the identity on its input otherwise
    "spectral_norm_update": [C(f(2, 3), layer=None, power_iterations=1, training=None)],
    "unfold_time": [C(f(6, 5), f(2, 3, 1))],
    # signal processing (MelSpectrogram's FFT, STFTSpectrogram's angle)
    "stft": [
        C(f(2, 20), sequence_length=6, sequence_stride=3, fft_length=8, window="hann", center=True),
        C(f(13), sequence_length=5, sequence_stride=2, fft_length=6, window=(0.1, 0.5, 1.0, 0.5, 0.2), center=False),
        C(f(1, 9), sequence_length=4, sequence_stride=4, fft_length=4, window=None, center=True),
    ],
    "arctan2": [C(away(2, 3), away(3)), C(away(2, 1), away(2, 3))],
    # CLAHE: piecewise constant in the pixels (declares no gradient)
    "clahe": [
        C(
            f(2, 5, 6, 2, low=0, high=255),
            value_range=(0.0, 255.0),
            clip_limit=2.0,
            tile_grid_size=(2, 3),
            data_format="channels_last",
        ),
        C(
            f(1, 2, 4, 5, low=-1, high=1),
            value_range=(-1.0, 1.0),
            clip_limit=0.0,
            tile_grid_size=(2, 2),
            data_format="channels_first",
        ),
    ],
    # recurrent primitives (made by ``recurrent_primitive``), keyed by kind
    **{kind: [c for c in _recurrent_cases() if c.prim.kind == kind] for kind in KINDS},
}


# Integer inputs: the same rules must hold (and a differentiable primitive returns no gradient).
for _key, _case in [
    ("identity", C(i(2, 3))),
    ("reshape", C(i(2, 3), shape=(6,))),
    ("transpose", C(i(2, 3), perm=(1, 0))),
    ("expand_dims", C(i(2, 3), axes=(1,))),
    ("squeeze", C(i(1, 3), axes=(0,))),
    ("concatenate", C(i(2, 3), i(2, 2), axis=1)),
    ("get_item", C(i(3, 4), key=((0, 3, 2), (None, None, -1)))),
    ("take", C(i(3, 4), np.array([2, 0], "int64"), axis=0)),
    ("pad", C(i(2, 3), pads=((1, 0), (0, 2)), mode="constant", value=7)),
    ("tile", C(i(2, 3), repeats=(1, 2))),
    ("repeat", C(i(2, 3), repeats=3, axis=0)),
    ("sum", C(i(2, 3), axes=(1,), keepdims=False)),
    ("max", C(i(2, 3), axes=(0,), keepdims=True)),
    ("matmul", C(i(2, 3), i(3, 2))),
    ("clip", C(i(2, 3), low=-2.0, high=3.0)),
    ("trilu", C(i(3, 3), k=-1, upper=False)),
    ("fold_time", C(i(2, 3, 1))),
    ("cast", C(b(2, 3), dtype="float32")),
    ("argmax", C(i(2, 3), axis=1, keepdims=False)),
]:
    EXAMPLES[_key].append(_case)


def _prim(key: str, case: Case) -> Primitive:
    return case.prim if case.prim is not None else PRIMITIVES[key]


ALL_CASES = [(key, n, case) for key, cases in EXAMPLES.items() for n, case in enumerate(cases)]


# -- coverage -------------------------------------------------------------------------------------
@pytest.mark.parametrize("cls", CLASSES, ids=lambda c: f"{c.__module__}.{c.__name__}")
def test_class_declares_every_rule(cls):
    missing = [rule for rule in RULES if getattr(cls, rule) is getattr(Primitive, rule)]
    assert not missing, f"{cls.__module__}.{cls.__name__} does not define {missing}: a primitive needs all of {RULES}"


def test_every_primitive_has_an_example():
    missing = sorted(name for name in PRIMITIVES if name not in EXAMPLES)
    assert not missing, (
        f"primitives without an example in tests/ops/test_primitive_contract.py: {missing}. "
        "Add one or more small cases (input arrays + attrs) to EXAMPLES."
    )
    unknown = sorted(k for k, cases in EXAMPLES.items() if k not in PRIMITIVES and any(c.prim is None for c in cases))
    assert not unknown, f"EXAMPLES names primitives that do not exist: {unknown}"
    used = [_prim(key, case) for key, _, case in ALL_CASES]
    uncovered = [c.__name__ for c in CLASSES if not any(isinstance(p, c) for p in used)]
    assert not uncovered, (
        f"Primitive classes with no instance in EXAMPLES: {uncovered} (instances made by a factory need "
        "cases that pass `prim=`)."
    )


def test_differentiable_primitives_are_gradient_checked():
    checked = {id(_prim(k, c)) for k, _, c in ALL_CASES if _gradient_checked(_prim(k, c), c)}
    used = {id(_prim(k, c)): _prim(k, c) for k, _, c in ALL_CASES}
    unchecked = sorted(p.name for i, p in used.items() if p.differentiable and i not in checked)
    assert not unchecked, (
        f"differentiable primitives with no float example to check the vjp: {unchecked}. Add a float case, "
        "or declare the primitive `differentiable = False` if it has no gradient."
    )


# -- the per-example contract ---------------------------------------------------------------------
def _as_list(out, prim):
    return [out] if prim.num_outputs == 1 else list(out)


def _spec(a) -> TensorSpec:
    return TensorSpec(tuple(a.shape), standardize_dtype(a.dtype))


def _float64(arrays):
    return [a.astype("float64") if a.dtype.kind == "f" else a for a in arrays]


def _gradient_checked(prim, case) -> bool:
    if not prim.differentiable or not any(a.dtype.kind == "f" for a in case.inputs):
        return False
    outs = _as_list(prim.forward(*_float64(case.inputs), **case.attrs), prim)
    return any(np.asarray(o).dtype.kind == "f" for o in outs)  # top_k: float values, int indices


def _check_infer(prim, arrays, attrs):
    outs = _as_list(prim.forward(*arrays, **attrs), prim)
    assert len(outs) == prim.num_outputs, f"forward returned {len(outs)} outputs, num_outputs={prim.num_outputs}"
    specs = prim.infer([_spec(a) for a in arrays], **attrs)
    assert len(specs) == len(outs), f"infer gave {len(specs)} outputs, forward {len(outs)}"
    for k, (s, o) in enumerate(zip(specs, outs)):
        o = np.asarray(o)
        assert tuple(s.shape) == o.shape, f"output {k}: infer says shape {s.shape}, forward gives {o.shape}"
        assert s.dtype == standardize_dtype(o.dtype), f"output {k}: infer says {s.dtype}, forward gives {o.dtype}"
    # With an unknown batch (every input of rank >= 1 sharing the first dim), infer must stay compatible.
    if all(a.ndim for a in arrays) and len({a.shape[0] for a in arrays}) == 1:
        specs = prim.infer([TensorSpec((None, *a.shape[1:]), standardize_dtype(a.dtype)) for a in arrays], **attrs)
        for k, (s, o) in enumerate(zip(specs, outs)):
            assert len(s.shape) == np.ndim(o) and all(d in (None, n) for d, n in zip(s.shape, np.shape(o))), (
                f"output {k}: with an unknown batch infer says {s.shape}, forward gives {np.shape(o)}"
            )
    return outs


def _one_op_model(prim, arrays, attrs, const):
    inputs = [keras.Input(batch_shape=a.shape, dtype=a.dtype.name) for n, a in enumerate(arrays) if n not in const]
    traced = top_level_op("PrimitiveContract")(lambda *symbolic: apply(prim, _merge(symbolic, arrays, const), **attrs))
    outs = traced(*inputs)
    return keras.Model(inputs, outs if prim.num_outputs > 1 else outs[0])


def _merge(symbolic, arrays, const):
    it = iter(symbolic)
    return [a if n in const else next(it) for n, a in enumerate(arrays)]


@pytest.mark.parametrize(("key", "n", "case"), ALL_CASES, ids=[f"{k}-{n}" for k, n, _ in ALL_CASES])
def test_primitive_contract(key, n, case):
    prim = _prim(key, case)
    attrs = case.attrs

    # infer agrees with forward (as given, and in float64 for the gradient check)
    outs = _check_infer(prim, case.inputs, attrs)
    arrays64 = _float64(case.inputs)
    outs64 = _check_infer(prim, arrays64, attrs)

    # ONNX lowering of a one-op model agrees with forward (or refuses, naming what to do instead)
    model = _one_op_model(prim, case.inputs, attrs, case.const)
    if case.refused:
        with pytest.raises(keras.onnx.ExportError, match=case.refused) as info:
            keras.onnx.to_onnx(model)
        assert "keep it outside the exported model" in str(info.value)
        assert prim.vjp([None] * prim.num_outputs, case.inputs, outs, **attrs) == [None] * len(case.inputs)
        return
    proto = keras.onnx.to_onnx(model)
    feeds = [a for k, a in enumerate(case.inputs) if k not in case.const]
    got = run_onnx(proto, {x.name: a for x, a in zip(proto.graph.input, feeds)})
    assert len(got) == len(outs)
    for k, (g, want) in enumerate(zip(got, outs)):
        want = np.asarray(want)
        assert g.dtype == want.dtype and g.shape == want.shape, (
            f"ONNX output {k}: {g.dtype}{g.shape}, forward {want.dtype}{want.shape}"
        )
        if want.dtype.kind == "f":
            np.testing.assert_allclose(g, want, atol=case.atol, rtol=1e-5, err_msg=f"ONNX output {k}")
        else:
            np.testing.assert_array_equal(g, want, err_msg=f"ONNX output {k}")

    # vjp: one gradient per input, shaped and typed like it (None for non-float inputs)
    cotangents = [np.asarray(RNG.standard_normal(np.shape(o))).astype(np.asarray(o).dtype) for o in outs64]
    if not prim.differentiable:
        grads = prim.vjp(cotangents, arrays64, outs64, **attrs)
        assert len(grads) == len(arrays64), f"vjp returned {len(grads)} gradients for {len(arrays64)} inputs"
        assert all(g is None for g in grads), f"{prim.name} is declared `differentiable = False`: vjp must return None"
        return
    float_outputs = [k for k, o in enumerate(outs64) if np.asarray(o).dtype.kind == "f"]
    if not float_outputs:
        # Outputs that are not floats (a cast to int, an integer reshape) never receive a cotangent:
        # the backward pass skips an op whose cotangents are all None, and every vjp returns None
        # for its non-float inputs (checked below), so there is nothing to check here.
        return
    grads = prim.vjp(cotangents, arrays64, outs64, **attrs)
    assert len(grads) == len(arrays64), f"vjp returned {len(grads)} gradients for {len(arrays64)} inputs"
    for k, (g, a) in enumerate(zip(grads, arrays64)):
        if a.dtype.kind != "f":
            assert g is None, f"gradient of non-float input {k} should be None"
        elif g is not None:
            g = np.asarray(g)
            assert g.shape == a.shape and g.dtype == a.dtype, (
                f"gradient {k}: {g.dtype}{g.shape}, input {a.dtype}{a.shape}"
            )
    traced = top_level_op("PrimitiveContract")(lambda *xs: apply(prim, list(xs), **attrs))
    if not _gradient_checked(prim, case):  # no float input (a cast from int): nothing to differentiate
        return
    # the float outputs' gradients (an integer output, such as top_k's indices, gets no cotangent)
    check_gradients(
        lambda *xs: (
            [traced(*xs)[k] for k in float_outputs] if len(float_outputs) > 1 else traced(*xs)[float_outputs[0]]
        ),
        arrays64,
        atol=1e-6,
        rtol=1e-5,
    )
