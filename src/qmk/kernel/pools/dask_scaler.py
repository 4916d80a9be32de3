"""QMK's queue on the Dask scheduler: the autoscaler sees the kernel's waiting jobs.

A kernel's jobs are not Dask tasks (:mod:`.dask_pool` calls the workers straight), so
Dask's own measure of work, :meth:`distributed.Scheduler.adaptive_target`, sees none of
them: a cluster under ``Adaptive`` (``cluster.adapt(...)``, dask-kubernetes, dask-gateway)
would stay at its minimum however many jobs wait. :class:`QueuePlugin` is a scheduler
plugin the kernel's pool registers: the pool publishes the kernel's queue to it
(:data:`~.dask_protocol.QUEUE_HANDLER`: jobs queued in the kernel, jobs out on the
cluster, the workers holding them), and the plugin makes the scheduler's adaptive target
the larger of Dask's own and the workers those jobs fill::

    target = max(dask_target, ceil((queued + running) / threads_per_worker))

so every reader of the target follows the queue: ``Adaptive`` (it asks the scheduler's
``adaptive_target`` handler), the scheduler's ``/api/v1/adaptive_target`` and its
Prometheus gauge ``dask_scheduler_desired_workers`` (what the Kubernetes operator and
an HPA read). A worker that holds a kernel's job is never chosen for retirement
(:meth:`QueuePlugin.valid_workers_downscaling`). Several kernels may share a cluster:
each publishes under its own name and their demands add up. A kernel that stops
publishing (gone, its connection lost) is forgotten ``ttl_s`` after its last word, so
the cluster does not stay large for a kernel that no longer exists.

>>> plugin = QueuePlugin(clock=lambda: 100.0)
>>> plugin.publish("k1", queued=5, running=2, busy=["tcp://a:1"], threads=2, ttl_s=30)
>>> plugin.demand(), plugin.queue_target(threads_per_worker=2)
(7, 4)
>>> plugin.clock = lambda: 131.0   # the kernel said nothing for 31 s
>>> plugin.demand()
0
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from distributed.diagnostics.plugin import SchedulerPlugin

from qmk.kernel.pools.dask_protocol import QUEUE_HANDLER, QUEUE_PLUGIN


@dataclass(frozen=True, slots=True, kw_only=True)
class Demand:
    """What one kernel last said of its queue, and when (the plugin's clock)."""

    queued: int
    running: int
    busy: frozenset[str]
    threads: int
    at: float
    ttl_s: float

    def fresh(self, now: float) -> bool:
        return now - self.at <= self.ttl_s


class QueuePlugin(SchedulerPlugin):
    """The kernels' queues in the scheduler's adaptive target (see the module docstring).

    Args:
        clock: the plugin's clock in seconds (monotonic), for the demands' age.
    """

    idempotent = True
    name = QUEUE_PLUGIN

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self.demands: dict[str, Demand] = {}
        self.scheduler: Any = None
        self._dask_target: Callable[..., int] | None = None

    async def start(self, scheduler: Any) -> None:
        """Take the handler, and put :meth:`adaptive_target` in Dask's place."""
        self.scheduler = scheduler
        scheduler.handlers[QUEUE_HANDLER] = self.publish
        if self._dask_target is None:
            self._dask_target = scheduler.adaptive_target
        # the handler table and the attribute: Adaptive calls the one, HTTP and
        # Prometheus the other
        scheduler.adaptive_target = self.adaptive_target
        scheduler.handlers["adaptive_target"] = self.adaptive_target

    async def close(self) -> None:
        """Give Dask its adaptive target back."""
        scheduler, dask_target = self.scheduler, self._dask_target
        if scheduler is None or dask_target is None:
            return
        scheduler.handlers.pop(QUEUE_HANDLER, None)
        scheduler.adaptive_target = dask_target
        scheduler.handlers["adaptive_target"] = dask_target

    def publish(
        self,
        kernel: str,
        queued: int,
        running: int,
        busy: Iterable[str] = (),
        threads: int = 1,
        ttl_s: float = 30.0,
    ) -> None:
        """A kernel's queue now: ``queued`` jobs waiting in it, ``running`` out on the
        cluster (or waiting in its pool for a worker), ``busy`` the workers holding
        them, ``threads`` the threads per worker it knows of (for a cluster with none
        yet); forgotten ``ttl_s`` after this call unless published again."""
        self.demands[str(kernel)] = Demand(
            queued=max(int(queued), 0),
            running=max(int(running), 0),
            busy=frozenset(map(str, busy)),
            threads=max(int(threads), 1),
            at=self.clock(),
            ttl_s=float(ttl_s),
        )

    def _fresh(self) -> list[Demand]:
        now = self.clock()
        for kernel, demand in list(self.demands.items()):
            if not demand.fresh(now):
                del self.demands[kernel]
        return list(self.demands.values())

    def demand(self) -> int:
        """The jobs of every kernel that spoke within its ``ttl_s``: queued and running."""
        return sum(d.queued + d.running for d in self._fresh())

    def queue_target(self, threads_per_worker: float | None = None) -> int:
        """The workers the kernels' jobs fill, at ``threads_per_worker`` jobs a worker
        (None: the cluster's mean, or the kernels' word while it has no worker)."""
        fresh = self._fresh()
        jobs = sum(d.queued + d.running for d in fresh)
        if not jobs:
            return 0
        if threads_per_worker is None:
            threads_per_worker = self._threads_per_worker(fresh)
        return math.ceil(jobs / max(threads_per_worker, 1))

    def _threads_per_worker(self, fresh: list[Demand]) -> float:
        workers = getattr(self.scheduler, "workers", None) or {}
        if workers:
            return sum(ws.nthreads for ws in workers.values()) / len(workers)
        return float(max((d.threads for d in fresh), default=1))

    def adaptive_target(self, target_duration: Any = None) -> int:
        """The larger of Dask's target (its tasks, its memory) and the kernels' queues."""
        dask = 0 if self._dask_target is None else int(self._dask_target(target_duration))
        return max(dask, self.queue_target())

    def valid_workers_downscaling(self, scheduler: Any, workers: list[Any]) -> list[Any]:
        """Dask's hook before it picks workers to retire: never one that holds a job."""
        busy = set().union(*(d.busy for d in self._fresh()))
        return [ws for ws in workers if ws.address not in busy]


__all__ = ["Demand", "QueuePlugin"]
