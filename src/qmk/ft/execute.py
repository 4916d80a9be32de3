"""A lattice-surgery schedule executed on an engine, its shots batched.

Each op of the schedule, in its execution order, is carried out on the engine's qubits
(one per data patch) as what the machine does:

- a Pauli product measurement (PPM) of ``P``: the engine measures ``P`` (each factor
  turned to Z, the parity gathered on one qubit by CNOTs, measured, and the basis
  change undone: a projective measurement of ``P``, nothing else);
- a pi/8 rotation ``exp(-i s pi/8 P)``: magic-state injection (Litinski Fig. 11(b)).
  A factory delivers a fresh ancilla patch in ``|m> = T|+>`` (``T^dag|+>`` for
  ``s = -1``). The PPM ``P x Z_m`` follows, then the ancilla measured in X. Then comes
  the Clifford correction by the outcomes: ``exp(-i s pi/4 P)`` when ``P x Z`` gave -1,
  ``P`` when X gave -1.
  On the machine the pi/4 correction is the auto-corrected rotation's extra single-patch
  measurements (Fig. 17(b)), which take no tick; here the engine applies it as a
  Clifford rotation.

Noise (``noise=True``): before each op, every data patch has had a logical Pauli error
with probability ``1 - (1 - p_L)^ticks`` over the ticks since the last op. ``p_L`` is
the model's logical error rate per patch and logical cycle: X, Y or Z equally likely. A
magic state arrives with a Z error with the factory's output error rate. With noise off
the outcome distribution is the program's exactly.

**Shots are batched, not re-simulated** (two ways, as the gate-level machine's):

- A schedule of Clifford ops only (PPMs, Paulis controlled by one event or by a parity
  of events) is one batch circuit (:func:`batch_circuit`: PPMs as product
  measurements, the idle noise as error sites). An engine with the batch capability
  (the stabilizer's stim) samples it in bulk (:mod:`qmk.engines.batch`).
- Otherwise :func:`run_branches`: every shot's errors are drawn first and shots are
  grouped by their error pattern (the error-free group is nearly every shot). Each group
  is simulated once, splitting only where an op produces an event. There the outcome's
  probability is read off the state, the group's shots are split binomially and each
  side goes on (the state saved at the split). An injection's own outcomes are not
  split on: whatever they are, its corrections leave the data in the same state. (A
  factory's Z error on the magic state flips the X outcome, so the wrong correction
  is a ``P`` on the data, whatever the outcomes.) So each group executes each
  injection once, its outcomes drawn by the engine. A group with ``2^k`` possible
  event records takes at most ``min(shots, 2^k)`` simulations of each op.

Either way the distribution is the program's exactly (noise off) and the noise's as
above (noise on); counts at a given seed are not those of a shot-by-shot loop.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from qmk.engines.gates import TO_Z

if TYPE_CHECKING:
    from qmk.engines.batch import BatchCircuit
    from qmk.ft.lower import Lowered, PauliOp
    from qmk.ft.model import FTModel
    from qmk.ft.schedule import Schedule


def _factors(pauli: str, data: Sequence[int]) -> list[tuple[int, str]]:
    return [(data[i], c) for i, c in enumerate(pauli[1:]) if c != "_"]


def _to_z(engine: Any, factors: list[tuple[int, str]]) -> None:
    for q, c in factors:
        for gate in TO_Z[c]:
            engine.apply(gate, [q])


def _from_z(engine: Any, factors: list[tuple[int, str]]) -> None:
    for q, c in reversed(factors):
        for gate in reversed(TO_Z[c]):
            engine.apply({"h": "h", "sdg": "s"}[gate], [q])


def _ladder(engine: Any, qubits: list[int]) -> None:
    for q in qubits[:-1]:
        engine.apply("cx", [q, qubits[-1]])


def measure_pauli(engine: Any, factors: list[tuple[int, str]], negative: bool) -> int:
    """Measure the Pauli product ``factors`` (negated when ``negative``): 0 for +1."""
    qubits = [q for q, _ in factors]
    _to_z(engine, factors)
    _ladder(engine, qubits)
    bit = int(engine.measure(qubits[-1]))
    _ladder(engine, qubits)  # the CNOTs commute: the same ladder undoes them
    _from_z(engine, factors)
    return bit ^ int(negative)


def quarter_turn(engine: Any, factors: list[tuple[int, str]], sign: int) -> None:
    """``exp(-i sign pi/4 P)`` for the unsigned product ``factors`` (a Clifford)."""
    qubits = [q for q, _ in factors]
    _to_z(engine, factors)
    _ladder(engine, qubits)
    engine.apply("s" if sign > 0 else "sdg", [qubits[-1]])
    _ladder(engine, qubits)
    _from_z(engine, factors)


def _pauli(engine: Any, factors: list[tuple[int, str]]) -> None:
    for q, c in factors:
        engine.apply(c.lower(), [q])


# --------------------------------------------------------------------------- noise


@dataclass(frozen=True, slots=True, kw_only=True)
class Location:
    """Where a logical error may strike: before the ``position``-th op of the schedule's
    execution order, on data patch ``patch`` (an idle error: X, Y or Z, ``p/3`` each), or
    on the magic state of that op's injection (``patch`` -1: a Z with probability ``p``)."""

    position: int
    patch: int
    p: float

    @property
    def probs(self) -> tuple[float, float, float]:
        """The X, Y, Z probabilities."""
        return (0.0, 0.0, self.p) if self.patch < 0 else (self.p / 3,) * 3


