"""The engine protocol: what every quantum state engine offers the kernel.

An engine owns one quantum state over integer qubit indices that it hands out
itself. It applies the gates of :data:`qmk.engines.gates.GATES`. It measures in the
Z, X or Y basis (outcome 0 for the +1 eigenstate; the qubit stays, in the
post-measurement state), resets, and applies Pauli channels with its own seeded RNG.
It saves and restores its state (RNG included; :meth:`Engine.reseed` replaces the
RNG), and samples many shots of the current state without disturbing it. An engine
whose class also has the static methods ``export_snapshot(snapshot) -> (json, arrays)``
and ``import_snapshot(json, arrays)`` can write its snapshots to a checkpoint file
(:mod:`qmk.execution.checkpoint`).
An engine may also take a *segment*, a run of gates at once
(``apply_segment(gates)``, each gate a :data:`GateCall`; the statevector engine fuses
them into wider gates). :func:`apply_segment` calls it where the engine has it and
applies the gates one by one where not, so every engine takes segments.

What every engine does alike lives here once:

- :class:`GateEngine`, the base that checks a gate call (a gate of the records it
  supports, on as many live, distinct qubits as the gate acts on) and then hands it to
  the engine, a segment checked whole first;
- :func:`check_basis`;
- the snapshot helpers: :func:`check_snapshot` (what ``restore`` and
  ``export_snapshot`` take), :func:`rng_state` and :func:`generator_at` (an engine's
  random stream saved and resumed).

Errors are :class:`EngineError` (exit status 2) with a ``QE`` code; this module
registers the family in :data:`qmk.errors.REGISTRY` (``docs/errors.md`` lists it).
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar, Protocol, TypeVar, runtime_checkable

import numpy as np

from qmk.engines.gates import BASES, accepts
from qmk.errors import REGISTRY, ErrorCode, QMKError, Severity, register
from qmk.gates import GATES, Gate

_S = TypeVar("_S")


class EngineError(QMKError):
    """An engine refused a request; raised before any state changes.

    >>> str(EngineError.of("gate-unsupported", "stabilizer cannot apply t"))
    'QE103 gate-unsupported: stabilizer cannot apply t'
    """

    exit_status = 2


register(
    EngineError,
    ("QE101", "engine-unknown", "no engine of that name", "use a name the message lists"),
    (
        "QE102",
        "engine-capacity",
        "more qubits than the engine (or its memory limit) allows",
        "use fewer live qubits, the stabilizer engine for Clifford programs, or a higher limit",
    ),
    (
        "QE103",
        "gate-unsupported",
        "a gate or parameter the engine cannot apply",
        "use an engine that supports it (statevector takes every gate), or let QMK choose",
    ),
    (
        "QE104",
        "outcome-impossible",
        "collapse onto an outcome of probability 0",
        "collapse only onto an outcome the state can give",
    ),
    (
        "QE105",
        "engine-misuse",
        "a qubit index the engine did not hand out, a repeated qubit, a bad basis or count",
        "pass indices allocate() returned, distinct qubits, a basis Z, X or Y, counts in range",
    ),
    (
        "QE106",
        "checkpoint-mismatch",
        "an execution state that is of another run, or an engine that cannot save one",
        "resume a checkpoint with the program, shots, seed, engine and physics it was taken with",
    ),
    (
        "QE107",
        "checkpoint-unreadable",
        "a checkpoint file that is missing, damaged, or of another format or version",
        "restore another checkpoint of the job (q_restore with its id), or run it from the start",
    ),
    (
        "QE108",
        "engine-unavailable",
        "an engine QMK knows whose package (or GPU) is missing on this machine",
        "install the extra the message names (see 'qmk engines'), or let QMK choose",
    ),
    (
        "QE109",
        "no-engine",
        "no installed engine can run the program (each one's reason is listed)",
        "install an engine that can ('qmk engines'), or use fewer qubits or Clifford ops only",
    ),
    (
        "QE110",
        "operation-unsupported",
        "an operation a circuit-level engine cannot do (mid-circuit measurement on one that "
        "replays its circuit from |0>)",
        "measure at the end only, or use an engine that holds its state ('qmk engines')",
    ),
    (
        "QE111",
        "state-file",
        "a quantum state file (qmk run --state/--initial-state) that cannot be read or "
        "written, or is not of the qmk-state format (the message names the field)",
        "write the file as docs/qvm.md's state format shows (qmk run --state makes one)",
    ),
    (
        "QE112",
        "state-mismatch",
        "an initial state that does not fit the program (its qubit count) or the engine, "
        "or a state kind the engine cannot export",
        "give a state of as many qubits as the program allocates first; amplitudes need "
        "an engine that applies any rotation (statevector)",
    ),
    (
        "QE113",
        "state-unavailable",
        "a final state that is not one pure state: the program measures, draws channel or "
        "logical noise, or resets or frees a qubit entangled with others (the node named)",
        "export the state of the program before its measurements, with noise off "
        "(--no-noise / noise=False)",
    ),
    (
        "QE114",
        "bond-limit",
        "a matrix product state that would need a bond dimension above its max_bond, where "
        "truncating would leave less than its min_fidelity (the message names the bond needed)",
        "raise max_bond to the bond named, lower min_fidelity to accept the truncation, or "
        "run the program on a dense engine",
    ),
    (
        "QE115",
        "halted",
        "the program stopped itself: a HALT node ran (a loop that ran past its iteration "
        "cap in some shot; the message names the loop)",
        "raise the loop's cap (OpenQASM 3: 'pragma qmk loop_cap N' before the loop), or "
        "bound the loop in the program",
    ),
    (
        "QE116",
        "classical-fault",
        "a run-time classical expression failed in some shot: division by zero, a "
        "non-finite float cast to an integer (the message names the node)",
        "guard the expression, e.g. test the divisor before dividing",
    ),
)
REGISTRY.add(
    ErrorCode(
        code="QE117",
        name="precision-unused",
        summary="the precision asked changed nothing: the engine that ran computes exactly "
        "(the stabilizer's tableau holds no amplitudes)",
        fix="drop --precision (policy.precision), or name an amplitude engine with --engine",
        exception=EngineError,
        severity=Severity.WARNING,
    )
)
register(
    EngineError,
    (
        "QE118",
        "engine-too-slow",
        "every engine that could run the program (or the one named) estimates it past a "
        "day: its representation blows up on this program (the message lists each "
        "engine's estimate or refusal)",
        "make the program Clifford for the stabilizer engine, use fewer qubits or gates, "
        "or keep two-qubit gates between near qubits for an MPS ('qmk run --explain')",
    ),
)


#: One gate of a segment: its name in :data:`~qmk.engines.gates.GATES`, its qubits (the
#: engine's indices, gate qubit 0 first) and its parameters.
GateCall = tuple[str, Sequence[int], Sequence[float]]


def apply_segment(engine: Any, gates: Sequence[GateCall]) -> None:
    """Apply ``gates`` in order on ``engine``: its own ``apply_segment`` where it has
    one (which checks every gate before applying any), else :meth:`Engine.apply` one
    gate at a time (a bad gate then raises after the ones before it were applied).

    >>> from qmk.engines.stabilizer import StabilizerEngine
    >>> engine = StabilizerEngine(seed=1)
    >>> a, b = engine.allocate(), engine.allocate()
    >>> apply_segment(engine, [("h", [a], []), ("cx", [a, b], [])])
    >>> sorted({tuple(row) for row in engine.sample([a, b], 50).tolist()})
    [(0, 0), (1, 1)]
    """
    own = getattr(engine, "apply_segment", None)
    if own is not None:
        own(gates)
        return
    apply_gates(engine, gates)


def apply_gates(engine: Any, gates: Sequence[GateCall]) -> None:
    """Apply ``gates`` one by one through ``engine.apply`` (an engine's ``apply_segment``
    may be just this)."""
    apply = engine.apply
    for gate, qubits, params in gates:
        apply(gate, qubits, params)


#: A gate call :meth:`GateEngine.check_gate` passed: the gate, its live qubits (gate qubit 0
#: first) and its parameters as floats.
CheckedGate = tuple[str, list[int], tuple[float, ...]]


class GateEngine:
    """The base of an engine: a gate call is checked once, here, then applied by the
    engine's own :meth:`_apply_gate`; a segment is checked whole before any of its gates
    is applied, so a bad gate leaves the state as it was.

    The checks, in order:

    1. the gate is a record of :data:`~qmk.gates.GATES` (else ``QE103 gate-unsupported``
       listing them);
    2. the engine :meth:`supports` it with these parameters (else ``QE103``, as
       :meth:`_unsupported` says);
    3. each qubit is live (:meth:`_check_qubit`, ``QE105 engine-misuse``);
    4. the qubits are as many as the gate acts on and distinct (``QE105``).

    An engine gives :meth:`_check_qubit` and :meth:`_apply_gate`, and may narrow
    :meth:`supports` (the stabilizer: Clifford gates) or apply a checked segment at once
    (:meth:`_apply_gates`).

    >>> from qmk.engines.statevector import StatevectorEngine
    >>> engine = StatevectorEngine(seed=0)
    >>> q = engine.allocate()
    >>> engine.check_gate("rz", [q], [1])
    ('rz', [0], (1.0,))
    >>> engine.check_gate("cx", [q, q], [])
    Traceback (most recent call last):
    ...
    qmk.engines.base.EngineError: QE105 engine-misuse: cx acts on 2 distinct qubits, got [0, 0]
    """

    name: ClassVar[str] = ""

    def supports(self, gate: str, params: Sequence[float] = ()) -> bool:
        """True for every gate of ``GATES`` with its number of finite parameters."""
        return accepts(gate, params)

    def apply(self, gate: str, qubits: Sequence[int], params: Sequence[float] = ()) -> None:
        """Apply a gate of :data:`~qmk.gates.GATES` to ``qubits`` (gate qubit 0 first).

        Raises:
            EngineError: ``QE103 gate-unsupported`` for a gate that is no record or one the
                engine does not apply with these parameters; ``QE105 engine-misuse`` for
                a qubit that is not live, repeated, or the wrong number of them.
        """
        self._apply_gate(*self.check_gate(gate, qubits, params))

    def apply_segment(self, gates: Sequence[GateCall]) -> None:
        """Apply a run of gates (``(gate, qubits, params)`` each, in order), every one
        checked first (as :meth:`apply` checks it)."""
        self._apply_gates([self.check_gate(gate, qubits, params) for gate, qubits, params in gates])

    def check_gate(
        self, gate: str, qubits: Sequence[int], params: Sequence[float] = ()
    ) -> CheckedGate:
        """The gate call checked (see the class docstring); raises as :meth:`apply`."""
        record = GATES.get(gate) if isinstance(gate, str) else None
        if record is None:
            raise EngineError.of(
                "gate-unsupported",
                f"no gate named {gate!r}; the {self.name} engine applies: {', '.join(GATES)}",
                gate=repr(gate),
            )
        if not self.supports(gate, params):
            raise self._unsupported(record, params)
        if isinstance(qubits, (str, bytes)) or not isinstance(qubits, Sequence):
            qubits = list(qubits)  # iterables, numpy arrays
        qs = [self._check_qubit(q) for q in qubits]
        if len(qs) != record.qubits or len(set(qs)) != len(qs):
            plural = "s" * (record.qubits != 1)
            raise EngineError.of(
                "engine-misuse",
                f"{gate} acts on {record.qubits} distinct qubit{plural}, got {qs}",
                gate=gate,
                qubits=qs,
            )
        return gate, qs, tuple(float(p) for p in params)

    def _unsupported(self, gate: Gate, params: Sequence[float]) -> EngineError:
        """The refusal of a gate :meth:`supports` refuses with these parameters."""
        return EngineError.of(
            "gate-unsupported",
            f"{gate.name} takes {len(gate.params)} finite parameter(s) "
            f"({', '.join(gate.params) or 'none'}), got {list(params)!r}",
            gate=gate.name,
        )

    def _check_qubit(self, qubit: Any) -> int:
        """``qubit`` as the engine's index of a live qubit; ``QE105`` when it is none."""
        raise NotImplementedError

    def _apply_gate(self, gate: str, qubits: list[int], params: tuple[float, ...]) -> None:
        """Apply one checked gate."""
        raise NotImplementedError

    def _apply_gates(self, gates: Sequence[CheckedGate]) -> None:
        """Apply checked gates in order (an engine that fuses a segment overrides it)."""
        for gate, qubits, params in gates:
            self._apply_gate(gate, qubits, params)

    def reseed(self, seed: int) -> None:
        """Replace the engine's random stream (its ``_rng``), keeping the quantum state."""
        self._rng = np.random.default_rng(seed)


