"""The supervisor: starts jobs on workers and stops them (cancel, timeout, deadline, preemption).

It owns the jobs that are not final, the fair run queue, the resources running jobs hold
(physical qubits, logical qubits per tenant, running jobs per tenant), the worker pool and
the epoch counter. Those tables, and the moves every path makes between a job's states,
are its book (:mod:`.book`), which its parts share. Its tasks all live in the kernel's task
group (:meth:`Supervisor.start`):

- the **dispatcher** (:mod:`.dispatch`) sleeps on an event that :meth:`Supervisor.kick`
  sets whenever a job is queued or resources are freed, and starts as many fitting jobs as
  there are free workers;
- each **run attempt** (:mod:`.runs`) is the pool's future of the worker's answer and the
  time its job's timeout ends it (``timeout_ms`` counted from the start), watched by one
  timer of the clock for all runs; a cancel, preemption, deadline or restore takes it off
  the running and kills the worker;
- one task per job with a **deadline** (:mod:`.epochs`) holds a timeout scope at that
  deadline for the job's life, queued or running; the job's end cancels it;
- the **ticker** (:mod:`.epochs`) counts epochs on the clock
  (:meth:`~qmk.kernel.clock.Clock.epochs`): the only periodic wake-up of the kernel, and
  the only place where preemption is decided.

Checkpoints and preemption reach a running job through the worker pool's requests
(:meth:`~qmk.kernel.pools.pool.WorkerPool.request`). The job's executor answers at its
next ``FENCE_EPOCH`` (or at once, rolling back its open REV segment, for ``yield-now``).
It saves its execution state under ``checkpoints/<job_id>/`` in the data directory and
tells the kernel in a note (:meth:`~qmk.kernel.running.runs.Runs.noted`). A job started
again (restore, preemption, recovery after a crash) resumes from its checkpoint's state. A
victim with no fence to stop at is stopped at once instead (its worker killed) and runs
again from its latest checkpoint; an urgent job takes one victim.

Nothing is polled and no callback or timer but the runs' timeouts' one timer lives
outside the group: closing the kernel cancels the group, and with it every one of these,
and that timer. Time is the kernel's
:class:`~qmk.kernel.clock.Clock`, so a test can drive timeouts, deadlines and epochs.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import Any

import qmk.abi.replies as replies
from qmk import aio
from qmk.abi.probe import WorkerTraces
from qmk.errors import NotFoundError, QMKError, StateError
from qmk.kernel.admit.admission import Allowed
from qmk.kernel.admit.cache import Hit
from qmk.kernel.admit.channels import ChannelTable
from qmk.kernel.admit.faults import spans
from qmk.kernel.clock import Clock, MachineClock
from qmk.kernel.config import KernelConfig
from qmk.kernel.device import LogicalMachine
from qmk.kernel.errors import JobError, error_json
from qmk.kernel.machine.spec import MachineSpec
from qmk.kernel.records import jobs as J
from qmk.kernel.records.jobs import Job
from qmk.kernel.records.programs import limits_of, verified
from qmk.kernel.running.book import JobBook
from qmk.kernel.running.dispatch import Dispatcher
from qmk.kernel.running.epochs import Epochs
from qmk.kernel.running.runs import Runs
from qmk.kernel.running.shared_machine import footprint_of
from qmk.kernel.security.attest import attested
from qmk.kernel.storage.audit import AuditLog
from qmk.kernel.storage.commit import GroupCommit
from qmk.kernel.storage.retention import remove_orphans
from qmk.kernel.storage.store import Store


class Supervisor:
    """The jobs of one kernel from acceptance to their end (see the module docstring): the
    syscalls' side, over its book (:class:`~qmk.kernel.running.book.JobBook`) and the
    parts that move jobs in it: the dispatcher, the runs on workers and the epochs.

    What has a state of its own lives beside it: the checkpoints (:mod:`.checkpoints`), the
    fault policies and placement (:mod:`~qmk.kernel.admit.faults`), the fair queue
    (:mod:`~qmk.kernel.admit.scheduler`), stored results (:mod:`~qmk.kernel.storage.results`).

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
        book = self.book = JobBook(
            config,
            store=store,
            audit=audit,
            commits=commits,
            channels=channels,
            pool=pool,
            clock=clock,
            device=device,
            checkpoint_dir=checkpoint_dir,
            machine_clock=machine_clock,
            machine=machine,
        )
        self.runs = Runs(book, dispatch=lambda: self.dispatcher.dispatch())
        self.dispatcher = Dispatcher(book, self.runs)
        self.epochs = Epochs(book)
        self.config = config
        self.checkpoint_dir = checkpoint_dir
        self.store = store
        self.audit = audit
        self.commits = commits
        self.channels = channels
        self.pool = pool
        self.clock = clock
        self.checkpoints = book.checkpoints
        self.queue = book.queue
        self.jobs = book.jobs  # every job not yet final
        self.finished = book.finished  # recently final, newest last
        self.running = book.running
        self.logical_in_use = book.logical_in_use
        self.running_jobs = book.running_jobs
        self.faults = book.faults
        self.device = book.device
        self.placement = book.placement
        self.results = book.results
        self.cache = book.cache
        self.ledger = book.ledger
        self.machine = book.machine
        self.sweeps = book.sweeps
        self._seq = store.next_seq()
        #: The jobs whose acceptance no commit has told of yet (:class:`_Acceptance`).
        self._unkept: dict[str, _Acceptance] = {}

    # ------------------------------------------------------------------ the book's values

    @property
    def epoch(self) -> int:
        """The epochs counted since the kernel started."""
        return self.book.epoch

    @property
    def workers(self) -> int:
        """How many jobs run at once (the pool's workers; :meth:`resize`)."""
        return self.book.workers

    @property
    def physical_in_use(self) -> int:
        """The physical qubits the running jobs hold."""
        return self.book.physical_in_use

    @property
    def lent_caps(self) -> Callable[[str], frozenset[str]]:
        """The capabilities live delegations lend a tenant now (the kernel's
        :mod:`~qmk.kernel.security.delegations`): a job's caps are checked again at its start."""
        return self.book.lent_caps

    @lent_caps.setter
    def lent_caps(self, lent: Callable[[str], frozenset[str]]) -> None:
        self.book.lent_caps = lent

    @property
    def state_key(self) -> bytes | None:
        """The key jobs' execution states are sealed with (the kernel's, derived from its
        secret: :mod:`qmk.kernel.security.seals`); None: unsealed."""
        return self.book.state_key

    @state_key.setter
    def state_key(self, key: bytes | None) -> None:
        self.book.state_key = key

    @property
    def traces(self) -> WorkerTraces | None:
        """The tracer of the workers' spans (``qmk serve --trace``), else None."""
        return self.book.traces

    @traces.setter
    def traces(self, traces: WorkerTraces | None) -> None:
        self.book.traces = traces

    # ------------------------------------------------------------------ the parts' calls

    def kick(self) -> None:
        """Have the dispatcher look at the queue (soon, once per loop turn)."""
        self.book.kick()

    def queue_depth(self) -> tuple[int, int]:
        """(queued jobs a free worker would start, jobs running):
        :meth:`~qmk.kernel.running.dispatch.Dispatcher.queue_depth`."""
        return self.dispatcher.queue_depth()

    def resize(self, workers: int) -> None:
        """Run up to ``workers`` jobs at once from now on:
        :meth:`~qmk.kernel.running.dispatch.Dispatcher.resize`."""
        self.dispatcher.resize(workers)

    def tick(self) -> None:
        """An epoch fence: :meth:`~qmk.kernel.running.epochs.Epochs.tick`."""
        self.epochs.tick()

    def channel_closed(self, channel_id: str) -> list[str]:
        """Stop the running jobs bound to ``channel_id``:
        :meth:`~qmk.kernel.running.epochs.Epochs.channel_closed`."""
        return self.epochs.channel_closed(channel_id)

    def fail_module(self, module_id: int) -> list[str]:
        """Mark ``module_id`` down and queue its jobs again:
        :meth:`~qmk.kernel.running.epochs.Epochs.fail_module`.

        Raises:
            QECError: no such module.
        """
        return self.epochs.fail_module(module_id)

    # ------------------------------------------------------------------ lifecycle

    def recover(self) -> int:
        """Re-queue every job the last run left QUEUED, VALIDATING or RUNNING; their count.

        A job that was started goes back to QUEUED from its latest checkpoint (that is,
        from its start: a run is a pure function of the stored spec and seed). A job whose
        stored program is not the one the kernel sealed ends FAILED with its ``QK310
        program-tampered`` instead, never run (its ``program_damage``).
        """
        if self.checkpoint_dir is not None and remove_orphans(self.store, self.checkpoint_dir):
            self.commits.dirty()
        if self.results.expire(self.clock.now(), force=True):
            self.commits.dirty()
        artifacts = self.book.artifacts
        if artifacts is not None and artifacts.expire(self.clock.now()):
            self.commits.dirty()
        recovered = 0
        for job in self.store.active_jobs():
            if job.program_damage is not None:
                self.book.finish(job, J.FAILED, job.program_damage)
                continue
            previous = job.state
            if previous != J.QUEUED:
                checkpoint = self.store.load_checkpoint(job.job_id, job.tenant, None)
                job.checkpoint_id = None if checkpoint is None else checkpoint["checkpoint_id"]
                self.book.transition(job, J.QUEUED, reason=f"recovered from {previous}")
            self.jobs[job.job_id] = job
            if job.request.machine is None and not spans(job, self.device):
                job.footprint = footprint_of(job)
            self.book.enqueue(job)
            recovered += 1
        return recovered

    def start(self, group: aio.TaskGroup) -> None:
        """Run in ``group`` from now on: the deadlines of the jobs already queued, the
        dispatcher and the ticker."""
        self.book.group = group
        for job in self.jobs.values():
            self.epochs.arm_deadline(job)
        group.create_task(self.dispatcher.run(), name="qmk-dispatcher")
        group.create_task(self.epochs.run(), name="qmk-epochs")
        group.create_task(self.machine.run(), name="qmk-machine")
        self.book.kick()

    def stop_starting(self) -> None:
        """Start no job from now on (the kernel is closing)."""
        self.book.starting = False

    async def close(self) -> None:
        """After the task group ended: stop the workers and wake every ``q_wait``.

        Running jobs stay RUNNING in the database; the next open re-queues them.
        """
        self.book.starting = False
        self.runs.close()
        self.running.clear()
        self.book.deadlines.clear()
        closer = getattr(self.pool, "aclose", None)
        if closer is not None:  # a pool that closes without blocking this loop
            await closer(cancel_futures=True)
        elif getattr(self.pool, "loop", None) is self.book.loop:
            self.pool.shutdown(True, cancel_futures=True)  # driven by this loop: no thread
        else:
            await asyncio.to_thread(self.pool.shutdown, True, cancel_futures=True)
        self.book.waits.close()

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
        if self.commits.pending:  # its row may be one the open transaction wrote
            job.ended_in = self.commits.number
        return job

    async def accept(
        self,
        job: Job,
        *,
        idempotency_key: str | None = None,
        allowed: list[Allowed] | None = None,
        wait_s: float | None = None,
    ) -> replies.Job:
        """Store, audit and queue an admitted job; return it as accepted, once committed.
        ``allowed``: the capability check admission kept for its QUEUED line
        (:meth:`~qmk.kernel.admit.admission.Admission.admit`), taken from there.

        With ``wait_s`` (a submit that waits), return it once final or as it is when
        ``wait_s`` has passed, as :meth:`wait` does. Nothing answers its acceptance
        alone, so the acceptance asks for no commit of its own. It rides with the one the
        answer waits for, with a job that ends meanwhile its start's and its end's writes
        too: one commit, not two.

        Raises:
            UnavailableError: the commit that held its acceptance failed (the data disk
                is full, say): the job is taken back, and nothing of it stays.
        """
        self.machine.check(job)  # QK501 before anything of it is stored
        job.seq = self._seq
        self._seq += 1
        job.ends = 0  # a new job: no usage row of it yet
        self.store.insert_job(job, idempotency_key=idempotency_key)
        line = {"job_id": job.job_id, "tenant": job.tenant, "state": J.QUEUED, "seed": job.seed}
        if allowed:  # the submit's capability check, allowed: on this line (no cap line)
            _, sid, required = allowed.pop()
            line.update(session=sid, required=required, decision="allow")
        self.audit.append("job", line)
        hit = self.cache.lookup(job, self.book.epoch, self.clock.now())
        if hit is not None:
            return await self._answer_from_cache(job, hit)
        self.jobs[job.job_id] = job
        queued = self.book.enqueue(job)
        self.epochs.arm_deadline(job)
        acceptance = self._unkept[job.job_id] = _Acceptance(self, job)
        # a failed commit takes the job back on its turn; urgent when the reply is QUEUED
        self.commits.after(acceptance, urgent=wait_s is None)
        if wait_s is not None:
            # on the shared machine: kicked when it leaves it (the dispatcher is not woken
            # again for it here: a round with no free worker would do nothing)
            if queued and job.job_id in self.queue:
                self.book.kick()
            return await self._waited(job, acceptance, wait_s)
        accepted = job.reply()  # the reply says QUEUED even if a worker takes it meanwhile
        await self.commits.durable()
        if queued and job.job_id in self.queue:
            self.book.kick()
        return accepted

    async def _waited(self, job: Job, acceptance: _Acceptance, wait_s: float) -> replies.Job:
        """A submit that waits: ``job`` once final or when ``wait_s`` has passed, its
        acceptance (and its end, if it ended) committed first."""
        if wait_s > 0 and not job.final and acceptance.error is None:
            await self.book.waits.until(job.job_id, self.clock.now() + wait_s)
        if acceptance.error is None and (
            not acceptance.kept or (job.final and not self.commits.holds(job.ended_in))
        ):
            await self.commits.durable()
        if acceptance.error is not None:  # the commit that held it failed meanwhile
            raise acceptance.error
        return job.reply()

    def _not_kept(self, job: Job) -> None:
        """``job``'s acceptance was in a commit that failed, with everything written of it
        since: take it back (off the queue, the machine or its worker, which is killed),
        as if it had never been accepted, and wake what waits for it."""
        self.book.stop(job, "not committed")
        self.jobs.pop(job.job_id, None)
        deadline = self.book.deadlines.pop(job.job_id, None)
        if deadline is not None:
            deadline.cancel()
        if job.final:  # it ended in that commit too: its end is undone with it
            self._unfinish(job)
        self.book.waits.ended(job.job_id)

    def _unfinish(self, job: Job) -> None:
        """``job``'s end was in a commit that failed: it is no longer among the finished,
        and its result's bytes are its tenant's again."""
        self.book.forget(job.job_id)
        if job.result is not None:
            self.results.usage[job.tenant] -= job.result.nbytes

    async def _answer_from_cache(self, job: Job, hit: Hit) -> replies.Job:
        """COMPLETE ``job`` at once with ``hit``'s result, no worker (attested as a cache
        hit: :mod:`~qmk.kernel.admit.cache`); FAILED when its tenant's result storage has
        no room."""
        self.jobs[job.job_id] = job  # its end is an event of a job the kernel holds
        refusal = self.results.take(job, hit.result)
        if refusal is not None:
            self.book.finish(job, J.FAILED, refusal)
        else:
            job.result, job.cached_from = hit.result, hit.source
            fields = attested(  # on its COMPLETED line, ``cached_from`` among them
                hit.request,
                hit.result,
                verified(job.graph, limits_of(self.config)),
                cached_from=hit.source,
            )
            self.book.finish(job, J.COMPLETED, attested=fields)
        answer = job.reply()
        try:
            await self.commits.durable()
        except QMKError:
            self._unfinish(job)
            raise
        return answer

    async def wait(self, job: Job, timeout_s: float) -> replies.Job:
        """``job`` once final, or as it is when ``timeout_s`` has passed.

        A final state is answered only once it is committed. A job's end is committed
        lazily (:mod:`qmk.kernel.storage.commit`), so the wait makes that commit urgent
        and awaits it. (Only while it is not made: other writes pending do not hold up
        the answer of a job whose end is committed.) A client that saw COMPLETED finds it
        so after a kernel crash too.
        """
        if not job.final and timeout_s > 0:  # until its end, else as it is at the limit
            await self.book.waits.until(job.job_id, self.clock.now() + timeout_s)
        # a job found by its idempotency key may be one whose acceptance is not committed
        # yet (a submit that waits): answered, it is committed first too
        commits = self.commits
        if (job.final and not commits.holds(job.ended_in)) or (
            commits.pending and job.job_id in self._unkept
        ):
            await commits.durable()
        return job.reply()

    async def cancel(self, job: Job) -> replies.Job:
        """Dequeue ``job`` or kill its worker; CANCELLED, committed.

        Raises:
            StateError: the job is already final.
        """
        if job.final:
            raise StateError(f"job {job.job_id!r} is already {job.state}", state=job.state)
        self.book.stop(job, "cancelled")
        cancelled = JobError.of("cancelled", "cancelled by its tenant")
        self.book.finish(job, J.CANCELLED, error_json(cancelled))
        await self.commits.durable()
        return job.reply()

    async def checkpoint(self, job: Job) -> replies.Checkpoint:
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

    async def restore(self, job: Job, checkpoint_id: str | None) -> replies.Job:
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
            self.book.stop(job, "restored")
        else:  # its outcome stays readable (telemetry: earlier_outcomes) if the rerun fails
            self.store.archive_outcome(job)
        job.result = None
        job.error = None
        job.finished_at = None
        job.started_at = None
        job.checkpoint_id = checkpoint["checkpoint_id"]
        self.jobs[job.job_id] = job
        self.book.transition(job, J.QUEUED, restored_from=checkpoint["checkpoint_id"])
        self.book.enqueue(job)
        self.epochs.arm_deadline(job)
        await self.commits.durable()
        self.book.kick()
        return job.reply()

    def telemetry(self, job: Job) -> replies.Telemetry:
        """What the kernel knows of ``job``'s runs, with the executor's telemetry (the
        device's part and its earlier outcomes are the machine desk's)."""
        from qmk.kernel.admit.teleport import telemetry_of  # a spanning job's: where asked

        return replies.Telemetry(
            job_id=job.job_id,
            state=job.state,
            attempts=job.attempts,
            preemptions=job.preemptions,
            epoch=job.epoch,
            physical_qubits=job.physical_qubits,
            logical_qubits=dict(job.qubits),
            queued_s=None if job.started_at is None else round(job.started_at - job.created_at, 6),
            run_s=None
            if job.started_at is None or job.finished_at is None
            else round(job.finished_at - job.started_at, 6),
            telemetry=None if job.result is None else job.result.get("telemetry"),
            machine=None if job.request.machine is None else job.request.machine.record(),
            teleportation=telemetry_of(verified(job.graph, limits_of(self.config)).graph)
            if spans(job, self.device)
            else None,
        )


class _Acceptance:
    """A job's acceptance until the commit that holds it tells how it went
    (:meth:`~qmk.kernel.storage.commit.GroupCommit.after`): ``kept`` once committed,
    else ``error`` (and the job taken back at once: :meth:`Supervisor._not_kept`)."""

    __slots__ = ("error", "job", "kept", "supervisor")

    def __init__(self, supervisor: Supervisor, job: Job) -> None:
        self.supervisor = supervisor
        self.job = job
        self.kept = False
        self.error: BaseException | None = None

    def __call__(self, error: BaseException | None) -> None:
        supervisor = self.supervisor
        supervisor._unkept.pop(self.job.job_id, None)
        if error is None:
            self.kept = True
        else:
            self.error = error
            supervisor._not_kept(self.job)


__all__ = ["Supervisor"]
