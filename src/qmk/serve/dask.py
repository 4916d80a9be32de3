"""``qmk serve``'s Dask options: checked, the Dask bridge started for ``--dask``, and
the kernel's pool on a bridge.

A kernel started without a Dask option loads none of this (issue 79: its trusted core);
``qmk dask-bridge`` checks its options here too.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
from typing import Any

from qmk.abi.errors import CommandError


def check_dask(args: argparse.Namespace) -> tuple[Any, dict[str, Any]]:
    """``--dask`` and its options (``qmk serve``'s, ``qmk dask-bridge``'s), checked
    before anything starts: the TLS files, and the pool's flags (``insecure``,
    ``dashboard``, ``connect_s``) for :func:`~qmk.kernel.pools.dask_pool.dask_pool`
    (no Dask loaded).

    Raises:
        ConfigError: ``QK101``: a bad ``--dask`` or TLS option.
        ExposureError: ``QK120``: a scheduler without TLS, not ``--dask-insecure``.
        CommandError: ``QW011``: an option without its ``--dask``.
    """
    tls = None
    flags: dict[str, Any] = {"insecure": args.dask_insecure, "dashboard": args.dask_dashboard}
    if args.dask is not None or args.dask_tls_ca or args.dask_tls_cert or args.dask_tls_key:
        from qmk.abi.tcp import load_client_tls  # (a kernel without Dask loads none)
        from qmk.kernel.pools.dask_options import check_exposure, check_tls, parse_dask

        if args.dask is not None:
            parse_dask(args.dask)
        files = (args.dask_tls_ca, args.dask_tls_cert, args.dask_tls_key)
        tls = check_tls(args.dask, *files, load=load_client_tls)
        if args.dask is not None:
            check_exposure(args.dask, **flags)
    elif args.dask_insecure or args.dask_dashboard:
        raise CommandError.of("bad-option", "--dask-insecure and --dask-dashboard go with --dask")
    if args.dask_connect_s is not None:
        if args.dask is None:
            raise CommandError.of("bad-option", "--dask-connect-s goes with --dask")
        flags["connect_s"] = args.dask_connect_s
    return tls, flags


def bridge_for(args: argparse.Namespace, config: Any, gateways: list[tuple[list[str], Any]]) -> str:
    """The Unix socket of the Dask bridge the kernel runs its jobs on for ``--dask``:
    one it starts and supervises (added to ``gateways``, the servers it supervises).

    Raises:
        CommandError: ``bad-option``: both, or ``--dask`` without the dask extra.
    """
    if args.dask is not None and args.dask_bridge is not None:
        raise CommandError.of("bad-option", "--dask starts a bridge; --dask-bridge names one")
    import importlib.util

    if importlib.util.find_spec("distributed") is None:  # found, not loaded: the bridge's
        raise CommandError.of(
            "bad-option",
            "--dask needs the dask extra (pip install 'quantum-microkernel[dask]')",
        )
    from qmk.serve.gateways import bridge_of

    argv, sock = bridge_of(args, config)
    gateways.append((argv, sock))
    return str(sock.path)


def bridge_pool(bridge: str, config: Any, loop: asyncio.AbstractEventLoop) -> Any:
    """The kernel's pool of jobs run on a Dask cluster, through its bridge on the Unix
    socket ``bridge`` (each frame at most a worker's memory)."""
    from qmk.abi.server import connect_unix
    from qmk.kernel.pools.remote import RemotePool

    return RemotePool(
        functools.partial(connect_unix, bridge),
        where=bridge,
        loop=loop,
        max_frame=config.worker_memory_mb * 2**20,
    )
