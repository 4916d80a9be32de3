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

import base64
import os
import time
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import msgspec
from msgspec import UNSET

import qmk.abi.replies as replies
from qmk import defaults
from qmk.errors import InvalidArgument, StateError
from qmk.execution.request import Policy, RunRequest
from qmk.kernel.errors import JobError, error_json
from qmk.kernel.records.stored import StoredResult
from qmk.qvm.graph import Node
from qmk.qvm.profiles import Profile, parse_profile
from qmk.values import convert

if TYPE_CHECKING:
    from qmk.execution.footprint import Footprint

# the states' names are a leaf's table (qmk.defaults), which the workflows and the web
# console read too; the kernel names them here
STATES: tuple[str, ...] = defaults.JOB_STATES
QUEUED, VALIDATING, RUNNING, COMPLETED, FAILED, CANCELLED, TIMED_OUT = STATES
FINAL_STATES: frozenset[str] = frozenset(defaults.FINAL_JOB_STATES)
ACTIVE_STATES: frozenset[str] = frozenset(STATES) - FINAL_STATES

ENGINES = defaults.ENGINES


#: Policy keys whose null means "the default".
_NULL_IS_DEFAULT = ("priority", "noise", "channels", "timeout_ms")


def _policy_data(
    policy: Mapping[str, Any] | None, default_timeout_s: float, default_priority: int
) -> dict[str, Any]:
    """The ``policy`` object as the schema reads it: nulls that mean "the default"
    dropped, the kernel's default timeout and the tenant's default priority filled in.

    Raises:
        InvalidArgument: ``policy`` is not an object or null.
    """
    if policy is None:
        policy = {}
    if not isinstance(policy, Mapping):
        raise InvalidArgument("policy must be an object or null", key="policy")
    data = {k: v for k, v in policy.items() if not (v is None and k in _NULL_IS_DEFAULT)}
    data.setdefault("timeout_ms", max(1, round(default_timeout_s * 1000)))
    data.setdefault("priority", default_priority)
    return data


def parse_policy(
    policy: Mapping[str, Any] | None,
    *,
    default_timeout_s: float,
    default_priority: int = defaults.PRIORITY,
) -> Policy:
    """A :class:`~qmk.execution.request.Policy` from the ``policy`` object of ``q_submit``
    (its schema: unknown keys, types and ranges refused), with the profile name, noise
    model and calibration checked; ``default_priority``: the tenant's, where the policy
    sets none (:attr:`~qmk.kernel.config.TenantQuota.default_priority`). The engine's
    name is checked where the engines' registry is, in the planner
    (:func:`qmk.execution.pricing.price`).

    Raises:
        InvalidArgument: an unknown key or a value out of range (``key``: ``policy.<key>``).
    """
    data = _policy_data(policy, default_timeout_s, default_priority)
    if data.get("calibration") is not None:
        from qmk.kernel.records.policy_physics import checked_calibration  # where named

        data["calibration"] = checked_calibration(data["calibration"])
    parsed: Policy = convert(data, Policy, where="policy")
    if parsed.noise_model is not None:
        from qmk.kernel.records.policy_physics import check_noise_model

        check_noise_model(parsed)
    if parsed.profile is not None and parsed.profile != "auto":
        try:
            parse_profile(parsed.profile)
        except ValueError as exc:  # a ProfileError
            raise InvalidArgument(f"policy.profile: {exc}", key="policy.profile") from None
    return parsed


def target_options(
    policy: Mapping[str, Any] | None, keys: Collection[str]
) -> tuple[Mapping[str, Any] | None, dict[str, Any]]:
    """A job's ``policy`` split into the policy proper and its target's options: the keys
    of ``keys`` (``TargetSpec.options``: a lattice-surgery job's ``block``, a device
    job's ``backend``, ``stream``...), which the target checks when it compiles; a null
    one is left out (its default).

    >>> target_options({"priority": 3, "block": "fast"}, ("block",))
    ({'priority': 3}, {'block': 'fast'})
    """
    if not isinstance(policy, Mapping) or not keys:
        return policy, {}
    rest = {k: v for k, v in policy.items() if k not in keys}
    return rest, {k: v for k, v in policy.items() if k in keys and v is not None}


