"""``qmk gateway http``: the REST API (or gRPC) in a process of its own.

A gateway is a client of the kernel's JSON-RPC socket (:mod:`qmk.gateway.http`): it
holds no credentials, each request carries its caller's. ``qmk gateway http --kernel
SOCKET --listen HOST:PORT`` runs one alone (a container of its own). ``qmk serve --http
HOST:PORT --gateway process`` starts one beside the kernel, with a warm spare, and
replaces it when it dies (:mod:`qmk.serve.gateways`); it hands the gateway its listening
socket and the read end of a pipe whose end stops it (no orphan). A gateway confines
itself as it starts (:func:`qmk.kernel.pools.confine.confine_server`).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import signal
from pathlib import Path
from typing import Any, TextIO

from qmk import defaults
from qmk.abi.errors import CommandError
from qmk.commands import AddCommand, log_options
from qmk.kernel.pools.confine import name_process
from qmk.serve.gateways import READY

LOG = logging.getLogger("qmk.gateway")


def run_gateway(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    """``qmk gateway http|grpc``: serve the wire for the kernel at ``--kernel`` until
    SIGTERM, SIGINT or the end of ``--parent-fd``; the exit status.

    Raises:
        QMKError: a bad option, an address that cannot be bound (one line, coded).
    """
    from qmk.abi.limits import ServerConfig
    from qmk.abi.tcp import format_tcp, parse_tcp

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
    if args.parent_fd is not None:
        # qmk serve runs it in a process group of its own, a background one of the
        # terminal's session: under `stty tostop` its first log line would stop it
        signal.signal(signal.SIGTTOU, signal.SIG_IGN)
    log_to(err, args.log_format, args.log_level)
    confinement = _confine(args)
    if args.standby_fd is not None:
        name_process(f"qmk-{args.wire}-spare")
        if not stood_by(args.standby_fd):
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
    """Cap this process's address space at ``megabytes`` MiB, as a worker's is: a gateway
    that grows past it fails its allocation (``MemoryError``) or dies, and its supervisor
    starts another, while the kernel's memory is untouched. (Its core file is closed
    with the rest of its confinement: :func:`_confine`.)

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


def stood_by(fd: int) -> bool:
    """Wait as a warm spare until the supervisor writes a byte on ``fd`` (serve now:
    True) or closes it (False)."""
    try:
        return os.read(fd, 1) != b""
    finally:
        os.close(fd)


def _confine(args: argparse.Namespace) -> dict[str, Any]:
    """Confine this gateway (:func:`qmk.kernel.pools.confine.confine_server`): no read
    of the ``--hide`` directories, writes only to a ``jsonl:`` trace's folder. What holds
    is logged, and each gap as a warning, as the kernel logs its workers'; the report."""
    import dataclasses

    from qmk.kernel.pools.confine import confine_server

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
    exposure = Exposure.of(args.allowed_host or (), args.bind_host or host)

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


def log_to(err: TextIO, log_format: str, level: str, who: str = "gateway") -> None:
    """The ``qmk`` loggers' lines to ``err``, as ``qmk serve`` writes its own: every
    request's and job's line, other like lines kept short; a text line names ``qmk who``.
    Info lines go a batch at a time (:class:`~qmk.gateway.logs.BatchedStreamHandler`),
    and a record leaves out the thread and process names no line of ours writes."""
    from qmk.abi.logs import EVERY_LINE, Except, JsonFormatter
    from qmk.abi.server import RepeatFilter
    from qmk.gateway.logs import BatchedStreamHandler

    logging.logThreads = logging.logProcesses = logging.logMultiprocessing = False
    handler = BatchedStreamHandler(err)
    if log_format == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter(f"qmk {who}: %(levelname)s %(name)s: %(message)s"))
    handler.addFilter(Except(RepeatFilter(), EVERY_LINE))
    logger = logging.getLogger("qmk")
    logger.addHandler(handler)
    logger.setLevel(getattr(logging, level.upper()))


def supervised_options(sub: argparse.ArgumentParser) -> None:
    """The descriptors ``qmk serve``'s supervisor hands a server it starts: its listening
    socket, its parent's end (the server ends with it) and a warm spare's wake-up."""
    for name in ("--listen-fd", "--parent-fd", "--standby-fd"):
        sub.add_argument(name, type=int, metavar="FD", help=argparse.SUPPRESS)


def confinement_options(sub: argparse.ArgumentParser, writes: str = "") -> None:
    """A server's confinement, as a worker's: its memory cap and the directories it may
    not reach (``writes``: what the help adds about where it writes)."""
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
        f"data directory){writes}",
    )


def register(add: AddCommand) -> None:
    """Add ``gateway``."""
    sub = add("gateway", "run a wire's gateway in a process of its own", limits=False)
    sub.add_argument("wire", choices=("http", "grpc"), help="the wire it serves")
    sub.add_argument(
        "--kernel", required=True, metavar="SOCKET", help="the kernel's Unix socket (or HOST:PORT)"
    )
    sub.add_argument("--listen", metavar="HOST:PORT", help="where it listens (port 0: a free one)")
    supervised_options(sub)
    sub.add_argument("--bind-host", metavar="HOST", help=argparse.SUPPRESS)
    sub.add_argument("--metrics-fd", type=int, metavar="FD", help=argparse.SUPPRESS)
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
    confinement_options(sub, "; it writes nowhere but a jsonl: trace's folder")
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
    "cap_memory",
    "confinement_options",
    "log_to",
    "register",
    "run_gateway",
    "stood_by",
    "supervised_options",
]
