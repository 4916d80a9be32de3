"""The kernel's worker pool on a Dask cluster (dask.distributed): past one machine.

:class:`DaskPool` offers what the supervisor asks of a pool (``submit``, ``cancel``,
``shutdown``, ``max_workers``; ``listen`` and ``request`` for checkpoints and preemption
at fences), so ``Kernel.open(pool=DaskPool(...))`` (``qmk serve --dask``) runs jobs on
Dask workers. The kernel stays the one source of truth: the database, the audit log and
the checkpoints live in its data directory; Dask workers hold nothing between jobs.

The pool is the face and the loop; its parts each hold one concern: the link to the
cluster (:mod:`.dask_cluster`: the scheduler, its workers, the queue told to its
autoscaler), the jobs out on it (:mod:`.dask_jobs`: calls, kills, restarts, notes,
outcomes) and the parts of big jobs (:mod:`.dask_parts`).

**Straight to the workers.** The pool registers a worker plugin
(:class:`qmk.kernel.pools.dask_worker.JobsPlugin`) with the scheduler, which installs it on
every worker, those that join later included: it adds handlers to the worker's own
server. A job is one call of the worker's ``qmk_run`` handler over Dask's comm (its
TLS too), from the kernel's client to the worker and back: no task, no scheduler on
the way. A Dask task would make each small job pass the scheduler twice, whose batching
and bookkeeping cost more than the job (``docs/kernel.md``). The scheduler keeps what it
is good at: which workers there are (the pool asks
it every :data:`REFRESH_S`), the plugin for workers yet to come, and the notes of
running jobs (Dask events). The pool deals each job to the worker with the fewest jobs
per thread.

**Real kill, real limits.** On the worker a job runs in a child process of the worker's
own :class:`~qmk.kernel.pools.pool.WorkerPool`, whose confined processes hold the kernel's
memory and CPU caps. Cancel, timeout, deadline and preemption call the worker's
``qmk_kill``: the child is SIGKILLed at once, as in the local pool, and the kernel's
future fails with :class:`~qmk.kernel.pools.pool.WorkerKilled` without waiting.

**Faults.** A worker that dies mid-job (its call fails, or the scheduler no longer lists
it) has its job started again on another worker, up to :data:`MAX_RESTARTS` times. It
starts from the job's latest checkpoint if it saved one, else from its start. Each
attempt has a token of its own, the one before is killed wherever it may still run, and
the pool takes only the current attempt's outcome: one result. When the scheduler goes
away the jobs that were out wait in the pool (the kernel shows them RUNNING, their
timeouts running), and the jobs not started wait in the kernel's queue. Once a scheduler
answers at the same address (and workers have joined it), the pool registers its plugin
there and sends them again. Neither counts as a restart.

**Big jobs split.** A job of at least ``split_shots`` shots goes out as parts
(:mod:`qmk.execution.parts`: part ``k`` of ``n`` runs its share of the shot groups),
dealt over the workers, their counts merged: the same counts as one run, bit for bit.
A split job takes no checkpoints (its parts are short-lived and start again whole).

**The autoscaler sees the queue.** The pool registers a scheduler plugin too
(:class:`qmk.kernel.pools.dask_scaler.QueuePlugin`). It publishes the kernel's queue to
it (:meth:`watch_queue`: jobs queued in the kernel, jobs out, the workers holding them),
when it changes and every :data:`QUEUE_PUBLISH_S`. The scheduler's adaptive target is
then at least the workers those jobs fill. So a cluster under ``Adaptive`` grows with the
jobs waiting, and never retires a worker that holds one. A pool made without ``max_workers``
follows the cluster: the kernel runs as many jobs at once as the cluster has worker
threads now (at least one), as workers join and leave.

**Data locality.** A program travels once, from the kernel to the worker that runs it; a
split job's, inside each part's call, or past :data:`STASH_BYTES` put once on one worker
and fetched from there by the other parts' workers. An outcome travels once, back.
Results are counts and telemetry, never rows of shots. Checkpoint states travel once: a
worker sends a state it saved with the note that reports it (a Dask event); the pool
writes it into the kernel's data directory, and a job restarted elsewhere takes its
state with it.

The workers' job pools: a :class:`~qmk.kernel.pools.pool.WorkerPool` each, or what
``job_pool=`` makes instead (a subclass of it, with the same arguments), e.g. the tests'
gated pool (``tests/support/pools.py``), which holds jobs in the Dask workers' children
exactly as in the local pool.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import threading
from collections.abc import Awaitable, Callable, Coroutine, Mapping
from concurrent.futures import Executor, Future
from typing import Any, TypeVar

from qmk.defaults import DASK_CONNECT_S
from qmk.kernel.pools.dask_cluster import ClusterLink
from qmk.kernel.pools.dask_jobs import MAX_RESTARTS, DaskJobs
from qmk.kernel.pools.dask_options import TlsFiles, check_exposure, parse_dask
from qmk.kernel.pools.dask_parts import SPLIT_SHOTS, STASH_BYTES, PutFailed, SplitParts
from qmk.kernel.pools.dask_protocol import CLUSTER_CONFIG, NOTES_TOPIC

_log = logging.getLogger("qmk.kernel.dask")
_T = TypeVar("_T")
#: How long the close waits for the pool's tasks to end before it cancels them again.
RECANCEL_S = 0.25
#: How long :meth:`DaskPool.warm` waits for a worker's job processes.
WARM_S = 120.0


class DaskPool(Executor):
    """Runs the kernel's jobs on a Dask cluster (see the module docstring).

    It is one ``Executor`` over a cluster that comes and goes, on one event loop: the
    face the supervisor calls, the loop that drives the pool, and the tasks it owns. Its
    parts: the cluster, its connection and workers (:mod:`.dask_cluster`), the jobs out on
    it (:mod:`.dask_jobs`) and the parts of big jobs (:mod:`.dask_parts`). What holds no
    state lives apart: the names on the wire (:mod:`.dask_protocol`), ``--dask``'s options
    and TLS (:mod:`.dask_options`), the workers' side (:mod:`.dask_worker`).

    Args:
        address: the scheduler (``tcp://host:8786``, ``tls://...``) or a
            ``distributed`` cluster object (a ``LocalCluster``) the pool then owns.
        max_workers: how many jobs the kernel runs at once (None: the cluster's
            worker threads, at least one, followed as workers join and leave).
        memory_mb, cpu_s, file_mb: the limits of each job's process on the workers (the
            kernel's ``worker_memory_mb``, ``worker_cpu_s``, ``worker_file_mb``).
        split_shots: split jobs of at least this many shots over the workers (0: never).
        security: a ``distributed.security.Security`` (TLS) for the cluster's wire.
        connect_s: how long to try the scheduler, then to wait for its first worker, at
            the start (``qmk serve --dask-connect-s``).
        job_pool: makes each Dask worker's job pool in place of a
            :class:`~qmk.kernel.pools.pool.WorkerPool`, called with the same arguments (a
            subclass): it travels to the workers with each job and names their pool, so
            it must be importable there and compare equal by value (a class, a frozen
            dataclass). None: a ``WorkerPool``.
        loop: a running asyncio event loop to drive the pool from (the kernel's: no
            thread between the kernel and the cluster; make the pool off that loop's
            thread, e.g. with :meth:`start`). None: a thread of the pool's own runs
            its loop (for use from synchronous code).
        held: more Dask configuration held, with :data:`CLUSTER_CONFIG`, while the
            pool lives (a worker its cluster starts later reads it).

    Raises:
        UnavailableError: the scheduler does not answer within ``connect_s`` (a
            one-line error from ``qmk serve``).
    """

    def __init__(
        self,
        address: Any,
        *,
        max_workers: int | None = None,
        memory_mb: int | None = None,
        cpu_s: int | None = None,
        file_mb: int | None = None,
        split_shots: int = SPLIT_SHOTS,
        security: Any = None,
        connect_s: float = DASK_CONNECT_S,
        job_pool: Callable[..., Executor] | None = None,
        loop: asyncio.AbstractEventLoop | None = None,
        held: Mapping[str, Any] | None = None,
    ) -> None:
        import dask

        if loop is not None and _running_loop() is loop:
            raise RuntimeError(
                "a Dask pool driven by a loop connects before it returns: make it off that "
                "loop's thread (await DaskPool.start(...))"
            )
        self.cluster = None if isinstance(address, str) else address
        self.address = address if isinstance(address, str) else address.scheduler_address
        self.security = security
        self.connect_s = connect_s
        self.options: dict[str, Any] = {
            "memory_mb": memory_mb,
            "cpu_s": cpu_s,
            "file_mb": file_mb,
            "job_pool": job_pool,
            "checkpoints": True,
        }
        self._tasks: set[asyncio.Task[Any]] = set()
        prefix = os.urandom(4).hex()
        self._closing: asyncio.Task[None] | None = None
        self._config = dask.config.set({**CLUSTER_CONFIG, **(held or {})})
        #: The loop that drives the pool (the caller's, or the pool's own thread's).
        self.loop = loop or asyncio.new_event_loop()
        self._loop_thread: int | None = None  # its thread's ident, once it runs the pool
        self._thread: threading.Thread | None = None
        #: The cluster: its connection, its workers, the queue told to its autoscaler.
        self.link = ClusterLink(
            self.address,
            security=security,
            connect_s=connect_s,
            loop=self.loop,
            on_note=lambda event: self.jobs.on_note(event),
            name=prefix,
            max_workers=max_workers,
        )
        #: The parts of big jobs.
        self.parts = SplitParts(self.link, self._spawn, split_shots)
        #: The jobs out on the cluster.
        self.jobs = DaskJobs(
            self.link,
            self.parts,
            spawn=self._spawn,
            soon=self._soon,
            options=self.options,
            prefix=prefix,
        )
        if loop is None:
            self._thread = threading.Thread(
                target=self.loop.run_forever, name="qmk-dask-pool", daemon=True
            )
            self._thread.start()
        try:
            threads = self._call(self._open)
        except BaseException:
            self._stop_loop()
            self._config.__exit__(None, None, None)
            raise
        self.link.max_workers = max_workers or max(threads, 1)

    @classmethod
    async def start(cls, address: Any, **options: Any) -> DaskPool:
        """A pool driven by the running loop (made in a thread: it connects first)."""
        return await asyncio.to_thread(cls, address, loop=asyncio.get_running_loop(), **options)

    @classmethod
    def local(
        cls,
        workers: int,
        *,
        env: Mapping[str, str] | None = None,
        dashboard: bool = False,
        **options: Any,
    ) -> DaskPool:
        """A pool on a new :func:`local_cluster` of ``workers`` processes (``env`` added
        to their environment), shut down with the pool (``qmk serve --dask local:N``).

        The cluster speaks only TLS, with a certificate and key made here, in memory
        (Dask's ``Security.temporary()``): the scheduler, the workers and this pool hold
        them, nobody else, so another user of the machine cannot connect. Everything
        binds 127.0.0.1; Dask's HTTP servers answer only ``/health`` unless
        ``dashboard`` (``--dask-dashboard``: the dashboard, on a free port of 127.0.0.1).
        A ``security`` in ``options`` is ignored: the cluster's is the one that works.
        """
        import dask
        from distributed.security import Security

        security = Security.temporary()
        held = {} if dashboard else QUIET_HTTP
        with dask.config.set(held):
            cluster = local_cluster(
                workers,
                env=dict(env or {}),
                protocol="tls://",
                security=security,
                dashboard=dashboard,
            )
        options.pop("security", None)
        try:
            pool = cls(cluster, security=security, held=held, **options)
        except BaseException:
            cluster.close()
            raise
        if dashboard:
            _log.warning("the Dask dashboard: %s", cluster.dashboard_link)
        return pool

    # ------------------------------------------------------------------ the Executor

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future[Any]:
        """Send ``fn(spec)`` to the cluster (a job's ``run_job`` and its spec); its future.

        Never waits for the cluster: the pool's loop talks to it.
        """
        if kwargs or len(args) != 1:
            raise TypeError("the Dask pool runs fn(spec): one argument")
        return self.jobs.submit(fn, args[0])

    def cancel(self, future: Future[Any], reason: str = "cancelled") -> bool:
        """Stop ``future``'s job: its processes on the workers are SIGKILLed, and the
        future fails at once with :class:`WorkerKilled`. False when it had finished."""
        return self.jobs.cancel(future, reason)

    def listen(self, future: Future[Any], listener: Callable[[Any], None]) -> None:
        """Have ``listener(note)`` called with each checkpoint note of ``future``'s job
        (on the pool's loop, before the future completes)."""
        self.jobs.listen(future, listener)

    def request(self, future: Future[Any], payload: Any) -> bool:
        """Send ``payload`` to ``future``'s running job (it reads it at its next fence).

        False for a job the pool does not hold, or a split one (its parts take no
        requests: the kernel preempts it by a kill and starts it again)."""
        return self.jobs.request(future, payload)

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        """Stop the pool (and a cluster it owns). With ``cancel_futures`` the jobs out
        are killed; else they run on, their results unread.

        Called on the thread of the loop that drives the pool, this cannot wait: the
        close runs as a task of that loop (:meth:`aclose` awaits it).
        """
        if not self.jobs.shut(cancel_futures):
            return
        if self._on_loop():
            self._closing = self.loop.create_task(self._close_async())
        elif wait:
            self._close()
        else:
            threading.Thread(target=self._close, name="qmk-dask-close", daemon=True).start()

    async def aclose(self, *, cancel_futures: bool = True) -> None:
        """:meth:`shutdown`, awaited without blocking the caller's loop (the kernel's
        close calls it)."""
        if self._on_loop():
            self.shutdown(cancel_futures=cancel_futures)
            if self._closing is not None:
                await asyncio.shield(self._closing)
            return
        await asyncio.to_thread(self.shutdown, True, cancel_futures=cancel_futures)

    # ------------------------------------------------------------------ what it knows

    @property
    def max_workers(self) -> int:
        """How many jobs the kernel runs at once."""
        return self.link.max_workers

    @property
    def follows(self) -> bool:
        """Whether :attr:`max_workers` follows the cluster's worker threads."""
        return self.link.follows

    @property
    def client(self) -> Any:
        """The pool's ``distributed`` client (asynchronous, on the pool's loop)."""
        return self.link.client

    @property
    def known_workers(self) -> int:
        """How many workers the pool sends jobs to (read by the kernel's metrics)."""
        return self.link.known_workers

    @property
    def lost_workers(self) -> int:
        """How many workers the pool lost since it started (read by the kernel's metrics)."""
        return self.link.lost_workers

    @property
    def queue_plugin(self) -> bool:
        """Whether the scheduler took the queue plugin (a scheduler without QMK cannot)."""
        return self.link.queue_plugin

    @property
    def split_shots(self) -> int:
        """Jobs of at least this many shots are split over the workers (0: never)."""
        return self.parts.split_shots

    @property
    def split_jobs(self) -> int:
        """How many jobs went out split into parts."""
        return self.parts.split_jobs

    @property
    def stashed(self) -> int:
        """How many specs the pool put on a worker for their parts to fetch."""
        return self.parts.stashed

    @property
    def stash_bytes(self) -> int:
        """A split job's spec is put on one worker from this size on (tests lower it)."""
        return self.parts.stash_bytes

    @stash_bytes.setter
    def stash_bytes(self, size: int) -> None:
        self.parts.stash_bytes = size

    @property
    def notes_kept(self) -> int:
        """The notes are cleared from the scheduler's event log after this many (tests
        lower it)."""
        return self.jobs.notes_kept

    @notes_kept.setter
    def notes_kept(self, count: int) -> None:
        self.jobs.notes_kept = count

    def workers(self) -> list[str]:
        """The addresses of the workers the pool sends jobs to now (they answered its
        hello)."""
        return self._call(self._known)

    async def _known(self) -> list[str]:
        return sorted(self.link.workers)

    def connected(self) -> bool:
        """Whether the pool's client has a scheduler now."""
        return self.client is not None and self.client.status == "running"

    def busy(self) -> int:
        """How many jobs the pool holds now."""
        return self.jobs.busy()

    def watch_queue(
        self,
        demand: Callable[[], tuple[int, int]],
        capacity: Callable[[int], None] | None = None,
    ) -> None:
        """Publish the kernel's queue to the scheduler: ``demand()`` is (jobs queued in
        the kernel, jobs it has out), read on the pool's loop; ``capacity(n)`` is told
        each new :attr:`max_workers` of a pool that follows the cluster."""
        self.link.watch_queue(demand, capacity)

    async def publish_queue(self) -> bool:
        """Publish the kernel's queue now (on the pool's loop); whether the scheduler
        took it (False: no queue to publish, no scheduler, or one without the plugin)."""
        return await self.link.publish_queue()

    async def warm(self, timeout_s: float = WARM_S) -> int:
        """Start the job processes of every worker the pool knows, as their first jobs
        would (on the pool's loop): a spare bridge stands by with them running. How
        many answered; a worker that does not (an older QMK, a slow start) is logged,
        and starts them at its first job."""
        import pickle

        options = pickle.dumps(self.options, protocol=pickle.HIGHEST_PROTOCOL)
        addresses = list(self.link.workers)
        calls = [
            asyncio.wait_for(self.client.rpc(address).qmk_warm(options=options), timeout_s)
            for address in addresses
        ]
        answered = 0
        results = await asyncio.gather(*calls, return_exceptions=True)
        for address, result in zip(addresses, results, strict=True):
            if isinstance(result, BaseException):
                _log.warning("Dask worker %s did not start its job processes: %r", address, result)
            else:
                answered += int(result)
        return answered

    # ------------------------------------------------------------------ for tests

    def job_pids(self, address: str | None = None) -> list[int]:
        """The pids of the job processes on every worker (or on ``address``'s)."""
        from qmk.kernel.pools.dask_worker import job_pids

        workers = None if address is None else [address]
        found = self._call(lambda: self.client.run(job_pids, workers=workers))
        return [pid for pids in found.values() for pid in pids]

    def holding(self) -> dict[str, tuple[int, int]]:
        """Each Dask worker's address: its pid and how many jobs it runs (tests)."""
        from qmk.kernel.pools.dask_worker import holding

        return {k: tuple(v) for k, v in self._call(lambda: self.client.run(holding)).items()}

    def events(self) -> list[Any]:
        """The notes the scheduler's event log holds now (tests)."""
        return list(self._call(lambda: self.client.get_events(NOTES_TOPIC)))

    # ------------------------------------------------------------------ the pool's loop

    def _on_loop(self) -> bool:
        return threading.get_ident() == self._loop_thread

    def _soon(self, callback: Callable[..., Any], *args: Any) -> None:
        """``callback(*args)`` on the pool's loop: now if this is its thread."""
        if self._on_loop():
            callback(*args)
        else:
            self.loop.call_soon_threadsafe(callback, *args)

    def _call(self, make: Callable[[], Awaitable[_T]], timeout: float | None = None) -> _T:
        """Await ``make()`` on the pool's loop from another thread; its result. (Made
        there: the asynchronous client's methods are synchronous off its loop.)"""
        if self._on_loop():
            raise RuntimeError(
                "a synchronous call of the Dask pool on the thread of the loop that drives "
                "it would wait for itself: call it from another thread (asyncio.to_thread)"
            )

        async def wrapped() -> _T:
            return await make()

        return asyncio.run_coroutine_threadsafe(wrapped(), self.loop).result(timeout)

    def _spawn(self, coroutine: Coroutine[Any, Any, Any]) -> asyncio.Task[Any]:
        """A task of the pool's (it owns them all, and ends them at close)."""
        task = self.loop.create_task(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._reaped)
        return task

    def _reaped(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        error = None if task.cancelled() else task.exception()
        if error is not None and not isinstance(error, PutFailed):  # that one is handled
            _log.error("the Dask pool failed", exc_info=error)

    async def _open(self) -> int:
        """Connect to the scheduler, install the plugin; the cluster's worker threads."""
        self._loop_thread = threading.get_ident()
        self.jobs.open()
        threads = await self.link.open()
        self._spawn(self.link.watch())
        self._spawn(self.jobs.take_notes())
        return threads

    # ------------------------------------------------------------------ closing

    def _close(self) -> None:
        """From another thread than the loop's: everything closed when it returns."""
        with contextlib.suppress(Exception):
            self._call(self._close_async, timeout=60)
        self._stop_loop()

    async def _close_async(self) -> None:
        """The kills sent, the pool's tasks ended, the client closed, a cluster the pool
        owns closed (in a thread: it is a synchronous one)."""
        try:
            kills = [task for task in self.jobs.kills if not task.done()]
            if kills:
                await asyncio.wait(kills, timeout=5)
            # cancelled again until they end: a call may swallow the cancel (Dask's comms
            # turn it into an error the watch logs and goes on from; Python 3.11's
            # asyncio.wait_for drops one that meets its result), and the close then
            # waited forever on a task that had gone back to its loop
            pending = set(self._tasks)
            while pending:
                for task in pending:
                    task.cancel()
                _, pending = await asyncio.wait(pending, timeout=RECANCEL_S)
            await self.link.close()
        finally:
            if self.cluster is not None:
                with contextlib.suppress(Exception):
                    await asyncio.to_thread(self.cluster.close, timeout=10)
            self._config.__exit__(None, None, None)

    def _stop_loop(self) -> None:
        """Stop the pool's own thread and loop (a caller's loop goes on)."""
        if self._thread is None or not self._thread.is_alive():
            return
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join()
        self.loop.close()


def local_cluster(workers: int, *, dashboard: bool = False, **options: Any) -> Any:
    """A new ``distributed.LocalCluster`` of ``workers`` processes of one thread each on
    127.0.0.1, made with :data:`CLUSTER_CONFIG`; ``options`` go to ``LocalCluster``
    (``env``, ``protocol``, ``security``). Its scheduler's HTTP server (Dask starts one
    even without the dashboard) binds a free port of 127.0.0.1, never 8787 and never
    every interface; the dashboard is on it only with ``dashboard``. A worker it starts
    later (a nanny's restart, a scale-up) reads the configuration of that moment: hold
    ``CLUSTER_CONFIG`` while it lives (a :class:`DaskPool` does)."""
    import dask
    from distributed import LocalCluster

    with dask.config.set(CLUSTER_CONFIG):
        return LocalCluster(
            n_workers=workers,
            threads_per_worker=1,
            processes=True,
            host="127.0.0.1",
            dashboard_address="127.0.0.1:0",
            worker_dashboard_address=None,
            scheduler_kwargs={"dashboard": dashboard},
            **options,
        )


#: Dask configuration of a ``local:N`` cluster without ``--dask-dashboard``: its HTTP
#: servers (the scheduler's and each worker's) answer ``/health`` and nothing else: no
#: cluster state, no Prometheus metrics, no proxy to the workers.
QUIET_HTTP: Mapping[str, Any] = {
    "distributed.scheduler.http.routes": ["distributed.http.health"],
    "distributed.worker.http.routes": ["distributed.http.health"],
}


def _running_loop() -> asyncio.AbstractEventLoop | None:
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None


def dask_pool(
    text: str,
    config: Any,
    *,
    workers: int | None = None,
    security: Any = None,
    tls: TlsFiles | None = None,
    loop: asyncio.AbstractEventLoop | None = None,
    insecure: bool = False,
    dashboard: bool = False,
    connect_s: float = DASK_CONNECT_S,
) -> DaskPool:
    """The kernel's pool for ``--dask text``: the kernel's worker limits, TLS to the
    scheduler from ``tls`` (``--dask-tls-*``) or ``security``, driven by ``loop`` (the
    kernel's; call this off its thread) or by a thread of its own. ``local:N`` is a
    TLS cluster of the pool's own (:meth:`DaskPool.local`; ``dashboard``: with Dask's
    dashboard on 127.0.0.1); another address must be ``tls://`` unless ``insecure``.
    ``connect_s``: how long the start waits for the scheduler and its first worker
    (``--dask-connect-s``).

    Raises:
        ExposureError: ``QK120 insecure-dask`` (:func:`~.dask_options.check_exposure`).
    """
    check_exposure(text, insecure=insecure, dashboard=dashboard)
    where, count = parse_dask(text)
    if tls is not None:
        security = tls.security()
    options: dict[str, Any] = {
        "max_workers": workers,
        "memory_mb": config.worker_memory_mb,
        "cpu_s": config.worker_cpu_s,
        "file_mb": config.worker_file_mb,
        "security": security,
        "loop": loop,
        "connect_s": connect_s,
    }
    if count is not None:
        return DaskPool.local(count, dashboard=dashboard, **options)
    return DaskPool(where, **options)


__all__ = [
    "MAX_RESTARTS",
    "QUIET_HTTP",
    "SPLIT_SHOTS",
    "STASH_BYTES",
    "WARM_S",
    "DaskPool",
    "dask_pool",
    "local_cluster",
]
