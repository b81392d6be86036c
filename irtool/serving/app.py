"""The ASGI app of ``irtool serve``: the KServe v2 / Open Inference Protocol REST API over
``irtool.runtime.Session``s.

Routes (all answers JSON; errors ``{"error": "..."}`` with a 4xx/5xx status, the app keeps serving):

- ``GET /v2/health/live``, ``GET /v2/health/ready``: 200 while the server lives / has its models;
- ``GET /v2``: server metadata, the extensions listed;
- ``GET /v2/models/{name}[/versions/{v}]``: inputs and outputs with -1 for dynamic dims;
- ``GET /v2/models/{name}[/versions/{v}]/ready``;
- ``POST /v2/models/{name}[/versions/{v}]/infer``: JSON or binary tensors (``protocol.py``);
- ``GET /metrics``: Prometheus text (requests by model and outcome, latency, queue time,
  batch sizes, requests in flight).

A model is served by ``ServedModel``: K instances (sessions), and a ``Batcher`` when its inputs
and outputs all have a dynamic first dim and ``max_batch_size`` > 1; otherwise each request runs
on a free instance in a worker thread (or on the event loop when it takes less than
``inline_max_us``, less than the hand-off to a thread would: ``Instances``). A request body must
arrive within ``read_timeout_s`` (``_BodyDeadlines``: one sweeper task, no timer per request).
With ``auth_token`` set, every route but the health checks (what load balancers probe) needs
``Authorization: Bearer <token>``.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import functools
import hmac
import statistics
import time
from dataclasses import dataclass, field

import orjson
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.routing import Route

from irtool.runtime import random_inputs
from irtool.serving.batching import Batcher, Instances, RunCost
from irtool.serving.protocol import (
    HEADER_LENGTH,
    ProtocolError,
    check_inputs,
    datatype_of,
    encode_infer_response,
    parse_infer_request,
    v2_dims,
)
from irtool.version import __version__

EXTENSIONS = ["binary_tensor_data"]
HEADER_LENGTH_KEY = HEADER_LENGTH.lower().encode()
DEFAULT_MAX_REQUEST_BYTES = 64 * 2**20
#: Seconds a request's body may take to arrive (64 MiB at ~1 MB/s): a client that stops sending
#: mid-body gets 408 instead of holding its connection and the request's buffers forever.
DEFAULT_READ_TIMEOUT_S = 60.0
#: Runs estimated to take less than this run on the event loop: a hand-off to a worker thread and
#: back costs 100-200 us on a 2-core machine, more than a small model's whole run.
DEFAULT_INLINE_MAX_US = 100
_LATENCY_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5)


@dataclass
class ServedModel:
    """One version of one model: its sessions (instances) and how requests reach them."""

    name: str
    sessions: list
    version: str = "1"
    max_batch_size: int = 0
    max_queue_delay_us: int = 0
    max_queue_size: int = 1024
    inline_max_us: int = DEFAULT_INLINE_MAX_US
    batcher: Batcher | None = field(default=None, init=False)  # or make_batcher's object
    instances: Instances | None = field(default=None, init=False)

    @property
    def session(self):
        return self.sessions[0]

    @property
    def batchable(self) -> bool:
        """Every input and output has a dynamic first dim, so requests can be stacked on it."""
        infos = [*self.session.inputs, *self.session.outputs]
        return all(i.shape and not isinstance(i.shape[0], int) for i in infos)

    @property
    def batching(self) -> bool:
        return self.max_batch_size > 1 and self.batchable

    def start(self, observe) -> None:
        """Called once by ``create_app``; ``observe(rows, queue_seconds)`` records each batch.
        A subclass may batch another way (``make_batcher``: ``irtool.serving.ray`` uses Ray's ``@serve.batch``)."""
        outputs = self.session.output_names
        self.instances = Instances(
            [lambda feeds, s=s: dict(zip(outputs, s.run_list(feeds))) for s in self.sessions],
            cost=self.cost,
            inline_max_s=self.inline_max_us / 1e6,
        )
        if self.batching:
            self.batcher = self.make_batcher(observe)

    @functools.cached_property
    def cost(self) -> RunCost | None:
        """The measured cost of a run (``measure_cost``), when runs may go inline (``inline_max_us`` > 0)."""
        return self.measure_cost() if self.inline_max_us > 0 else None

    def measure_cost(self, runs: int = 7) -> RunCost | None:
        """How long a run takes, as a ``RunCost`` fitted to the median of ``runs`` runs on random
        inputs at batch 1 and, for a batchable model, at a larger batch (``None`` when inputs
        cannot be made up (no declared shape, strings) or the model fails on random ones)."""

        def timed(batch: int) -> tuple[int, float]:
            arrays = random_inputs(self.session.inputs, batch)
            feeds = dict(zip(self.session.input_names, arrays))
            times = []
            for _ in range(runs):
                started = time.perf_counter()
                self.session.run_list(feeds)
                times.append(time.perf_counter() - started)
                if times[-1] > 0.01:  # far beyond any inline budget: one run says enough
                    break
            return sum(a.size for a in arrays), statistics.median(times)

        try:
            elements, seconds = timed(1)
            if seconds > self.inline_max_us / 1e6:  # no call of this model runs inline
                return RunCost(seconds, 0.0)
            if not self.batchable:  # a fixed input size, or one that grows along other axes
                return RunCost(0.0, seconds / max(1, elements))
            more_elements, more_seconds = timed(max(self.max_batch_size, 16))
        except Exception:  # noqa: BLE001 - inputs it cannot make up, or a graph random data fails in
            return None  # unmeasured: every call goes to a worker thread
        per_element = max(0.0, (more_seconds - seconds) / max(1, more_elements - elements))
        return RunCost(max(0.0, seconds - per_element * elements), per_element)

    def make_batcher(self, observe):
        """What batches this model's requests: an object with ``async submit(feeds)`` and ``async close()``."""
        return Batcher(
            self.instances, self.max_batch_size, self.max_queue_delay_us, self.max_queue_size, observe=observe
        )

    async def infer(self, feeds: dict) -> dict:
        if self.batcher is not None:
            return await self.batcher.submit(feeds)
        return await self.instances.run(feeds)

    def metadata(self) -> dict:
        def tensor(info):
            return {
                "name": info.name,
                "datatype": datatype_of(info.dtype) if info.dtype is not None else "BYTES",
                "shape": v2_dims(info.shape) if info.shape is not None else [-1],
            }

        return {
            "name": self.name,
            "versions": [self.version],
            "platform": "onnxruntime_onnx",
            "inputs": [tensor(i) for i in self.session.inputs],
            "outputs": [tensor(o) for o in self.session.outputs],
        }


class _Metrics:
    def __init__(self):
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "irtool_requests", "Inference requests by model and outcome", ["model", "outcome"], registry=self.registry
        )
        self.latency = Histogram(
            "irtool_request_duration_seconds",
            "Time from a request's arrival to its answer",
            ["model"],
            buckets=_LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.queue = Histogram(
            "irtool_queue_duration_seconds",
            "Time a request waited for its batch",
            ["model"],
            buckets=_LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.batch = Histogram(
            "irtool_batch_size",
            "Rows per ONNX Runtime call of a batching model",
            ["model"],
            buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256, 512),
            registry=self.registry,
        )
        self.in_flight = Gauge("irtool_requests_in_flight", "Requests being answered", registry=self.registry)

    def for_model(self, model: str):
        """The request counters (success, error) and latency histogram of ``model``, looked up once:
        ``labels()`` takes a lock and a dict lookup on every call."""
        return self.requests.labels(model, "success"), self.requests.labels(model, "error"), self.latency.labels(model)

    def observer(self, model: str):
        batch, queue = self.batch.labels(model), self.queue.labels(model)

        def observe(rows, waits):
            batch.observe(rows)
            for wait in waits:
                queue.observe(wait)

        return observe


def _error(message: str, status: int) -> Response:
    return Response(orjson.dumps({"error": message}), status_code=status, media_type="application/json")


def _json(payload) -> Response:
    return Response(orjson.dumps(payload), media_type="application/json")


def create_app(
    models,
    *,
    max_request_bytes: int = DEFAULT_MAX_REQUEST_BYTES,
    read_timeout_s: float = DEFAULT_READ_TIMEOUT_S,
    auth_token: str | None = None,
    access_log=None,
) -> Starlette:
    """The ASGI app serving ``models`` (``ServedModel``s; several versions of a name allowed).

    ``access_log``: a text stream that gets one JSON line per request (time, client, method,
    path, status, milliseconds). A body that takes longer than ``read_timeout_s`` to arrive is
    answered 408. Run the app with any ASGI server (``uvicorn.run(app)``);
    ``irtool serve`` does that for you.
    """
    by_name: dict[str, dict[str, ServedModel]] = {}
    for model in models:
        by_name.setdefault(model.name, {})[str(model.version)] = model
    metrics = _Metrics()
    deadlines = _BodyDeadlines(read_timeout_s)
    per_model = {}
    for versions in by_name.values():
        for model in versions.values():
            model.start(metrics.observer(model.name))
            per_model[model.name] = metrics.for_model(model.name)

    def find(request: Request) -> ServedModel:
        name = request.path_params["name"]
        versions = by_name.get(name)
        if versions is None:
            raise ProtocolError(f"unknown model '{name}'; this server has {sorted(by_name)}", 404)
        version = request.path_params.get("version")
        if version is None:
            return versions[max(versions, key=lambda v: (len(v), v))]
        if version not in versions:
            raise ProtocolError(f"model '{name}' has no version '{version}'; it has {sorted(versions)}", 404)
        return versions[version]

    async def live(request):
        return _json({"live": True})

    async def ready(request):
        return _json({"ready": True})

    async def server_metadata(request):
        return _json({"name": "irtool", "version": __version__, "extensions": EXTENSIONS})

    async def model_metadata(request):
        return _json(find(request).metadata())

    async def model_ready(request):
        find(request)
        return _json({"ready": True})

    async def infer(request: Request):
        model = find(request)
        started = time.perf_counter()
        succeeded, failed, latency = per_model[model.name]
        outcome = failed
        metrics.in_flight.inc()
        try:
            body = await deadlines.read(request, max_request_bytes)
            parsed = parse_infer_request(body, _header(request, HEADER_LENGTH_KEY))
            check_inputs(parsed, model.session.inputs)
            try:
                outputs = await model.infer(parsed.inputs)
            except ProtocolError:
                raise
            except Exception as error:  # noqa: BLE001 - ONNX Runtime's message, answered as a 400
                raise ProtocolError(f"model '{model.name}' could not run this request: {_first_line(error)}") from None
            payload, header_length = encode_infer_response(model.name, outputs, parsed, model.version)
            outcome = succeeded
        finally:
            metrics.in_flight.dec()
            outcome.inc()
            latency.observe(time.perf_counter() - started)
        if header_length is None:
            return Response(payload, media_type="application/json")
        return Response(payload, media_type="application/octet-stream", headers={HEADER_LENGTH: str(header_length)})

    async def metrics_text(request):
        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    prefix = "/v2/models/{name}"
    routes = [  # infer first: starlette tries routes in order
        Route(prefix + "/infer", infer, methods=["POST"]),
        Route(prefix + "/versions/{version}/infer", infer, methods=["POST"]),
        Route("/v2/health/live", live),
        Route("/v2/health/ready", ready),
        Route("/v2", server_metadata),
        Route(prefix, model_metadata),
        Route(prefix + "/versions/{version}", model_metadata),
        Route(prefix + "/ready", model_ready),
        Route(prefix + "/versions/{version}/ready", model_ready),
        Route("/metrics", metrics_text),
    ]

    @contextlib.asynccontextmanager
    async def lifespan(app):
        yield
        # Shutdown (SIGTERM under uvicorn: in-flight requests were answered first).
        await deadlines.close()
        for versions in by_name.values():
            for model in versions.values():
                if model.batcher is not None:
                    await model.batcher.close()
                if model.instances is not None:
                    model.instances.close()

    app = Starlette(routes=routes, exception_handlers=_handlers(), lifespan=lifespan)
    if auth_token:
        app.add_middleware(_BearerToken, token=auth_token)
    if access_log is not None:
        app.add_middleware(_AccessLog, stream=access_log)
    app.state.metrics = metrics
    return app


class _BodyDeadlines:
    """The deadline of every request body being read, enforced by one sweeper task that wakes a
    few times per ``timeout_s`` (at most every second) and cancels the reads past theirs. A timer
    per request (``asyncio.timeout``) costs more than the rest of reading a small body; this costs
    a dict entry. The sweeper stops when no body is being read and starts with the next one. It
    belongs to one event loop and cancels only that loop's reads: an app served by one loop after
    another (a restarted server, a test client's loop per request) gets a sweeper in each."""

    def __init__(self, timeout_s: float):
        self.timeout_s = timeout_s
        self.period = min(1.0, timeout_s / 4)
        self.reading: dict[asyncio.Task, float] = {}
        self.expired: set[asyncio.Task] = set()
        self.sweeper: asyncio.Task | None = None

    async def read(self, request: Request, limit: int) -> bytes:
        task = asyncio.current_task()
        loop = asyncio.get_running_loop()
        self.reading[task] = loop.time() + self.timeout_s
        if self.sweeper is None or self.sweeper.get_loop() is not loop:
            self.sweeper = loop.create_task(self._sweep())
        try:
            return await _read_body(request, limit, self)
        except asyncio.CancelledError:
            if task not in self.expired:
                raise
            self.expired.discard(task)
            if hasattr(task, "uncancel"):  # Python 3.11+: this cancellation is handled here
                task.uncancel()
            raise ProtocolError(f"the request body did not arrive within {self.timeout_s:g} s", 408) from None
        finally:
            self.reading.pop(task, None)

    async def _sweep(self) -> None:
        loop, me = asyncio.get_running_loop(), asyncio.current_task()
        try:
            while True:  # a period at least: a sweeper per request would cost what it saves
                await asyncio.sleep(self.period)
                now, mine = loop.time(), 0
                for task, deadline in list(self.reading.items()):
                    if task.get_loop() is not loop:
                        if task.get_loop().is_closed():  # a read its loop left behind
                            del self.reading[task]
                    elif deadline <= now:
                        del self.reading[task]
                        self.expired.add(task)
                        task.cancel()
                    else:
                        mine += 1
                if not mine:
                    return
        finally:
            if self.sweeper is me:
                self.sweeper = None

    async def close(self) -> None:
        if self.sweeper is not None and self.sweeper.get_loop() is asyncio.get_running_loop():
            self.sweeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.sweeper


def _header(request: Request, name: bytes) -> str | None:
    """A request header's value, from the raw ASGI list (lowercase ``name``): cheaper than
    building starlette's ``Headers`` for the two this app reads per request."""
    for key, value in request.scope["headers"]:
        if key == name:
            return value.decode("latin-1")
    return None


async def _read_body(request: Request, limit: int, deadlines: _BodyDeadlines) -> bytes:
    declared = _header(request, b"content-length")
    too_big = f"the request body is over the server's limit of {limit} bytes (raise it with --max-request-bytes)"
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise ProtocolError(too_big, 413)
    # ASGI's receive directly: starlette's request.stream() is an async generator on top of it
    chunks, size, receive = [], 0, request.receive
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ClientDisconnect()
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise ProtocolError(too_big, 413)
        chunks.append(chunk)
        if not message.get("more_body", False):
            return chunks[0] if len(chunks) == 1 else b"".join(chunks)


def _first_line(error: Exception) -> str:
    text = str(error).strip() or type(error).__name__
    return text.splitlines()[0][:500]


def _handlers():
    async def protocol_error(request, error: ProtocolError):
        return _error(str(error), error.status)

    async def http_error(request, error: HTTPException):
        return _error(error.detail or "error", error.status_code)

    async def unexpected(request, error: Exception):
        return _error(f"internal error: {_first_line(error)}", 500)

    return {ProtocolError: protocol_error, HTTPException: http_error, Exception: unexpected}


class _BearerToken:
    """Requires ``Authorization: Bearer <token>`` on every route but the health checks."""

    def __init__(self, app, token: str):
        self.app = app
        self.expected = f"Bearer {token}".encode()

    async def __call__(self, scope, receive, send):
        if scope["type"] == "http" and not scope["path"].startswith("/v2/health/"):
            headers = dict(scope.get("headers") or [])
            if not hmac.compare_digest(headers.get(b"authorization", b""), self.expected):
                response = _error("missing or wrong bearer token (Authorization: Bearer <token>)", 401)
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)


class _AccessLog:
    """One JSON line per HTTP request on ``stream`` (structured, for log collectors)."""

    def __init__(self, app, stream):
        self.app = app
        self.stream = stream

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started, status = time.perf_counter(), [500]

        async def record_status(message):
            if message["type"] == "http.response.start":
                status[0] = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, record_status)
        finally:
            client = scope.get("client") or ("", 0)
            entry = {
                "time": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="milliseconds"),
                "client": f"{client[0]}:{client[1]}",
                "method": scope["method"],
                "path": scope["path"],
                "status": status[0],
                "ms": round((time.perf_counter() - started) * 1000, 3),
            }
            self.stream.write(orjson.dumps(entry).decode() + "\n")
            self.stream.flush()
