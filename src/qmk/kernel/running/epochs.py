"""The epoch tick and the stops the kernel decides on its own: a worker's preemption,
deadlines, failed modules, closed channels, and the expiries looked at each epoch.

- the **ticker** counts epochs on the clock (:meth:`~qmk.kernel.clock.Clock.epochs`): the
  only periodic wake-up of the kernel, and the only place where a running job is asked
  to yield its worker. That is wall time: a worker computes outcomes the machine's
  schedule has fixed, so a yield changes neither the schedule nor the counts.
  Preemption in machine time is the shared machine's, at its epoch boundaries and its
  jobs' fences, a tenant's priorities included
  (:mod:`qmk.kernel.machine.policies.urgent`), and is in their machine records
  (:mod:`.shared_machine`);
- one task per job with a **deadline** holds a timeout scope at that deadline for the
  job's life, queued or running; the job's end cancels it.

Preemption reaches a running job through the worker pool's requests
(:meth:`~qmk.kernel.pools.pool.WorkerPool.request`): the job's executor answers at its next
``FENCE_EPOCH`` (or at once, rolling back its open REV segment, for ``yield-now``), saving
its execution state, and is queued again from it (:mod:`.runs`). A victim with no fence
to stop at is stopped at once instead (its worker killed) and runs again from its latest
checkpoint; an urgent job takes one victim.
"""

from __future__ import annotations

from qmk.errors import FirewallError
from qmk.execution.targets import spec as target_spec
from qmk.kernel.errors import JobError, error_json
from qmk.kernel.records import jobs as J
from qmk.kernel.records.jobs import Job
from qmk.kernel.running.book import JobBook, Running
from qmk.kernel.storage.retention import expire

#: Most times a job is preempted before it runs to the end regardless.
MAX_PREEMPTIONS = 3


