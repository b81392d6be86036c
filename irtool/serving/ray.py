"""``irtool serve`` on Ray Serve: the same KServe v2 app, in replicas across a Ray cluster.

    from ray import serve
    from irtool.serving.ray import deployment

    serve.run(deployment("mnist=out/mnist.onnx", num_replicas=2, max_batch_size=32), route_prefix="/")

Each replica runs ``create_app`` (``app.py``: every route, the protocol codec, errors, token,
access log, metrics) as Ray Serve's ASGI ingress, so there is one copy of the request handling.
What changes is only how requests are batched: a replica's ``ServedModel`` batches with Ray's
``@serve.batch`` (rows counted with ``batch_size_fn``, so ``max_batch_size`` means rows as in
``irtool serve``) instead of irtool's in-process ``Batcher``. Models are resolved and exported
to ONNX bytes on the driver, so the cluster's nodes need irtool installed but not the model
files; each replica opens its own ``Session``s from those bytes (a session is never pickled).

Every response carries an ``irtool-replica`` header: the replica's Ray actor name
(``SERVE_REPLICA::<app>#<deployment>#<id>``), so a client can see which replica answered.
``/metrics`` is per replica (the replica that answers the scrape); Ray's own metrics cover the
cluster. Needs the ``ray`` extra: ``pip install 'irtool[ray]'``.
"""

from __future__ import annotations

import asyncio
import signal
import threading
import time
from dataclasses import dataclass

import ray
from ray import serve

from irtool.runtime import Session
from irtool.serving.app import ServedModel, create_app
from irtool.serving.batching import batch_key, check_rows, split, stack
from irtool.serving.sources import onnx_sources

REPLICA_HEADER = "irtool-replica"


class RayBatcher:
    """``Batcher``'s interface over Ray Serve's ``@serve.batch``: requests of one replica that
    arrive together run as one ONNX Runtime call of up to ``max_batch_size`` rows. Requests with
    other shapes in the same Ray batch run as their own stacked group; a failing group answers
    its own requests with the error, the others get their rows."""

    def __init__(self, instances, max_batch_size: int, batch_wait_timeout_s: float, observe):
        self.instances = instances
        self.max_batch_size = max_batch_size
        self.observe = observe
        self._submit = serve.batch(
            max_batch_size=max_batch_size,
            batch_wait_timeout_s=batch_wait_timeout_s,
            max_concurrent_batches=instances.count,
            batch_size_fn=lambda items: sum(rows for _, rows, _ in items),
        )(self._run_batch)

    async def submit(self, feeds: dict) -> dict:
        rows = check_rows(feeds, self.max_batch_size)
        result = await self._submit((feeds, rows, time.perf_counter()))
        if isinstance(result, Exception):
            raise result
        return result

    async def _run_batch(self, items: list) -> list:
        """``(feeds, rows, enqueued)`` items -> each one's outputs, or its group's error."""
        now = time.perf_counter()
        groups: dict = {}
        for index, (feeds, _, _) in enumerate(items):
            groups.setdefault(batch_key(feeds), []).append(index)
        results: list = [None] * len(items)

        async def run_group(indices):
            rows = [items[i][1] for i in indices]
            self.observe(sum(rows), [now - items[i][2] for i in indices])
            try:
                outputs = await self.instances.run(stack([items[i][0] for i in indices]))
            except Exception as error:  # noqa: BLE001 - answered to this group's requests only
                for i in indices:
                    results[i] = error
                return
            for i, part in zip(indices, split(outputs, rows)):
                results[i] = part

        await asyncio.gather(*(run_group(indices) for indices in groups.values()))
        return results

    async def close(self) -> None:
        """Nothing to stop: Ray's batch queue ends with the replica."""


@dataclass
class RayServedModel(ServedModel):
    """A ``ServedModel`` whose requests are batched by ``RayBatcher`` instead of ``Batcher``."""

    batch_wait_timeout_s: float = 0.0

    def make_batcher(self, observe) -> RayBatcher:
        return RayBatcher(self.instances, self.max_batch_size, self.batch_wait_timeout_s, observe)


class _ReplicaHeader:
    """Adds the answering replica's name to every HTTP response."""

    def __init__(self, app, replica: str):
        self.app = app
        self.header = (REPLICA_HEADER.encode(), replica.encode())

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def with_header(message):
            if message["type"] == "http.response.start":
                message = {**message, "headers": [*message.get("headers", []), self.header]}
            await send(message)

        await self.app(scope, receive, with_header)


