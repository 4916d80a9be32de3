"""``qmk gateway http``: the REST API in a process of its own, and its supervisor.

A gateway is a client of the kernel's JSON-RPC socket (:mod:`qmk.gateway.http`): it
holds no credentials, each request carries its caller's. ``qmk gateway http --kernel
SOCKET --listen HOST:PORT`` runs one alone (a container of its own). ``qmk serve --http
HOST:PORT --gateway process`` starts one beside the kernel through :class:`Supervisor`:
the supervisor binds the port itself and hands the listening socket down, so the port
stays the same and connections wait in its backlog while a gateway restarts; it replaces
a gateway that dies by its warm spare (or a new one), and logs and counts each. The
gateway holds
the read end of a pipe whose write end only the supervisor holds: when the supervisor
dies, even by SIGKILL, the gateway reads end of file and stops (no orphan).
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
from typing import Any, TextIO

from qmk import defaults
from qmk.abi.errors import CommandError, ServeError
from qmk.commands import AddCommand, log_options
from qmk.errors import QMKError
from qmk.kernel.pools.sandbox import data_hidden, name_process

LOG = logging.getLogger("qmk.gateway")

#: The first wait before a gateway that died before it served starts again; it
#: doubles per such death (one that served is replaced at once).
RESTART_FIRST_S = 0.1
#: The longest wait between restarts.
RESTART_MOST_S = 5.0
#: The line a gateway prints once it serves (its URL follows).
READY = "qmk gateway: listening on "
#: The ``--kernel`` of a gateway whose kernel listens on ``--tcp HOST:0``: the port is
#: known once the kernel binds it (:func:`kernel_address`).
BOUND_LATER = "tcp:bound-later"


def run_gateway(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    """``qmk gateway http|grpc``: serve the wire for the kernel at ``--kernel`` until
    SIGTERM, SIGINT or the end of ``--parent-fd``; the exit status.

    Raises:
        QMKError: a bad option, an address that cannot be bound (one line, coded).
    """
    from qmk.abi.limits import ServerConfig
    from qmk.abi.server import format_tcp, parse_tcp

    if (args.metrics is not None or args.metrics_fd is not None) and args.wire != "grpc":
        raise CommandError.of(
            "bad-option", "--metrics is the grpc gateway's (the http gateway serves /metrics)"
        )
    cap_memory(args.memory_mb)  # before the wire's libraries take any
    if (args.listen is None) == (args.listen_fd is None):
        raise CommandError.of("bad-option", f"qmk gateway {args.wire} needs --listen HOST:PORT")
    host, port = parse_tcp(args.listen) if args.listen else (args.bind_host or "0.0.0.0", 0)
    certs = {
        "tls_cert": None if args.tls_cert is None else Path(args.tls_cert),
        "tls_key": None if args.tls_key is None else Path(args.tls_key),
    }
    server_config = ServerConfig.from_table(
        _server_limits(args.server_limits), source="qmk gateway", tcp=("127.0.0.1", 0)
    )
    try:
        if args.wire == "http":
            serve = _http(args, host, port, certs)
        else:
            serve = _grpc(host, port, certs, args.trace)
    except ImportError as exc:  # as qmk serve --http/--grpc says it
        raise CommandError.of(
            "bad-option",
            f"qmk gateway {args.wire} needs the {args.wire} extra (pip install "
            f"'quantum-microkernel[{args.wire}]'): {exc}",
        ) from None
    _log_to(err, args.log_format, args.log_level)
    confinement = _confine(args)
    if args.standby_fd is not None:
        name_process(f"qmk-{args.wire}-spare")
        if not _stood_by(args.standby_fd):
            return 0  # the supervisor went, or closed its spare
    name_process(f"qmk-{args.wire}")

    async def main() -> None:
        from qmk.gateway.http import listening_socket, parent_gone

        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, stop.set)
        if args.parent_fd is not None:
            parent_gone(args.parent_fd, stop)
        sock = None if args.listen_fd is None else listening_socket(args.listen_fd)
        options: dict[str, Any] = {}
        page = ""
        if args.metrics_fd is not None:
            options["metrics"] = metrics = listening_socket(args.metrics_fd)
        elif args.metrics is not None:
            from qmk.http.server import bind_tcp

            options["metrics"] = metrics = bind_tcp(*parse_tcp(args.metrics))
        if "metrics" in options:
            bound = metrics.getsockname()
            page = f"http://{format_tcp(bound)}/metrics"

        def ready(url: str) -> None:
            if args.json:
                line = {
                    "listening": url,
                    "kernel": args.kernel,
                    **({"metrics": page} if page else {}),
                    "confinement": confinement,
                }
                out.write(json.dumps(line) + "\n")
            else:
                out.write(
                    f"{READY}{url} (kernel {args.kernel}{f', metrics {page}' if page else ''})\n"
                )
            out.flush()

        await serve(
            args.kernel,
            server_config,
            sock=sock,
            max_graph_nodes=args.max_graph_nodes,
            ready=ready,
            stop=stop,
            **options,
        )

    asyncio.run(main())
    return 0


def cap_memory(megabytes: int) -> None:
    """Cap this process's address space at ``megabytes`` MiB and write no core file, as
    a worker's rlimits are (:mod:`qmk.kernel.pools.sandbox`): a gateway that grows past
    it fails its allocation (``MemoryError``) or dies, and its supervisor starts another,
    while the kernel's memory is untouched.

    Raises:
        CommandError: ``bad-option``: the cap is under 64 MiB or above this process's
            hard limit.
    """
    import resource

    if megabytes < 64:
        raise CommandError.of("bad-option", f"--memory-mb must be 64 or more, got {megabytes}")
    cap = megabytes * 2**20
    hard = resource.getrlimit(resource.RLIMIT_AS)[1]
    if hard != resource.RLIM_INFINITY and cap > hard:
        raise CommandError.of(
            "bad-option", f"--memory-mb {megabytes} is above this process's hard limit"
        )
    resource.setrlimit(resource.RLIMIT_AS, (cap, hard))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))


def _stood_by(fd: int) -> bool:
    """Wait as a warm spare until the supervisor writes a byte on ``fd`` (serve now:
    True) or closes it (False)."""
    try:
        return os.read(fd, 1) != b""
    finally:
        os.close(fd)


def _confine(args: argparse.Namespace) -> dict[str, Any]:
    """Confine this gateway (:func:`qmk.kernel.pools.sandbox.confine_server`): no read
    of the ``--hide`` directories, writes only to a ``jsonl:`` trace's folder. What holds
    is logged, and each gap as a warning, as the kernel logs its workers'; the report."""
    import dataclasses

    from qmk.kernel.pools.sandbox import confine_server

    writable = []
    if args.trace and args.trace.startswith("jsonl:"):
        writable.append(os.path.dirname(os.path.abspath(args.trace.removeprefix("jsonl:"))))
    report = confine_server(tuple(args.hide or ()), writable)
    report = dataclasses.replace(report, memory_mb=args.memory_mb)
    if report.filesystem:
        LOG.info("gateway confined: %s", report.filesystem)
    for gap in report.gaps:
        LOG.warning("gateway isolation gap: %s", gap)
    return report.to_json()


