"""``irtool serve``: models over the KServe v2 protocol (``irtool.serving``)."""

from __future__ import annotations

import argparse
import os
import socket

from irtool import serving
from irtool.cli.common import (
    WEIGHTS_HELP,
    CLIError,
    _non_negative_int,
    _positive_int,
    _provider_list,
    note_fresh_weights,
)
from irtool.runtime import ProviderError


def _check_port(host: str, port: int) -> None:
    """Fail now, in one line, if the address cannot be listened on (uvicorn would log and exit)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as error:
            raise CLIError(f"cannot listen on {host}:{port}: {error.strerror or error}") from None


def cmd_serve(args: argparse.Namespace) -> int:
    if not args.ray and (args.replicas is not None or args.address is not None):
        raise CLIError(f"{'--replicas' if args.replicas is not None else '--address'} needs --ray", code=2)
    missing = serving.missing_extra()
    if missing:
        raise CLIError(f"irtool serve needs {', '.join(missing)} (the serve extra): {serving.INSTALL}")
    if args.ray and serving.missing_ray():
        raise CLIError(
            f"irtool serve --ray needs {', '.join(serving.missing_ray())} (the ray extra): {serving.RAY_INSTALL}"
        )
    # import here: the serve extra is optional, and every other command works without it
    from irtool.serving import server, sources

    token = None
    if args.auth_token_env:
        token = os.environ.get(args.auth_token_env)
        if not token:
            raise CLIError(f"--auth-token-env: the environment variable {args.auth_token_env} is not set", code=2)
    if not 0 <= args.port <= 65535:
        raise CLIError(f"--port: expected 0-65535, received {args.port}", code=2)
    providers = _provider_list(args.providers)
    _check_port(args.host, args.port)
    if args.ray:
        return _serve_on_ray(args, providers, token)
    try:
        models = sources.served_models(
            args.models,
            providers=providers,
            instances=args.instances,
            max_batch_size=args.max_batch_size,
            max_queue_delay_us=args.max_queue_delay_us,
            inline_max_us=args.inline_max_us,
            threads=args.threads,
            weights=args.weights,
            object_name=args.object,
            on_load=note_fresh_weights,
        )
    except ProviderError as error:
        raise CLIError(str(error)) from error
    for model in models:
        batching = (
            f"batching up to {model.max_batch_size} rows, {model.max_queue_delay_us} us delay"
            if model.max_batch_size > 1 and model.batchable
            else "no batching"
        )
        cost = model.cost
        inline = (
            f"calls under {model.inline_max_us} us (~{cost.fixed_s * 1e6:.0f} us + {cost.per_element_s * 1e9:.2f} ns "
            "per input element) on the event loop"
            if cost is not None and model.inline_max_us and cost.fixed_s * 1e6 <= model.inline_max_us
            else "every call in a worker thread"
        )
        print(
            f"irtool: model '{model.name}' version {model.version}: {len(model.sessions)} instance(s) on "
            f"{', '.join(model.session.providers)}, {batching}, {inline}"
        )

    def started(url: str) -> None:
        print(f"irtool: serving on {url} (KServe v2: {url}/v2/models/<name>/infer; metrics: {url}/metrics)", flush=True)

    server.run(
        models,
        host=args.host,
        port=args.port,
        access_log=args.access_log,
        on_start=started,
        max_request_bytes=args.max_request_bytes,
        auth_token=token,
    )
    print("irtool: stopped", flush=True)
    return 0


def _serve_on_ray(args: argparse.Namespace, providers, token) -> int:
    # import here: Ray is an optional extra, needed by --ray alone
    from irtool.serving import ray as ray_serving

    replicas = args.replicas or 1
    # The flags default to "unset" (a repository's config.pbtxt may set them for `irtool serve`);
    # Ray takes plain values.
    max_batch_size = args.max_batch_size or 1
    delay_us = args.max_queue_delay_us or 0
    instances = args.instances or 1
    app = ray_serving.deployment(
        args.models,
        num_replicas=replicas,
        max_batch_size=max_batch_size,
        batch_wait_timeout_s=delay_us / 1e6,
        instances=instances,
        providers=providers,
        threads=args.threads or 1,
        weights=args.weights,
        object_name=args.object,
        on_load=note_fresh_weights,
        max_request_bytes=args.max_request_bytes,
        auth_token=token,
        access_log=args.access_log,
    )
    cluster = f"the Ray cluster at {args.address}" if args.address else "a new local Ray cluster"
    batching = f"batching up to {max_batch_size} rows with @serve.batch" if max_batch_size > 1 else "no batching"
    print(f"irtool: {replicas} Ray Serve replica(s) on {cluster}, {instances} instance(s) each, {batching}")

    def started(url: str) -> None:
        print(f"irtool: serving on {url} (KServe v2: {url}/v2/models/<name>/infer; Ray Serve)", flush=True)

    try:
        ray_serving.run(app, address=args.address, host=args.host, port=args.port, on_start=started)
    except (ConnectionError, RuntimeError) as error:
        raise CLIError(f"Ray Serve could not run the models: {_first_line(error)}") from error
    print("irtool: stopped", flush=True)
    return 0


def _first_line(error: Exception) -> str:
    lines = str(error).strip().splitlines()
    return lines[0] if lines else type(error).__name__


def _add_serve_parser(commands) -> None:
    serve = commands.add_parser(
        "serve",
        help="serve models over the KServe v2 inference protocol",
        description="Serve ONNX files, model.py or .keras models (exported in memory) or a Triton-style model "
        "repository over HTTP with the KServe v2 / Open Inference Protocol (the tritonclient and KServe "
        "clients work), with dynamic batching and Prometheus metrics. Stops cleanly on SIGTERM.",
    )
    serve.add_argument(
        "models",
        nargs="+",
        metavar="MODEL",
        help="name=PATH or PATH (named by its stem): .onnx, .keras, a model.py, or a model repository directory "
        "(<name>/<version>/model.onnx, with an optional Triton config.pbtxt per model)",
    )
    serve.add_argument(
        "--host", default="127.0.0.1", help="the address to listen on (default 127.0.0.1, loopback only)"
    )
    serve.add_argument("--port", type=int, default=8000, help="the port (default 8000)")
    serve.add_argument(
        "--providers", default="cpu", metavar="LIST", help="execution providers, e.g. cuda,cpu (default cpu)"
    )
    serve.add_argument(
        "--max-batch-size",
        type=_positive_int,
        metavar="N",
        help="batch concurrent requests up to N rows per ONNX Runtime call (models with a dynamic first dim; "
        "default: a repository model's config.pbtxt, else 1: off)",
    )
    serve.add_argument(
        "--max-queue-delay-us",
        type=_non_negative_int,
        metavar="T",
        help="wait up to T microseconds for a batch to fill (default: config.pbtxt's dynamic_batching, else 0: "
        "batch only what is already waiting)",
    )
    serve.add_argument(
        "--instances",
        type=_positive_int,
        metavar="K",
        help="sessions per model run concurrently (default: config.pbtxt's instance_group count, else 1)",
    )
    serve.add_argument("--threads", type=_positive_int, metavar="N", help="ONNX Runtime intra-op threads per instance")
    serve.add_argument(
        "--inline-max-us",
        type=_non_negative_int,
        default=100,
        metavar="T",
        help="run calls estimated (timed at startup) to take at most T microseconds on the event loop rather "
        "than handing them to a worker thread, which costs more than such a call (default 100; 0: always a thread)",
    )
    serve.add_argument(
        "--max-request-bytes",
        type=_positive_int,
        default=64 * 2**20,
        metavar="B",
        help="the largest request body accepted, larger ones get 413 (default 64 MiB)",
    )
    serve.add_argument(
        "--auth-token-env", metavar="VAR", help="require 'Authorization: Bearer <token>', the token read from VAR"
    )
    serve.add_argument(
        "--access-log",
        action="store_true",
        help="log every request as a JSON line on stderr (time, client, method, path, status, ms)",
    )
    serve.add_argument(
        "--ray",
        action="store_true",
        help="serve with Ray Serve (the ray extra): replicas on a Ray cluster, @serve.batch for batching",
    )
    serve.add_argument(
        "--replicas",
        type=_positive_int,
        metavar="N",
        help="with --ray: Ray Serve replicas, each with its sessions (default 1)",
    )
    serve.add_argument(
        "--address",
        metavar="ADDR",
        help="with --ray: join the Ray cluster at ADDR (auto, host:port or ray://host:port) instead of starting one",
    )
    serve.add_argument("--weights", metavar="FILE", help=WEIGHTS_HELP)
    serve.add_argument("--object", metavar="NAME", help="the model to use in a model.py (as for export)")
    serve.add_argument("--debug", action="store_true", help="show the full traceback on errors")
    serve.set_defaults(func=cmd_serve)
