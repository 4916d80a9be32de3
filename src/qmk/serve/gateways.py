"""The supervisor of gateways: ``qmk serve`` runs each wire's gateway in a process of its own.

:class:`Supervisor` starts a gateway (``qmk gateway WIRE``, :mod:`qmk.commands.gateway`)
on a listening socket it binds itself and hands down, so the port stays the same and
connections wait in its backlog while a gateway restarts. It keeps a warm spare beside
each serving gateway and replaces a gateway that dies by it (or by a new one), and logs
and counts each. The gateway holds the read end of a pipe whose write end only the
supervisor holds: when the supervisor dies, even by SIGKILL, the gateway reads end of
file and stops (no orphan). The kernel's process loads this module only where a wire is
asked.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import signal
import subprocess
import sys
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from qmk import defaults
from qmk.abi.errors import CommandError, ServeError
from qmk.errors import QMKError
from qmk.kernel.pools.sandbox import data_hidden

LOG = logging.getLogger("qmk.gateway")

#: The first wait before a gateway that died before it served starts again; it
#: doubles per such death (one that served is replaced at once).
RESTART_FIRST_S = 0.1
#: The longest wait between restarts.
RESTART_MOST_S = 5.0
#: A gateway's process group, its own: a terminal's ^C reaches qmk serve, which stops
#: it. Not a session of its own: Linux schedules each session as one group (autogroup),
#: and on a busy host each wake-up of the gateway then waits for its group's turn.
#: (``process_group`` is Python 3.11's; before it, the child's ``setpgid``.)
_OWN_GROUP: dict[str, Any] = (
    {"process_group": 0} if sys.version_info >= (3, 11) else {"preexec_fn": os.setpgrp}
)
#: The line a gateway prints once it serves (its URL follows).
READY = "qmk gateway: listening on "
#: The ``--kernel`` of a gateway whose kernel listens on ``--tcp HOST:0``: the port is
#: known once the kernel binds it (:func:`kernel_address`).
BOUND_LATER = "tcp:bound-later"


@dataclass(slots=True)
class Supervisor:
    """Runs a gateway process, with a warm spare, and replaces it when it dies (see the
    module).

    The spare is a second gateway process that has loaded its wire and confined itself,
    then waits on a pipe of its own. When the serving one dies, the supervisor writes
    one byte to the spare's pipe and it serves at once on the same listening socket.
    Each gateway that serves gets its spare at once. Without a live spare (it died
    too), a new gateway is started cold: at once where the dead one had served (a
    kill, a crash under load), and after a backoff that doubles where it died before
    serving (a bad option, a broken install), so a gateway that cannot start does not
    loop.

    Attributes:
        argv: the gateway's command line, without the socket and pipe it is handed.
        sock: the listening socket it serves.
        wire: the wire it serves (in its log lines).
        restarts: how many times it was replaced.
    """

    argv: list[str]
    sock: Any
    wire: str = "http"
    restarts: int = 0
    url: str | None = None
    #: The URL of its metrics page (a gRPC gateway's with ``--grpc-metrics``), if any.
    metrics_url: str | None = None
    _process: asyncio.subprocess.Process | None = None
    #: The warm spare and the write end of its pipe.
    _spare: tuple[asyncio.subprocess.Process, int] | None = None
    _spare_task: asyncio.Future[None] | None = None
    _pipe: tuple[int, int] | None = None
    _ready: asyncio.Event = field(default_factory=asyncio.Event)
    _readers: list[asyncio.Future[None]] = field(default_factory=list)
    #: The gateways that printed their ready line (served), by pid.
    _served: set[int] = field(default_factory=set)
    #: Each live process's exit, by pid (:class:`_Exits`).
    _exits: dict[int, asyncio.Future[Any]] = field(default_factory=dict)
    _closing: bool = False

    @property
    def what(self) -> str:
        """The server, as its log lines name it."""
        return "the Dask bridge" if self.wire == "dask" else f"the {self.wire} gateway"

    async def start(self) -> str:
        """Start the gateway and wait for its ready line, then its spare; its URL.

        Raises:
            ServeError: ``gateway-ended``: the first gateway ended before it served.
        """
        self._pipe = os.pipe()
        os.set_inheritable(self._pipe[0], True)
        self._process = await self._spawn()
        waiting = asyncio.ensure_future(self._ready.wait())
        ended = asyncio.ensure_future(self._process.wait())
        await asyncio.wait([waiting, ended], return_when=asyncio.FIRST_COMPLETED)
        waiting.cancel()
        ended.cancel()
        if self.url is None:
            raise ServeError.of(
                "gateway-ended", f"{self.what} ended before it served (its lines above)"
            )
        return self.url

    async def _spawn(self, go: int | None = None) -> asyncio.subprocess.Process:
        """A gateway process; a spare where ``go`` is its pipe's read end."""
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
        if go is not None:
            argv += ["--standby-fd", str(go)]
            fds.append(go)
        loop = asyncio.get_running_loop()
        transport, protocol = await loop.subprocess_exec(
            lambda: _Exits(loop),
            *argv,
            stdin=None,
            stdout=subprocess.PIPE,
            stderr=None,
            pass_fds=fds,
            **_OWN_GROUP,
        )
        process = asyncio.subprocess.Process(transport, protocol, loop)
        self._exits = {p: f for p, f in self._exits.items() if not f.done()}  # the dead's
        self._exits[process.pid] = protocol.exited
        assert process.stdout is not None
        self._readers = [reader for reader in self._readers if not reader.done()]  # the dead's
        self._readers.append(asyncio.ensure_future(self._read_lines(process.pid, process.stdout)))
        return process

    async def _start_spare(self) -> None:
        """Start the next spare (one that cannot start is a log line: the next death
        then starts a gateway cold)."""
        read, write = os.pipe()
        try:
            os.set_inheritable(read, True)
            self._spare = (await self._spawn(read), write)
        except OSError as exc:
            os.close(write)
            LOG.warning("%s's spare did not start: %s", self.what, exc)
        finally:
            os.close(read)

    def _promote(self) -> asyncio.subprocess.Process | None:
        """The spare, told to serve; None where there is no live one."""
        spare, self._spare = self._spare, None
        if spare is None:
            return None
        process, go = spare
        try:
            if process.returncode is not None:
                return None
            os.write(go, b"g")
        except OSError:  # it died meanwhile: its pipe has no reader
            return None
        finally:
            os.close(go)
        return process

    async def _read_lines(self, pid: int, stream: asyncio.StreamReader) -> None:
        while line := await stream.readline():
            text = line.decode(errors="replace").rstrip("\n")
            ready = _ready_line(text)
            if ready is None:
                sys.stderr.write(text + "\n")
                continue
            self._served.add(pid)
            if not self._closing:  # it serves: its spare, ready for its death
                self._spare_task = asyncio.ensure_future(self._start_spare())
            self.url = str(ready["listening"])
            self.metrics_url = ready.get("metrics")
            self._ready.set()

    async def supervise(self, stop: asyncio.Event) -> None:
        """Replace the gateway each time it dies, until ``stop`` is set; then stop it."""
        wait = RESTART_FIRST_S
        while not stop.is_set():
            assert self._process is not None
            ended = self._exits[self._process.pid]  # its exit, not its pipes' end
            stopping: asyncio.Future[Any] = asyncio.ensure_future(stop.wait())
            await asyncio.wait([ended, stopping], return_when=asyncio.FIRST_COMPLETED)
            stopping.cancel()
            if stop.is_set():
                break
            dead = self._process
            if dead.pid in self._served:  # it served: replaced at once
                self._served.discard(dead.pid)
                wait = RESTART_FIRST_S
                now = 0.0
            else:  # it died before serving: the backoff doubles
                now = wait
                wait = min(wait * 2, RESTART_MOST_S)
            self.restarts += 1
            starting, self._spare_task = self._spare_task, None
            if starting is not None:
                await starting  # a spare being started: wait for its process
            spare = self._promote()
            LOG.warning(
                "%s (pid %s) ended with %s; restart %d %s",
                self.what,
                dead.pid,
                dead.returncode,
                self.restarts,
                f"by its spare (pid {spare.pid})" if spare else f"in {now:.3g} s",
            )
            if spare is None:
                try:
                    await asyncio.wait_for(stop.wait(), now)
                    break
                except asyncio.TimeoutError:
                    pass
                spare = await self._spawn()
            self._process = spare
        await self.close()

    async def close(self) -> None:
        """Stop the gateway (SIGTERM: it drains) and its spare, and wait for them."""
        self._closing = True
        if self._spare_task is not None:
            await self._spare_task
            self._spare_task = None
        if self._spare is not None:  # its pipe's end of file: it ends
            process, go = self._spare
            self._spare = None
            os.close(go)
            await _stopped(process)
        if self._process is not None:
            await _stopped(self._process)
        if self._pipe is not None:
            for fd in self._pipe:
                os.close(fd)
            self._pipe = None


