"""uvicorn on a socket of our own, beside the JSON-RPC server, on the same kernel and loop.

:func:`serve_with_http` is what ``qmk serve --http HOST:PORT`` runs. It binds the HTTP
socket itself, so port 0 picks a free port that the ready line names, and a port in use
is one coded error, ``QW003``. It builds the application, and runs uvicorn and
:func:`qmk.abi.server.serve_kernel` in one task group until ``stop`` is set. Then both
drain (``server.drain_timeout_s``; live event streams end at once) and return.
uvicorn's own signal handling is off: ``qmk serve``'s handlers own SIGTERM and SIGINT.

The door (:mod:`qmk.abi.door`) accepts its connections (:class:`~qmk.abi.door.Acceptor`:
one accept rate for every listener) and hands each to uvicorn. uvicorn runs
:mod:`qmk.http.guard`'s protocol: the ``[server]`` table's limits on its connections,
counted with the other listeners' by the door. Every request's syscall passes the door.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import ssl
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import qmk.aio as aio
from qmk.abi.door import Acceptor, Door
from qmk.abi.errors import CommandError, ServeError
from qmk.abi.limits import ServerConfig
from qmk.abi.probing import KernelProbe
from qmk.abi.server import serve_kernel
from qmk.abi.tcp import check_tls_files, format_tcp
from qmk.errors import QMKError


@dataclass(frozen=True, slots=True, kw_only=True)
class HttpConfig:
    """Where the HTTP API listens and what it runs with.

    Attributes:
        host, port: the address (port 0: a free one).
        tls_cert, tls_key: PEM files: serve HTTPS (both or neither).
        trace: the ``--trace`` exporter (:data:`qmk.http.tracing.EXPORTERS`).
    """

    host: str
    port: int
    tls_cert: Path | None = None
    tls_key: Path | None = None
    trace: str = "none"

    def __post_init__(self) -> None:
        if (self.tls_cert is None) != (self.tls_key is None):
            raise CommandError.of("bad-option", "--tls-cert and --tls-key go together")

    @property
    def scheme(self) -> str:
        return "http" if self.tls_cert is None else "https"


def check_tls(config: HttpConfig) -> None:
    """Load the certificate and key once, so a bad file is one coded line at start
    (:func:`qmk.abi.tcp.check_tls_files`).

    Raises:
        CommandError: ``bad-option`` naming the file and why.
    """
    check_tls_files(config.tls_cert, config.tls_key)


def bind_tcp(host: str, port: int) -> socket.socket:
    """A listening TCP socket on ``host:port`` (IPv6 when the host is one).

    Raises:
        ServeError: ``cannot-bind`` naming the address and why.
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # IPPROTO_TCP named, so asyncio sets TCP_NODELAY on every accepted connection (it
    # looks at the socket's proto): without it a reply's headers and body, two writes,
    # meet Nagle and the client's delayed ACK, and a round trip waits for its timer
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(1024)
    except OSError as exc:
        sock.close()
        raise ServeError.of(
            "cannot-bind", f"{host}:{port}: cannot listen (HTTP): {exc.strerror}"
        ) from None
    sock.setblocking(False)
    return sock


def _uvicorn_server(app: Any, config: HttpConfig, server_config: ServerConfig, door: Door) -> Any:
    import uvicorn

    from qmk.http.guard import guarded_protocol

    class Server(uvicorn.Server):
        """uvicorn without signal handlers of its own (the kernel's stop event rules) and
        without listeners of its own: the door accepts (:meth:`adopt`)."""

        protocol: Any = None

        @contextlib.contextmanager
        def capture_signals(self) -> Iterator[None]:
            yield

        def install_signal_handlers(self) -> None:  # uvicorn < 0.29
            return

        async def startup(self, sockets: list[socket.socket] | None = None) -> None:
            await self.lifespan.startup()
            settings = self.config

            def create_protocol(_loop: asyncio.AbstractEventLoop | None = None) -> Any:
                return settings.http_protocol_class(  # type: ignore[call-arg]
                    config=settings,
                    server_state=self.server_state,
                    app_state=self.lifespan.state,
                    _loop=_loop,
                )

            self.servers = []
            self.protocol = create_protocol
            self.started = True

        async def adopt(self, conn: socket.socket) -> None:
            """Serve a connection the door accepted."""
            loop = asyncio.get_running_loop()
            try:
                await loop.connect_accepted_socket(self.protocol, conn, ssl=self.config.ssl)
            except (OSError, ssl.SSLError):
                conn.close()

    uv_config = uvicorn.Config(
        app,
        log_config=None,
        access_log=False,
        lifespan="off",
        proxy_headers=False,
        server_header=False,
        timeout_graceful_shutdown=max(int(server_config.drain_timeout_s), 1),
        # the connection discipline of the [server] table (qmk.http.guard): the door's
        # count of every listener's connections replaces uvicorn's limit_concurrency
        http=guarded_protocol(server_config, door),
        timeout_keep_alive=server_config.http_keep_alive_s,  # type: ignore[arg-type]
        limit_concurrency=None,
        ssl_certfile=None if config.tls_cert is None else str(config.tls_cert),
        ssl_keyfile=None if config.tls_key is None else str(config.tls_key),
    )
    return Server(uv_config)


