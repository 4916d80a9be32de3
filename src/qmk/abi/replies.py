"""What every qSyscall answers, as typed values: one msgspec struct per kind of reply.

The kernel's syscalls answer these structs (its desks build them), every wire encodes
them (JSON-RPC, REST and GraphQL as JSON, gRPC as its messages and their JSON), and the
clients decode them back. The method table (:data:`qmk.abi.methods.METHODS`) names each
method's reply struct (``MethodSpec.reply``); from it :mod:`qmk.abi.codegen` renders
the kernel's Protocol and the clients' typed methods (:mod:`qmk.abi.calls`:
``client.q_status(job_id)`` gives a :class:`Job`), ``docs/qsyscall.md`` its "returns"
column and the gRPC schema which message answers an rpc. A reply is decoded from the
JSON object the kernel sends (:meth:`Reply.from_json`) and :meth:`Reply.to_json` gives
that object back, key for key (a key some replies leave out is :data:`msgspec.UNSET`
when absent, so it stays absent). Keys a newer kernel adds are ignored by an older
client; the tests hold every key the kernel sends to a field here
(``tests/abi/test_replies.py``), and a golden JSON file per struct
(``tests/abi/golden/``) to its JSON.

Parts whose shape another layer owns stay plain JSON objects: a job's ``result`` (the
run's result JSON, :mod:`qmk.execution.result`; in the kernel the stored result, kept
encoded, which the wires write as it is), telemetry, quotas, the device's description,
usage records and invoices.

A reply is read by its attributes (``job.state``); it is no mapping.

>>> job = Job.from_json({"job_id": "j1", "state": "QUEUED", "tenant": "alice", "shots": 10,
...     "seed": 7, "priority": 5, "created_at": 1.5, "started_at": None,
...     "finished_at": None, "error": None, "result": None})
>>> job.state, job.final, job.seed, job.warnings is UNSET
('QUEUED', False, 7, True)
>>> job.to_json()["result"] is None and "warnings" not in job.to_json()
True
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, TypeVar

import msgspec
from msgspec import UNSET, UnsetType

from qmk import defaults
from qmk.abi.errors import BadResponse

R = TypeVar("R", bound="Reply")

#: A key some replies of a kind leave out: UNSET when it was absent.
Absent = UnsetType


class Reply(msgspec.Struct, frozen=True, kw_only=True):
    """A syscall's reply: a frozen struct decoded from the kernel's JSON object."""

    @classmethod
    def from_json(cls: type[R], data: Any) -> R:
        """The reply of the JSON object ``data`` (keys it does not know are ignored).

        Raises:
            BadResponse: ``data`` is not a reply of this kind (the key it names).
        """
        try:
            reply: R = msgspec.convert(data, cls, strict=False)
        except msgspec.ValidationError as exc:
            raise BadResponse(f"the server's reply is not a {cls.__name__}: {exc}") from None
        return reply

    def to_json(self) -> dict[str, Any]:
        """The JSON object the reply is (an absent key stays absent; a part the kernel
        keeps encoded, such as a stored result, decoded)."""
        out: dict[str, Any] = msgspec.to_builtins(self, enc_hook=_kept)
        return out

    def fields(self) -> dict[str, Any]:
        """Its fields that are set (those left out absent), by name, their values as they
        are (a stored result still encoded): what a wire that writes a reply its own way
        reads (:func:`qmk.abi.jsonrpc.dumps`, gRPC's messages)."""
        return {
            name: value
            for name in self.__struct_fields__
            if (value := getattr(self, name)) is not UNSET
        }


def _kept(value: Any) -> Any:
    """A part of a reply kept encoded (``__json_bytes__``: a stored result), decoded."""
    method = getattr(type(value), "__json_bytes__", None)
    if method is None:
        raise TypeError(f"a reply holds a {type(value).__name__}, which is not JSON")
    return json.loads(method(value))


class CodedError(Reply, frozen=True, kw_only=True):
    """A coded error or warning: a failed job's ``error``, a submit's ``warnings``."""

    code: str
    name: str
    message: str
    details: dict[str, Any] | Absent = UNSET


class Session(Reply, frozen=True, kw_only=True):
    """An open session (``q_negotiate_caps``)."""

    session_id: str
    tenant: str
    granted: list[str]
    denied: list[str]
    #: The granted capabilities a live delegation lends (not the tenant's own).
    delegated: list[str]
    #: The tenant's quotas (``[tenants.NAME]``).
    quota: dict[str, Any]
    expires_at: float


class Job(Reply, frozen=True, kw_only=True):
    """A job: its state, run parameters and, once COMPLETED, its result."""

    job_id: str
    state: str
    tenant: str
    shots: int
    seed: int
    priority: int
    created_at: float
    started_at: float | None
    finished_at: float | None
    error: CodedError | None
    #: The run's result JSON once COMPLETED (None before); absent from job summaries.
    result: Mapping[str, Any] | Absent | None = UNSET
    #: The job whose stored result answered this one (a cache hit).
    cached_from: str | Absent = UNSET
    #: Its schedule on the shared machine once fixed (``arrival_cycle``, ``start_cycle``,
    #: ``end_cycle``, ``tiles``, ``module``, ``wait_cycles`` by cause,
    #: ``idle_logical_error``: docs/machine.md); absent before, and for a job the machine
    #: does not hold.
    machine: dict[str, Any] | Absent = UNSET
    #: When retention deleted the result.
    result_expired_at: float | Absent = UNSET
    #: Why the stored result is not served (expired, or tampered with).
    result_error: CodedError | Absent = UNSET
    #: A submit's options that changed nothing (``QC130``, ``QC131``).
    warnings: list[CodedError] | Absent = UNSET

    @property
    def final(self) -> bool:
        """Whether the job is in a final state (:data:`qmk.defaults.FINAL_JOB_STATES`)."""
        return self.state in defaults.FINAL_JOB_STATES


class JobList(Reply, frozen=True, kw_only=True):
    """A tenant's jobs, newest first, as summaries (no ``result``)."""

    jobs: list[Job]


class ResultPage(Reply, frozen=True, kw_only=True):
    """A page of a COMPLETED job's counts and the rest of its result (``q_get_result``)."""

    job_id: str
    state: str
    #: How many outcomes the whole result has.
    entries: int
    cursor: str | None
    next_cursor: str | None
    counts: Mapping[str, int]
    #: The result without its counts (shots, seed, engine, events, telemetry...).
    summary: Mapping[str, Any]


class Checkpoint(Reply, frozen=True, kw_only=True):
    """A job's checkpoint (``q_checkpoint``)."""

    checkpoint_id: str
    job_id: str
    #: The kernel epoch it was taken at, and the program's epoch (its fences passed).
    epoch: int
    program_epoch: int | None
    #: The job's state then.
    state: str
    created_at: float
    #: Whether an execution state was saved (a job not yet running has none to save).
    saved: bool


class Channel(Reply, frozen=True, kw_only=True):
    """A channel between two tenants."""

    channel_id: str
    state: str
    tenants: list[str]
    fidelity: float
    created_at: float
    opened_at: float | None
    closed_at: float | None


class ChannelList(Reply, frozen=True, kw_only=True):
    """A tenant's channels, newest first."""

    channels: list[Channel]


class Telemetry(Reply, frozen=True, kw_only=True):
    """A job's telemetry (``job_id`` given) or the tenant's aggregate (``job_id`` null):
    the keys of the one form are absent from the other."""

    # a job's
    job_id: str | Absent = UNSET
    state: str | Absent = UNSET
    attempts: int | Absent = UNSET
    preemptions: int | Absent = UNSET
    physical_qubits: int | Absent = UNSET
    logical_qubits: dict[str, int] | Absent = UNSET
    queued_s: float | Absent | None = UNSET
    run_s: float | Absent | None = UNSET
    #: The run's telemetry (:class:`qmk.execution.result.Telemetry`'s JSON) once it ran.
    telemetry: dict[str, Any] | Absent | None = UNSET
    teleportation: dict[str, Any] | Absent | None = UNSET
    earlier_outcomes: list[Any] | Absent = UNSET
    #: Its schedule on the shared machine (the job's ``machine``); None before it is fixed.
    machine: dict[str, Any] | Absent | None = UNSET
    # the tenant's
    tenant: str | Absent = UNSET
    jobs: int | Absent = UNSET
    jobs_by_state: dict[str, int] | Absent = UNSET
    shots_submitted: int | Absent = UNSET
    shots_completed: int | Absent = UNSET
    logical_cycles: float | Absent = UNSET
    injected_logical_errors: int | Absent = UNSET
    running: int | Absent = UNSET
    queued: int | Absent = UNSET
    logical_qubits_in_use: int | Absent = UNSET
    # both
    epoch: int | Absent = UNSET
    device: dict[str, Any] | Absent = UNSET
    faults: list[Any] | Absent = UNSET


class Machine(Reply, frozen=True, kw_only=True):
    """The shared machine now (``q_machine_status``; docs/machine.md): its floorplan with
    every tenant's jobs in place, the utilization of its tiles, factories and links so far
    and over time, each tenant's share of tile-cycles, Jain's index, throughput, slowdowns
    and the speedup over ``exclusive`` for the same arrivals."""

    #: The scheduler's policy.
    policy: str
    #: The machine clock's cycle, and the cycle the schedule is decided up to.
    clock_cycle: int
    now_cycle: int
    epoch_cycles: int
    #: Jobs ``queued``, ``running``, ``stopped`` (preempted) and ``done`` in machine time.
    jobs: dict[str, int]
    #: ``tiles``, ``factories``, ``links``: busy over available since the first arrival.
    utilization: dict[str, float]
    #: The same per span of whole epochs: ``[[cycle, utilization], ...]`` each.
    utilization_over_time: dict[str, list[list[float]]]
    #: Each tenant's share of tile-cycles: the caller by its name, another tenant by a
    #: label stable for the kernel (``t-`` and 12 hex digits), unless the caller is an
    #: operator.
    tenant_shares: dict[str, float]
    jain_fairness: float
    throughput_jobs_per_s: float
    #: The slowdowns' mean (exact) and 95th percentile (within 1%: a sketch).
    mean_slowdown: float
    p95_slowdown: float
    #: The idle logical error the jobs done were given: mean and most, and how many passed
    #: their error budget.
    mean_idle_logical_error: float
    max_idle_logical_error: float
    over_budget: int
    #: Asked (``speedup``): the latest arrivals run again on an empty machine, the makespan
    #: under ``exclusive`` over the policy's (docs/machine.md); else None.
    speedup_vs_exclusive: float | None
    #: Per module: its tiles and each placed job (``job``: the id, for the caller's own
    #: jobs only; ``tenant``: named as in ``tenant_shares``; ``first_tile``, ``tiles``,
    #: ``state``).
    floorplan: list[dict[str, Any]]
    #: The machine as declared (``qmk machine show --json``'s figures).
    machine: dict[str, Any]


class Resources(Reply, frozen=True, kw_only=True):
    """The machine's inventory and the tenant's quota and usage (``q_resource_query``)."""

    machine: dict[str, Any]
    tenant: str
    quota: dict[str, Any]
    usage: dict[str, Any]
    device: dict[str, Any]


class Device(Reply, frozen=True, kw_only=True):
    """The machine's device as it is (``q_calibrate``)."""

    kind: str
    inventory: dict[str, Any]
    capabilities: dict[str, Any]
    health: dict[str, Any]
    faults: Any
    noise_model: Any
    calibrations_ingested: int
    logical_model: dict[str, Any]


class Delegation(Reply, frozen=True, kw_only=True):
    """Capabilities one tenant lends another."""

    delegation_id: str
    from_tenant: str
    to_tenant: str
    caps: list[str]
    state: str
    created_at: float
    expires_at: float
    revoked_at: float | None
    revoked_by: str | None


class DelegationList(Reply, frozen=True, kw_only=True):
    """The delegations a tenant made or received, newest first."""

    delegations: list[Delegation]


class Assist(Reply, frozen=True, kw_only=True):
    """The assistant's answer (``q_assist``)."""

    assist_id: str
    status: str
    text: str
    program: str | None
    tool_results: list[dict[str, Any]]
    steps: int
    advice: list[Any]


class Usage(Reply, frozen=True, kw_only=True):
    """A tenant's usage records, their totals and the invoice (``q_usage``)."""

    tenant: str
    since: float | None
    until: float | None
    job_id: str | None
    count: int
    records: list[dict[str, Any]]
    totals: dict[str, Any]
    invoice: dict[str, Any]


class Events(Reply, frozen=True, kw_only=True):
    """The tenant's own audit records after a cursor, oldest first (``q_events``): the
    event feed a gateway streams as ``GET /v1/events``."""

    tenant: str
    #: Each record as an event: ``{seq, sub, ts, event, tenant, job_id, state, record}``
    #: (``sub``: 0 for an audit line, 1, 2, ... for the records that follow the line
    #: ``seq`` and are not audit lines: a device job's stream parts).
    events: list[dict[str, Any]]
    #: The next call's ``after``: the last record given, or the kernel's newest when none.
    cursor: int
    #: The next call's ``after_sub``: the ``sub`` of that record.
    cursor_sub: int = 0
    #: Records (of any tenant) after the cursor that the kernel no longer holds: some of
    #: the tenant's may be among them (0: none lost).
    dropped: int


class AuditEntries(Reply, frozen=True, kw_only=True):
    """The tenant's recent audit records, oldest first (``q_audit``; ``GET /v1/audit``)."""

    tenant: str
    entries: list[dict[str, Any]]


class KernelLoad(Reply, frozen=True, kw_only=True):
    """The kernel's load and its job counters, for an operator's ``/metrics``
    (``q_kernel_load``; their Prometheus names are :mod:`qmk.http.metrics`' table).

    Tenants are named, or labelled by a keyed hash under ``[http] metrics_tenants =
    "hashed"`` (``tenants``)."""

    #: ``names`` or ``hashed``: how the tenants below are shown.
    tenants: str
    #: The load now (:func:`qmk.abi.probing.snapshot_json`).
    snapshot: dict[str, Any]
    #: The job counters since the kernel started counting (:class:`qmk.abi.tally.JobTally`).
    tally: dict[str, Any]


class Artifacts(Reply, frozen=True, kw_only=True):
    """A device job's artifacts: the listing, or (``name`` given) a page of one's records;
    the keys of the one form are absent from the other."""

    job_id: str
    state: str
    # the listing
    stored_at: float | Absent | None = UNSET
    expires_at: float | Absent | None = UNSET
    artifacts: list[dict[str, Any]] | Absent = UNSET
    dropped: list[Any] | Absent = UNSET
    # a page
    name: str | Absent = UNSET
    kind: str | Absent = UNSET
    total: int | Absent = UNSET
    offset: int | Absent = UNSET
    records: list[Any] | Absent = UNSET
    next_offset: int | Absent | None = UNSET


class Watch(Reply, frozen=True, kw_only=True):
    """A watch of a job on this connection (``q_watch``)."""

    watch_id: str
    job_id: str
    #: The streams it carries (None: every one).
    streams: list[str] | None


class Unwatch(Reply, frozen=True, kw_only=True):
    """A watch ended (``q_unwatch``)."""

    watch_id: str
    ended: bool


class TriggerRun(Reply, frozen=True, kw_only=True):
    """One run of a workflow trigger: why it started, its jobs and how it ended."""

    run_id: str
    trigger_id: str
    #: What started it: schedule, catch-up (a schedule missed while the kernel was down:
    #: detail.missed says how many times), job (detail: the job and its state), calibration.
    reason: str
    detail: dict[str, Any]
    #: RUNNING, COMPLETED (every job COMPLETED), FAILED, SKIPPED (the run before was still
    #: running), INTERRUPTED (the kernel stopped during it).
    state: str
    started_at: float
    finished_at: float | None
    #: The jobs it submitted (the trigger owner's).
    jobs: list[str]
    #: Its workflow's jobs by state, once it ended.
    summary: dict[str, int] | None
    error: str | None


class Trigger(Reply, frozen=True, kw_only=True):
    """A workflow the kernel runs on a schedule or on events (``q_create_trigger``)."""

    trigger_id: str
    tenant: str
    name: str
    #: schedule, job or calibration.
    on: str
    every_s: float | None
    cron: str | None
    #: A job trigger's job states.
    states: list[str]
    #: The workflow's name, its steps and how many jobs a run submits (at most).
    workflow: str
    steps: int
    jobs: int
    #: The capabilities its runs' jobs may use (the creating session's own).
    caps: list[str]
    #: ACTIVE, or DELETED (the answer of q_delete_trigger).
    state: str
    created_at: float
    #: A schedule's next run (None: it waits for events).
    next_run_at: float | None
    last_run: TriggerRun | None
    #: Its newest runs, newest first, where asked for (``q_list_triggers``'s ``runs``).
    runs: list[TriggerRun] | Absent = UNSET


class TriggerList(Reply, frozen=True, kw_only=True):
    """A tenant's triggers, oldest first."""

    triggers: list[Trigger]


#: Every reply struct, by name (a test holds it to the module and to the golden files).
REPLIES: dict[str, type[Reply]] = {
    cls.__name__: cls
    for cls in (
        CodedError,
        Session,
        Job,
        JobList,
        ResultPage,
        Checkpoint,
        Channel,
        ChannelList,
        Telemetry,
        Resources,
        Device,
        Delegation,
        DelegationList,
        Assist,
        Usage,
        Events,
        AuditEntries,
        KernelLoad,
        Artifacts,
        Watch,
        Unwatch,
        Machine,
        TriggerRun,
        Trigger,
        TriggerList,
    )
}

__all__ = [
    "REPLIES",
    "Absent",
    "Artifacts",
    "Assist",
    "AuditEntries",
    "Channel",
    "ChannelList",
    "Checkpoint",
    "CodedError",
    "Delegation",
    "DelegationList",
    "Device",
    "Events",
    "Job",
    "JobList",
    "KernelLoad",
    "Machine",
    "Reply",
    "Resources",
    "ResultPage",
    "Session",
    "Telemetry",
    "Trigger",
    "TriggerList",
    "TriggerRun",
    "Unwatch",
    "Usage",
    "Watch",
]