def _server_limits(text: str | None) -> dict[str, Any]:
    """The ``[server]`` table of ``--server-limits`` (none: the defaults).

    Raises:
        CommandError: ``bad-option``: it is no JSON object.
    """
    if text is None:
        return {}
    try:
        table = json.loads(text)
    except ValueError as exc:
        raise CommandError.of("bad-option", f"--server-limits is no JSON: {exc}") from None
    if not isinstance(table, dict):
        raise CommandError.of("bad-option", "--server-limits must be one JSON object")
    return table


def _http(args: argparse.Namespace, host: str, port: int, certs: dict[str, Any]) -> Any:
    """The HTTP gateway's serve call, its config and exposure bound."""
    from qmk.gateway.http import serve_gateway
    from qmk.http.app import Exposure
    from qmk.http.server import HttpConfig

    config = HttpConfig(host=host, port=port, trace=args.trace or "none", **certs)
    exposure = Exposure.of(_HostsTable(tuple(args.allowed_host or ())), args.bind_host or host)

    def serve(kernel: str, server_config: Any, **options: Any) -> Any:
        return serve_gateway(kernel, server_config, config, exposure=exposure, **options)

    return serve


def _grpc(host: str, port: int, certs: dict[str, Any], trace: str | None) -> Any:
    """The gRPC gateway's serve call, its config and tracer bound."""
    from qmk.gateway.grpc import serve_grpc_gateway
    from qmk.grpc.server import GrpcConfig, check_credentials

    config = GrpcConfig(host=host, port=port, **certs)
    check_credentials(config)

    def serve(kernel: str, server_config: Any, **options: Any) -> Any:
        return serve_grpc_gateway(kernel, server_config, config, trace=trace or "none", **options)

    return serve


def _log_to(err: TextIO, log_format: str, level: str) -> None:
    """The ``qmk`` loggers' lines to ``err``, as ``qmk serve`` writes its own: every
    request's and job's line, other like lines kept short."""
    from qmk.abi.logs import EVERY_LINE, Except, JsonFormatter
    from qmk.abi.server import RepeatFilter

    handler = logging.StreamHandler(err)
    if log_format == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("qmk gateway: %(levelname)s %(name)s: %(message)s"))
    handler.addFilter(Except(RepeatFilter(), EVERY_LINE))
    logger = logging.getLogger("qmk")
    logger.addHandler(handler)
    logger.setLevel(getattr(logging, level.upper()))


