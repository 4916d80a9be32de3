"""The kernel process's entry: ``qmk serve`` runs a kernel until SIGTERM or SIGINT.

``python -m qmk.serve --socket PATH --data-dir DIR --config FILE [...]`` is the kernel
process, and ``qmk serve`` replaces its own process with it (:func:`qmk.cli.entry`, one
process id), so the kernel process never loads the command line and the other commands
(issue 79: its trusted core). It drains and exits 0 on a stop signal, removing its
socket. Its options are :mod:`qmk.serve.options`'s, which ``qmk serve`` reads and checks
before it becomes the kernel, so the kernel holds none of their table.
Errors are one coded line on stderr, with the exit statuses of ``qmk`` (2: bad usage or
config; 3: an internal error).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn, TextIO

from qmk import defaults
from qmk.abi.errors import CommandError
from qmk.errors import QMKError, one_line

if TYPE_CHECKING:
    from qmk.kernel.clock import Clock, MachineClock
    from qmk.kernel.pools.workers import PoolFactory


def serve(
    args: argparse.Namespace,
    out: TextIO,
    err: TextIO,
    *,
    pool_factory: PoolFactory | None = None,
    clock: Clock | None = None,
    machine_clock: MachineClock | None = None,
) -> int:
    """``qmk serve``: run a kernel on ``args`` (the command's parsed arguments) until
    SIGTERM or SIGINT; the exit status.

    ``pool_factory`` makes the kernel's local pool in place of
    :func:`~qmk.kernel.pools.workers.kernel_pool` (``Kernel.open(pool_factory=...)``; not
    with ``--dask``): a real server on a pool of a
    :class:`~qmk.kernel.pools.pool.WorkerPool` subclass, as the tests' ``python -m
    support.serve`` runs one with their gates. ``clock`` is the kernel's clock in place of
    the system's (``Kernel.open(clock=...)``): the tests' server runs on one whose time
    they move, so expiries happen when a test says. ``machine_clock`` is the shared
    machine's (``Kernel.open(machine_clock=...)``): the tests' server holds it until
    every job of a test has arrived, so their arrivals are the same in every run.

    Raises:
        QMKError: a bad option or config, an unusable data directory (one line, coded).
    """
    import asyncio
    import logging

    from qmk.abi.door import connection_room
    from qmk.abi.limits import ServerConfig
    from qmk.abi.server import RepeatFilter
    from qmk.kernel.config import load_config

    if args.kernel_only and (args.http or args.grpc):
        raise CommandError.of("bad-option", "--kernel-only starts no --http or --grpc")
    if args.kernel_only and args.dask:
        raise CommandError.of(
            "bad-option",
            "--kernel-only starts no Dask bridge: run qmk dask-bridge --listen PATH --dask "
            "ADDR, and qmk serve --dask-bridge PATH",
        )
    socket_path = args.socket or os.environ.get("QMK_SOCKET")
    if not socket_path and not args.tcp:
        raise CommandError.of(
            "bad-option", "qmk serve needs --socket PATH (or QMK_SOCKET) or --tcp"
        )
    config = load_config(args.config, physics=False)  # its planner checks the physics
    limits = dict(config.server)  # the [server] table; --max-line overrides its key
    if args.max_line is not None:
        limits["max_line"] = args.max_line
    tcp = None
    if args.tcp:  # (qmk.abi.tcp: only where a TCP address is asked)
        from qmk.abi.tcp import parse_tcp

        tcp = parse_tcp(args.tcp)
    server_config = ServerConfig.from_table(
        limits,
        source=str(args.config),
        socket_path=Path(socket_path).absolute() if socket_path else None,
        tcp=tcp,
    )
    # no room for one connection even now: said before the kernel starts its workers (the
    # server checks again once the kernel holds its files)
    connection_room(server_config)
    gateways: list[tuple[list[str], Any]] = []  # --gateway process: supervised wires
    if args.gateway == "process":  # their checks and sockets: last, before the kernel
        http = grpc = None
    else:
        from qmk.serve.inline import grpc_config, http_config  # --gateway inline only

        http = http_config(args)  # --http and its options (qmk.http, the `http` extra)
        grpc = grpc_config(args)  # --grpc (qmk.grpc, the `grpc` extra)
        if args.grpc_metrics is not None:  # inline, --http's /metrics times gRPC's calls
            raise CommandError.of("bad-option", "--grpc-metrics is the gRPC gateway process's")
    if _asks_dask(args):  # a bad --dask stops the start before anything runs
        from qmk.serve.dask import check_dask  # (a kernel without Dask loads none of it)

        check_dask(args)
    if args.gateway == "process" and _asks_gateways(args):  # bound here, before the kernel
        from qmk.serve.gateways import gateways_of  # (a kernel without wires loads none)

        gateways = gateways_of(args, server_config, config)
    observe = bool(gateways) or args.kernel_only or http is not None
    bridge = args.dask_bridge  # the Dask bridge's socket: one started alone, or None
    if args.dask is not None:  # one started and supervised here
        from qmk.serve.dask import bridge_for

        bridge = bridge_for(args, config, gateways)
    handler = logging.StreamHandler(err)
    if args.log_format == "json":
        from qmk.abi.logs import JsonFormatter

        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("qmk serve: %(levelname)s %(name)s: %(message)s"))
    repeats = RepeatFilter()  # a flood of like lines (refusals, EMFILE) stays short
    if http is not None:  # but every request and job transition of the HTTP API is a line
        from qmk.abi.logs import EVERY_LINE, Except

        handler.addFilter(Except(repeats, EVERY_LINE))
    else:
        handler.addFilter(repeats)
    logger = logging.getLogger("qmk")
    level = logger.level
    logger.addHandler(handler)
    logger.setLevel(getattr(logging, args.log_level.upper()))
    logging.getLogger("asyncio").addHandler(handler)  # its accept errors, rate-limited too
    try:
        asyncio.run(
            _serve(
                config,
                Path(args.data_dir),
                args.workers,
                server_config,
                out,
                args.recover,
                http,
                bridge,
                pool_factory,
                args.json,
                clock,
                grpc,
                repair_perms=args.repair_perms,
                machine_clock=machine_clock,
                gateways=gateways,
                observe=observe,
            )
        )
    finally:
        logging.getLogger("asyncio").removeHandler(handler)
        logger.removeHandler(handler)
        logger.setLevel(level)
        if gateways:  # their supervisors closed them, unless the kernel never started
            from qmk.serve.gateways import close_gateways

            close_gateways(gateways)
    return 0


def _asks_gateways(args: argparse.Namespace) -> bool:
    """Whether ``args`` name a wire (or a wire's option, which ``gateways_of`` checks):
    the only case in which ``qmk serve --gateway process`` has gateways to start."""
    options = ("http", "grpc", "grpc_metrics", "trace")
    return any(getattr(args, option) is not None for option in options)


def _asks_dask(args: argparse.Namespace) -> bool:
    """Whether ``args`` give a Dask option (:func:`qmk.serve.dask.check_dask` checks them)."""
    tls = (args.dask_tls_ca, args.dask_tls_cert, args.dask_tls_key)
    flags = args.dask_insecure or args.dask_dashboard or args.dask_connect_s is not None
    return args.dask is not None or any(tls) or bool(flags)


async def _serve(
    config: Any,
    data_dir: Path,
    workers: int | None,
    server_config: Any,
    out: TextIO,
    recover: bool = False,
    http: Any = None,
    bridge: str | None = None,
    pool_factory: PoolFactory | None = None,
    as_json: bool = False,
    clock: Clock | None = None,
    grpc: Any = None,
    *,
    repair_perms: bool = False,
    machine_clock: MachineClock | None = None,
    gateways: list[tuple[list[str], Any]] | None = None,
    observe: bool = False,
) -> None:
    """Serve the kernel until a stop signal; ``observe``: an HTTP API serves it (inline,
    or gateways in processes of their own, or maybe: ``--kernel-only``), so it keeps its
    event feed and job counters from its start (:class:`~qmk.kernel.syscalls.feed.
    FeedDesk`), for ``/metrics``' ``q_kernel_load``."""
    import asyncio
    import contextlib
    import logging
    import signal

    from qmk.abi.server import serve_kernel
    from qmk.kernel.service import Kernel

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
            loop.add_signal_handler(signum, stop.set)
    pool = None
    if bridge is not None:  # the jobs run on a Dask cluster, through its bridge
        from qmk.serve.dask import bridge_pool

        pool = bridge_pool(bridge, config, loop)
    sized = {} if workers is None else {"workers": workers}  # else the kernel's default
    try:
        kernel = await Kernel.open(
            config,
            data_dir,
            recover=recover,
            repair_perms=repair_perms,
            pool=pool,
            pool_factory=pool_factory,
            clock=clock,
            machine_clock=machine_clock,
            **sized,
        )
    except BaseException:
        if pool is not None:
            pool.shutdown(True, cancel_futures=True)
        raise
    listeners = contextlib.AsyncExitStack()
    try:
        if stop.is_set():
            return
        beside: list[str] = []  # the gRPC listener's URL, after the others' addresses

        def ready(addresses: list[str]) -> None:
            addresses = [*addresses, *beside]
            settle()
            if as_json:  # one JSON document, on one line
                out.write(json.dumps({"listening": addresses, "data_dir": str(data_dir)}) + "\n")
            else:
                out.write(f"qmk serve: listening on {' '.join(addresses)} (data dir {data_dir})\n")
            out.flush()
            log = logging.getLogger("qmk.kernel")
            for notice in kernel.warnings:  # a plain-text key (QK402): said, not fatal
                log.warning("warning: %s %s: %s", notice["code"], notice["name"], notice["message"])

        door, probe = _door(kernel, server_config)  # every listener's one door
        if observe:
            kernel.feed_desk.start()
        if grpc is not None:  # it drains beside the others once stop is set
            from qmk.grpc.server import grpc_listener

            listener = grpc_listener(door, probe, grpc, stop=stop)
            beside.append(await listeners.enter_async_context(listener))
        if gateways:  # the wires in processes of their own, supervised
            from qmk.serve.gateways import supervised

            started: Any = supervised(gateways, ready, stop)
            ready, kernel.server_restarts = await listeners.enter_async_context(started)
        if http is None:
            watches = _watches(door, probe)
            await serve_kernel(
                kernel, server_config, ready=ready, stop=stop, watches=watches, door=door
            )
        else:
            from qmk.http.server import serve_with_http

            await serve_with_http(
                kernel, probe, server_config, http, ready=ready, stop=stop, door=door
            )
    finally:
        try:
            await listeners.aclose()  # the gRPC listener, if any, before the kernel
            await kernel.close()
        finally:
            _ignore_stop_signals(loop)


def _ignore_stop_signals(loop: Any) -> None:
    """After the kernel closed, SIGTERM and SIGINT change nothing to the process's end.

    The loop's handlers only set the stop event (a second signal while the kernel closes
    changes nothing). Once they are gone, the default action would end the process
    (exit -15, or a KeyboardInterrupt) when a second stop signal comes late. That
    happens: a Ctrl-C in a terminal reaches the kernel and the script that started it,
    which then sends a SIGTERM of its own. Both are blocked while the loop's handler
    gives way to SIG_IGN, so none meets the default action in between.
    """
    import contextlib
    import signal

    stops = {signal.SIGTERM, signal.SIGINT}
    with contextlib.suppress(ValueError, OSError, AttributeError, NotImplementedError):
        # not the main thread (or no POSIX signals): nothing to keep
        blocked = signal.pthread_sigmask(signal.SIG_BLOCK, stops)
        try:
            for signum in stops:
                loop.remove_signal_handler(signum)
                signal.signal(signum, signal.SIG_IGN)
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, blocked)


def settle() -> None:
    """Put what the kernel made to start (its modules, config, the shared machine's
    floorplan) out of the cyclic collector's reach, once every listener is up.

    The collector walks every container it tracks, item by item, at each collection of
    its generation. What a kernel builds to start lives to its end, yet each collection
    would walk it. The shared machine's free-tile trees alone are lists of millions of
    items at ``physical_qubits = 10**8``. Every collection that met them would hold the
    event loop, a stall another tenant sees (``docs/door.md``, ``fd-flood``). Collected
    once here, then frozen (:func:`gc.freeze`): later collections walk only what was
    made since.
    """
    import gc

    gc.collect()
    gc.freeze()


def _door(kernel: Any, server_config: Any) -> tuple[Any, Any]:
    """The door every listener of ``kernel`` shares (:mod:`qmk.abi.door`), and the
    kernel's probe it reads sessions and CPU budgets through. The assistant's tools
    make their syscalls through it too, as callers of the wire ``assist``."""
    from qmk.abi.door import Door

    probe = kernel.observer
    door = Door(kernel, server_config, probe=probe)
    tools = door.visitor("assist", "kernel")

    async def assist_call(method: str, params: dict[str, Any]) -> Any:
        return await door.call(tools, method, params)

    kernel.assist_calls = assist_call
    return door, probe


def _watches(door: Any, probe: Any) -> Any:
    """Where ``q_watch`` finds a job's events on a kernel served on JSON-RPC only: a hub
    of its events, made at the first watch, its streams counted by the door."""
    from qmk.abi.watchhub import HubWatches, through

    call = through(door, door.visitor("jsonrpc", "watches"))
    return HubWatches(call, probe, caps=door.streams)


#: The entry's first argument where what follows is ``qmk serve``'s options as the
#: command line read them (one JSON object: :func:`exec_entry`, :func:`options_of`).
CHECKED = "--checked-options"


def options_of(argv: Sequence[str]) -> argparse.Namespace:
    """The kernel's options in ``argv``: those ``qmk serve`` read and checked
    (:data:`CHECKED` and their JSON), taken as they are, or plain options, read with
    :func:`qmk.serve.options.parser` (``python -m qmk.serve --socket ...``).

    Raises:
        CommandError: ``QW011 bad-option``: plain options that do not read.
    """
    if len(argv) == 2 and argv[0] == CHECKED:
        return argparse.Namespace(**json.loads(argv[1]))
    from qmk.serve.options import parser  # options not checked yet: read here

    return parser().parse_args(argv)


def main(
    argv: Sequence[str] | None = None, *, stdout: TextIO | None = None, stderr: TextIO | None = None
) -> int:
    """Run the kernel on ``argv`` (:func:`options_of`); its exit status."""
    out = stdout or sys.stdout
    err = stderr or sys.stderr
    try:
        args = options_of(sys.argv[1:] if argv is None else argv)
        return serve(args, out, err)
    except SystemExit as exc:  # --help
        return int(exc.code or 0)
    except QMKError as exc:
        err.write(f"{exc}\n")
        return exc.exit_status
    except Exception as exc:
        if os.environ.get("QMK_DEBUG"):
            raise
        said = one_line(exc)
        err.write(f"qmk: internal error {type(exc).__name__}: {said} (QMK_DEBUG=1 shows more)\n")
        return 3


def entry() -> None:
    """``python -m qmk.serve``: the kernel process."""
    import gc

    gc.set_threshold(*defaults.GC_THRESHOLDS)
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        sys.exit(130)


def exec_entry(argv: Sequence[str]) -> NoReturn:
    """Replace this process with the kernel's entry on ``argv`` (``qmk serve``'s
    arguments), read and checked here (:data:`CHECKED`): the same Python, its options,
    the same process id. A usage mistake is said here, as the entry would say it."""
    import subprocess

    from qmk.serve.options import parser

    try:
        args = parser().parse_args(argv)  # --help: argparse prints it and exits
    except QMKError as exc:
        sys.stderr.write(f"{exc}\n")
        sys.exit(exc.exit_status)
    # -X, -W, -O as given to this Python: multiprocessing's way to start another
    flags: list[str] = subprocess._args_from_interpreter_flags()  # type: ignore[attr-defined]
    sys.stdout.flush()
    sys.stderr.flush()
    checked = [CHECKED, json.dumps(vars(args))]
    os.execv(sys.executable, [sys.executable, *flags, "-m", "qmk.serve", *checked])


__all__ = [
    "CHECKED",
    "entry",
    "exec_entry",
    "main",
    "options_of",
    "serve",
    "settle",
]
