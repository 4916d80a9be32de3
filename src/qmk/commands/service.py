"""The service commands: ``qmk serve`` runs a kernel; the others are its clients.

``qmk serve --socket PATH --data-dir DIR --config FILE [--tcp HOST:PORT] [--workers N]``
runs the kernel until SIGTERM or SIGINT, then drains and exits 0, removing its socket.

The client commands (``submit``, ``status``, ``wait``, ``cancel``, ``jobs``,
``telemetry``, ``resources``; the other syscalls' commands are in
:mod:`qmk.commands.syscalls`) take the kernel's address from ``--socket`` or
``QMK_SOCKET`` and the tenant from ``--tenant``/``--key``/``--caps`` or
``QMK_TENANT``/``QMK_KEY``/``QMK_CAPS``. A command is one process, so it has no
session to reuse: each one negotiates a fresh session with the tenant's key. Jobs
belong to the tenant, not to the session, so ``qmk status`` finds a job that an
earlier ``qmk submit`` queued. Prefer ``QMK_KEY`` to ``--key``: other users can
read command lines.

Exit statuses:

- 0: success (for ``wait`` and ``submit --wait``: the job COMPLETED);
- 1: the kernel refused the request, the job ended FAILED/CANCELLED/TIMED_OUT or was
  not final in time, the kernel could not be reached, or the audit log is tampered;
- 2: bad input or usage (including JSON-RPC protocol errors);
- 3: an internal error.

Errors are one line on stderr: ``QS1004 capability-denied: ...``.
"""

from __future__ import annotations

import argparse
import json
import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO, TypeVar

from qmk import defaults
from qmk.abi.errors import CommandError
from qmk.abi.replies import Job, Reply
from qmk.commands import (
    AddCommand,
    is_stim_source,
    limits_of,
    log_options,
    number_text,
    outcome_lines,
    read_source,
    seed_arg,
    shots_arg,
    source_options,
    stim_given,
    stim_options,
)
from qmk.errors import warning_line

if TYPE_CHECKING:
    from qmk.client import Client
    from qmk.kernel.clock import Clock, MachineClock
    from qmk.kernel.pools.workers import PoolFactory

# --------------------------------------------------------------------------- serve


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
    from qmk.abi.server import RepeatFilter, parse_tcp
    from qmk.kernel.config import load_config

    if args.kernel_only and (args.http or args.grpc):
        raise CommandError.of("bad-option", "--kernel-only starts no --http or --grpc")
    socket_path = args.socket or os.environ.get("QMK_SOCKET")
    if not socket_path and not args.tcp:
        raise CommandError.of(
            "bad-option", "qmk serve needs --socket PATH (or QMK_SOCKET) or --tcp"
        )
    config = load_config(args.config)
    limits = dict(config.server)  # the [server] table; --max-line overrides its key
    if args.max_line is not None:
        limits["max_line"] = args.max_line
    server_config = ServerConfig.from_table(
        limits,
        source=str(args.config),
        socket_path=Path(socket_path).absolute() if socket_path else None,
        tcp=parse_tcp(args.tcp) if args.tcp else None,
    )
    # no room for one connection even now: said before the kernel starts its workers (the
    # server checks again once the kernel holds its files)
    connection_room(server_config)
    gateways: list[tuple[list[str], Any]] = []  # --gateway process: supervised wires
    if args.gateway == "process":  # their checks and sockets: last, before the kernel
        http = grpc = None
    else:
        http = _http_config(args)  # --http and its options (qmk.http, the `http` extra)
        grpc = _grpc_config(args)  # --grpc (qmk.grpc, the `grpc` extra)
        if args.grpc_metrics is not None:  # inline, --http's /metrics times gRPC's calls
            raise CommandError.of("bad-option", "--grpc-metrics is the gRPC gateway process's")
    dask_tls = None
    dask_flags: dict[str, Any] = {
        "insecure": args.dask_insecure,
        "dashboard": args.dask_dashboard,
    }
    if args.dask is not None or args.dask_tls_ca or args.dask_tls_cert or args.dask_tls_key:
        from qmk.kernel.pools.dask_options import check_exposure, check_tls, parse_dask

        if args.dask is not None:  # a bad value stops the start before anything runs
            parse_dask(args.dask)
        dask_tls = check_tls(args.dask, args.dask_tls_ca, args.dask_tls_cert, args.dask_tls_key)
        if args.dask is not None:
            check_exposure(args.dask, **dask_flags)
    elif args.dask_insecure or args.dask_dashboard:
        raise CommandError.of("bad-option", "--dask-insecure and --dask-dashboard go with --dask")
    if args.dask_connect_s is not None:
        if args.dask is None:
            raise CommandError.of("bad-option", "--dask-connect-s goes with --dask")
        dask_flags["connect_s"] = args.dask_connect_s
    if args.gateway == "process" and _asks_gateways(args):  # bound here, before the kernel
        from qmk.commands.gateway import gateways_of  # (a kernel without wires loads none)

        gateways = gateways_of(args, server_config, config)
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
                args.dask,
                dask_tls,
                pool_factory,
                args.json,
                clock,
                grpc,
                dask_flags=dask_flags,
                repair_perms=args.repair_perms,
                machine_clock=machine_clock,
                gateways=gateways,
                observe=bool(gateways) or args.kernel_only or http is not None,
            )
        )
    finally:
        logging.getLogger("asyncio").removeHandler(handler)
        logger.removeHandler(handler)
        logger.setLevel(level)
        if gateways:  # their supervisors closed them, unless the kernel never started
            from qmk.commands.gateway import close_gateways

            close_gateways(gateways)
    return 0