def check_basis(basis: Any) -> str:
    """``basis`` when it is one an engine measures in (Z, X or Y); else ``QE105``.

    >>> check_basis("X")
    'X'
    """
    if basis not in BASES:
        raise EngineError.of(
            "engine-misuse",
            f"a basis is one of {', '.join(BASES)}, not {basis!r}",
            basis=str(basis),
        )
    return str(basis)


#: Outcome probabilities at or below this count as impossible for ``collapse`` (rounding
#: leaves an impossible outcome about 1e-16, seldom exactly 0).
IMPOSSIBLE = 1e-12


def check_outcome(outcome: Any) -> int:
    """``outcome`` when it is 0 or 1 (a bool is not), what ``collapse`` projects onto;
    else ``QE105``."""
    if isinstance(outcome, bool) or outcome not in (0, 1):
        raise EngineError.of("engine-misuse", f"an outcome is 0 or 1, not {outcome!r}")
    return int(outcome)


def check_shots(shots: Any) -> int:
    """``shots`` when it is a whole number >= 0 (a bool is not), what ``sample`` draws;
    else ``QE105``."""
    if isinstance(shots, bool) or not isinstance(shots, (int, np.integer)) or shots < 0:
        raise EngineError.of("engine-misuse", f"shots must be a whole number >= 0, not {shots!r}")
    return int(shots)