class _Exits(asyncio.subprocess.SubprocessStreamProtocol):
    """A server process's stream protocol that also says when the process exits.

    ``Process.wait()`` returns once its pipes close too, and the processes a server
    started (a ``local:N`` cluster's) hold its stdout until they notice its death: the
    supervisor replaces it at its exit instead.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        super().__init__(limit=2**16, loop=loop)
        self.exited: asyncio.Future[Any] = loop.create_future()

    def process_exited(self) -> None:
        super().process_exited()
        if not self.exited.done():
            self.exited.set_result(None)


async def _stopped(process: asyncio.subprocess.Process) -> None:
    """SIGTERM ``process`` (a gateway drains) and wait; SIGKILL past the drain's time."""
    if process.returncode is None:
        with contextlib.suppress(ProcessLookupError):
            process.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(process.wait(), defaults.DRAIN_TIMEOUT_S + 5)
        except asyncio.TimeoutError:
            process.kill()
            await process.wait()


@contextlib.asynccontextmanager
async def supervised(
    gateways: list[tuple[list[str], Any]],
    ready: Callable[[list[str]], None],
    stop: asyncio.Event,
) -> AsyncIterator[tuple[Callable[[list[str]], None], Callable[[], dict[str, int]]]]:
    """Give the ready call of the kernel's server for ``gateways`` (bound by
    :func:`gateways_of`), and a count of each gateway's restarts by wire (the kernel's
    ``server_restarts``, metered at ``/metrics``): once
    the kernel listens it starts each gateway (its ``argv``), then says ``ready`` with
    their URLs added, and supervises them until ``stop``. On exit the gateways stop
    first.

    Raises:
        ServeError: ``cannot-bind``; ``gateway-ended``: a first gateway did not serve.
    """
    supervisors = [Supervisor(argv, sock, server_name(argv)) for argv, sock in gateways]
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
            ready([*addresses, *filter(None, urls), *pages])  # the bridge serves no URL
            await asyncio.gather(*(supervisor.supervise(stop) for supervisor in supervisors))

        tasks.append(asyncio.ensure_future(run()))

    def restarts() -> dict[str, int]:
        return {supervisor.wire: supervisor.restarts for supervisor in supervisors}

    try:
        yield kernel_ready, restarts
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
    from qmk.abi.tcp import bind_tcp, check_tls_files, parse_tcp

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


