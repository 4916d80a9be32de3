"""The kernel's side of :class:`qmk.abi.probing.KernelProbe`: its events and its load.

An observer with callbacks adds one listener to the audit log (:attr:`AuditLog.listeners`).
It adds none while it has none, so no line's record is made plain data for it alone
(:meth:`AuditLog.append_run`). So every line the kernel writes (job transitions,
capability decisions, channels, checkpoints, attestations) reaches the HTTP layer's
metrics, traces, logs and live events as a :class:`~qmk.abi.probe.KernelEvent`, with
the job's facts at that moment. It reads the kernel's tables at a metrics scrape
(:meth:`KernelObserver.snapshot`); it changes nothing, and a callback that raises is
logged and never reaches the kernel.

This is the one module that knows which of the kernel's attributes hold those facts; the
HTTP layer reads them through the probe and never imports the kernel.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from functools import partial
from typing import Any, TypeVar

from qmk.abi.probe import Cursor, JobFacts, KernelEvent, KernelSnapshot, WorkerTraces
from qmk.kernel.records import jobs as J
from qmk.kernel.records.stored import StoredResult

T = TypeVar("T")

_log = logging.getLogger("qmk.kernel.observe")

#: Fields of an audit record that are its chain, not its content.
_CHAIN = ("prev", "mac")


def _facts(job: Any) -> JobFacts:
    # what a job's end reads of its result, without decoding its head (StoredResult.facts)
    facts = job.result.facts if isinstance(job.result, StoredResult) else None
    telemetry = None if facts is None else facts.telemetry
    injected = None if telemetry is None else telemetry.injected_logical_errors
    if telemetry is not None and telemetry.cache_hit:  # an earlier run's result: nothing ran
        facts, injected = None, None
    error = job.error if isinstance(job.error, Mapping) else None
    return JobFacts(
        created_at=float(job.created_at),
        started_at=job.started_at,
        finished_at=job.finished_at,
        shots=int(job.shots),
        attempts=int(job.attempts),
        final=job.state in J.FINAL_STATES,
        engine=None if facts is None else facts.engine,
        injected_logical_errors=injected if isinstance(injected, int) else None,
        mode=None if telemetry is None else telemetry.mode,
        error_code=None if error is None else str(error.get("code")),
    )


def event_of(record: Mapping[str, Any], job: Any = None, sub: int = 0) -> KernelEvent:
    """The event of one audit record (and the job it concerns, when the kernel holds it;
    ``sub``: its place after the line ``seq``, :class:`~qmk.abi.probe.Cursor`).

    >>> event_of({"seq": 3, "ts": 2.0, "event": "cap", "tenant": "alice", "prev": "0"}).record
    {'seq': 3, 'ts': 2.0, 'event': 'cap', 'tenant': 'alice'}
    """
    fields = {key: value for key, value in record.items() if key not in _CHAIN}
    tenant, job_id, state = fields.get("tenant"), fields.get("job_id"), fields.get("state")
    return KernelEvent(
        seq=int(fields.get("seq", 0)),
        ts=float(fields.get("ts", 0.0)),
        event=str(fields.get("event", "")),
        tenant=tenant if isinstance(tenant, str) else None,
        job_id=job_id if isinstance(job_id, str) else None,
        state=state if isinstance(state, str) else None,
        record=fields,
        job=None if job is None else _facts(job),
        sub=sub,
    )


def _tell(callbacks: list[Callable[[KernelEvent], None]], event: KernelEvent) -> None:
    for callback in list(callbacks):
        try:
            callback(event)
        except Exception:
            _log.exception("a kernel event callback failed")


class KernelObserver:
    """A :class:`~qmk.abi.probing.KernelProbe` of one open kernel.

    Args:
        kernel: the kernel (open; :class:`qmk.kernel.service.Kernel`, which makes its one
            observer, so this module sits below it and names it only here); the
            observer's listener stays on its audit log.
    """

    states: tuple[str, ...] = J.STATES
    final_states: tuple[str, ...] = tuple(s for s in J.STATES if s in J.FINAL_STATES)

    @property
    def stream_names(self) -> tuple[str, ...]:
        """The device streams a watch may name (read when asked: the device's stream
        module loads its engines, which the kernel process does not hold until then)."""
        from qmk.devices.neutral_atom.streams import STREAMS

        return STREAMS

    def __init__(self, kernel: Any) -> None:
        self.kernel = kernel
        #: The feed's desk once the kernel makes it (``Kernel.feed_desk``): once it
        #: listens, its recent records are the audit tail (:meth:`audit_tail`).
        self.feed: Any = None
        self._callbacks: list[Callable[[KernelEvent], None]] = []
        #: The callbacks that hear an event once its line is kept (``listen(kept=True)``).
        self._kept: list[Callable[[KernelEvent], None]] = []
        #: The cursor of the last record heard: a record with the seq of the one before
        #: is no audit line (a stream part, a worker's spans) and is numbered after it,
        #: here once for every listener (the audit log tells its records one at a time).
        self._last = Cursor(0)
        #: The tenant of a valid session (:meth:`Kernel.tenant_of`): the session desk's
        #: own method, no call of this class's or the kernel's between (the door asks it
        #: at every call).
        self.session_tenant: Callable[[str], str] = kernel.session_desk.tenant_of

    def _job(self, job_id: Any) -> Any:
        supervisor = self.kernel.supervisor
        if not isinstance(job_id, str):
            return None
        return supervisor.jobs.get(job_id) or supervisor.finished.get(job_id)

    def _heard(self, record: dict[str, Any]) -> None:
        if not (self._callbacks or self._kept):
            return
        job = self._job(record.get("job_id")) if record.get("event") == "job" else None
        seq = int(record.get("seq", 0))
        last = self._last
        self._last = Cursor(seq, last.sub + 1 if seq == last.seq else 0)
        event = event_of(record, job, self._last.sub)  # the job's facts of this moment
        _tell(self._callbacks, event)
        if self._kept:
            self.kernel.audit.when_kept(partial(_tell, self._kept, event))

    def listen(
        self, callback: Callable[[KernelEvent], None], *, kept: bool = False
    ) -> Callable[[], None]:
        """Call ``callback`` with every event from now on; returns the call that stops it.
        ``kept``: only once its audit line is written and committed (a live stream's: its
        cursor never names a line a crash takes back), else as it is queued (metrics,
        traces). The observer listens to the audit log while it has callbacks (the log's
        list is replaced, not changed, so a line being told to its listeners is told as
        it was)."""
        audit = self.kernel.audit
        if not (self._callbacks or self._kept):
            # a record told now with the seq of the last line is no line (see _last)
            self._last = max(self._last, Cursor(int(audit.seq)))
            audit.listeners = [*audit.listeners, self._heard]
        callbacks = self._kept if kept else self._callbacks
        callbacks.append(callback)

        def stop() -> None:
            if callback in callbacks:
                callbacks.remove(callback)
                if not (self._callbacks or self._kept):
                    audit.listeners = [h for h in audit.listeners if h != self._heard]

        return stop

    @property
    def max_graph_nodes(self) -> int:
        return self.kernel.config.max_graph_nodes

    async def lower(
        self, tenant: str, work: Callable[[], T], *, what: str = "reading program text"
    ) -> tuple[T, float]:
        """``work()`` in a thread for ``tenant`` (``what`` refused at once while its CPU
        budget is spent): its answer and CPU seconds, for :meth:`charge`."""
        budget = self.kernel.admission.cpu
        budget.check(tenant, what)
        return await budget.measure(tenant, work)

    def charge(self, tenant: str, seconds: float) -> None:
        """Charge ``seconds`` of CPU to ``tenant``'s budget."""
        self.kernel.admission.cpu.spend(tenant, seconds)

    def trace_workers(self, traces: WorkerTraces | None) -> None:
        """Give the supervisor the tracer of its workers' spans (None: the kernel's
        feed takes those of the submits that carried a traceparent again)."""
        self.kernel.supervisor.traces = traces or self.kernel.feed_traces

    def snapshot(self) -> KernelSnapshot:
        """The kernel's load now: jobs by state and tenant, queue, workers, audit chain
        (:func:`~qmk.kernel.observe_load.snapshot`)."""
        from qmk.kernel.observe_load import snapshot

        return snapshot(self.kernel)

    def audit_tail(self, limit: int) -> list[KernelEvent]:
        """The last ``limit`` records (oldest first): the feed desk's once it listens
        (its stream parts included, numbered: a job's watch opened later resumes past
        a part's cursor exactly), else the audit log file's lines (those that do not
        read as JSON are skipped)."""
        if limit <= 0:
            return []
        desk = self.feed
        if desk is not None and desk.started:
            return list(desk.recent)[-limit:]
        from qmk.kernel.observe_load import audit_records

        return [event_of(record) for record in audit_records(self.kernel.audit.path, limit)]