def outcome_impossible(qubit: int, outcome: int, basis: str, chance: float) -> EngineError:
    """The ``QE104`` of a collapse of ``qubit`` onto ``outcome`` in ``basis``, an outcome
    of probability ``chance`` (at most :data:`IMPOSSIBLE`): every engine's, one message."""
    return EngineError.of(
        "outcome-impossible",
        f"qubit {qubit} cannot be collapsed onto {outcome} in the {basis} basis: "
        f"its probability is {chance:.3g}",
        qubit=int(qubit),
        outcome=int(outcome),
        basis=basis,
    )


def check_snapshot(snapshot: Any, kind: type[_S], engine: str) -> _S:
    """``snapshot`` when it is of ``kind`` (what ``engine``'s ``snapshot`` gives): what
    every engine's ``restore`` and ``export_snapshot`` check first; else ``QE105``.

    >>> check_snapshot(3, int, "toy")
    3
    >>> check_snapshot("x", int, "toy")
    Traceback (most recent call last):
    ...
    qmk.engines.base.EngineError: QE105 engine-misuse: not a snapshot of the toy engine: str
    """
    if not isinstance(snapshot, kind):
        raise EngineError.of(
            "engine-misuse", f"not a snapshot of the {engine} engine: {type(snapshot).__name__}"
        )
    return snapshot