@serve.ingress()
class KServeV2:
    """One replica: opens its sessions from ONNX bytes, then serves ``create_app`` over them."""

    def __init__(self, specs, max_batch_size, batch_wait_timeout_s, instances, providers, threads, app_options):
        warmup = (1, max_batch_size) if max_batch_size > 1 else True
        self.models = [
            RayServedModel(
                name,
                [Session(data, providers, threads=threads, warmup=warmup) for _ in range(instances)],
                version,
                max_batch_size,
                batch_wait_timeout_s=batch_wait_timeout_s,
            )
            for name, version, data in specs
        ]
        self.app_options = app_options

    def __serve_build_asgi_app__(self):
        replica = serve.get_replica_context().replica_id.to_full_id_str()
        return _ReplicaHeader(create_app(self.models, **self.app_options), replica)


def model_specs(models, weights=None, object_name=None, on_load=None) -> list[tuple[str, str, bytes]]:
    """``(name, version, ONNX bytes)`` for each model version: MODEL arguments as ``irtool serve``
    takes them (``name=PATH``, a file, a repository folder) or objects with ``to_onnx()``;
    ``on_load`` as for ``sources.onnx_sources``."""
    if isinstance(models, (str, bytes)) or hasattr(models, "to_onnx") or not hasattr(models, "__iter__"):
        models = [models]
    specs, seen = [], set()
    for model in models:
        if hasattr(model, "to_onnx"):
            found = [(model.name, "1", model.to_onnx().SerializeToString())]
        else:
            # A repository's config.pbtxt options are not used here: the deployment's own
            # arguments (num_replicas, max_batch_size, ...) say how Ray serves every model.
            found = [
                (name, version, source if isinstance(source, bytes) else _read(source))
                for name, version, source, _options in onnx_sources(str(model), weights, object_name, on_load)
            ]
        for name, version, data in found:
            if (name, version) in seen:
                raise ValueError(f"model '{name}' version {version} is given twice; name one of them with name=PATH")
            seen.add((name, version))
            specs.append((name, version, data))
    return specs


def _read(path: str) -> bytes:
    with open(path, "rb") as file:
        return file.read()


def deployment(
    models,
    *,
    num_replicas: int = 1,
    max_batch_size: int = 0,
    batch_wait_timeout_s: float = 0.0,
    instances: int = 1,
    providers=("cpu",),
    threads: int | None = 1,
    max_ongoing_requests: int = 256,
    ray_actor_options: dict | None = None,
    weights=None,
    object_name=None,
    name: str = "irtool",
    on_load=None,
    **app_options,
):
    """A Ray Serve application serving ``models`` over the KServe v2 routes of ``irtool serve``.

    ``models``: one MODEL or a list (``"name=path"``, a path, a model repository folder, or an
    irtool model). ``max_batch_size`` > 1 batches concurrent requests of a replica up to that
    many rows with ``@serve.batch``, waiting at most ``batch_wait_timeout_s`` for a batch to fill.
    Each replica holds ``instances`` sessions of each model with ``threads`` ONNX Runtime threads
    (default 1, matching Ray's default of one CPU per replica) and takes up to
    ``max_ongoing_requests`` requests at a time (Ray's default, 5, would starve the batcher).
    ``app_options`` go to ``create_app`` (``max_request_bytes``, ``auth_token``, ``access_log``);
    ``on_load(loaded)`` is told each model.py or .keras loaded on the driver.
    Run it with ``serve.run(app, route_prefix="/")``.
    """
    if num_replicas < 1:
        raise ValueError(f"num_replicas: expected a positive count, received {num_replicas}")
    specs = model_specs(models, weights, object_name, on_load)
    options = {"name": name, "num_replicas": num_replicas, "max_ongoing_requests": max_ongoing_requests}
    if ray_actor_options is not None:
        options["ray_actor_options"] = ray_actor_options
    replica = serve.deployment(KServeV2).options(**options)
    return replica.bind(specs, max_batch_size, batch_wait_timeout_s, instances, tuple(providers), threads, app_options)


def run(
    app, *, address: str | None = None, host: str = "127.0.0.1", port: int = 8000, name: str = "irtool", on_start=None
):
    """Run ``app`` (from ``deployment``) on a Ray cluster until SIGINT/SIGTERM: a new local one,
    or the one at ``address`` (``auto``, ``host:port`` or ``ray://...``), with Ray Serve's HTTP
    proxy on ``host:port``. ``on_start(url)`` runs once every replica is ready. On the way out the
    application is deleted (and Serve shut down on a cluster this call started)."""
    ray.init(address=address, include_dashboard=False, log_to_driver=address is None)
    stop = threading.Event()
    previous = {sig: signal.signal(sig, lambda *_: stop.set()) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        serve.start(http_options={"host": host, "port": port})
        serve.run(app, name=name, route_prefix="/")
        if on_start is not None:
            on_start(f"http://{host if ':' not in host else f'[{host}]'}:{port}")
        while not stop.wait(0.5):  # a timed wait, so the signal handler always gets to run
            pass
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        try:
            serve.delete(name)
            if address is None:
                serve.shutdown()
        finally:
            ray.shutdown()
