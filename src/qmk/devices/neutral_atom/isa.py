"""The neutral-atom ISA: the one table of ops and gates, its versions, and program parsing.

Public API (stable names; compilers, the kernel and workflows build on them):

- :data:`VERSIONS`, :data:`CURRENT`, :class:`IsaVersion`, :func:`parse_version` -- the
  ISA versions the device implements (``1.0``, ``1.1`` and ``1.2``, whose ``Evolve`` is the
  analog Rydberg drive of :mod:`.analog`); anything else is refused with ``QD102`` and
  the list; a job without ``isa_version`` is read as :data:`CURRENT` (``1.1``: a digital
  job keeps its meaning; an analog job says ``"isa_version": "1.2"``);
- :data:`OPS` (name -> :class:`OpSpec`) -- every instruction: its wire fields, the version
  that introduced it, its kind (:class:`OpKind`) and a one-line description;
- :data:`GATES` (name -> :class:`GateSpec`) -- every gate ``ApplyGate`` may name: arity,
  parameters, the version that introduced it, its lowering onto engine gates
  (:data:`qmk.engines.gates.GATES`), Clifford-ness, default duration;
- :class:`Instruction` and :func:`parse_program` -- a wire-form program (a list of
  ``{"op": ...}`` objects) as frozen values, checked against the table; ``to_json()``
  writes the wire form back;
- :func:`ops_of`, :func:`gates_of` -- what one version offers.

The JSON schema (:mod:`qmk.devices.neutral_atom.schema`), the validators, the scheduler,
the emulator's lowering, ``qmk device isa`` and the ISA table of ``docs/neutral-atom.md``
all read these two tables; nothing else lists ops or gates.

Units: durations in ns, angles in radians, Pulse detuning in rad/us (a Pulse is a
Z rotation by ``detuning * duration``); an ``Evolve``'s waveforms are ``[[t_ns, value], ...]``
with values in rad/us, piecewise linear between the points.

>>> [str(v) for v in VERSIONS], str(CURRENT)
(['1.0', '1.1', '1.2'], '1.1')
>>> GATES["U3"].params, GATES["U3"].since, GATES["CZ"].arity
(('theta', 'phi', 'lambda'), IsaVersion(major=1, minor=1), 2)
>>> [i.op for i in parse_program([{"op": "AllocArray", "n_qubits": 2},
...     {"op": "ApplyGate", "name": "H", "targets": [0], "param": 0.0},
...     {"op": "Measure", "targets": [0, 1]}])]
['AllocArray', 'ApplyGate', 'Measure']
>>> parse_program([{"op": "Reset", "targets": [0]}], version=VERSIONS[0])
Traceback (most recent call last):
...
qmk.devices.errors.DeviceError: QD106 op-unknown: instruction #0: op 'Reset' needs ISA 1.1 ...
"""

from __future__ import annotations

import enum
import itertools
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

from qmk.devices.errors import DeviceError
from qmk.engines.gates import GATES as ENGINE_GATES


@dataclass(frozen=True, slots=True, order=True)
class IsaVersion:
    """An ISA version, ``major.minor``."""

    major: int
    minor: int

    def __str__(self) -> str:
        return f"{self.major}.{self.minor}"

    def to_json(self) -> dict[str, int]:
        """The wire form: ``{"major": 1, "minor": 1}``."""
        return {"major": self.major, "minor": self.minor}


#: Every version the device implements, oldest first.
VERSIONS: tuple[IsaVersion, ...] = (IsaVersion(1, 0), IsaVersion(1, 1), IsaVersion(1, 2))
_V10, _V11, _V12 = VERSIONS
#: The version a job without ``isa_version`` is read as (the last digital one: a job
#: written before 1.2 keeps its meaning; an analog job names 1.2).
CURRENT: IsaVersion = _V11


def supported_versions() -> str:
    """``"1.0, 1.1, 1.2"``: the versions, for messages."""
    return ", ".join(str(v) for v in VERSIONS)


