"""A job's run as one typed value: the run request, from submit to the engine.

A :class:`RunRequest` says everything that decides a run's result. That is the program
(by the SHA-256 of its QVM JSON text) and the target that runs it
(:mod:`qmk.execution.target`). It is shots, seed, and the engine asked for and its
precision. It is the physics: noise on or off, the qubit parameter set, the default code
profile, a noise model's text, a calibration. Custom qubit parameters and a calibration
travel as their JSON (:data:`PhysicsJSON`): the kernel holds and stores them as such, and
loads no QEC value; the QEC layer makes the values from it where a model is built
(:func:`qmk.qec.values.qubit_of`, :func:`~qmk.qec.values.calibration_of`), and checks
them where they enter (a policy read, an ingest, a config). It is the changes the kernel's fault
policies made to the program (:class:`Rewrite`). A kernel job adds its :class:`Policy`
and the W3C trace context of its run span; a part of a split job says which part. It is
frozen: a change (a fault policy's, a part's) makes a new copy with
``msgspec.structs.replace``.

The kernel builds it once at admission and stores it with the job. It hands it to the
worker with the program text, and records it in the job's attestation (its fields are
the attest line's). Replay reads it back. That is one schema (msgspec) end to end, so
what runs, what is stored and what is attested cannot drift apart. ``qmk run`` builds
the same value from its options (:func:`qmk.execution.runs.build_request`).

>>> import msgspec
>>> request = RunRequest(program_digest="ab" * 32, shots=100, seed=7)
>>> request.target, request.noise, request.profile
('logical', True, 'logical:surface_code(d=9)')
>>> RunRequest.from_json(request.to_json()) == request
True
>>> run_key(request) == run_key(msgspec.structs.replace(request, trace_context="00-x"))
True
>>> run_key(request) == run_key(msgspec.structs.replace(request, seed=8))
False
>>> run_key(request) == run_key(msgspec.structs.replace(request, target="lattice-surgery"))
False

**The one builder.** Every entry turns its user's parameters into a request with
:meth:`RunRequest.build`, whose keywords are the one list of a run's settings. The
kernel's admission calls it, whatever wire the submit came by. So does every in-process
run, through :func:`qmk.execution.runs.build_request` (which reads files and noise-model
objects first). Those are ``qmk run``, ``qmk.run``, ``QMKBackend`` and the estimator, the
PennyLane device, the workflows, the assistant's ``run`` tool and the audit's replay.
It checks shots, seed, precision and profile once. Shots and seed each have one range
(:data:`qmk.defaults.MAX_SHOTS`, :data:`qmk.defaults.SEED_BOUND`). A missing seed is
drawn from the one seed source (:func:`draw_seed`, 63 bits). A precision is read through
the one precision map (:data:`qmk.defaults.PRECISION_DTYPES`, :func:`precision_of`).

>>> built = RunRequest.build(program_digest="ab" * 32, shots=10, precision="complex64")
>>> built.precision, 0 <= built.seed < defaults.SEED_BOUND
('single', True)
>>> RunRequest.build(program_digest="ab" * 32, shots=0)
Traceback (most recent call last):
...
qmk.errors.InvalidArgument: QS1012 invalid-argument: shots must be an integer 1..10000000, got 0
"""

from __future__ import annotations

import hashlib
import json
import secrets
from collections.abc import Mapping
from typing import TYPE_CHECKING, Annotated, Any, Literal

import msgspec

from qmk import defaults
from qmk.errors import InvalidArgument, QMKError
from qmk.memo import Memo
from qmk.qvm.profiles import ProfileError, parse_profile
from qmk.values import ErrorFactory, convert

if TYPE_CHECKING:  # the kernel makes requests without one (its physics are a job's)
    from qmk.qec.values import Calibration, QubitParams

#: The target a request names when it names none: the gate-level logical machine.
DEFAULT_TARGET = defaults.TARGET
#: What a target's name looks like (the registry, :mod:`qmk.execution.target`, says
#: which exist): lower-case words joined by hyphens.
TARGET_PATTERN = "^[a-z][a-z0-9]*(-[a-z0-9]+)*$"

