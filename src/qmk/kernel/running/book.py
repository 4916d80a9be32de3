"""The jobs of one kernel that the supervisor's parts share, and the moves between their states.

Every path of the supervisor (a start, a worker's answer, a cancel, a timeout, a deadline,
a preemption, a failed module) moves a job between the queue, a worker and a final
state. Each must change the same tables in one loop turn: the queue, the running
attempts, the resources they hold, the job's record and its waiters. :class:`JobBook`
holds those tables, the kernel's parts they are written through (store, audit, commits,
the worker pool, the checkpoints, the placement) and the moves every path makes
(:meth:`~JobBook.transition`, :meth:`~JobBook.finish`, :meth:`~JobBook.release`,
:meth:`~JobBook.stop`, :meth:`~JobBook.enqueue`). The parts that decide the moves sit
beside it, each holding the book: the dispatcher (:mod:`.dispatch`), the runs on workers
(:mod:`.runs`), the epochs, deadlines and preemption (:mod:`.epochs`), and the syscalls'
side, the :class:`~qmk.kernel.running.supervisor.Supervisor`.
"""

from __future__ import annotations

import asyncio
import math
import threading
from collections import Counter, OrderedDict
from collections.abc import Callable, Coroutine
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from msgspec.structs import replace

from qmk import aio
from qmk.abi.probe import WorkerTraces
from qmk.execution.request import MachineRun
from qmk.kernel.admit.cache import ResultCache
from qmk.kernel.admit.channels import ChannelTable
from qmk.kernel.admit.faults import FaultPolicies, device_for
from qmk.kernel.admit.scheduler import FairQueue
from qmk.kernel.clock import Clock, MachineClock, Rest
from qmk.kernel.config import KernelConfig
from qmk.kernel.datafiles import ARTIFACTS
from qmk.kernel.device import LogicalMachine
from qmk.kernel.machine.spec import MachineSpec
from qmk.kernel.pools.attempt import Attempt
from qmk.kernel.records.jobs import Job
from qmk.kernel.records.programs import limits_of
from qmk.kernel.running.checkpoints import Checkpoints
from qmk.kernel.running.shared_machine import SharedMachine
from qmk.kernel.running.waits import Waits
from qmk.kernel.security.attest import Attested
from qmk.kernel.storage.audit import AuditLog
from qmk.kernel.storage.billing import Ledger
from qmk.kernel.storage.commit import GroupCommit
from qmk.kernel.storage.results import Results
from qmk.kernel.storage.store import Store

if TYPE_CHECKING:
    from qmk.kernel.storage.artifacts import Artifacts

#: How many recently finished jobs stay in memory (q_status/q_wait skip the database):
#: a client's batch of a few thousand jobs, submitted first and then waited for, is
#: answered from memory (with 1,024, half of a 2,000-job batch at 8 clients was read
#: back from the database).
FINISHED_CACHE_SIZE = 4096
#: ... and at most about this many bytes of their programs' texts and results.
FINISHED_CACHE_BYTES = 256 * 2**20


def _result_bytes(job: Job) -> int:
    """About how many bytes ``job`` holds: its program's text and its result's."""
    return 256 + len(job.graph) + (0 if job.result is None else job.result.nbytes)


@dataclass(slots=True, kw_only=True, eq=False)
class Running:
    """One attempt of a job on a worker: the pool's future and when its timeout ends it."""

    future: Future[Any]
    attempt: int
    #: What the worker was asked to run (the attestation records its request).
    work: Attempt | None = None
    #: When the job's timeout ends it, on the kernel's clock (:mod:`.runs`).
    ends_at: float = math.inf


@dataclass(slots=True, eq=False)
class _End:
    """A job's end as :meth:`JobBook.finish` writes it, kept until the commit that holds
    it is made (written again when that commit fails)."""

    job: Job
    state: str
    error: dict[str, Any] | None
    attested: Attested | None
    #: The job's usage records before this end (:attr:`Job.ends`).
    ends_before: int | None


def cancel_task(task: asyncio.Task[None] | None) -> None:
    """Cancel ``task``, unless it is the one running (it is ending on its own then)."""
    if task is not None and task is not asyncio.current_task():
        task.cancel()


