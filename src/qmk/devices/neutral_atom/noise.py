"""Physical noise of the neutral-atom device: the wire form's noise model and the one noise IR.

Public API:

- :class:`NoiseModel` (with :class:`Pauli`, :class:`Readout`, :class:`GateNoise`,
  :class:`PhaseNoise`, :class:`RatePair`) -- the wire form's ``noise`` object, checked
  (``QD108`` for a value out of range, ``QD101`` for an unknown field);
  ``NoiseModel.from_json`` / ``to_json``;
- the noise IR: :class:`NoiseOp` values of kind :class:`NoiseKind` (a one-qubit Pauli
  channel, a two-qubit Pauli channel over the 16 Pauli pairs, amplitude damping, loss),
  made by :func:`gate_noise`, :func:`idle_noise`, :func:`prep_noise` and
  :func:`measure_noise`. Both backends read the same IR (:mod:`.shots`): the statevector
  backend draws every Pauli op's errors (Kraus branches for damping), the stabilizer
  backend samples one-qubit Pauli ops as its batch circuit's Pauli channels and draws the
  two-qubit ones' errors itself; loss and readout are drawn classically on both.

Units and meanings (the prototype's, with its unit bug fixed): durations in **ns**, rates
**per second**; an idle time ``t`` gives

- a Z error with probability ``1 - exp(-idle_rate * t)`` (``idle_rate``),
- a uniform phase kick in ``[-phase.idle * t, +phase.idle * t]`` (radians), which is the
  dephasing channel with ``p_Z = (1 - sin(m)/m) / 2``, ``m = phase.idle * t``,
- amplitude damping with ``gamma = 1 - exp(-amplitude_damping.idle_rate * t)`` (so
  ``T1 = 1 / amplitude_damping.idle_rate``),
- a loss with probability ``1 - exp(-loss_runtime.idle_rate * t)``.

After each gate, in this order:

1. ``gate.*`` Pauli channels (one-qubit gates on the target; two-qubit gates
   independently on control and target);
2. the correlated 4x4 ``correlated_gate.matrix`` (rows: control I X Y Z, columns:
   target I X Y Z) on two-qubit gates;
3. the phase kicks ``phase.single_qubit`` / ``two_qubit_*`` (radians, as dephasing);
4. amplitude damping ``amplitude_damping.per_gate`` (gamma, one-qubit gates);
5. loss ``loss_runtime.per_gate`` on each target.

At a measurement: ``p_quantum_flip`` is an X error just before it,
``p_loss`` the chance the atom is lost at it (its bit reads -1, and it stays lost), and
``readout`` flips the recorded bit (0->1 with ``p_flip0_to_1``, 1->0 with ``p_flip1_to_0``).
``p_prep`` (a QMK extension) is the chance an atom leaves AllocArray or Reset in ``|1>``.
A lost atom takes no part in anything later: its gates (and their noise) are skipped, its
partner in a two-qubit gate is left untouched, and it reads -1.

>>> model = NoiseModel.from_json({"idle_rate": 1000.0})
>>> [op.kind.value for op in idle_noise(model, 0, 50_000.0)]
['pauli1']
>>> round(idle_noise(model, 0, 50_000.0)[0].probs[2], 6)  # 1 - exp(-1000/s * 50 us)
0.048771
"""

from __future__ import annotations

import enum
import functools
import math
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any

from qmk.devices.errors import DeviceError

#: Pauli labels in the order of the correlated matrix's rows and columns.
PAULIS = "IXYZ"
_EPS = 1e-12


def _number(path: str, value: Any) -> float:
    if not isinstance(value, int | float) or isinstance(value, bool) or not math.isfinite(value):
        raise DeviceError.of(
            "noise-invalid", f"noise.{path} = {value!r} is not a number", field=path
        )
    return float(value)


def _probability(path: str, value: Any) -> float:
    number = _number(path, value)
    if not 0.0 <= number <= 1.0:
        raise DeviceError.of(
            "noise-invalid", f"noise.{path} = {number!r} is not a probability in [0, 1]", field=path
        )
    return number


def _rate(path: str, value: Any) -> float:
    number = _number(path, value)
    if number < 0.0:
        raise DeviceError.of(
            "noise-invalid",
            f"noise.{path} = {number!r} is a negative rate (per second)",
            field=path,
        )
    return number


