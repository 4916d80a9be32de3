"""Jobs: their states, their policy, and the record the kernel keeps for each.

States: ``QUEUED -> VALIDATING -> RUNNING -> COMPLETED | FAILED | CANCELLED | TIMED_OUT``.
A preempted or recovered job goes back to QUEUED.

>>> policy = parse_policy({"priority": 7, "noise": False}, default_timeout_s=600)
>>> policy.priority, policy.noise, policy.timeout_s
(7, False, 600.0)
>>> try:
...     parse_policy({"colour": "red"}, default_timeout_s=600)
... except InvalidArgument as exc:
...     print(exc.details)
{'key': 'policy.colour'}
"""

from __future__ import annotations

import dataclasses
import json
import secrets
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from qmk import defaults
from qmk.errors import InvalidArgument
from qmk.kernel.errors import JobError, error_json
from qmk.qvm.graph import Node
from qmk.qvm.profiles import parse_profile

# the states' names are a leaf's table (qmk.defaults), which the workflows and the web
# console read too; the kernel names them here
STATES: tuple[str, ...] = defaults.JOB_STATES
QUEUED, VALIDATING, RUNNING, COMPLETED, FAILED, CANCELLED, TIMED_OUT = STATES
FINAL_STATES: frozenset[str] = frozenset(defaults.FINAL_JOB_STATES)
ACTIVE_STATES: frozenset[str] = frozenset(STATES) - FINAL_STATES

POLICY_KEYS = (
    "priority",
    "deadline",
    "timeout_ms",
    "engine",
    "noise",
    "qubit",
    "profile",
    "channels",
)
ENGINES = defaults.ENGINES
#: The policy keys of ``q_device_submit`` (a neutral-atom device job).
DEVICE_POLICY_KEYS = ("priority", "deadline", "timeout_ms", "backend", "strict_timing")
#: ``Policy.device`` of a neutral-atom device job (None: a QVM job).
NEUTRAL_ATOM = "neutral-atom"
#: The capability a device job needs.
DEVICE_CAP = "CAP_DEVICE_NA"


@dataclass(frozen=True, slots=True, kw_only=True)
class Policy:
    """How a job wants to run: its priority, limits, engine options and channel bindings."""

    priority: int = defaults.PRIORITY
    deadline: float | None = None
    timeout_s: float = 600.0
    engine: str | None = None
    noise: bool = True
    qubit: str | None = None
    profile: str | None = None
    channels: Mapping[str, str] = field(default_factory=dict)
    #: The device a device job runs on (:data:`NEUTRAL_ATOM`); None for a QVM job.
    device: str | None = None

    def to_json(self) -> dict[str, Any]:
        out = {
            "priority": self.priority,
            "deadline": self.deadline,
            "timeout_ms": round(self.timeout_s * 1000),
            "engine": self.engine,
            "noise": self.noise,
            "qubit": self.qubit,
            "profile": self.profile,
            "channels": dict(self.channels),
        }
        if self.device is not None:  # QVM jobs' policies stay as q_submit takes them
            out["device"] = self.device
        return out


def _bad(message: str, key: str) -> InvalidArgument:
    return InvalidArgument(message, key=f"policy.{key}")


def _short(value: Any) -> str:
    """``repr(value)``, cut to 40 characters (a 10**400 stays one line)."""
    text = repr(value) if not isinstance(value, int) or abs(value) < 10**30 else "a huge number"
    return text if len(text) <= 40 else text[:37] + "..."


