"""The gRPC gateway: the service ``qmk.v1.Kernel`` in a process of its own.

``qmk gateway grpc --kernel SOCKET --listen HOST:PORT`` runs it alone; ``qmk serve --grpc
HOST:PORT --gateway process`` starts and supervises one (:mod:`qmk.commands.gateway`).
It is :mod:`qmk.grpc.server`'s listener on the HTTP gateway's door
(:mod:`qmk.gateway.http`): every call goes to the kernel's socket with its caller's own
session, ``WatchJob`` streams the kernel's ``q_watch``, and while the kernel is away a
call fails ``UNAVAILABLE`` (``QS1011``, ``reason: kernel-away``). With ``--trace`` each
call is a ``qsyscall`` span.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Callable

from qmk.abi.limits import ServerConfig
from qmk.gateway.http import GatewayDoor, GatewayProbe, RemoteKernel, RemoteWatches, hold_room
from qmk.grpc.server import GrpcConfig, grpc_listener


async def serve_grpc_gateway(
    kernel_address: str,
    server_config: ServerConfig,
    config: GrpcConfig,
    *,
    sock: socket.socket | None = None,
    max_graph_nodes: int,
    trace: str = "none",
    ready: Callable[[str], None] | None = None,
    stop: asyncio.Event,
) -> None:
    """Serve ``qmk.v1.Kernel`` for the kernel at ``kernel_address`` until ``stop`` is
    set, then drain. ``sock``: the listening socket a supervisor passed (None: bind
    ``config``'s address); ``trace``: the exporter of each call's ``qsyscall`` span
    (``--trace``; none: off); ``ready`` is called with the URL once it serves.

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
            door, probe, config, stop=stop, sock=sock, watches=RemoteWatches(kernel)
        )
        async with listener as url:
            if ready is not None:
                ready(url)
            await stop.wait()
    finally:
        await kernel.aclose()
        if tracing is not None:
            tracing.shutdown()


__all__ = ["serve_grpc_gateway"]
