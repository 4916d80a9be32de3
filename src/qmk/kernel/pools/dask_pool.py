"""The kernel's worker pool on a Dask cluster (dask.distributed): past one machine.

:class:`DaskPool` offers what the supervisor asks of a pool (``submit``, ``cancel``,
``shutdown``, ``max_workers``; ``listen`` and ``request`` for checkpoints and preemption
at fences), so ``Kernel.open(pool=DaskPool(...))`` (``qmk serve --dask``) runs jobs on
Dask workers. The kernel stays the one source of truth: the database, the audit log and
the checkpoints live in its data directory; Dask workers hold nothing between jobs.

**Straight to the workers.** The pool registers a worker plugin
(:class:`qmk.kernel.pools.dask_worker.JobsPlugin`) with the scheduler, which installs it on
every worker, those that join later included: it adds handlers to the worker's own
server. A job is one call of the worker's ``qmk_run`` handler over Dask's comm (its
TLS too), from the kernel's client to the worker and back: no task, no scheduler on
the way. (A Dask task made each small job pass the scheduler twice, whose batching and
bookkeeping cost 6 to 10 ms a job: the Dask pool ran 0.15 of the local pool's small
jobs.) The scheduler keeps what it is good at: which workers there are (the pool asks
it every :data:`REFRESH_S`), the plugin for workers yet to come, and the notes of
running jobs (Dask events). The pool deals each job to the worker with the fewest jobs
per thread.

**Real kill, real limits.** On the worker a job runs in a child process of the worker's
own :class:`~qmk.kernel.pools.pool.WorkerPool`, whose confined processes hold the kernel's
memory and CPU caps. Cancel, timeout, deadline and preemption call the worker's
``qmk_kill``: the child is SIGKILLed at once, as in the local pool, and the kernel's
future fails with :class:`~qmk.kernel.pools.pool.WorkerKilled` without waiting.

**Faults.** A worker that dies mid-job (its call fails, or the scheduler no longer lists
it) has its job started again on another worker, from the job's latest checkpoint if it
saved one, else from its start, up to :data:`MAX_RESTARTS` times; each attempt has a
token of its own, the one before is killed wherever it may still run, and the pool
takes only the current attempt's outcome: one result. When the scheduler goes away the
jobs that were out wait in the pool (the kernel shows them RUNNING, their timeouts
running) and the jobs not started wait in the kernel's queue; once a scheduler answers
at the same address (and workers have joined it), the pool registers its plugin there
and sends them again. Neither counts as a restart.

**Big jobs split.** A job of at least ``split_shots`` shots goes out as parts
(:mod:`qmk.execution.parts`: part ``k`` of ``n`` runs its share of the shot groups),
dealt over the workers, their counts merged: the same counts as one run, bit for bit.
A split job takes no checkpoints (its parts are short-lived and start again whole).

**The autoscaler sees the queue.** The pool registers a scheduler plugin too
(:class:`qmk.kernel.pools.dask_scaler.QueuePlugin`) and publishes the kernel's queue to it
(:meth:`watch_queue`: jobs queued in the kernel, jobs out, the workers holding them), when
it changes and every :data:`QUEUE_PUBLISH_S`: the scheduler's adaptive target is then at
least the workers those jobs fill, so a cluster under ``Adaptive`` grows with the jobs
waiting, and never retires a worker that holds one. A pool made without ``max_workers``
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
import hashlib
import itertools
import logging
import os
import pickle
import threading
from collections.abc import Awaitable, Callable, Coroutine, Mapping
from concurrent.futures import Executor, Future
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from qmk.defaults import DASK_CONNECT_S
from qmk.errors import UnavailableError
from qmk.execution.target import spec as target_spec
from qmk.kernel.pools.attempt import Attempt
from qmk.kernel.pools.dask_options import TlsFiles, check_exposure, parse_dask
from qmk.kernel.pools.dask_protocol import (
    ANSWERS,
    CLUSTER_CONFIG,
    NOTES_TOPIC,
    PLUGIN,
    Again,
    Lost,
    Raised,
    Returned,
    Stash,
)
from qmk.kernel.pools.pool import (
    TaskError,
    WorkerCpuLimit,
    WorkerDied,
    WorkerKilled,
    WorkerMemoryError,
)
from qmk.kernel.records.outcome import Ran, decode, encode

_log = logging.getLogger("qmk.kernel.dask")
_T = TypeVar("_T")

#: A job with at least this many shots is split over the workers (0: never).
SPLIT_SHOTS = 100_000
#: A split job's spec longer than this (pickled bytes) leaves the kernel once: it is put
#: on one worker, and its parts' workers fetch it from there.
STASH_BYTES = 1 << 20
#: The pool clears its notes from the scheduler's event log after this many.
NOTES_KEPT = 256
#: How many times a job is started again after its Dask worker died.
MAX_RESTARTS = 3
#: How often the pool looks at its client's connection to the scheduler.
WATCH_S = 0.25
#: How often the pool asks the scheduler which workers there are (and at once when a
#: call to a worker fails, or no worker is known).
REFRESH_S = 1.0
#: How long the pool waits for the scheduler's or a worker's answer to a question.
ASK_S = 5.0
#: How long an outcome waits for the checkpoint notes its job sent before it (they pass
#: the scheduler; a scheduler that went away meanwhile lost them).
NOTES_WAIT_S = 10.0
#: The kernel's queue goes to the scheduler when it changes (looked at every
#: :data:`WATCH_S`), and at least this often while it does not.
QUEUE_PUBLISH_S = 5.0
#: The scheduler forgets a kernel's queue this long after its last word.
QUEUE_TTL_S = 30.0


@dataclass(eq=False)
class _Worker:
    """A Dask worker that answered the pool's hello: it runs jobs."""

    address: str
    threads: int
    pid: int
    gone: asyncio.Future[str]  # done (with why) once the pool has lost it
    out: int = 0  # calls out to it now