def locations(
    lowered: Lowered,
    sched: Schedule,
    model: FTModel,
    idle: Mapping[int, float] | None = None,
) -> tuple[Location, ...]:
    """Every place a logical error may strike a shot (module docstring), in order;
    ``idle``: more idle cycles of every patch before the op at a position (a kernel
    job's waits on the shared machine)."""
    out: list[Location] = []
    p_l = model.logical_error_rate
    factory = model.factory
    now = 0
    patches = len(lowered.qubits)  # the data patches and the Toffolis' AND patch
    waits = idle or {}
    for position, index in enumerate(sched.order):
        start = sched.slots[index].start
        if start > now:
            p = 1.0 - (1.0 - p_l) ** (start - now)
            out.extend(Location(position=position, patch=j, p=p) for j in range(patches))
        if waits.get(position):
            p = -math.expm1(waits[position] * math.log1p(-p_l))
            out.extend(Location(position=position, patch=j, p=p) for j in range(patches))
        now = max(now, start)
        op = lowered.ops[index]
        if op.kind == "rotation" and factory is not None and factory.output_error_rate > 0:
            out.append(Location(position=position, patch=-1, p=factory.output_error_rate))
    return tuple(out)


Pattern = tuple[tuple[int, str], ...]


def error_patterns(
    where: Sequence[Location], shots: int, rng: np.random.Generator
) -> tuple[dict[Pattern, int], int]:
    """Each shot's errors drawn, the shots grouped: pattern -> how many shots (a pattern is
    ``(location index, "X"|"Y"|"Z")`` pairs in location order; ``()`` is the error-free
    group, first); and how many errors struck in all."""
    per_shot: dict[int, list[tuple[int, str]]] = {}
    if where:
        totals = np.minimum(np.array([loc.p for loc in where]), 1.0)
        hits = rng.binomial(shots, totals)
        for k in np.flatnonzero(hits):
            who = rng.choice(shots, size=int(hits[k]), replace=False)
            if where[int(k)].patch < 0:
                letters = ["Z"] * len(who)
            else:
                letters = ["XYZ"[w] for w in rng.integers(3, size=len(who)).tolist()]
            for shot, letter in zip(who.tolist(), letters, strict=True):
                per_shot.setdefault(shot, []).append((int(k), letter))
    injected = sum(len(v) for v in per_shot.values())
    groups: dict[Pattern, int] = {}
    if shots > len(per_shot):
        groups[()] = shots - len(per_shot)
    for errors in per_shot.values():
        pattern = tuple(errors)
        groups[pattern] = groups.get(pattern, 0) + 1
    out: dict[Pattern, int] = {}
    if () in groups:  # the error-free group first
        out[()] = groups.pop(())
    out.update(sorted(groups.items()))
    return out, injected


