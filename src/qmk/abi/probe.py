"""What a kernel tells its observers beyond its syscalls: live events and a snapshot.

The kernel makes these values (:class:`qmk.kernel.observe.KernelObserver`) for every
audit line and every scrape; the wires read them through the contract of
:mod:`qmk.abi.probing` (:class:`~qmk.abi.probing.KernelProbe`, the snapshot's JSON),
which the kernel process never loads for a plain job. Neither module imports the kernel.

Events are the kernel's audit records as they are written (every job transition,
capability decision, channel change, checkpoint and attestation is one), with what the
kernel holds of the job at that moment. Metrics, traces, structured logs and the
live streams of :mod:`qmk.abi.events` are all derived from them.

>>> event = KernelEvent(seq=4, ts=1.5, event="job", tenant="alice", job_id="job_1",
...     state="QUEUED", record={"seq": 4, "event": "job", "state": "QUEUED"})
>>> event.to_json()["state"], event.is_job
('QUEUED', True)
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple, Protocol


def hashed_tenants(key: bytes) -> Callable[[str], str]:
    """A tenant's label as a keyed hash: ``t-`` and 12 hex digits of HMAC-SHA256(``key``,
    name), stable for a kernel (its key comes from the kernel secret) and not reversible
    by trying names without it: ``/metrics`` under ``[http] metrics_tenants = "hashed"``,
    and the other tenants of the shared machine as one tenant sees them
    (``q_machine_status``).

    >>> label = hashed_tenants(b"k" * 32)
    >>> label("alice") == label("alice") != label("bob"), len(label("alice"))
    (True, 14)
    """
    keyed = hmac.new(key, digestmod=hashlib.sha256)

    def label(tenant: str) -> str:
        mac = keyed.copy()
        mac.update(tenant.encode())
        return "t-" + mac.hexdigest()[:12]

    return label


@dataclass(frozen=True, slots=True, kw_only=True)
class JobFacts:
    """What the kernel holds of a job when one of its events is written.

    Attributes:
        created_at, started_at, finished_at: the kernel clock's times (None: not yet).
        shots: shots asked for.
        attempts: starts so far.
        final: the job is in a final state.
        engine: the engine that ran it (once COMPLETED), else None.
        injected_logical_errors: logical errors the run injected (once COMPLETED).
        mode: how the run sampled its shots (``stim-batch``, ``trajectories``, ...).
        error_code: the QMK code of the error it ended with (``QK202``, ...), else None.
    """

    created_at: float
    started_at: float | None = None
    finished_at: float | None = None
    shots: int = 0
    attempts: int = 0
    final: bool = False
    engine: str | None = None
    injected_logical_errors: int | None = None
    mode: str | None = None
    error_code: str | None = None

    @property
    def queued_s(self) -> float | None:
        """Seconds from acceptance to (the last) start."""
        return None if self.started_at is None else max(self.started_at - self.created_at, 0.0)

    @property
    def run_s(self) -> float | None:
        """Seconds of the last run, once it ended."""
        if self.started_at is None or self.finished_at is None:
            return None
        return max(self.finished_at - self.started_at, 0.0)


#: The longest text of a cursor a client may send back (two 18-digit numbers and a dash).
CURSOR_TEXT_MAX = 37


class Cursor(NamedTuple):
    """A place in the kernel's feed: the seq of an audit line, and the ``sub`` of a
    record told after it (a device job's stream part, a worker's spans: no audit line
    of its own; 1, 2, ... after the line; 0: the line itself). Cursors order as the
    records do, so "after" is a tuple comparison.

    Its text (an SSE ``id:``) is ``SEQ`` for a line and ``SEQ-SUB`` for a record after
    it; :meth:`parse` reads either back.

    >>> str(Cursor(812)), str(Cursor(812, 3)), Cursor.parse("812-3") > Cursor(812)
    ('812', '812-3', True)
    """

    seq: int
    sub: int = 0

    def __str__(self) -> str:
        return str(self.seq) if self.sub == 0 else f"{self.seq}-{self.sub}"

    @classmethod
    def parse(cls, text: str) -> Cursor:
        """The cursor whose text is ``text`` (``SEQ`` or ``SEQ-SUB``, whole numbers).

        Raises:
            ValueError: ``text`` is no cursor's text (the message says what one is).
        """
        seq, dash, sub = text.partition("-")
        digits = seq.isascii() and seq.isdigit() and (not dash or (sub.isascii() and sub.isdigit()))
        if not digits or len(seq) > 18 or len(sub) > 18:
            raise ValueError(
                f"{text[: CURSOR_TEXT_MAX + 3]!r} is not an event id this server sent "
                "(SEQ or SEQ-SUB, whole numbers: the id: of the last event received)"
            )
        return cls(int(seq), int(sub) if dash else 0)


@dataclass(frozen=True, slots=True, kw_only=True)
class KernelEvent:
    """One audit record as it is written, and the job it is about.

    Attributes:
        seq: its line number in the audit log (the chain's length once it is written).
        ts: its wall-clock time (seconds since the epoch).
        event: the audit event: ``job``, ``cap``, ``chan``, ``checkpoint``, ``attest``,
            ``kernel``, ``device``.
        tenant: the tenant it concerns, if any.
        job_id: the job it concerns, if any.
        state: a job's new state (``job`` events) or a channel's.
        record: the audit record's fields (without its chain and mac).
        job: the job's facts then (None for events of no job or a job not in memory).
        sub: 0 for an audit line; 1, 2, ... for the records told after the line ``seq``
            without a line of their own (:class:`Cursor`), as the kernel's observer
            numbers them.
    """

    seq: int
    ts: float
    event: str
    tenant: str | None = None
    job_id: str | None = None
    state: str | None = None
    record: Mapping[str, Any] = field(default_factory=dict)
    job: JobFacts | None = None
    sub: int = 0

    @property
    def cursor(self) -> Cursor:
        """Its place in the feed: ``(seq, sub)``."""
        return Cursor(self.seq, self.sub)

    @property
    def is_job(self) -> bool:
        """A job's transition (a ``job`` event with a state)."""
        return self.event == "job" and self.state is not None

    def to_json(self) -> dict[str, Any]:
        """The event as plain JSON (the record's fields, as the audit log has them)."""
        return {
            "seq": self.seq,
            "ts": self.ts,
            "event": self.event,
            "tenant": self.tenant,
            "job_id": self.job_id,
            "state": self.state,
            "record": dict(self.record),
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class MachineFacts:
    """The shared machine's figures at one moment (``q_machine_status`` less its
    floorplan and series; docs/machine.md).

    Attributes:
        cycle: the machine clock's cycle.
        jobs: jobs in machine time by state (queued, running, stopped, done).
        utilization: busy over available since the first arrival, by resource (tiles,
            factories, links).
        tenant_shares: each tenant's share of tile-cycles.
        jain_fairness: Jain's index over the shares, weighted by the tenants' quotas.
        throughput_jobs_per_s: jobs done per second of machine time.
        mean_slowdown, p95_slowdown: turnaround over runtime alone.
        mean_idle_logical_error, max_idle_logical_error: the idle logical error jobs
            done were given.
        over_budget: jobs done whose idle error passed their error budget.
    """

    cycle: int
    jobs: Mapping[str, int]
    utilization: Mapping[str, float]
    tenant_shares: Mapping[str, float]
    jain_fairness: float
    throughput_jobs_per_s: float
    mean_slowdown: float
    p95_slowdown: float
    mean_idle_logical_error: float
    max_idle_logical_error: float
    over_budget: int


@dataclass(frozen=True, slots=True, kw_only=True)
class KernelSnapshot:
    """The kernel's load at one moment (read at each metrics scrape).

    Attributes:
        jobs: jobs not final, by (state, tenant).
        queued: queued jobs by tenant (the run queue's depth).
        workers: worker processes.
        busy_workers: workers running a job.
        audit_seq: the audit chain's length (lines written or queued).
        physical_qubits_total, physical_qubits_in_use: the machine's inventory.
        epoch: the kernel's epoch counter.
        started_at: when the kernel started (its clock).
        oldest_queued_s: how long the oldest job in the run queue has waited (0: none).
        data_disk_free_bytes: bytes free for the kernel on its data directory's disk
            (None: not knowable).
        data_disk_reserve_bytes: the reserve below which submits are refused
            (``kernel.min_free_disk_mb``; 0: none).
        result_storage_bytes: bytes of stored results, by tenant.
        result_storage_limit_bytes: each tenant's ``max_result_storage_mb`` in bytes.
        dask_workers: the Dask workers the kernel's pool sends jobs to (None: the local
            pool).
        workers_lost: workers the pool lost since the kernel started (a Dask worker
            killed, its machine gone, or left the cluster; their jobs ran again).
        audit_chain_problems: damage to the audit chain and data directory the kernel was
            started over (``qmk serve --recover``; 0: it started on a whole chain).
        webhook_backlog: billing webhooks not yet delivered (PENDING in the outbox; None:
            no webhook is configured).
        webhook_oldest_s: how long the oldest of them has waited since its job ended (0:
            none waits).
        webhook_dead_letters: webhooks refused at every attempt (DEAD), until replayed.
        machine: the shared machine's figures (None: not known).
        server_restarts: how many times ``qmk serve`` replaced each user-mode server
            that ended (a gateway killed or crashed), by server (``http``, ``grpc``);
            empty where it supervises none.
    """

    jobs: Mapping[tuple[str, str], int]
    queued: Mapping[str, int]
    workers: int
    busy_workers: int
    audit_seq: int
    physical_qubits_total: int
    physical_qubits_in_use: int
    epoch: int
    started_at: float
    oldest_queued_s: float = 0.0
    data_disk_free_bytes: int | None = None
    data_disk_reserve_bytes: int = 0
    result_storage_bytes: Mapping[str, int] = field(default_factory=dict)
    result_storage_limit_bytes: Mapping[str, int] = field(default_factory=dict)
    audit_chain_problems: int = 0
    dask_workers: int | None = None
    workers_lost: int = 0
    webhook_backlog: int | None = None
    webhook_oldest_s: float = 0.0
    webhook_dead_letters: int = 0
    machine: MachineFacts | None = None
    server_restarts: Mapping[str, int] = field(default_factory=dict)


class WorkerTraces(Protocol):
    """What the kernel asks of a tracer for the spans inside its workers
    (:class:`qmk.http.tracing.Tracing`; the worker side is :mod:`qmk.execution.spans`)."""

    def traceparent(self, job_id: str) -> str | None:
        """The W3C ``traceparent`` to put in the worker's spec of the job's run that
        just started (None: the job is not traced)."""
        ...

    def worker_spans(
        self, job_id: str, traceparent: str, spans: Sequence[Mapping[str, Any]]
    ) -> None:
        """Export the spans a worker recorded under ``traceparent`` (its JSON records)."""
        ...