def parse_version(value: Any) -> IsaVersion:
    """An ``isa_version`` as the wire gives it (``{"major", "minor"}``, ``"1.1"`` or None).

    Raises:
        DeviceError: ``QD101`` for a malformed value, ``QD102`` for a version not in
            :data:`VERSIONS` (the message lists them).
    """
    if value is None:
        return CURRENT
    if isinstance(value, Mapping) and set(value) <= {"major", "minor"}:
        major, minor = value.get("major"), value.get("minor", 0)
    elif isinstance(value, str) and value.count(".") == 1:
        head, _, tail = value.partition(".")
        major, minor = (int(head), int(tail)) if head.isdigit() and tail.isdigit() else (None, None)
    else:
        major = minor = None
    if not (_is_int(major) and _is_int(minor)):
        raise DeviceError.of(
            "job-malformed",
            f"isa_version {value!r} is not {{'major': M, 'minor': N}} or 'M.N'",
            field="isa_version",
        )
    version = IsaVersion(int(major), int(minor))  # type: ignore[arg-type]
    if version not in VERSIONS:
        raise DeviceError.of(
            "isa-version-unsupported",
            f"ISA {version} is not supported; supported: {supported_versions()}",
            version=str(version),
            supported=[str(v) for v in VERSIONS],
        )
    return version


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


# --------------------------------------------------------------------------- ops


class OpKind(str, enum.Enum):
    """What an instruction does; the scheduler, validators and emulator dispatch on it."""

    ALLOC = "alloc"
    GATE = "gate"
    MEASURE = "measure"
    RESET = "reset"
    MOVE = "move"
    WAIT = "wait"
    PULSE = "pulse"
    EVOLVE = "evolve"


class FieldType(str, enum.Enum):
    """The JSON type of one wire field."""

    INTEGER = "integer"
    NUMBER = "number"
    STRING = "string"
    INTEGERS = "integer list"
    NUMBERS = "number list"
    #: A number (x on a chain, legacy 1.0) or a list of 1 to 3 numbers (x, y, z).
    POSITION = "position"
    #: A piecewise-linear waveform: ``[[t_ns, value], ...]``, times increasing from 0.
    WAVEFORM = "waveform"
    #: A local detuning: ``{"atoms": [...], "scale": [...], "delta": WAVEFORM}``.
    LOCAL_DETUNING = "local detuning"


@dataclass(frozen=True, slots=True, kw_only=True)
class FieldSpec:
    """One field of an instruction's wire form."""

    name: str
    type: FieldType
    description: str
    required: bool = True
    minimum: float | None = None
    since: IsaVersion = _V10


@dataclass(frozen=True, slots=True, kw_only=True)
class OpSpec:
    """One instruction of the ISA."""

    name: str
    kind: OpKind
    fields: tuple[FieldSpec, ...]
    since: IsaVersion
    description: str

    def field(self, name: str) -> FieldSpec:
        """The field called ``name``."""
        return _FIELDS_BY_NAME[self.name][name]


_TARGETS = FieldSpec(name="targets", type=FieldType.INTEGERS, description="atom indices")