def rng_state(rng: np.random.Generator) -> Mapping[str, Any]:
    """A copy of ``rng``'s state that later draws leave as it is (a snapshot's); give it
    back with :func:`generator_at`, or set it on a generator of the same kind."""
    return copy.deepcopy(rng.bit_generator.state)


def generator_at(state: Mapping[str, Any]) -> np.random.Generator:
    """A numpy generator resumed at ``state`` (a ``bit_generator.state`` a snapshot
    saved): how an engine's restore and a checkpoint's branches take back their stream.

    >>> rng = np.random.default_rng(3)
    >>> again = generator_at(rng.bit_generator.state)
    >>> bool(again.random() == rng.random())
    True
    """
    rng = np.random.default_rng()
    rng.bit_generator.state = state
    return rng


def draw_pauli(rng: np.random.Generator, px: float, py: float, pz: float) -> str:
    """The Pauli a channel applies: ``"X"``, ``"Y"`` or ``"Z"`` with probabilities ``px``,
    ``py``, ``pz``, else ``"I"``, from one uniform draw of ``rng`` (every engine's
    ``apply_pauli_channel`` draws this way, so they agree draw for draw).

    Raises:
        EngineError: ``engine-misuse`` unless the probabilities are numbers in [0, 1] that
            sum to at most 1.

    >>> draw_pauli(np.random.default_rng(1), 0.0, 1.0, 0.0)
    'Y'
    """
    try:
        probs = (float(px), float(py), float(pz))
        ok = all(0.0 <= p <= 1.0 for p in probs) and sum(probs) <= 1 + 1e-12
    except (TypeError, ValueError):
        ok = False
    if not ok:
        raise EngineError.of(
            "engine-misuse",
            "Pauli channel probabilities must lie in [0, 1] and sum to at most 1, "
            f"got px={px!r}, py={py!r}, pz={pz!r}",
        )
    draw = float(rng.random())
    total = 0.0
    for pauli, p in zip("XYZ", probs, strict=True):
        total += p
        if draw < total:
            return pauli
    return "I"


