"""Workflow triggers: the kernel runs a tenant's workflow on a schedule or on events.

A trigger (``q_create_trigger``) holds a workflow (its programs' text inside it), and
what starts it (:class:`qmk.workflows.triggers.TriggerSpec`: a schedule, a job of its
owner ending, a calibration ingested). It holds the capabilities its runs may use: those
the creating session held of its tenant's own config (never a delegated one), as the
config still grants them when a run starts. :class:`Triggers` is the kernel's table of
them:

- **The loop** (:meth:`Triggers.run`, a task of the kernel's TaskGroup, its runs tasks
  of a group of its own) sleeps on the kernel's clock until the earliest schedule is due
  or an event comes. (:meth:`Triggers.heard` is a listener of the audit log: a job's
  end, a ``device`` ``calibrate`` line.) Then it starts what is due. A trigger runs one
  run at a time: a start while its run before is going on is recorded SKIPPED.
- **A run** is the workflow on the kernel's own path for jobs. Its programs are lowered
  in the kernel's planner process, never the kernel's (their CPU charged to the owner's
  budget). Then every job is submitted as
  the owner's through admission (capabilities, the firewall, quotas, the queue room) and
  run by the workers, never in the kernel's process. The run waits for them as
  ``q_wait`` does (:func:`qmk.workflows.runner.run_workflow_async`: the same steps,
  dependencies and retries as ``qmk workflow run``). A job a run submitted starts no job
  trigger, so no trigger feeds itself: the job's QUEUED audit line is heard inside the
  run's submit (the run's context), before any worker can end it, and the run's row
  lists the job in the same transaction as the job's own row.
- **Durable**: triggers, a schedule's next time and every run (RUNNING, then how it
  ended) are rows of the kernel's database (``triggers``, ``trigger_runs``), committed
  with the kernel's group commit. When the kernel starts, a run it left RUNNING is
  INTERRUPTED (the jobs it had submitted run on, as every job does), and a schedule
  whose time passed while it was down runs once, its run saying how many times were
  missed (``reason`` ``catch-up``, ``detail.missed``), never once per missed time.

Every create, delete and run start and end is an audit line (event ``trigger``).
"""

from __future__ import annotations

import asyncio
import contextvars
import json
import logging
import secrets
from collections import Counter, deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from msgspec import UNSET

import qmk.abi.replies as replies
from qmk import aio, defaults
from qmk.errors import InvalidArgument, NotFoundError, QMKError, QuotaError
from qmk.kernel.clock import Clock
from qmk.kernel.security.sessions import Session
from qmk.kernel.storage.audit import AuditLog
from qmk.kernel.storage.store import Store
from qmk.kernel.storage.trigger_rows import RunRow, TriggerRow, TriggerRows

if TYPE_CHECKING:
    # qmk.workflows is imported where a trigger is made, loaded or run: a kernel that
    # holds no trigger never loads it (the trusted core, issue 79)
    from qmk.workflows.runner import JobResult, Planned
    from qmk.workflows.spec import Workflow
    from qmk.workflows.triggers import TriggerSpec

_log = logging.getLogger("qmk.kernel.running.triggers")
T = TypeVar("T")

#: A tenant's triggers at most.
MAX_TRIGGERS = 100
#: The runs a trigger keeps (the newest).
RUNS_KEPT = 100
#: A run's states.
RUNNING, COMPLETED, FAILED, SKIPPED, INTERRUPTED = (
    "RUNNING",
    "COMPLETED",
    "FAILED",
    "SKIPPED",
    "INTERRUPTED",
)
#: How long one wait for a run's job lasts before it is made again (seconds).
WAIT_S = 3600.0

#: The run whose task is running now: a job its submit accepts is audited (QUEUED)
#: inside that submit, so the run knows its job before any worker can end it.
_IN_RUN: contextvars.ContextVar[Run | None] = contextvars.ContextVar(
    "qmk_trigger_run", default=None
)


