"""Dynamic batching: requests that arrive together run as one ONNX Runtime call.

A request's arrays share a leading batch dimension. The batcher queues requests; its loop takes
the oldest, adds every waiting request with the same non-batch shapes and dtypes until
``max_batch_size`` rows, waits at most ``max_queue_delay_us`` for more (0, the default, batches
only what is already waiting, as Triton does), concatenates along axis 0, runs the batch on a
free instance in a worker thread (ONNX Runtime releases the GIL, so the event loop never blocks
on inference) and hands each request exactly its rows back, in order. A request that does not
fit its batch (other shapes) simply starts the next one. The queue is bounded: a full queue is a
503, and so is a request that waits in the queue longer than ``queue_timeout_s`` (once it is
taken into a batch it runs to the end).
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
    dispatched: asyncio.Event = field(default_factory=asyncio.Event)


class Instances:
    """``run`` callables (one per model instance) shared by concurrent batches: a request or a
    batch waits for a free instance, runs it in the worker pool and gives it back."""

    def __init__(self, runs):
        runs = list(runs)
        self.count = len(runs)
        self._free: asyncio.Queue | None = None
        self._runs = runs
        self._pool = ThreadPoolExecutor(max_workers=self.count, thread_name_prefix="irtool-infer")

    async def run(self, feeds: dict) -> dict:
        if self._free is None:  # made on first use, inside the server's event loop
            self._free = asyncio.Queue()
            for run in self._runs:
                self._free.put_nowait(run)
        run = await self._free.get()
        try:
            return await asyncio.get_running_loop().run_in_executor(self._pool, run, feeds)
        finally:
            self._free.put_nowait(run)

    def close(self) -> None:
        self._pool.shutdown(wait=True)


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
        self._queue: deque[_Pending] = deque()
        self._arrived = asyncio.Event()
        self._slots = asyncio.Semaphore(instances.count)
        self._task = None

    async def submit(self, feeds: dict) -> dict:
        """The outputs for ``feeds`` (arrays with a common leading batch dim), run in a batch."""
        rows = _rows(feeds)
        if rows > self.max_batch_size:
            raise ProtocolError(
                f"the request has {rows} rows but the model's max batch size is {self.max_batch_size} "
                "(--max-batch-size)"
            )
        if len(self._queue) >= self.max_queue_size:
            raise ProtocolError(f"the model's queue is full ({self.max_queue_size} requests); retry later", 503)
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._loop())
        key = tuple((name, a.shape[1:], a.dtype.str) for name, a in sorted(feeds.items()))
        pending = _Pending(feeds, rows, key, asyncio.get_running_loop().create_future())
        self._queue.append(pending)
        self._arrived.set()
        try:  # the timeout bounds the wait in the queue; a dispatched request runs to the end
            await asyncio.wait_for(pending.dispatched.wait(), self.queue_timeout_s)
        except asyncio.TimeoutError:
            pending.future.cancel()
            raise ProtocolError(f"the request waited over {self.queue_timeout_s} s in the queue", 503) from None
        return await pending.future

    async def _loop(self) -> None:
        while True:
            while not self._queue:
                self._arrived.clear()
                await self._arrived.wait()
            await self._slots.acquire()
            batch = await self._collect()
            if batch:
                asyncio.get_running_loop().create_task(self._run(batch))
            else:
                self._slots.release()

    async def _collect(self) -> list:
        first = self._queue.popleft()
        while first.future.done() and self._queue:  # timed out while waiting
            first = self._queue.popleft()
        if first.future.done():
            return []
        first.dispatched.set()
        batch, rows = [first], first.rows
        deadline = first.enqueued + self.delay
        while rows < self.max_batch_size:
            taken = self._take(first.key, self.max_batch_size - rows)
            if taken is not None:
                taken.dispatched.set()
                batch.append(taken)
                rows += taken.rows
                continue
            remaining = deadline - time.perf_counter()
            if remaining <= 0:
                break
            self._arrived.clear()
            try:
                await asyncio.wait_for(self._arrived.wait(), remaining)
            except asyncio.TimeoutError:
                break
        return batch

    def _take(self, key, room):
        for index, pending in enumerate(self._queue):
            if pending.future.done():
                continue
            if pending.key == key and pending.rows <= room:
                del self._queue[index]
                return pending
        return None

    async def _run(self, batch) -> None:
        try:
            now = time.perf_counter()
            feeds = (
                batch[0].feeds
                if len(batch) == 1
                else {name: np.concatenate([p.feeds[name] for p in batch]) for name in batch[0].feeds}
            )
            self.observe(sum(p.rows for p in batch), [now - p.enqueued for p in batch])
            try:
                outputs = await self.instances.run(feeds)
            except Exception as error:  # noqa: BLE001 - handed to every request of the batch
                for pending in batch:
                    if not pending.future.done():
                        pending.future.set_exception(error)
                return
            start = 0
            for pending in batch:
                stop = start + pending.rows
                if not pending.future.done():
                    pending.future.set_result({name: array[start:stop] for name, array in outputs.items()})
                start = stop
        finally:
            self._slots.release()

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass


def _rows(feeds: dict) -> int:
    sizes = {a.shape[0] if a.ndim else None for a in feeds.values()}
    if len(sizes) != 1 or None in sizes:
        shapes = {name: list(a.shape) for name, a in feeds.items()}
        raise ProtocolError(f"batched inputs must share their first (batch) dimension, received shapes {shapes}")
    return sizes.pop()
