"""Shared checker for the per-op tests.

``check_op(fn, arrays, reference)`` builds ``keras.Model(inputs, fn(*inputs))`` (a raw op
traced at the top level), then for each batch size checks

* the symbolic output dtype/rank/shape against the plain-NumPy ``reference`` result
  (a dim that is the same for every batch size must be known statically; one that changes
  with the batch must be ``None``),
* ``model.predict`` against the reference (same dtype and shape; ints and bools exactly),
* the ONNX export: ``assert_onnx_parity`` (checker + ORT vs the NumPy executor), then ORT
  against the reference at every batch size with exact dtypes.
"""

from __future__ import annotations

import numpy as np
import onnx as onnx_lib

import irtool as keras

from ..conftest import assert_onnx_parity, run_onnx

RNG = np.random.default_rng(0)


def rand(*shape, low=-2.0, high=2.0, dtype="float32"):
    """Uniform floats (or ints when ``dtype`` is an int type) in ``[low, high)``."""
    if np.dtype(dtype).kind in "iu":
        return RNG.integers(int(low), int(high), size=shape).astype(dtype)
    return RNG.uniform(low, high, size=shape).astype(dtype)


def assert_same(got, want, atol=1e-5, rtol=1e-5, what="result"):
    got, want = np.asarray(got), np.asarray(want)
    assert got.dtype == want.dtype, f"{what}: dtype {got.dtype} != reference {want.dtype}"
    assert got.shape == want.shape, f"{what}: shape {got.shape} != reference {want.shape}"
    if want.dtype.kind in "fc":
        np.testing.assert_allclose(got, want, atol=atol, rtol=rtol, err_msg=what)
    else:
        np.testing.assert_array_equal(got, want, err_msg=what)


def _one_batch_size(arrays) -> bool:
    return len({a.shape[0] if a.ndim else None for a in arrays}) == 1


def _as_list(x, multi):
    return list(x) if multi else [x]


def check_op(
    fn,
    arrays,
    reference,
    *,
    dynamic: bool = True,
    batch_sizes=(3, 2),
    atol: float = 1e-5,
    rtol: float = 1e-5,
    onnx: bool = True,
    opset: int | None = None,
):
    """Trace ``fn`` on ``Input``s shaped like ``arrays`` and compare with ``reference``.

    With ``dynamic`` the inputs get a ``None`` batch dim and the model runs on the first
    ``n`` rows of every array for each ``n`` in ``batch_sizes``. ``reference(*arrays)`` is
    plain NumPy (a list of arrays for multi-output ops). Returns the model.
    """
    arrays = [np.asarray(a) for a in arrays]
    if dynamic:
        inputs = [keras.Input(shape=a.shape[1:], dtype=a.dtype.name) for a in arrays]
        all_feeds = [[a[:n] for a in arrays] for n in batch_sizes]
    else:
        inputs = [keras.Input(batch_shape=a.shape, dtype=a.dtype.name) for a in arrays]
        all_feeds = [arrays]
    out = fn(*inputs)
    multi = isinstance(out, (list, tuple))
    outs = _as_list(out, multi)
    model = keras.Model(inputs, outs if multi else out)

    all_refs = []
    for feeds in all_feeds:
        refs = [np.asarray(r) for r in _as_list(reference(*feeds), multi)]
        assert len(refs) == len(outs)
        for i, (o, r) in enumerate(zip(outs, refs)):
            assert o.dtype == r.dtype.name, f"output {i}: symbolic dtype {o.dtype} != reference {r.dtype}"
            assert len(o.shape) == r.ndim, f"output {i}: symbolic shape {o.shape} != reference {r.shape}"
        if _one_batch_size(feeds):
            got = model.predict(feeds if len(feeds) > 1 else feeds[0], verbose=0)
        else:  # static inputs of different leading sizes: call the model directly
            got = model(feeds if len(feeds) > 1 else feeds[0])
        if multi and len(outs) == 1 and isinstance(got, np.ndarray):
            got = [got]  # a one-element output list comes back unwrapped, as in Keras
        for i, (g, r) in enumerate(zip(_as_list(got, multi), refs)):
            assert_same(g, r, atol, rtol, what=f"predict output {i} (batch {len(feeds[0])})")
        all_refs.append(refs)

    for i, o in enumerate(outs):
        for k, d in enumerate(o.shape):
            sizes = {refs[i].shape[k] for refs in all_refs}
            if len(sizes) == 1:
                assert d == next(iter(sizes)), f"output {i}: symbolic shape {o.shape}, reference {all_refs[0][i].shape}"
            else:
                assert d is None, f"output {i}: symbolic dim {k} of {o.shape} should be unknown (varies with batch)"

    if onnx:
        feeds = all_feeds[0]
        if _one_batch_size(feeds):
            proto = assert_onnx_parity(model, feeds if len(feeds) > 1 else feeds[0], atol=atol, rtol=rtol, opset=opset)
        else:
            proto = keras.onnx.to_onnx(model, opset=opset)
            onnx_lib.checker.check_model(proto, full_check=True)
        names = [x.name for x in proto.graph.input]
        for feeds, refs in zip(all_feeds, all_refs):
            got = run_onnx(proto, dict(zip(names, feeds)))
            for i, (g, r) in enumerate(zip(got, refs)):
                assert_same(g, r, atol, rtol, what=f"ONNX output {i} (batch {len(feeds[0])})")
    return model