#: A QEC value as a request carries it: the JSON of a :class:`~qmk.qec.values.QubitParams`
#: or a :class:`~qmk.qec.values.Calibration` (their ``to_json()``), checked where it entered.
PhysicsJSON = dict[str, Any]

#: A precision an engine is asked for (``None``: the engine's own).
Precision = Literal["single", "double"]

#: A run's shots and seed, in the one range every entry checks (:func:`check_shots`,
#: :func:`check_seed`); a struct field of either type refuses what they refuse.
Shots = Annotated[int, msgspec.Meta(ge=1, le=defaults.MAX_SHOTS)]
Seed = Annotated[int, msgspec.Meta(ge=0, le=defaults.SEED_BOUND - 1)]
#: A deadline in unix seconds: also refuses inf, nan and 10**400 (no overflow).
_SECONDS = Annotated[float, msgspec.Meta(ge=-(2**53), le=2**53)]
_TIMEOUT_MS = Annotated[int, msgspec.Meta(ge=1, le=defaults.MAX_TIMEOUT_MS)]
_PRIORITY = Annotated[int, msgspec.Meta(ge=0, le=9)]
_NAME = Annotated[str, msgspec.Meta(min_length=1)]


def _invalid(message: str, key: str) -> QMKError:
    """A bad run parameter, as the kernel refuses one (``QS1012 invalid-argument``)."""
    return InvalidArgument(message, key=key)


class _Value(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True, gc=False):
    """A frozen, keyword-only value that refuses keys it does not know.

    Never tracked by the collector (``gc=False``, its subclasses too). A value holds
    plain data and other values, never a cycle. A kernel keeps two or three of them
    (a run request, its policy, its schedule on the machine) for each job it holds,
    queued or finished. Tracked, they would all be walked by each collection."""


