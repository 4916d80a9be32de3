"""The kernel's side of :class:`qmk.abi.probe.KernelProbe`: its events and its load.

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

import json
import logging
import os
from collections import Counter
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


def _free_bytes(path: Any) -> int | None:
    """Bytes an unprivileged writer may still use on ``path``'s disk (None: unknown)."""
    try:
        stats = os.statvfs(path)
    except OSError:
        return None
    return int(stats.f_bavail * stats.f_frsize)


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
    """A :class:`~qmk.abi.probe.KernelProbe` of one open kernel.

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
        """The kernel's load now: jobs by state and tenant, queue, workers, audit chain."""
        kernel = self.kernel
        supervisor = kernel.supervisor
        jobs: Counter[tuple[str, str]] = Counter(
            (job.state, job.tenant) for job in list(supervisor.jobs.values())
        )
        waiting = list(supervisor.queue)
        queued: Counter[str] = Counter(job.tenant for job in waiting)
        oldest = min((float(job.created_at) for job in waiting), default=None)
        results = supervisor.results
        tenants = sorted(set(kernel.config.tenants) | {t for t, n in results.usage.items() if n})
        data = kernel.data
        pool = kernel.pool
        dask = isinstance(getattr(pool, "known_workers", None), int)
        return KernelSnapshot(
            jobs=dict(jobs),
            queued=dict(queued),
            workers=int(supervisor.workers),
            busy_workers=len(supervisor.running),
            audit_seq=int(kernel.audit.seq),
            physical_qubits_total=int(kernel.device.inventory().physical_qubits_up),
            physical_qubits_in_use=int(supervisor.physical_in_use),
            epoch=int(supervisor.epoch),
            started_at=float(kernel.started_at),
            oldest_queued_s=0.0 if oldest is None else max(kernel.clock.now() - oldest, 0.0),
            data_disk_free_bytes=_free_bytes(kernel.data_dir),
            data_disk_reserve_bytes=int(kernel.config.min_free_disk_mb) * 2**20,
            result_storage_bytes={t: int(results.usage[t]) for t in tenants},
            result_storage_limit_bytes={t: results.limit_bytes(t) for t in tenants},
            audit_chain_problems=0 if data is None else len(data.accepted),
            dask_workers=int(pool.known_workers) if dask else None,
            workers_lost=int(pool.lost_workers) if dask else 0,
            machine=supervisor.machine.facts(),
            server_restarts={} if kernel.server_restarts is None else kernel.server_restarts(),
            **self._webhooks(),
        )

    def _webhooks(self) -> dict[str, Any]:
        """The billing outbox's backlog, oldest wait and dead letters (none configured,
        or not yet running: no backlog to show)."""
        outbox = self.kernel.outbox
        if outbox is None:
            return {}
        pending, oldest, dead = outbox.rows.backlog()
        now = self.kernel.clock.now()
        return {
            "webhook_backlog": pending,
            "webhook_oldest_s": 0.0 if oldest is None else max(now - oldest, 0.0),
            "webhook_dead_letters": dead,
        }

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
        path = self.kernel.audit.path
        try:
            with open(path, "rb") as handle:
                handle.seek(0, os.SEEK_END)
                size = handle.tell()
                back = min(size, 4096 * max(limit, 1))
                handle.seek(size - back)
                data = handle.read()
        except OSError:
            return []
        lines = data.split(b"\n")
        if back < size:
            lines = lines[1:]  # the first is cut
        events = []
        for line in lines[-limit - 1 :]:
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except ValueError:
                continue
            if isinstance(record, dict):
                events.append(event_of(record))
        return events[-limit:]
