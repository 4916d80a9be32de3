"""``qmk dask-bridge``: the kernel's jobs on a Dask cluster, from a process of its own.

The bridge (:mod:`qmk.kernel.pools.dask_bridge`) holds the Dask client and runs the
kernel's jobs on the cluster; the kernel connects to its Unix socket and hands it jobs
over the worker wire. ``qmk dask-bridge --listen PATH --dask ADDR --config FILE`` runs
one alone (a container of its own, its socket on a volume it shares with the kernel's,
which runs ``qmk serve --kernel-only --dask-bridge PATH``). ``qmk serve --dask ADDR`` starts one
itself, with a warm spare, and replaces it when it dies (:mod:`qmk.serve.gateways`).
The spare of a ``local:N`` bridge stands by with its pool made: its own cluster
started, its plugins registered and its workers' job processes started, so a promoted
spare serves at once (a cluster's start was most of a cold bridge's). The spare of a
shared cluster's bridge connects once promoted (the scheduler is up already).
It is confined as a gateway is: its memory capped as a worker's, the data directory
closed to it (``--hide``).
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import logging
import os
import signal
from pathlib import Path
from typing import Any, TextIO

from qmk.abi.errors import CommandError
from qmk.commands import AddCommand, log_options

LOG = logging.getLogger("qmk.kernel.dask")


def run_bridge(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    """``qmk dask-bridge``: serve kernels' jobs on ``--dask`` until SIGTERM, SIGINT or
    the end of ``--parent-fd``; the exit status.

    Raises:
        QMKError: a bad option or config; ``QS1011 unavailable``: no scheduler answered.
    """
    from qmk.commands.gateway import cap_memory, log_to
    from qmk.kernel.config import load_config
    from qmk.kernel.pools.confine import confine_server, name_process
    from qmk.serve.dask import check_dask

    if (args.listen is None) == (args.listen_fd is None):
        raise CommandError.of("bad-option", "qmk dask-bridge needs --listen PATH")
    config = _limits() if args.config is None else load_config(args.config, physics=False)
    tls, flags = check_dask(args)
    cap_memory(args.memory_mb)
    try:
        import distributed  # noqa: F401  # a spare stands by with it loaded
    except ImportError as exc:
        raise CommandError.of(
            "bad-option",
            f"--dask needs the dask extra (pip install 'quantum-microkernel[dask]'): {exc}",
        ) from None
    log_to(err, args.log_format, args.log_level, "dask-bridge")
    from qmk.abi.server import adopt_socket, bind_unix

    if args.listen_fd is not None:
        listening = adopt_socket(args.listen_fd)
    else:  # bound before the confinement, which makes no socket file
        listening = bind_unix(Path(args.listen))
    writable = []
    if os.path.isdir("/dev/shm"):  # a local:N cluster's semaphores (multiprocessing's)
        writable.append("/dev/shm")
    hidden = tuple(args.hide or ())
    gaps: list[str] = []
    if hidden and args.dask.startswith("local:"):
        # the cluster's job processes confine themselves under the bridge's domain, and
        # a module import fails there (EACCES) under its read rules: not hidden yet
        gaps.append(f"data dir: not hidden from a local:N cluster's bridge ({', '.join(hidden)})")
        hidden = ()
    report = confine_server(hidden, writable)
    report = dataclasses.replace(report, gaps=(*report.gaps, *gaps))
    for gap in report.gaps:
        LOG.warning("dask bridge isolation gap: %s", gap)
    name_process("qmk-dask" if args.standby_fd is None else "qmk-dask-spare")
    confinement = {**report.to_json(), "memory_mb": args.memory_mb}
    asyncio.run(_main(args, config, tls, flags, out, confinement, listening))
    return 0


async def _main(
    args: argparse.Namespace,
    config: Any,
    tls: Any,
    flags: dict[str, Any],
    out: TextIO,
    confinement: dict[str, Any],
    listening: Any,
) -> None:
    from qmk.kernel.pools.confine import name_process
    from qmk.kernel.pools.dask_bridge import Bridge
    from qmk.kernel.pools.dask_pool import dask_pool

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    if args.parent_fd is not None:  # its end: qmk serve is gone, even by SIGKILL
        loop.add_reader(args.parent_fd, stop.set)
    spare = args.standby_fd is not None
    if spare and not args.dask.startswith("local:"):
        # a shared cluster is up already: connected now, the spare would hear the notes
        # (checkpoint states) of the serving bridge's jobs too
        if not await _promoted(args.standby_fd, stop):
            return
        spare = False
    pool = await asyncio.to_thread(
        dask_pool, args.dask, config, workers=args.workers, tls=tls, loop=loop, **flags
    )
    pool.jobs.write_states = False  # the kernel writes its checkpoints
    try:
        if spare:  # a cluster of its own, started, and its job processes
            await pool.warm()
            LOG.info("the Dask bridge's spare stands by on %s", pool.address)
            if not await _promoted(args.standby_fd, stop):
                return
        name_process("qmk-dask")
        bridge = Bridge(pool, str(pool.address))
        line = {"listening": "", "dask": str(pool.address), "confinement": confinement}
        if args.json:
            out.write(json.dumps(line) + "\n")
        else:
            out.write(f"qmk dask-bridge: serving {args.listen} on {pool.address}\n")
        out.flush()
        LOG.info("the Dask bridge serves on %s", pool.address)
        await bridge.serve(listening, stop)
    finally:
        await pool.aclose()


async def _promoted(fd: int, stop: asyncio.Event) -> bool:
    """Wait as a warm spare, its pool made, until the supervisor writes a byte on
    ``fd`` (serve now: True), closes it or ``stop`` is set (False)."""
    loop = asyncio.get_running_loop()
    woken: asyncio.Future[Any] = loop.create_future()

    def readable() -> None:
        if not woken.done():
            woken.set_result(os.read(fd, 1))

    loop.add_reader(fd, readable)
    stopping: asyncio.Future[Any] = asyncio.ensure_future(stop.wait())
    try:
        await asyncio.wait([woken, stopping], return_when=asyncio.FIRST_COMPLETED)
    finally:
        stopping.cancel()
        loop.remove_reader(fd)
        os.close(fd)
    return woken.done() and woken.result() != b""


def _limits() -> Any:
    """The jobs' limits of a bridge started without ``--config`` (one that holds none of
    the kernel's credentials): the ``[kernel]`` table's defaults."""
    from types import SimpleNamespace

    from qmk import defaults

    return SimpleNamespace(
        worker_memory_mb=defaults.WORKER_MEMORY_MB,
        worker_cpu_s=defaults.WORKER_CPU_S,
        worker_file_mb=defaults.WORKER_FILE_MB,
    )


def register(add: AddCommand) -> None:
    """Add ``dask-bridge``."""
    from qmk.commands.gateway import confinement_options, supervised_options
    from qmk.serve.options import add_dask_options

    sub = add("dask-bridge", "run the kernel's jobs on a Dask cluster (a server)", limits=False)
    sub.add_argument(
        "--config",
        metavar="FILE",
        help="the kernel's config (TOML), for its jobs' limits ([kernel] worker_memory_mb, "
        "worker_cpu_s, worker_file_mb; default: their defaults)",
    )
    sub.add_argument(
        "--listen", metavar="PATH", help="the Unix socket the kernel reaches it on (0600)"
    )
    supervised_options(sub)
    add_dask_options(sub, required=True)
    confinement_options(sub)
    log_options(sub)
    sub.add_argument("--json", action="store_true", help="print its ready line as JSON")
    sub.set_defaults(run=run_bridge)


__all__ = ["register", "run_bridge"]