@dataclass(slots=True, kw_only=True)
class Job:
    """The kernel's record of one job (mutable: the kernel moves it through its states).

    ``graph`` is the program's QVM JSON text (stored and sent to workers as is; a device
    job's: its stored wire job). ``request`` is its run request, built at admission
    (:class:`~qmk.execution.request.RunRequest`: shots, seed, the physics, the policy);
    a start hands the worker a copy the fault policies may have changed.

    ``qubits`` maps each tenant whose qubits the job allocates to its peak live logical
    qubits; ``physical_qubits`` is the job's peak physical-qubit footprint.
    """

    job_id: str
    tenant: str
    graph: str = field(repr=False)  # the QVM JSON text as submitted
    request: RunRequest = field(repr=False)
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
    #: Why the stored result is not served (``QK308 result-tampered``: it does not match
    #: its seal, :mod:`qmk.kernel.security.seals`); None: it is, or there is none. Not stored.
    result_damage: dict[str, str] | None = None
    #: Why the stored program is not run (``QK310 program-tampered``: it does not match
    #: its seal; ``graph`` is then ``''``); None: it is the one the kernel stored. Not stored.
    program_damage: dict[str, str] | None = None
    attempts: int = 0
    preemptions: int = 0
    #: Times its worker was lost since the kernel accepted or read it back (not stored:
    #: a restarted kernel counts afresh; :mod:`qmk.kernel.running.runs`).
    worker_losses: int = field(default=0, compare=False)
    epoch: int = 0
    checkpoint_id: str | None = None
    seq: int = 0
    #: Whether accepting the job looks for a stored result of the same run to answer it
    #: with (set by admission, not stored: :mod:`qmk.kernel.admit.cache`).
    cache_lookup: bool = False
    #: Warnings admission found for the submit's answer: an option that changed nothing
    #: (``QC130``, ``QC131``; not stored).
    warnings: tuple[dict[str, str], ...] = field(default=(), repr=False)
    #: The job whose stored result answered this one (a cache hit); None: it ran.
    cached_from: str | None = None
    #: The digest of its run under which its result answers later jobs; None: none.
    cache_key: str | None = None
    #: How many times it has ended (usage rows), when the kernel knows without a look at
    #: the database: 0 for a job it accepted; None for one read back (not stored).
    ends: int | None = field(default=None, compare=False)
    #: What it asks of the shared machine, as its target reports it (admission's; None:
    #: not known, or not on the machine: :mod:`qmk.kernel.running.shared_machine`). Not stored.
    footprint: Footprint | None = field(default=None, repr=False, compare=False)
    #: Syndrome bits per second its plan asks of the decoders at its peak, as the planner
    #: priced it with its run request's qubit and profile (admission's; None: not known,
    #: and a start under a decoder capacity plans it: :mod:`qmk.kernel.admit.faults`). Not stored.
    decoder_load: float | None = field(default=None, repr=False, compare=False)
    #: Each of its profiles' logical error per cycle, as the planner priced it with its run
    #: request's physics (admission's; None: not known, and a start computes it:
    #: :func:`qmk.kernel.admit.adjusted.adjust`). Not stored.
    logical_errors: dict[str, float] | None = field(default=None, repr=False, compare=False)
    #: The fault policies' answer for its start as its acceptance computed it, for the
    #: start to reuse where nothing changed (a
    #: :class:`~qmk.kernel.admit.faults.Foreseen`; None: none). Not stored.
    foreseen: Any = field(default=None, repr=False, compare=False)
    #: The run its acceptance looked up in the result cache (as the key reads it) and
    #: that run's key, for its end to index without hashing it again when it ran that
    #: run (:mod:`qmk.kernel.admit.cache`; None: none). Not stored.
    looked_up: tuple[RunRequest, str] | None = field(default=None, repr=False, compare=False)
    #: The group commit that holds its end (:meth:`GroupCommit.holds
    #: <qmk.kernel.storage.commit.GroupCommit.holds>`; 0: none pending, as for a job read
    #: back). Not stored.
    ended_in: int = field(default=0, repr=False, compare=False)

    @property
    def shots(self) -> int:
        return self.request.shots

    @property
    def seed(self) -> int:
        return self.request.seed

    @property
    def policy(self) -> Policy:
        """The job's policy (every kernel job's request has one)."""
        policy = self.request.policy
        assert policy is not None, "a kernel job's run request holds its policy"
        return policy

    # the two below read the policy themselves, not through :attr:`policy`: the queue
    # and the shared machine ask them a few times a job

    @property
    def priority(self) -> int:
        policy = self.request.policy
        assert policy is not None, "a kernel job's run request holds its policy"
        return policy.priority

    @property
    def deadline(self) -> float | None:
        policy = self.request.policy
        assert policy is not None, "a kernel job's run request holds its policy"
        return policy.deadline

    @property
    def final(self) -> bool:
        return self.state in FINAL_STATES

    def stored_program(self) -> str:
        """The program's text, to run it again (a restore, a replay).

        Raises:
            StateError: ``QK310 program-tampered``: the stored text is not the one the
                kernel sealed (:attr:`program_damage`).
        """
        if self.program_damage is not None:
            error = self.program_damage
            raise StateError(error["message"], code=error["code"], job_id=self.job_id)
        return self.graph

    def reply(self, *, result: bool = True) -> replies.Job:
        """The job as the syscalls answer it (``result`` left out of summaries; the
        stored result kept encoded, which the wires write as it is). A submit's answer
        adds its :attr:`warnings`."""
        request = self.request  # its properties' fields, read once (a few times a job)
        error = self.error
        result_error: replies.CodedError | replies.Absent = UNSET
        if self.result_expired_at is not None:
            result_error = replies.CodedError.from_json(result_expired(self))
        elif self.result_damage is not None:
            result_error = replies.CodedError.from_json(self.result_damage)
        return replies.Job(
            job_id=self.job_id,
            state=self.state,
            tenant=self.tenant,
            shots=request.shots,
            seed=request.seed,
            priority=self.policy.priority,
            created_at=self.created_at,
            started_at=self.started_at,
            finished_at=self.finished_at,
            error=None if error is None else replies.CodedError.from_json(error),
            result=self.result if result else UNSET,
            cached_from=UNSET if self.cached_from is None else self.cached_from,
            machine=UNSET if request.machine is None else request.machine.record(),
            result_expired_at=UNSET if self.result_expired_at is None else self.result_expired_at,
            result_error=result_error,
        )


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
    """An unguessable id that follows time: ``prefix`` + ``_`` + 24 characters, the time
    in milliseconds (8 characters, 48 bits) and then 12 random bytes (16 characters, 96
    bits), e.g. a job id.

    The time is spelt in :data:`_SORTED`, the base64url characters in ASCII order, so an
    id made later sorts after one made earlier (by milliseconds; those of one millisecond
    in any order). So the ids of a table's primary key are added at its index's right
    end; random ids would each write a leaf of their own, anywhere, at each commit. The
    random bytes are the operating system's (:func:`os.urandom`), as
    :func:`secrets.token_urlsafe` draws them, drawn for :data:`_IDS_AHEAD` ids at once
    (a child process forgets the parent's, drawn before the fork). Every character is a
    base64url one: the token decodes as 18 bytes, as ids of 18 random bytes did.

    >>> first, second = new_id("job"), new_id("job")
    >>> first != second and len(first) == len(second) == len("job_") + 24
    True
    >>> first[:12] <= second[:12]
    True
    """
    try:
        token = _IDS.pop()
    except IndexError:
        text = base64.urlsafe_b64encode(os.urandom(12 * _IDS_AHEAD)).decode("ascii")
        _IDS.extend(text[at : at + 16] for at in range(0, len(text), 16))
        token = _IDS.pop()
    now = time.time_ns() // 1_000_000
    if now != _NOW[0]:
        _NOW[0] = now
        _NOW[1] = (
            base64.urlsafe_b64encode(now.to_bytes(6, "big")).decode("ascii").translate(_TO_SORTED)
        )
    return f"{prefix}_{_NOW[1]}{token}"


