"""Running the app on uvicorn: what ``irtool serve`` calls after loading its models.

uvicorn bounds the wait *between* requests (``timeout_keep_alive``) but not the wait for a
request's headers, nor their size: a client that connects and sends nothing, or dribbles a
header a byte at a time, or sends megabytes of headers, would hold a connection (and its
buffers) for as long as it likes. ``guarded_protocol`` adds those two limits to uvicorn's own
HTTP protocol class, and answers uvicorn's "Invalid HTTP request" in the app's JSON error form.
The body has its own deadline in the app (``create_app(read_timeout_s=...)``).
"""

from __future__ import annotations

import gc
import signal
import sys
from http import HTTPStatus

import orjson
import uvicorn
from uvicorn.protocols.http.auto import AutoHTTPProtocol

from irtool.serving.app import DEFAULT_READ_TIMEOUT_S, create_app

DEFAULT_HEADER_TIMEOUT_S = 10.0
DEFAULT_MAX_HEADER_BYTES = 64 * 1024


def _raw_error(status: int, message: str) -> bytes:
    body = orjson.dumps({"error": message})
    head = (
        f"HTTP/1.1 {status} {HTTPStatus(status).phrase}\r\ncontent-type: application/json\r\n"
        f"content-length: {len(body)}\r\nconnection: close\r\n\r\n"
    )
    return head.encode("ascii") + body


class _GuardedHTTPProtocol(AutoHTTPProtocol):
    """uvicorn's HTTP protocol (httptools or h11), plus a deadline and a size limit on each
    request's headers: from the connection's start or the first byte of a keep-alive request
    until its headers are complete. A request whose headers are complete has a ``cycle`` of its
    own, which is how both of uvicorn's protocols say "headers done"."""

    header_timeout_s = DEFAULT_HEADER_TIMEOUT_S
    max_header_bytes = DEFAULT_MAX_HEADER_BYTES

    def connection_made(self, transport) -> None:
        super().connection_made(transport)
        self._header_timer = None
        self._await_headers()

    def connection_lost(self, exc) -> None:
        self._stop_waiting()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._header_timer is None and (self.cycle is None or self.cycle.response_complete):
            self._await_headers()
        super().data_received(data)
        if self._header_timer is None:
            return
        if self.cycle is not self._waiting_cycle:
            # Headers complete (perhaps all in this one read): measure what the request holds.
            self._stop_waiting()
            scope = self.cycle.scope
            size = (
                len(scope["raw_path"]) + len(scope["query_string"]) + sum(len(k) + len(v) for k, v in scope["headers"])
            )
            if size > self.max_header_bytes:
                self.cycle.disconnected = True  # uvicorn then drops whatever the app would answer
                self._refuse_large_headers()
            return
        self._header_bytes += len(data)
        if self._header_bytes > self.max_header_bytes:
            self._refuse_large_headers()

    def _refuse_large_headers(self) -> None:
        self._refuse(431, f"the request's headers are over the server's limit of {self.max_header_bytes} bytes")

    def send_400_response(self, msg: str) -> None:
        self._refuse(400, f"not a valid HTTP request: {msg}")

    def _await_headers(self) -> None:
        self._waiting_cycle, self._header_bytes = self.cycle, 0
        self._header_timer = self.loop.call_later(self.header_timeout_s, self._headers_late)

    def _stop_waiting(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def _headers_late(self) -> None:
        self._header_timer = None
        if self.cycle is self._waiting_cycle:
            self._refuse(408, f"the request's headers did not arrive within {self.header_timeout_s:g} s")

    def _refuse(self, status: int, message: str) -> None:
        self._stop_waiting()
        if not self.transport.is_closing():
            self.transport.write(_raw_error(status, message))
            self.transport.close()


def guarded_protocol(
    header_timeout_s: float = DEFAULT_HEADER_TIMEOUT_S, max_header_bytes: int = DEFAULT_MAX_HEADER_BYTES
) -> type:
    """uvicorn's HTTP protocol class with these header limits (pass it as ``uvicorn.Config(http=...)``)."""
    limits = {"header_timeout_s": header_timeout_s, "max_header_bytes": max_header_bytes}
    return type("GuardedHTTPProtocol", (_GuardedHTTPProtocol,), limits)


def uvicorn_config(
    app,
    host: str = "127.0.0.1",
    port: int = 8000,
    *,
    header_timeout_s: float = DEFAULT_HEADER_TIMEOUT_S,
    max_header_bytes: int = DEFAULT_MAX_HEADER_BYTES,
    timeout_keep_alive: int = 5,
    log_level: str = "warning",
) -> uvicorn.Config:
    """The uvicorn configuration ``run`` uses: guarded headers, keep-alive and drain timeouts."""
    return uvicorn.Config(
        app,
        host=host,
        port=port,
        http=guarded_protocol(header_timeout_s, max_header_bytes),
        log_level=log_level,
        access_log=False,  # the app writes its own structured access log
        timeout_graceful_shutdown=30,
        timeout_keep_alive=timeout_keep_alive,
    )


def run(
    models,
    host: str = "127.0.0.1",
    port: int = 8000,
    access_log: bool = False,
    on_start=None,
    read_timeout_s: float = DEFAULT_READ_TIMEOUT_S,
    header_timeout_s: float = DEFAULT_HEADER_TIMEOUT_S,
    **options,
) -> None:
    """Serve ``models`` (``access_log``: JSON lines on stderr) until SIGINT/SIGTERM; uvicorn then stops accepting connections, answers
    the requests in flight (up to 30 s) and returns. ``on_start(url)`` runs once listening. A
    request's headers must arrive within ``header_timeout_s`` and its body within ``read_timeout_s``
    (408 otherwise), so slow clients cannot hold connections open."""
    app = create_app(models, access_log=sys.stderr if access_log else None, read_timeout_s=read_timeout_s, **options)
    # Everything made so far (sessions, ONNX protos, irtool's modules) lives as long as the server:
    # out of the collector's generations, full collections triggered by per-request garbage no
    # longer walk it (measured: ~40 us per request on the MNIST MLP).
    gc.collect()
    gc.freeze()
    server = uvicorn.Server(uvicorn_config(app, host, port, header_timeout_s=header_timeout_s))
    if on_start is not None:
        startup = server.startup

        async def announce(sockets=None):
            await startup(sockets)
            if server.started:
                on_start(f"http://{host if ':' not in host else f'[{host}]'}:{port}")

        server.startup = announce
    # uvicorn answers SIGINT/SIGTERM by draining, then re-raises the signal to the handler that
    # was installed before it; a no-op one makes that a clean return (exit 0) instead of death by
    # the signal.
    previous = {sig: signal.signal(sig, lambda *_: None) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        server.run()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