def server_name(argv: list[str]) -> str:
    """The server a supervised command line runs, as its log lines and the
    ``qmk_server_restarts_total{server}`` label name it: a gateway's wire, or ``dask``
    (the Dask bridge)."""
    if "dask-bridge" in argv:
        return "dask"
    return argv[argv.index("gateway") + 1]


def bridge_of(args: argparse.Namespace, config: Any) -> tuple[list[str], Any]:
    """The Dask bridge ``qmk serve --dask`` starts (:mod:`qmk.kernel.pools.dask_bridge`):
    its command line and the Unix socket it serves the kernel on, bound here in a
    private folder, held across the bridge's restarts (the kernel's line to it waits in
    its backlog meanwhile). It is confined as a gateway is: capped at the workers'
    memory, closed to the data directory.

    Raises:
        ServeError: ``cannot-bind``.
    """
    argv = [sys.executable, "-m", "qmk", "dask-bridge", "--config", str(args.config), "--json"]
    argv += ["--dask", args.dask]
    options: list[tuple[str, Any]] = [
        ("--workers", args.workers),
        ("--dask-tls-ca", args.dask_tls_ca),
        ("--dask-tls-cert", args.dask_tls_cert),
        ("--dask-tls-key", args.dask_tls_key),
        ("--dask-connect-s", args.dask_connect_s),
        ("--log-format", args.log_format),
        ("--log-level", args.log_level),
    ]
    for flag, value in options:
        if value is not None:
            argv += [flag, str(value)]
    for flag, on in (
        ("--dask-insecure", args.dask_insecure),
        ("--dask-dashboard", args.dask_dashboard),
    ):
        if on:
            argv.append(flag)
    argv += ["--memory-mb", str(config.worker_memory_mb)]
    for path in data_hidden(os.path.realpath(args.data_dir)):
        argv += ["--hide", path]
    return argv, BridgeSocket.bind()