class Host(Protocol):
    """What a trigger's run needs of the kernel (the kernel gives it one)."""

    def session_for(self, tenant: str, caps: Sequence[str], label: str) -> Session:
        """A session of ``tenant`` holding those of ``caps`` its config grants now.

        Raises:
            QMKError: the tenant is no longer configured.
        """
        ...

    async def submit(
        self,
        session: Session,
        graph: Mapping[str, Any],
        shots: int,
        seed: int | None,
        policy: Mapping[str, Any],
    ) -> replies.Job:
        """``q_submit`` with ``session``: the job as accepted (or refused: QMKError)."""
        ...

    async def wait(self, job_id: str, tenant: str, timeout_s: float) -> replies.Job:
        """``q_wait``: the job once final, or as it is after ``timeout_s``."""
        ...

    async def lowered(self, tenant: str, flow: Workflow) -> dict[Any, Any]:
        """Every program of ``flow`` lowered and every job's policy read, in the kernel's
        planner process (:func:`qmk.workflows.runner.runnable`), its CPU charged to
        ``tenant``'s budget: the run's cache.

        Raises:
            QMKError: ``QW013 bad-workflow``; the planner process died.
        """
        ...


def _new_id(prefix: str) -> str:
    return f"{prefix}_{secrets.token_urlsafe(18)}"


@dataclass(slots=True, kw_only=True)
class Run:
    """One run of a trigger (see :class:`qmk.abi.replies.TriggerRun`)."""

    run_id: str
    trigger_id: str
    tenant: str
    reason: str
    detail: dict[str, Any]
    state: str
    started_at: float
    finished_at: float | None = None
    jobs: list[str] = field(default_factory=list)
    summary: dict[str, int] | None = None
    error: str | None = None

    def row(self) -> RunRow:
        return RunRow(
            run_id=self.run_id,
            trigger_id=self.trigger_id,
            tenant=self.tenant,
            reason=self.reason,
            detail=json.dumps(self.detail),
            state=self.state,
            started_at=self.started_at,
            finished_at=self.finished_at,
            jobs=json.dumps(self.jobs),
            summary=None if self.summary is None else json.dumps(self.summary),
            error=self.error,
        )

    @classmethod
    def from_row(cls, row: RunRow) -> Run:
        return cls(
            run_id=row.run_id,
            trigger_id=row.trigger_id,
            tenant=row.tenant,
            reason=row.reason,
            detail=json.loads(row.detail),
            state=row.state,
            started_at=row.started_at,
            finished_at=row.finished_at,
            jobs=list(json.loads(row.jobs)),
            summary=None if row.summary is None else json.loads(row.summary),
            error=row.error,
        )

    def reply(self) -> replies.TriggerRun:
        """The run as the syscalls answer it."""
        return replies.TriggerRun(
            run_id=self.run_id,
            trigger_id=self.trigger_id,
            reason=self.reason,
            detail=dict(self.detail),
            state=self.state,
            started_at=self.started_at,
            finished_at=self.finished_at,
            jobs=list(self.jobs),
            summary=None if self.summary is None else dict(self.summary),
            error=self.error,
        )