class Epochs:
    """The epoch tick, preemption and the kernel's other stops (see the module docstring).

    Args:
        book: the kernel's jobs and their moves.
    """

    def __init__(self, book: JobBook) -> None:
        self.book = book
        #: Victims asked to yield their worker: victim job id -> the queued job it is for
        #: (one victim per urgent job; the entry ends with the victim's attempt).
        self._yield_for: dict[str, str] = {}
        #: When the states of jobs that ended are next looked at
        #: (:mod:`~qmk.kernel.storage.retention`).
        self._next_expiry = book.clock.now()

    async def run(self) -> None:
        """Count epochs on the clock: the scheduler's clock, its one periodic wake-up."""
        async for _ in self.book.clock.epochs(self.book.config.epoch_ms / 1000):
            self.tick()

    def tick(self) -> None:
        """An epoch fence: count it, and let a much more urgent queued job preempt."""
        book = self.book
        book.epoch += 1
        self._device_tick()
        self._expire_states()
        if book.results.expire(book.clock.now(), book.finished.values()):
            book.commits.dirty()
        if book.artifacts.expire(book.clock.now()):
            book.commits.dirty()
        for sweep in book.sweeps:
            if sweep(book.clock.now()):
                book.commits.dirty()
        self._expire_proposals()
        if len(book.queue) and len(book.running) >= book.workers and self._preempt():
            book.kick()

    def _expire_proposals(self) -> None:
        """Close the channel proposals nobody accepted within ``channel_proposal_ttl_s``."""
        book = self.book
        now = book.clock.now()
        for channel in book.channels.expire_proposals(
            now - book.config.channel_proposal_ttl_s, now
        ):
            book.store.save_channel(channel.to_row())
            book.audit.append(
                "chan",
                channel_id=channel.channel_id,
                tenant=channel.proposer,
                state=channel.state,
                reason="proposal expired",
            )
            book.commits.dirty()

    def _expire_states(self) -> None:
        """Delete the execution states of jobs that ended ``checkpoint_keep_s`` ago
        (looked at every tenth of that time, at most once a minute)."""
        book = self.book
        now = book.clock.now()
        if now < self._next_expiry:
            return
        keep = book.config.checkpoint_keep_s
        self._next_expiry = now + min(keep / 10, 60.0)
        if book.checkpoint_dir is not None and expire(
            book.store, book.audit, book.checkpoint_dir, now - keep
        ):
            book.commits.dirty()

    # ------------------------------------------------------------------ stops

    def channel_closed(self, channel_id: str) -> list[str]:
        """Stop the running jobs bound to ``channel_id`` (now CLOSED): they FAIL with a
        firewall error. Their ids."""
        book = self.book
        stopped = []
        for job_id in list(book.running):
            job = book.jobs.get(job_id)
            if job is None or channel_id not in job.policy.channels.values():
                continue
            book.stop(job, "channel-closed")
            refusal = FirewallError(f"channel {channel_id} was closed while the job ran")
            book.finish(job, J.FAILED, error_json(refusal))
            stopped.append(job_id)
        return stopped

    def arm_deadline(self, job: Job) -> None:
        """Hold ``job``'s deadline (if it has one, and it is not held yet) for its life."""
        book = self.book
        if job.deadline is None or job.job_id in book.deadlines:
            return
        task = book.spawn(self._deadline(job))
        if task is not None:
            book.deadlines[job.job_id] = task

    async def _deadline(self, job: Job) -> None:
        """``job``'s deadline: a timeout scope around its life (its end cancels this task)."""
        book = self.book
        try:
            async with book.clock.timeout_at(job.deadline):
                await book.loop.create_future()  # never set: only the scope or a cancel ends it
        except TimeoutError:
            book.deadlines.pop(job.job_id, None)
            if job.final or book.jobs.get(job.job_id) is not job:
                return
            book.stop(job, "deadline")
            deadline = JobError.of("deadline", "the job's deadline passed before it finished")
            book.finish(job, J.TIMED_OUT, error_json(deadline))

    def _device_tick(self) -> None:
        """Fail the modules the fault schedule fails at or before this epoch."""
        device = self.book.device
        for module in device.faults.failures_due(self.book.epoch):
            if module not in device.down:
                self.fail_module(module)

    def fail_module(self, module_id: int) -> list[str]:
        """Mark ``module_id`` down; stop the jobs running on it and queue them again (they
        start over on a module that is up). Returns their ids.

        Raises:
            QECError: no such module.
        """
        book = self.book
        if not book.device.fail(module_id, book.epoch):
            return []
        moved = []
        for job_id in book.placement.jobs_on(module_id):
            job = book.jobs.get(job_id)
            if job is None or job_id not in book.running:
                continue
            book.stop(job, "module-failed")
            book.faults.requeued(job, module_id, book.epoch)
            book.transition(
                job, J.QUEUED, reason=f"module {module_id} failed at epoch {book.epoch}"
            )
            book.queue.push(job)
            moved.append(job_id)
        event = {
            "epoch": book.epoch,
            "kind": "module-failure",
            "action": "mark-down",
            "module": module_id,
            "requeued": moved,
        }
        book.faults.log.append(event)
        book.audit.append("fault", **event)
        book.commits.dirty()
        book.kick()
        return moved

    # ------------------------------------------------------------------ preemption

    def _victim(self) -> tuple[Job, Job] | None:
        """The most urgent queued job that may preempt, and its victim: the least urgent
        running job of its tenant, at least ``preempt_gap`` less urgent; or None."""
        book = self.book
        gap = book.config.preempt_gap
        asked = self._asked_for()
        for best in sorted(book.queue.heads(), key=lambda j: -j.priority):
            if best.job_id in asked:
                continue  # its victim is on its way to its fence
            victims = [
                book.jobs[job_id]
                for job_id in book.running
                if job_id in book.jobs
                and job_id not in book.checkpoints.yielding
                and book.jobs[job_id].tenant == best.tenant
                and book.jobs[job_id].priority + gap <= best.priority
                and book.jobs[job_id].preemptions < MAX_PREEMPTIONS
            ]
            if victims:
                return best, min(victims, key=lambda j: (j.priority, -(j.started_at or 0.0)))
        return None

    def _preempt(self) -> bool:
        """Stop the least urgent running job of a tenant for a much more urgent queued job
        of the same tenant; True if so. Priorities order a tenant's own jobs only: across
        tenants the fair share decides, so no tenant's priority stops another's job. An
        urgent job takes one victim: while its victim is yielding, it asks no other."""
        book = self.book
        if book.config.preempt_gap <= 0:
            return False
        found = self._victim()
        if found is None:
            return False
        best, victim = found
        run = book.running[victim.job_id]
        # A program with no fence has no state to save but its start: it stops now, its
        # worker killed, and runs again from its latest checkpoint (its whole open REV
        # segment rolled back at no cost; the same seed gives the same counts). One with
        # fences yields at its next fence, or at once (rolling back its open REV segment)
        # when the urgent job is much more urgent.
        if self._pauses(victim, run):
            now = best.priority - victim.priority >= book.config.rollback_gap
            op = book.checkpoints.ask_to_yield(victim, run.future, now=now)
            if op is not None:
                self._yield_for[victim.job_id] = best.job_id
                self._audit_preempt(victim, best, op)
                book.commits.dirty(urgent=False)  # its line written with the next commit
                return False  # its worker is free once it has yielded
        self._audit_preempt(victim, best, "stop")
        book.stop(victim, "preempted")
        victim.preemptions += 1
        book.checkpoints.of_restart(victim)
        book.transition(
            victim, J.QUEUED, reason=f"preempted at epoch {book.epoch} by {best.job_id}"
        )
        book.queue.push(victim)
        return True

    def _asked_for(self) -> set[str]:
        """The queued jobs a victim is yielding its worker for (ended askings dropped)."""
        yielding = self.book.checkpoints.yielding
        for victim in [v for v in self._yield_for if v not in yielding]:
            del self._yield_for[victim]
        return set(self._yield_for.values())

    def _audit_preempt(self, victim: Job, best: Job, request: str) -> None:
        """The audit line of ``best`` preempting ``victim``: ``request`` is ``stop`` (its
        worker killed now) or the op that asks it to yield (``ask_to_yield``'s)."""
        self.book.audit.append(
            "preempt",
            job_id=victim.job_id,
            tenant=victim.tenant,
            epoch=self.book.epoch,
            by=best.job_id,
            request=request,
        )

    @staticmethod
    def _pauses(job: Job, run: Running) -> bool:
        """Whether ``job``'s running attempt has points to save its state at and stop: its
        target's (``TargetSpec.pauses``): a device job's chunks of shots, a QVM program's
        fences (its own, or those a fault policy added), or none."""
        pauses = target_spec(job.request.target).pauses
        if pauses != "fences":
            return pauses == "chunks"
        rewrite = None if run.work is None else run.work.request.rewrite
        return '"FENCE_EPOCH"' in job.graph or bool(rewrite is not None and rewrite.fences)


__all__ = ["MAX_PREEMPTIONS", "Epochs"]
