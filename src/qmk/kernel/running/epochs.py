"""The epoch tick and the stops the kernel decides on its own: deadlines, failed modules,
closed channels, and the expiries looked at each epoch.

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

Preemption (a much more urgent queued job of a tenant taking its least urgent one's
worker) is :mod:`.preemption`'s, asked by the tick while jobs wait for a full pool.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from qmk.errors import FirewallError
from qmk.kernel.errors import JobError, error_json
from qmk.kernel.records import jobs as J
from qmk.kernel.records.jobs import Job
from qmk.kernel.running.book import JobBook
from qmk.kernel.storage.retention import expire

if TYPE_CHECKING:
    from qmk.kernel.running.preemption import Preemption


class Epochs:
    """The epoch tick and the kernel's other stops (see the module docstring).

    Args:
        book: the kernel's jobs and their moves.
    """

    def __init__(self, book: JobBook) -> None:
        self.book = book
        #: Preemption, made the first time jobs wait for a full pool (``preempt_gap`` > 0).
        self._preemption: Preemption | None = None
        #: When the states of jobs that ended are next looked at
        #: (:mod:`~qmk.kernel.storage.retention`).
        self._next_expiry = book.clock.now()

    async def run(self) -> None:
        """Count epochs on the clock: the scheduler's clock, its one periodic wake-up."""
        book = self.book
        async for passed in book.clock.epochs(book.config.epoch_ms / 1000, book.rest):
            self.tick(passed)

    def tick(self, passed: int = 1) -> None:
        """An epoch fence: count the epochs ``passed`` since the last one, and let a much
        more urgent queued job preempt."""
        book = self.book
        book.epoch += passed
        self._device_tick()
        self._expire_states()
        if book.results.expire(book.clock.now(), book.finished.values()):
            book.commits.dirty()
        if book.artifacts is not None and book.artifacts.expire(book.clock.now()):
            book.commits.dirty()
        for sweep in book.sweeps:
            if sweep(book.clock.now()):
                book.commits.dirty()
        self._expire_proposals()
        if len(book.queue) and len(book.running) >= book.workers and book.config.preempt_gap > 0:
            if self._preemption is None:  # the first time jobs wait for a full pool
                from qmk.kernel.running.preemption import Preemption

                self._preemption = Preemption(book)
            if self._preemption.preempt():
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


__all__ = ["Epochs"]
