"""The supervisor: starts jobs on workers and stops them (cancel, timeout, deadline, preemption).

It owns the jobs that are not final, the fair run queue, the resources running jobs hold
(physical qubits, logical qubits per tenant, running jobs per tenant), the worker pool and
the epoch counter. Its tasks all live in the kernel's task group (:meth:`Supervisor.start`):

- the **dispatcher** sleeps on an event that :meth:`Supervisor.kick` sets whenever a job is
  queued or resources are freed, and starts as many fitting jobs as there are free workers;
- one task per **run attempt** awaits the worker's answer inside the job's timeout scope
  (``timeout_ms`` counted from the start); a cancel, preemption, deadline or restore
  cancels it and kills the worker;
- one task per job with a **deadline** holds a timeout scope at that deadline for the
  job's life, queued or running; the job's end cancels it;
- the **ticker** counts epochs on the clock (:meth:`~qmk.kernel.clock.Clock.epochs`): the
  only periodic wake-up of the kernel, and the only place where preemption is decided.

Checkpoints and preemption reach a running job through the worker pool's requests
(:meth:`~qmk.kernel.pools.pool.WorkerPool.request`): the job's executor answers at its next
``FENCE_EPOCH`` (or at once, rolling back its open REV segment, for ``yield-now``),
saving its execution state under ``checkpoints/<job_id>/`` in the data directory and
telling the kernel in a note (:meth:`Supervisor._noted`); a job started again (restore,
preemption, recovery after a crash) resumes from its checkpoint's state. A victim with no
fence to stop at is stopped at once instead (its worker killed) and runs again from its
latest checkpoint; an urgent job takes one victim.

Nothing is polled and no callback or timer lives outside the group: closing the kernel
cancels the group, and with it every one of these. Time is the kernel's
:class:`~qmk.kernel.clock.Clock`, so a test can drive timeouts, deadlines and epochs.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections import Counter, OrderedDict
from collections.abc import Callable, Coroutine, Mapping
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from msgspec.structs import replace

from qmk import aio
from qmk.devices.logical import LogicalMachine
from qmk.errors import (
    AdmissionError,
    CapabilityError,
    FirewallError,
    NotFoundError,
    QMKError,
    QuotaError,
    StateError,
)
from qmk.execution.request import MachineRun, RunRequest
from qmk.execution.target import spec as target_spec
from qmk.http.probe import WorkerTraces
from qmk.kernel.admit.cache import Hit, ResultCache
from qmk.kernel.admit.channels import ChannelTable
from qmk.kernel.admit.faults import FaultPolicies, device_for
from qmk.kernel.admit.scheduler import FairQueue
from qmk.kernel.admit.teleport import spans, telemetry_of
from qmk.kernel.clock import Clock, MachineClock
from qmk.kernel.config import KernelConfig
from qmk.kernel.errors import JobError, error_json
from qmk.kernel.pools.attempt import Attempt, run_job
from qmk.kernel.pools.pool import TaskError, WorkerMemoryError
from qmk.kernel.records import jobs as J
from qmk.kernel.records.jobs import Job
from qmk.kernel.records.outcome import Done, Outcome, Ran, Yielded, decode
from qmk.kernel.records.programs import verified
from qmk.kernel.records.stored import result_of, with_telemetry
from qmk.kernel.running.checkpoints import Checkpoints
from qmk.kernel.running.shared_machine import SharedMachine, footprint_of
from qmk.kernel.security.attest import ATTEST_EVENT, attestation
from qmk.kernel.storage.artifacts import FOLDER, Artifacts
from qmk.kernel.storage.audit import AuditLog
from qmk.kernel.storage.billing import Ledger
from qmk.kernel.storage.commit import GroupCommit
from qmk.kernel.storage.results import Results
from qmk.kernel.storage.retention import expire, remove_orphans, state_file
from qmk.kernel.storage.store import Store

#: Most times a job is preempted before it runs to the end regardless.
MAX_PREEMPTIONS = 3
#: How many recently finished jobs stay in memory (q_status/q_wait skip the database).
FINISHED_CACHE_SIZE = 1024
#: ... and at most about this many bytes of their results.
FINISHED_CACHE_BYTES = 256 * 2**20


def _result_bytes(job: Job) -> int:
    """About how many bytes ``job``'s result holds (its stored text)."""
    return 256 + (0 if job.result is None else job.result.nbytes)


@dataclass(slots=True, kw_only=True, eq=False)
class _Running:
    """One attempt of a job on a worker: the pool's future and the task that awaits it."""

    future: Future[Any]
    attempt: int
    #: What the worker was asked to run (the attestation records its request).
    work: Attempt | None = None
    task: asyncio.Task[None] | None = None
    #: What went wrong handling the answer in the pool's callback (the task raises it).
    failure: BaseException | None = None


def _cancel(task: asyncio.Task[None] | None) -> None:
    """Cancel ``task``, unless it is the one running (it is ending on its own then)."""
    if task is not None and task is not asyncio.current_task():
        task.cancel()