#: The base64url characters in ASCII order (``-``, digits, capitals, ``_``, small
#: letters): an id's time is spelt in these, digit by digit, so ids sort as their times.
_SORTED = "-0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ_abcdefghijklmnopqrstuvwxyz"
_TO_SORTED = str.maketrans(
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_", _SORTED
)
#: The millisecond of the last id made, and its 8 characters.
_NOW: list[Any] = [-1, ""]
#: How many ids' random bytes :func:`new_id` draws at once, and those left.
_IDS_AHEAD = 64
_IDS: list[str] = []
os.register_at_fork(after_in_child=_IDS.clear)


#: The keys of ``SET_POLICY`` the kernel honours, and the ``q_submit`` policy key each sets.
GRAPH_POLICY_KEYS: Mapping[str, str] = {
    "priority": "priority",
    "deadline": "deadline",
    "code_distance": "profile",
    "error_budget": "error_budget",
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
    whole jobs):

    - ``priority`` (0..9, as a submit's);
    - ``deadline`` in kernel epochs from now;
    - ``code_distance`` for qubits whose ``ALLOC_LQ`` names no profile (the machine's
      code family at that distance; the QEC layer checks it fits);
    - ``error_budget`` (the idle logical error the shared machine may give it, in
      (0, 1]).

    A key the submit's policy sets wins over the program's.

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
        elif key == "error_budget":
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value <= 1:
                raise InvalidArgument(
                    f"SET_POLICY node {node_id!r}: error_budget must be a number in (0, 1], "
                    f"got {value!r}",
                    key="SET_POLICY.error_budget",
                    node=node_id,
                )
            changes["error_budget"] = float(value)
        else:
            family = parse_profile(machine_profile).family
            changes["profile"] = str(Profile(family=family, distance=int(value)))
    return msgspec.structs.replace(policy, **changes) if changes else policy


__all__ = [
    "ACTIVE_STATES",
    "CANCELLED",
    "COMPLETED",
    "FAILED",
    "FINAL_STATES",
    "QUEUED",
    "RUNNING",
    "STATES",
    "TIMED_OUT",
    "VALIDATING",
    "Job",
    "error_json",
    "honour_set_policy",
    "new_id",
    "parse_policy",
    "result_expired",
    "target_options",
]
