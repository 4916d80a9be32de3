"""Jobs as the syscalls see them: submitted (checked by the admission, accepted by the
supervisor), found, waited for, paged through, cancelled, checkpointed, restored, replayed
and listed (``q_submit``, ``q_status``, ``q_wait``, ``q_get_result``,
``q_device_artifacts``, ``q_cancel``, ``q_checkpoint``, ``q_restore``, ``q_replay``,
``q_list_jobs``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import msgspec

import qmk.abi.replies as replies
from qmk import defaults
from qmk.errors import InvalidArgument
from qmk.kernel.admit.admission import Admission, Allowed
from qmk.kernel.admit.arrivals import Arrivals, Turn
from qmk.kernel.config import KernelConfig
from qmk.kernel.records import jobs as J
from qmk.kernel.running.supervisor import Supervisor
from qmk.kernel.security.sessions import Session
from qmk.kernel.storage.reserve import DiskReserve
from qmk.kernel.storage.store import Store
from qmk.kernel.syscalls.loans import Loans
from qmk.kernel.syscalls.traces import FeedTraces


class JobDesk:
    """The job syscalls' work, each for a checked session (see the module docstring).

    Args:
        config: the kernel configuration.
        reserve: the data directory's disk reserve (checked at a submit, a restore, a
            replay and a checkpoint).
        store: the kernel's database.
        admission: checks submissions and builds their jobs.
        supervisor: holds, runs and stops the jobs.
        delegations: the use of lent capabilities, audited at a submit.
        check_open: raises while the kernel is closing or stopped.
    """

    def __init__(
        self,
        config: KernelConfig,
        reserve: DiskReserve,
        *,
        store: Store,
        admission: Admission,
        supervisor: Supervisor,
        delegations: Loans,
        check_open: Callable[[], None],
    ) -> None:
        self.config = config
        self.reserve = reserve
        self.store = store
        self.admission = admission
        self.supervisor = supervisor
        self.delegations = delegations
        self._check_open = check_open
        #: Each tenant's submits, queued in the order they arrived.
        self.arrivals = Arrivals()
        #: The runs traced for a tracer in another process (a submit's ``traceparent``).
        self.traces: FeedTraces | None = None

    async def submit(
        self,
        session: Session,
        graph: Any,
        shots: int = defaults.SHOTS,
        seed: int | None = None,
        policy: Mapping[str, Any] | None = None,
        *,
        idempotency_key: str | None = None,
        target: str = defaults.TARGET,
        wait_ms: int | None = None,
        traceparent: str | None = None,
    ) -> replies.Job:
        """``q_submit`` with a checked ``session`` (a trigger's run has one of its
        owner's); with ``wait_ms``, the accepted job then waited for as ``q_wait`` waits
        (a bad ``wait_ms`` is refused before anything is checked or kept). The tenant's
        submits are queued in the order they arrived (:mod:`~qmk.kernel.admit.arrivals`).
        With ``traceparent``, its runs are traced (:class:`FeedTraces`)."""
        FeedTraces.check(traceparent)
        turn = self.arrivals.arrive(session.tenant)
        try:
            if turn.behind:
                await turn.wait()
            return await self._submit(
                turn,
                session,
                graph,
                shots,
                seed,
                policy,
                idempotency_key,
                target,
                wait_ms,
                traceparent,
            )
        finally:
            turn.end()

    async def _submit(
        self,
        turn: Turn,
        session: Session,
        graph: Any,
        shots: int,
        seed: int | None,
        policy: Mapping[str, Any] | None,
        idempotency_key: str | None,
        target: str,
        wait_ms: int | None,
        traceparent: str | None = None,
    ) -> replies.Job:
        """:meth:`submit` in its ``turn``, which it ends as its job is queued (or known)."""
        if wait_ms is not None:
            _check_wait("wait_ms", wait_ms, nullable=True)
        if idempotency_key is not None:
            if not isinstance(idempotency_key, str) or not 1 <= len(idempotency_key) <= 128:
                raise InvalidArgument(
                    "idempotency_key must be a string of 1-128 characters or null",
                    key="idempotency_key",
                )
            known = self.store.job_id_for_key(session.tenant, idempotency_key)
            if known is not None:  # answered as q_wait answers (committed first)
                turn.end()
                job = self.supervisor.job(known, session.tenant)
                return await self.supervisor.wait(job, 0 if wait_ms is None else wait_ms / 1000)
        self.reserve.check("a submit")
        self.admission.cpu.check(session.tenant, "a submit")
        # the program, read by the one reader (a big one, and a device job, off the loop)
        read = await self.admission.read(session.tenant, graph, target=target)
        self._check_open()
        # the capability check that allows the program goes on the job's QUEUED line; a
        # submit refused (or failing) after it writes it as its cap line instead
        allowed: list[Allowed] = []
        try:
            job = await self.admission.admit(
                session, read, shots, seed, policy, target=target, allowed=allowed
            )
            self.delegations.audit_use(
                session, job.required_caps, where="submit", job_id=job.job_id
            )
            if traceparent is not None and self.traces is not None:  # before it can run
                self.traces.follow(job.job_id, session.tenant, traceparent)
            # the next submit goes on once this one's job is queued: accept queues it
            # before its first wait, and the next one resumes in a later step
            turn.end()
            # with wait_ms: the job once final (or as it is then), as q_wait answers it;
            # its acceptance committed with that answer, not alone
            accepted = await self.supervisor.accept(
                job,
                idempotency_key=idempotency_key,
                allowed=allowed,
                wait_s=None if wait_ms is None else wait_ms / 1000,
            )
        except BaseException:
            self.admission.write_allowed(allowed)
            raise
        if job.warnings:  # the accepted answer says an option changed nothing
            warnings = [replies.CodedError.from_json(warning) for warning in job.warnings]
            return msgspec.structs.replace(accepted, warnings=warnings)
        return accepted

    def status(self, session: Session, job_id: str) -> replies.Job:
        """``q_status``: the job, with its result once COMPLETED."""
        return self.supervisor.job(job_id, session.tenant).reply()

    async def wait(self, session: Session, job_id: str, timeout_ms: int) -> replies.Job:
        """``q_wait``: the job once final or when ``timeout_ms`` passed."""
        _check_wait("timeout_ms", timeout_ms)
        job = self.supervisor.job(job_id, session.tenant)
        return await self.supervisor.wait(job, timeout_ms / 1000)

    def result(
        self, session: Session, job_id: str, cursor: str | None, limit: int
    ) -> replies.ResultPage:
        """``q_get_result``: a page of a COMPLETED job's counts
        (:meth:`~qmk.kernel.storage.results.Results.page`)."""
        job = self.supervisor.job(job_id, session.tenant)
        return replies.ResultPage(**self.supervisor.results.page(job, cursor, limit))

    def artifacts(
        self, session: Session, job_id: str, name: str | None, offset: int, limit: int
    ) -> replies.Artifacts:
        """``q_device_artifacts``: a device job's artifacts
        (:mod:`~qmk.kernel.storage.artifacts`), or with ``name`` a page of its records."""
        job = self.supervisor.job(job_id, session.tenant)
        store = self.supervisor.book.stored_artifacts()
        if name is None:
            return replies.Artifacts(state=job.state, **store.listing(job.job_id))
        if not isinstance(name, str):
            raise InvalidArgument(f"name must be a string or null, got {name!r}", key="name")
        return replies.Artifacts(state=job.state, **store.read(job.job_id, name, offset, limit))

    async def cancel(self, session: Session, job_id: str) -> replies.Job:
        """``q_cancel``: dequeue the job, or kill its worker."""
        return await self.supervisor.cancel(self.supervisor.job(job_id, session.tenant))

    async def checkpoint(self, session: Session, job_id: str) -> replies.Checkpoint:
        """``q_checkpoint``: a checkpoint of the job (docs/kernel.md)."""
        self.reserve.check("a checkpoint")
        return await self.supervisor.checkpoint(self.supervisor.job(job_id, session.tenant))

    async def restore(
        self, session: Session, job_id: str, checkpoint_id: str | None
    ) -> replies.Job:
        """``q_restore``: the job queued again from a checkpoint, after the same checks
        as a submit's."""
        self.admission.cpu.check(session.tenant, "a restore")
        self.reserve.check("a restore")
        job = self.supervisor.job(job_id, session.tenant)
        if checkpoint_id is not None and not isinstance(checkpoint_id, str):
            raise InvalidArgument("checkpoint_id must be a string or null")
        job.stored_program()  # QK310 for a text not the one the kernel sealed
        from qmk.kernel.admit.restore import readmit  # at the first restore

        await readmit(self.admission, session, job)  # the same checks as a submit's
        return await self.supervisor.restore(job, checkpoint_id)

    async def replay(self, session: Session, job_id: str) -> replies.Job:
        """``q_replay``: a new job with the same graph, shots, seed and policy (so the
        same counts), run again: the result cache never answers it (``cache: false``)."""
        self.admission.cpu.check(session.tenant, "a replay")
        self.reserve.check("a replay")
        old = self.supervisor.job(job_id, session.tenant)
        text = old.stored_program()  # QK310 for a text not the one the kernel sealed
        request = old.request
        policy = {**old.policy.to_json(), **request.target_options, "cache": False}
        read = await self.admission.read(session.tenant, text, target=request.target)
        self._check_open()
        job = await self.admission.admit(
            session, read, old.shots, old.seed, policy, target=request.target
        )
        if request.machine is not None:  # the same waits on the shared machine, too
            job.request = msgspec.structs.replace(job.request, machine=request.machine)
        return await self.supervisor.accept(job)

    def listed(self, session: Session, state: str | None, limit: int) -> replies.JobList:
        """``q_list_jobs``: the tenant's jobs, newest first, without results."""
        if state is not None and state not in J.STATES:
            raise InvalidArgument(
                f"state must be one of {', '.join(J.STATES)} or null, got {state!r}", key="state"
            )
        if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= 10_000:
            raise InvalidArgument(f"limit must be an integer 1..10000, got {limit!r}", key="limit")
        jobs = self.store.list_jobs(session.tenant, state, limit)
        return replies.JobList(jobs=[job.reply(result=False) for job in jobs])


def _check_wait(name: str, value: object, *, nullable: bool = False) -> None:
    """Refuse a wait in ms that is no integer 0..MAX_TIMEOUT_MS: ``q_wait``'s
    ``timeout_ms`` (its message as it always was) or ``q_submit``'s ``wait_ms``
    (``nullable``: null is its default; the refusal names it as its ``key``).

    Raises:
        InvalidArgument: one line that names the param and shows the value (a huge one
            by its size, not its digits).
    """
    if type(value) is int and 0 <= value <= defaults.MAX_TIMEOUT_MS:
        return
    shown = repr(value)
    if len(shown) > 40:  # a huge integer (or a long value): its size, not its digits
        shown = f"{shown[:40]}... ({len(shown)} characters)"
    wanted = f"{name} must be an integer 0..{defaults.MAX_TIMEOUT_MS}"
    if nullable:
        raise InvalidArgument(f"{wanted} or null, got {shown}", key=name)
    raise InvalidArgument(f"{wanted}, got {shown}")


__all__ = ["JobDesk"]