@dataclass(slots=True, kw_only=True)
class Trigger:
    """A trigger the kernel holds (see :class:`qmk.abi.replies.Trigger`)."""

    trigger_id: str
    tenant: str
    spec: TriggerSpec
    flow: Workflow
    caps: tuple[str, ...]
    created_at: float
    next_at: float | None
    last: Run | None = None

    def row(self) -> TriggerRow:
        from qmk.workflows.spec import to_data

        return TriggerRow(
            trigger_id=self.trigger_id,
            tenant=self.tenant,
            name=self.spec.name,
            spec=json.dumps(self.spec.to_json()),
            workflow=json.dumps(to_data(self.flow)),
            caps=json.dumps(list(self.caps)),
            created_at=self.created_at,
            next_at=self.next_at,
        )

    @classmethod
    def from_row(cls, row: TriggerRow) -> Trigger:
        from qmk.workflows.spec import from_data
        from qmk.workflows.triggers import TriggerSpec

        return cls(
            trigger_id=row.trigger_id,
            tenant=row.tenant,
            spec=TriggerSpec.from_json(json.loads(row.spec)),
            flow=from_data(json.loads(row.workflow), files=False),
            caps=tuple(json.loads(row.caps)),
            created_at=row.created_at,
            next_at=row.next_at,
        )

    def reply(
        self,
        state: str = "ACTIVE",
        runs: list[replies.TriggerRun] | replies.Absent = UNSET,
    ) -> replies.Trigger:
        """The trigger as the syscalls answer it (``runs``: its newest runs, where
        asked for)."""
        spec = self.spec
        return replies.Trigger(
            trigger_id=self.trigger_id,
            tenant=self.tenant,
            name=spec.name,
            on=spec.on,
            every_s=spec.every_s,
            cron=spec.cron,
            states=list(spec.states),
            workflow=self.flow.name,
            steps=len(self.flow.steps),
            jobs=self.flow.size,
            caps=list(self.caps),
            state=state,
            created_at=self.created_at,
            next_run_at=self.next_at,
            last_run=None if self.last is None else self.last.reply(),
            runs=runs,
        )


