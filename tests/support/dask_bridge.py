"""``python -m support.dask_bridge --listen PATH [--pause-gate FIFO] [--workers N]``: a
real Dask bridge process whose cluster's job processes run the tests' hooks.

It is what ``qmk dask-bridge --listen PATH --dask local:N`` runs (a
:class:`~qmk.kernel.pools.dask_bridge.Bridge` on a Unix socket, before a
``local:N`` :class:`~qmk.kernel.pools.dask_pool.DaskPool` whose states the kernel
writes), with only the Dask workers' job pools made by :class:`support.pools.Hooks`
(the pool's public seam ``job_pool``), so a test can hold a job at a fence of a bridge
that it then kills with SIGKILL. A kernel reaches it as one started alone
(``qmk serve --kernel-only --dask-bridge PATH``). It prints one JSON line once it
serves, and stops on SIGTERM or SIGINT. Run it with ``tests/`` on ``PYTHONPATH`` (the
Dask workers import the hooks).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import sys
from collections.abc import Sequence
from pathlib import Path

from qmk import defaults
from qmk.abi.server import bind_unix
from qmk.kernel.pools.dask_bridge import Bridge
from qmk.kernel.pools.dask_pool import DaskPool
from support.pools import Hooks


async def _serve(listen: Path, workers: int, hooks: Hooks) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    listening = bind_unix(listen)
    pool = await asyncio.to_thread(
        DaskPool.local,
        workers,
        loop=loop,
        memory_mb=defaults.WORKER_MEMORY_MB,
        cpu_s=defaults.WORKER_CPU_S,
        file_mb=defaults.WORKER_FILE_MB,
        job_pool=hooks if hooks.any else None,
    )
    pool.jobs.write_states = False  # the kernel writes its checkpoints
    try:
        sys.stdout.write(json.dumps({"listening": str(listen), "dask": str(pool.address)}) + "\n")
        sys.stdout.flush()
        await Bridge(pool, str(pool.address)).serve(listening, stop)
    finally:
        await pool.aclose()


def main(argv: Sequence[str] | None = None) -> int:
    """Serve until SIGTERM or SIGINT; the exit status."""
    parser = argparse.ArgumentParser(prog="python -m support.dask_bridge")
    parser.add_argument("--listen", required=True)
    parser.add_argument("--pause-gate")
    parser.add_argument("--workers", type=int, default=1)
    given = parser.parse_args(argv)
    hooks = Hooks(pause_gate=given.pause_gate)
    asyncio.run(_serve(Path(given.listen), given.workers, hooks))
    return 0


if __name__ == "__main__":
    sys.exit(main())