_OP_TABLE: tuple[OpSpec, ...] = (
    OpSpec(
        name="AllocArray",
        kind=OpKind.ALLOC,
        fields=(
            FieldSpec(
                name="n_qubits",
                type=FieldType.INTEGER,
                minimum=1,
                description="how many atoms, placed on the configuration's first sites",
            ),
        ),
        since=_V10,
        description="load the atom array: atoms 0..n-1 in |0> at their configured sites",
    ),
    OpSpec(
        name="ApplyGate",
        kind=OpKind.GATE,
        fields=(
            FieldSpec(name="name", type=FieldType.STRING, description="a gate of the gate table"),
            _TARGETS,
            FieldSpec(
                name="param",
                type=FieldType.NUMBER,
                required=False,
                description="the angle (radians) of a one-parameter gate",
            ),
            FieldSpec(
                name="params",
                type=FieldType.NUMBERS,
                required=False,
                since=_V11,
                description="every parameter, in the gate's order (U3: theta, phi, lambda)",
            ),
        ),
        since=_V10,
        description="apply a gate; a two-qubit gate needs connected atoms within blockade",
    ),
    OpSpec(
        name="Measure",
        kind=OpKind.MEASURE,
        fields=(_TARGETS,),
        since=_V10,
        description="measure atoms in Z; a lost atom reads -1; later gates wait out the cooldown",
    ),
    OpSpec(
        name="Reset",
        kind=OpKind.RESET,
        fields=(_TARGETS,),
        since=_V11,
        description="optically pump atoms back to |0> (a lost atom stays lost)",
    ),
    OpSpec(
        name="MoveAtom",
        kind=OpKind.MOVE,
        fields=(
            FieldSpec(name="atom", type=FieldType.INTEGER, minimum=0, description="the atom"),
            FieldSpec(
                name="position",
                type=FieldType.POSITION,
                required=False,
                description="where to: x on a chain, or [x, y] / [x, y, z]",
            ),
            FieldSpec(
                name="site",
                type=FieldType.INTEGER,
                required=False,
                since=_V11,
                description="where to, as a lattice site id (instead of position)",
            ),
        ),
        since=_V10,
        description="transport an atom (along transport edges when the profile has them)",
    ),
    OpSpec(
        name="Wait",
        kind=OpKind.WAIT,
        fields=(
            FieldSpec(
                name="duration",
                type=FieldType.NUMBER,
                minimum=0,
                description="ns; every atom idles (idle noise applies)",
            ),
        ),
        since=_V10,
        description="a barrier, then every atom idles for the duration",
    ),
    OpSpec(
        name="Pulse",
        kind=OpKind.PULSE,
        fields=(
            FieldSpec(name="target", type=FieldType.INTEGER, minimum=0, description="the atom"),
            FieldSpec(name="detuning", type=FieldType.NUMBER, description="rad/us"),
            FieldSpec(name="duration", type=FieldType.NUMBER, minimum=0, description="ns"),
        ),
        since=_V10,
        description="a detuned pulse: a Z rotation by detuning * duration on the target",
    ),
    OpSpec(
        name="Evolve",
        kind=OpKind.EVOLVE,
        fields=(
            FieldSpec(
                name="duration",
                type=FieldType.NUMBER,
                minimum=0,
                description="ns; the waveforms span [0, duration]",
            ),
            FieldSpec(
                name="omega",
                type=FieldType.WAVEFORM,
                description="Rabi frequency [[t_ns, rad/us], ...], piecewise linear",
            ),
            FieldSpec(
                name="delta",
                type=FieldType.WAVEFORM,
                description="global detuning [[t_ns, rad/us], ...], piecewise linear",
            ),
            FieldSpec(
                name="phase",
                type=FieldType.NUMBER,
                required=False,
                description="laser phase phi (rad, constant; default 0)",
            ),
            FieldSpec(
                name="local_delta",
                type=FieldType.LOCAL_DETUNING,
                required=False,
                description="extra detuning scale_k * delta_loc(t) on atoms[k]: "
                '{"atoms": [...], "scale": [...], "delta": [[t_ns, rad/us], ...]}',
            ),
        ),
        since=_V12,
        description="analog Rydberg evolution of every atom under the global drive "
        "(Omega, Delta, phi) and the van der Waals interaction C6/r^6",
    ),
)

#: Every instruction, by name.
OPS: Mapping[str, OpSpec] = MappingProxyType({spec.name: spec for spec in _OP_TABLE})
_FIELDS_BY_NAME = {spec.name: {f.name: f for f in spec.fields} for spec in _OP_TABLE}


# --------------------------------------------------------------------------- gates

#: Default gate durations when a profile's catalog does not give one (the prototype's).
DEFAULT_1Q_NS = 500.0
DEFAULT_2Q_NS = 1000.0


@dataclass(frozen=True, slots=True, kw_only=True)
class GateSpec:
    """One gate ``ApplyGate`` may name.

    Attributes:
        lower: the engine gates (:data:`qmk.engines.gates.GATES`) that carry it out, in
            order, each with the indices of this gate's parameters it takes (U3 is
            ``rz(lambda) ry(theta) rz(phi)``, equal up to a global phase).
    """

    name: str
    arity: int
    params: tuple[str, ...] = ()
    since: IsaVersion = _V10
    description: str
    lower: tuple[tuple[str, tuple[int, ...]], ...]

    def engine_gates(
        self, params: Sequence[float] = ()
    ) -> tuple[tuple[str, tuple[float, ...]], ...]:
        """The engine gates with their parameter values."""
        return tuple((gate, tuple(float(params[i]) for i in picks)) for gate, picks in self.lower)

    def is_clifford(self, params: Sequence[float] = ()) -> bool:
        """Whether the gate with these parameters is Clifford (a stabilizer backend runs it)."""
        return all(ENGINE_GATES[g].is_clifford(p) for g, p in self.engine_gates(params))

    @property
    def default_duration_ns(self) -> float:
        """Its duration when the catalog gives none."""
        return DEFAULT_1Q_NS if self.arity == 1 else DEFAULT_2Q_NS