# --------------------------------------------------------------------------- branches


@dataclass(slots=True, kw_only=True)
class Tally:
    """What the branches did: simulations (branches finished)."""

    simulations: int = 0


@dataclass(slots=True, kw_only=True)
class _Branch:
    """Shots that share every event so far, at op ``position`` of the order."""

    position: int
    shots: int
    outcomes: dict[str, int]
    frame: Any = None
    #: A split waiting to go on: the saved state (the parity gathered, not yet
    #: collapsed), the qubits of its ladder, the outcome to collapse to, the op.
    saved: Any = None
    pending: tuple[list[tuple[int, str]], int, bool, str] | None = None
    errors: Mapping[int, list[tuple[int, str]]] = field(default_factory=dict)


class _Brancher:
    """One error group's shots through the schedule, split at events (module docstring)."""

    def __init__(
        self,
        engine: Any,
        lowered: Lowered,
        sched: Schedule,
        rng: np.random.Generator,
        tally: Tally,
    ) -> None:
        self.engine = engine
        self.lowered = lowered
        self.order = sched.order
        self.rng = rng
        self.tally = tally
        self.data = [engine.allocate() for _ in lowered.qubits]

    def run(
        self, shots: int, errors: Mapping[int, list[tuple[int, str]]]
    ) -> list[tuple[int, dict[str, int]]]:
        """``(shots, events)`` of each branch the group's ``shots`` end in."""
        done: list[tuple[int, dict[str, int]]] = []
        stack = [_Branch(position=0, shots=shots, outcomes={}, errors=errors)]
        while stack:
            branch = stack.pop()
            if branch.pending is not None:
                self._resume(branch)
            self._advance(branch, stack)
            if branch.shots:
                done.append((branch.shots, branch.outcomes))
                self.tally.simulations += 1
        return done

    def _resume(self, branch: _Branch) -> None:
        assert branch.pending is not None
        factors, bit, negative, event = branch.pending
        self.engine.restore(branch.saved)
        self._finish_measure(factors, bit)
        branch.outcomes[event] = bit ^ int(negative)
        branch.position += 1
        branch.pending = branch.saved = None

    def _advance(self, branch: _Branch, stack: list[_Branch]) -> None:
        import stim

        engine, data, ops = self.engine, self.data, self.lowered.ops
        while branch.position < len(self.order):
            position = branch.position
            for patch, letter in branch.errors.get(position, ()):
                if patch >= 0:
                    engine.apply(letter.lower(), [data[patch]])
            op = ops[self.order[position]]
            if not op.holds(branch.outcomes):
                branch.position += 1
                continue  # a controlled op whose condition fails: its slot stays idle
            if op.kind == "frame":
                branch.frame = op.frame if branch.frame is None else op.frame.then(branch.frame)
                branch.position += 1
                continue
            frame = branch.frame
            pauli = op.pauli if frame is None else str(frame(stim.PauliString(op.pauli)))
            factors = _factors(pauli, data)
            if op.kind == "rotation":
                struck = any(p < 0 for p, _ in branch.errors.get(position, ()))
                self._inject(op, factors, pauli[0] == "-", struck)
            elif op.kind == "synth":
                self._synth(op, factors, pauli[0] == "-")
            elif op.kind == "pauli":
                _pauli(engine, factors)
            else:
                assert op.event is not None
                self._measure(branch, factors, pauli[0] == "-", op.event, stack)
            branch.position += 1

    def _measure(
        self,
        branch: _Branch,
        factors: list[tuple[int, str]],
        negative: bool,
        event: str,
        stack: list[_Branch],
    ) -> None:
        """Measure a PPM that produces ``event``: the branch's shots split by the
        outcome's probability; where both outcomes take shots, the side of 1 is pushed
        with the state saved before the collapse, and this branch goes on as 0."""
        engine = self.engine
        qubits = [q for q, _ in factors]
        _to_z(engine, factors)
        _ladder(engine, qubits)
        p1 = min(max(float(engine.probability(qubits[-1])), 0.0), 1.0)
        ones = int(self.rng.binomial(branch.shots, p1))
        zeros = branch.shots - ones
        if zeros and ones:
            other = _Branch(
                position=branch.position,
                shots=ones,
                outcomes=dict(branch.outcomes),
                frame=branch.frame,
                saved=engine.snapshot(),
                pending=(factors, 1, negative, event),
                errors=branch.errors,
            )
            stack.append(other)
            branch.shots = zeros
        bit = 0 if zeros else 1
        self._finish_measure(factors, bit)
        branch.outcomes[event] = bit ^ int(negative)

    def _finish_measure(self, factors: list[tuple[int, str]], bit: int) -> None:
        """Collapse the gathered parity to ``bit`` and undo the ladder and basis change."""
        engine = self.engine
        qubits = [q for q, _ in factors]
        engine.collapse(qubits[-1], bit)
        _ladder(engine, qubits)
        _from_z(engine, factors)

    def _inject(
        self, op: PauliOp, factors: list[tuple[int, str]], negative: bool, struck: bool
    ) -> None:
        engine = self.engine
        sign = op.sign * (-1 if negative else 1)  # exp(-i s pi/8 P) with P unsigned
        anc = engine.allocate()
        engine.apply("h", [anc])
        engine.apply("t" if sign > 0 else "tdg", [anc])
        if struck:  # the factory delivered the state with a Z error
            engine.apply("z", [anc])
        joint = measure_pauli(engine, [*factors, (anc, "Z")], False)
        flip = int(engine.measure(anc, "X"))
        engine.free(anc)
        if joint:
            quarter_turn(engine, factors, sign)
        if flip:
            _pauli(engine, factors)

    def _synth(self, op: PauliOp, factors: list[tuple[int, str]], negative: bool) -> None:
        """An arbitrary-angle rotation, applied as the exact rotation its synthesised
        sequence approximates (the sequence's own error, within the estimator's rotation
        budget, is not simulated)."""
        engine = self.engine
        qubits = [q for q, _ in factors]
        angle = op.angle * (-1 if negative else 1)
        _to_z(engine, factors)
        _ladder(engine, qubits)
        engine.apply("rz", [qubits[-1]], [2 * angle])
        _ladder(engine, qubits)
        _from_z(engine, factors)


