"""The batcher on its own: rows in, exactly the same rows out, a bounded queue, bounded waits."""

from __future__ import annotations

import asyncio
import statistics
import threading
import time

import numpy as np
import pytest

from irtool.serving.batching import Batcher, Instances, RunCost
from irtool.serving.protocol import ProtocolError


def doubling(calls):
    def run(feeds):
        calls.append(feeds["x"].shape[0])
        return {"y": feeds["x"] * 2, "n": feeds["x"].sum(axis=1, keepdims=True)}

    return run


def test_waiting_requests_form_one_batch_and_get_their_own_rows():
    calls = []

    async def main():
        batcher = Batcher(Instances([doubling(calls)]), max_batch_size=8, max_queue_delay_us=50_000)
        inputs = [np.full((1 + i % 2, 3), i, np.float32) for i in range(6)]
        results = await asyncio.gather(*(batcher.submit({"x": x}) for x in inputs))
        await batcher.close()
        return inputs, results

    inputs, results = asyncio.run(main())
    for x, out in zip(inputs, results):
        np.testing.assert_array_equal(out["y"], x * 2)
        np.testing.assert_array_equal(out["n"], x.sum(axis=1, keepdims=True))
    assert sum(calls) == 9 and max(calls) > 1


def test_different_shapes_never_share_a_batch():
    calls = []

    async def main():
        batcher = Batcher(Instances([doubling(calls)]), max_batch_size=8, max_queue_delay_us=20_000)
        a, b = np.ones((1, 3), np.float32), np.ones((1, 4), np.float32)
        out = await asyncio.gather(batcher.submit({"x": a}), batcher.submit({"x": b}), batcher.submit({"x": a}))
        await batcher.close()
        return out

    out = asyncio.run(main())
    assert [o["y"].shape for o in out] == [(1, 3), (1, 4), (1, 3)]
    assert sorted(calls) == [1, 2]


def test_a_full_queue_and_a_long_wait_are_503():
    release = threading.Event()

    def blocked(feeds):
        release.wait(10)
        return {"y": feeds["x"]}

    async def main():
        batcher = Batcher(Instances([blocked]), max_batch_size=1, max_queue_size=2, queue_timeout_s=0.3)
        x = {"x": np.ones((1, 2), np.float32)}
        running = asyncio.ensure_future(batcher.submit(x))  # taken by the only instance
        await asyncio.sleep(0.05)
        queued = [asyncio.ensure_future(batcher.submit(x)) for _ in range(2)]
        await asyncio.sleep(0.01)
        with pytest.raises(ProtocolError, match="queue is full") as full:
            await batcher.submit(x)
        assert full.value.status == 503
        outcomes = await asyncio.gather(*queued, return_exceptions=True)
        assert all(
            isinstance(o, ProtocolError) and o.status == 503 and "waited over 0.3 s in the queue" in str(o)
            for o in outcomes
        )
        release.set()
        assert (await running)["y"].shape == (1, 2)
        started = time.perf_counter()
        assert (await batcher.submit(x))["y"].shape == (1, 2)  # still serving
        assert time.perf_counter() - started < 5
        await batcher.close()

    asyncio.run(main())


def test_a_failing_run_fails_its_requests_only():
    def fails_on_negative(feeds):
        if (feeds["x"] < 0).any():
            raise RuntimeError("negative input")
        return {"y": feeds["x"]}

    async def main():
        batcher = Batcher(Instances([fails_on_negative]), max_batch_size=4)
        with pytest.raises(RuntimeError, match="negative"):
            await batcher.submit({"x": -np.ones((1, 2), np.float32)})
        out = await batcher.submit({"x": np.ones((2, 2), np.float32)})
        await batcher.close()
        return out

    assert asyncio.run(main())["y"].shape == (2, 2)


def test_rows_over_the_limit_and_mismatched_batch_dims_are_400():
    async def main():
        batcher = Batcher(Instances([lambda feeds: feeds]), max_batch_size=2)
        with pytest.raises(ProtocolError, match="3 rows but the model's max batch size is 2"):
            await batcher.submit({"x": np.ones((3, 1))})
        with pytest.raises(ProtocolError, match="share their first"):
            await batcher.submit({"x": np.ones((2, 1)), "z": np.ones((1, 1))})
        await batcher.close()

    asyncio.run(main())


def test_instances_under_contention_never_lose_a_request():
    """Many requests racing for one instance: each waits its turn (a woken waiter once lost the
    instance to a newcomer and failed)."""

    def slow_double(feeds):
        time.sleep(0.001)
        return {"y": feeds["x"] * 2}

    async def main():
        instances = Instances([slow_double])

        async def one(i):
            await asyncio.sleep((i % 7) * 0.0005)
            return (await instances.run({"x": np.full((1,), i)}))["y"][0]

        results = await asyncio.gather(*(one(i) for i in range(300)))
        instances.close()
        return results

    assert asyncio.run(main()) == [2 * i for i in range(300)]


