"""The kernel's worker pool: the generic pool (:mod:`qmk.kernel.pools.pool`) wired to a kernel.

:func:`kernel_pool` makes the pool ``Kernel.open`` runs its jobs on. It is driven by the
kernel's event loop, and each worker is capped at the kernel's ``worker_memory_mb``. Its
forkserver is preloaded with the executor (:data:`DEFAULT_PRELOAD`), so a replacement
worker is ready at once. Its workers are confined by :func:`kernel_isolation`: the
kernel's ``[kernel]`` limits, the data directory hidden but for its checkpoints
(:data:`~qmk.kernel.datafiles.CHECKPOINTS`). When the kernel runs as root they run as
the ``worker_user``, if that user can reach the Python installation and the data
directory (a gap in the workers' report says why not otherwise).

A pool of a :class:`~qmk.kernel.pools.pool.WorkerPool` subclass (an embedder's, or the tests'
gates and probes in ``tests/support/pools.py``) gets the same wiring through
``kernel_pool(..., pool_class=...)``, and reaches a kernel through
``Kernel.open(pool_factory=...)`` or ``qmk serve``'s
:func:`qmk.serve.serve`.
"""

from __future__ import annotations

import asyncio
import importlib
import os
import sys
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any, Protocol

from qmk.kernel.datafiles import CHECKPOINTS
from qmk.kernel.pools.pool import WorkerHooks, WorkerPool
from qmk.kernel.pools.sandbox import (
    Isolation,
    data_hidden,
    resolve_user,
    unreachable,
)

if TYPE_CHECKING:
    from qmk.kernel.config import KernelConfig

#: Modules a kernel's worker imports before its first task (through the forkserver).
DEFAULT_PRELOAD: tuple[str, ...] = (
    "qmk.execution.executor",
    "qmk.kernel.pools.attempt",
    "qmk.kernel.pools.worker",
    "qmk.kernel.pools.runner",
    "qmk.execution.batch",
    "qmk.engines.stim_batch",
    "qmk.execution.trajectories",
    "qmk.engines.stabilizer",
    "qmk.engines.statevector",
    "qmk.qec.logical",
    "stim",
)


def kernel_isolation(config: KernelConfig, data_dir: str | os.PathLike[str]) -> Isolation:
    """The isolation of the kernel's workers: its ``[kernel]`` limits, the data
    directory hidden but for its checkpoints, and (run as root) ``worker_user`` when
    that user can reach the Python installation and the data directory; a gap says why
    not otherwise."""
    from qmk.kernel.errors import ConfigError

    data = os.path.realpath(os.fspath(data_dir))
    user: str | int | None = None
    gaps: list[str] = []
    if os.geteuid() == 0:
        try:
            uid, gid, name = resolve_user(config.worker_user)
        except KeyError:
            raise ConfigError(
                f"kernel.worker_user: no user {config.worker_user!r} on this machine",
                key="kernel.worker_user",
            ) from None
        needed = [(p, "rx") for p in sys.path if p and os.path.isdir(p)]
        needed.append((os.path.dirname(data), "x"))
        for path, access in needed:
            why = unreachable(path, uid, gid, access)
            if why is not None:
                gaps.append(
                    f"user: the workers run as root: {name} (uid {uid}) cannot reach {path}: {why}"
                )
                break
        else:
            user = uid
    return Isolation(
        user=user,
        cpu_s=config.worker_cpu_s,
        file_mb=config.worker_file_mb or config.worker_memory_mb,
        hidden=data_hidden(data),
        writable=(os.path.join(data, CHECKPOINTS),),
        gaps=tuple(gaps),
    )


class PoolFactory(Protocol):
    """Makes a kernel's pool on the kernel's loop, as :func:`kernel_pool` does (which is
    one): ``Kernel.open(pool_factory=...)``, :func:`qmk.serve.serve`."""

    def __call__(
        self,
        config: KernelConfig,
        data_dir: str | os.PathLike[str],
        *,
        workers: int,
        loop: asyncio.AbstractEventLoop,
    ) -> Any: ...


