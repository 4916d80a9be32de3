"""The gRPC gateway: the service ``qmk.v1.Kernel`` in a process of its own.

``qmk gateway grpc --kernel SOCKET --listen HOST:PORT`` runs it alone; ``qmk serve --grpc
HOST:PORT --gateway process`` starts and supervises one (:mod:`qmk.serve.gateways`).
It is :mod:`qmk.grpc.server`'s listener on the HTTP gateway's door
(:mod:`qmk.gateway.http`): every call goes to the kernel's socket with its caller's own
session, ``WatchJob`` streams the kernel's ``q_watch``, and while the kernel is away a
call fails ``UNAVAILABLE`` (``QS1011``, ``reason: kernel-away``). With ``--trace`` each
call is a ``qsyscall`` span. With ``--metrics HOST:PORT`` it also serves ``GET /metrics``
over HTTP (:func:`metrics_page`): its own calls' latencies and the kernel's load, for a
scraper holding ``CAP_OBSERVE``, as the HTTP gateway's page.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import Callable
from typing import Any

from qmk.abi.door import Door
from qmk.abi.limits import ServerConfig
from qmk.gateway.http import (
    GatewayDoor,
    GatewayProbe,
    RemoteKernel,
    RemoteWatches,
    hold_room,
    serving,
)
from qmk.grpc.server import GrpcConfig, grpc_listener


async def serve_grpc_gateway(
    kernel_address: str,
    server_config: ServerConfig,
    config: GrpcConfig,
    *,
    sock: socket.socket | None = None,
    max_graph_nodes: int,
    trace: str = "none",
    metrics: socket.socket | None = None,
    ready: Callable[[str], None] | None = None,
    stop: asyncio.Event,
) -> None:
    """Serve ``qmk.v1.Kernel`` for the kernel at ``kernel_address`` until ``stop`` is
    set, then drain. ``sock``: the listening socket a supervisor passed (None: bind
    ``config``'s address); ``trace``: the exporter of each call's ``qsyscall`` span
    (``--trace``; none: off); ``metrics``: a listening socket to serve the metrics page
    on (None: none); ``ready`` is called with the URL once it serves.

    Raises:
        ServeError, CommandError: the address cannot be bound, a TLS file cannot be
            loaded, a trace exporter cannot be made.
    """
    tracing = None
    if trace != "none":  # the calls' spans (qmk.http's tracer: the http extra)
        from qmk.http.tracing import Tracing, make_provider

        tracing = Tracing(make_provider(trace))
    kernel = RemoteKernel(kernel_address)
    probe = GatewayProbe(kernel, max_graph_nodes)
    door = GatewayDoor(kernel, server_config, probe=probe)
    if tracing is not None:
        door.trace(tracing.call)
    try:
        hold_room(door, server_config)
        listener = grpc_listener(
            door,
            probe,
            config,
            stop=stop,
            sock=sock,
            watches=RemoteWatches(kernel),
            relay=door.relay,
        )
        async with listener as url, _metrics_served(door, server_config, metrics, stop):
            if ready is not None:
                ready(url)
            await stop.wait()
    finally:
        await kernel.aclose()
        if tracing is not None:
            tracing.shutdown()


@contextlib.asynccontextmanager
async def _metrics_served(
    door: Door,
    server_config: ServerConfig,
    sock: socket.socket | None,
    stop: asyncio.Event,
) -> Any:
    """The metrics page on ``sock`` (nothing when None) while the body runs; the page's
    connections pass the gateway's door as its gRPC ones do."""
    if sock is None:
        yield
        return
    from qmk.http.metrics import Metrics
    from qmk.http.server import HttpConfig, _uvicorn_server

    metrics = Metrics()
    door.observe(metrics.observe_rpc)  # its wire's calls, by the wire's name
    bound = sock.getsockname()
    server = _uvicorn_server(
        metrics_page(door, metrics), HttpConfig(host=bound[0], port=bound[1]), server_config, door
    )
    try:
        async with serving(server, sock, door, stop):
            yield
    finally:
        sock.close()


def metrics_page(door: Door, metrics: Any) -> Any:
    """The gRPC gateway's metrics page: ``GET /metrics`` (the kernel's load through
    ``q_kernel_load`` with the scraper's credentials, which need ``CAP_OBSERVE``, and
    this gateway's own calls, :class:`qmk.http.metrics.Metrics`) and ``GET /healthz``;
    a refusal is a problem document, as the HTTP gateway's."""
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import Response
    from starlette.routing import Route

    from qmk.abi.door import peer_of_address
    from qmk.abi.watchhub import through
    from qmk.errors import QMKError
    from qmk.http import problems
    from qmk.http.metrics import CONTENT_TYPE, Scrapers

    scrapers = Scrapers()

    async def page(request: Request) -> Response:
        visitor = request.scope.get("qmk.visitor")
        if visitor is None:  # no guard ran (an application in-process)
            visitor = door.visitor("http", peer_of_address(request.scope.get("client")))
        try:
            load = await scrapers.load(through(door, visitor), request.headers.get("authorization"))
        except QMKError as exc:
            return problems.response(exc, request.url.path)
        return Response(metrics.exposition(load), media_type=CONTENT_TYPE)

    async def health(request: Request) -> Response:
        return Response(b'{"status":"ok"}', media_type="application/json")

    return Starlette(
        routes=[
            Route("/metrics", page, methods=["GET"]),
            Route("/healthz", health, methods=["GET"]),
        ]
    )


__all__ = ["metrics_page", "serve_grpc_gateway"]