def _object(path: str, value: Any, known: tuple[str, ...]) -> Mapping[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise DeviceError.of("job-malformed", f"noise.{path} must be an object", field=path)
    extra = sorted(set(value) - set(known))
    if extra:
        raise DeviceError.of(
            "job-malformed",
            f"noise.{path} has no field {extra[0]!r}; fields: {', '.join(known)}",
            field=f"{path}.{extra[0]}",
        )
    return value


def _names(cls: type) -> tuple[str, ...]:
    return tuple(f.name for f in fields(cls))


@dataclass(frozen=True, slots=True, kw_only=True)
class Pauli:
    """A one-qubit Pauli channel: X, Y, Z with these probabilities."""

    px: float = 0.0
    py: float = 0.0
    pz: float = 0.0

    @classmethod
    def from_json(cls, path: str, data: Any) -> Pauli:
        values = _object(path, data, _names(cls))
        out = cls(**{k: _probability(f"{path}.{k}", v) for k, v in values.items()})
        if out.total > 1.0 + _EPS:
            raise DeviceError.of(
                "noise-invalid", f"noise.{path}: px + py + pz = {out.total:g} exceeds 1", field=path
            )
        return out

    @property
    def total(self) -> float:
        return self.px + self.py + self.pz

    def to_json(self) -> dict[str, float]:
        return {"px": self.px, "py": self.py, "pz": self.pz}


@dataclass(frozen=True, slots=True, kw_only=True)
class Readout:
    """Classical flips of a recorded bit."""

    p_flip0_to_1: float = 0.0
    p_flip1_to_0: float = 0.0

    @classmethod
    def from_json(cls, path: str, data: Any) -> Readout:
        values = _object(path, data, _names(cls))
        return cls(**{k: _probability(f"{path}.{k}", v) for k, v in values.items()})

    def to_json(self) -> dict[str, float]:
        return {"p_flip0_to_1": self.p_flip0_to_1, "p_flip1_to_0": self.p_flip1_to_0}


@dataclass(frozen=True, slots=True, kw_only=True)
class GateNoise:
    """Pauli channels after gates."""

    single_qubit: Pauli = field(default_factory=Pauli)
    two_qubit_control: Pauli = field(default_factory=Pauli)
    two_qubit_target: Pauli = field(default_factory=Pauli)

    @classmethod
    def from_json(cls, path: str, data: Any) -> GateNoise:
        values = _object(path, data, _names(cls))
        return cls(**{k: Pauli.from_json(f"{path}.{k}", v) for k, v in values.items()})

    def to_json(self) -> dict[str, Any]:
        return {name: getattr(self, name).to_json() for name in _names(type(self))}


@dataclass(frozen=True, slots=True, kw_only=True)
class PhaseNoise:
    """Uniform random Z-phase kicks: magnitudes in radians (``idle``: radians per second)."""

    single_qubit: float = 0.0
    two_qubit_control: float = 0.0
    two_qubit_target: float = 0.0
    idle: float = 0.0

    @classmethod
    def from_json(cls, path: str, data: Any) -> PhaseNoise:
        values = _object(path, data, _names(cls))
        return cls(**{k: _rate(f"{path}.{k}", v) for k, v in values.items()})

    def to_json(self) -> dict[str, float]:
        return {name: getattr(self, name) for name in _names(type(self))}


@dataclass(frozen=True, slots=True, kw_only=True)
class RatePair:
    """A per-gate probability and an idle rate per second (damping, runtime loss)."""

    per_gate: float = 0.0
    idle_rate: float = 0.0

    @classmethod
    def from_json(cls, path: str, data: Any) -> RatePair:
        values = _object(path, data, _names(cls))
        return cls(
            per_gate=_probability(f"{path}.per_gate", values.get("per_gate", 0.0)),
            idle_rate=_rate(f"{path}.idle_rate", values.get("idle_rate", 0.0)),
        )

    def to_json(self) -> dict[str, float]:
        return {"per_gate": self.per_gate, "idle_rate": self.idle_rate}


_ZERO_MATRIX: tuple[tuple[float, ...], ...] = ((0.0,) * 4,) * 4


@dataclass(frozen=True, slots=True, kw_only=True)
class NoiseModel:
    """The wire form's ``noise`` object (see the module docstring for each field's meaning)."""

    p_quantum_flip: float = 0.0
    p_loss: float = 0.0
    p_prep: float = 0.0
    readout: Readout = field(default_factory=Readout)
    gate: GateNoise = field(default_factory=GateNoise)
    correlated_gate: tuple[tuple[float, ...], ...] = _ZERO_MATRIX
    idle_rate: float = 0.0
    phase: PhaseNoise = field(default_factory=PhaseNoise)
    amplitude_damping: RatePair = field(default_factory=RatePair)
    loss_runtime: RatePair = field(default_factory=RatePair)

    @classmethod
    def from_json(cls, data: Any) -> NoiseModel:
        """The model of a wire ``noise`` object (None: no noise).

        Raises:
            DeviceError: ``QD108`` for a value out of range, ``QD101`` for an unknown field.
        """
        values = _object("", data, _names(cls)) if data is not None else {}
        matrix = _ZERO_MATRIX
        correlated = _object("correlated_gate", values.get("correlated_gate"), ("matrix",))
        if "matrix" in correlated:
            rows = correlated["matrix"]
            if not (
                isinstance(rows, list)
                and len(rows) == 4
                and all(isinstance(r, list) and len(r) == 4 for r in rows)
            ):
                raise DeviceError.of(
                    "noise-invalid", "noise.correlated_gate.matrix must be 4 rows of 4 numbers"
                )
            matrix = tuple(
                tuple(
                    _probability(f"correlated_gate.matrix[{i}][{j}]", v) for j, v in enumerate(row)
                )
                for i, row in enumerate(rows)
            )
            total = sum(sum(row) for row in matrix)
            if total > 1.0 + _EPS:
                raise DeviceError.of(
                    "noise-invalid",
                    f"noise.correlated_gate.matrix sums to {total:g}, more than 1",
                )
        return cls(
            p_quantum_flip=_probability("p_quantum_flip", values.get("p_quantum_flip", 0.0)),
            p_loss=_probability("p_loss", values.get("p_loss", 0.0)),
            p_prep=_probability("p_prep", values.get("p_prep", 0.0)),
            readout=Readout.from_json("readout", values.get("readout")),
            gate=GateNoise.from_json("gate", values.get("gate")),
            correlated_gate=matrix,
            idle_rate=_rate("idle_rate", values.get("idle_rate", 0.0)),
            phase=PhaseNoise.from_json("phase", values.get("phase")),
            amplitude_damping=RatePair.from_json(
                "amplitude_damping", values.get("amplitude_damping")
            ),
            loss_runtime=RatePair.from_json("loss_runtime", values.get("loss_runtime")),
        )

    def to_json(self) -> dict[str, Any]:
        """The wire form (every field written)."""
        return {
            "p_quantum_flip": self.p_quantum_flip,
            "p_loss": self.p_loss,
            "p_prep": self.p_prep,
            "readout": self.readout.to_json(),
            "gate": self.gate.to_json(),
            "correlated_gate": {"matrix": [list(row) for row in self.correlated_gate]},
            "idle_rate": self.idle_rate,
            "phase": self.phase.to_json(),
            "amplitude_damping": self.amplitude_damping.to_json(),
            "loss_runtime": self.loss_runtime.to_json(),
        }

    @property
    def has_damping(self) -> bool:
        """Whether it has amplitude damping (not a Pauli channel: statevector only)."""
        return self.amplitude_damping.per_gate > 0 or self.amplitude_damping.idle_rate > 0

    @property
    def is_noiseless(self) -> bool:
        """Whether every field is zero."""
        return self == NoiseModel()


# --------------------------------------------------------------------------- analog mode


@dataclass(frozen=True, slots=True, kw_only=True)
class LindbladRates:
    """Analog mode's decoherence, per us: decay ``L = sqrt(decay) |g><r|`` on each atom and
    dephasing ``L = sqrt(dephasing) Z`` (coherences decay at ``2 * dephasing``)."""

    decay_per_us: float = 0.0
    dephasing_per_us: float = 0.0

    @property
    def is_zero(self) -> bool:
        return self.decay_per_us == 0.0 and self.dephasing_per_us == 0.0


def lindblad_rates(model: NoiseModel) -> LindbladRates:
    """The Lindblad rates an analog (Evolve) program runs with, from the one noise model.

    ``amplitude_damping.idle_rate`` (T1: ``|1> -> |0>``, per second) is the spontaneous
    decay ``|r> -> |g>``; ``idle_rate`` (Z errors per second) is the rate of Z jumps
    ``L = sqrt(idle_rate) Z``, the continuous form of the digital idle Z error (the same
    ``idle_rate * t`` for short times). Gate noise does not apply (an analog program has
    no gates); loss and readout are drawn at measurement as in digital mode; ``p_prep``
    and ``phase.idle`` are not rates (:class:`AnalogNoise`).
    """
    return LindbladRates(
        decay_per_us=model.amplitude_damping.idle_rate * 1e-6,
        dephasing_per_us=model.idle_rate * 1e-6,
    )


@dataclass(frozen=True, slots=True, kw_only=True)
class AnalogNoise:
    """What of the one noise model acts on an analog program's evolution.

    ``rates``: the Lindblad rates (:func:`lindblad_rates`). ``p_prep``: as in digital
    mode, the chance each atom leaves AllocArray in ``|1>`` (``|r>``), independently: the
    evolution starts from that mixture. ``detuning_per_us``: ``phase.idle`` in rad/us. In
    digital mode an idle time ``t`` kicks the phase uniformly in ``[-m, m]``,
    ``m = phase.idle * t``: the kick of a detuning uniform in ``[-phase.idle,
    phase.idle]`` that stays for the shot (quasi-static noise). In analog mode each atom
    has such a detuning ``delta_i n_i`` for the whole shot
    (:func:`qmk.devices.neutral_atom.analog.evolve` averages over it).
    """

    rates: LindbladRates = LindbladRates()
    p_prep: float = 0.0
    detuning_per_us: float = 0.0

    @property
    def mixed(self) -> bool:
        """Whether the evolution is of a density matrix (decoherence or a mixed start)."""
        return not self.rates.is_zero or self.p_prep > 0.0

    @property
    def is_zero(self) -> bool:
        return not self.mixed and self.detuning_per_us == 0.0


def analog_noise(model: NoiseModel) -> AnalogNoise:
    """The :class:`AnalogNoise` of ``model``."""
    return AnalogNoise(
        rates=lindblad_rates(model), p_prep=model.p_prep, detuning_per_us=model.phase.idle * 1e-6
    )


# --------------------------------------------------------------------------- the noise IR


class NoiseKind(str, enum.Enum):
    """What one noise op does."""

    #: X, Y, Z on ``atoms[0]`` with ``probs`` (3 numbers).
    PAULI1 = "pauli1"
    #: The Pauli pair ``PAULIS[i] x PAULIS[j]`` on ``atoms`` with ``probs[4 * i + j]``
    #: (16 numbers; index 0, the identity pair, is ignored).
    PAULI2 = "pauli2"
    #: Amplitude damping with ``probs[0]`` = gamma on ``atoms[0]``.
    DAMP = "damp"
    #: ``atoms[0]`` is lost with probability ``probs[0]``.
    LOSS = "loss"


@dataclass(frozen=True, slots=True, kw_only=True)
class NoiseOp:
    """One noise channel at one point of the timeline."""

    kind: NoiseKind
    atoms: tuple[int, ...]
    probs: tuple[float, ...]
    #: Why it is there, for telemetry: ``gate``, ``idle``, ``measure``, ``prep``.
    source: str = "gate"


def dephasing_probability(magnitude: float) -> float:
    """The Z probability of the channel a uniform kick in ``[-m, m]`` (radians) makes.

    >>> dephasing_probability(0.0), round(dephasing_probability(math.pi), 6)
    (0.0, 0.5)
    """
    if magnitude <= 0.0:
        return 0.0
    return (1.0 - math.sin(magnitude) / magnitude) / 2.0


def _decay(rate: float, duration_ns: float) -> float:
    """``1 - exp(-rate * t)`` with the rate per second and ``t`` in ns."""
    if rate <= 0.0 or duration_ns <= 0.0:
        return 0.0
    return -math.expm1(-rate * duration_ns * 1e-9)


def _pauli1(atom: int, px: float, py: float, pz: float, source: str) -> list[NoiseOp]:
    if px + py + pz <= 0.0:
        return []
    return [NoiseOp(kind=NoiseKind.PAULI1, atoms=(atom,), probs=(px, py, pz), source=source)]


def _z(atom: int, pz: float, source: str) -> list[NoiseOp]:
    return _pauli1(atom, 0.0, 0.0, pz, source)


def _damp(atom: int, gamma: float, source: str) -> list[NoiseOp]:
    if gamma <= 0.0:
        return []
    return [NoiseOp(kind=NoiseKind.DAMP, atoms=(atom,), probs=(gamma,), source=source)]


def _loss(atom: int, p: float, source: str) -> list[NoiseOp]:
    if p <= 0.0:
        return []
    return [NoiseOp(kind=NoiseKind.LOSS, atoms=(atom,), probs=(p,), source=source)]


def _compose(a: tuple[float, float, float], b: tuple[float, float, float]) -> tuple[float, ...]:
    """Two one-qubit Pauli channels (X, Y, Z probabilities) as one."""
    first = (1.0 - sum(a), *a)
    second = (1.0 - sum(b), *b)
    out = [0.0, 0.0, 0.0, 0.0]
    for i in range(4):
        for j in range(4):
            out[i ^ j] += first[i] * second[j]  # I X Y Z as 0 1 2 3: XOR is their product
    return (out[1], out[2], out[3])


@functools.lru_cache(maxsize=32)
def _gate_template(
    model: NoiseModel, arity: int
) -> tuple[tuple[NoiseKind, tuple[int, ...], tuple[float, ...]], ...]:
    """The gate noise of ``arity`` atoms with atoms as positions (0: first atom, ...).

    Each atom's Pauli channel and its phase kick are composed into one channel (exact)."""
    out: list[tuple[NoiseKind, tuple[int, ...], tuple[float, ...]]] = []
    gate, phase = model.gate, model.phase
    if arity == 1:
        p = gate.single_qubit
        probs = _compose((p.px, p.py, p.pz), (0.0, 0.0, dephasing_probability(phase.single_qubit)))
        if sum(probs) > 0:
            out.append((NoiseKind.PAULI1, (0,), probs))
        if model.amplitude_damping.per_gate > 0:
            out.append((NoiseKind.DAMP, (0,), (model.amplitude_damping.per_gate,)))
    else:
        for position, p, kick in (
            (0, gate.two_qubit_control, phase.two_qubit_control),
            (1, gate.two_qubit_target, phase.two_qubit_target),
        ):
            probs = _compose((p.px, p.py, p.pz), (0.0, 0.0, dephasing_probability(kick)))
            if sum(probs) > 0:
                out.append((NoiseKind.PAULI1, (position,), probs))
        pairs = tuple(v for row in model.correlated_gate for v in row)
        if sum(pairs[1:]) > 0.0:
            out.append((NoiseKind.PAULI2, (0, 1), (0.0, *pairs[1:])))
    if model.loss_runtime.per_gate > 0:
        out += [(NoiseKind.LOSS, (i,), (model.loss_runtime.per_gate,)) for i in range(arity)]
    return tuple(out)


def gate_noise(model: NoiseModel, atoms: tuple[int, ...]) -> tuple[NoiseOp, ...]:
    """The noise after a gate on ``atoms`` (one or two), in the order the docstring gives
    (each atom's Pauli channel composed with its phase kick)."""
    return tuple(
        [
            NoiseOp(kind=kind, atoms=tuple([atoms[i] for i in where]), probs=probs, source="gate")
            for kind, where, probs in _gate_template(model, len(atoms))
        ]
    )


def idle_noise(model: NoiseModel, atom: int, duration_ns: float) -> tuple[NoiseOp, ...]:
    """The noise of ``atom`` idling ``duration_ns`` (rates per second): one Z channel for
    the dephasing and the phase drift, then damping, then loss."""
    if duration_ns <= 0.0:
        return ()
    ops: list[NoiseOp] = []
    z1 = _decay(model.idle_rate, duration_ns)
    z2 = dephasing_probability(model.phase.idle * duration_ns * 1e-9)
    ops += _z(atom, z1 * (1 - z2) + z2 * (1 - z1), "idle")
    ops += _damp(atom, _decay(model.amplitude_damping.idle_rate, duration_ns), "idle")
    ops += _loss(atom, _decay(model.loss_runtime.idle_rate, duration_ns), "idle")
    return tuple(ops)


def prep_noise(model: NoiseModel, atom: int) -> tuple[NoiseOp, ...]:
    """The state-preparation error of ``atom`` after AllocArray or Reset."""
    return tuple(_pauli1(atom, model.p_prep, 0.0, 0.0, "prep"))


def measure_noise(model: NoiseModel, atom: int) -> tuple[NoiseOp, ...]:
    """The quantum noise just before ``atom`` is measured (``p_quantum_flip``).

    Loss at measurement and readout flips are classical: the backends apply them to the
    recorded bits (:class:`NoiseModel` ``p_loss`` and ``readout``).
    """
    return tuple(_pauli1(atom, model.p_quantum_flip, 0.0, 0.0, "measure"))


__all__ = [
    "PAULIS",
    "AnalogNoise",
    "GateNoise",
    "LindbladRates",
    "NoiseKind",
    "NoiseModel",
    "NoiseOp",
    "Pauli",
    "PhaseNoise",
    "RatePair",
    "Readout",
    "analog_noise",
    "dephasing_probability",
    "gate_noise",
    "idle_noise",
    "lindblad_rates",
    "measure_noise",
    "prep_noise",
]
