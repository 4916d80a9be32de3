"""The supervisor of gateways: ``qmk serve`` runs each wire's gateway in a process of its own.

:class:`Supervisor` starts a gateway (``qmk gateway WIRE``, :mod:`qmk.commands.gateway`)
on a listening socket it binds itself and hands down, so the port stays the same and
connections wait in its backlog while a gateway restarts; it restarts a gateway that
dies, with backoff, and logs and counts each restart. The gateway holds the read end of a
pipe whose write end only the supervisor holds: when the supervisor dies, even by SIGKILL,
the gateway reads end of file and stops (no orphan). The kernel's process loads this
module only where a wire is asked.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from qmk import defaults
from qmk.abi.errors import CommandError, ServeError
from qmk.errors import QMKError

LOG = logging.getLogger("qmk.gateway")

#: The first wait before a dead gateway starts again; it doubles per quick death.
RESTART_FIRST_S = 0.1
#: The longest wait between restarts.
RESTART_MOST_S = 5.0
#: A gateway that served this long before it died restarts after the first wait again.
HEALTHY_S = 10.0
#: The line a gateway prints once it serves (its URL follows).
READY = "qmk gateway: listening on "
#: The ``--kernel`` of a gateway whose kernel listens on ``--tcp HOST:0``: the port is
#: known once the kernel binds it (:func:`kernel_address`).
BOUND_LATER = "tcp:bound-later"


@dataclass(slots=True)
class Supervisor:
    """Runs a gateway process and starts it again when it dies (see the module).

    Attributes:
        argv: the gateway's command line, without the socket and pipe it is handed.
        sock: the listening socket it serves.
        wire: the wire it serves (in its log lines).
        restarts: how many times it was started again.
    """

    argv: list[str]
    sock: Any
    wire: str = "http"
    restarts: int = 0
    url: str | None = None
    #: The URL of its metrics page (a gRPC gateway's with ``--grpc-metrics``), if any.
    metrics_url: str | None = None
    _process: asyncio.subprocess.Process | None = None
    _pipe: tuple[int, int] | None = None
    _ready: asyncio.Event = field(default_factory=asyncio.Event)
    _reader: asyncio.Future[None] | None = None

    async def start(self) -> str:
        """Start the gateway and wait for its ready line; its URL.

        Raises:
            ServeError: ``gateway-ended``: the first gateway ended before it served.
        """
        self._pipe = os.pipe()
        os.set_inheritable(self._pipe[0], True)
        await self._spawn()
        waiting = asyncio.ensure_future(self._ready.wait())
        assert self._process is not None
        ended = asyncio.ensure_future(self._process.wait())
        await asyncio.wait([waiting, ended], return_when=asyncio.FIRST_COMPLETED)
        waiting.cancel()
        ended.cancel()
        if self.url is None:
            raise ServeError.of(
                "gateway-ended", f"the {self.wire} gateway ended before it served (its lines above)"
            )
        return self.url

    async def _spawn(self) -> None:
        assert self._pipe is not None
        fd = self.sock.fileno()
        os.set_inheritable(fd, True)
        argv = [*self.argv, "--listen-fd", str(fd), "--parent-fd", str(self._pipe[0])]
        fds = [fd, self._pipe[0]]
        if isinstance(self.sock, Listening) and self.sock.metrics is not None:
            metrics = self.sock.metrics.fileno()
            os.set_inheritable(metrics, True)
            argv += ["--metrics-fd", str(metrics)]
            fds.append(metrics)
        self._process = await asyncio.create_subprocess_exec(
            *argv,
            stdout=subprocess.PIPE,
            pass_fds=fds,
            start_new_session=True,  # a terminal's ^C reaches qmk serve, which stops it
        )
        assert self._process.stdout is not None
        self._reader = asyncio.ensure_future(self._read_lines(self._process.stdout))

    async def _read_lines(self, stream: asyncio.StreamReader) -> None:
        while line := await stream.readline():
            text = line.decode(errors="replace").rstrip("\n")
            if text.startswith(READY):
                self.url = text[len(READY) :].split(" ")[0]
                page = _METRICS_AT.search(text)
                self.metrics_url = None if page is None else page.group(1)
                self._ready.set()
            else:
                sys.stderr.write(text + "\n")

    async def supervise(self, stop: asyncio.Event) -> None:
        """Start the gateway again each time it dies, until ``stop`` is set; then stop it."""
        wait = RESTART_FIRST_S
        while not stop.is_set():
            assert self._process is not None
            started = time.monotonic()
            ended = asyncio.ensure_future(self._process.wait())
            stopping = asyncio.ensure_future(stop.wait())
            await asyncio.wait([ended, stopping], return_when=asyncio.FIRST_COMPLETED)
            stopping.cancel()
            if stop.is_set():
                ended.cancel()
                break
            code = self._process.returncode
            if time.monotonic() - started >= HEALTHY_S:
                wait = RESTART_FIRST_S
            self.restarts += 1
            LOG.warning(
                "the %s gateway (pid %s) ended with %s; restart %d in %.3g s",
                self.wire,
                self._process.pid,
                code,
                self.restarts,
                wait,
            )
            try:
                await asyncio.wait_for(stop.wait(), wait)
                break
            except asyncio.TimeoutError:
                pass
            wait = min(wait * 2, RESTART_MOST_S)
            await self._spawn()
        await self.close()

    async def close(self) -> None:
        """Stop the gateway (SIGTERM: it drains) and wait for it."""
        process = self._process
        if process is not None and process.returncode is None:
            process.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(process.wait(), defaults.DRAIN_TIMEOUT_S + 5)
            except asyncio.TimeoutError:
                process.kill()
                await process.wait()
        if self._pipe is not None:
            for fd in self._pipe:
                os.close(fd)
            self._pipe = None


@contextlib.asynccontextmanager
async def supervised(
    gateways: list[tuple[list[str], Any]],
    ready: Callable[[list[str]], None],
    stop: asyncio.Event,
) -> AsyncIterator[Callable[[list[str]], None]]:
    """Give the ready call of the kernel's server for ``gateways`` (bound by
    :func:`gateways_of`): once
    the kernel listens it starts each gateway (its ``argv``), then says ``ready`` with
    their URLs added, and supervises them until ``stop``. On exit the gateways stop
    first.

    Raises:
        ServeError: ``cannot-bind``; ``gateway-ended``: a first gateway did not serve.
    """
    supervisors = [
        Supervisor(argv, sock, argv[argv.index("gateway") + 1]) for argv, sock in gateways
    ]
    tasks: list[asyncio.Future[None]] = []
    failed: list[QMKError] = []

    def kernel_ready(addresses: list[str]) -> None:
        for supervisor in supervisors:
            supervisor.argv = kernel_address(supervisor.argv, addresses)

        async def run() -> None:
            try:
                urls = [await supervisor.start() for supervisor in supervisors]
            except QMKError as exc:
                failed.append(exc)
                stop.set()
                return
            pages = [s.metrics_url for s in supervisors if s.metrics_url is not None]
            ready([*addresses, *urls, *pages])
            await asyncio.gather(*(supervisor.supervise(stop) for supervisor in supervisors))

        tasks.append(asyncio.ensure_future(run()))

    try:
        yield kernel_ready
    finally:
        stop.set()  # the kernel's server ended: so do its gateways
        for task in tasks:
            await task
        for supervisor in supervisors:
            await supervisor.close()
            supervisor.sock.close()
    if failed:
        raise failed[0]


def gateways_of(
    args: argparse.Namespace, server_config: Any, config: Any
) -> list[tuple[list[str], Any]]:
    """The gateways ``qmk serve --gateway process`` starts: each wire's command line and
    its listening socket, on this kernel's socket. What would stop a gateway's start
    stops it here, before the kernel starts, as one coded line: an address that is no
    ``HOST:PORT``, a TLS file that does not load, a port that cannot be bound.

    Raises:
        CommandError: ``bad-option``: ``--trace`` without ``--http``, a TLS file does
            not load.
        ServeError: ``bad-address``, ``cannot-bind``.
    """
    from qmk.abi.server import bind_tcp, check_tls_files, parse_tcp

    if args.http is None and args.trace is not None:  # as --gateway inline says it
        raise CommandError.of("bad-option", "--trace is an option of --http HOST:PORT")
    if server_config.socket_path is not None:
        kernel = str(server_config.socket_path)
    elif server_config.tcp[1]:
        kernel = str(args.tcp)
    else:  # --tcp HOST:0: the port the kernel binds, once it listens (kernel_address)
        kernel = BOUND_LATER
    wires = [(w, a) for w, a in (("http", args.http), ("grpc", args.grpc)) if a is not None]
    addresses = [parse_tcp(address) for _, address in wires]
    if wires:
        check_tls_files(
            None if args.tls_cert is None else Path(args.tls_cert),
            None if args.tls_key is None else Path(args.tls_key),
        )
    page = getattr(args, "grpc_metrics", None)
    if page is not None and args.grpc is None:
        raise CommandError.of("bad-option", "--grpc-metrics is an option of --grpc HOST:PORT")
    found: list[tuple[list[str], Any]] = []
    try:
        for (wire, _), address in zip(wires, addresses, strict=True):
            sock = Listening(bind_tcp(*address))
            found.append((gateway_argv(wire, kernel, args, config), sock))
            if wire == "grpc" and page is not None:
                sock.metrics = bind_tcp(*parse_tcp(page))
    except BaseException:
        close_gateways(found)
        raise
    return found


def kernel_address(argv: list[str], addresses: list[str]) -> list[str]:
    """``argv`` with its ``--kernel`` :data:`BOUND_LATER` made the TCP address the
    kernel bound (one of its listening ``addresses``: ``tcp:HOST:PORT``; a wildcard host
    is reached on the loopback)."""
    at = argv.index("--kernel") + 1
    if argv[at] != BOUND_LATER:
        return argv
    bound = next(a for a in addresses if a.startswith("tcp:"))
    host, _, port = bound.removeprefix("tcp:").rpartition(":")
    host = {"0.0.0.0": "127.0.0.1", "::": "::1"}.get(host, host)
    where = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    return [*argv[:at], where, *argv[at + 1 :]]


class Listening:
    """The listening sockets ``qmk serve`` holds for one gateway across its restarts:
    its wire's, and the gRPC gateway's metrics page's (``--grpc-metrics``; None: none);
    each a bound ``socket.socket``, which only the wire rooms make."""

    def __init__(self, wire: Any, metrics: Any = None) -> None:
        self.wire = wire
        self.metrics = metrics

    def fileno(self) -> int:
        return self.wire.fileno()

    def getsockname(self) -> Any:
        return self.wire.getsockname()

    def close(self) -> None:
        self.wire.close()
        if self.metrics is not None:
            self.metrics.close()


#: The metrics page's URL on a gateway's listening line.
_METRICS_AT = re.compile(r"metrics (\S+?)\)?$")


def close_gateways(gateways: list[tuple[list[str], Any]]) -> None:
    """Close the listening sockets of gateways that will not start (the kernel did not)."""
    for _, sock in gateways:
        sock.close()


def gateway_argv(wire: str, kernel_socket: str, args: argparse.Namespace, config: Any) -> list[str]:
    """The command line of the ``wire`` gateway ``qmk serve`` starts: the same Python,
    this kernel's socket, its options, and the ``[http]`` table's host names."""
    argv = [sys.executable, "-m", "qmk", "gateway", wire, "--kernel", kernel_socket]
    options: list[tuple[str, Any]] = [
        ("--tls-cert", args.tls_cert),
        ("--tls-key", args.tls_key),
        ("--log-format", args.log_format),
        ("--log-level", args.log_level),
    ]
    address = args.http if wire == "http" else args.grpc
    options.append(("--trace", args.trace))
    for flag, value in options:
        if value is not None:
            argv += [flag, str(value)]
    argv += ["--bind-host", address.rsplit(":", 1)[0].strip("[]")]
    argv += ["--max-graph-nodes", str(config.max_graph_nodes)]
    argv += ["--memory-mb", str(config.worker_memory_mb)]  # capped as a worker is
    limits = dict(config.server)  # the door's limits at the gateway are the kernel's
    if getattr(args, "max_line", None) is not None:
        limits["max_line"] = args.max_line
    if limits:
        argv += ["--server-limits", json.dumps(limits, separators=(",", ":"))]
    if wire == "http":
        for name in config.http.allowed_hosts:
            argv += ["--allowed-host", name]
    return argv


__all__ = [
    "BOUND_LATER",
    "HEALTHY_S",
    "READY",
    "RESTART_FIRST_S",
    "RESTART_MOST_S",
    "Listening",
    "Supervisor",
    "close_gateways",
    "gateway_argv",
    "gateways_of",
    "kernel_address",
    "supervised",
]
