"""Running the app on uvicorn: what ``irtool serve`` calls after loading its models."""

from __future__ import annotations

import signal
import sys

import uvicorn

from irtool.serving.app import create_app


def run(models, host: str = "127.0.0.1", port: int = 8000, access_log: bool = False, on_start=None, **options) -> None:
    """Serve ``models`` (``access_log``: JSON lines on stderr) until SIGINT/SIGTERM; uvicorn then stops accepting connections, answers
    the requests in flight (up to 30 s) and returns. ``on_start(url)`` runs once listening."""
    app = create_app(models, access_log=sys.stderr if access_log else None, **options)
    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        log_level="warning",
        access_log=False,  # the app writes its own structured access log
        timeout_graceful_shutdown=30,
        timeout_keep_alive=5,
    )
    server = uvicorn.Server(config)
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