async def serve_with_http(
    kernel: Any,
    probe: KernelProbe,
    server_config: ServerConfig,
    config: HttpConfig,
    *,
    ready: Callable[[list[str]], None] | None = None,
    stop: asyncio.Event,
    door: Door | None = None,
) -> None:
    """Serve ``kernel`` on JSON-RPC (``server_config``) and HTTP (``config``) until
    ``stop`` is set (``qmk serve`` sets it on SIGTERM or SIGINT), then drain both.

    ``ready`` is called once both listen, with the JSON-RPC addresses and the HTTP URL.
    ``door`` is the door every listener of the kernel shares (None: one of its own on
    ``kernel`` and ``probe``); its calls are timed in the metrics and traced from now.

    Raises:
        ServeError, CommandError: an address cannot be bound, a TLS file cannot be loaded,
            a trace exporter cannot be made.
    """
    from qmk.abi.events import EventHub
    from qmk.http.app import create_app
    from qmk.http.tracing import Tracing, make_provider

    check_tls(config)
    if door is None:
        door = Door(kernel, server_config, probe=probe)
    tracing = Tracing(make_provider(config.trace))
    sock = bind_tcp(config.host, config.port)
    hub = EventHub(probe, asyncio.get_running_loop(), caps=door.streams)
    if tracing.enabled:  # the workers record their spans under the job's run span
        probe.trace_workers(tracing)
    try:
        metrics, exposure = _exposure(kernel, config)
        app = create_app(door, hub, metrics, tracing, exposure)  # it times and traces calls
        server = _uvicorn_server(app, config, server_config, door)
        bound = sock.getsockname()
        url = f"{config.scheme}://{format_tcp(bound)}"
        try:
            await _serve_both(door, server, sock, server_config, stop, hub, url, ready)
        except Exception as exc:  # the group's: raise the first coded failure of the two
            raise _first(exc) from None
    finally:
        hub.close()
        sock.close()
        if tracing.enabled:
            door.trace(None)
            probe.trace_workers(None)
        tracing.shutdown()


def _exposure(kernel: Any, config: HttpConfig) -> tuple[Any, Any]:
    """The metrics (the kernel's load read with ``q_kernel_load`` at each scrape, as the
    scraper) and the exposure (Host names) of the kernel's ``[http]`` table for a server
    on ``config.host``."""
    from qmk.http.app import Exposure
    from qmk.http.metrics import Metrics

    return Metrics(), Exposure.of(kernel.config.http.allowed_hosts, config.host)


def _first(error: BaseException) -> BaseException:
    """The first QMKError in an exception group (or the first exception there is)."""
    inner = getattr(error, "exceptions", None)
    if not inner:
        return error
    found = [_first(e) for e in inner]
    return next((e for e in found if isinstance(e, QMKError)), found[0])


async def _serve_both(
    door: Door,
    server: Any,
    sock: socket.socket,
    server_config: ServerConfig,
    stop: asyncio.Event,
    hub: Any,
    url: str,
    ready: Callable[[list[str]], None] | None,
) -> None:
    from qmk.abi.watchhub import HubWatches, through

    rpc_ready = asyncio.Event()
    addresses: list[str] = []

    def rpc_listening(found: list[str]) -> None:
        addresses.extend(found)
        rpc_ready.set()

    async with aio.TaskGroup() as group:
        rpc = group.create_task(
            serve_kernel(
                door.kernel,
                server_config,
                ready=rpc_listening,
                stop=stop,
                door=door,
                # one count of streams with the SSE ones
                watches=HubWatches(
                    through(door, door.visitor("jsonrpc", "watches")), hub.probe, hub
                ),
            )
        )
        http = group.create_task(server.serve(sockets=[sock]))
        waits = [asyncio.ensure_future(rpc_ready.wait()), asyncio.ensure_future(stop.wait())]
        try:
            await asyncio.wait([*waits, rpc, http], return_when=asyncio.FIRST_COMPLETED)
            while not server.started and not http.done() and not stop.is_set():
                await asyncio.sleep(0.01)
        finally:
            for wait in waits:
                wait.cancel()

        def adopt(conn: socket.socket) -> None:
            group.create_task(server.adopt(conn))

        acceptor = Acceptor(door.connections, door.clock, adopt)
        if server.started:
            acceptor.start([sock], group.create_task)
        if ready is not None and rpc_ready.is_set() and server.started:
            ready([*addresses, url])
        await stop.wait()
        acceptor.stop()
        hub.close()  # live streams end, so the drain waits for none of them
        server.should_exit = True