def _fixed(name: str, arity: int, description: str, since: IsaVersion = _V10) -> GateSpec:
    return GateSpec(
        name=name,
        arity=arity,
        since=since,
        description=description,
        lower=((name.lower(), ()),),
    )


def _rotation(axis: str) -> GateSpec:
    return GateSpec(
        name=f"R{axis}",
        arity=1,
        params=("theta",),
        description=f"exp(-i theta {axis}/2)",
        lower=((f"r{axis.lower()}", (0,)),),
    )


_GATE_TABLE: tuple[GateSpec, ...] = (
    _fixed("X", 1, "Pauli X"),
    _fixed("Y", 1, "Pauli Y"),
    _fixed("Z", 1, "Pauli Z"),
    _fixed("H", 1, "Hadamard"),
    _fixed("S", 1, "phase gate, sqrt(Z)"),
    _fixed("SDG", 1, "S adjoint"),
    _fixed("T", 1, "pi/8 gate, sqrt(S)"),
    _fixed("TDG", 1, "T adjoint"),
    _rotation("X"),
    _rotation("Y"),
    _rotation("Z"),
    GateSpec(
        name="U3",
        arity=1,
        params=("theta", "phi", "lambda"),
        since=_V11,
        description="Rz(phi) Ry(theta) Rz(lambda), the general one-qubit gate",
        lower=(("rz", (2,)), ("ry", (0,)), ("rz", (1,))),
    ),
    _fixed("CZ", 2, "controlled Z: the native Rydberg-blockade entangler"),
    _fixed("CX", 2, "controlled X, control first"),
)

#: Every gate, by name (upper case on the wire; lower case is accepted).
GATES: Mapping[str, GateSpec] = MappingProxyType({spec.name: spec for spec in _GATE_TABLE})


def ops_of(version: IsaVersion) -> tuple[OpSpec, ...]:
    """The instructions of ``version``."""
    return tuple(spec for spec in OPS.values() if spec.since <= version)


def gates_of(version: IsaVersion) -> tuple[GateSpec, ...]:
    """The gates of ``version``."""
    return tuple(spec for spec in GATES.values() if spec.since <= version)


# --------------------------------------------------------------------------- analog drive

#: A piecewise-linear waveform: ``((t_ns, value), ...)``, times strictly increasing from 0.
Waveform = tuple[tuple[float, float], ...]