def parse_policy(policy: Mapping[str, Any] | None, *, default_timeout_s: float) -> Policy:
    """A :class:`Policy` from the ``policy`` object of ``q_submit``.

    Raises:
        InvalidArgument: an unknown key or a value out of range.
    """
    if policy is None:
        return Policy(timeout_s=default_timeout_s)
    if not isinstance(policy, Mapping):
        raise InvalidArgument("policy must be an object or null", key="policy")
    for key in policy:
        if key not in POLICY_KEYS:
            raise InvalidArgument(
                f"unknown policy key {key!r}; expected one of {', '.join(POLICY_KEYS)}",
                key=f"policy.{key}",
            )
    priority = policy.get("priority", defaults.PRIORITY)
    if priority is None:
        priority = defaults.PRIORITY
    if isinstance(priority, bool) or not isinstance(priority, int) or not 0 <= priority <= 9:
        raise _bad(f"policy.priority must be an integer 0..9, got {priority!r}", "priority")
    deadline = policy.get("deadline")
    if deadline is not None and (
        isinstance(deadline, bool)
        or not isinstance(deadline, (int, float))
        or not abs(deadline) < 2**53  # also refuses inf, nan and 10**400 (no overflow)
    ):
        raise _bad(
            f"policy.deadline must be unix seconds or null, got {_short(deadline)}", "deadline"
        )
    timeout_ms = policy.get("timeout_ms")
    timeout_s = default_timeout_s
    if timeout_ms is not None:
        if (
            isinstance(timeout_ms, bool)
            or not isinstance(timeout_ms, int)
            or not 1 <= timeout_ms <= defaults.MAX_TIMEOUT_MS
        ):
            raise _bad(
                f"policy.timeout_ms must be an integer 1..{defaults.MAX_TIMEOUT_MS}, got "
                f"{_short(timeout_ms)}",
                "timeout_ms",
            )
        timeout_s = timeout_ms / 1000
    engine = policy.get("engine")
    if engine is not None and engine not in ENGINES:
        raise _bad(f"policy.engine must be one of {', '.join(ENGINES)} or null", "engine")
    noise = policy.get("noise", True)
    if noise is None:
        noise = True
    if not isinstance(noise, bool):
        raise _bad(f"policy.noise must be true or false, got {noise!r}", "noise")
    names: dict[str, str | None] = {}
    for key in ("qubit", "profile"):
        value = policy.get(key)
        if value is not None and (not isinstance(value, str) or not value):
            raise _bad(f"policy.{key} must be a non-empty string or null", key)
        names[key] = value
    profile = names["profile"]
    if profile is not None and profile != "auto":
        try:
            parse_profile(profile)
        except ValueError as exc:  # a ProfileError
            raise _bad(f"policy.profile: {exc}", "profile") from None
    channels = policy.get("channels") or {}
    if not isinstance(channels, Mapping) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in channels.items()
    ):
        raise _bad("policy.channels must map graph channel names to channel ids", "channels")
    return Policy(
        priority=priority,
        deadline=None if deadline is None else float(deadline),
        timeout_s=float(timeout_s),
        engine=engine,
        noise=noise,
        qubit=names["qubit"],
        profile=names["profile"],
        channels=dict(channels),
    )


#: A stored result's index marks the start of every this-many-th counts entry, so a
#: page starts and ends after a scan of fewer entries than this (:meth:`StoredResult.page`).
RESULT_MARK_EVERY = 1024

_COUNTS_OPEN = b'{"counts":'
#: One JSON value at an offset of a text, at C speed: (value, the offset after it).
_SCAN: Callable[[str, int], tuple[Any, int]] = json.JSONDecoder().scan_once  # type: ignore[attr-defined]
_ENCODE_KEY = json.encoder.encode_basestring  # a str as json.dumps writes it (non-ASCII kept)


