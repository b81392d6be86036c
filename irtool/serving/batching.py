"""Dynamic batching: requests that arrive together run as one ONNX Runtime call.

A request's arrays share a leading batch dimension. The batcher queues requests; its loop takes
the oldest, adds every waiting request with the same non-batch shapes and dtypes until
``max_batch_size`` rows, waits at most ``max_queue_delay_us`` for more (0, the default, batches
only what is already waiting, as Triton does), concatenates along axis 0, runs the batch on a
free instance in a worker thread (ONNX Runtime releases the GIL, so the event loop never waits
for inference; only batches cheaper than that hand-off run on the loop, see ``Instances``) and
hands each request exactly its rows back, in order. A request that does not fit its batch (other
shapes) simply starts the next one. The queue is bounded: a full queue is a 503, and so is a
request that waits in the queue longer than ``queue_timeout_s`` (once it is taken into a batch it
runs to the end; one sweeper task enforces the timeout, not a timer per request).
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np

from irtool.serving.protocol import ProtocolError


@dataclass
class _Pending:
    feeds: dict
    rows: int
    key: tuple
    future: asyncio.Future
    enqueued: float = field(default_factory=time.perf_counter)


@dataclass(frozen=True)
class RunCost:
    """A run's estimated seconds: ``fixed_s + per_element_s * (input elements)``, fitted to runs
    timed at two batch sizes (``ServedModel.measure_cost``)."""

    fixed_s: float
    per_element_s: float

    def __call__(self, feeds: dict) -> float:
        return self.fixed_s + self.per_element_s * sum(a.size for a in feeds.values())


class Instances:
    """``run`` callables (one per model instance) shared by concurrent batches: a request or a
    batch waits for a free instance, runs it in the worker pool and gives it back.

    Handing a call to a worker thread and back costs ~100-200 us (two thread wake-ups and the
    GIL); a small model runs in less. With a ``cost`` estimate (``RunCost``) and
    ``inline_max_s``, a call estimated to take no longer than ``inline_max_s`` runs on the event
    loop instead, where it holds the loop for less time than the hand-off would, as parsing a
    request body does. Anything larger goes to the pool, so the loop never waits on it."""

    def __init__(self, runs, *, cost: RunCost | None = None, inline_max_s: float = 0.0):
        runs = list(runs)
        self.count = len(runs)
        # The free runs, an asyncio.Queue of the loop that made it (see ``_LoopState``), and the
        # worker pool: both made on first use, again after a new loop or ``close`` (a restarted app).
        self._free: tuple[asyncio.AbstractEventLoop, asyncio.Queue] | None = None
        self._runs = runs
        self._pool: ThreadPoolExecutor | None = None
        self.cost = cost
        self.inline_max_s = inline_max_s if cost is not None else 0.0

    def inline(self, feeds: dict) -> bool:
        """Whether ``feeds`` are estimated to run faster than a hand-off to a worker thread."""
        return bool(self.inline_max_s) and self.cost(feeds) <= self.inline_max_s

    async def run(self, feeds: dict) -> dict:
        if self.inline(feeds):
            return self._runs[0](feeds)
        loop = asyncio.get_running_loop()
        if self._free is None or self._free[0] is not loop:
            self._free = (loop, asyncio.Queue())
            for run in self._runs:
                self._free[1].put_nowait(run)
        if self._pool is None:
            self._pool = ThreadPoolExecutor(max_workers=self.count, thread_name_prefix="irtool-infer")
        free = self._free[1]
        run = await free.get()
        try:
            return await loop.run_in_executor(self._pool, run, feeds)
        finally:
            free.put_nowait(run)

    def close(self) -> None:
        """Stop the worker threads once their calls are done (a later call starts new ones)."""
        pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=True)


class _LoopState:
    """A ``Batcher``'s queue and tasks on one event loop. asyncio's events, semaphores, futures
    and tasks belong to the loop that made them, and one app may be served by one loop after
    another (a restarted server; a test client that runs each request in a loop of its own): each
    loop gets its own state, and a loop's tasks only ever touch theirs."""

    def __init__(self, loop: asyncio.AbstractEventLoop, slots: int):
        self.loop = loop
        self.queue: deque[_Pending] = deque()
        self.arrived = asyncio.Event()
        self.slots = asyncio.Semaphore(slots)
        self.task: asyncio.Task | None = None
        self.sweeper: asyncio.Task | None = None


