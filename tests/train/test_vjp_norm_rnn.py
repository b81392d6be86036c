"""Gradients of the normalization, PReLU, noise and recurrent primitives, and Keras' training mode.

Inference-mode vjps are checked with central finite differences (float64, ``check_gradients``).
Training mode (batch statistics, noise) is checked the same way through ``GradientProgram(...,
training=True)``: the numeric derivative runs the training kernels with the same random state.
BatchNormalization's batch statistics and moving-statistics update are compared with real Keras.
"""

import numpy as np
import pytest

import irtool as keras
from irtool import layers, ops
from irtool.ops.prelu import prelu
from irtool.train.autodiff import GradientProgram

from ..harness import require_keras
from .gradcheck import check_gradients

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

RNG = np.random.default_rng(7)


def r(*shape, low=-1.0, high=1.0):
    return RNG.uniform(low, high, shape)


def away_from_zero(x, margin=0.05):
    return np.where(np.abs(x) < margin, np.sign(x + 1e-12) * 0.5, x)


# -- batch / layer normalization (inference form) ---------------------------------------------------


@pytest.mark.parametrize("axis", [-1, 1])
@pytest.mark.parametrize("affine", [True, False])
def test_batch_normalization_inference(axis, affine):
    x = r(3, 4, 2)
    c = x.shape[axis]
    params = [r(c), r(c, low=0.2, high=2.0)] + ([r(c), r(c)] if affine else [])

    def build(x, mean, variance, *affine_params):
        scale, offset = affine_params if affine else (None, None)
        return ops.batch_normalization(x, mean, variance, axis=axis, offset=offset, scale=scale, epsilon=1e-3)

    check_gradients(build, [x] + params)


@pytest.mark.parametrize(
    "axis, params",
    [(-1, "both"), (-1, "none"), ((1, 2), "both"), ((1, 3), "gamma"), ((2, 3), "beta"), (1, "both")],
)
def test_layer_normalization(axis, params):
    x = r(2, 3, 2, 3)
    shape = tuple(x.shape[a] for a in ([axis] if isinstance(axis, int) else axis))
    gamma = r(*shape) if params in ("both", "gamma") else None
    beta = r(*shape) if params in ("both", "beta") else None
    arrays = [x] + [p for p in (gamma, beta) if p is not None]

    def build(x, *ps):
        ps = list(ps)
        g = ps.pop(0) if gamma is not None else None
        b = ps.pop(0) if beta is not None else None
        return ops.layer_normalization(x, g, b, axis=axis, epsilon=1e-3)

    check_gradients(build, arrays)


def test_layer_normalization_rms_scaling():
    check_gradients(
        lambda x, g: ops.layer_normalization(x, g, axis=-1, epsilon=1e-3, rms_scaling=True), [r(3, 5), r(5)]
    )
    check_gradients(lambda x: ops.layer_normalization(x, axis=(1, 2), epsilon=1e-2, rms_scaling=True), [r(2, 3, 4)])


# -- PReLU ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("alpha_shape", [(4,), (1, 4), (3, 1), (2, 3, 4), (1,)])
def test_prelu(alpha_shape):
    x = away_from_zero(r(2, 3, 4))
    check_gradients(prelu, [x, r(*alpha_shape)])


def test_prelu_layer_weights():
    x = away_from_zero(r(2, 3, 4))
    check_gradients(lambda t: layers.PReLU(shared_axes=[1], dtype="float64")(t), [x])


# -- noise layers: identity at inference -------------------------------------------------------------


@pytest.mark.parametrize(
    "make",
    [
        lambda: layers.GaussianNoise(0.3, dtype="float64"),
        lambda: layers.GaussianDropout(0.3, dtype="float64"),
        lambda: layers.AlphaDropout(0.3, dtype="float64"),
        lambda: layers.Dropout(0.3, dtype="float64"),
        lambda: layers.SpatialDropout1D(0.3, dtype="float64"),
    ],
)
def test_noise_layers_are_identity_at_inference(make):
    check_gradients(lambda t: ops.tanh(make()(t)), [r(2, 3, 4)])


# -- training mode: finite differences through the training kernels ---------------------------------