class Schedule(_Value, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """When and for how long a job may run: what every job's policy holds (QVM and
    device jobs alike)."""

    priority: _PRIORITY = defaults.PRIORITY
    #: Unix seconds; past it the job is TIMED_OUT, queued or running.
    deadline: _SECONDS | None = None
    #: The run-time limit of one attempt, in milliseconds.
    timeout_ms: _TIMEOUT_MS = round(defaults.JOB_TIMEOUT_S * 1000)

    @property
    def timeout_s(self) -> float:
        """``timeout_ms`` in seconds."""
        return self.timeout_ms / 1000


class Policy(Schedule, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """How a job wants to run: the ``policy`` object of ``q_submit``.

    ``engine``, ``noise``, ``qubit``, ``profile``, ``precision``, ``noise_model`` and
    ``calibration`` are what the tenant asked (None: the machine's); the run request
    holds what the kernel resolved them to. ``noise_model`` is the text ``qmk run
    --noise-model`` takes and ``calibration`` the fit ``qmk qec calibrate`` writes
    (:func:`qmk.kernel.records.jobs.parse_policy` reads both as ``qmk run`` does; the kernel's
    ``[machine]`` limits apply at admission). ``cache`` false: the job neither is
    answered from an earlier job's stored result nor answers a later one
    (:mod:`qmk.kernel.admit.cache`). ``channels`` binds the program's channel names to open
    channel ids. Which target runs the job is the run request's ``target``; its own
    options (a device job's ``backend``...) are ``RunRequest.target_options``.
    """

    #: One of :data:`qmk.defaults.ENGINES` (checked by :func:`qmk.kernel.records.jobs.parse_policy`,
    #: which names the nearest engine of a misspelt one).
    engine: _NAME | None = None
    noise: bool = defaults.NOISE
    qubit: _NAME | None = None
    profile: _NAME | None = None
    precision: Precision | None = None
    channels: dict[str, str] = {}
    #: Physical error rates in place of the machine's (``parse_noise_model`` text).
    noise_model: _NAME | None = None
    #: A fitted (a, p*) in place of the machine's calibration (``qmk qec calibrate``'s
    #: JSON, checked by :func:`qmk.kernel.records.jobs.parse_policy`).
    calibration: PhysicsJSON | None = None
    cache: bool = True
    #: The idle logical error the shared machine may give the job at most (None: the
    #: machine's ``[machine] error_budget``); docs/machine.md.
    error_budget: Annotated[float, msgspec.Meta(gt=0, le=1)] | None = None

    def to_json(self) -> dict[str, Any]:
        """The policy as ``q_submit`` takes it (``precision``, ``noise_model`` and
        ``calibration`` only when set)."""
        out: dict[str, Any] = msgspec.to_builtins(self)
        for key in _UNSET_LEFT_OUT:
            if out[key] is None:
                del out[key]
        return out


def submit_policy(**given: Any) -> dict[str, Any] | None:
    """The ``policy`` object of a ``q_submit`` that sets the keys ``given`` (None values
    left out: the kernel's default), checked here against :class:`Policy`'s schema, as
    the kernel checks it; None when it sets nothing. A key given is sent even at its
    default value: the kernel lets a key the submit sets win over a program's
    ``SET_POLICY`` hint.

    Raises:
        InvalidArgument: an unknown key or a value out of range (``key``: ``policy.<key>``).

    >>> submit_policy(priority=7, engine=None, noise=False)
    {'priority': 7, 'noise': False}
    >>> submit_policy(engine=None) is None
    True
    """
    data = {key: msgspec.to_builtins(value) for key, value in given.items() if value is not None}
    convert(data, Policy, where="policy")
    return data or None


#: The keys of a policy's JSON left out when unset (None).
_UNSET_LEFT_OUT = ("precision", "noise_model", "calibration", "error_budget")


class Rewrite(_Value, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """What the kernel's fault policies changed in a job's program; empty when nothing
    (:mod:`qmk.kernel.admit.faults`). The program's text with the changes is
    :func:`qmk.execution.rewritten.rewritten`'s.

    Attributes:
        profiles: canonical profile -> the one ALLOC_LQ nodes naming it run with.
        channels: OPEN_CHAN node id -> the Werner fidelity its Bell pair is delivered at.
        idle: measurement node id -> idle logical cycles added after it (per qubit).
        fences: the ids of the nodes a ``FENCE_EPOCH`` is added after.
    """

    profiles: dict[str, str] = {}
    channels: dict[str, float] = {}
    idle: dict[str, int] = {}
    fences: tuple[str, ...] = ()

    def __bool__(self) -> bool:
        return bool(self.profiles or self.channels or self.idle or self.fences)

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = msgspec.to_builtins(self)
        return out

    @classmethod
    def from_json(cls, data: Mapping[str, Any] | None) -> Rewrite:
        """A rewrite from its JSON (None: the empty one)."""
        rewrite: Rewrite = convert(data or {}, cls, where="rewrite")
        return rewrite


def canonical_profile(profile: str) -> str:
    """``profile`` as ``logical:<family>(d=<distance>)`` (aliases and spacing resolved).

    Raises:
        QECError: ``QC102 unknown-profile`` for a profile that does not parse, names an
            unknown family or a distance out of range.
    """
    try:
        return str(parse_profile(profile))
    except ProfileError as exc:
        from qmk.qec.errors import QECError  # the QC family: where a profile is refused

        raise QECError.of("unknown-profile", str(exc), profile=profile) from None


class MachineRun(_Value, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """A kernel job's schedule on the shared machine, fixed before its outcomes are
    computed (``docs/machine.md``): where and when it ran in machine time, what it
    waited by cause, and the idle cycles those waits put on its qubits.

    Attributes:
        arrival_cycle, start_cycle, end_cycle: in logical cycles of machine time.
        tiles: the tiles it held; module: the module it ended on.
        wait_cycles: cycles waited by cause (``queue``, ``factory``, ``routing``,
            ``link``, ``decoder``, ``preempted``), whole cycles.
        idle_logical_error: the probability that its waits (all but ``queue``) added a
            logical error to its patches (the machine's ``1 - (1 - p_L)^(n W)``).
        error_budget: the whole logical error the job was allowed (None: no bound);
            its record says whether it stayed within (``within_budget``).
        preemptions: how many times the machine stopped it at a fence.
        code_distance, block: where its patches ran, the distance and block the kernel
            placed it at (0, "": not stated, a record of a kernel from before they were).
        own_logical_error: its own memory and gate error over its run there; its
            record adds ``added_logical_error`` (what its waits added: the idle error)
            and ``total_logical_error``, either failing (0 in a record from before: its
            total is then its idle error, as that kernel's budget read it).
        idle: node id -> logical cycles every qubit live after that node sat idle
            waiting. Those are the waits of the footprint step after the node; ``queue``
            waits come before any qubit lives. With noise on, the executor puts one Pauli
            channel per live qubit there: the qubit's code's error for that many cycles
            (:meth:`qmk.qec.logical.LogicalModel.pauli_error`).

    >>> run = MachineRun(arrival_cycle=0, start_cycle=100, end_cycle=180, tiles=9,
    ...                  module=0, wait_cycles={"queue": 100, "factory": 30},
    ...                  idle_logical_error=1e-5, idle={"t": 30.0})
    >>> run.record()["wait_cycles"]["factory"], "idle" in run.record()
    (30, False)
    """

    arrival_cycle: Annotated[int, msgspec.Meta(ge=0)]
    start_cycle: Annotated[int, msgspec.Meta(ge=0)]
    end_cycle: Annotated[int, msgspec.Meta(ge=0)]
    tiles: Annotated[int, msgspec.Meta(ge=0)]
    module: Annotated[int, msgspec.Meta(ge=0)]
    wait_cycles: dict[str, Annotated[int, msgspec.Meta(ge=0)]] = {}
    idle_logical_error: Annotated[float, msgspec.Meta(ge=0, le=1)] = 0.0
    error_budget: Annotated[float, msgspec.Meta(gt=0, le=1)] | None = None
    preemptions: Annotated[int, msgspec.Meta(ge=0)] = 0
    code_distance: Annotated[int, msgspec.Meta(ge=0)] = 0
    block: str = ""
    own_logical_error: Annotated[float, msgspec.Meta(ge=0, le=1)] = 0.0
    idle: dict[str, Annotated[float, msgspec.Meta(ge=0)]] = {}

    @property
    def total_logical_error(self) -> float:
        """Its whole logical error: its own and what its waits added, either failing.

        >>> MachineRun(arrival_cycle=0, start_cycle=0, end_cycle=9, tiles=4, module=0,
        ...     idle_logical_error=0.5, own_logical_error=0.5).total_logical_error
        0.75
        """
        own, added = self.own_logical_error, self.idle_logical_error
        return own + added - own * added

    def record(self) -> dict[str, Any]:
        """The job's ``machine`` record as telemetry reports it (without ``idle``; with
        ``added_logical_error``, ``total_logical_error`` and ``within_budget``, whether
        its whole error stayed within its budget, None without one).

        >>> run = MachineRun(arrival_cycle=0, start_cycle=0, end_cycle=9, tiles=4,
        ...     module=0, idle_logical_error=2e-4, error_budget=1e-3, code_distance=13,
        ...     block="fast", own_logical_error=9e-4)
        >>> r = run.record()
        >>> r["block"], r["code_distance"], r["added_logical_error"], r["within_budget"]
        ('fast', 13, 0.0002, False)
        """
        out: dict[str, Any] = msgspec.to_builtins(self)
        del out["idle"]
        total = self.total_logical_error
        out["added_logical_error"] = self.idle_logical_error
        out["total_logical_error"] = total
        budget = self.error_budget
        out["within_budget"] = None if budget is None else total <= budget
        return out


#: The fields of a run request that decide its physics (what a checkpoint keeps: an
#: execution state only continues under the physics its run started with).
PHYSICS_FIELDS = ("qubit", "profile", "noise_model", "calibration", "rewrite", "machine")


class RunRequest(_Value, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """One run of a program: everything that decides its result (see the module
    docstring). Its JSON is the attest line's fields (:mod:`qmk.kernel.security.attest`)."""

    #: SHA-256 (hex) of the program's QVM JSON text as submitted (before any rewrite).
    #: ``""`` in a request built in process for a run nobody reads it of (``qmk run``):
    #: the run digests its program where it needs its key (:func:`run_key`).
    program_digest: Annotated[str, msgspec.Meta(pattern="^[0-9a-f]{64}$")]
    #: The target that compiles and runs the program (:mod:`qmk.execution.target`):
    #: ``logical`` (the gate-level logical machine), ``lattice-surgery`` or
    #: ``neutral-atom``. A request stored before it had one reads as ``logical``, and
    #: :func:`run_key` leaves ``logical`` out, so such a run keeps its key.
    target: Annotated[str, msgspec.Meta(pattern=TARGET_PATTERN)] = DEFAULT_TARGET
    #: The target's own options (the keys its ``TargetSpec.options`` names: a
    #: lattice-surgery run's ``block``, a device job's ``backend``...), checked by the
    #: target when it compiles; empty: its defaults.
    target_options: dict[str, Any] = {}
    shots: Shots
    seed: Seed
    #: The engine asked for (None: the router's choice); in JSON ``engine_requested``,
    #: beside the attest line's ``engine``, the one that ran.
    engine: _NAME | None = msgspec.field(default=None, name="engine_requested")
    precision: Precision | None = None
    #: Further keyword arguments of the engine (``qmk run``'s; none for kernel jobs).
    engine_options: dict[str, Any] = {}
    #: Inject logical errors (from the profiles and the qubit, or ``noise_model``).
    noise: bool = defaults.NOISE
    #: The physical qubit parameter set: a name, or custom values' JSON (a calibration
    #: ingest).
    qubit: _NAME | PhysicsJSON = defaults.QUBIT
    #: The code profile of qubits whose ALLOC_LQ names none.
    profile: _NAME = defaults.PROFILE
    #: Physical error rates in place of the qubit's (``parse_noise_model`` text).
    noise_model: str | None = None
    #: A fitted (a, p*) for the profiles of its family and instruction set (its JSON).
    calibration: PhysicsJSON | None = None
    #: Whether the calibration must apply to some qubit of the program (``qmk run
    #: --calibration``); a machine-wide one applies where it fits.
    require_calibration: bool = False
    #: What the kernel's fault policies changed in the program (None: nothing).
    rewrite: Rewrite | None = None
    #: The job's schedule on the kernel's shared machine (None: a private machine, as
    #: every run outside a kernel): its waits become idle noise on its qubits. The kernel
    #: sets it once the schedule has ended, before the worker runs the job.
    machine: MachineRun | None = None
    #: Save the state, unasked, at a fence after this many operations (0: never).
    checkpoint_every_ops: Annotated[int, msgspec.Meta(ge=0)] = 0
    #: ``(k, n)``: part k of n of a run split over workers (:mod:`qmk.execution.parts`).
    part: tuple[int, int] | None = None
    #: The kernel job's policy (None: a run outside the kernel).
    policy: Policy | None = None
    #: The W3C ``traceparent`` of the kernel's run span (None: untraced).
    trace_context: str | None = None

    def to_json(self) -> dict[str, Any]:
        """The request as plain JSON data."""
        out: dict[str, Any] = msgspec.to_builtins(self)
        return out

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> RunRequest:
        """A request from its JSON (an attest line's fields; unknown keys are refused).

        Raises:
            InvalidArgument: not a run request (the message names the key).
        """
        request: RunRequest = convert(data, cls, where="request")
        return request

    @classmethod
    def build(
        cls,
        *,
        program_digest: str,
        target: str = DEFAULT_TARGET,
        target_options: Mapping[str, Any] | None = None,
        shots: Any = defaults.SHOTS,
        seed: Any = None,
        engine: str | None = None,
        precision: Any = None,
        engine_options: Mapping[str, Any] | None = None,
        noise: bool = defaults.NOISE,
        qubit: str | QubitParams | PhysicsJSON = defaults.QUBIT,
        profile: str = defaults.PROFILE,
        noise_model: str | None = None,
        calibration: Calibration | PhysicsJSON | None = None,
        require_calibration: bool = False,
        part: tuple[int, int] | None = None,
        policy: Policy | None = None,
        error: ErrorFactory = _invalid,
    ) -> RunRequest:
        """The request of a user's parameters: the one builder every entry calls (see
        the module docstring).

        Args:
            program_digest: :func:`program_digest` of the program's text.
            shots: checked by :func:`check_shots`.
            seed: checked by :func:`check_seed`; None draws one (:func:`draw_seed`).
            precision: ``"single"``/``"double"`` or a dtype (:func:`precision_of`);
                ``engine_options``' ``dtype`` says the same, and is taken out of them.
            profile: checked by :func:`canonical_profile`.
            qubit, calibration: a value of the QEC layer or its JSON (checked where it
                entered), held as the JSON (:func:`physics_json`).
            target, target_options, engine, noise, noise_model, require_calibration,
                part, policy: the fields of these names.
            error: makes the error of a bad shots, seed or precision from its message
                and key. So there is one check, raising in the caller's family. The
                default is the kernel's, :class:`~qmk.errors.InvalidArgument`; the
                executor's is ``QE105 engine-misuse``.

        Raises:
            InvalidArgument: shots, seed or precision out of range (``key`` names which),
                or a precision and a ``dtype`` that disagree (or ``error``'s).
            QECError: ``QC102`` for a profile that does not parse.
        """
        shots = check_shots(shots, error=error)
        seed = draw_seed() if seed is None else check_seed(seed, error=error)
        options = dict(engine_options or {})
        asked = precision_of(precision, error=error)
        dtype = precision_of(options.pop("dtype", None), key="engine_options.dtype", error=error)
        if asked is not None and dtype is not None and asked != dtype:
            raise error(
                f"precision {asked!r} and engine_options dtype {dtype!r} disagree: give one",
                "precision",
            )
        canonical_profile(profile)  # QC102 before any work
        return cls(
            program_digest=program_digest,
            target=target,
            target_options=dict(target_options or {}),
            shots=shots,
            seed=seed,
            engine=engine,
            precision=asked or dtype,
            engine_options=options,
            noise=noise,
            qubit=qubit if isinstance(qubit, str) else physics_json(qubit),
            profile=profile,
            noise_model=noise_model,
            calibration=None if calibration is None else physics_json(calibration),
            require_calibration=require_calibration,
            part=part,
            policy=policy,
        )

    def physics(self) -> dict[str, Any]:
        """The physics of this run as plain JSON (:data:`PHYSICS_FIELDS`), for the
        checkpoints its execution states are saved under."""
        out = {name: msgspec.to_builtins(getattr(self, name)) for name in PHYSICS_FIELDS}
        if out["machine"] is None:  # as states saved before runs had a machine schedule
            del out["machine"]
        return out

    def with_physics(self, physics: Mapping[str, Any]) -> RunRequest:
        """A copy under ``physics`` (:meth:`physics`'s JSON, a checkpoint's)."""
        fields = {name: physics.get(name) for name in PHYSICS_FIELDS}
        return RunRequest.from_json({**self.to_json(), **fields})


def physics_json(value: QubitParams | Calibration | Mapping[str, Any]) -> PhysicsJSON:
    """A QEC value as a request carries it: its ``to_json()`` (JSON passes as it is).

    >>> physics_json({"kind": "qmk.qec.calibration", "family": "surface_code"})["family"]
    'surface_code'
    """
    if isinstance(value, Mapping):
        return dict(value)
    out: PhysicsJSON = value.to_json()
    return out


#: Fields of a request that do not change its result: a checkpoint of one run resumes
#: under any of these (a new trace, another cadence of saves, the kernel's policy).
_NOT_RESULT = ("policy", "trace_context", "checkpoint_every_ops")


def run_key(request: RunRequest, **more: Any) -> str:
    """The digest of what decides ``request``'s result, and of ``more`` (the engine the
    router chose and its options, an initial state: plain JSON); an execution state saved
    by one run resumes only in a run of the same key.
    """
    return hashlib.sha256(run_key_text(request, **more).encode("utf-8")).hexdigest()


def run_key_text(request: RunRequest, **more: Any) -> str:
    """The text :func:`run_key` digests (sorted keys, no spaces: ``"seed":`` and the
    seed's digits appear in it as such)."""
    data = {k: v for k, v in request.to_json().items() if k not in _NOT_RESULT}
    if data["target"] == DEFAULT_TARGET:  # the keys of runs made before targets existed
        del data["target"]
    if not data["target_options"]:
        del data["target_options"]
    # of a machine schedule only its idle cycles decide the result, and only with noise
    # on: the same run waited nowhere has the key of a run on a private machine
    machine = request.machine
    if machine is None or not (request.noise and machine.idle):
        del data["machine"]
    else:
        data["machine"] = {"idle": data["machine"]["idle"]}
    return json.dumps({**data, **more}, sort_keys=True, separators=(",", ":"), default=str)


def draw_seed() -> int:
    """A fresh seed from the one seed source: :data:`qmk.defaults.SEED_BITS` bits of the
    operating system's randomness (a run that names no seed reports the one drawn).

    >>> 0 <= draw_seed() < defaults.SEED_BOUND
    True
    """
    return secrets.randbits(defaults.SEED_BITS)


def _integer(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def check_shots(shots: Any, *, key: str = "shots", error: ErrorFactory = _invalid) -> int:
    """``shots`` if it is an integer ``1..MAX_SHOTS`` (:data:`qmk.defaults.MAX_SHOTS`).

    Raises:
        InvalidArgument: otherwise (``key`` names it), or what ``error(message, key)``
            makes: the caller's family (the executor's ``QE105 engine-misuse``).

    >>> check_shots(1024)
    1024
    """
    if not _integer(shots) or not 1 <= shots <= defaults.MAX_SHOTS:
        raise error(f"{key} must be an integer 1..{defaults.MAX_SHOTS}, got {shots!r}", key)
    return int(shots)


def check_seed(seed: Any, *, key: str = "seed", error: ErrorFactory = _invalid) -> int:
    """``seed`` if it is an integer ``0..2**63-1`` (below :data:`qmk.defaults.SEED_BOUND`).

    Raises:
        InvalidArgument: otherwise (``key`` names it), or what ``error(message, key)``
            makes.

    >>> check_seed(7)
    7
    """
    if not _integer(seed) or not 0 <= seed < defaults.SEED_BOUND:
        raise error(f"{key} must be an integer 0..2**{defaults.SEED_BITS}-1, got {seed!r}", key)
    return int(seed)


def precision_of(
    value: Any, *, key: str = "precision", error: ErrorFactory = _invalid
) -> Precision | None:
    """The precision ``value`` names: ``"single"`` or ``"double"``, or the dtype of either
    in :data:`qmk.defaults.PRECISION_DTYPES` (``"complex64"``, ``numpy.complex128``, a
    ``numpy.dtype``); None for None (the engine's own).

    Raises:
        InvalidArgument: anything else (``key`` names it), or what ``error(message,
            key)`` makes.

    >>> precision_of("complex64"), precision_of("double"), precision_of(None)
    ('single', 'double', None)
    """
    if value is None:
        return None
    name = value if isinstance(value, str) else getattr(value, "name", None)
    if name is None and isinstance(value, type):
        name = value.__name__  # numpy's scalar types: numpy.complex64
    for precision, dtype in defaults.PRECISION_DTYPES.items():
        if name in (precision, dtype):
            return precision  # type: ignore[return-value]
    known = ", ".join(f"{p} ({d})" for p, d in defaults.PRECISION_DTYPES.items())
    raise error(f"{key} must be one of {known}, not {value!r}", key)


#: A text from this many characters on has its digest kept (:data:`_DIGESTS`).
DIGEST_KEPT_FROM = 64 * 1024
#: The digests of the big texts hashed last, by the text object itself: the kernel hashes
#: a big program's text in the thread that reads it, so its admission and its row on the
#: event loop find the digest made, and do not hash a big text again on the loop.
_DIGESTS: Memo[str] = Memo(4)


def program_digest(text: str) -> str:
    """The SHA-256 (hex) of a program's text, as a run request names it.

    That of a text of :data:`DIGEST_KEPT_FROM` characters or more is kept for the very
    same text object (a str never changes), for the next few texts.

    >>> program_digest("{}") == program_digest("{" + "}")
    True
    """
    if len(text) < DIGEST_KEPT_FROM:
        return hashlib.sha256(text.encode("utf-8")).hexdigest()
    return _DIGESTS.get(id(text), text, lambda: hashlib.sha256(text.encode("utf-8")).hexdigest())


__all__ = [
    "DEFAULT_TARGET",
    "PHYSICS_FIELDS",
    "TARGET_PATTERN",
    "MachineRun",
    "PhysicsJSON",
    "Policy",
    "Precision",
    "Rewrite",
    "RunRequest",
    "Schedule",
    "Seed",
    "Shots",
    "canonical_profile",
    "check_seed",
    "check_shots",
    "draw_seed",
    "physics_json",
    "precision_of",
    "program_digest",
    "run_key",
    "submit_policy",
]