class Triggers:
    """The kernel's triggers and their loop (see the module docstring).

    Args:
        store: the kernel's database.
        audit: its audit log (whose lines :meth:`heard` listens to).
        commits: its group commit (``dirty``, ``durable``).
        clock: its clock: schedules run on its ``now()``, the loop sleeps on
            ``timeout_at``.
        host: what a run needs of the kernel (:class:`Host`).
    """

    def __init__(
        self, *, store: Store, audit: AuditLog, commits: Any, clock: Clock, host: Host
    ) -> None:
        self.store = TriggerRows(store)
        self.audit, self.commits, self.clock, self.host = audit, commits, clock, host
        self.by_id: dict[str, Trigger] = {}
        #: The jobs the kernel's trigger runs submitted (they start no job trigger).
        self.own_jobs: set[str] = set()
        self._events: deque[tuple[str, str | None, dict[str, Any]]] = deque()
        self._wake = asyncio.Event()
        self._running: dict[str, asyncio.Task[None]] = {}
        self._group: aio.TaskGroup | None = None

    # ------------------------------------------------------------------ start

    def load(self) -> list[Run]:
        """Read the triggers from the store; the runs the kernel left RUNNING when it
        stopped, now INTERRUPTED (returned)."""
        for row in self.store.all():
            trigger = Trigger.from_row(row)
            self.by_id[trigger.trigger_id] = trigger
            newest = self.store.runs(trigger.trigger_id, 1)
            trigger.last = Run.from_row(newest[0]) if newest else None
        self.own_jobs = self.store.run_job_ids()
        interrupted = []
        for left in self.store.unfinished_runs():
            run = Run.from_row(left)
            run.state, run.finished_at = INTERRUPTED, self.clock.now()
            run.error = (
                "the kernel stopped during the run; the jobs it had submitted ran on "
                "as every job does"
            )
            self._record(run)
            interrupted.append(run)
        return interrupted

    async def run(self) -> None:
        """The loop: start each schedule when due and each trigger an event starts; its
        runs are tasks of its own group (cancelled with it, when the kernel closes)."""
        async with aio.TaskGroup() as group:
            self._group = group
            try:
                while True:
                    self._wake.clear()
                    self._start_due()
                    self._start_heard()
                    try:
                        async with self.clock.timeout_at(self._next_due()):
                            await self._wake.wait()
                    except TimeoutError:
                        pass
            finally:
                self._group = None

    def _next_due(self) -> float | None:
        times = [t.next_at for t in self.by_id.values() if t.next_at is not None]
        return min(times, default=None)

    # ------------------------------------------------------------------ events

    def heard(self, record: Mapping[str, Any]) -> None:
        """An audit line: a job's end, or a calibration ingested, wakes the loop (not
        while the kernel holds no trigger: none would hear it, and a trigger made later
        hears what comes after it)."""
        event = record.get("event")
        if event == "job":
            state = record.get("state")
            if state == "QUEUED":
                run = _IN_RUN.get()
                if run is not None and run.finished_at is None:
                    self._owns(run, str(record.get("job_id")))  # accepted in the run's submit
                return
            if state not in defaults.FINAL_JOB_STATES or not self.by_id:
                return  # six lines a job: most return here
            job_id = str(record.get("job_id"))
            if job_id in self.own_jobs:
                return
            detail = {"job_id": job_id, "state": state}
            self._events.append(("job", str(record.get("tenant")), detail))
        elif event == "device" and record.get("action") == "calibrate" and self.by_id:
            self._events.append(("calibration", None, {"epoch": record.get("epoch")}))
        else:
            return
        self._wake.set()

    def _owns(self, run: Run, job_id: str) -> None:
        """``job_id`` is ``run``'s: its row says so in the transaction that holds the job
        (a kernel killed after the job is kept knows it when it starts again)."""
        if job_id in self.own_jobs:
            return
        self.own_jobs.add(job_id)
        run.jobs.append(job_id)
        if run.trigger_id in self.by_id:
            self.store.save_run(run.row(), keep=RUNS_KEPT)

    def _start_heard(self) -> None:
        while self._events:
            event, tenant, detail = self._events.popleft()
            for trigger in list(self.by_id.values()):
                if tenant is not None and trigger.tenant != tenant:
                    continue
                if trigger.spec.hears(event, detail.get("state")):
                    self._start(trigger, event, dict(detail))

    def _start_due(self) -> None:
        now = self.clock.now()
        for trigger in list(self.by_id.values()):
            due = trigger.next_at
            if due is None or due > now:
                continue
            missed, trigger.next_at = trigger.spec.catch_up(due, now)
            self.store.set_next_run(trigger.trigger_id, trigger.next_at)
            detail: dict[str, Any] = {"due_at": due, "missed": missed}
            self._start(trigger, "schedule" if missed == 1 else "catch-up", detail)

    # ------------------------------------------------------------------ runs

    def _start(self, trigger: Trigger, reason: str, detail: dict[str, Any]) -> None:
        now = self.clock.now()
        run = Run(
            run_id=_new_id("run"),
            trigger_id=trigger.trigger_id,
            tenant=trigger.tenant,
            reason=reason,
            detail=detail,
            state=RUNNING,
            started_at=now,
        )
        going = self._running.get(trigger.trigger_id)
        group = self._group
        if going is not None and not going.done():
            run.state, run.finished_at = SKIPPED, now
            run.error = "the trigger's run before is still running"
        elif group is None:  # not looping (closing): nothing starts
            return
        trigger.last = run
        self._record(run)
        if run.state != RUNNING:
            return
        assert group is not None
        task = group.create_task(self._execute(trigger, run), name=f"qmk-trigger-{run.run_id}")
        self._running[trigger.trigger_id] = task
        task.add_done_callback(lambda done: self._ran(trigger.trigger_id, done))

    def _ran(self, trigger_id: str, task: asyncio.Task[None]) -> None:
        if self._running.get(trigger_id) is task:
            del self._running[trigger_id]

    def _record(self, run: Run) -> None:
        """The run's row, and an audit line when it starts or ends."""
        trigger = self.by_id.get(run.trigger_id)
        if trigger is not None or run.state == INTERRUPTED:
            self.store.save_run(run.row(), keep=RUNS_KEPT)
        fields: dict[str, Any] = {
            "action": "run" if run.finished_at is None else "run-ended",
            "tenant": run.tenant,
            "trigger_id": run.trigger_id,
            "run_id": run.run_id,
            "reason": run.reason,
            "state": run.state,
        }
        if run.finished_at is not None and run.jobs:
            fields["jobs"] = len(run.jobs)
        self.audit.append("trigger", **fields)
        self.commits.dirty()

    async def _execute(self, trigger: Trigger, run: Run) -> None:
        """The run: its workflow as the owner's jobs; how it ended, recorded."""
        from qmk.workflows.runner import run_workflow_async

        token = _IN_RUN.set(run)
        try:
            session = self.host.session_for(trigger.tenant, trigger.caps, trigger.trigger_id)
            cache = await self.host.lowered(trigger.tenant, trigger.flow)

            async def batch(jobs: Sequence[Planned]) -> list[JobResult]:
                return await self._batch(trigger, run, session, jobs)

            result = await run_workflow_async(trigger.flow, batch, cache=cache)
            states = Counter(job.state for job in result.jobs)
            run.summary = dict(sorted(states.items()))
            run.state = COMPLETED if result.ok else FAILED
            if not result.ok:
                first = next(job for job in result.jobs if job.state != defaults.COMPLETED)
                run.error = f"{first.step}[{first.index}] {first.state}: {first.error}"
        except QMKError as exc:
            run.state, run.error = FAILED, str(exc)
        except Exception as exc:  # a bug: the run fails, the kernel and the loop go on
            _log.exception("trigger %s: run %s failed", trigger.trigger_id, run.run_id)
            run.state, run.error = FAILED, f"internal error: {type(exc).__name__}: {exc}"
        finally:
            _IN_RUN.reset(token)
        run.finished_at = self.clock.now()
        if trigger.trigger_id in self.by_id:
            self._record(run)

    async def _batch(
        self, trigger: Trigger, run: Run, session: Session, jobs: Sequence[Planned]
    ) -> list[JobResult]:
        """A batch of the workflow's jobs: all submitted as the owner's, then awaited."""
        from qmk.workflows.runner import ended_result, kernel_policy, refused_result

        started: list[tuple[Planned, replies.Job | None, str | None]] = []
        for job in jobs:
            policy = kernel_policy(job)
            try:
                accepted = await self.host.submit(
                    session, dict(job.graph), job.shots, job.seed, policy
                )
            except QMKError as exc:  # refused by admission: the job FAILED, the run goes on
                started.append((job, None, str(exc)))
                continue
            self._owns(run, accepted.job_id)  # heard already, unless idempotent
            started.append((job, accepted, None))
        results = []
        for job, reply, refused in started:
            if reply is None:
                results.append(refused_result(job, str(refused)))
                continue
            final = reply
            while not final.final:
                final = await self.host.wait(reply.job_id, trigger.tenant, WAIT_S)
            results.append(ended_result(job, final))
        return results

    # ------------------------------------------------------------------ the syscalls

    async def create(
        self,
        session: Session,
        *,
        name: str,
        workflow: Any,
        on: str,
        every_s: float | None = None,
        cron: str | None = None,
        states: Sequence[str] | None = None,
    ) -> replies.Trigger:
        """A new trigger of ``session``'s tenant (``q_create_trigger``).

        Raises:
            InvalidArgument: a spec or workflow that cannot run (its code in ``details``:
                ``QW013 bad-workflow``, ``QW014 bad-trigger``).
            QuotaError: the tenant has :data:`MAX_TRIGGERS` already.
        """
        from qmk.workflows.spec import from_data
        from qmk.workflows.triggers import TriggerSpec

        try:
            spec = TriggerSpec.build(name=name, on=on, every_s=every_s, cron=cron, states=states)
            flow = from_data(workflow, files=False)
        except QMKError as exc:
            raise InvalidArgument(f"q_create_trigger: {exc.message}", code=exc.code) from None
        mine = sum(1 for t in self.by_id.values() if t.tenant == session.tenant)
        if mine >= MAX_TRIGGERS:
            raise QuotaError(
                f"tenant {session.tenant!r} has {mine} triggers, the most a tenant may have",
                limit="triggers",
                value=MAX_TRIGGERS,
            )
        try:
            await self.host.lowered(session.tenant, flow)
        except QMKError as exc:
            if isinstance(exc, QuotaError):
                raise
            raise InvalidArgument(f"q_create_trigger: {exc.message}", code=exc.code) from None
        now = self.clock.now()
        trigger = Trigger(
            trigger_id=_new_id("trg"),
            tenant=session.tenant,
            spec=spec,
            flow=flow,
            caps=tuple(c for c in session.caps if c not in session.delegated),
            created_at=now,
            next_at=spec.first_run(now) if spec.scheduled else None,
        )
        self.by_id[trigger.trigger_id] = trigger
        self.store.save_trigger(trigger.row())
        self.audit.append(
            "trigger",
            action="create",
            tenant=trigger.tenant,
            session=session.sid,
            trigger_id=trigger.trigger_id,
            on=spec.on,
            workflow=flow.name,
        )
        await self.commits.durable()
        self._wake.set()  # a schedule: the loop's next time may be sooner
        return trigger.reply()

    def _own(self, tenant: str, trigger_id: object) -> Trigger:
        trigger = self.by_id.get(trigger_id) if isinstance(trigger_id, str) else None
        if trigger is None or trigger.tenant != tenant:
            shown = str(trigger_id)[:64]
            raise NotFoundError(f"no trigger {shown!r}", trigger_id=shown)
        return trigger

    def listed(
        self, tenant: str, trigger_id: str | None = None, runs: int = 0
    ) -> replies.TriggerList:
        """``tenant``'s triggers (or one), oldest first, each with its newest ``runs`` runs
        (``q_list_triggers``).

        Raises:
            NotFoundError: ``trigger_id`` is no trigger of ``tenant``.
            InvalidArgument: ``runs`` is not 0..:data:`RUNS_KEPT`.
        """
        if isinstance(runs, bool) or not isinstance(runs, int) or not 0 <= runs <= RUNS_KEPT:
            raise InvalidArgument(f"runs must be an integer 0..{RUNS_KEPT}", key="runs")
        if trigger_id is not None:
            mine = [self._own(tenant, trigger_id)]
        else:
            mine = sorted(
                (t for t in self.by_id.values() if t.tenant == tenant), key=lambda t: t.created_at
            )
        listed = []
        for trigger in mine:
            if runs:
                rows = self.store.runs(trigger.trigger_id, runs)
                listed.append(trigger.reply(runs=[Run.from_row(row).reply() for row in rows]))
            else:
                listed.append(trigger.reply())
        return replies.TriggerList(triggers=listed)

    async def delete(self, session: Session, trigger_id: str) -> replies.Trigger:
        """Delete a trigger and its runs' rows; its run going on is cancelled (its jobs
        submitted run on) (``q_delete_trigger``)."""
        trigger = self._own(session.tenant, trigger_id)
        del self.by_id[trigger.trigger_id]
        going = self._running.pop(trigger.trigger_id, None)
        if going is not None:
            going.cancel()
        self.store.delete_trigger(trigger.trigger_id)
        self.audit.append(
            "trigger",
            action="delete",
            tenant=trigger.tenant,
            session=session.sid,
            trigger_id=trigger.trigger_id,
        )
        await self.commits.durable()
        return trigger.reply(state="DELETED")


__all__ = [
    "COMPLETED",
    "FAILED",
    "INTERRUPTED",
    "MAX_TRIGGERS",
    "RUNNING",
    "RUNS_KEPT",
    "SKIPPED",
    "Host",
    "Run",
    "Trigger",
    "Triggers",
]