class JobBook:
    """The tables of the jobs a kernel holds, and the moves between their states (see the
    module docstring).

    Args:
        config: the kernel configuration (machine inventory, quotas, epoch and timeouts).
        store: the database, written through ``commits``.
        audit: the audit log.
        commits: the group commit.
        channels: the channel table (bound channels are checked again at start).
        pool: the worker pool (``submit``, ``cancel``, ``shutdown``, ``max_workers``;
            ``listen`` and ``request`` for checkpoints and preemption at fences).
        clock: the kernel's clock.
        device: the machine (default: the simulated logical machine of ``config``).
        checkpoint_dir: where running jobs save their execution states (one folder per
            job); None: jobs save none, and are preempted by a kill and a restart.
        machine_clock: the shared machine's clock (default: ``config``'s).
        machine: the shared machine (default: ``config``'s, derived here).
    """

    def __init__(
        self,
        config: KernelConfig,
        *,
        store: Store,
        audit: AuditLog,
        commits: GroupCommit,
        channels: ChannelTable,
        pool: Any,
        clock: Clock,
        device: LogicalMachine | None = None,
        checkpoint_dir: Path | None = None,
        machine_clock: MachineClock | None = None,
        machine: MachineSpec | None = None,
    ) -> None:
        self.config = config
        self.checkpoint_dir = checkpoint_dir
        self.store = store
        self.audit = audit
        self.commits = commits
        self.channels = channels
        self.pool = pool
        self.clock = clock
        self.checkpoints = Checkpoints(
            config,
            store=store,
            audit=audit,
            commits=commits,
            clock=clock,
            directory=checkpoint_dir,
            epoch=lambda: self.epoch,
            pool=pool,
        )
        self.workers: int = getattr(pool, "max_workers", 1)
        #: The capabilities live delegations lend a tenant now (the kernel's
        #: :mod:`~qmk.kernel.security.delegations`): a job's caps are checked again at its start.
        self.lent_caps: Callable[[str], frozenset[str]] = lambda tenant: frozenset()
        #: The kernel's other retention sweeps, run at each epoch with the time; each
        #: returns what it deleted (anything: the database changed).
        self.sweeps: list[Callable[[float], Any]] = []
        #: The key jobs' execution states are sealed with (the kernel's, derived from its
        #: secret: :mod:`qmk.kernel.security.seals`); None: unsealed.
        self.state_key: bytes | None = None
        self.queue = FairQueue()
        self.jobs: dict[str, Job] = {}  # every job not yet final
        self.finished: OrderedDict[str, Job] = OrderedDict()  # recently final, newest last
        self.finished_bytes = 0  # their results' size (about), and each one's
        self.finished_size: dict[str, int] = {}
        self.running: dict[str, Running] = {}
        self.epoch = 0
        #: The epoch ticker rests while the kernel holds no job (:class:`~qmk.kernel.clock.Rest`).
        self.rest = Rest(lambda: not self.jobs)
        self.physical_in_use = 0
        self.logical_in_use: Counter[str] = Counter()
        self.running_jobs: Counter[str] = Counter()
        #: The waits for jobs' ends (q_wait's, a submit's ``wait_ms``): settled at the end.
        self.waits = Waits(clock)
        #: The jobs' ends written in the open transaction (:meth:`_write_end`).
        self._ends: list[_End] = []
        self.deadlines: dict[str, asyncio.Task[None]] = {}
        self.kicked = asyncio.Event()
        #: True while a worker's answer is taken in the pool's callback: the dispatch
        #: round that follows it in the same turn looks at the queue as a kick would
        #: (:meth:`~qmk.kernel.running.runs.Runs.answered`), so the dispatcher's task is
        #: not woken for it.
        self.round_follows = False
        self.group: aio.TaskGroup | None = None
        self.starting = True  # False once the kernel closes: no job starts any more
        self.loop = asyncio.get_running_loop()
        self.thread_id = threading.get_ident()
        #: The device, the jobs' placement and the fault policies (:mod:`~qmk.kernel.admit.faults`).
        self.faults = FaultPolicies(device or device_for(config), audit, limits=limits_of(config))
        self.device = self.faults.device
        self.placement = self.faults.placement
        #: Stored results: each tenant's bytes, their expiry, pages
        #: (:mod:`~qmk.kernel.storage.results`).
        self.results = Results(config, store, audit)
        #: Device jobs' artifacts: streamed, stored, bounded (:mod:`~qmk.kernel.storage.artifacts`).
        #: None until there are some: made where the data directory holds an artifacts
        #: folder, else by the first device job that streams (:meth:`stored_artifacts`).
        self.artifacts: Artifacts | None = None
        self._artifacts_dir = None if checkpoint_dir is None else checkpoint_dir.parent / ARTIFACTS
        if self._artifacts_dir is not None and self._artifacts_dir.is_dir():
            self.stored_artifacts()
        #: The tracer of the workers' spans (``qmk serve --trace``), else None.
        self.traces: WorkerTraces | None = None
        #: Completed runs' results answering submits of the same run
        #: (:mod:`~qmk.kernel.admit.cache`).
        self.cache = ResultCache(config, store, self.faults, self.finished.get)
        #: Each job end's usage record and webhook (:mod:`~qmk.kernel.storage.billing`).
        self.ledger = Ledger(config, store)
        #: The shared machine: a job's schedule in machine time is fixed before a worker
        #: computes its outcomes (:mod:`.shared_machine`).
        self.machine = SharedMachine(config, self.scheduled, clock=machine_clock, spec=machine)

    def spawn(self, coro: Coroutine[Any, Any, None]) -> asyncio.Task[None] | None:
        """``coro`` as a task of the kernel's group; None (and not run) when there is none."""
        if self.group is None or not self.starting:
            coro.close()
            return None
        return self.group.create_task(coro)

    def kick(self) -> None:
        """Have the dispatcher look at the queue (soon, once per loop turn), unless a
        round of it follows at once anyway (:attr:`round_follows`)."""
        if not self.round_follows:
            self.kicked.set()

    def quota(self, tenant: str) -> Any:
        """``tenant``'s table of the configuration, or None."""
        return self.config.tenants.get(tenant)

    def stored_artifacts(self) -> Artifacts:
        """Device jobs' artifacts (:attr:`artifacts`), made at the first ask: a kernel
        whose jobs stream none never loads them."""
        if self.artifacts is None:
            from qmk.kernel.storage.artifacts import Artifacts

            self.artifacts = Artifacts(self.config, self.audit, self._artifacts_dir)
        return self.artifacts

    # ------------------------------------------------------------------ transitions

    def transition(self, job: Job, state: str, **fields: Any) -> None:
        """Move ``job`` to ``state``: database row and audit line, committed lazily.

        A syscall that reports the transition awaits ``commits.durable()`` before replying.
        """
        job.state = state
        self.store.save_job(job)
        self.audit.append("job", job_id=job.job_id, tenant=job.tenant, state=state, **fields)
        self.commits.dirty(urgent=False)

    def finish(
        self,
        job: Job,
        state: str,
        error: dict[str, Any] | None = None,
        attested: Attested | None = None,
    ) -> None:
        """End ``job`` in the final ``state`` (with ``error``): its row, audit line and
        usage record, and everything that waited on it. ``attested``: a completed job's
        attestation (:func:`~qmk.kernel.security.attest.attested`), which its line
        carries."""
        job_id = job.job_id
        job.finished_at = self.clock.now()
        job.error = error
        self._write_end(_End(job, state, error, attested, job.ends))
        if self.artifacts is not None:  # parts streamed while it ran, if it had no result
            self.artifacts.forget(job_id)
        self.jobs.pop(job_id, None)
        self.remember(job)
        self.queue.remove(job_id)
        deadline = self.deadlines.pop(job_id, None)
        if deadline is not None:
            cancel_task(deadline)
        self.waits.ended(job_id)
        self.kick()

    def _write_end(self, end: _End) -> None:
        """Write ``end`` into the open transaction: the job's row, its audit line (with
        its attestation) and its usage record; the ends of a transaction are told how
        its commit went together, by one rider of it (:meth:`_ends_told`)."""
        job, state, error = end.job, end.state, end.error
        # the transition (:meth:`transition`), its line's fields made once, as a dict
        line = {"job_id": job.job_id, "tenant": job.tenant, "state": state}
        if error is not None and error["message"]:
            line["reason"] = error["message"]
        # chained: what its stored row must hold (kernel/security/seals)
        stored = None if job.result is None else job.result.sha256
        job.state = state
        self.store.save_job(job)
        attested = end.attested
        if attested is not None:  # the run request, then the rest, after the head
            rest = attested.rest
            if stored is not None:
                rest["stored_sha256"] = stored
            self.audit.append_run("job", line, attested.request, rest)
        else:
            if stored is not None:
                line["stored_sha256"] = stored
            self.audit.append("job", line)
        if self._ends:
            self.commits.dirty(urgent=False)
        else:  # the first end of this transaction: its commit tells them all
            self.commits.after(self._ends_told)
        self._ends.append(end)
        job.ended_in = self.commits.number
        self.ledger.job_ended(job)  # in the transaction of the end state

    def _ends_told(self, error: BaseException | None) -> None:
        """The commit that held the ends written since the last one went as ``error``
        says (None: committed). One that failed took their rows, lines and usage records
        with it, and their waits were answered its error: each is written again into the
        next transaction, so that no answer calls it final (:meth:`GroupCommit.holds
        <qmk.kernel.storage.commit.GroupCommit.holds>` of its new ``ended_in``) before a
        commit holds it. A job whose acceptance was in that commit too is not: it is
        taken back whole (the acceptance's own rider, or the cache hit's answer), and one
        that moved on since (a restore) has newer writes of its own."""
        ends, self._ends = self._ends, []
        if error is None:
            return
        for end in ends:
            job = end.job
            if job.state == end.state and self.store.committed_job(job.job_id):
                job.ends = end.ends_before
                self._write_end(end)

    def remember(self, job: Job) -> None:
        """Keep ``job`` among the recently finished, within :data:`FINISHED_CACHE_SIZE`
        jobs and :data:`FINISHED_CACHE_BYTES` of results (older ones are read from the
        database when asked for)."""
        if job.job_id in self.finished_size:
            self.forget(job.job_id)
        self.finished[job.job_id] = job
        size = self.finished_size[job.job_id] = _result_bytes(job)
        self.finished_bytes += size
        while len(self.finished) > 1 and (
            len(self.finished) > FINISHED_CACHE_SIZE or self.finished_bytes > FINISHED_CACHE_BYTES
        ):
            dropped, _ = self.finished.popitem(last=False)
            self.finished_bytes -= self.finished_size.pop(dropped, 0)

    def forget(self, job_id: str) -> None:
        """Drop ``job_id`` from the recently finished (if it is there)."""
        self.finished.pop(job_id, None)
        self.finished_bytes -= self.finished_size.pop(job_id, 0)

    def release(self, job: Job) -> None:
        """Free the resources ``job``'s start reserved."""
        self.physical_in_use -= job.physical_qubits
        for tenant, count in job.qubits.items():
            self.logical_in_use[tenant] -= count
        self.running_jobs[job.tenant] -= 1
        self.placement.release(job)

    def stop(self, job: Job, reason: str) -> None:
        """Take ``job`` off the machine, the queue or its worker (killing it) and free its
        resources."""
        if self.machine.withdraw(job.job_id) or self.queue.remove(job.job_id) is not None:
            return
        run = self.running.pop(job.job_id, None)
        if run is None:
            return
        self.pool.cancel(run.future, reason)
        self.release(job)
        self.checkpoints.attempt_ended(job)

    # ------------------------------------------------------------------ the machine

    def enqueue(self, job: Job) -> bool:
        """``job`` waits for its schedule on the shared machine, or, when it has one or
        the machine does not hold it, for a worker (:mod:`.shared_machine`): True then,
        and the caller kicks the dispatcher when it may start it (the machine's end of a
        schedule kicks it itself: :meth:`scheduled`)."""
        self.rest.wake()
        if self.machine.offer(job):
            return False
        self.queue.push(job)
        return True

    def scheduled(self, job: Job, run: MachineRun) -> None:
        """``job``'s schedule on the shared machine ended: it is in its request from now
        on (stored with the job's start, so a job recovered once started keeps it; one
        recovered still queued is scheduled again), and the job waits for a worker."""
        if job.final or self.jobs.get(job.job_id) is not job:
            return
        job.request = replace(job.request, machine=run)
        self.store.save_request(job)
        self.commits.dirty(urgent=False)
        self.queue.push(job)
        self.kick()


__all__ = ["FINISHED_CACHE_BYTES", "FINISHED_CACHE_SIZE", "JobBook", "Running", "cancel_task"]