@runtime_checkable
class Engine(Protocol):
    """A quantum state engine. See the module docstring for the contract."""

    #: The engine's registry name, e.g. ``"statevector"``.
    name: ClassVar[str]

    @property
    def max_qubits(self) -> int:
        """How many qubits may be live at once."""
        ...

    @property
    def num_qubits(self) -> int:
        """How many qubits are live now."""
        ...

    def supports(self, gate: str, params: Sequence[float] = ()) -> bool:
        """Whether :meth:`apply` accepts this gate with these parameters."""
        ...

    def allocate(self) -> int:
        """A fresh qubit in ``|0>``; raises ``engine-capacity`` past :attr:`max_qubits`."""
        ...

    def free(self, qubit: int) -> None:
        """Discard a qubit (as if measured and forgotten); its index may be reused."""
        ...

    def apply(self, gate: str, qubits: Sequence[int], params: Sequence[float] = ()) -> None:
        """Apply a gate of :data:`~qmk.engines.gates.GATES` to ``qubits`` (in order)."""
        ...

    def probability(self, qubit: int, basis: str = "Z") -> float:
        """The probability that measuring ``qubit`` in ``basis`` gives 1."""
        ...

    def collapse(self, qubit: int, outcome: int, basis: str = "Z") -> None:
        """Project ``qubit`` onto ``outcome`` in ``basis`` and renormalise."""
        ...

    def measure(self, qubit: int, basis: str = "Z") -> int:
        """Measure with the engine's RNG; the qubit stays, collapsed."""
        ...

    def reset(self, qubit: int) -> None:
        """Return ``qubit`` to ``|0>`` (discarding what it held)."""
        ...

    def apply_pauli_channel(self, qubit: int, px: float, py: float, pz: float) -> str:
        """Apply X, Y or Z with these probabilities (RNG); returns the Pauli applied or "I"."""
        ...

    def snapshot(self) -> Any:
        """An opaque copy of the whole state, live qubits and RNG included."""
        ...

    def restore(self, snapshot: Any) -> None:
        """Return to a state :meth:`snapshot` gave."""
        ...

    def reseed(self, seed: int) -> None:
        """Replace the engine's random stream, keeping the quantum state. After
        :meth:`restore` (which brings the saved stream back), this keeps branches
        restored from one snapshot from replaying the same draws."""
        ...

    def sample(self, qubits: Sequence[int], shots: int) -> np.ndarray:
        """``shots`` Z-basis outcomes of ``qubits`` (uint8, shape ``(shots, len(qubits))``),
        drawn with the engine's RNG without changing the state."""
        ...