class BridgeSocket:
    """The listening Unix socket of the Dask bridge ``qmk serve`` holds, in a folder of
    its own (0700); closing it removes both."""

    def __init__(self, sock: Any, path: str) -> None:
        self.sock = sock
        self.path = path
        self.metrics = None

    @classmethod
    def bind(cls) -> BridgeSocket:
        import tempfile

        from qmk.abi.server import bind_unix

        folder = tempfile.mkdtemp(prefix="qmk-dask-bridge-")
        path = os.path.join(folder, "bridge.sock")
        try:
            sock = bind_unix(Path(path))
        except BaseException:
            os.rmdir(folder)
            raise
        return cls(sock, path)

    def fileno(self) -> int:
        return int(self.sock.fileno())

    def close(self) -> None:
        self.sock.close()
        with contextlib.suppress(OSError):
            os.unlink(self.path)
            os.rmdir(os.path.dirname(self.path))


def kernel_address(argv: list[str], addresses: list[str]) -> list[str]:
    """``argv`` with its ``--kernel`` :data:`BOUND_LATER` made the TCP address the
    kernel bound (one of its listening ``addresses``: ``tcp:HOST:PORT``; a wildcard host
    is reached on the loopback)."""
    if "--kernel" not in argv:  # the Dask bridge: the kernel reaches it
        return argv
    at = argv.index("--kernel") + 1
    if argv[at] != BOUND_LATER:
        return argv
    from qmk.abi.tcp import format_tcp, parse_tcp

    bound = next(a for a in addresses if a.startswith("tcp:"))
    host, port = parse_tcp(bound.removeprefix("tcp:"))
    host = {"0.0.0.0": "127.0.0.1", "::": "::1"}.get(host, host)
    return [*argv[:at], format_tcp((host, port)), *argv[at + 1 :]]


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
def _ready_line(text: str) -> dict[str, Any] | None:
    """The ready line of a gateway started with ``--json`` (its listening URL, metrics
    page and confinement), or None for any other line."""
    if not text.startswith("{"):
        return None
    try:
        line = json.loads(text)
    except ValueError:
        return None
    return line if isinstance(line, dict) and "listening" in line else None


def close_gateways(gateways: list[tuple[list[str], Any]]) -> None:
    """Close the listening sockets of gateways that will not start (the kernel did not)."""
    for _, sock in gateways:
        sock.close()


def gateway_argv(wire: str, kernel_socket: str, args: argparse.Namespace, config: Any) -> list[str]:
    """The command line of the ``wire`` gateway ``qmk serve`` starts: the same Python,
    this kernel's socket, its options, and the ``[http]`` table's host names."""
    argv = [sys.executable, "-m", "qmk", "gateway", wire, "--kernel", kernel_socket, "--json"]
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
    for path in data_hidden(os.path.realpath(args.data_dir)):  # and closed to the data dir
        argv += ["--hide", path]
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
    "READY",
    "RESTART_FIRST_S",
    "RESTART_MOST_S",
    "BridgeSocket",
    "Listening",
    "Supervisor",
    "bridge_of",
    "close_gateways",
    "gateway_argv",
    "gateways_of",
    "kernel_address",
    "server_name",
    "supervised",
]