def test_calls_cheaper_than_a_thread_hand_off_run_on_the_event_loop_and_others_in_the_pool():
    """With a cost estimate, calls under the inline budget run on the loop's own thread (a
    hand-off costs more than they do); larger ones go to a worker thread."""
    where = []

    def record(feeds):
        where.append(threading.get_ident())
        return {"y": feeds["x"]}

    async def main():
        # 10 us fixed + 1 us per element, inline up to 50 us: 8 elements inline, 64 not
        instances = Instances([record], cost=RunCost(10e-6, 1e-6), inline_max_s=50e-6)
        await instances.run({"x": np.zeros((1, 8))})
        await instances.run({"x": np.zeros((8, 8))})
        never = Instances([record], cost=RunCost(10e-6, 1e-6), inline_max_s=0.0)
        await never.run({"x": np.zeros((1, 8))})
        no_estimate = Instances([record], inline_max_s=1.0)
        await no_estimate.run({"x": np.zeros((1, 8))})
        for pool in (instances, never, no_estimate):
            pool.close()
        return threading.get_ident()

    loop_thread = asyncio.run(main())
    assert where[0] == loop_thread
    assert where[1] != loop_thread and where[2] != loop_thread and where[3] != loop_thread


def test_run_cost_is_fitted_to_two_measured_batch_sizes(mlp_session):
    """``ServedModel.measure_cost`` times real ONNX Runtime runs: the estimate grows with the input
    and a batch's estimate is within a factor of a few of its measured time."""
    from irtool.serving.app import ServedModel

    session = mlp_session
    model = ServedModel("mlp", [session], max_batch_size=32, inline_max_us=10**6)
    cost = model.measure_cost()
    # Both terms are fitted to timings: on a noisy host the batch of 32 may time no slower than the
    # batch of 1 (CI saw it), and the fit then clamps the per-element term to 0, never below.
    assert cost.fixed_s >= 0 and cost.per_element_s >= 0
    x = np.random.default_rng(0).random((32, *session.inputs[0].shape[1:]), dtype=np.float32)
    times = []
    for _ in range(21):  # a median, as the fit takes: one stall of the host must not decide (a mean did, in CI)
        started = time.perf_counter()
        session.run(x)
        times.append(time.perf_counter() - started)
    measured = statistics.median(times)
    assert measured / 5 < cost({"pixels": x}) < measured * 5
    # with no inline budget nothing is measured: every call goes to a worker thread
    assert ServedModel("mlp", [session], inline_max_us=0).cost is None


def test_a_model_that_fails_on_random_inputs_is_not_measured_and_runs_in_threads():
    """Random data can break a graph (a Reshape to a size it cannot take): the cost stays unknown,
    so nothing runs inline, and the server still starts."""
    from onnx import TensorProto, helper

    from irtool.runtime import Session
    from irtool.serving.app import ServedModel

    graph = helper.make_graph(
        [helper.make_node("Reshape", ["x", "shape"], ["y"])],
        "picky",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n"])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
        [helper.make_tensor("shape", TensorProto.INT64, [2], [2, 2])],
    )
    session = Session(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), warmup=False)
    model = ServedModel("picky", [session])
    assert model.cost is None
    model.start(lambda rows, waits: None)
    assert not model.instances.inline({"x": np.zeros(4, np.float32)})
    model.instances.close()


def test_a_batcher_serves_one_event_loop_after_another():
    """asyncio's queues, events and tasks belong to the loop that made them: each loop gets the
    batcher's own, so a request on a second loop (a restarted app; a test client's loop per
    request) is answered, with the instances' pool closed in between or not."""
    calls = []
    instances = Instances([doubling(calls)])
    batcher = Batcher(instances, max_batch_size=8, max_queue_delay_us=5_000)

    async def main(rows):
        out = await asyncio.wait_for(
            asyncio.gather(*(batcher.submit({"x": np.full((1, 3), i, np.float32)}) for i in range(rows))), 10
        )
        return [o["y"][0, 0] for o in out]

    assert asyncio.run(main(3)) == [0, 2, 4]
    assert asyncio.run(main(2)) == [0, 2]  # the first loop is closed; its batching task is gone
    asyncio.run(batcher.close())
    instances.close()
    assert asyncio.run(main(4)) == [0, 2, 4, 6]
    instances.close()
    assert sum(calls) == 9