@dataclass(frozen=True, slots=True, kw_only=True)
class LocalDetuning:
    """An extra detuning ``scale[k] * delta(t)`` on ``atoms[k]`` (Bloqade's local field)."""

    atoms: tuple[int, ...]
    scale: tuple[float, ...]
    delta: Waveform

    def to_json(self) -> dict[str, Any]:
        return {
            "atoms": list(self.atoms),
            "scale": list(self.scale),
            "delta": [list(p) for p in self.delta],
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class Drive:
    """An ``Evolve``'s drive: Omega(t), Delta(t) (rad/us, t in ns), phase phi, local field."""

    omega: Waveform
    delta: Waveform
    phase: float = 0.0
    local: LocalDetuning | None = None

    def waveforms(self) -> tuple[tuple[str, Waveform], ...]:
        """``(name, waveform)`` of each waveform, the local one included."""
        named = (("omega", self.omega), ("delta", self.delta))
        return (*named, ("local_delta", self.local.delta)) if self.local else named


def sample(waveform: Waveform, t_ns: float) -> float:
    """The waveform's value at ``t_ns`` (linear between points; its last value after)."""
    times = [p[0] for p in waveform]
    if t_ns >= times[-1]:
        return waveform[-1][1]
    k = max(0, next(i for i, t in enumerate(times) if t > t_ns) - 1)
    (t0, v0), (t1, v1) = waveform[k], waveform[k + 1]
    return v0 + (v1 - v0) * (t_ns - t0) / (t1 - t0)


def _waveform(index: int, name: str, value: Any, duration: float) -> Waveform:
    ok = (
        isinstance(value, list)
        and len(value) >= 2
        and all(
            isinstance(p, list) and len(p) == 2 and all(_is_number(x) for x in p) for p in value
        )
    )
    if not ok:
        raise _malformed(
            index,
            f"Evolve.{name} must be [[t_ns, rad_per_us], ...] with at least two points",
            field=name,
        )
    points = tuple((float(t), float(v)) for t, v in value)
    times = [t for t, _ in points]
    if times[0] != 0.0 or any(b <= a for a, b in itertools.pairwise(times)):
        raise _malformed(
            index, f"Evolve.{name}: times must start at 0 and increase, got {times}", field=name
        )
    if abs(times[-1] - duration) > 1e-9 * max(1.0, duration):
        raise _malformed(
            index,
            f"Evolve.{name} ends at {times[-1]:g} ns, not at the duration {duration:g} ns",
            field=name,
        )
    return points


def _local(index: int, value: Any, duration: float) -> LocalDetuning | None:
    if value is None:
        return None
    if not isinstance(value, Mapping) or set(value) != {"atoms", "scale", "delta"}:
        raise _malformed(
            index,
            'Evolve.local_delta must be {"atoms": [...], "scale": [...], "delta": [[t, v], ...]}',
            field="local_delta",
        )
    atoms, scale = value["atoms"], value["scale"]
    if (
        not isinstance(atoms, list)
        or not isinstance(scale, list)
        or not all(_is_int(a) and a >= 0 for a in atoms)
        or not all(_is_number(x) for x in scale)
        or len(atoms) != len(scale)
        or not atoms
    ):
        raise _malformed(
            index,
            "Evolve.local_delta: atoms (indices) and scale (numbers) must be lists of one length",
            field="local_delta",
        )
    return LocalDetuning(
        atoms=tuple(atoms),
        scale=tuple(float(x) for x in scale),
        delta=_waveform(index, "local_delta.delta", value["delta"], duration),
    )


# --------------------------------------------------------------------------- instructions


@dataclass(frozen=True, slots=True, kw_only=True)
class Instruction:
    """One instruction of a program; which fields matter depends on ``op``.

    ``position`` is always a 3-tuple (a chain's x is ``(x, 0, 0)``) or None.
    """

    index: int
    op: str
    n_qubits: int = 0
    gate: str = ""
    targets: tuple[int, ...] = ()
    params: tuple[float, ...] = ()
    atom: int = -1
    position: tuple[float, float, float] | None = None
    site: int | None = None
    duration: float = 0.0
    detuning: float = 0.0
    #: An Evolve's drive (None for every other op).
    drive: Drive | None = None

    @property
    def kind(self) -> OpKind:
        """Its op's kind."""
        return OPS[self.op].kind

    @property
    def atoms(self) -> tuple[int, ...]:
        """The atoms it acts on (none for AllocArray and Wait)."""
        kind = self.kind
        if kind is OpKind.MOVE:
            return (self.atom,)
        if kind is OpKind.PULSE:
            return (self.atom,)
        return self.targets

    def describe(self) -> str:
        """``CZ targets=[0,1]``: what the instruction is, for messages and timelines."""
        kind = self.kind
        if kind is OpKind.ALLOC:
            return f"AllocArray n_qubits={self.n_qubits}"
        if kind is OpKind.GATE:
            args = f" params={list(self.params)}" if self.params else ""
            return f"{self.gate} targets={list(self.targets)}{args}"
        if kind in (OpKind.MEASURE, OpKind.RESET):
            return f"{self.op} targets={list(self.targets)}"
        if kind is OpKind.MOVE:
            where = f"site={self.site}" if self.site is not None else f"position={self.position}"
            return f"MoveAtom atom={self.atom} {where}"
        if kind is OpKind.WAIT:
            return f"Wait duration={self.duration:g}ns"
        if kind is OpKind.EVOLVE:
            return f"Evolve duration={self.duration:g}ns"
        return f"Pulse target={self.atom} detuning={self.detuning:g} duration={self.duration:g}ns"

    def to_json(self) -> dict[str, Any]:
        """The wire form."""
        kind = self.kind
        if kind is OpKind.ALLOC:
            return {"op": self.op, "n_qubits": self.n_qubits}
        if kind is OpKind.GATE:
            out: dict[str, Any] = {"op": self.op, "name": self.gate, "targets": list(self.targets)}
            if len(self.params) == 1:
                out["param"] = self.params[0]
            elif self.params:
                out["params"] = list(self.params)
            return out
        if kind in (OpKind.MEASURE, OpKind.RESET):
            return {"op": self.op, "targets": list(self.targets)}
        if kind is OpKind.MOVE:
            out = {"op": self.op, "atom": self.atom}
            if self.site is not None:
                out["site"] = self.site
            if self.position is not None:
                out["position"] = list(self.position)
            return out
        if kind is OpKind.WAIT:
            return {"op": self.op, "duration": self.duration}
        if kind is OpKind.EVOLVE:
            assert self.drive is not None
            out = {
                "op": self.op,
                "duration": self.duration,
                "omega": [list(p) for p in self.drive.omega],
                "delta": [list(p) for p in self.drive.delta],
                "phase": self.drive.phase,
            }
            if self.drive.local is not None:
                out["local_delta"] = self.drive.local.to_json()
            return out
        return {
            "op": self.op,
            "target": self.atom,
            "detuning": self.detuning,
            "duration": self.duration,
        }


def _malformed(index: int, message: str, **details: Any) -> DeviceError:
    return DeviceError.of(
        "job-malformed", f"instruction #{index}: {message}", index=index, **details
    )


def _value(index: int, item: Mapping[str, Any], spec: OpSpec, name: str) -> Any:
    field = spec.field(name)
    if name not in item or item[name] is None:
        if field.required:
            raise _malformed(index, f"{spec.name} needs {name!r} ({field.description})", field=name)
        return None
    value = item[name]
    kind = field.type
    ok: bool
    if kind is FieldType.INTEGER:
        ok = _is_int(value) or (_is_number(value) and float(value).is_integer())
        value = int(value) if ok else value
    elif kind is FieldType.NUMBER:
        ok = _is_number(value)
    elif kind is FieldType.STRING:
        ok = isinstance(value, str)
    elif kind is FieldType.INTEGERS:
        ok = isinstance(value, list) and all(_is_int(v) for v in value)
    elif kind is FieldType.NUMBERS:
        ok = isinstance(value, list) and all(_is_number(v) for v in value)
    elif kind in (FieldType.WAVEFORM, FieldType.LOCAL_DETUNING):
        return value  # checked by _waveform / _local, which know the duration
    else:
        ok = _is_number(value) or (
            isinstance(value, list) and 1 <= len(value) <= 3 and all(_is_number(v) for v in value)
        )
    if not ok:
        raise _malformed(index, f"{spec.name}.{name} = {value!r} is not a {kind.value}", field=name)
    if field.minimum is not None and _is_number(value) and value < field.minimum:
        raise _malformed(index, f"{spec.name}.{name} = {value!r} is below {field.minimum:g}")
    return value


def _gate_params(index: int, item: Mapping[str, Any], gate: GateSpec) -> tuple[float, ...]:
    param = item.get("param")
    params = item.get("params")
    if params is not None:
        values = tuple(float(p) for p in params)
        if param is not None and (len(values) != 1 or values[0] != float(param)):
            raise _malformed(index, f"{gate.name}: give param or params, not both")
    elif param is not None:
        values = (float(param),)
    else:
        values = ()
    if not gate.params:
        # The prototype writes "param": 0.0 on every gate; any other value would be dropped.
        if any(v != 0.0 for v in values):
            raise _malformed(index, f"{gate.name} takes no parameter, got {list(values)}")
        return ()
    if len(values) != len(gate.params):
        raise _malformed(
            index,
            f"{gate.name} takes {len(gate.params)} parameter(s) ({', '.join(gate.params)}), "
            f"got {len(values)}",
        )
    return values


def parse_instruction(index: int, item: Any, *, version: IsaVersion = CURRENT) -> Instruction:
    """One wire-form instruction, checked against the table (not against a device).

    Raises:
        DeviceError: ``QD101`` for a malformed instruction, ``QD106`` for an op or gate
            the version does not define (or an unknown field).
    """
    if not isinstance(item, Mapping) or not isinstance(item.get("op"), str):
        raise _malformed(index, f"expected an object with an 'op' string, got {item!r}")
    name = item["op"]
    spec = OPS.get(name)
    if spec is None:
        raise DeviceError.of(
            "op-unknown",
            f"instruction #{index}: no op {name!r}; ops: {', '.join(OPS)}",
            index=index,
        )
    if spec.since > version:
        raise DeviceError.of(
            "op-unknown",
            f"instruction #{index}: op {name!r} needs ISA {spec.since} (the job is {version})",
            index=index,
        )
    known = {f.name for f in spec.fields if f.since <= version} | {"op"}
    extra = sorted(set(item) - known)
    if extra:
        raise DeviceError.of(
            "op-unknown",
            f"instruction #{index}: {name} has no field {extra[0]!r} in ISA {version}; "
            f"fields: {', '.join(sorted(known - {'op'}))}",
            index=index,
        )
    values = {f.name: _value(index, item, spec, f.name) for f in spec.fields if f.since <= version}
    kind = spec.kind
    if kind is OpKind.ALLOC:
        return Instruction(index=index, op=name, n_qubits=values["n_qubits"])
    if kind is OpKind.GATE:
        gate = GATES.get(values["name"].upper())
        if gate is None or gate.since > version:
            offered = ", ".join(g.name for g in gates_of(version))
            raise DeviceError.of(
                "op-unknown",
                f"instruction #{index}: no gate {values['name']!r} in ISA {version}; "
                f"gates: {offered}",
                index=index,
            )
        targets = tuple(values["targets"])
        if len(targets) != gate.arity:
            raise _malformed(
                index, f"{gate.name} acts on {gate.arity} atom(s), got targets {list(targets)}"
            )
        return Instruction(
            index=index,
            op=name,
            gate=gate.name,
            targets=targets,
            params=_gate_params(index, item, gate),
        )
    if kind in (OpKind.MEASURE, OpKind.RESET):
        return Instruction(index=index, op=name, targets=tuple(values["targets"]))
    if kind is OpKind.MOVE:
        position, site = values["position"], values.get("site")
        if (position is None) == (site is None):
            raise _malformed(index, "MoveAtom needs exactly one of 'position' and 'site'")
        coords = None
        if position is not None:
            raw = [float(position)] if _is_number(position) else [float(p) for p in position]
            raw += [0.0] * (3 - len(raw))
            coords = (raw[0], raw[1], raw[2])
        return Instruction(index=index, op=name, atom=values["atom"], position=coords, site=site)
    if kind is OpKind.WAIT:
        return Instruction(index=index, op=name, duration=float(values["duration"]))
    if kind is OpKind.EVOLVE:
        duration = float(values["duration"])
        drive = Drive(
            omega=_waveform(index, "omega", values["omega"], duration),
            delta=_waveform(index, "delta", values["delta"], duration),
            phase=float(values["phase"] or 0.0),
            local=_local(index, values["local_delta"], duration),
        )
        return Instruction(index=index, op=name, duration=duration, drive=drive)
    return Instruction(
        index=index,
        op=name,
        atom=values["target"],
        detuning=float(values["detuning"]),
        duration=float(values["duration"]),
    )


def parse_program(items: Any, *, version: IsaVersion = CURRENT) -> tuple[Instruction, ...]:
    """A wire-form program (a list of instruction objects) as :class:`Instruction` values.

    Raises:
        DeviceError: ``QD101``/``QD106`` naming the first bad instruction's index.
    """
    if not isinstance(items, list):
        raise DeviceError.of("job-malformed", f"program must be a list, got {type(items).__name__}")
    return tuple(parse_instruction(i, item, version=version) for i, item in enumerate(items))


__all__ = [
    "CURRENT",
    "DEFAULT_1Q_NS",
    "DEFAULT_2Q_NS",
    "GATES",
    "OPS",
    "VERSIONS",
    "Drive",
    "FieldSpec",
    "FieldType",
    "GateSpec",
    "Instruction",
    "IsaVersion",
    "LocalDetuning",
    "OpKind",
    "OpSpec",
    "Waveform",
    "gates_of",
    "ops_of",
    "parse_instruction",
    "parse_program",
    "parse_version",
    "sample",
    "supported_versions",
]