def run_branches(
    make_engine: Callable[[], Any],
    lowered: Lowered,
    sched: Schedule,
    model: FTModel,
    *,
    shots: int,
    seed: int,
    noise: bool,
    idle: Mapping[int, float] | None = None,
) -> tuple[np.ndarray, int, Tally]:
    """``shots`` rows of the program's events (``lowered.events`` order; an event nothing
    produced reads 0), the logical errors injected and what ran (module docstring).
    ``make_engine()`` makes an empty engine; ``seed`` seeds the errors, the splits and
    (through :meth:`reseed`) the engine."""
    streams = np.random.SeedSequence(seed).spawn(3)
    error_rng, split_rng = np.random.default_rng(streams[0]), np.random.default_rng(streams[1])
    where = locations(lowered, sched, model, idle) if noise else ()
    groups, injected = error_patterns(where, shots, error_rng)
    engine = make_engine()
    engine.reseed(int(streams[2].generate_state(1, np.uint64)[0] >> np.uint64(1)))
    tally = Tally()
    columns = {e: k for k, e in enumerate(lowered.events)}
    rows = np.zeros((shots, len(lowered.events)), dtype=np.uint8)
    filled = 0
    fresh = engine.snapshot()
    brancher: _Brancher | None = None
    for pattern, count in groups.items():
        if brancher is None:
            brancher = _Brancher(engine, lowered, sched, split_rng, tally)
            fresh = engine.snapshot()
        else:
            engine.restore(fresh)
        errors: dict[int, list[tuple[int, str]]] = {}
        for k, letter in pattern:
            errors.setdefault(where[k].position, []).append((where[k].patch, letter))
        for branch_shots, outcomes in brancher.run(count, errors):
            for event, bit in outcomes.items():
                if bit and event in columns:
                    rows[filled : filled + branch_shots, columns[event]] = 1
            filled += branch_shots
    assert filled == shots
    return rows[split_rng.permutation(shots)], injected, tally


