"""The dispatcher: queued jobs started on free workers, as their tenants' quotas and the
machine allow.

The **dispatcher** task sleeps on an event that
:meth:`~qmk.kernel.running.book.JobBook.kick` sets whenever a job is queued or resources
are freed, and starts as many fitting jobs as there are free workers, in the fair queue's
order (:mod:`qmk.kernel.admit.scheduler`). A start reserves the job's resources (physical
qubits, logical qubits per tenant, a running job of its tenant, its place on a module),
checks its capabilities and channels again (VALIDATING), applies the fault policies and
hands the attempt to the runs (:mod:`.runs`). A queued job that can never start under the
configuration and machine now fails after the round.
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Mapping
from typing import Any

from qmk.errors import (
    AdmissionError,
    CapabilityError,
    FirewallError,
    NotFoundError,
    QMKError,
    QuotaError,
)
from qmk.execution.request import RunRequest
from qmk.execution.targets import spec as target_spec
from qmk.kernel.admit.faults import spans
from qmk.kernel.errors import error_json
from qmk.kernel.pools.attempt import Attempt
from qmk.kernel.records import jobs as J
from qmk.kernel.records.jobs import Job
from qmk.kernel.records.programs import limits_of
from qmk.kernel.running.book import JobBook
from qmk.kernel.running.runs import Runs
from qmk.kernel.storage.retention import state_file


class Dispatcher:
    """Queued jobs to free workers (see the module docstring).

    Args:
        book: the kernel's jobs and their moves.
        runs: the runs on workers, which take each started attempt.
    """

    def __init__(self, book: JobBook, runs: Runs) -> None:
        self.book = book
        self.runs = runs
        # each job's checkpoint folder is this and its id (os.path.join's text, joined once)
        self._checkpoints = (
            None if book.checkpoint_dir is None else os.path.join(book.checkpoint_dir, "")
        )
        #: Queued jobs found unable ever to start, failed after the dispatch round.
        self._doomed: list[tuple[Job, QMKError]] = []

    async def run(self) -> None:
        """The dispatcher's task: a round each time it is kicked."""
        book = self.book
        while True:
            await book.kicked.wait()
            book.kicked.clear()
            self.dispatch()

    def queue_depth(self) -> tuple[int, int]:
        """(queued jobs a free worker would start, jobs running): what a pool on a
        scaling cluster publishes. A job its tenant's ``max_concurrent_jobs`` holds back
        is not counted: a new worker would not run it."""
        book = self.book
        waiting: Counter[str] = Counter(job.tenant for job in book.queue)
        startable = 0
        for tenant, count in waiting.items():
            quota = book.quota(tenant)
            if quota is not None:
                room = quota.max_concurrent_jobs - book.running_jobs[tenant]
                startable += min(count, max(room, 0))
        return startable, len(book.running)

    def resize(self, workers: int) -> None:
        """Run up to ``workers`` jobs at once from now on: a pool that follows its
        cluster says so as workers join and leave (from its loop: maybe another
        thread's)."""
        book = self.book

        def apply() -> None:
            book.workers = max(int(workers), 1)
            book.kick()

        book.loop.call_soon_threadsafe(apply)

    def _never_fits(self, job: Job) -> QMKError | None:
        """Why queued ``job`` can never start under the configuration and machine now (a
        quota lowered, a module down since it was admitted), or None."""
        device = self.book.device
        total = device.largest_module_up
        where = "the largest module up has"
        if spans(job, device):  # teleported over modules: it holds them all
            total, where = device.inventory().physical_qubits_up, "the modules up have"
        if job.physical_qubits > total:
            return AdmissionError(
                f"the job needs {job.physical_qubits} physical qubits at its peak; {where} {total}"
            )
        for name, count in job.qubits.items():
            quota = self.book.quota(name)
            if quota is None or count > quota.max_logical_qubits:
                limit = 0 if quota is None else quota.max_logical_qubits
                return QuotaError(
                    f"the job holds {count} logical qubits of tenant {name!r}; its "
                    f"max_logical_qubits is now {limit}",
                    limit="max_logical_qubits",
                )
        return None

    def _quotas_allow(self, job: Job) -> bool:
        """Whether the quotas let ``job`` start now: a running job more of its tenant,
        the logical qubits it holds of each tenant."""
        book = self.book
        tenant = book.quota(job.tenant)
        if tenant is None or book.running_jobs[job.tenant] >= tenant.max_concurrent_jobs:
            return False
        for name, count in job.qubits.items():
            quota = book.quota(name)
            if quota is None or book.logical_in_use[name] + count > quota.max_logical_qubits:
                return False
        return True

    def dispatch(self) -> None:
        """One round: start the fitting queued jobs, as many as there are free workers."""
        book = self.book
        if not book.starting:
            return
        free = book.workers - len(book.running)
        if free <= 0 or not len(book.queue):
            return
        for job in book.queue.select(self._fits_and_reserve, free):
            self._start(job)
        doomed, self._doomed = self._doomed, []
        for job, error in doomed:
            if book.queue.remove(job.job_id) is not None:
                book.finish(job, J.FAILED, error_json(error))
        if doomed:
            book.kick()  # the tenants they blocked get their turn

    def _fits_and_reserve(self, job: Job) -> bool:
        """Reserve ``job``'s resources if it fits now (quotas, a module up with room for
        it); else False, and a job that can never start is failed after the round (it
        must not hold the line). A job that fits now is one that can start: why it never
        could is asked only of one that does not."""
        book = self.book
        if not (self._quotas_allow(job) and book.placement.place(job)):
            never = self._never_fits(job)
            if never is not None:
                self._doomed.append((job, never))
            return False
        book.physical_in_use += job.physical_qubits
        for tenant, count in job.qubits.items():
            book.logical_in_use[tenant] += count
        book.running_jobs[job.tenant] += 1
        return True

    def _refusal(self, job: Job) -> dict[str, Any] | None:
        """Why ``job`` may not start now (a capability taken away, a channel no longer
        OPEN), as its error, or None."""
        book = self.book
        # granted at submit, and still the tenant's now (the config may have taken some
        # away): in its configuration, else lent by a live delegation (asked only then)
        conf = book.config.tenants.get(job.tenant)
        granted = () if conf is None else conf.caps
        lent: frozenset[str] | None = None
        missing: set[str] = set()
        for cap in job.required_caps:
            if cap in job.caps and cap not in granted:
                if lent is None:
                    lent = book.lent_caps(job.tenant)
                if cap in lent:
                    continue
            elif cap in job.caps:
                continue
            missing.add(cap)
        refusal = None
        if missing:
            refusal = error_json(
                CapabilityError(f"refused at execution: the job lacks {sorted(missing)}")
            )
        for name, channel_id in job.policy.channels.items():
            try:
                channel = book.channels.get(channel_id, job.tenant)
            except NotFoundError:
                channel = None
            if channel is None or channel.state != "OPEN":
                refusal = error_json(
                    FirewallError(f"channel {name!r} ({channel_id}) is no longer OPEN")
                )
        return refusal

    def _start(self, job: Job) -> None:
        """VALIDATING (capabilities and channels checked again), then RUNNING on a worker.

        Both transitions happen in one loop turn, so only RUNNING (or the refusal) reaches
        the database. The audit log records the check's decision once: on the RUNNING
        line when it allows (``required``, ``decision``: the VALIDATING line's facts, at
        the same epoch), on a VALIDATING line of its own, before FAILED, when it denies.
        """
        book = self.book
        refusal = self._refusal(job)
        if refusal is not None:
            job.state = J.VALIDATING
            book.audit.append(
                "job",
                job_id=job.job_id,
                tenant=job.tenant,
                state=J.VALIDATING,
                epoch=book.epoch,
                required=list(job.required_caps),
                decision="deny",
            )
            book.release(job)
            book.finish(job, J.FAILED, refusal)
            return
        resume_from = book.checkpoints.resume_from(job)
        job.attempts += 1
        job.started_at = book.clock.now()
        job.epoch = book.epoch
        book.transition(
            job,
            J.RUNNING,
            attempt=job.attempts,
            epoch=book.epoch,
            required=list(job.required_caps),
            decision="allow",
        )
        checkpoint_dir = book.checkpoint_dir
        directory = None if self._checkpoints is None else self._checkpoints + job.job_id
        resume = (
            None
            if resume_from is None or checkpoint_dir is None
            else str(state_file(checkpoint_dir, resume_from["path"]))
        )
        target = target_spec(job.request.target)
        if target.logical_machine:  # the machine's faults apply
            request = self._apply_faults(job, job.request, resume_from)
            if request is None:  # refused: FAILED already
                return
        else:  # physics of its own: no module, no fault policy changes its program
            request = job.request
        limits = limits_of(book.config)  # the kernel's, which it verified the program with
        attempt = Attempt(
            request=request,
            program=job.graph,
            caps=tuple(job.caps),
            checkpoint_dir=directory,
            resume=resume,
            max_result_bytes=book.config.max_result_bytes,
            state_key=book.state_key,
            max_nodes=limits.max_nodes,
            max_unrolled_nodes=limits.max_unrolled_nodes,
        )
        self.runs.submit(job, attempt, streams=target.streams)

    def _apply_faults(
        self, job: Job, request: RunRequest, resume_from: Mapping[str, Any] | None
    ) -> RunRequest | None:
        """``request`` as the fault policies leave it at this start
        (:meth:`~qmk.kernel.admit.faults.FaultPolicies.start`), the job resized on its module
        when they raised a distance; None when a policy refused the job (FAILED)."""
        book = self.book
        try:
            request, adjusted = book.faults.start(job, request, resume_from, book.epoch)
        except QMKError as exc:
            book.release(job)
            book.finish(job, J.FAILED, error_json(exc))
            return None
        if adjusted.physical_qubits != job.physical_qubits:  # the placement resized already
            book.physical_in_use += adjusted.physical_qubits - job.physical_qubits
            job.physical_qubits = adjusted.physical_qubits
        return request


__all__ = ["Dispatcher"]