def _dumps(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


class StoredResult(Mapping[str, Any]):
    """A finished job's result as the kernel keeps it: its JSON, encoded once (UTF-8).

    ``data`` is what the database holds (``jobs.result``) and what every reply carries:
    the wire splices it into a reply as it is (:func:`qmk.abi.jsonrpc.encode` writes any
    object with ``__json_bytes__``), so the kernel never parses or re-encodes a result to
    answer ``q_status``, ``q_wait`` or a REST call: a reply costs a copy of the bytes.
    ``meta`` is the small part the kernel reads: ``head`` (every member but ``counts``:
    engine, telemetry, ...), ``entries`` (how many counts), ``counts_at`` (the byte
    offsets where the counts object starts and ends), ``marks`` (where every
    :data:`RESULT_MARK_EVERY`-th entry starts) and ``counts_sha256``
    (:func:`qmk.kernel.attest.digest_counts`).

    It reads as the result's mapping in-process (``result["counts"]`` parses the counts
    once; the ``head`` members never need a parse).

    >>> stored = encode_result({"counts": {"00": 3, "11": 5}, "shots": 8})
    >>> stored.data
    b'{"counts":{"00":3,"11":5},"shots":8}'
    >>> stored["shots"], stored["counts"]["11"], len(stored)
    (8, 5, 2)
    >>> stored.page(1, 10)
    (b'{"11":5}', None)
    """

    __slots__ = ("_counts", "data", "meta")

    def __init__(self, data: bytes, meta: Mapping[str, Any]) -> None:
        self.data = data
        self.meta = meta
        self._counts: dict[str, Any] | None = None

    def __json_bytes__(self) -> bytes:
        return self.data

    @property
    def nbytes(self) -> int:
        """The stored JSON's size in bytes."""
        return len(self.data)

    @property
    def entries(self) -> int:
        """How many counts entries the result holds."""
        return int(self.meta.get("entries", 0))

    @property
    def head(self) -> Mapping[str, Any]:
        """The result without its counts."""
        head: Mapping[str, Any] = self.meta["head"]
        return head

    @property
    def counts_sha256(self) -> str | None:
        digest = self.meta.get("counts_sha256")
        return None if digest is None else str(digest)

    def __getitem__(self, key: str) -> Any:
        head = self.meta["head"]
        if key in head:
            return head[key]
        if key != "counts" or self.meta.get("counts_at") is None:
            raise KeyError(key)
        if self._counts is None:
            start, end = self.meta["counts_at"]
            self._counts = json.loads(self.data[start:end])
        return self._counts

    def __iter__(self) -> Iterator[str]:
        if self.meta.get("counts_at") is not None:
            yield "counts"
        yield from self.meta["head"]

    def __len__(self) -> int:
        return len(self.meta["head"]) + (self.meta.get("counts_at") is not None)

    def __repr__(self) -> str:
        return f"StoredResult({self.nbytes} bytes, {self.entries} counts entries)"

    def _entry_start(self, index: int) -> int:
        """The byte offset where counts entry ``index`` starts (``entries``: after the
        closing brace): from the mark before it, a scan of fewer than
        :data:`RESULT_MARK_EVERY` entries."""
        if index >= self.entries:
            return int(self.meta["counts_at"][1])
        mark = index // RESULT_MARK_EVERY
        at = int(self.meta["marks"][mark])
        skip = index % RESULT_MARK_EVERY
        if not skip:
            return at
        # the entries from this mark to the next one, as text: "key":value, ... (the scan
        # never reaches the end of the window: it stops before the index's own entry)
        window = self.data[
            at : self._entry_start(min((mark + 1) * RESULT_MARK_EVERY, self.entries))
        ]
        text = window.decode()
        pos = 0
        for _ in range(skip):
            _, pos = _SCAN(text, pos)
            _, pos = _SCAN(text, pos + 1)
            pos += 1  # the comma
        return at + (pos if text.isascii() else len(text[:pos].encode()))

    def page(self, start: int, limit: int) -> tuple[bytes, int | None]:
        """The counts entries ``start`` .. ``start + limit - 1`` (in stored order) as the
        UTF-8 JSON of an object, and the index after them (None: no more)."""
        if self.meta.get("counts_at") is None or start >= self.entries:
            return b"{}", None
        stop = min(start + limit, self.entries)
        body = self.data[self._entry_start(start) : self._entry_start(stop) - 1]
        return b"{" + body + b"}", (stop if stop < self.entries else None)


def encode_result(value: Mapping[str, Any]) -> StoredResult:
    """``value`` (a result's JSON object) as a :class:`StoredResult`: counts first, then
    the other members, with the index of its counts entries.

    Raises:
        ValueError: the value is not JSON (a NaN, say).
    """
    from qmk.kernel.attest import digest_counts

    head = {key: item for key, item in value.items() if key != "counts"}
    head_text = _dumps(head)
    counts = value.get("counts")
    if not isinstance(counts, Mapping) or not all(isinstance(key, str) for key in counts):
        meta = {"head": head, "entries": 0, "counts_at": None, "marks": []}
        if counts is not None:  # not a counts mapping: kept as it is, among the rest
            head["counts"] = counts
            return StoredResult(_dumps(head).encode(), meta)
        return StoredResult(head_text.encode(), meta)
    counts_data = _dumps(dict(counts)).encode()
    begin = len(_COUNTS_OPEN)
    end = begin + len(counts_data)
    rest = b"}" if head_text == "{}" else b"," + head_text[1:].encode()
    data = _COUNTS_OPEN + counts_data + rest
    marks = []
    at = begin + 1
    for index, (key, count) in enumerate(counts.items()):
        if index % RESULT_MARK_EVERY == 0:
            marks.append(at)
        shown = _ENCODE_KEY(key) + ":" + (repr(count) if type(count) is int else _dumps(count))
        at += (len(shown) if shown.isascii() else len(shown.encode())) + 1  # and ','
    if counts and at != end:  # cannot happen for JSON as json.dumps writes it
        raise ValueError(f"the counts' index ends at {at}, the counts at {end}")
    meta = {
        "head": head,
        "entries": len(counts),
        "counts_at": [begin, end],
        "marks": marks,
        "counts_sha256": digest_counts(counts),
    }
    return StoredResult(data, meta)


def stored_result(data: bytes | str, meta: str | None) -> StoredResult:
    """A result as the database holds it: its JSON and its ``meta`` JSON (None: a row
    written before results were indexed, which is parsed and encoded once more)."""
    if isinstance(data, str):
        data = data.encode()
    if meta is None:
        return encode_result(json.loads(data))
    return StoredResult(data, json.loads(meta))


def result_of(outcome: Mapping[str, Any]) -> StoredResult:
    """The result of a worker's successful ``outcome``: its JSON and index as the worker
    encoded them (``result_json``, ``result_meta``), or a result object (a Dask job's
    parts merged in the kernel, say) encoded here."""
    data = outcome.get("result_json")
    if isinstance(data, bytes):
        return StoredResult(data, outcome["result_meta"])
    return encode_result(outcome["result"])


@dataclass(slots=True, kw_only=True)
class Job:
    """The kernel's record of one job (mutable: the kernel moves it through its states).

    ``graph`` is the program's QVM JSON text (stored and sent to workers as is).

    ``qubits`` maps each tenant whose qubits the job allocates to its peak live logical
    qubits; ``physical_qubits`` is the job's peak physical-qubit footprint.
    """

    job_id: str
    tenant: str
    graph: str = field(repr=False)  # the QVM JSON text as submitted
    shots: int
    seed: int
    policy: Policy
    caps: tuple[str, ...]
    required_caps: tuple[str, ...]
    physical_qubits: int
    qubits: Mapping[str, int]
    state: str = QUEUED
    created_at: float = 0.0
    started_at: float | None = None
    finished_at: float | None = None
    error: dict[str, Any] | None = None
    result: StoredResult | None = field(default=None, repr=False)
    #: When retention deleted the result (``result_keep_s`` after the end); None: kept.
    result_expired_at: float | None = None
    attempts: int = 0
    preemptions: int = 0
    epoch: int = 0
    checkpoint_id: str | None = None
    seq: int = 0

    @property
    def priority(self) -> int:
        return self.policy.priority

    @property
    def deadline(self) -> float | None:
        return self.policy.deadline

    @property
    def final(self) -> bool:
        return self.state in FINAL_STATES

    def to_json(self, *, result: bool = True) -> dict[str, Any]:
        """The job as the wire shows it (``result`` left out of summaries)."""
        out: dict[str, Any] = {
            "job_id": self.job_id,
            "state": self.state,
            "tenant": self.tenant,
            "shots": self.shots,
            "seed": self.seed,
            "priority": self.policy.priority,
            "created_at": self.created_at,
            "started_at": self.started_at,
            "finished_at": self.finished_at,
            "error": self.error,
        }
        if result:
            out["result"] = self.result
        if self.result_expired_at is not None:
            out["result_expired_at"] = self.result_expired_at
            out["result_error"] = result_expired(self)
        return out


def result_expired(job: Job) -> dict[str, str]:
    """The coded error (``QK306 result-expired``) of a job whose result retention deleted."""
    return error_json(
        JobError.of(
            "result-expired",
            f"job {job.job_id}'s result was deleted at {job.result_expired_at} (the kernel "
            "keeps results kernel.result_keep_s after a job ends)",
        )
    )


def new_id(prefix: str) -> str:
    """An unguessable id: ``prefix`` + ``_`` + 18 random bytes (base64url), e.g. a job id."""
    return f"{prefix}_{secrets.token_urlsafe(18)}"


#: The keys of ``SET_POLICY`` the kernel honours, and the ``q_submit`` policy key each sets.
GRAPH_POLICY_KEYS: Mapping[str, str] = {
    "priority": "priority",
    "deadline": "deadline",
    "code_distance": "profile",
}


def honour_set_policy(
    policy: Policy,
    nodes: Sequence[Node],
    *,
    given: Collection[str],
    now: float,
    epoch_s: float,
    machine_profile: str,
) -> Policy:
    """``policy`` with the program's ``SET_POLICY`` hints applied where ``q_submit`` set none.

    For each key the first ``SET_POLICY`` node that sets it counts (the kernel schedules
    whole jobs): ``priority`` (0..9, as a submit's), ``deadline`` in kernel epochs from now,
    ``code_distance`` for qubits whose ``ALLOC_LQ`` names no profile (the machine's code
    family at that distance; the QEC layer checks it fits). A key the submit's policy sets
    wins over the program's.

    Raises:
        InvalidArgument: a priority outside 0..9 (naming the node).
    """
    hints: dict[str, tuple[Any, str]] = {}
    for node in nodes:
        if node.op != "SET_POLICY":
            continue
        for key, value in node.args.items():
            if key in GRAPH_POLICY_KEYS and key not in hints:
                hints[key] = (value, node.id)
    changes: dict[str, Any] = {}
    for key, (value, node_id) in hints.items():
        if GRAPH_POLICY_KEYS[key] in given:
            continue
        if key == "priority":
            if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 9:
                raise InvalidArgument(
                    f"SET_POLICY node {node_id!r}: priority must be an integer 0..9, got {value!r}",
                    key="SET_POLICY.priority",
                    node=node_id,
                )
            changes["priority"] = value
        elif key == "deadline":
            changes["deadline"] = now + float(value) * epoch_s
        else:
            family = parse_profile(machine_profile).family
            changes["profile"] = f"logical:{family}(d={int(value)})"
    return dataclasses.replace(policy, **changes) if changes else policy


__all__ = [
    "ACTIVE_STATES",
    "CANCELLED",
    "COMPLETED",
    "DEVICE_CAP",
    "DEVICE_POLICY_KEYS",
    "FAILED",
    "FINAL_STATES",
    "NEUTRAL_ATOM",
    "QUEUED",
    "RUNNING",
    "STATES",
    "TIMED_OUT",
    "VALIDATING",
    "Job",
    "Policy",
    "StoredResult",
    "encode_result",
    "error_json",
    "honour_set_policy",
    "new_id",
    "parse_policy",
    "result_expired",
    "result_of",
    "stored_result",
]