class Batcher:
    """Queues requests of one model and runs them in batches on ``instances``; ``observe(rows,
    queue_seconds)`` is told each batch's size and each request's time in the queue."""

    def __init__(
        self,
        instances: Instances,
        max_batch_size: int,
        max_queue_delay_us: int = 0,
        max_queue_size: int = 1024,
        queue_timeout_s: float = 30.0,
        observe=None,
    ):
        self.instances = instances
        self.max_batch_size = max_batch_size
        self.delay = max_queue_delay_us / 1e6
        self.max_queue_size = max_queue_size
        self.queue_timeout_s = queue_timeout_s
        self.observe = observe or (lambda rows, waits: None)
        self._state: _LoopState | None = None  # the running loop's (see ``_LoopState``)
        self._sweep_period = min(1.0, queue_timeout_s / 4)

    async def submit(self, feeds: dict) -> dict:
        """The outputs for ``feeds`` (arrays with a common leading batch dim), run in a batch."""
        rows = check_rows(feeds, self.max_batch_size)
        loop = asyncio.get_running_loop()
        state = self._state
        if state is None or state.loop is not loop:
            state = self._state = _LoopState(loop, self.instances.count)
            state.task = loop.create_task(self._loop(state))
        if len(state.queue) >= self.max_queue_size:
            raise ProtocolError(f"the model's queue is full ({self.max_queue_size} requests); retry later", 503)
        pending = _Pending(feeds, rows, batch_key(feeds), loop.create_future())
        state.queue.append(pending)
        state.arrived.set()
        if state.sweeper is None:
            state.sweeper = loop.create_task(self._expire(state))
        return await pending.future

    async def _expire(self, state: _LoopState) -> None:
        """Fail the requests that waited in the queue over ``queue_timeout_s`` (503): one task that
        wakes a few times per timeout while requests wait, not a timer per request. A request
        taken into a batch has left the queue and runs to the end."""
        queue = state.queue
        try:
            while True:  # a period at least: a sweeper per request would cost what it saves
                await asyncio.sleep(self._sweep_period)
                too_old = time.perf_counter() - self.queue_timeout_s
                while queue and queue[0].enqueued <= too_old:  # oldest first
                    pending = queue.popleft()
                    if not pending.future.done():
                        pending.future.set_exception(
                            ProtocolError(f"the request waited over {self.queue_timeout_s} s in the queue", 503)
                        )
                if not queue:
                    return
        finally:
            state.sweeper = None

    async def _loop(self, state: _LoopState) -> None:
        while True:
            while not state.queue:
                state.arrived.clear()
                await state.arrived.wait()
            await state.slots.acquire()
            batch = await self._collect(state)
            if not batch:
                state.slots.release()
                continue
            feeds = stack([p.feeds for p in batch])
            if self.instances.inline(feeds):  # it runs on this loop anyway: no task to schedule
                await self._run(state, batch, feeds)
            else:
                state.loop.create_task(self._run(state, batch, feeds))

    async def _collect(self, state: _LoopState) -> list:
        queue, first = state.queue, None
        while queue and (first is None or first.future.done()):  # skip the expired and cancelled
            first = queue.popleft()
        if first is None or first.future.done():  # the queue expired while waiting for an instance
            return []
        batch, rows = [first], first.rows
        deadline = first.enqueued + self.delay
        while rows < self.max_batch_size:
            taken = _take(queue, first.key, self.max_batch_size - rows)
            if taken is not None:
                batch.append(taken)
                rows += taken.rows
                continue
            remaining = deadline - time.perf_counter()
            if remaining <= 0:
                break
            state.arrived.clear()
            try:
                await asyncio.wait_for(state.arrived.wait(), remaining)
            except asyncio.TimeoutError:
                break
        return batch

    async def _run(self, state: _LoopState, batch, feeds: dict) -> None:
        try:
            now = time.perf_counter()
            self.observe(sum(p.rows for p in batch), [now - p.enqueued for p in batch])
            try:
                outputs = await self.instances.run(feeds)
            except Exception as error:  # noqa: BLE001 - handed to every request of the batch
                for pending in batch:
                    if not pending.future.done():
                        pending.future.set_exception(error)
                return
            for pending, rows in zip(batch, split(outputs, [p.rows for p in batch])):
                if not pending.future.done():
                    pending.future.set_result(rows)
        finally:
            state.slots.release()

    async def close(self) -> None:
        """Stop the running loop's tasks (a later request, on this loop or another, starts them again)."""
        state, self._state = self._state, None
        if state is None:
            return
        for task in (state.task, state.sweeper):
            if task is not None and task.get_loop() is asyncio.get_running_loop():
                task.cancel()
                try:
                    await task
                except asyncio.CancelledError:
                    pass


def _take(queue: deque, key, room):
    """The first live request in ``queue`` that can join a batch of ``key`` with ``room`` rows left, removed."""
    for index, pending in enumerate(queue):
        if pending.future.done():
            continue
        if pending.key == key and pending.rows <= room:
            del queue[index]
            return pending
    return None


def rows_of(feeds: dict) -> int:
    """The common first (batch) dimension of a request's arrays; a ``ProtocolError`` if they differ."""
    sizes = {a.shape[0] if a.ndim else None for a in feeds.values()}
    if len(sizes) != 1 or None in sizes:
        shapes = {name: list(a.shape) for name, a in feeds.items()}
        raise ProtocolError(f"batched inputs must share their first (batch) dimension, received shapes {shapes}")
    return sizes.pop()


def check_rows(feeds: dict, max_batch_size: int) -> int:
    """``rows_of(feeds)``, refused (400) when over ``max_batch_size``."""
    rows = rows_of(feeds)
    if rows > max_batch_size:
        raise ProtocolError(
            f"the request has {rows} rows but the model's max batch size is {max_batch_size} (--max-batch-size)"
        )
    return rows


def batch_key(feeds: dict) -> tuple:
    """Requests with equal keys (names, non-batch shapes, dtypes) can be stacked into one batch."""
    return tuple((name, a.shape[1:], a.dtype.str) for name, a in sorted(feeds.items()))


def stack(requests: list) -> dict:
    """One feed dict from requests of equal ``batch_key``, concatenated along axis 0 in order."""
    if len(requests) == 1:
        return requests[0]
    return {name: np.concatenate([feeds[name] for feeds in requests]) for name in requests[0]}


def split(outputs: dict, rows: list) -> list:
    """The inverse of ``stack``: each request's rows of ``outputs``, in order."""
    parts, start = [], 0
    for count in rows:
        parts.append({name: array[start : start + count] for name, array in outputs.items()})
        start += count
    return parts