def training_gradcheck(model, feeds, weights=(), seed=0, eps=1e-6, atol=1e-6, rtol=1e-5):
    """d sum(model(feeds) * R) / d (float feeds, weights) with ``GradientProgram(training=True)``,
    against central differences of the same program's loss with the random state reset."""
    out = model.outputs[0]
    projection = RNG.standard_normal(tuple(feeds[0].shape[:1]) + tuple(out.shape[1:]))
    loss_model = keras.Model(model.inputs, ops.sum(out * projection))
    graph = loss_model.graph
    float_inputs = [i for i, f in enumerate(feeds) if np.issubdtype(f.dtype, np.floating)]
    wrt = [graph.inputs[i] for i in float_inputs] + list(weights)
    rng = np.random.default_rng(seed)
    state = rng.bit_generator.state
    program = GradientProgram(graph, wrt, training=True, rng=rng)
    forward = GradientProgram(graph, [], training=True, rng=rng)
    saved = [w.numpy() for w in model.non_trainable_weights]

    def loss_at():
        rng.bit_generator.state = state
        return float(forward.run(feeds)[0][0])

    rng.bit_generator.state = state
    _, grads = program.run(feeds)
    targets = [feeds[i] for i in float_inputs] + [w._value for w in weights]
    for k, (target, grad) in enumerate(zip(targets, grads)):
        numeric = np.zeros_like(target)
        for j in range(target.size):
            value = target.flat[j]
            target.flat[j] = value + eps
            plus = loss_at()
            target.flat[j] = value - eps
            minus = loss_at()
            target.flat[j] = value
            numeric.flat[j] = (plus - minus) / (2 * eps)
        np.testing.assert_allclose(grad, numeric, atol=atol, rtol=rtol, err_msg=f"gradient {k}")
    for w, value in zip(model.non_trainable_weights, saved):
        w.assign(value)
    return grads


def _randomize_bn(bn):
    for w in bn.weights:
        low = 0.2 if "variance" in w.path else -1.0
        w.assign(RNG.uniform(low, 1.5, w.shape))


@pytest.mark.parametrize(
    "shape, axis, center, scale",
    [((5, 3), -1, True, True), ((3, 2, 3), -1, False, True), ((2, 3, 2, 2), 1, True, False), ((4, 2, 3), 1, 1, 1)],
)
def test_batch_normalization_training_gradients(shape, axis, center, scale):
    inputs = keras.Input(batch_shape=shape, dtype="float64")
    bn = layers.BatchNormalization(axis=axis, center=center, scale=scale, momentum=0.8, dtype="float64")
    model = keras.Model(inputs, ops.tanh(bn(inputs)))
    _randomize_bn(bn)
    training_gradcheck(model, [r(*shape) * 2 + 0.5], weights=bn.trainable_weights)


def test_batch_normalization_training_gradients_with_mask():
    x_in = keras.Input(batch_shape=(3, 4, 2), dtype="float64")
    m_in = keras.Input(batch_shape=(3, 4), dtype="bool")
    bn = layers.BatchNormalization(momentum=0.5, dtype="float64")
    model = keras.Model([x_in, m_in], bn(x_in, mask=m_in))
    _randomize_bn(bn)
    mask = np.array([[1, 1, 0, 1], [0, 1, 1, 0], [1, 0, 0, 0]], bool)
    x = r(3, 4, 2)
    training_gradcheck(model, [x, mask], weights=bn.trainable_weights)
    # The statistics exclude masked steps (Keras' weighted moments, epsilon() in the denominator).
    before = [bn.moving_mean.numpy(), bn.moving_variance.numpy()]
    GradientProgram(model.graph, [], training=True).run([x, mask])
    kept = x[mask]
    mean, variance = kept.mean(0), kept.var(0)
    n = len(kept)
    np.testing.assert_allclose(bn.moving_mean.numpy(), before[0] * 0.5 + 0.5 * mean * n / (n + 1e-7), rtol=1e-9)
    np.testing.assert_allclose(bn.moving_variance.numpy(), before[1] * 0.5 + 0.5 * variance * n / (n + 1e-7))


