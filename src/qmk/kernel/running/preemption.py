"""Preemption: a much more urgent queued job of a tenant takes the worker of that
tenant's least urgent running job.

The epoch tick (:class:`~qmk.kernel.running.epochs.Epochs`) makes a :class:`Preemption`
the first time jobs wait for a full pool (with ``preempt_gap`` > 0), and asks it at each
tick while they do. Priorities order a tenant's own jobs only: across tenants the fair
share decides, so no tenant's priority stops another's job.

Preemption reaches a running job through the worker pool's requests
(:meth:`~qmk.kernel.pools.pool.WorkerPool.request`): the job's executor answers at its next
``FENCE_EPOCH`` (or at once, rolling back its open REV segment, for ``yield-now``), saving
its execution state, and is queued again from it (:mod:`.runs`). A victim with no fence
to stop at is stopped at once instead (its worker killed) and runs again from its latest
checkpoint; an urgent job takes one victim.
"""

from __future__ import annotations

from qmk.execution.targets import spec as target_spec
from qmk.kernel.records import jobs as J
from qmk.kernel.records.jobs import Job
from qmk.kernel.running.book import JobBook, Running

#: Most times a job is preempted before it runs to the end regardless.
MAX_PREEMPTIONS = 3


class Preemption:
    """Preemption in wall time: victims chosen, asked to yield or stopped (see the module
    docstring).

    Args:
        book: the kernel's jobs and their moves.
    """

    def __init__(self, book: JobBook) -> None:
        self.book = book
        #: Victims asked to yield their worker: victim job id -> the queued job it is for
        #: (one victim per urgent job; the entry ends with the victim's attempt).
        self._yield_for: dict[str, str] = {}

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

    def preempt(self) -> bool:
        """Stop the least urgent running job of a tenant for a much more urgent queued job
        of the same tenant; True if so. Priorities order a tenant's own jobs only: across
        tenants the fair share decides, so no tenant's priority stops another's job. An
        urgent job takes one victim: while its victim is yielding, it asks no other."""
        book = self.book
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


__all__ = ["MAX_PREEMPTIONS", "Preemption"]