@dataclass(eq=False)
class _Launch:
    """One attempt of a job (all of it, or a part): one call to one worker."""

    token: str
    part: int | None
    worker: _Worker | None = None  # where its call is out now
    notes: int = 0  # notes received
    early: list[Any] = field(default_factory=list)  # requests before its call went out


@dataclass(eq=False)
class _Job:
    future: Future[Any]
    fn: Callable[..., Any]
    spec: Any
    parts: int  # 0: not split
    listener: Callable[[Any], None] | None = None
    launches: dict[str, _Launch] = field(default_factory=dict)
    results: dict[int, Any] = field(default_factory=dict)
    spans: list[Any] = field(default_factory=list)  # the parts' worker spans (traced jobs)
    latest: str | None = None  # the kernel's file of its latest saved state
    restarts: int = 0
    waiting: dict[str, Returned | Raised] = field(default_factory=dict)  # answers short of notes
    packed: bytes | None = None  # a split job's spec, pickled once
    stash: asyncio.Task[Stash] | None = None  # its put on a worker (a big one)


class DaskPool(Executor):
    """Runs the kernel's jobs on a Dask cluster (see the module docstring).

    It is one ``Executor`` over a cluster that comes and goes, on one
    event loop. Submission, each attempt's call, the membership it learns from the
    scheduler, restarts after a lost worker and the notes of running jobs all read and
    change the same tables (jobs, attempts by token, workers). What holds no such state
    lives apart: the names on the wire (:mod:`.dask_protocol`), ``--dask``'s options and
    TLS (:mod:`.dask_options`), the workers' side (:mod:`.dask_worker`).

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
        self.split_shots = split_shots
        self.connect_s = connect_s
        self.options: dict[str, Any] = {
            "memory_mb": memory_mb,
            "cpu_s": cpu_s,
            "file_mb": file_mb,
            "job_pool": job_pool,
            "checkpoints": True,
        }
        self._lock = threading.Lock()
        self._jobs: dict[Future[Any], _Job] = {}
        self._shutdown = False
        #: Clear the notes from the scheduler's event log after this many (tests lower it).
        self.notes_kept = NOTES_KEPT
        #: How many jobs went out split into parts.
        self.split_jobs = 0
        #: Put a split job's spec on one worker from this size on (tests lower it).
        self.stash_bytes = STASH_BYTES
        #: How many specs the pool put on a worker for their parts to fetch.
        self.stashed = 0
        # the rest is the pool's loop's alone
        self._by_token: dict[str, tuple[_Job, _Launch]] = {}
        self._workers: dict[str, _Worker] = {}
        #: Workers the pool sends jobs to, and workers it lost since it started (plain
        #: ints, read by the kernel's metrics from another thread).
        self.known_workers = 0
        self.lost_workers = 0
        self._tasks: set[asyncio.Task[Any]] = set()
        self._kills: set[asyncio.Task[Any]] = set()  # of the tasks, those that send kills
        self._ids = itertools.count(1)
        self._prefix = os.urandom(4).hex()
        self._notes = 0
        self._comm_seen: Any = None
        self._demand: Callable[[], tuple[int, int]] | None = None
        self._capacity: Callable[[int], None] | None = None
        self._published: tuple[Any, ...] | None = None
        self._published_at = float("-inf")
        #: Whether the scheduler took the queue plugin (a scheduler without QMK cannot).
        self.queue_plugin = False
        self.client: Any = None
        self._closing: asyncio.Task[None] | None = None
        self._config = dask.config.set({**CLUSTER_CONFIG, **(held or {})})
        #: Whether :attr:`max_workers` follows the cluster's worker threads.
        self.follows = max_workers is None
        #: How many jobs the kernel runs at once.
        self.max_workers = max_workers or 1
        #: The loop that drives the pool (the caller's, or the pool's own thread's).
        self.loop = loop or asyncio.new_event_loop()
        self._loop_thread: int | None = None  # its thread's ident, once it runs the pool
        self._thread: threading.Thread | None = None
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
        self.max_workers = max_workers or max(threads, 1)

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
        future: Future[Any] = Future()
        future.set_running_or_notify_cancel()
        spec = args[0]
        job = _Job(future=future, fn=fn, spec=spec, parts=self._parts_of(spec))
        with self._lock:
            if self._shutdown:
                raise RuntimeError("cannot submit after shutdown")
            self._jobs[future] = job
        self._soon(self._launch, job)
        return future

    def cancel(self, future: Future[Any], reason: str = "cancelled") -> bool:
        """Stop ``future``'s job: its processes on the workers are SIGKILLed, and the
        future fails at once with :class:`WorkerKilled`. False when it had finished."""
        with self._lock:
            job = self._jobs.pop(future, None)
        if job is None:
            return False
        future.set_exception(WorkerKilled(reason, {"reason": reason}))
        with contextlib.suppress(RuntimeError):  # the loop has stopped: nothing runs
            self._soon(self._drop, job, reason)
        return True

    def listen(self, future: Future[Any], listener: Callable[[Any], None]) -> None:
        """Have ``listener(note)`` called with each checkpoint note of ``future``'s job
        (on the pool's loop, before the future completes)."""
        with self._lock:
            job = self._jobs.get(future)
            if job is not None:
                job.listener = listener

    def request(self, future: Future[Any], payload: Any) -> bool:
        """Send ``payload`` to ``future``'s running job (it reads it at its next fence).

        False for a job the pool does not hold, or a split one (its parts take no
        requests: the kernel preempts it by a kill and starts it again)."""
        with self._lock:
            job = self._jobs.get(future)
            if job is None or job.parts:
                return False
        self._soon(self._request, job, payload)
        return True

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        """Stop the pool (and a cluster it owns). With ``cancel_futures`` the jobs out
        are killed; else they run on, their results unread.

        Called on the thread of the loop that drives the pool, this cannot wait: the
        close runs as a task of that loop (:meth:`aclose` awaits it).
        """
        with self._lock:
            if self._shutdown:
                return
            self._shutdown = True
            jobs = list(self._jobs.values()) if cancel_futures else []
        for job in jobs:
            self.cancel(job.future, "shutdown")
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

    def watch_queue(
        self,
        demand: Callable[[], tuple[int, int]],
        capacity: Callable[[int], None] | None = None,
    ) -> None:
        """Publish the kernel's queue to the scheduler: ``demand()`` is (jobs queued in
        the kernel, jobs it has out), read on the pool's loop; ``capacity(n)`` is told
        each new :attr:`max_workers` of a pool that follows the cluster."""
        self._demand = demand
        self._capacity = capacity

    async def publish_queue(self) -> bool:
        """Publish the kernel's queue now (on the pool's loop); whether the scheduler
        took it (False: no queue to publish, no scheduler, or one without the plugin)."""
        said = self._queue_now()
        if said is None or not self.queue_plugin or self.client.status != "running":
            return False
        queued, running, busy, threads = said
        await asyncio.wait_for(
            self.client.scheduler.qmk_queue(
                kernel=self._prefix,
                queued=queued,
                running=running,
                busy=list(busy),
                threads=threads,
                ttl_s=QUEUE_TTL_S,
            ),
            ASK_S,
        )
        self._published, self._published_at = said, self.loop.time()
        return True

    def _queue_now(self) -> tuple[int, int, tuple[str, ...], int] | None:
        """(jobs queued in the kernel, jobs out, the workers holding them, threads per
        worker), or None while the kernel has not said where to read its queue."""
        if self._demand is None:
            return None
        queued, running = self._demand()
        busy = tuple(sorted(a for a, worker in self._workers.items() if worker.out))
        threads = max((worker.threads for worker in self._workers.values()), default=1)
        return int(queued), int(running), busy, threads

    async def _publish_if_due(self) -> None:
        if self._demand is None or not self.queue_plugin:
            return
        due = self.loop.time() - self._published_at >= QUEUE_PUBLISH_S
        if due or self._published != self._queue_now():
            await self.publish_queue()

    def workers(self) -> list[str]:
        """The addresses of the workers the pool sends jobs to now (they answered its
        hello)."""
        return self._call(self._known)

    async def _known(self) -> list[str]:
        return sorted(self._workers)

    def connected(self) -> bool:
        """Whether the pool's client has a scheduler now."""
        return self.client is not None and self.client.status == "running"

    def busy(self) -> int:
        """How many jobs the pool holds now."""
        with self._lock:
            return len(self._jobs)

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
        self._kills.discard(task)
        error = None if task.cancelled() else task.exception()
        if error is not None and not isinstance(error, _PutFailed):  # that one is handled
            _log.error("the Dask pool failed", exc_info=error)

    def _parts_of(self, attempt: Any) -> int:
        """How many parts ``attempt`` goes out as (0: whole): an attempt of ``split_shots``
        or more shots, on a target whose shots split (``TargetSpec.parts``), that resumes
        from no state."""
        if (
            not self.split_shots
            or not isinstance(attempt, Attempt)
            or not target_spec(attempt.request.target).parts
            or attempt.resume
            or attempt.request.shots < self.split_shots
        ):
            return 0
        parts = min(self.max_workers, attempt.request.shots // self.split_shots)
        return parts if parts > 1 else 0

    async def _open(self) -> int:
        """Connect to the scheduler, install the plugin; the cluster's worker threads."""
        from distributed import Client

        self._loop_thread = threading.get_ident()
        self._changed = asyncio.Event()
        self._note_queue: asyncio.Queue[Mapping[str, Any]] = asyncio.Queue()
        try:
            self.client = await Client(
                self.address,
                security=self.security,
                timeout=self.connect_s,
                asynchronous=True,
                set_as_default=False,
            )
        except (OSError, TimeoutError) as exc:
            raise UnavailableError(
                f"--dask: no Dask scheduler answers at {self.address}: {exc}"
            ) from None
        try:
            await self._attach()
            with contextlib.suppress(Exception):  # a cluster whose workers are still coming
                await self.client.wait_for_workers(1, timeout=self.connect_s)
            listed = await self._refresh()
        except BaseException as exc:
            with contextlib.suppress(Exception):
                await self.client.close()
            if isinstance(exc, (OSError, TimeoutError, asyncio.TimeoutError)):
                raise UnavailableError(
                    f"--dask: the Dask scheduler at {self.address} stopped answering: {exc!r}"
                ) from None
            raise
        self._spawn(self._watch())
        self._spawn(self._take_notes())
        return sum(listed.values())

    async def _attach(self) -> None:
        """On a (new) connection to a scheduler: the notes subscribed, the plugins there."""
        from qmk.kernel.pools.dask_worker import JobsPlugin

        self._comm_seen = self.client.scheduler_comm
        self.client.subscribe_topic(NOTES_TOPIC, self._on_note)
        try:
            await self.client.register_plugin(JobsPlugin(), name=PLUGIN)
        except (OSError, TimeoutError, asyncio.TimeoutError):
            raise
        except Exception as exc:  # a worker that cannot load it (no QMK there, another one)
            raise UnavailableError(
                f"--dask: a worker of {self.address} cannot take QMK's job handlers "
                f"({type(exc).__name__}: {exc}); install the same QMK on every worker"
            ) from None
        await self._attach_queue()

    async def _attach_queue(self) -> None:
        """The queue plugin on the scheduler; one that cannot load it (no QMK there)
        runs the jobs all the same, and its autoscaler does not see the queue."""
        from qmk.kernel.pools.dask_protocol import QUEUE_PLUGIN
        from qmk.kernel.pools.dask_scaler import QueuePlugin

        try:
            await self.client.register_plugin(QueuePlugin(), name=QUEUE_PLUGIN)
        except (OSError, TimeoutError, asyncio.TimeoutError):
            raise
        except Exception as exc:
            self.queue_plugin = False
            _log.warning(
                "the Dask scheduler at %s cannot take QMK's queue plugin (%s: %s): its "
                "adaptive target will not see the kernel's queue; install QMK beside it",
                self.address,
                type(exc).__name__,
                exc,
            )
            return
        self.queue_plugin = True
        self._published = None  # a new scheduler hears the queue at once

    async def _watch(self) -> None:
        """Keep the connection: a scheduler back after it went away gets the plugin and
        the subscription again; ask it which workers there are every REFRESH_S."""
        from distributed import Client

        refreshed = 0.0
        while True:
            await asyncio.sleep(WATCH_S)
            try:
                if self.client.status == "closed":  # it gave up reconnecting: a new one
                    try:
                        client = await Client(
                            self.address,
                            security=self.security,
                            timeout=1,
                            asynchronous=True,
                            set_as_default=False,
                        )
                    except (OSError, TimeoutError, asyncio.TimeoutError):
                        continue
                    old, self.client = self.client, client
                    with contextlib.suppress(Exception):
                        await old.close()
                if self.client.status != "running":
                    continue
                if self.client.scheduler_comm is not self._comm_seen:
                    await self._attach()
                    refreshed = 0.0
                now = self.loop.time()
                if now - refreshed >= REFRESH_S or self._stale:
                    refreshed = now
                    await self._refresh()
                await self._publish_if_due()
            except (OSError, TimeoutError, asyncio.TimeoutError) as exc:  # it went away
                _log.info("the Dask scheduler did not answer: %r", exc)
            except UnavailableError as exc:  # a new scheduler's workers refuse the plugin
                _log.error("%s", exc)
            except Exception:  # a bug of ours must not end the watch
                _log.exception("the Dask pool's watch failed")

    _stale = False  # a call failed or no worker was known: ask the scheduler at once

    async def _refresh(self) -> dict[str, int]:
        """Take the scheduler's list of workers: the ones gone are lost (their jobs
        start again elsewhere), the new ones that answer a hello take jobs. Returns the
        list (address -> threads)."""
        self._stale = False
        listed = await asyncio.wait_for(self.client.nthreads(), ASK_S)
        for address, worker in list(self._workers.items()):
            if address not in listed:
                self._lose(worker, "its Dask worker left the cluster")
        new = [address for address in listed if address not in self._workers]
        for address, hello in zip(new, await asyncio.gather(*map(self._hello, new)), strict=True):
            if hello is not None and address in listed and address not in self._workers:
                self._workers[address] = _Worker(
                    address=address,
                    threads=max(int(hello["threads"]), 1),
                    pid=int(hello["pid"]),
                    gone=self.loop.create_future(),
                )
        self.known_workers = len(self._workers)
        self._follow()
        self._changed.set()
        return dict(listed)

    def _follow(self) -> None:
        """A pool that follows the cluster runs as many jobs as it has threads now."""
        if not self.follows:
            return
        threads = max(sum(worker.threads for worker in self._workers.values()), 1)
        if threads != self.max_workers:
            self.max_workers = threads
            if self._capacity is not None:
                self._capacity(threads)

    async def _hello(self, address: str) -> Mapping[str, Any] | None:
        """The worker's hello: None if it does not answer, or has no handlers (yet)."""
        try:
            hello = await asyncio.wait_for(self.client.rpc(address).qmk_hello(), ASK_S)
        except (OSError, TimeoutError, asyncio.TimeoutError):
            return None
        return hello if isinstance(hello, Mapping) else None

    def _lose(self, worker: _Worker, why: str) -> None:
        """The pool no longer sends ``worker`` jobs; the calls out to it end (``why``)."""
        if self._workers.get(worker.address) is worker:
            del self._workers[worker.address]
            self.known_workers = len(self._workers)
            self._follow()
        if not worker.gone.done():
            worker.gone.set_result(why)
            self.lost_workers += 1
        self._stale = True

    def _launch(self, job: _Job) -> None:
        if job.future.done():
            return
        if not job.parts:
            self._start(job, None)
            return
        self.split_jobs += 1
        for k in range(job.parts):
            self._start(job, k)

    def _start(self, job: _Job, part: int | None) -> None:
        """One attempt of ``job`` (all of it, or ``part``), under a token of its own."""
        launch = _Launch(token=f"qmk-{self._prefix}-{next(self._ids)}", part=part)
        job.launches[launch.token] = launch
        self._by_token[launch.token] = (job, launch)
        self._spawn(self._go(job, launch))

    def _current(self, job: _Job, launch: _Launch) -> bool:
        return not job.future.done() and self._by_token.get(launch.token, (None, None))[1] is launch

    async def _pick(self, job: _Job, launch: _Launch) -> _Worker | None:
        """The worker with the fewest calls out per thread (waits while there is none,
        or no scheduler: Dask workers close without theirs); None once the attempt is
        over."""
        while True:
            if not self._current(job, launch):
                return None
            best: _Worker | None = None
            if self.client.status == "running":
                for worker in self._workers.values():
                    if best is None or worker.out * best.threads < best.out * worker.threads:
                        best = worker
            if best is not None:
                return best
            self._stale = True
            self._changed.clear()
            await self._changed.wait()

    async def _go(self, job: _Job, launch: _Launch) -> None:
        """Send the attempt to a worker and take its outcome; start it again elsewhere if
        the worker is lost on the way."""
        resume = None
        if launch.part is None and isinstance(job.spec, Attempt):
            path = job.latest or job.spec.resume
            if path:
                resume = await asyncio.to_thread(_read, str(path))
        worker = await self._pick(job, launch)
        if worker is None:
            return
        launch.worker = worker
        worker.out += 1  # now: the next part's pick sees it, while this one gets ready
        try:
            await self._send(job, launch, worker, resume)
        finally:
            worker.out -= 1
            launch.worker = None

    async def _send(self, job: _Job, launch: _Launch, worker: _Worker, resume: Any) -> None:
        early, launch.early = launch.early, []
        try:
            spec = await self._stashed(job, worker) if job.parts else job.spec
            part = None if launch.part is None else [launch.part, job.parts]
            call = (launch.token, job.fn, spec, part, resume, self.options, early or None)
            blob = pickle.dumps(call, protocol=pickle.HIGHEST_PROTOCOL)
        except _PutFailed as exc:  # the worker that was to hold the spec is gone
            lost = self._workers.get(exc.address)
            if lost is not None:
                self._lose(lost, str(exc))
            await self._again(job, launch, worker, str(exc))
            return
        except Exception as exc:  # a function or spec that does not pickle
            self._fail(job, WorkerDied(f"cannot send the job to its worker: {exc!r}"))
            return
        answer = asyncio.ensure_future(self.client.rpc(worker.address).qmk_run(call=blob))
        answer.add_done_callback(_retrieved)
        try:
            await asyncio.wait((answer, worker.gone), return_when=asyncio.FIRST_COMPLETED)
        finally:
            cut = not answer.done()
            if cut:  # the scheduler dropped the worker first (or the pool closes)
                answer.cancel()  # asked: the task ends at its next turn
        if cut or answer.cancelled():
            why = str(worker.gone.result()) if worker.gone.done() else "the call was cancelled"
            await self._again(job, launch, worker, why, kill=True)
            return
        error = answer.exception()
        if isinstance(error, OSError):  # CommClosedError too: the worker is unreachable
            self._lose(worker, f"{type(error).__name__}: {error}")
            why = f"its Dask worker was lost ({error})"
            await self._again(job, launch, worker, why, kill=True)
            return
        if error is not None:
            if self._current(job, launch):
                self._fail(job, WorkerDied(f"cannot send the job to its worker: {error!r}"))
            return
        reply = answer.result()
        if not isinstance(reply, bytes):  # no handler answered: a worker still starting
            self._lose(worker, "it has no qmk handlers")
            await self._again(job, launch, worker, None)
            return
        answer = pickle.loads(reply)
        if not isinstance(answer, ANSWERS):  # a worker of another QMK's version
            if self._current(job, launch):
                message = f"its Dask worker's answer is not one of this QMK: {str(answer)[:200]}"
                self._fail(job, WorkerDied(message))
        elif isinstance(answer, Lost):  # its worker closed under it
            self._lose(worker, answer.why)
            await self._again(job, launch, worker, answer.why)
        elif isinstance(answer, Again):  # it could not fetch the spec: put it anew
            job.stash = None
            await self._again(job, launch, worker, answer.why)
        elif self._current(job, launch):
            self._outcome(job, launch, answer)

    async def _stashed(self, job: _Job, worker: _Worker) -> Any:
        """A split job's spec as its part's call carries it: itself, or, past
        ``stash_bytes``, a :class:`Stash` of it, put once on ``worker`` (the first part's;
        the others wait for that put, then fetch it from there)."""
        if job.packed is None:
            job.packed = pickle.dumps(job.spec, protocol=pickle.HIGHEST_PROTOCOL)
        if len(job.packed) <= self.stash_bytes:
            return job.spec
        task = job.stash
        if task is None or (
            task.done()
            and (
                task.cancelled()
                or task.exception() is not None
                or task.result().address not in self._workers
            )
        ):
            task = job.stash = self._spawn(self._put(job.packed, worker.address))
        return await asyncio.shield(task)

    async def _put(self, packed: bytes, address: str) -> Stash:
        digest = hashlib.sha256(packed).hexdigest()
        try:
            await asyncio.wait_for(
                self.client.rpc(address).qmk_put(digest=digest, data=packed), ASK_S * 12
            )
        except (OSError, TimeoutError, asyncio.TimeoutError) as exc:
            message = f"cannot put the job's program on {address}: {exc!r}"
            raise _PutFailed(address, message) from None
        self.stashed += 1
        return Stash(digest=digest, address=address)

    async def _again(
        self, job: _Job, launch: _Launch, worker: _Worker, why: str | None, *, kill: bool = False
    ) -> None:
        """Start ``launch`` again as a new attempt: from the job's latest state if it
        saved one. ``why`` counts as a restart unless the scheduler is gone too (then the
        workers went with it: the attempt waits for it) or is None (nothing ran). With
        ``kill`` the old attempt may still run at ``worker`` (only its call was lost):
        it is killed there."""
        if not self._current(job, launch):
            return
        del job.launches[launch.token]
        del self._by_token[launch.token]
        if kill:
            self._kill_at(worker.address, [launch.token], "started again elsewhere")
        if why is not None and await self._scheduler_answers():
            job.restarts += 1
            if job.restarts > MAX_RESTARTS:
                self._fail(
                    job, WorkerDied(f"{why} {job.restarts} times", {"restarts": job.restarts})
                )
                return
            _log.warning("job task %s: %s; started again (%d)", launch.token, why, job.restarts)
        self._start(job, launch.part)

    async def _scheduler_answers(self) -> bool:
        if self.client.status != "running":
            return False
        try:
            await asyncio.wait_for(self.client.nthreads(), ASK_S)
        except (OSError, TimeoutError, asyncio.TimeoutError):
            return False
        return self.client.status == "running"

    def _kill_at(self, address: str, tokens: list[str], reason: str) -> None:
        """SIGKILL the attempts of ``tokens`` on the worker at ``address`` (if it lives)."""
        call = self.client.rpc(address).qmk_kill(tokens=tokens, reason=reason)
        self._kills.add(self._spawn(_quietly(call)))

    def _drop(self, job: _Job, reason: str) -> None:
        """Take ``job``'s attempts out of the tables; kill those out on workers."""
        launches = list(job.launches.values())
        job.launches.clear()
        job.waiting.clear()
        by_worker: dict[str, list[str]] = {}
        for launch in launches:
            self._by_token.pop(launch.token, None)
            if launch.worker is not None:
                by_worker.setdefault(launch.worker.address, []).append(launch.token)
        for address, tokens in by_worker.items():
            self._kill_at(address, tokens, reason)

    def _request(self, job: _Job, payload: Any) -> None:
        for launch in job.launches.values():  # one (a split job takes none)
            if launch.worker is None:
                launch.early.append(payload)  # it goes with the call
                continue
            call = self.client.rpc(launch.worker.address).qmk_request(
                token=launch.token, payload=pickle.dumps(payload)
            )
            self._spawn(_quietly(call))

    def _outcome(self, job: _Job, launch: _Launch, answer: Returned | Raised) -> None:
        if launch.notes < answer.notes:  # its notes are still on their way: they go first
            job.waiting[launch.token] = answer
            self.loop.call_later(NOTES_WAIT_S, self._notes_late, job, launch)
            return
        del job.launches[launch.token]
        del self._by_token[launch.token]
        if isinstance(answer, Raised):
            self._fail(job, _error(answer.kind, answer.message, answer.data))
            return
        value = answer.value  # the job's outcome, as plain data (qmk.kernel.records.outcome)
        if launch.part is None:
            self._finish(job, value)
            return
        try:
            part = decode(value)
        except ValueError:  # msgspec.ValidationError: no outcome
            part = None
        if not isinstance(part, Ran):
            self._finish(job, value)  # a part failed (or stopped): the job did
            return
        job.results[launch.part] = part.result
        job.spans.extend(part.spans)
        if len(job.results) == job.parts:
            from qmk.execution.parts import merge_json

            merged = merge_json([job.results[k] for k in range(job.parts)])
            self._finish(job, encode(Ran(result=merged, spans=job.spans)))

    def _notes_late(self, job: _Job, launch: _Launch) -> None:
        """An outcome waited NOTES_WAIT_S for notes that never came: it goes on."""
        waiting = job.waiting.pop(launch.token, None)
        if waiting is not None and self._current(job, launch):
            _log.warning(
                "job task %s: %d checkpoint notes lost", launch.token, waiting.notes - launch.notes
            )
            launch.notes = waiting.notes
            self._outcome(job, launch, waiting)

    def _finish(self, job: _Job, value: Any) -> None:
        if self._forget(job):
            job.future.set_result(value)

    def _fail(self, job: _Job, error: BaseException) -> None:
        if self._forget(job):
            job.future.set_exception(error)

    def _forget(self, job: _Job) -> bool:
        """Take ``job`` out of the tables (its other attempts killed); False if it was out."""
        with self._lock:
            if self._jobs.pop(job.future, None) is None:
                return False
        self._drop(job, "the job ended")
        return True

    def _on_note(self, event: Any) -> None:
        """The client's handler of a note (on the pool's loop): taken in order."""
        _, message = event
        if isinstance(message, Mapping):
            self._note_queue.put_nowait(message)

    async def _take_notes(self) -> None:
        while True:
            await self._note(await self._note_queue.get())

    async def _note(self, message: Mapping[str, Any]) -> None:
        self._notes += 1
        if self._notes % self.notes_kept == 0:  # the scheduler keeps the events it passed on
            from qmk.kernel.pools.dask_worker import truncate_notes

            await _quietly(self.client.run_on_scheduler(truncate_notes))  # in order
        token = str(message.get("token"))
        found = self._by_token.get(token)
        if found is None:
            return
        job, launch = found
        note = dict(message.get("note") or {})
        data = message.get("data")
        target = job.spec.checkpoint_dir if isinstance(job.spec, Attempt) else None
        if data is not None and target is not None and note.get("path"):
            path = Path(str(target)) / Path(str(note["path"])).name
            await asyncio.to_thread(_write, path, data)
            note["path"] = str(path)
            job.latest = str(path)
        launch.notes += 1
        if job.listener is not None and self._current(job, launch):
            job.listener(note)
        waiting = job.waiting.get(token)
        if waiting is not None and launch.notes >= waiting.notes:
            del job.waiting[token]
            if self._current(job, launch):
                self._outcome(job, launch, waiting)

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
            kills = [task for task in self._kills if not task.done()]
            if kills:
                await asyncio.wait(kills, timeout=5)
            tasks = list(self._tasks)
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            if self.client is not None:
                with contextlib.suppress(Exception):
                    self.client.unsubscribe_topic(NOTES_TOPIC)
                with contextlib.suppress(Exception):
                    await self.client.close(timeout=5)
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


class _PutFailed(Exception):
    def __init__(self, address: str, message: str) -> None:
        super().__init__(message)
        self.address = address


def _retrieved(call: asyncio.Future[Any]) -> None:
    """A call's failure is read where it matters; this keeps asyncio from logging one
    that ended after its attempt did (cancelled, its worker lost)."""
    if not call.cancelled():
        call.exception()


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


async def _quietly(call: Awaitable[Any]) -> None:
    """A call whose failure says nothing (its worker gone, the scheduler away)."""
    with contextlib.suppress(Exception):
        await asyncio.wait_for(call, 10)


def _error(kind: str, message: str, data: dict[str, Any]) -> TaskError:
    cls: type[TaskError] = {
        "memory": WorkerMemoryError,
        "cpu": WorkerCpuLimit,
        "killed": WorkerKilled,
        "died": WorkerDied,
    }.get(kind, TaskError)
    return cls(message, data)


def _read(path: str | None) -> bytes | None:
    if not path:
        return None
    try:
        return Path(path).read_bytes()
    except OSError:
        return None


def _write(path: Path, data: bytes) -> None:
    """Write a state file atomically, 0600 in 0700 folders (as the executor's
    ``write_state`` does)."""
    from qmk.execution.checkpoint import private_dirs

    private_dirs(path.parent)
    temporary = path.with_name(f".{path.name}.tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(temporary, path)


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
    "DaskPool",
    "dask_pool",
    "local_cluster",
]