# --------------------------------------------------------------------------- one batch


def batch_form(
    lowered: Lowered,
    sched: Schedule,
    model: FTModel,
    *,
    noise: bool,
    idle: Mapping[int, float] | None = None,
) -> tuple[BatchCircuit, tuple[int | None, ...], tuple[tuple[int, Location], ...]] | None:
    """The schedule as one batch circuit (:mod:`qmk.engines.batch`), the record column of
    each event (None: nothing produces it) and its error sites (their idle location);
    None when an op is beyond one: a rotation, a controlled Clifford, or a Pauli under
    a condition of two or more terms."""
    from qmk.engines.batch import BatchCircuit, Instruction, Kind

    where = locations(lowered, sched, model, idle) if noise else ()
    by_position: dict[int, list[Location]] = {}
    for loc in where:
        by_position.setdefault(loc.position, []).append(loc)
    out: list[Instruction] = []
    sites: list[tuple[int, Location]] = []
    record: dict[str, int] = {}
    n = len(lowered.qubits)
    for position, index in enumerate(sched.order):
        for loc in by_position.get(position, ()):
            out.append(Instruction(kind=Kind.ERROR_SITE, qubits=(loc.patch,), probs=loc.probs))
            sites.append((len(sites), loc))
        op = lowered.ops[index]
        if op.kind in ("rotation", "synth", "frame"):
            return None
        support = [(q, c) for q, c in _factors(op.pauli, range(n))]
        if op.kind == "measure":
            assert op.event is not None
            out.append(
                Instruction(
                    kind=Kind.MEASURE_PRODUCT,
                    qubits=tuple(q for q, _ in support),
                    paulis="".join(c for _, c in support),
                    invert=op.pauli[0] == "-",
                )
            )
            record[op.event] = len(record)
            continue
        control = _control(op, record)
        if control is None:
            return None
        controls, invert, never = control
        if never:
            continue
        out.extend(
            Instruction(
                kind=Kind.GATE, qubits=(q,), gate=c.lower(), controls=controls, invert=invert
            )
            for q, c in support
        )
    circuit = BatchCircuit(num_qubits=n, instructions=tuple(out))
    columns = tuple(record.get(e) for e in lowered.events)
    return circuit, columns, tuple(sites)


def _control(op: PauliOp, record: Mapping[str, int]) -> tuple[tuple[int, ...], bool, bool] | None:
    """A controlled Pauli's record controls, whether inverted, and whether it never
    applies (an event nothing produced yet reads 0); None beyond a batch circuit."""
    if op.when and op.parity:
        return None
    if len(op.when) > 1:
        return None
    if op.when:
        ((event, value),) = op.when
        if event not in record:  # reads 0
            return ((), False, value != 0)
        return ((record[event],), value == 0, False)
    controls = tuple(record[e] for e in op.parity if e in record)
    if op.parity and not controls:
        return ((), False, True)  # a parity of zeros
    return (controls, False, False)


__all__ = [
    "Location",
    "Tally",
    "batch_form",
    "error_patterns",
    "locations",
    "measure_pauli",
    "quarter_turn",
    "run_branches",
]