def _resolve(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


class Supervisor:
    """The jobs of one kernel from acceptance to their end (see the module docstring).

    Every path here (a start, a worker's answer, a cancel, a timeout, a
    deadline, a preemption, a failed module) moves a job between the queue, a worker and
    a final state, and must change the same tables in one loop turn: the queue, the
    running attempts, the resources they hold, the job's record and its waiters. Split,
    the parts would share those tables through references back into each other. What
    has a state of its own lives beside it: the checkpoints (:mod:`.checkpoints`), the
    fault policies and placement (:mod:`.faults`), the fair queue (:mod:`.scheduler`),
    stored results (:mod:`.results`).

    Args:
        config: the kernel configuration (machine inventory, quotas, epoch and timeouts).
        store: the database, written through ``commits``.
        audit: the audit log.
        commits: the group commit.
        channels: the channel table (bound channels are checked again at start).
        pool: the worker pool (``submit``, ``cancel``, ``shutdown``, ``max_workers``;
            ``listen`` and ``request`` for checkpoints and preemption at fences).
        clock: the kernel's clock.
        checkpoint_dir: where running jobs save their execution states (one folder per
            job); None: jobs save none, and are preempted by a kill and a restart.
        device: the machine (default: the simulated logical machine of ``config``).
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
        self._finished_bytes = 0  # their results' size (about), and each one's
        self._finished_size: dict[str, int] = {}
        self.running: dict[str, _Running] = {}
        #: Victims asked to yield their worker: victim job id -> the queued job it is for
        #: (one victim per urgent job; the entry ends with the victim's attempt).
        self._yield_for: dict[str, str] = {}
        self.epoch = 0
        self.physical_in_use = 0
        self.logical_in_use: Counter[str] = Counter()
        self.running_jobs: Counter[str] = Counter()
        self._events: dict[str, asyncio.Event] = {}  # q_wait's, set when the job ends
        self._deadlines: dict[str, asyncio.Task[None]] = {}
        self._kicked = asyncio.Event()
        self._answering = False  # in _answered: its dispatch must not nest another
        self._group: aio.TaskGroup | None = None
        self._starting = True  # False once the kernel closes: no job starts any more
        self._seq = store.next_seq()
        self._loop = asyncio.get_running_loop()
        self._thread_id = threading.get_ident()
        #: The device, the jobs' placement and the fault policies (:mod:`.faults`).
        self.faults = FaultPolicies(device or device_for(config), audit)
        self.device = self.faults.device
        self.placement = self.faults.placement
        #: Queued jobs found unable ever to start, failed after the dispatch round.
        self._doomed: list[tuple[Job, QMKError]] = []
        #: When the states of jobs that ended are next looked at (:mod:`.retention`).
        self._next_expiry = clock.now()
        #: Stored results: each tenant's bytes, their expiry, pages (:mod:`.results`).
        self.results = Results(config, store, audit)
        #: Device jobs' artifacts: streamed, stored, bounded (:mod:`.artifacts`).
        self.artifacts = Artifacts(
            config, audit, None if checkpoint_dir is None else checkpoint_dir.parent / FOLDER
        )
        #: The tracer of the workers' spans (``qmk serve --trace``), else None.
        self.traces: WorkerTraces | None = None
        #: Completed runs' results answering submits of the same run (:mod:`.cache`).
        self.cache = ResultCache(config, store, self.device, self.finished.get)
        #: Each job end's usage record and webhook (:mod:`.billing`).
        self.ledger = Ledger(config, store)
        #: The shared machine: a job's schedule in machine time is fixed before a worker
        #: computes its outcomes (:mod:`.shared_machine`).
        self.machine = SharedMachine(config, self._scheduled, clock=machine_clock)

    # ------------------------------------------------------------------ lifecycle

    def recover(self) -> int:
        """Re-queue every job the last run left QUEUED, VALIDATING or RUNNING; their count.

        A job that was started goes back to QUEUED from its latest checkpoint (that is,
        from its start: a run is a pure function of the stored spec and seed).
        """
        if self.checkpoint_dir is not None and remove_orphans(self.store, self.checkpoint_dir):
            self.commits.dirty()
        if self.results.expire(self.clock.now(), force=True):
            self.commits.dirty()
        if self.artifacts.expire(self.clock.now()):
            self.commits.dirty()
        recovered = 0
        for job in self.store.active_jobs():
            previous = job.state
            if previous != J.QUEUED:
                checkpoint = self.store.load_checkpoint(job.job_id, job.tenant, None)
                job.checkpoint_id = None if checkpoint is None else checkpoint["checkpoint_id"]
                self._transition(job, J.QUEUED, reason=f"recovered from {previous}")
            self.jobs[job.job_id] = job
            if job.request.machine is None and not spans(job, self.device):
                job.footprint = footprint_of(job)
            self._enqueue(job)
            recovered += 1
        return recovered

    def start(self, group: aio.TaskGroup) -> None:
        """Run in ``group`` from now on: the deadlines of the jobs already queued, the
        dispatcher and the ticker."""
        self._group = group
        for job in self.jobs.values():
            self._arm_deadline(job)
        group.create_task(self._dispatcher(), name="qmk-dispatcher")
        group.create_task(self._ticker(), name="qmk-epochs")
        group.create_task(self.machine.run(), name="qmk-machine")
        self.kick()

    def stop_starting(self) -> None:
        """Start no job from now on (the kernel is closing)."""
        self._starting = False

    async def close(self) -> None:
        """After the task group ended: stop the workers and wake every ``q_wait``.

        Running jobs stay RUNNING in the database; the next open re-queues them.
        """
        self._starting = False
        self.running.clear()
        self._deadlines.clear()
        closer = getattr(self.pool, "aclose", None)
        if closer is not None:  # a pool that closes without blocking this loop
            await closer(cancel_futures=True)
        elif getattr(self.pool, "loop", None) is self._loop:
            self.pool.shutdown(True, cancel_futures=True)  # driven by this loop: no thread
        else:
            await asyncio.to_thread(self.pool.shutdown, True, cancel_futures=True)
        for event in self._events.values():
            event.set()

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> asyncio.Task[None] | None:
        """``coro`` as a task of the kernel's group; None (and not run) when there is none."""
        if self._group is None or not self._starting:
            coro.close()
            return None
        return self._group.create_task(coro)

    # ------------------------------------------------------------------ the syscalls' side

    def job(self, job_id: object, tenant: str) -> Job:
        """``tenant``'s job ``job_id`` (memory first, then the database).

        Raises:
            NotFoundError: no such job of this tenant (the same message as an unknown id).
        """
        if not isinstance(job_id, str) or len(job_id) > 200:
            raise NotFoundError(f"no job {job_id!r}", job_id=str(job_id))
        job = self.jobs.get(job_id) or self.finished.get(job_id)
        if job is not None and job.tenant == tenant:
            return job
        job = self.store.load_job(job_id, tenant)
        if job is None:
            raise NotFoundError(f"no job {job_id!r}", job_id=job_id)
        return job

    async def accept(self, job: Job, *, idempotency_key: str | None = None) -> dict[str, Any]:
        """Store, audit and queue an admitted job; return it as accepted, once committed.

        Raises:
            UnavailableError: the commit failed (the data disk is full, say): the job is
                taken back, and nothing of it stays.
        """
        self.machine.check(job)  # QK501 before anything of it is stored
        job.seq = self._seq
        self._seq += 1
        job.ends = 0  # a new job: no usage row of it yet
        self.store.insert_job(job, idempotency_key=idempotency_key)
        self.audit.append(
            "job", job_id=job.job_id, tenant=job.tenant, state=J.QUEUED, seed=job.seed
        )
        hit = self.cache.lookup(job, self.epoch, self.clock.now())
        if hit is not None:
            return await self._answer_from_cache(job, hit)
        self.jobs[job.job_id] = job
        self._enqueue(job)
        self._arm_deadline(job)
        accepted = job.to_json()  # the reply says QUEUED even if a worker takes it meanwhile
        try:
            await self.commits.durable()
        except QMKError:
            self._stop(job, "not committed")
            self.jobs.pop(job.job_id, None)
            deadline = self._deadlines.pop(job.job_id, None)
            if deadline is not None:
                deadline.cancel()
            raise
        self.kick()
        return accepted

    async def _answer_from_cache(self, job: Job, hit: Hit) -> dict[str, Any]:
        """COMPLETE ``job`` at once with ``hit``'s result, no worker (attested as a cache
        hit: :mod:`.cache`); FAILED when its tenant's result storage has no room."""
        self.jobs[job.job_id] = job  # its end is an event of a job the kernel holds
        refusal = self.results.take(job, hit.result)
        if refusal is not None:
            self._finish(job, J.FAILED, refusal)
        else:
            job.result, job.cached_from = hit.result, hit.source
            fields = attestation(
                hit.request, hit.result, verified(job.graph), cached_from=hit.source
            )
            self.audit.append(ATTEST_EVENT, job_id=job.job_id, tenant=job.tenant, **fields)
            self._finish(job, J.COMPLETED, cached_from=hit.source)
        answer = job.to_json()
        try:
            await self.commits.durable()
        except QMKError:
            self.finished.pop(job.job_id, None)
            self._finished_bytes -= self._finished_size.pop(job.job_id, 0)
            if job.result is not None:
                self.results.usage[job.tenant] -= job.result.nbytes
            raise
        return answer

    async def wait(self, job: Job, timeout_s: float) -> dict[str, Any]:
        """``job`` once final, or as it is when ``timeout_s`` has passed.

        A final state is answered only once it is committed: a job's end is committed
        lazily (:mod:`qmk.kernel.storage.commit`), so the wait makes that commit urgent and awaits
        it; a client that saw COMPLETED finds it so after a kernel crash too.
        """
        if not job.final and timeout_s > 0:
            event = self._events.get(job.job_id)
            if event is None:
                event = self._events[job.job_id] = asyncio.Event()
            try:
                async with self.clock.timeout_at(self.clock.now() + timeout_s):
                    await event.wait()
            except TimeoutError:
                pass  # the wait's own limit: answer with the job as it is
        if job.final and self.commits.pending:
            await self.commits.durable()
        return job.to_json()

    async def cancel(self, job: Job) -> dict[str, Any]:
        """Dequeue ``job`` or kill its worker; CANCELLED, committed.

        Raises:
            StateError: the job is already final.
        """
        if job.final:
            raise StateError(f"job {job.job_id!r} is already {job.state}", state=job.state)
        self._stop(job, "cancelled")
        cancelled = JobError.of("cancelled", "cancelled by its tenant")
        self._finish(job, J.CANCELLED, error_json(cancelled))
        await self.commits.durable()
        return job.to_json()

    async def checkpoint(self, job: Job) -> dict[str, Any]:
        """A checkpoint of ``job``, committed.

        A running job saves its execution state at its next fence and the reply waits
        for it (``saved``: true, ``program_epoch``: that fence). A job that ends before
        reaching one, or is not running, gets a checkpoint of where it would start
        again: its latest saved state if it has one (a queued job that was preempted),
        else its start.
        """
        run = self.running.get(job.job_id)
        if run is not None:
            saved = await self.checkpoints.wait_for(job, run.future)
            if saved is not None:
                await self.commits.durable()
                return saved
        checkpoint = self.checkpoints.of_restart(job)
        if job.final:
            self.store.save_job(job)
        await self.commits.durable()
        return checkpoint

    async def restore(self, job: Job, checkpoint_id: str | None) -> dict[str, Any]:
        """Put ``job`` back to QUEUED from a checkpoint (the latest when None), committed.

        Raises:
            StateError: the job has no checkpoint.
            NotFoundError: no checkpoint ``checkpoint_id`` of this job.
        """
        checkpoint = self.store.load_checkpoint(job.job_id, job.tenant, checkpoint_id)
        if checkpoint is None:
            if checkpoint_id is None:
                raise StateError(f"job {job.job_id!r} has no checkpoint", job_id=job.job_id)
            raise NotFoundError(f"no checkpoint {checkpoint_id!r}", checkpoint_id=checkpoint_id)
        if not job.final:
            self._stop(job, "restored")
        else:  # its outcome stays readable (telemetry: earlier_outcomes) if the rerun fails
            self.store.archive_outcome(job)
        job.result = None
        job.error = None
        job.finished_at = None
        job.started_at = None
        job.checkpoint_id = checkpoint["checkpoint_id"]
        self.jobs[job.job_id] = job
        self._transition(job, J.QUEUED, restored_from=checkpoint["checkpoint_id"])
        self._enqueue(job)
        self._arm_deadline(job)
        await self.commits.durable()
        self.kick()
        return job.to_json()

    def telemetry(self, job: Job) -> dict[str, Any]:
        """What the kernel knows of ``job``'s runs, with the executor's telemetry."""
        return {
            "job_id": job.job_id,
            "state": job.state,
            "attempts": job.attempts,
            "preemptions": job.preemptions,
            "epoch": job.epoch,
            "physical_qubits": job.physical_qubits,
            "logical_qubits": dict(job.qubits),
            "queued_s": None
            if job.started_at is None
            else round(job.started_at - job.created_at, 6),
            "run_s": None
            if job.started_at is None or job.finished_at is None
            else round(job.finished_at - job.started_at, 6),
            "telemetry": None if job.result is None else job.result.get("telemetry"),
            "machine": None if job.request.machine is None else job.request.machine.record(),
            "teleportation": telemetry_of(verified(job.graph).graph)
            if spans(job, self.device)
            else None,
        }

    # ------------------------------------------------------------------ transitions

    def _transition(self, job: Job, state: str, **fields: Any) -> None:
        """Move ``job`` to ``state``: database row and audit line, committed lazily.

        A syscall that reports the transition awaits ``commits.durable()`` before replying.
        """
        job.state = state
        self.store.save_job(job)
        self.audit.append("job", job_id=job.job_id, tenant=job.tenant, state=state, **fields)
        self.commits.dirty(urgent=False)

    def _finish(
        self, job: Job, state: str, error: dict[str, Any] | None = None, **fields: Any
    ) -> None:
        job.finished_at = self.clock.now()
        job.error = error
        reason = None if error is None else error["message"]
        if job.result is not None:  # chained: what its stored row must hold (kernel/security/seals)
            fields["stored_sha256"] = job.result.sha256
        self._transition(job, state, **({"reason": reason} if reason else {}), **fields)
        self.ledger.job_ended(job)  # in the transaction of the end state
        self.artifacts.forget(job.job_id)  # parts streamed while it ran, if it had no result
        self.jobs.pop(job.job_id, None)
        self._remember(job)
        self.queue.remove(job.job_id)
        _cancel(self._deadlines.pop(job.job_id, None))
        event = self._events.pop(job.job_id, None)
        if event is not None:
            event.set()
        self.kick()

    def _remember(self, job: Job) -> None:
        """Keep ``job`` among the recently finished, within :data:`FINISHED_CACHE_SIZE`
        jobs and :data:`FINISHED_CACHE_BYTES` of results (older ones are read from the
        database when asked for)."""
        self.finished.pop(job.job_id, None)
        self._finished_bytes -= self._finished_size.pop(job.job_id, 0)
        self.finished[job.job_id] = job
        size = self._finished_size[job.job_id] = _result_bytes(job)
        self._finished_bytes += size
        while len(self.finished) > 1 and (
            len(self.finished) > FINISHED_CACHE_SIZE or self._finished_bytes > FINISHED_CACHE_BYTES
        ):
            dropped, _ = self.finished.popitem(last=False)
            self._finished_bytes -= self._finished_size.pop(dropped, 0)

    def _release(self, job: Job) -> None:
        self.physical_in_use -= job.physical_qubits
        for tenant, count in job.qubits.items():
            self.logical_in_use[tenant] -= count
        self.running_jobs[job.tenant] -= 1
        self.placement.release(job)

    def _stop(self, job: Job, reason: str) -> None:
        """Take ``job`` off the machine, the queue or its worker (killing it) and free its
        resources."""
        if self.machine.withdraw(job.job_id) or self.queue.remove(job.job_id) is not None:
            return
        run = self.running.pop(job.job_id, None)
        if run is None:
            return
        _cancel(run.task)
        self.pool.cancel(run.future, reason)
        self._release(job)
        self.checkpoints.attempt_ended(job)

    def _noted(self, job: Job, run: _Running, note: Any) -> None:
        """A note from a running job's worker: it saved its execution state (record the
        checkpoint and answer the q_checkpoint waiting for it), or a device job sent
        records of an artifact it streams (:meth:`Artifacts.part`)."""
        if threading.get_ident() != self._thread_id:  # a pool driven by its own thread
            with contextlib.suppress(RuntimeError):
                self._loop.call_soon_threadsafe(self._noted, job, run, note)
            return
        if self.running.get(job.job_id) is not run or not isinstance(note, dict):
            return  # stopped meanwhile: the kernel no longer follows this attempt
        streamed = note.get("stream")
        if isinstance(streamed, dict):
            artifact = {
                "name": streamed.get("artifact"),
                "kind": streamed.get("kind"),
                "records": list(streamed.get("records") or ()),
            }
            self.artifacts.part(job.job_id, job.tenant, artifact, total=job.shots)
            return
        physics = None if run.work is None else run.work.request.physics()
        self.checkpoints.saved(job, {**note, "physics": physics})

    # ------------------------------------------------------------------ the machine

    def _enqueue(self, job: Job) -> None:
        """``job`` waits for its schedule on the shared machine, or, when it has one or
        the machine does not hold it, for a worker (:mod:`.shared_machine`)."""
        if self.machine.takes(job):
            self.machine.admit(job)
        else:
            self.queue.push(job)

    def _scheduled(self, job: Job, run: MachineRun) -> None:
        """``job``'s schedule on the shared machine ended: it is in its request from now
        on (stored, so a recovered job keeps it), and the job waits for a worker."""
        if job.final or self.jobs.get(job.job_id) is not job:
            return
        job.request = replace(job.request, machine=run)
        self.store.save_request(job)
        self.commits.dirty(urgent=False)
        self.queue.push(job)
        self.kick()

    # ------------------------------------------------------------------ deadlines

    def _arm_deadline(self, job: Job) -> None:
        if job.deadline is None or job.job_id in self._deadlines:
            return
        task = self._spawn(self._deadline(job))
        if task is not None:
            self._deadlines[job.job_id] = task

    async def _deadline(self, job: Job) -> None:
        """``job``'s deadline: a timeout scope around its life (its end cancels this task)."""
        try:
            async with self.clock.timeout_at(job.deadline):
                await self._loop.create_future()  # never set: only the scope or a cancel ends it
        except TimeoutError:
            self._deadlines.pop(job.job_id, None)
            if job.final or self.jobs.get(job.job_id) is not job:
                return
            self._stop(job, "deadline")
            deadline = JobError.of("deadline", "the job's deadline passed before it finished")
            self._finish(job, J.TIMED_OUT, error_json(deadline))

    # ------------------------------------------------------------------ scheduling

    def kick(self) -> None:
        """Have the dispatcher look at the queue (soon, once per loop turn)."""
        self._kicked.set()

    def queue_depth(self) -> tuple[int, int]:
        """(queued jobs a free worker would start, jobs running): what a pool on a
        scaling cluster publishes. A job its tenant's ``max_concurrent_jobs`` holds back
        is not counted: a new worker would not run it."""
        waiting: Counter[str] = Counter(job.tenant for job in self.queue)
        startable = 0
        for tenant, count in waiting.items():
            quota = self._quota(tenant)
            if quota is not None:
                room = quota.max_concurrent_jobs - self.running_jobs[tenant]
                startable += min(count, max(room, 0))
        return startable, len(self.running)

    def resize(self, workers: int) -> None:
        """Run up to ``workers`` jobs at once from now on: a pool that follows its
        cluster says so as workers join and leave (from its loop: maybe another
        thread's)."""

        def apply() -> None:
            self.workers = max(int(workers), 1)
            self.kick()

        self._loop.call_soon_threadsafe(apply)

    async def _dispatcher(self) -> None:
        while True:
            await self._kicked.wait()
            self._kicked.clear()
            self._dispatch()

    def _quota(self, tenant: str) -> Any:
        return self.config.tenants.get(tenant)

    def _never_fits(self, job: Job) -> QMKError | None:
        """Why queued ``job`` can never start under the configuration and machine now (a
        quota lowered, a module down since it was admitted), or None."""
        total = self.device.largest_module_up
        where = "the largest module up has"
        if spans(job, self.device):  # teleported over modules: it holds them all
            total, where = self.device.inventory().physical_qubits_up, "the modules up have"
        if job.physical_qubits > total:
            return AdmissionError(
                f"the job needs {job.physical_qubits} physical qubits at its peak; {where} {total}"
            )
        for name, count in job.qubits.items():
            quota = self._quota(name)
            if quota is None or count > quota.max_logical_qubits:
                limit = 0 if quota is None else quota.max_logical_qubits
                return QuotaError(
                    f"the job holds {count} logical qubits of tenant {name!r}; its "
                    f"max_logical_qubits is now {limit}",
                    limit="max_logical_qubits",
                )
        return None

    def _fits(self, job: Job) -> bool:
        never = self._never_fits(job)
        if never is not None:  # failed after this round: it must not hold the line
            self._doomed.append((job, never))
            return False
        tenant = self._quota(job.tenant)
        if tenant is None or self.running_jobs[job.tenant] >= tenant.max_concurrent_jobs:
            return False
        if not self.placement.fits(job):  # a module that is up has room for it
            return False
        for name, count in job.qubits.items():
            quota = self._quota(name)
            if quota is None or self.logical_in_use[name] + count > quota.max_logical_qubits:
                return False
        return True

    def _dispatch(self) -> None:
        if not self._starting:
            return
        free = self.workers - len(self.running)
        if free <= 0 or not len(self.queue):
            return
        for job in self.queue.select(self._fits_and_reserve, free):
            self._start(job)
        doomed, self._doomed = self._doomed, []
        for job, error in doomed:
            if self.queue.remove(job.job_id) is not None:
                self._finish(job, J.FAILED, error_json(error))
        if doomed:
            self.kick()  # the tenants they blocked get their turn

    def _fits_and_reserve(self, job: Job) -> bool:
        if not self._fits(job):
            return False
        self.physical_in_use += job.physical_qubits
        for tenant, count in job.qubits.items():
            self.logical_in_use[tenant] += count
        self.running_jobs[job.tenant] += 1
        self.placement.reserve(job)
        return True

    def _start(self, job: Job) -> None:
        """VALIDATING (capabilities and channels checked again), then RUNNING on a worker.

        Both transitions happen in one loop turn, so only RUNNING (or the refusal) reaches
        the database; the audit log records both.
        """
        job.state = J.VALIDATING
        # granted at submit, and still the tenant's now (the config may have taken some away)
        conf = self.config.tenants.get(job.tenant)
        allowed = set(job.caps) & (
            set(() if conf is None else conf.caps) | self.lent_caps(job.tenant)
        )
        missing = sorted(set(job.required_caps) - allowed)
        refusal = None
        if missing:
            refusal = error_json(CapabilityError(f"refused at execution: the job lacks {missing}"))
        for name, channel_id in job.policy.channels.items():
            try:
                channel = self.channels.get(channel_id, job.tenant)
            except NotFoundError:
                channel = None
            if channel is None or channel.state != "OPEN":
                refusal = error_json(
                    FirewallError(f"channel {name!r} ({channel_id}) is no longer OPEN")
                )
        self.audit.append(
            "job",
            job_id=job.job_id,
            tenant=job.tenant,
            state=J.VALIDATING,
            epoch=self.epoch,
            required=list(job.required_caps),
            decision="deny" if refusal else "allow",
        )
        if refusal is not None:
            self._release(job)
            self._finish(job, J.FAILED, refusal)
            return
        resume_from = self.checkpoints.resume_from(job)
        job.attempts += 1
        job.started_at = self.clock.now()
        job.epoch = self.epoch
        self._transition(job, J.RUNNING, attempt=job.attempts, epoch=self.epoch)
        directory = None if self.checkpoint_dir is None else str(self.checkpoint_dir / job.job_id)
        resume = (
            None
            if resume_from is None or self.checkpoint_dir is None
            else str(state_file(self.checkpoint_dir, resume_from["path"]))
        )
        if target_spec(job.request.target).logical_machine:  # the machine's faults apply
            request = self._apply_faults(job, job.request, resume_from)
            if request is None:  # refused: FAILED already
                return
        else:  # physics of its own: no module, no fault policy changes its program
            request = job.request
        attempt = Attempt(
            request=request,
            program=job.graph,
            caps=tuple(job.caps),
            checkpoint_dir=directory,
            resume=resume,
            max_result_bytes=int(self.config.max_result_mb * 2**20),
            state_key=self.state_key,
        )
        self._submit(job, attempt)

    def _submit(self, job: Job, attempt: Attempt) -> None:
        """Hand ``attempt`` to the worker pool and watch the run (FAILED if the pool refuses)."""
        if self.traces is not None:  # the worker records its spans under the run's
            traceparent = self.traces.traceparent(job.job_id)
            if traceparent is not None:
                request = replace(attempt.request, trace_context=traceparent)
                attempt = replace(attempt, request=request)
        try:
            future = self.pool.submit(run_job, attempt)
        except Exception as exc:  # a pool that takes no work (e.g. its cluster is gone)
            self._release(job)
            refused = JobError.of("worker-failed", f"the worker pool refused the job: {exc}")
            self._finish(job, J.FAILED, error_json(refused))
            return
        run = _Running(future=future, attempt=job.attempts, work=attempt)
        self.running[job.job_id] = run
        assert job.started_at is not None  # set by _start
        streams = target_spec(job.request.target).streams and hasattr(self.pool, "listen")
        if self.checkpoints.requestable or streams:  # checkpoints; a device job's streams
            self.pool.listen(future, lambda note: self._noted(job, run, note))
        run.task = self._spawn(self._attempt(job, run, job.started_at + job.policy.timeout_s))

    async def _attempt(self, job: Job, run: _Running, ends_at: float) -> None:
        """Await the worker's answer within the job's timeout; a stop cancels this task.

        The answer is usually handled before this task wakes, in the pool's callback
        (:meth:`_answered`); then this task only raises what went wrong there, if anything.
        """
        try:
            async with self.clock.timeout_at(ends_at):
                await self._settled(job, run)
        except TimeoutError:
            if not run.future.done():  # an answer that came with the timeout still counts
                self._timed_out(job, run)
                return
        if run.failure is not None:
            raise run.failure
        self._worker_done(job, run)  # nothing left to do if _answered took it

    def _settled(self, job: Job, run: _Running) -> asyncio.Future[None]:
        """A future of this loop that is done when the pool's future of ``run`` is."""
        settled: asyncio.Future[None] = self._loop.create_future()

        def done(_: Future[Any]) -> None:
            # on this loop's thread for a loop-driven pool, else in the pool's thread
            if threading.get_ident() == self._thread_id:
                self._answered(job, run)
                _resolve(settled)
                return
            with contextlib.suppress(RuntimeError):  # after close() the loop may be gone
                self._loop.call_soon_threadsafe(_resolve, settled)

        run.future.add_done_callback(done)
        return settled

    def _answered(self, job: Job, run: _Running) -> None:
        """The worker answered, in the pool's reply callback: end the attempt and hand the
        free worker its next job now, in this loop turn, instead of two turns later
        through the attempt's task and the dispatcher (the worker would sit idle
        meanwhile while the loop serves requests).

        Only from the pool's own callback at the top of the loop (no task running) and
        not nested in itself: a future the supervisor completes itself (a kill in
        :meth:`_stop`, a pool that fails a task while the supervisor submits) leaves its
        answer to the attempt's task, as does a job no longer running. What goes wrong
        here is raised by the attempt's task, so it stops the kernel as it would there.
        """
        if (
            self._answering
            or asyncio.current_task() is not None
            or self.running.get(job.job_id) is not run
        ):
            return
        self._answering = True
        try:
            self._worker_done(job, run, dispatch_first=True)
            self._dispatch()
        except BaseException as exc:  # the task raises it (a pool callback must not)
            run.failure = exc
        finally:
            self._answering = False

    def _timed_out(self, job: Job, run: _Running) -> None:
        if self.running.get(job.job_id) is not run:
            return
        self._stop(job, "timeout")
        self._finish(
            job,
            J.TIMED_OUT,
            error_json(
                JobError.of(
                    "timeout", f"the job ran past its timeout of {job.policy.timeout_s:g} s"
                )
            ),
        )

    def _worker_done(self, job: Job, run: _Running, *, dispatch_first: bool = False) -> None:
        """End ``run``'s attempt of ``job`` with its worker's answer.

        ``dispatch_first``: the worker it held takes its next job before this one's
        result is kept, attested and its end written (the pool's reply callback: the
        worker then computes while the loop does that bookkeeping, instead of waiting
        for it; the next job's start lines come before this job's end lines).
        """
        if self.running.get(job.job_id) is not run or not self._starting:
            return  # cancelled, timed out or preempted: already handled
        del self.running[job.job_id]
        self._release(job)
        self.checkpoints.attempt_ended(job)
        if dispatch_first:
            self._dispatch()
        try:
            answer = run.future.result()
        except WorkerMemoryError as exc:
            failure = JobError.of("memory-limit", f"memory limit: {exc}")
            self._finish(job, J.FAILED, error_json(failure))
            return
        except TaskError as exc:  # died, raised, or killed by someone other than the kernel
            failure = JobError.of("worker-failed", f"{exc.kind}: {exc.message}")
            self._finish(job, J.FAILED, error_json(failure))
            return
        except Exception as exc:
            self._finish(job, J.FAILED, error_json(JobError.of("worker-failed", repr(exc))))
            return
        try:
            outcome = decode(answer)
        except ValueError as exc:  # msgspec.ValidationError: a worker that answered junk
            failure = JobError.of("worker-failed", f"the worker's answer is no outcome: {exc}")
            self._finish(job, J.FAILED, error_json(failure))
            return
        self._worker_spans(job, run, outcome)
        if isinstance(outcome, Done | Ran):
            result = result_of(outcome)
            telemetry = result.head.get("telemetry")
            ran = isinstance(telemetry, Mapping) and "cache_hit" in telemetry
            if not ran:  # parts merged here: not marked yet
                result = with_telemetry(result, cache_hit=False)
            refusal = self.results.take(job, result)
            if refusal is not None:  # over the tenant's result storage: not kept
                self._finish(job, J.FAILED, refusal)
                return
            job.result = result
            streamed = outcome.artifacts if isinstance(outcome, Done) else []
            if streamed:  # before COMPLETED: its stream events precede the final state
                self.artifacts.take(job.job_id, job.tenant, streamed, self.clock.now())
            if run.work is not None:  # its result answers later runs of its request
                self.cache.index(job, run.work.request)
            self._attest(job, run)
            self._finish(job, J.COMPLETED)
        elif isinstance(outcome, Yielded):  # preempted: it saved its state and stopped
            job.preemptions += 1
            program_epoch = outcome.epoch
            self._transition(
                job,
                J.QUEUED,
                reason=f"preempted at epoch {self.epoch}; saved at its fence {program_epoch}",
            )
            self.queue.push(job)
            self.kick()
        else:
            self._finish(job, J.FAILED, outcome.error.to_json())

    def _worker_spans(self, job: Job, run: _Running, outcome: Outcome) -> None:
        """Hand the spans the worker recorded to the tracer (it logs its own failures)."""
        spans = outcome.spans
        traceparent = None if run.work is None else run.work.request.trace_context
        if spans and self.traces is not None and isinstance(traceparent, str):
            self.traces.worker_spans(job.job_id, traceparent, spans)

    def _attest(self, job: Job, run: _Running) -> None:
        """Chain the completed job's attestation (inputs, epochs, result digest) into the
        audit log, before its COMPLETED line (:mod:`qmk.kernel.security.attest`)."""
        if run.work is None or job.result is None:
            return
        if target_spec(job.request.target).program != "qvm":
            return  # a device job's record is its stored wire job and seed (no epochs)
        fields = attestation(run.work.request, job.result, verified(job.graph))
        self.audit.append(ATTEST_EVENT, job_id=job.job_id, tenant=job.tenant, **fields)

    # ------------------------------------------------------------------ epochs

    async def _ticker(self) -> None:
        """Count epochs on the clock: the scheduler's clock, its one periodic wake-up."""
        async for _ in self.clock.epochs(self.config.epoch_ms / 1000):
            self.tick()

    def tick(self) -> None:
        """An epoch fence: count it, and let a much more urgent queued job preempt."""
        self.epoch += 1
        self._device_tick()
        self._expire_states()
        if self.results.expire(self.clock.now(), self.finished.values()):
            self.commits.dirty()
        if self.artifacts.expire(self.clock.now()):
            self.commits.dirty()
        for sweep in self.sweeps:
            if sweep(self.clock.now()):
                self.commits.dirty()
        self._expire_proposals()
        if len(self.queue) and len(self.running) >= self.workers and self._preempt():
            self.kick()

    def _expire_proposals(self) -> None:
        """Close the channel proposals nobody accepted within ``channel_proposal_ttl_s``."""
        now = self.clock.now()
        for channel in self.channels.expire_proposals(
            now - self.config.channel_proposal_ttl_s, now
        ):
            self.store.save_channel(channel.to_row())
            self.audit.append(
                "chan",
                channel_id=channel.channel_id,
                tenant=channel.proposer,
                state=channel.state,
                reason="proposal expired",
            )
            self.commits.dirty()

    def channel_closed(self, channel_id: str) -> list[str]:
        """Stop the running jobs bound to ``channel_id`` (now CLOSED): they FAIL with a
        firewall error. Their ids."""
        stopped = []
        for job_id in list(self.running):
            job = self.jobs.get(job_id)
            if job is None or channel_id not in job.policy.channels.values():
                continue
            self._stop(job, "channel-closed")
            refusal = FirewallError(f"channel {channel_id} was closed while the job ran")
            self._finish(job, J.FAILED, error_json(refusal))
            stopped.append(job_id)
        return stopped

    def _expire_states(self) -> None:
        """Delete the execution states of jobs that ended ``checkpoint_keep_s`` ago
        (looked at every tenth of that time, at most once a minute)."""
        now = self.clock.now()
        if now < self._next_expiry:
            return
        keep = self.config.checkpoint_keep_s
        self._next_expiry = now + min(keep / 10, 60.0)
        if self.checkpoint_dir is not None and expire(
            self.store, self.audit, self.checkpoint_dir, now - keep
        ):
            self.commits.dirty()

    def _preempt(self) -> bool:
        """Stop the least urgent running job of a tenant for a much more urgent queued job
        of the same tenant; True if so. Priorities order a tenant's own jobs only: across
        tenants the fair share decides, so no tenant's priority stops another's job. An
        urgent job takes one victim: while its victim is yielding, it asks no other."""
        gap = self.config.preempt_gap
        if gap <= 0:
            return False
        asked = self._asked_for()
        found = None
        for best in sorted(self.queue.heads(), key=lambda j: -j.priority):
            if best.job_id in asked:
                continue  # its victim is on its way to its fence
            victims = [
                self.jobs[job_id]
                for job_id in self.running
                if job_id in self.jobs
                and job_id not in self.checkpoints.yielding
                and self.jobs[job_id].tenant == best.tenant
                and self.jobs[job_id].priority + gap <= best.priority
                and self.jobs[job_id].preemptions < MAX_PREEMPTIONS
            ]
            if victims:
                found = best, min(victims, key=lambda j: (j.priority, -(j.started_at or 0.0)))
                break
        if found is None:
            return False
        best, victim = found
        run = self.running[victim.job_id]
        # A program with no fence has no state to save but its start: it stops now, its
        # worker killed, and runs again from its latest checkpoint (its whole open REV
        # segment rolled back at no cost; the same seed gives the same counts). One with
        # fences yields at its next fence, or at once (rolling back its open REV segment)
        # when the urgent job is much more urgent.
        if self._pauses(victim, run):
            now = best.priority - victim.priority >= self.config.rollback_gap
            op = self.checkpoints.ask_to_yield(victim, run.future, now=now)
            if op is not None:
                self._yield_for[victim.job_id] = best.job_id
                self.audit.append(
                    "preempt",
                    job_id=victim.job_id,
                    tenant=victim.tenant,
                    epoch=self.epoch,
                    by=best.job_id,
                    request=op,
                )
                return False  # its worker is free once it has yielded
        self.audit.append(
            "preempt",
            job_id=victim.job_id,
            tenant=victim.tenant,
            epoch=self.epoch,
            by=best.job_id,
            request="stop",
        )
        self._stop(victim, "preempted")
        victim.preemptions += 1
        self.checkpoints.of_restart(victim)
        self._transition(
            victim, J.QUEUED, reason=f"preempted at epoch {self.epoch} by {best.job_id}"
        )
        self.queue.push(victim)
        return True

    def _asked_for(self) -> set[str]:
        """The queued jobs a victim is yielding its worker for (ended askings dropped)."""
        for victim in [v for v in self._yield_for if v not in self.checkpoints.yielding]:
            del self._yield_for[victim]
        return set(self._yield_for.values())

    @staticmethod
    def _pauses(job: Job, run: _Running) -> bool:
        """Whether ``job``'s running attempt has points to save its state at and stop: its
        target's (``TargetSpec.pauses``): a device job's chunks of shots, a QVM program's
        fences (its own, or those a fault policy added), or none."""
        pauses = target_spec(job.request.target).pauses
        if pauses != "fences":
            return pauses == "chunks"
        rewrite = None if run.work is None else run.work.request.rewrite
        return '"FENCE_EPOCH"' in job.graph or bool(rewrite is not None and rewrite.fences)

    # ------------------------------------------------------------------ faults

    def _apply_faults(
        self, job: Job, request: RunRequest, resume_from: Mapping[str, Any] | None
    ) -> RunRequest | None:
        """``request`` as the fault policies leave it at this start
        (:meth:`~qmk.kernel.admit.faults.FaultPolicies.start`), the job resized on its module
        when they raised a distance; None when a policy refused the job (FAILED)."""
        try:
            request, adjusted = self.faults.start(job, request, resume_from, self.epoch)
        except QMKError as exc:
            self._release(job)
            self._finish(job, J.FAILED, error_json(exc))
            return None
        if adjusted.physical_qubits != job.physical_qubits:  # the placement resized already
            self.physical_in_use += adjusted.physical_qubits - job.physical_qubits
            job.physical_qubits = adjusted.physical_qubits
        return request

    def _device_tick(self) -> None:
        """Fail the modules the fault schedule fails at or before this epoch."""
        for module in self.device.faults.failures_due(self.epoch):
            if module not in self.device.down:
                self.fail_module(module)

    def fail_module(self, module_id: int) -> list[str]:
        """Mark ``module_id`` down; stop the jobs running on it and queue them again (they
        start over on a module that is up). Returns their ids.

        Raises:
            QECError: no such module.
        """
        if not self.device.fail(module_id, self.epoch):
            return []
        moved = []
        for job_id in self.placement.jobs_on(module_id):
            job = self.jobs.get(job_id)
            if job is None or job_id not in self.running:
                continue
            self._stop(job, "module-failed")
            self.faults.requeued(job, module_id, self.epoch)
            self._transition(
                job, J.QUEUED, reason=f"module {module_id} failed at epoch {self.epoch}"
            )
            self.queue.push(job)
            moved.append(job_id)
        event = {
            "epoch": self.epoch,
            "kind": "module-failure",
            "action": "mark-down",
            "module": module_id,
            "requeued": moved,
        }
        self.faults.log.append(event)
        self.audit.append("fault", **event)
        self.commits.dirty()
        self.kick()
        return moved


__all__ = [
    "FINISHED_CACHE_SIZE",
    "MAX_PREEMPTIONS",
    "Supervisor",
]