@dataclass(frozen=True, slots=True)
class _HostsTable:
    """The part of the kernel's ``[http]`` table a gateway is told on its command line."""

    allowed_hosts: tuple[str, ...]
    metrics_token: str | None = None


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
    _closing: bool = False

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
                "gateway-ended", f"the {self.wire} gateway ended before it served (its lines above)"
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
        process = await asyncio.create_subprocess_exec(
            *argv,
            stdout=subprocess.PIPE,
            pass_fds=fds,
            start_new_session=True,  # a terminal's ^C reaches qmk serve, which stops it
        )
        assert process.stdout is not None
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
            LOG.warning("the %s gateway's spare did not start: %s", self.wire, exc)
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
            ended = asyncio.ensure_future(self._process.wait())
            stopping = asyncio.ensure_future(stop.wait())
            await asyncio.wait([ended, stopping], return_when=asyncio.FIRST_COMPLETED)
            stopping.cancel()
            if stop.is_set():
                ended.cancel()
                break
            dead = self._process
            if dead.pid in self._served:  # it served: replaced at once
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
                "the %s gateway (pid %s) ended with %s; restart %d %s",
                self.wire,
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
    from qmk.abi.server import format_tcp, parse_tcp

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


def register(add: AddCommand) -> None:
    """Add ``gateway``."""
    sub = add("gateway", "run a wire's gateway in a process of its own", limits=False)
    sub.add_argument("wire", choices=("http", "grpc"), help="the wire it serves")
    sub.add_argument(
        "--kernel", required=True, metavar="SOCKET", help="the kernel's Unix socket (or HOST:PORT)"
    )
    sub.add_argument("--listen", metavar="HOST:PORT", help="where it listens (port 0: a free one)")
    sub.add_argument("--listen-fd", type=int, metavar="FD", help=argparse.SUPPRESS)
    sub.add_argument("--parent-fd", type=int, metavar="FD", help=argparse.SUPPRESS)
    sub.add_argument("--bind-host", metavar="HOST", help=argparse.SUPPRESS)
    sub.add_argument("--metrics-fd", type=int, metavar="FD", help=argparse.SUPPRESS)
    sub.add_argument("--standby-fd", type=int, metavar="FD", help=argparse.SUPPRESS)
    sub.add_argument(
        "--allowed-host",
        action="append",
        metavar="NAME",
        help="a Host name it answers besides the loopback ones and its own ([http] allowed_hosts)",
    )
    sub.add_argument(
        "--max-graph-nodes",
        type=int,
        default=defaults.MAX_GRAPH_NODES,
        metavar="N",
        help="the most nodes a program it reads may lower to (the kernel's "
        f"kernel.max_graph_nodes; {defaults.MAX_GRAPH_NODES})",
    )
    sub.add_argument(
        "--memory-mb",
        type=int,
        default=defaults.WORKER_MEMORY_MB,
        metavar="MIB",
        help="its address-space cap, as a worker's (RLIMIT_AS; qmk serve passes the "
        f"kernel's kernel.worker_memory_mb; {defaults.WORKER_MEMORY_MB})",
    )
    sub.add_argument(
        "--hide",
        action="append",
        metavar="DIR",
        help="a directory it may neither read nor write (Landlock; qmk serve passes its "
        "data directory); it writes nowhere but a jsonl: trace's folder",
    )
    sub.add_argument(
        "--server-limits",
        metavar="JSON",
        help="its door's limits: the kernel's [server] table as one JSON object "
        "(qmk serve --gateway process passes its own; default: the defaults)",
    )
    sub.add_argument("--tls-cert", metavar="PEM", help="serve over TLS: the certificate chain")
    sub.add_argument("--tls-key", metavar="PEM", help="serve over TLS: the private key")
    sub.add_argument(
        "--trace",
        metavar="EXPORTER",
        help="OpenTelemetry traces (http: requests, jobs; grpc: its calls): console, "
        "jsonl:PATH, otlp or otlp:URL (default: off)",
    )
    sub.add_argument(
        "--metrics",
        metavar="HOST:PORT",
        help="grpc: also serve GET /metrics over HTTP there (a scraper holding CAP_OBSERVE; "
        "port 0: a free one, named on the listening line)",
    )
    log_options(sub)
    sub.add_argument(
        "--json",
        action="store_true",
        help="print the listening line as one JSON object {listening, kernel}",
    )
    sub.set_defaults(run=run_gateway)


__all__ = [
    "READY",
    "Listening",
    "Supervisor",
    "cap_memory",
    "close_gateways",
    "gateway_argv",
    "gateways_of",
    "kernel_address",
    "register",
    "run_gateway",
    "supervised",
]