def kernel_pool(
    config: KernelConfig,
    data_dir: str | os.PathLike[str],
    *,
    workers: int,
    loop: asyncio.AbstractEventLoop,
    pool_class: type[WorkerPool] = WorkerPool,
    **options: Any,
) -> WorkerPool:
    """The kernel's default pool of ``workers`` processes, driven by ``loop``: the
    kernel's memory cap, :data:`DEFAULT_PRELOAD` and :func:`kernel_isolation`.

    Args:
        config: the kernel's configuration (its ``[kernel]`` limits).
        data_dir: the kernel's data directory.
        workers: how many worker processes.
        loop: the kernel's event loop (call this on its thread).
        pool_class: the pool's class: :class:`~qmk.kernel.pools.pool.WorkerPool` or a
            subclass, which ``options`` (its own) go to.

    Raises:
        ConfigError: ``kernel.worker_user`` is no user here (run as root).
    """
    return pool_class(
        workers,
        memory_mb=config.worker_memory_mb,
        preload=DEFAULT_PRELOAD,
        loop=loop,
        isolation=kernel_isolation(config, data_dir),
        **options,
    )


#: The planner process's name (``/proc/PID/comm``), as ``ps``, ``top`` and ``pgrep`` show it.
PLANNER_NAME = "qmk-planner"
#: The assistant's processes' name (``pgrep -x qmk-assistant``).
ASSISTANT_NAME = "qmk-assistant"
#: The billing webhook's processes' name (``pgrep -x qmk-webhooks``).
WEBHOOK_NAME = "qmk-webhooks"


class Named(WorkerHooks):
    """A pool's workers under a name of their own (``/proc/PID/comm``, at most 15
    bytes), so an operator tells the planner from the job workers in ``ps`` and
    ``pgrep -x``. Where the name cannot be set (no ``prctl``), it stays the forkserver's.
    """

    def __init__(self, name: str) -> None:
        self.name = name

    def start(self) -> Iterable[int]:
        from qmk.kernel.pools.confine import name_process  # the worker's half

        name_process(self.name)
        return ()


def planner_pool(
    config: KernelConfig, data_dir: str | os.PathLike[str], loop: asyncio.AbstractEventLoop
) -> WorkerPool:
    """The pool of the kernel's planner process (:mod:`qmk.kernel.admit.planner`): one
    worker, driven by ``loop``, confined as the kernel's workers are
    (:func:`kernel_isolation`: no network, the data directory hidden, their CPU cap),
    capped at their memory (``worker_memory_mb``), and ending with the kernel as they
    do. The cap bounds what reading and planning a program may take, out of the
    kernel's memory; and the router it runs reads the limits of the process it runs in,
    so it reads a worker's. It comes from the workers' forkserver, whose preloads
    (:data:`DEFAULT_PRELOAD`, the first pool's) it leaves as they are. It is named
    :data:`PLANNER_NAME` (``pgrep -x qmk-planner``); a planner that dies is replaced
    by the pool at the next plan.
    """
    return WorkerPool(
        1,
        memory_mb=config.worker_memory_mb,
        loop=loop,
        isolation=kernel_isolation(config, data_dir),
        hooks=Named(PLANNER_NAME),
    )


def linked(target: str, /, *args: Any) -> Any:
    """Call ``target`` (``"module:function"``, imported here, in the worker) with the
    running task's line (:class:`~qmk.kernel.pools.worker.TaskLink`: its ``ask`` and
    ``notify``) and the arguments: a pool's task whose code the pool's owner neither loads
    nor lets import the pool (the kernel hands the assistant's work to its pool so,
    without importing :mod:`qmk.assist`)."""
    from qmk.kernel.pools.worker import current_link  # the worker's side, loaded there

    module, _, name = target.partition(":")
    return getattr(importlib.import_module(module), name)(current_link(), *args)


__all__ = [
    "ASSISTANT_NAME",
    "DEFAULT_PRELOAD",
    "PLANNER_NAME",
    "WEBHOOK_NAME",
    "Named",
    "PoolFactory",
    "kernel_isolation",
    "kernel_pool",
    "linked",
    "planner_pool",
]
