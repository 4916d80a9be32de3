"""THE table of qSyscall methods: names, params (JSON types, required, defaults) and docs.

The server validates params against it before calling the kernel;
:mod:`qmk.abi.codegen` renders from it the clients' typed methods
(:mod:`qmk.abi.calls`) and the Protocol the kernel satisfies (:mod:`qmk.abi.protocol`);
and ``docs/qsyscall.md`` renders its method table from it (:mod:`qmk.docgen.abi`).
Values are checked by the kernel (:class:`qmk.errors.InvalidArgument`); this table
checks presence, names and JSON types only, and answers
:class:`~qmk.abi.errors.InvalidParams` (-32602).

>>> spec = METHODS["q_wait"]
>>> [p.name for p in spec.params]
['session_id', 'job_id', 'timeout_ms']
>>> bind_params(spec, {"session_id": "s", "job_id": "j"})
{'session_id': 's', 'job_id': 'j', 'timeout_ms': 30000}
>>> try:
...     bind_params(spec, {"session_id": "s", "job_id": 7})
... except InvalidParams as exc:
...     print(exc.message)
q_wait: param 'job_id' must be string, got integer
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Protocol, runtime_checkable

import msgspec

from qmk import defaults
from qmk.abi import replies
from qmk.abi.errors import InvalidParams, MethodNotFound
from qmk.abi.replies import Reply


class JsonType(str, enum.Enum):
    """A JSON type as JSON Schema names it (``integer`` is a number without fraction)."""

    STRING = "string"
    INTEGER = "integer"
    NUMBER = "number"
    BOOLEAN = "boolean"
    OBJECT = "object"
    ARRAY = "array"
    NULL = "null"


def json_type(value: Any) -> JsonType:
    """The JSON type of a decoded JSON value (``integer`` for ints, never for bools).

    >>> json_type(True).value, json_type(3).value, json_type(3.5).value, json_type(None).value
    ('boolean', 'integer', 'number', 'null')
    """
    if value is None:
        return JsonType.NULL
    if isinstance(value, bool):
        return JsonType.BOOLEAN
    if isinstance(value, int):
        return JsonType.INTEGER
    if isinstance(value, float):
        return JsonType.NUMBER
    if isinstance(value, str):
        return JsonType.STRING
    if isinstance(value, (list, tuple)):
        return JsonType.ARRAY
    if isinstance(value, Mapping):
        return JsonType.OBJECT
    raise TypeError(f"not a JSON value: {type(value).__name__}")


@runtime_checkable
class SupportsJson(Protocol):
    """A value that has a JSON form, such as a QVM :class:`~qmk.qvm.graph.Graph`: the
    client sends ``to_json()`` where a param takes a JSON object."""

    def to_json(self) -> Any:
        """The JSON value of the object."""
        ...


#: The Python type of a value of each JSON type as :func:`json.loads` gives it.
_DECODED: Mapping[JsonType, tuple[type, ...]] = {
    JsonType.STRING: (str,),
    JsonType.INTEGER: (int,),
    JsonType.NUMBER: (float,),
    JsonType.BOOLEAN: (bool,),
    JsonType.OBJECT: (dict,),
    JsonType.ARRAY: (list,),
    JsonType.NULL: (type(None),),
}


def _decoded_types(kinds: tuple[JsonType, ...]) -> frozenset[type]:
    """The Python types a decoded JSON value of ``kinds`` may have, as :func:`_accepts`
    takes them (``number`` takes an integer too).

    >>> sorted(t.__name__ for t in _decoded_types((JsonType.NUMBER, JsonType.NULL)))
    ['NoneType', 'float', 'int']
    """
    decoded = {t for kind in kinds for t in _DECODED[kind]}
    if JsonType.NUMBER in kinds:
        decoded.add(int)
    return frozenset(decoded)


def _accepts(types: tuple[JsonType, ...], value: Any) -> bool:
    kind = json_type(value)
    return kind in types or (kind is JsonType.INTEGER and JsonType.NUMBER in types)


@dataclass(frozen=True, slots=True, kw_only=True)
class ParamSpec:
    """One named parameter of a method.

    Args:
        name: the name on the wire and of the kernel's keyword argument.
        types: the JSON types accepted (``number`` also accepts integers).
        doc: one line for the docs.
        required: the caller must send it.
        default: the value used when an optional param is left out.
        items: for arrays, the JSON type of every element.
    """

    name: str
    types: tuple[JsonType, ...]
    doc: str
    required: bool = True
    default: Any = None
    items: JsonType | None = None
    #: The Python types a decoded JSON value of an accepted type has (``type(v) in``:
    #: the test of every call's every param, which the JSON types then confirm).
    decoded: frozenset[type] = field(init=False, repr=False, compare=False)
    #: It takes an object: any mapping is one (a submit's graph arrives as the mapping
    #: :class:`~qmk.qvm.graph.GraphText`, its compact text), tested by ``isinstance``.
    mapping: bool = field(init=False, repr=False, compare=False)
    #: The Python types a decoded item of an array param may have (``type(v) in``, as
    #: :attr:`decoded`; empty: the param takes no array of typed items).
    item_decoded: frozenset[type] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not self.types:
            raise ValueError(f"param {self.name!r} accepts no type")
        if self.items is not None and JsonType.ARRAY not in self.types:
            raise ValueError(f"param {self.name!r} has items but is not an array")
        if self.required and self.default is not None:
            raise ValueError(f"required param {self.name!r} has a default")
        decoded = _decoded_types(self.types)
        if self.items is not None:
            decoded -= {list}  # each item is checked too: the full test
        object.__setattr__(self, "decoded", decoded)
        object.__setattr__(self, "mapping", JsonType.OBJECT in self.types)
        items = () if self.items is None else (self.items,)
        object.__setattr__(self, "item_decoded", _decoded_types(items))

    @property
    def json_default(self) -> Any:
        """The default as the JSON value bound and sent (a tuple becomes a fresh list)."""
        return _fresh(self.default)

    def type_text(self) -> str:
        """The accepted types as text: ``string``, ``integer | null``, ``array of string``."""
        names = []
        for kind in self.types:
            if kind is JsonType.ARRAY and self.items is not None:
                names.append(f"array of {self.items.value}")
            else:
                names.append(kind.value)
        return " | ".join(names)

    def check(self, method: str, value: Any) -> None:
        """Raise InvalidParams unless ``value`` has one of the accepted JSON types."""
        if type(value) in self.decoded or (self.mapping and isinstance(value, Mapping)):
            return
        if type(value) is list and self.item_decoded:  # a list of plain items: one pass
            item_decoded = self.item_decoded
            if all(type(item) in item_decoded for item in value):
                return
        if not _accepts(self.types, value):
            raise InvalidParams(
                f"{method}: param {self.name!r} must be {self.type_text()}, "
                f"got {json_type(value).value}",
                param=self.name,
            )
        if self.items is not None and isinstance(value, list):
            for index, item in enumerate(value):
                if not _accepts((self.items,), item):
                    raise InvalidParams(
                        f"{method}: param {self.name!r}[{index}] must be {self.items.value}, "
                        f"got {json_type(item).value}",
                        param=self.name,
                    )


@dataclass(frozen=True, slots=True, kw_only=True)
class MethodSpec:
    """One qSyscall method: its params in positional order, what it does and the struct
    it replies with (:mod:`qmk.abi.replies`)."""

    name: str
    params: tuple[ParamSpec, ...]
    doc: str
    reply: type[Reply]
    #: The param that asks the kernel to wait before it answers, in ms (``q_wait``'s
    #: ``timeout_ms``, ``q_submit``'s ``wait_ms``): a client's timeout for the call
    #: adds it. None: the method answers without waiting.
    wait: str | None = None
    #: The params' names (what a call by name may give).
    names: frozenset[str] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "names", frozenset(p.name for p in self.params))
        if self.wait is not None and self.param(self.wait).types[0] is not JsonType.INTEGER:
            raise ValueError(f"{self.name}: wait param {self.wait!r} is no integer")

    def wait_s(self, params: Mapping[str, Any]) -> float:
        """Seconds the kernel may wait before it answers a call with ``params`` (the
        :attr:`wait` param's value, or its default; 0 for a method that does not wait,
        or for a value that is no positive integer: the kernel refuses that one).

        >>> METHODS["q_submit"].wait_s({"wait_ms": 2500}), METHODS["q_submit"].wait_s({})
        (2.5, 0.0)
        >>> METHODS["q_wait"].wait_s({}), METHODS["q_status"].wait_s({"timeout_ms": 9})
        (30.0, 0.0)
        """
        if self.wait is None:
            return 0.0
        value = params.get(self.wait)
        if value is None:
            value = self.param(self.wait).default
        if type(value) is not int or value <= 0:
            return 0.0
        return value / 1000

    @property
    def returns(self) -> str:
        """The reply as the docs show it: its struct and its keys (``?``: a key some
        replies leave out), e.g. ``Watch {watch_id, job_id, streams}``."""
        return reply_text(self.reply)

    @property
    def needs_session(self) -> bool:
        """Whether the method takes ``session_id`` (every method but q_negotiate_caps)."""
        return any(p.name == "session_id" for p in self.params)

    def param(self, name: str) -> ParamSpec:
        """The param called ``name`` (KeyError if none)."""
        for spec in self.params:
            if spec.name == name:
                return spec
        raise KeyError(name)


def reply_text(reply: type[Reply]) -> str:
    """``Name {key, key?, ...}``: a reply struct's keys (``?``: left out of some replies).

    >>> reply_text(replies.Unwatch)
    'Unwatch {watch_id, ended}'
    """
    keys = [
        f"{field.encode_name}{'?' if field.default is msgspec.UNSET else ''}"
        for field in msgspec.structs.fields(reply)
    ]
    return f"{reply.__name__} {{{', '.join(keys)}}}"


def _p(name: str, *types: JsonType, doc: str, **options: Any) -> ParamSpec:
    return ParamSpec(name=name, types=types, doc=doc, **options)


S, INT, NUM, OBJ, ARR, NULL = (
    JsonType.STRING,
    JsonType.INTEGER,
    JsonType.NUMBER,
    JsonType.OBJECT,
    JsonType.ARRAY,
    JsonType.NULL,
)
_SESSION = _p("session_id", S, doc="the session from q_negotiate_caps")
_JOB = _p("job_id", S, doc="a job of this tenant")
_CHANNEL = _p("channel_id", S, doc="a channel this tenant is part of")


def _method(
    name: str, doc: str, reply: type[Reply], *params: ParamSpec, wait: str | None = None
) -> MethodSpec:
    return MethodSpec(name=name, params=params, doc=doc, reply=reply, wait=wait)


#: Every qSyscall method, by name, in documentation order.
METHODS: Mapping[str, MethodSpec] = MappingProxyType(
    {
        spec.name: spec
        for spec in (
            _method(
                "q_negotiate_caps",
                "open a session: authenticate the tenant and grant requested ∩ allowed caps (its "
                "own, and those a live delegation lends it: delegated)",
                replies.Session,
                _p("tenant", S, doc="the tenant's name in the kernel config"),
                _p("key", S, doc="the tenant's shared secret"),
                _p(
                    "requested",
                    ARR,
                    doc="capabilities wanted, e.g. CAP_ALLOC",
                    required=False,
                    default=(),
                    items=S,
                ),
            ),
            _method(
                "q_submit",
                "verify, admit and queue a program on a target; refusals come back at once; with "
                "wait_ms, the job once final (or as it is when wait_ms passes), as q_wait "
                "answers it: one request for a small job",
                replies.Job,
                _SESSION,
                _p(
                    "graph",
                    OBJ,
                    doc="the program: QVM JSON, or for target neutral-atom a device job in "
                    "the wire form (docs/neutral-atom.md), for target stim a stim circuit as "
                    '{"stim": TEXT} (docs/frontends.md)',
                ),
                _p("shots", INT, doc="shots to run", required=False, default=defaults.SHOTS),
                _p("seed", INT, NULL, doc="seed; null: the kernel draws one", required=False),
                _p(
                    "policy",
                    OBJ,
                    NULL,
                    doc="priority, deadline, timeout_ms, engine, noise, qubit, profile, "
                    "precision, noise_model, calibration, cache, channels, error_budget; and "
                    "the target's options: block (lattice-surgery), preset, backend, "
                    "strict_timing, stream, routing, configuration (neutral-atom), detectors, "
                    "decode, decoder (stim)",
                    required=False,
                ),
                _p(
                    "idempotency_key",
                    S,
                    NULL,
                    doc="1-128 characters: a submit again with the same key returns the same job",
                    required=False,
                ),
                _p(
                    "target",
                    S,
                    doc="what runs it: logical (the gate-level machine), lattice-surgery, "
                    "neutral-atom (a program, or a device job's wire form as its graph) or "
                    "stim (docs/kernel.md)",
                    required=False,
                    default=defaults.TARGET,
                ),
                _p(
                    "wait_ms",
                    INT,
                    NULL,
                    doc="wait up to this many ms for the job to be final and answer it as "
                    f"q_wait does (0..{defaults.MAX_TIMEOUT_MS}); null: answer once queued",
                    required=False,
                ),
                _p(
                    "traceparent",
                    S,
                    NULL,
                    doc="the W3C traceparent of the caller's span: the job's worker records "
                    "its spans (qmk.worker and below) and the kernel gives them in the "
                    "tenant's feed (q_events, event spans) before the job's final state; "
                    "null: untraced",
                    required=False,
                ),
                wait="wait_ms",
            ),
            _method(
                "q_status",
                "a job's state, and its result once COMPLETED",
                replies.Job,
                _SESSION,
                _JOB,
            ),
            _method(
                "q_wait",
                "wait until the job is final or timeout_ms passes; returns it either way",
                replies.Job,
                _SESSION,
                _JOB,
                _p(
                    "timeout_ms",
                    INT,
                    doc="longest wait in ms",
                    required=False,
                    default=defaults.WAIT_TIMEOUT_MS,
                ),
                wait="timeout_ms",
            ),
            _method(
                "q_get_result",
                "a COMPLETED job's counts in pages, in stored order, with the rest of its result",
                replies.ResultPage,
                _SESSION,
                _JOB,
                _p(
                    "cursor",
                    S,
                    NULL,
                    doc="next_cursor of the page before; null: the first page",
                    required=False,
                ),
                _p(
                    "limit",
                    INT,
                    doc=f"counts entries in the page (1..{defaults.MAX_RESULT_PAGE_ENTRIES})",
                    required=False,
                    default=defaults.RESULT_PAGE_ENTRIES,
                ),
            ),
            _method(
                "q_cancel",
                "cancel a queued or running job (its worker is killed)",
                replies.Job,
                _SESSION,
                _JOB,
            ),
            _method(
                "q_checkpoint",
                "checkpoint a job at its next fence",
                replies.Checkpoint,
                _SESSION,
                _JOB,
            ),
            _method(
                "q_restore",
                "re-queue a job from a checkpoint (null: its latest)",
                replies.Job,
                _SESSION,
                _JOB,
                _p("checkpoint_id", S, NULL, doc="the checkpoint; null: latest", required=False),
            ),
            _method(
                "q_replay",
                "submit a new job with the same graph, shots, seed and policy",
                replies.Job,
                _SESSION,
                _JOB,
            ),
            _method(
                "q_open_chan",
                "propose a channel to a peer tenant, or accept the peer's proposal",
                replies.Channel,
                _SESSION,
                _p("peer", S, doc="the other tenant"),
                _p(
                    "channel_id",
                    S,
                    NULL,
                    doc="null: propose; the peer's channel id: accept",
                    required=False,
                ),
                _p("fidelity", NUM, doc="Bell-pair fidelity", required=False, default=1.0),
            ),
            _method("q_close_chan", "close a channel", replies.Channel, _SESSION, _CHANNEL),
            _method("q_chan_status", "a channel's state", replies.Channel, _SESSION, _CHANNEL),
            _method(
                "q_list_channels",
                "this tenant's channels (proposed, accepted, or proposed to it), newest first",
                replies.ChannelList,
                _SESSION,
                _p("state", S, NULL, doc="only channels in this state", required=False),
            ),
            _method(
                "q_get_telemetry",
                "a job's telemetry, or with null the tenant's aggregate",
                replies.Telemetry,
                _SESSION,
                _p("job_id", S, NULL, doc="a job; null: the whole tenant", required=False),
            ),
            _method(
                "q_resource_query",
                "the machine's qubit inventory and the tenant's quota and usage",
                replies.Resources,
                _SESSION,
            ),
            _method(
                "q_machine_status",
                "the shared machine now (docs/machine.md): its floorplan with every tenant's "
                "jobs in place, and how busy its tiles, factories and links were, so far and "
                "over time. It gives tenants' shares, Jain's index, throughput, slowdowns and "
                "the idle logical error jobs were given; asked, the speedup over exclusive. "
                "The caller's jobs show by id; another tenant's by a label, not its name, "
                "unless the caller is an operator",
                replies.Machine,
                _SESSION,
                _p(
                    "speedup",
                    JsonType.BOOLEAN,
                    doc="also compute the speedup over exclusive: the latest arrivals run "
                    "again under exclusive and the policy (costs a simulation)",
                    required=False,
                    default=False,
                ),
            ),
            _method(
                "q_calibrate",
                "ingest a calibration or custom qubit parameters into the machine (operators)",
                replies.Device,
                _SESSION,
                _p(
                    "calibration",
                    OBJ,
                    NULL,
                    doc="a fit from qmk qec calibrate --output",
                    required=False,
                ),
                _p("qubit", OBJ, NULL, doc="qubit parameters (QRE's JSON form)", required=False),
            ),
            _method(
                "q_delegate_caps",
                "lend capabilities this session holds from the tenant's own config to another "
                "tenant, until expires_s pass or it is revoked; the recipient's "
                "q_negotiate_caps may then grant them (its quotas stay its own)",
                replies.Delegation,
                _SESSION,
                _p("to_tenant", S, doc="the tenant that may be granted them"),
                _p("caps", ARR, doc="capabilities to lend, e.g. CAP_MAGIC", items=S),
                _p(
                    "expires_s",
                    NUM,
                    doc="seconds it lasts (> 0, at most [kernel] max_delegation_s)",
                ),
            ),
            _method(
                "q_revoke_delegation",
                "end a delegation at once (either tenant may), for sessions already open too; "
                "its jobs not yet started are refused at execution",
                replies.Delegation,
                _SESSION,
                _p("delegation_id", S, doc="a delegation this tenant made or received"),
            ),
            _method(
                "q_list_delegations",
                "the delegations this tenant made or received, newest first",
                replies.DelegationList,
                _SESSION,
                _p(
                    "state",
                    S,
                    NULL,
                    doc="only those in this state (LIVE, REVOKED, EXPIRED)",
                    required=False,
                ),
                _p(
                    "limit",
                    INT,
                    doc="at most this many",
                    required=False,
                    default=defaults.JOBS_LIMIT,
                ),
            ),
            _method(
                "q_list_jobs",
                "this tenant's jobs, newest first, without results",
                replies.JobList,
                _SESSION,
                _p("state", S, NULL, doc="only jobs in this state", required=False),
                _p(
                    "limit",
                    INT,
                    doc="at most this many",
                    required=False,
                    default=defaults.JOBS_LIMIT,
                ),
            ),
            _method(
                "q_assist",
                "ask the assistant (the model in [assist]) about a program; it works "
                "through QMK's tools and shows only programs that validate; each step is "
                "an audit line (event assist); with no model configured, QMK's own advice",
                replies.Assist,
                _SESSION,
                _p("prompt", S, doc="the question"),
                _p("program", S, NULL, doc="the program it is about", required=False),
                _p(
                    "assist_id",
                    S,
                    NULL,
                    doc="an id for the audit lines (the REST route streams them by it)",
                    required=False,
                ),
            ),
            _method(
                "q_usage",
                "the tenant's usage records (one per job end: shots, logical-qubit seconds, "
                "physical-qubit cycles, device seconds, result bytes), newest first, their "
                "totals and the invoice at the price table's prices",
                replies.Usage,
                _SESSION,
                _p(
                    "since",
                    NUM,
                    NULL,
                    doc="only jobs that ended at or after this time (s since the epoch)",
                    required=False,
                ),
                _p(
                    "until",
                    NUM,
                    NULL,
                    doc="only jobs that ended before this time (s since the epoch)",
                    required=False,
                ),
                _p(
                    "job_id",
                    S,
                    NULL,
                    doc="only this job's records (a restored job ends more than once)",
                    required=False,
                ),
                _p(
                    "limit",
                    INT,
                    doc="at most this many records (the totals count them all)",
                    required=False,
                    default=defaults.JOBS_LIMIT,
                ),
            ),
            _method(
                "q_events",
                "the tenant's own audit records (its jobs' transitions, capability "
                "decisions, channels, checkpoints) after a cursor, oldest first: the event "
                "feed of GET /v1/events; with wait_ms, wait for the first",
                replies.Events,
                _SESSION,
                _p(
                    "after",
                    INT,
                    NULL,
                    doc="the cursor of the reply before (an audit seq); null: from now, none given",
                    required=False,
                ),
                _p(
                    "limit",
                    INT,
                    doc=f"at most this many records (1..{defaults.EVENTS_LIMIT})",
                    required=False,
                    default=defaults.EVENTS_LIMIT,
                ),
                _p(
                    "wait_ms",
                    INT,
                    NULL,
                    doc="wait up to this many ms for a record after the cursor "
                    f"(0..{defaults.MAX_TIMEOUT_MS}); null: answer at once",
                    required=False,
                ),
                _p(
                    "after_sub",
                    INT,
                    doc="with after, the records after that audit line already given: the "
                    "reply's cursor_sub (a device job's stream parts follow the line before "
                    "them, numbered sub 1, 2, ...); 0: none",
                    required=False,
                    default=0,
                ),
                wait="wait_ms",
            ),
            _method(
                "q_audit",
                "the tenant's recent audit records, oldest first (GET /v1/audit)",
                replies.AuditEntries,
                _SESSION,
                _p("job_id", S, NULL, doc="only this job's records", required=False),
                _p(
                    "limit",
                    INT,
                    doc=f"at most this many, the newest (1..{defaults.AUDIT_LIMIT_MAX})",
                    required=False,
                    default=defaults.AUDIT_LIMIT,
                ),
            ),
            _method(
                "q_kernel_load",
                "the kernel's load (jobs, queue, workers, audit chain, disk, machine) and "
                "its job counters, for /metrics; the session needs CAP_OBSERVE (operators)",
                replies.KernelLoad,
                _SESSION,
            ),
            _method(
                "q_create_trigger",
                "a workflow the kernel runs as this tenant's jobs on a schedule or on an event "
                "(a job of the tenant ending, a calibration); durable, a missed schedule runs once",
                replies.Trigger,
                _SESSION,
                _p("name", S, doc="a name for people (1-100 characters)"),
                _p(
                    "workflow",
                    OBJ,
                    doc="a workflow file's data, each step's program text in source",
                ),
                _p("on", S, doc="schedule, job or calibration"),
                _p(
                    "every_s",
                    NUM,
                    NULL,
                    doc="a schedule's interval in seconds (>= 1)",
                    required=False,
                ),
                _p(
                    "cron",
                    S,
                    NULL,
                    doc="a schedule: cron's five fields, in UTC",
                    required=False,
                ),
                _p(
                    "states",
                    ARR,
                    NULL,
                    doc="a job trigger's end states ([COMPLETED])",
                    required=False,
                    items=S,
                ),
            ),
            _method(
                "q_list_triggers",
                "this tenant's triggers, oldest first, each with its next and last run (and "
                "its newest runs: why each started, its jobs, how it ended)",
                replies.TriggerList,
                _SESSION,
                _p("trigger_id", S, NULL, doc="only this trigger", required=False),
                _p(
                    "runs",
                    INT,
                    doc="each with its newest N runs, 0-100 (the newest 100 are kept)",
                    required=False,
                    default=0,
                ),
            ),
            _method(
                "q_delete_trigger",
                "delete a trigger and its runs' records (its jobs submitted run on)",
                replies.Trigger,
                _SESSION,
                _p("trigger_id", S, doc="a trigger of this tenant"),
            ),
            _method(
                "q_device_artifacts",
                "a device job's artifacts (streamed measurements, pulse log, snapshots): the "
                "list, or with name a page of one's records",
                replies.Artifacts,
                _SESSION,
                _JOB,
                _p("name", S, NULL, doc="an artifact's name; null: the list", required=False),
                _p("offset", INT, doc="the first record of the page", required=False, default=0),
                _p(
                    "limit",
                    INT,
                    doc="records in the page (1..10000)",
                    required=False,
                    default=1000,
                ),
            ),
        )
    }
)


#: The methods only a connection of the JSON-RPC socket server answers (they push
#: notifications down that connection, so no request-reply wire has them: no gRPC rpc,
#: no REST route, no typed client method is generated from this table; the REST API's
#: ``GET /v1/jobs/{id}/events`` and gRPC's ``WatchJob`` are their counterparts there).
#: A watch sends ``q_event`` notifications ``{watch_id, event, seq, data}`` and ends
#: with an ``end`` event (:mod:`qmk.abi.watch`).
SOCKET_METHODS: Mapping[str, MethodSpec] = MappingProxyType(
    {
        spec.name: spec
        for spec in (
            _method(
                "q_watch",
                "watch a job on this connection: q_event notifications {watch_id, event, seq, "
                "data} with its states, progress, stream parts of its artifacts and other "
                "events, then its result and an end event; counted among the session's and "
                "tenant's live event streams (server.max_streams_per_session, "
                "max_streams_per_tenant)",
                replies.Watch,
                _SESSION,
                _JOB,
                _p(
                    "streams",
                    ARR,
                    NULL,
                    doc="the artifacts whose stream parts it sends (measurements, pulses, "
                    "snapshots); null: all",
                    required=False,
                    items=S,
                ),
                _p(
                    "after",
                    INT,
                    NULL,
                    doc="resume past this cursor (the seq of the last event seen): the job's "
                    "events after it, then live, with no state-now event first; null: from "
                    "the job's state now",
                    required=False,
                ),
            ),
            _method(
                "q_unwatch",
                "end a watch of this connection at once: no q_event of it follows the reply",
                replies.Unwatch,
                _SESSION,
                _p("watch_id", S, doc="a watch of this connection, from q_watch"),
            ),
        )
    }
)


def unknown(method: str, *, where: str | None = None) -> MethodNotFound:
    """The refusal of a call of ``method``, which the table does not have: it names the
    closest method the table has (``details.closest``), so a call of a removed or renamed
    method, or a misspelt one, is told what to call instead (``where``: how the wire named
    the call, a route or an rpc).

    >>> print(unknown("q_stauts").message)
    no method 'q_stauts'; did you mean q_status (a job's state, and its result once COMPLETED)?
    """
    from qmk.errors import closest

    near = closest(method, METHODS)
    named = where or repr(method)
    if near is None:
        return MethodNotFound(f"no method {named}", method=method)
    doc = METHODS[near].doc.split(";")[0]
    return MethodNotFound(
        f"no method {named}; did you mean {near} ({doc})?", method=method, closest=near
    )


def _fresh(default: Any) -> Any:
    """A default as a fresh JSON value (tuples become lists, so callers may mutate them)."""
    return list(default) if isinstance(default, tuple) else default


def bind_params(spec: MethodSpec, params: Any) -> dict[str, Any]:
    """The keyword arguments for ``spec`` from JSON-RPC ``params`` (object, array or absent).

    Args:
        spec: the method's table entry.
        params: the request's ``params`` member: a dict (by name), a list (by position,
            in table order) or None when the member was absent.

    Returns:
        Every param of the method by name, defaults filled in.

    Raises:
        InvalidParams: a required param is missing, a name is unknown, a value has the
            wrong JSON type, or there are more positional params than the method takes.
    """
    if params is None:
        given: dict[str, Any] = {}
    elif isinstance(params, list):
        if len(params) > len(spec.params):
            raise InvalidParams(
                f"{spec.name}: takes at most {len(spec.params)} params, got {len(params)}"
            )
        given = {p.name: value for p, value in zip(spec.params, params, strict=False)}
    elif isinstance(params, dict):
        given = params
        unknown = sorted(set(given) - spec.names) if not spec.names.issuperset(given) else ()
        if unknown:
            raise InvalidParams(
                f"{spec.name}: unknown param {unknown[0]!r}; it takes "
                + (", ".join(p.name for p in spec.params) or "no params"),
                param=unknown[0],
            )
    else:
        raise InvalidParams(f"{spec.name}: params must be an object or an array")
    bound: dict[str, Any] = {}
    for param in spec.params:
        if param.name in given:
            value = given[param.name]
            if type(value) not in param.decoded:  # check's own first test, without a call
                param.check(spec.name, value)
            bound[param.name] = value
        elif param.required:
            raise InvalidParams(
                f"{spec.name}: missing required param {param.name!r}", param=param.name
            )
        else:  # _fresh(param.default), without its call
            default = param.default
            bound[param.name] = list(default) if isinstance(default, tuple) else default
    return bound