def _asks_gateways(args: argparse.Namespace) -> bool:
    """Whether ``args`` name a wire (or a wire's option, which ``gateways_of`` checks):
    the only case in which ``qmk serve --gateway process`` has gateways to start."""
    options = ("http", "grpc", "grpc_metrics", "trace")
    return any(getattr(args, option) is not None for option in options)


async def _serve(
    config: Any,
    data_dir: Path,
    workers: int | None,
    server_config: Any,
    out: TextIO,
    recover: bool = False,
    http: Any = None,
    dask: str | None = None,
    dask_tls: Any = None,
    pool_factory: PoolFactory | None = None,
    as_json: bool = False,
    clock: Clock | None = None,
    grpc: Any = None,
    *,
    dask_flags: dict[str, Any] | None = None,
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
    if dask is not None:  # the jobs run on a Dask cluster (docs/scale-out.md)
        pool = await asyncio.to_thread(
            _dask_pool, dask, config, workers, dask_tls, loop, dask_flags
        )
    try:
        if workers is None:
            kernel = await Kernel.open(
                config,
                data_dir,
                recover=recover,
                repair_perms=repair_perms,
                pool=pool,
                pool_factory=pool_factory,
                clock=clock,
                machine_clock=machine_clock,
            )
        else:
            kernel = await Kernel.open(
                config,
                data_dir,
                workers=workers,
                recover=recover,
                repair_perms=repair_perms,
                pool=pool,
                pool_factory=pool_factory,
                clock=clock,
                machine_clock=machine_clock,
            )
    except BaseException:
        if pool is not None:
            await asyncio.to_thread(pool.shutdown, True, cancel_futures=True)
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
            beside.append(
                await listeners.enter_async_context(_grpc(door, probe, server_config, grpc, stop))
            )
        if gateways:  # the wires in processes of their own, supervised
            from qmk.commands.gateway import supervised

            started: Any = supervised(gateways, ready, stop)
            ready = await listeners.enter_async_context(started)
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

    probe = kernel.feed_desk.probe
    door = Door(kernel, server_config, probe=probe)
    tools = door.visitor("assist", "kernel")

    async def assist_call(method: str, params: dict[str, Any]) -> Any:
        return await door.call(tools, method, params)

    kernel.assist_calls = assist_call
    return door, probe


def _watches(door: Any, probe: Any) -> Any:
    """Where ``q_watch`` finds a job's events on a kernel served on JSON-RPC only: a hub
    of its events, made at the first watch, its streams counted by the door."""
    from qmk.abi.events import HubWatches, through

    call = through(door, door.visitor("jsonrpc", "watches"))
    return HubWatches(call, probe, caps=door.streams)


def _dask_pool(
    text: str,
    config: Any,
    workers: int | None,
    tls: Any = None,
    loop: Any = None,
    flags: dict[str, Any] | None = None,
) -> Any:
    """The pool of ``--dask`` (the dask extra): ``local:N`` or a scheduler's address,
    driven by the kernel's ``loop``."""
    from qmk.kernel.pools.dask_pool import dask_pool

    try:
        import distributed  # noqa: F401
    except ImportError as exc:
        raise CommandError.of(
            "bad-option",
            f"--dask needs the dask extra (pip install 'quantum-microkernel[dask]'): {exc}",
        ) from None
    return dask_pool(text, config, workers=workers, tls=tls, loop=loop, **(flags or {}))


def _http_config(args: argparse.Namespace) -> Any:
    """The HTTP API's config from ``--http`` and its options (None without --http)."""
    given = [
        flag
        for flag, value in (
            ("--tls-cert", args.tls_cert),
            ("--tls-key", args.tls_key),
            ("--trace", args.trace),
        )
        if value is not None
    ]
    if args.http is None:
        if args.grpc is not None:  # --tls-cert/--tls-key serve gRPC over TLS alone
            given = [flag for flag in given if not flag.startswith("--tls-")]
        if given:
            raise CommandError.of("bad-option", f"{given[0]} is an option of --http HOST:PORT")
        return None
    try:
        from qmk.http.server import HttpConfig
    except ImportError as exc:
        raise CommandError.of(
            "bad-option",
            f"--http needs the http extra (pip install 'quantum-microkernel[http]'): {exc}",
        ) from None
    from qmk.abi.server import parse_tcp
    from qmk.http.server import check_tls

    host, port = parse_tcp(args.http)
    config = HttpConfig(
        host=host,
        port=port,
        tls_cert=None if args.tls_cert is None else Path(args.tls_cert),
        tls_key=None if args.tls_key is None else Path(args.tls_key),
        trace=args.trace or "none",
    )
    check_tls(config)  # a certificate that does not load stops the start before the kernel
    return config


def _grpc_config(args: argparse.Namespace) -> Any:
    """The gRPC API's config from ``--grpc`` and the TLS options (None without --grpc)."""
    if args.grpc is None:
        return None
    try:
        from qmk.grpc.server import GrpcConfig, check_credentials, check_free
    except ImportError as exc:
        raise CommandError.of(
            "bad-option",
            f"--grpc needs the grpc extra (pip install 'quantum-microkernel[grpc]'): {exc}",
        ) from None
    from qmk.abi.server import parse_tcp

    host, port = parse_tcp(args.grpc)
    config = GrpcConfig(
        host=host,
        port=port,
        tls_cert=None if args.tls_cert is None else Path(args.tls_cert),
        tls_key=None if args.tls_key is None else Path(args.tls_key),
    )
    check_credentials(config)  # a certificate that does not load stops the start here
    check_free(config)  # so does a port in use, before the kernel opens
    return config


def _grpc(door: Any, probe: Any, server_config: Any, config: Any, stop: Any) -> Any:
    """The gRPC listener behind ``door`` (an async context that yields its URL)."""
    from qmk.grpc.server import grpc_listener

    return grpc_listener(door, probe, config, stop=stop)


# --------------------------------------------------------------------------- clients


def _client(args: argparse.Namespace) -> Client:
    from qmk.client import Client, Timeout

    if not (args.socket or os.environ.get("QMK_SOCKET")):
        raise CommandError.of("bad-option", "no kernel address: pass --socket or set QMK_SOCKET")
    if not (args.tenant or os.environ.get("QMK_TENANT")):
        raise CommandError.of("bad-option", "no tenant: pass --tenant or set QMK_TENANT")
    return Client.connect(
        args.socket,
        tenant=args.tenant,
        key=args.key,
        caps=args.caps,
        timeout=Timeout(call=args.timeout),
    )


def _dump(data: Any, out: TextIO) -> None:
    """``data`` (a reply struct, or plain JSON data) as indented JSON text."""
    if isinstance(data, Reply):
        data = data.to_json()
    out.write(json.dumps(data, ensure_ascii=False, indent=2) + "\n")


def scalar_text(value: Any) -> str:
    """A JSON scalar for people: ``-`` for null, a real with its significant digits
    (:func:`~qmk.commands.number_text`: a small rate is never ``0``).

    >>> scalar_text(None), scalar_text(0.9), scalar_text(1700000000.25), scalar_text(3)
    ('-', '0.9', '1700000000.25', '3')
    >>> scalar_text(2.4e-09)
    '2.4e-09'
    """
    if isinstance(value, float):
        return number_text(value)
    if value is None:
        return "-"
    return str(value)


def when_text(seconds: Any) -> str:
    """Unix seconds as UTC time for people (``-`` for null).

    >>> when_text(1700000000.0)
    '2023-11-14T22:13:20Z'
    """
    import datetime

    if not isinstance(seconds, int | float):
        return "-"
    moment = datetime.datetime.fromtimestamp(seconds, tz=datetime.timezone.utc)
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def fields_text(data: Any, indent: str = "") -> str:
    """A JSON reply as indented ``key: value`` lines, for people (``--json`` gives the
    reply itself); lists of scalars on one line in brackets (a list of one is not read
    as its one value), other lists by index.

    >>> print(fields_text({"a": 1, "b": {"c": [1, 2], "d": None}, "e": [], "f": [0]}), end="")
    a: 1
    b:
      c: [1, 2]
      d: -
    e: (none)
    f: [0]
    """
    lines: list[str] = []
    items = data.items() if isinstance(data, dict) else enumerate(data)
    for key, value in items:
        label = f"{indent}{key}" if isinstance(data, dict) else f"{indent}[{key}]"
        if isinstance(value, dict) and value:
            lines.append(f"{label}:")
            lines.append(fields_text(value, indent + "  ").rstrip("\n"))
        elif (
            isinstance(value, list) and value and all(not isinstance(v, dict | list) for v in value)
        ):
            lines.append(f"{label}: [{', '.join(scalar_text(v) for v in value)}]")
        elif isinstance(value, list) and value:
            lines.append(f"{label}:")
            lines.append(fields_text(value, indent + "  ").rstrip("\n"))
        elif isinstance(value, dict | list):
            lines.append(f"{label}: (none)")
        else:
            lines.append(f"{label}: {scalar_text(value)}")
    return "\n".join(lines) + "\n" if lines else ""


def _job_text(job: Job) -> str:
    lines = [
        f"{job.job_id}  {job.state}  shots {job.shots}  seed {job.seed}  priority {job.priority}"
    ]
    error = job.error
    if error is not None:
        lines.append(f"  error: {error.code} {error.name}: {error.message}")
    result = job.result
    if result:
        lines.append(_outcomes_line(result))
        lines += outcome_lines(result.get("counts", {}), int(result.get("shots") or 1), "    ")
        if "detection" in result or "decode" in result:  # a stim job's, as qmk run says them
            from qmk.execution.stim_target import summary

            lines.append(summary(result, int(result.get("shots") or 1)).rstrip("\n"))
    return "\n".join(lines) + "\n"


def _outcomes_line(result: Mapping[str, Any]) -> str:
    """What ran a job's result and how its outcomes are keyed: a device job's preset and
    backend (keys as ``qmk device run`` writes them), else the engine and events."""
    device = result.get("device")
    if isinstance(device, Mapping):
        return (
            f"  device {device.get('profile') or '(its own hardware)'} on "
            f"{device.get('backend')}; outcomes (keys as qmk device run writes them; "
            "L: a lost atom):"
        )
    events = " ".join(result.get("events", [])) or "(no events)"
    return f"  engine {result.get('engine')}; outcomes (events {events}):"


def _show_job(job: Job, args: argparse.Namespace, out: TextIO) -> None:
    if args.json:
        _dump(job, out)
    else:
        out.write(_job_text(job))


def _wait_status(job: Job, err: TextIO) -> int:
    if job.state == defaults.COMPLETED:
        return 0
    if not job.final:
        err.write(f"{job.job_id}: still {job.state} when the wait ended\n")
    return 1


def _submitted(args: argparse.Namespace) -> tuple[str, Any, dict[str, Any]]:
    """The target the options name (``--lattice-surgery``, ``--device``; else a stim
    circuit's own, ``stim``, and the logical machine for any other, as ``qmk run``
    chooses), the program to submit (a device job's wire form as it is, a stim circuit's
    text, else the source as QVM JSON) and the target's options; the kernel's target
    checks them."""
    from qmk.abi.errors import CommandError

    if args.lattice_surgery and args.device is not None:
        raise CommandError.of(
            "bad-option", "--lattice-surgery and --device name two targets: give one"
        )
    options: dict[str, Any] = stim_given(args)
    if args.device is not None:
        from qmk.devices.neutral_atom.target import is_device_job

        options["preset"] = args.device
        if args.file.endswith(".json"):
            from qmk.devices.neutral_atom.job import read_job

            data = read_job(args.file)
            if is_device_job(data):
                return "neutral-atom", data, options
        graph = read_source(args, args.file, limits_of(args)).to_json()
        return "neutral-atom", graph, options
    if args.block is not None:
        options["block"] = args.block
    if not args.lattice_surgery and is_stim_source(args):
        from qmk.frontends import read_text

        return "stim", {"stim": read_text(args.file)}, options
    graph = read_source(args, args.file, limits_of(args)).to_json()
    return ("lattice-surgery" if args.lattice_surgery else defaults.TARGET), graph, options


def _cmd_submit(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    from qmk.execution.request import submit_policy

    auto = args.source_profile == "auto"  # the kernel's choice (policy.profile), not a name
    if auto:
        args.source_profile = None
    target, graph, options = _submitted(args)
    shots = args.shots
    if shots is None:  # a device job's own shots, else the default
        own = graph.get("shots") if target == "neutral-atom" else None
        shots = own if isinstance(own, int) else defaults.SHOTS
    calibration = None
    if args.calibration is not None:  # read and checked as qmk run --calibration reads it
        from qmk.qec.logical import Calibration

        calibration = Calibration.load(args.calibration)
    policy = submit_policy(
        profile="auto" if auto else None,
        priority=args.priority,
        engine=args.engine,
        noise=False if args.no_noise else None,
        timeout_ms=args.job_timeout_ms,
        noise_model=args.noise_model,  # the kernel reads it as qmk run --noise-model does
        calibration=calibration,
        cache=False if args.no_cache else None,
        error_budget=args.error_budget,  # checked here as the kernel checks policy.error_budget
    )
    if options:  # the target's own options, checked by the kernel's target
        policy = {**(policy or {}), **options}
    with _client(args) as client:
        if args.wait:  # one request: the submit waits as q_wait would (wait_ms)
            job = _submit_waiting(client, args, err, graph, shots, policy, target)
        else:
            job = client.q_submit(graph, shots, args.seed, policy, target=target)
    for notice in job.warnings or []:  # an option that changed nothing (QC130): not fatal
        err.write(warning_line(args.file, notice.to_json()))
    _show_job(job, args, out)
    return _wait_status(job, err) if args.wait else 0


def _cmd_status(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    with _client(args) as client:
        job = client.q_status(args.job)
    _show_job(job, args, out)
    return 0


def _waiting(client: Client, job_id: str, args: argparse.Namespace, err: TextIO) -> Job:
    """``q_wait``, with a spinner on a terminal (not with --quiet or --json)."""
    from qmk.commands.progress import progress_bar

    with progress_bar(None, f"waiting for {job_id}", err, quiet=args.quiet or args.json):
        return client.q_wait(job_id, args.timeout_ms)


def _submit_waiting(
    client: Client,
    args: argparse.Namespace,
    err: TextIO,
    graph: Any,
    shots: int,
    policy: dict[str, Any] | None,
    target: str,
) -> Job:
    """``q_submit`` with ``wait_ms`` (``--timeout-ms``), with a spinner as
    :func:`_waiting`'s."""
    from qmk.commands.progress import progress_bar

    with progress_bar(None, "submitting and waiting", err, quiet=args.quiet or args.json):
        return client.q_submit(
            graph, shots, args.seed, policy, target=target, wait_ms=args.timeout_ms
        )


def _cmd_wait(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    with _client(args) as client:
        job = _waiting(client, args.job, args, err)
    _show_job(job, args, out)
    return _wait_status(job, err)


def _cmd_cancel(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    with _client(args) as client:
        job = client.q_cancel(args.job)
    _show_job(job, args, out)
    return 0


def _cmd_jobs(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    with _client(args) as client:
        listing = client.q_list_jobs(args.state, args.limit)
    if args.json:
        _dump(listing, out)
        return 0
    for job in listing.jobs:
        out.write(f"{job.job_id}  {job.state:<10}  shots {job.shots}  priority {job.priority}\n")
    return 0


def _cmd_telemetry(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    with _client(args) as client:
        reply = client.q_get_telemetry(args.job).to_json()
    out.write(
        json.dumps(reply, ensure_ascii=False, indent=2) + "\n" if args.json else fields_text(reply)
    )
    return 0


def _cmd_resources(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    with _client(args) as client:
        reply = client.q_resource_query().to_json()
    out.write(
        json.dumps(reply, ensure_ascii=False, indent=2) + "\n" if args.json else fields_text(reply)
    )
    return 0


def _cmd_audit_tail(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    """``qmk audit tail``: the tenant's recent audit records (``q_audit``), one a line."""
    with _client(args) as client:
        reply = client.q_audit(args.job, args.limit)
    if args.json:
        out.write(json.dumps(reply.to_json(), ensure_ascii=False, indent=2) + "\n")
        return 0
    for entry in reply.entries:
        out.write(json.dumps(entry, ensure_ascii=False, sort_keys=True) + "\n")
    return 0


def _cmd_audit_events(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    """``qmk audit events``: the tenant's records after a cursor (``q_events``), one a
    line; the cursor to go on from goes to stderr (``--json``: the whole reply)."""
    with _client(args) as client:
        reply = client.q_events(args.after, args.limit, args.wait_ms)
    if args.json:
        out.write(json.dumps(reply.to_json(), ensure_ascii=False, indent=2) + "\n")
        return 0
    for event in reply.events:
        out.write(json.dumps(event, ensure_ascii=False, sort_keys=True) + "\n")
    dropped = f" ({reply.dropped} records no longer held)" if reply.dropped else ""
    err.write(f"cursor {reply.cursor}{dropped}: go on with --after {reply.cursor}\n")
    return 0


def _cmd_load(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    """``qmk load``: the kernel's load and job counters (``q_kernel_load``; CAP_OBSERVE)."""
    with _client(args) as client:
        reply = client.q_kernel_load().to_json()
    out.write(json.dumps(reply, ensure_ascii=False, indent=2) + "\n")
    return 0


def _cmd_audit_verify(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    from qmk.kernel.storage.audit import verify

    try:
        report = verify(args.data_dir)
    except OSError as exc:
        raise CommandError.of(
            "unreadable-data-dir", f"{args.data_dir}: cannot read the audit log: {exc.strerror}"
        ) from None
    if args.json:
        _dump(report.to_json(), out)
    checks = ["hash chain"]
    if report.macs_checked:
        checks.append("MACs")
    if report.head_checked:
        checks.append("database head")
    if report.ok:
        if not args.json:
            out.write(
                f"{args.data_dir}: audit log ok, {report.lines} lines ({', '.join(checks)})\n"
            )
            for line, problems in report.recoveries:
                out.write(
                    f"  line {line}: a kernel started with --recover: {'; '.join(problems)}\n"
                )
        return 0
    err.write(f"{args.data_dir}: tampered at audit line {report.first_bad_line}: {report.reason}\n")
    return 1


def _cmd_audit_replay(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    from qmk.kernel.records.stored import digest_counts
    from qmk.kernel.security.attest import find_attestation, replay
    from qmk.kernel.storage.audit import verify
    from qmk.kernel.storage.store import Store

    try:
        report = verify(args.data_dir)
        record = find_attestation(args.data_dir, args.job)
    except OSError as exc:
        raise CommandError.of(
            "unreadable-data-dir", f"{args.data_dir}: cannot read the audit log: {exc.strerror}"
        ) from None
    if not report.ok:
        err.write(
            f"{args.data_dir}: tampered at audit line {report.first_bad_line}: "
            f"{report.reason}; nothing replayed\n"
        )
        return 1
    if record is None:
        raise CommandError.of(
            "no-attestation", f"{args.data_dir}: no attestation of job {args.job!r}"
        )
    store = Store(args.data_dir, seal_key=_result_key(Path(args.data_dir)))
    try:
        job = store.load_job(args.job, record["tenant"])
    finally:
        store.close()
    if job is None:
        raise CommandError.of(
            "no-attestation", f"{args.data_dir}: job {args.job!r} is attested but not stored"
        )
    damage = job.result_damage or job.program_damage
    if damage is not None:  # (audit verify saw it too: a row edited since)
        err.write(f"{args.job}: {damage['code']} {damage['message']}\n")
        return 1
    found = replay(job.graph, record, args.job)
    stored = None if job.result is None else job.result.get("counts")
    if found.same and isinstance(stored, dict) and digest_counts(stored) != found.recorded:
        err.write(f"{args.job}: the stored counts differ from the attested ones (edited)\n")
        return 1
    if args.json:
        _dump(
            {
                "job_id": found.job_id,
                "same": found.same,
                "shots": found.shots,
                "epochs": found.epochs,
                "recorded_sha256": found.recorded,
                "replayed_sha256": found.replayed,
                "reason": found.reason,
            },
            out,
        )
    elif found.same:
        out.write(
            f"{args.job}: replayed {found.shots} shots over {found.epochs} epochs: the same "
            f"counts (sha256 {found.replayed[:16]}...)\n"
        )
    if not found.same:
        err.write(
            f"{args.job}: {found.reason} (recorded {found.recorded[:16]}..., "
            f"replayed {found.replayed[:16]}...)\n"
        )
        return 1
    return 0


def _result_key(data_dir: Path) -> bytes | None:
    """The key of the results' seals of ``data_dir`` (None without its secret)."""
    from qmk.kernel.datafiles import SECRET_FILE
    from qmk.kernel.security.seals import derive

    try:
        return derive((data_dir / SECRET_FILE).read_bytes(), "result")
    except OSError:
        return None


# --------------------------------------------------------------------------- parsers


#: What a number option's text must be, in the error of a text that is not one.
_NUMBER_WORDS: dict[type, str] = {int: "an integer", float: "a number"}
N = TypeVar("N", int, float)


def _number_in(kind: type[N], low: N, high: N | None = None) -> Callable[[str], N]:
    """An argparse type: a number of ``kind`` in [low, high] (no upper bound when None)."""

    def parse(text: str) -> N:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not {_NUMBER_WORDS[kind]}: {text!r}") from None
        if not (low <= value and (high is None or value <= high)):  # NaN is in no range
            bounds = f"in [{low}, {high}]" if high is not None else f">= {low}"
            raise argparse.ArgumentTypeError(f"must be {bounds}, got {value}")
        return value

    return parse


def _int_in(low: int, high: int | None = None) -> Callable[[str], int]:
    """An argparse type: an integer in [low, high]."""
    return _number_in(int, low, high)


def _float_in(low: float, high: float) -> Callable[[str], float]:
    """An argparse type: a finite number in [low, high]."""
    return _number_in(float, low, high)


def _seconds(text: str) -> float:
    """An argparse type: a finite number of seconds > 0 (a loan's ``--expires-s``, a
    trigger's ``--every``)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"must be a number of seconds > 0, got {text}")
    return value


def wait_options(sub: argparse.ArgumentParser) -> None:
    """``--wait`` (for the job to finish), ``--quiet`` and ``--timeout-ms`` of a command
    that queues a job (submit, restore, replay, device submit)."""
    sub.add_argument("--wait", action="store_true", help="wait for the job to finish")
    sub.add_argument("--quiet", action="store_true", help="no spinner while it waits")
    sub.add_argument(
        "--timeout-ms",
        type=_int_in(0),
        default=defaults.WAIT_TIMEOUT_MS,
        metavar="MS",
        help=f"--wait limit ({defaults.WAIT_TIMEOUT_MS})",
    )


def _client_options(sub: argparse.ArgumentParser) -> None:
    group = sub.add_argument_group("kernel and tenant (default: environment)")
    group.add_argument(
        "--socket", metavar="ADDR", help="kernel address: PATH or HOST:PORT (QMK_SOCKET)"
    )
    group.add_argument("--tenant", metavar="NAME", help="tenant name (QMK_TENANT)")
    group.add_argument("--key", metavar="KEY", help="tenant key (QMK_KEY; prefer the variable)")
    group.add_argument(
        "--caps",
        metavar="CAPS",
        help="capabilities to request, comma-separated (QMK_CAPS; "
        "default: all, the kernel grants those allowed)",
    )
    group.add_argument(
        "--timeout",
        type=float,
        default=defaults.CALL_TIMEOUT_S,
        metavar="S",
        help=f"seconds per call ({defaults.CALL_TIMEOUT_S:g})",
    )
    sub.add_argument("--json", action="store_true", help="print the reply as one JSON document")


def register(add: AddCommand) -> None:
    """Add ``serve``, the client commands and ``audit verify``."""
    sub = add("serve", "run a kernel: JSON-RPC 2.0 over a Unix socket (and optional TCP)")
    sub.add_argument("--socket", metavar="PATH", help="Unix socket path (QMK_SOCKET)")
    sub.add_argument("--data-dir", required=True, metavar="DIR", help="jobs, audit log, secret")
    sub.add_argument("--config", required=True, metavar="FILE", help="kernel config (TOML)")
    sub.add_argument("--tcp", metavar="HOST:PORT", help="also listen on TCP (no TLS)")
    sub.add_argument(
        "--workers",
        type=_int_in(1),
        metavar="N",
        help="worker processes (with --dask: jobs at once; default: the cluster's threads)",
    )
    sub.add_argument(
        "--dask",
        metavar="ADDR",
        help="run jobs on a Dask cluster: tcp://HOST:PORT of its scheduler, or local:N for "
        "N local worker processes (the dask extra; docs/scale-out.md)",
    )
    for option, what in (
        ("ca", "the CA of"),
        ("cert", "the kernel's certificate for"),
        ("key", "the kernel's key for"),
    ):
        sub.add_argument(
            f"--dask-tls-{option}",
            metavar="FILE",
            help=f"{what} TLS to a tls:// Dask scheduler (PEM; the three go together)",
        )
    sub.add_argument(
        "--dask-insecure",
        action="store_true",
        help="accept a tcp:// Dask scheduler (no TLS: whoever reaches it runs code in the "
        "workers; refused otherwise, QK120)",
    )
    sub.add_argument(
        "--dask-connect-s",
        type=_float_in(0.1, 3600.0),
        metavar="SECONDS",
        help="with --dask: how long the start waits for the scheduler to answer (then "
        f"QS1011) and for its first worker ({defaults.DASK_CONNECT_S:g})",
    )
    sub.add_argument(
        "--dask-dashboard",
        action="store_true",
        help="with --dask local:N: serve Dask's dashboard on a free port of 127.0.0.1 "
        "(default: none)",
    )
    sub.add_argument(
        "--max-line",
        type=_int_in(1024),
        metavar="BYTES",
        help=f"longest request line (server.max_line; {defaults.MAX_LINE_BYTES // 2**20} MiB)",
    )
    log_options(sub)
    web = sub.add_argument_group("HTTP API (the http extra; docs/http.md)")
    web.add_argument(
        "--http",
        metavar="HOST:PORT",
        help="also serve the REST API, metrics and the web console (port 0: a free one)",
    )
    web.add_argument(
        "--tls-cert", metavar="PEM", help="serve HTTPS (and gRPC over TLS): the certificate chain"
    )
    web.add_argument(
        "--tls-key", metavar="PEM", help="serve HTTPS (and gRPC over TLS): the private key"
    )
    web.add_argument(
        "--trace",
        metavar="EXPORTER",
        help="OpenTelemetry traces: console, jsonl:PATH, otlp or otlp:URL (default: off)",
    )
    web.add_argument(
        "--gateway",
        choices=("inline", "process"),
        default="process",
        help="serve --http and --grpc each in a gateway process of its own that qmk serve "
        "starts and restarts (process, the default; docs/deploy.md), or in the kernel's "
        "process (inline)",
    )
    rpc = sub.add_argument_group("gRPC API (the grpc extra; docs/grpc.md)")
    rpc.add_argument(
        "--grpc",
        metavar="HOST:PORT",
        help="also serve the gRPC service qmk.v1.Kernel, with health and reflection (port 0: "
        "a free one; TLS with --tls-cert/--tls-key)",
    )
    rpc.add_argument("--grpc-metrics", metavar="HOST:PORT", help="the gRPC gateway's /metrics")
    sub.add_argument(
        "--kernel-only",
        action="store_true",
        help="start the kernel alone (its gateways run as their own commands: qmk gateway)",
    )
    sub.add_argument(
        "--recover",
        action="store_true",
        help="start on a damaged data directory (QK103), recording the damage in the audit log",
    )
    sub.add_argument(
        "--repair-perms",
        action="store_true",
        help="take away other users' access to the data directory's files (else a lax "
        "mode is QK121), recording it in the audit log",
    )
    sub.add_argument(
        "--json",
        action="store_true",
        help="print the listening line as one JSON object {listening, data_dir}",
    )
    sub.set_defaults(run=serve)

    sub = add("submit", "submit a program to a kernel (prints the job; --wait for its result)")
    sub.add_argument("file", metavar="FILE")
    sub.add_argument(
        "--shots",
        type=shots_arg,
        metavar="N",
        help=f"shots ({defaults.SHOTS}; a device job's own with --device)",
    )
    sub.add_argument("--seed", type=seed_arg, metavar="S", help="seed (default: drawn)")
    sub.add_argument(
        "--priority", type=_int_in(0, 9), metavar="P", help=f"priority 0..9 ({defaults.PRIORITY})"
    )
    sub.add_argument(
        "--engine",
        choices=defaults.ENGINES,
        help="engine (default: the router chooses; 'qmk engines' lists those installed)",
    )
    sub.add_argument("--no-noise", action="store_true", help="inject no logical errors")
    sub.add_argument("--job-timeout-ms", type=_int_in(1), metavar="MS", help="job time limit")
    sub.add_argument(
        "--noise-model",
        metavar="MODEL",
        help="physical error rates in place of the machine's, as qmk run --noise-model "
        "(within the kernel's machine.job_noise_models and job_max_error_rate)",
    )
    sub.add_argument(
        "--calibration",
        metavar="FILE.json",
        help="a fitted (a, p*) from qmk qec calibrate --output, in place of the machine's "
        "(if machine.job_calibration allows)",
    )
    sub.add_argument(
        "--no-cache",
        action="store_true",
        help="run the job even if an earlier job of the same run has its result stored",
    )
    sub.add_argument(
        "--error-budget",
        type=float,
        metavar="E",
        help="the idle logical error the shared machine may give the job, in (0, 1] "
        "(policy.error_budget; default: its program's SET_POLICY, else [machine] "
        "error_budget); one no schedule can meet is refused (QK505)",
    )
    sub.add_argument(
        "--lattice-surgery",
        action="store_true",
        help="run it as lattice surgery (the lattice-surgery target, docs/ft-execution.md)",
    )
    sub.add_argument(
        "--block",
        choices=("compact", "intermediate", "fast"),
        help="with --lattice-surgery: Litinski's block the patches are laid out in (fast)",
    )
    sub.add_argument(
        "--device",
        metavar="PRESET",
        help="run it on the neutral-atom device (the neutral-atom target) with this preset "
        "of 'qmk device list': FILE a wire-form device job (JOB.json), or a program "
        "compiled onto the device",
    )
    stim_options(sub)
    wait_options(sub)
    source_options(sub)
    _client_options(sub)
    sub.set_defaults(run=_cmd_submit, syscall="q_submit")

    for name, help_text, handler, syscall in (
        ("status", "print a job's state (and result once COMPLETED)", _cmd_status, "q_status"),
        ("cancel", "cancel a queued or running job", _cmd_cancel, "q_cancel"),
    ):
        sub = add(name, help_text)
        sub.add_argument("job", metavar="JOB")
        _client_options(sub)
        sub.set_defaults(run=handler, syscall=syscall)

    sub = add("wait", "wait for a job to finish; exit 0 when it COMPLETED")
    sub.add_argument("job", metavar="JOB")
    sub.add_argument(
        "--timeout-ms",
        type=_int_in(0),
        default=defaults.WAIT_TIMEOUT_MS,
        metavar="MS",
        help=f"wait limit ({defaults.WAIT_TIMEOUT_MS})",
    )
    sub.add_argument("--quiet", action="store_true", help="no spinner while it waits")
    _client_options(sub)
    sub.set_defaults(run=_cmd_wait, syscall="q_wait")

    sub = add("jobs", "list the tenant's jobs, newest first")
    sub.add_argument("--state", metavar="S", help="only jobs in state S (e.g. RUNNING)")
    sub.add_argument(
        "--limit",
        type=_int_in(1),
        default=defaults.JOBS_LIMIT,
        metavar="N",
        help=f"at most N ({defaults.JOBS_LIMIT})",
    )
    _client_options(sub)
    sub.set_defaults(run=_cmd_jobs, syscall="q_list_jobs")

    sub = add("telemetry", "print a job's telemetry, or the tenant's aggregate")
    sub.add_argument("job", nargs="?", metavar="JOB")
    _client_options(sub)
    sub.set_defaults(run=_cmd_telemetry, syscall="q_get_telemetry")

    sub = add("resources", "print the machine's qubit inventory and the tenant's quota")
    _client_options(sub)
    sub.set_defaults(run=_cmd_resources, syscall="q_resource_query")

    sub = add("audit", "check a kernel's audit log")
    actions = sub.add_subparsers(dest="audit_command", metavar="ACTION", required=True)
    verify = actions.add_parser(
        "verify", help="verify the hash chain of DATA_DIR/audit.log (exit 1 if tampered)"
    )
    verify.add_argument("data_dir", metavar="DATA_DIR")
    verify.add_argument("--json", action="store_true", help="print the report as JSON")
    verify.set_defaults(run=_cmd_audit_verify)
    again = actions.add_parser(
        "replay",
        help="run a completed job again from its attestation and compare the counts "
        "(exit 1 if they differ or the log is tampered)",
    )
    again.add_argument("data_dir", metavar="DATA_DIR")
    again.add_argument("job", metavar="JOB")
    again.add_argument("--json", action="store_true", help="print the finding as JSON")
    again.set_defaults(run=_cmd_audit_replay)
    tail = actions.add_parser(
        "tail", help="print the tenant's recent audit records from a running kernel (q_audit)"
    )
    _client_options(tail)
    tail.add_argument("--job", metavar="JOB", help="only this job's records")
    tail.add_argument(
        "--limit", type=int, default=defaults.AUDIT_LIMIT, metavar="N", help="the newest N"
    )
    tail.set_defaults(run=_cmd_audit_tail, syscall="q_audit")
    events = actions.add_parser(
        "events",
        help="print the tenant's audit records after a cursor from a running kernel (q_events)",
    )
    _client_options(events)
    events.add_argument(
        "--after", type=int, metavar="SEQ", help="the cursor a call before printed (none: now)"
    )
    events.add_argument(
        "--limit", type=int, default=defaults.EVENTS_LIMIT, metavar="N", help="at most N records"
    )
    events.add_argument(
        "--wait-ms", type=int, metavar="MS", help="wait up to MS for the first record"
    )
    events.set_defaults(run=_cmd_audit_events, syscall="q_events")

    sub = add("load", "print a kernel's load and job counters (operators: CAP_OBSERVE)")
    _client_options(sub)
    sub.set_defaults(run=_cmd_load, syscall="q_kernel_load")