@pytest.mark.parametrize("axis, shape", [(-1, (6, 3)), (1, (4, 3, 2, 2))])
def test_batch_normalization_training_updates_moving_statistics_in_place(axis, shape):
    inputs = keras.Input(shape[1:])
    bn = layers.BatchNormalization(axis=axis, momentum=0.9)
    model = keras.Model(inputs, bn(inputs))
    _randomize_bn(bn)
    mean_array, variance_array = bn.moving_mean._value, bn.moving_variance._value
    before = [bn.moving_mean.numpy(), bn.moving_variance.numpy()]
    x = (r(*shape) * 3 + 1).astype("float32")
    axes = tuple(a for a in range(len(shape)) if a != axis % len(shape))
    program = GradientProgram(model.graph, [], training=True)
    (y,), _ = program.run([x])
    keep = [1 if a in axes else -1 for a in range(len(shape))]
    mean, variance = x.mean(axes), x.var(axes)
    gamma, beta = bn.gamma.numpy().reshape(keep), bn.beta.numpy().reshape(keep)
    want = (x - mean.reshape(keep)) / np.sqrt(variance.reshape(keep) + 1e-3) * gamma + beta
    np.testing.assert_allclose(y, want, rtol=1e-4, atol=1e-5)
    assert bn.moving_mean._value is mean_array and bn.moving_variance._value is variance_array
    np.testing.assert_allclose(bn.moving_mean.numpy(), before[0] * 0.9 + mean * 0.1, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(bn.moving_variance.numpy(), before[1] * 0.9 + variance * 0.1, rtol=1e-5, atol=1e-6)
    # Inference (the executor and a training=False program) reads the updated statistics.
    infer = (x - bn.moving_mean.numpy().reshape(keep)) / np.sqrt(bn.moving_variance.numpy().reshape(keep) + 1e-3)
    np.testing.assert_allclose(model.predict(x, verbose=0), infer * gamma + beta, rtol=1e-4, atol=1e-5)


def _bn_model(**call_kwargs):
    inputs = keras.Input((3,), dtype="float64")
    bn = layers.BatchNormalization(momentum=0.5, dtype="float64")
    model = keras.Model(inputs, bn(inputs, **call_kwargs))
    _randomize_bn(bn)
    return model, bn


def test_frozen_batch_normalization_stays_in_inference_mode():
    model, bn = _bn_model()
    x = r(4, 3)
    bn.trainable = False  # after tracing: read when the training kernel runs, as Keras reads it
    before = [bn.moving_mean.numpy(), bn.moving_variance.numpy()]
    program = GradientProgram(model.graph, [model.graph.inputs[0]], training=True)
    (y,), (grad,) = program.run([x], seed=np.ones((4, 3)))
    np.testing.assert_allclose(y, model.predict(x, verbose=0))
    np.testing.assert_array_equal(bn.moving_mean.numpy(), before[0])
    np.testing.assert_array_equal(bn.moving_variance.numpy(), before[1])
    scale = bn.gamma.numpy() / np.sqrt(bn.moving_variance.numpy() + 1e-3)
    np.testing.assert_allclose(grad, np.broadcast_to(scale, (4, 3)))
    bn.trainable = True
    (y,), _ = program.run([x], seed=np.ones((4, 3)))
    np.testing.assert_allclose(y.mean(0), bn.beta.numpy(), atol=1e-12)  # batch statistics again


def test_batch_normalization_called_with_explicit_training_flag():
    model, bn = _bn_model(training=False)
    before = bn.moving_mean.numpy()
    x = r(4, 3)
    (y,), _ = GradientProgram(model.graph, [], training=True).run([x])
    np.testing.assert_allclose(y, model.predict(x, verbose=0))
    np.testing.assert_array_equal(bn.moving_mean.numpy(), before)
    model, bn = _bn_model(training=True)  # batch statistics even at inference, as in Keras
    y = model.predict(x, verbose=0)
    np.testing.assert_allclose(y.mean(0), bn.beta.numpy(), atol=1e-12)
    assert not np.allclose(bn.moving_mean.numpy(), before)


def test_renorm_training_is_reported():
    inputs = keras.Input((3,))
    bn = layers.BatchNormalization(renorm=True)
    model = keras.Model(inputs, bn(inputs))
    with pytest.raises(NotImplementedError, match="renorm"):
        GradientProgram(model.graph, [], training=True).run([r(4, 3).astype("float32")])
    model.predict(r(4, 3).astype("float32"), verbose=0)  # inference is fine


def test_batch_normalization_training_matches_keras():
    real = require_keras()
    x = (r(6, 5, 4) * 2 + 1).astype("float32")
    mask = RNG.random((6, 5)) > 0.3
    for use_mask in (False, True):
        theirs = real.layers.BatchNormalization(momentum=0.7, epsilon=1e-2)
        theirs.build(x.shape)
        weights = [RNG.uniform(0.2, 1.5, (4,)).astype("float32") for _ in range(4)]
        theirs.set_weights(weights)
        want = theirs(x, training=True, mask=mask if use_mask else None)
        want = np.asarray(want.detach().cpu().numpy() if hasattr(want, "detach") else want)

        x_in = keras.Input((5, 4))
        ours = layers.BatchNormalization(momentum=0.7, epsilon=1e-2)
        if use_mask:
            m_in = keras.Input((5,), dtype="bool")
            model = keras.Model([x_in, m_in], ours(x_in, mask=m_in))
            feeds = [x, mask]
        else:
            model = keras.Model(x_in, ours(x_in))
            feeds = [x]
        ours.set_weights(weights)
        (y,), _ = GradientProgram(model.graph, [], training=True).run(feeds)
        np.testing.assert_allclose(y, want, rtol=1e-4, atol=2e-5)
        for a, b in zip(ours.get_weights(), theirs.get_weights()):
            np.testing.assert_allclose(a, np.asarray(b), rtol=1e-5, atol=1e-6)


# -- noise layers in training mode ------------------------------------------------------------------


@pytest.mark.parametrize(
    "make",
    [
        lambda: layers.GaussianDropout(0.4, dtype="float64"),
        lambda: layers.AlphaDropout(0.4, dtype="float64"),
        lambda: layers.AlphaDropout(0.4, noise_shape=(None, 1, 4), dtype="float64"),
        lambda: layers.GaussianNoise(0.5, dtype="float64"),
        lambda: layers.Dropout(0.4, dtype="float64"),
        lambda: layers.SpatialDropout1D(0.4, dtype="float64"),
    ],
)
def test_noise_layers_training_gradients(make):
    inputs = keras.Input((3, 4), dtype="float64")
    layer = make()
    model = keras.Model(inputs, ops.tanh(layer(inputs)))
    x = r(2, 3, 4)
    training_gradcheck(model, [x], seed=3)
    (y,), _ = GradientProgram(model.graph, [], training=True, rng=np.random.default_rng(3)).run([x])
    assert not np.allclose(y, np.tanh(x))  # the noise is on


def test_noise_statistics_and_explicit_training_false():
    x = np.zeros((200, 50))
    for layer, check in (
        (layers.GaussianNoise(0.5, dtype="float64"), lambda y: abs(y.std() - 0.5) < 0.02),
        (layers.GaussianDropout(0.2, dtype="float64"), lambda y: abs(y.std() - 0.5) < 0.02),
        (layers.AlphaDropout(0.2, dtype="float64"), lambda y: abs(y.mean()) < 0.05 and abs(y.std() - 1) < 0.05),
    ):
        inputs = keras.Input((50,), dtype="float64")
        model = keras.Model(inputs, layer(inputs))
        base = x + 1.0 if isinstance(layer, layers.GaussianDropout) else x
        if isinstance(layer, layers.AlphaDropout):
            base = RNG.standard_normal(x.shape)
        (y,), _ = GradientProgram(model.graph, [], training=True, rng=np.random.default_rng(0)).run([base])
        assert check(y), type(layer).__name__
        frozen = keras.Model(inputs, layer(inputs, training=False))
        (y,), _ = GradientProgram(frozen.graph, [], training=True).run([base])
        np.testing.assert_array_equal(y, base)


# -- recurrent layers: backpropagation through time --------------------------------------------------

GATES = {"simple_rnn": 1, "lstm": 4, "gru": 3}
STATES = {"simple_rnn": 1, "lstm": 2, "gru": 1}
MASK = np.array([[1, 1, 1, 0], [1, 0, 1, 1], [0, 0, 0, 0]], bool)  # right-padded, holes, all masked


def _rnn_case(kind, reset_after=False, bidirectional=False, units=2, features=2, states=True, mask=True):
    g = GATES[kind] * units
    directions = 2 if bidirectional else 1
    arrays = [r(3, 4, features)]
    for _ in range(directions):
        arrays += [r(features, g), r(units, g), r(2, g) if reset_after else r(g)]
    if states:
        arrays += [r(3, units) for _ in range(STATES[kind] * directions)]
    if mask:
        arrays.append(MASK)
    return arrays


def _rnn_build(kind, directions, states, mask, **kwargs):
    def build(x, *rest):
        rest = list(rest)
        weights = [rest[3 * d : 3 * d + 3] for d in range(directions)]
        rest = rest[3 * directions :]
        initial = rest[: STATES[kind] * directions] if states else None
        m = rest[-1] if mask else None
        backward = tuple(weights[1]) if directions == 2 else None
        return ops.rnn.recurrent(kind, x, *weights[0], initial_state=initial, mask=m, backward=backward, **kwargs)

    return build


KINDS = [("simple_rnn", False), ("lstm", False), ("gru", False), ("gru", True)]


@pytest.mark.parametrize("kind, reset_after", KINDS)
@pytest.mark.parametrize("return_sequences", [False, True])
@pytest.mark.parametrize("go_backwards", [False, True])
@pytest.mark.parametrize("masked", [False, True])
def test_recurrent(kind, reset_after, return_sequences, go_backwards, masked):
    arrays = _rnn_case(kind, reset_after, mask=masked)
    build = _rnn_build(
        kind,
        1,
        True,
        masked,
        reset_after=reset_after,
        return_sequences=return_sequences,
        go_backwards=go_backwards,
        return_state=True,
    )
    check_gradients(build, arrays)


@pytest.mark.parametrize("kind, reset_after", KINDS)
def test_recurrent_mask_options_without_states(kind, reset_after):
    arrays = _rnn_case(kind, reset_after, states=False)
    for flip, zero in ((True, False), (False, True)):
        build = _rnn_build(
            kind,
            1,
            False,
            True,
            reset_after=reset_after,
            return_sequences=True,
            flip_output=flip,
            go_backwards=flip,
            zero_output_for_mask=zero,
        )
        check_gradients(build, arrays)


@pytest.mark.parametrize("kind, reset_after", KINDS)
@pytest.mark.parametrize("merge_mode", ["concat", "sum", "mul", "ave", None])
def test_bidirectional_recurrent(kind, reset_after, merge_mode):
    arrays = _rnn_case(kind, reset_after, bidirectional=True)
    build = _rnn_build(
        kind, 2, True, True, reset_after=reset_after, return_sequences=merge_mode != "sum", merge_mode=merge_mode,
        return_state=merge_mode in ("concat", None),
    )  # fmt: skip
    check_gradients(build, arrays)


ACTIVATIONS = ["relu", "linear", "hard_sigmoid", "softsign", "softplus", "elu", "leaky_relu", "selu", "gelu"]


@pytest.mark.parametrize("kind", ["simple_rnn", "lstm", "gru"])
def test_recurrent_activations(kind):
    # Own seed and moderate values: with unbounded activations (exponential) large inputs push
    # gates to exactly 0/1 in float64, where finite differences see a flat function.
    global RNG
    RNG = np.random.default_rng(11)
    arrays = [0.5 * a for a in _rnn_case(kind, states=False, mask=False)]
    for act in ACTIVATIONS + ["exponential", lambda t: ops.tanh(t) * 2.0 + ops.square(t) * 0.1]:
        recurrent_activation = None if kind == "simple_rnn" else "sigmoid" if act == "exponential" else act
        build = _rnn_build(
            kind, 1, False, False, activation=act, recurrent_activation=recurrent_activation, return_sequences=True
        )
        check_gradients(build, arrays, rtol=1e-4)


@pytest.mark.parametrize("kind, reset_after", KINDS)
def test_recurrent_training_program_matches(kind, reset_after):
    """The training kernel keeps its tape for ``training_vjp``: same gradients as ``vjp``."""
    arrays = _rnn_case(kind, reset_after)
    inputs = [keras.Input(batch_shape=a.shape, dtype=a.dtype.name) for a in arrays]
    out = _rnn_build(kind, 1, True, True, reset_after=reset_after, return_sequences=True)(*inputs)
    model = keras.Model(inputs, ops.sum(out * r(*out.shape)))
    wrt = model.graph.inputs[:-1]
    (loss_t,), grads_t = GradientProgram(model.graph, wrt, training=True).run(arrays)
    (loss_i,), grads_i = GradientProgram(model.graph, wrt, training=False).run(arrays)
    assert loss_t == loss_i
    for a, b in zip(grads_t, grads_i):
        np.testing.assert_array_equal(a, b)


def test_recurrent_layers_weight_gradients():
    inputs = keras.Input((4, 3), dtype="float64")
    x = layers.LSTM(3, return_sequences=True, dtype="float64")(inputs)
    x = layers.Bidirectional(layers.GRU(2, return_sequences=True, dtype="float64"), dtype="float64")(x)
    x = layers.SimpleRNN(2, go_backwards=True, dtype="float64")(x)
    model = keras.Model(inputs, x)
    training_gradcheck(model, [r(2, 4, 3)], weights=model.trainable_weights)


def test_recurrent_gradients_match_torch():
    torch = pytest.importorskip("torch")
    x = r(3, 5, 2)
    units = 3
    for kind, module in (("lstm", torch.nn.LSTM), ("gru", torch.nn.GRU), ("simple_rnn", torch.nn.RNN)):
        net = module(2, units, batch_first=True).double()
        w_ih, w_hh = net.weight_ih_l0.detach().numpy(), net.weight_hh_l0.detach().numpy()
        b_ih, b_hh = net.bias_ih_l0.detach().numpy(), net.bias_hh_l0.detach().numpy()
        # torch's gate order: LSTM i, f, g, o (Keras' too); GRU r, z, n (Keras: z, r, h).
        order = {"gru": [1, 0, 2]}.get(kind, list(range(GATES[kind])))

        def keras_layout(w, order=order):
            return np.concatenate([w[k * units : (k + 1) * units] for k in order], axis=0).T

        kernel, recurrent = keras_layout(w_ih), keras_layout(w_hh)
        if kind == "gru":
            bias = np.stack([keras_layout(b_ih[:, None])[0], keras_layout(b_hh[:, None])[0]])
        else:
            bias = keras_layout((b_ih + b_hh)[:, None])[0]
        xt = torch.tensor(x, requires_grad=True)
        seq, _ = net(xt)
        projection = r(*seq.shape)
        (seq * torch.tensor(projection)).sum().backward()
        inputs = [keras.Input(batch_shape=a.shape, dtype="float64") for a in (x, kernel, recurrent, bias)]
        out = ops.rnn.recurrent(kind, *inputs, return_sequences=True, reset_after=True)
        model = keras.Model(inputs, ops.sum(out * projection))
        (loss,), grads = GradientProgram(model.graph, model.graph.inputs, training=True).run(
            [x, kernel, recurrent, bias]
        )
        np.testing.assert_allclose(loss, float((seq * torch.tensor(projection)).sum().detach()), rtol=1e-10)
        np.testing.assert_allclose(grads[0], xt.grad.numpy(), rtol=1e-9, atol=1e-12)
        np.testing.assert_allclose(grads[1], keras_layout(net.weight_ih_l0.grad.numpy()), rtol=1e-9, atol=1e-12)
        np.testing.assert_allclose(grads[2], keras_layout(net.weight_hh_l0.grad.numpy()), rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize(
    "make",
    [
        lambda: layers.LayerNormalization(axis=[1, 2], dtype="float64"),
        lambda: layers.GroupNormalization(groups=2, dtype="float64"),
        lambda: layers.UnitNormalization(axis=[1, 2], dtype="float64"),
        lambda: layers.BatchNormalization(axis=1, dtype="float64"),
    ],
)
def test_normalization_layers_weight_gradients(make):
    inputs = keras.Input((3, 4), dtype="float64")
    layer = make()
    model = keras.Model(inputs, layer(inputs))
    for w in layer.weights:
        w.assign(RNG.uniform(0.5, 1.5, w.shape))
    training_gradcheck(model, [r(2, 3, 4)], weights=layer.trainable_weights)
