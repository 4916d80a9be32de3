"""The emulator: a validated, scheduled job lowered onto QMK's engines, seeded shots out.

Public API:

- :func:`run_job` -- parse (wire form or :class:`~.job.Job`), validate, schedule, lower,
  run; returns a :class:`Result`;
- :func:`lower` and :class:`Circuit` / :class:`Step` -- the job as one sequence of gates,
  noise ops (the one noise IR of :mod:`.noise`), measurements and resets, idle noise
  placed from the timeline; both backends run this same sequence;
- :data:`BACKENDS`, :func:`choose_backend`;
- :class:`Result` -- ``bits`` (shots x recorded bits, int8, -1 for a lost atom),
  ``counts()``, ``measurements()`` (the wire form's records), ``to_json()``.

How shots are drawn (one semantics on every backend; the seed fixes every draw):

1. Loss is state-independent, so it is sampled first, for all shots at once: every loss
   op of the IR and every measurement's ``p_loss``. A lost atom takes part in nothing
   later: the two-qubit gates it would join are skipped (so is their noise), and its
   measurements read -1. Shots are grouped by the set of skipped gates; each group is one
   circuit.
2. ``stabilizer`` (stim): a group's circuit (Clifford gates, ``PAULI_CHANNEL_1/2``, ``M``,
   ``R``) is compiled once and sampled for all its shots.
   ``state-vector`` (the statevector engine, :func:`qmk.engines.make_engine`): when every
   measurement is terminal and there is no amplitude damping or mid-circuit reset, the
   Pauli errors are drawn for all shots up front, shots with the same errors share one
   simulation, and their outcomes are sampled from its final state; otherwise each shot is
   a trajectory (amplitude damping by Kraus-branch sampling through an ancilla,
   measurements collapse).
3. Readout flips are applied to the recorded bits.
"""

from __future__ import annotations

import enum
import functools
import heapq
import math
import secrets
import time
from collections.abc import Mapping, Sequence
from collections.abc import Set as AbstractSet
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from qmk.devices.errors import DeviceError
from qmk.devices.neutral_atom.isa import GATES, OpKind
from qmk.devices.neutral_atom.job import AUTO, STABILIZER, STATEVECTOR, Job, parse_job
from qmk.devices.neutral_atom.noise import (
    NoiseKind,
    NoiseOp,
    gate_noise,
    idle_noise,
    measure_noise,
    prep_noise,
)
from qmk.devices.neutral_atom.profiles import Profile
from qmk.devices.neutral_atom.schedule import Timeline
from qmk.devices.neutral_atom.validate import validate_job
from qmk.engines.gates import GATES as ENGINE_GATES

#: The backends, as job ``device_id`` names them.
BACKENDS: tuple[str, ...] = (STATEVECTOR, STABILIZER)

_PAULI_GATES = ("i", "x", "y", "z")


class StepKind(str, enum.Enum):
    """What one step of a lowered circuit does."""

    GATE = "gate"
    NOISE = "noise"
    MEASURE = "measure"
    RESET = "reset"


@dataclass(frozen=True, slots=True, kw_only=True)
class Step:
    """One step: a gate (``gates``: engine gates with parameters), a noise op, a measurement
    of one atom (``record``: its column of the result), or a reset."""

    kind: StepKind
    atoms: tuple[int, ...]
    index: int
    gates: tuple[tuple[str, tuple[float, ...]], ...] = ()
    noise: NoiseOp | None = None
    #: For gate noise, the step of its gate (skipped with it); -1 otherwise.
    owner: int = -1
    record: int = -1


@dataclass(frozen=True, slots=True, kw_only=True)
class Circuit:
    """A job lowered: steps in an order that respects every atom's order of operations."""

    n_atoms: int
    steps: tuple[Step, ...]
    #: Each Measure instruction: its index and its targets (their bits are consecutive).
    records: tuple[tuple[int, tuple[int, ...]], ...]
    p_loss: float
    readout: tuple[float, float]

    @property
    def n_bits(self) -> int:
        return sum(len(t) for _, t in self.records)

    def first_unsupported(self, backend: str) -> tuple[int, str] | None:
        """The first instruction ``backend`` cannot run, and why (None: it runs them all)."""
        if backend == STATEVECTOR:
            return None
        for step in self.steps:
            if step.kind is StepKind.GATE:
                for gate, params in step.gates:
                    if not ENGINE_GATES[gate].is_clifford(params):
                        return step.index, f"{gate}{list(params) if params else ''} is not Clifford"
            elif step.noise is not None and step.noise.kind is NoiseKind.DAMP:
                return step.index, "amplitude damping is not a Pauli channel"
        return None

    @property
    def terminal(self) -> bool:
        """Whether no atom is touched after it is measured, and no reset follows a gate."""
        measured: set[int] = set()
        touched: set[int] = set()
        for step in self.steps:
            if step.kind is StepKind.NOISE:
                continue
            if measured.intersection(step.atoms):
                return False
            if step.kind is StepKind.MEASURE:
                measured.update(step.atoms)
            elif step.kind is StepKind.RESET:
                if touched.intersection(step.atoms):
                    return False
            else:
                touched.update(step.atoms)
        return True


def lower(job: Job, timeline: Timeline) -> Circuit:
    """The job as one circuit: idle noise for each atom's idle time, gate noise after gates,
    prep noise after AllocArray and Reset, ``p_quantum_flip`` before measurements."""
    model = job.noise
    steps: list[Step] = []
    records: list[tuple[int, tuple[int, ...]]] = []
    last_end = [0.0] * job.n_atoms
    bit = 0

    def add_noise(ops: Sequence[NoiseOp], index: int, owner: int = -1) -> None:
        steps.extend(
            Step(kind=StepKind.NOISE, atoms=op.atoms, index=index, noise=op, owner=owner)
            for op in ops
        )

    def idle(atoms: Sequence[int], start: float, index: int) -> None:
        for a in atoms:
            add_noise(idle_noise(model, a, start - last_end[a]), index)

    for ins, entry in zip(job.program, timeline.entries, strict=True):
        kind, i = ins.kind, ins.index
        if kind is OpKind.ALLOC:
            for a in range(ins.n_qubits):
                add_noise(prep_noise(model, a), i)
        elif kind is OpKind.GATE:
            idle(ins.targets, entry.start_ns, i)
            gate_step = len(steps)
            steps.append(
                Step(
                    kind=StepKind.GATE,
                    atoms=ins.targets,
                    index=i,
                    gates=GATES[ins.gate].engine_gates(ins.params),
                )
            )
            add_noise(gate_noise(model, ins.targets), i, owner=gate_step)
            for a in ins.targets:
                last_end[a] = entry.end_ns
        elif kind is OpKind.PULSE:
            # A detuned pulse is a Z rotation; its time counts as idle time (below).
            angle = ins.detuning * ins.duration * 1e-3
            steps.append(
                Step(kind=StepKind.GATE, atoms=(ins.atom,), index=i, gates=(("rz", (angle,)),))
            )
        elif kind is OpKind.MEASURE:
            idle(ins.targets, entry.start_ns, i)
            records.append((i, ins.targets))
            for a in ins.targets:
                add_noise(measure_noise(model, a), i)
                steps.append(Step(kind=StepKind.MEASURE, atoms=(a,), index=i, record=bit))
                bit += 1
                last_end[a] = entry.end_ns
        elif kind is OpKind.RESET:
            idle(ins.targets, entry.start_ns, i)
            for a in ins.targets:
                steps.append(Step(kind=StepKind.RESET, atoms=(a,), index=i))
                add_noise(prep_noise(model, a), i)
                last_end[a] = entry.end_ns
    return Circuit(
        n_atoms=job.n_atoms,
        steps=tuple(steps),
        records=tuple(records),
        p_loss=model.p_loss,
        readout=(model.readout.p_flip0_to_1, model.readout.p_flip1_to_0),
    )


def choose_backend(job: Job, circuit: Circuit) -> str:
    """The backend that runs ``job``: its ``device_id``, or for ``auto`` the stabilizer
    when it can run the whole circuit, else the statevector.

    Raises:
        DeviceError: ``QD107`` when the job names the stabilizer and it cannot run it.
    """
    if job.device_id == AUTO:
        return STABILIZER if circuit.first_unsupported(STABILIZER) is None else STATEVECTOR
    blocker = circuit.first_unsupported(job.device_id)
    if blocker is not None:
        index, why = blocker
        raise DeviceError.of(
            "backend-unsupported",
            f"instruction #{index}: the {job.device_id} backend cannot run it: {why}; "
            "use device_id state-vector (or auto)",
            index=index,
            device_id=job.device_id,
        )
    return job.device_id


# --------------------------------------------------------------------------- results


@dataclass(frozen=True, slots=True, kw_only=True)
class Result:
    """A finished job: every shot's recorded bits, the timeline, telemetry."""

    job_id: str
    device_id: str
    profile: str | None
    isa_version: str
    shots: int
    seed: int
    records: tuple[tuple[int, tuple[int, ...]], ...]
    #: shots x recorded bits (int8): 0, 1, or -1 for a lost atom; columns in program order.
    bits: np.ndarray
    timeline: Timeline
    telemetry: Mapping[str, Any] = field(default_factory=dict)
    status: str = "completed"

    def counts(self) -> dict[str, int]:
        """How often each outcome came: the key is every Measure's bits in program order,
        the first leftmost, a lost atom as ``L``."""
        if self.bits.shape[1] == 0:
            return {"": self.shots}
        table = np.frombuffer(b"01L", dtype=np.uint8)
        chars = table[np.where(self.bits < 0, 2, self.bits).astype(np.intp)]
        rows = np.ascontiguousarray(chars).view(f"S{chars.shape[1]}").ravel()
        keys, counts = np.unique(rows, return_counts=True)
        return {
            k.decode(): int(c)
            for k, c in sorted(zip(keys, counts, strict=True), key=lambda kc: kc[0])
        }

    def measurements(self) -> list[dict[str, Any]]:
        """The wire form's records: for each shot, for each Measure, ``{targets, bits}``."""
        out: list[dict[str, Any]] = []
        rows = self.bits.tolist()
        for row in rows:
            column = 0
            for _, targets in self.records:
                out.append({"targets": list(targets), "bits": row[column : column + len(targets)]})
                column += len(targets)
        return out

    def to_json(self, *, measurements: bool = True) -> dict[str, Any]:
        """The result as one JSON object (timeline in us)."""
        out: dict[str, Any] = {
            "job_id": self.job_id,
            "status": self.status,
            "device_id": self.device_id,
            "profile": self.profile,
            "isa_version": self.isa_version,
            "shots": self.shots,
            "seed": self.seed,
            "counts": self.counts(),
        }
        if measurements:
            out["measurements"] = self.measurements()
        out["timeline_units"] = "us"
        out["timeline"] = self.timeline.to_json("us")
        out["telemetry"] = dict(self.telemetry)
        return out


# --------------------------------------------------------------------------- sampling


def _seed(*parts: int) -> int:
    return int(np.random.SeedSequence(list(parts)).generate_state(1, dtype=np.uint64)[0] >> 1)


def _bernoulli(rng: np.random.Generator, p: float, n: int) -> np.ndarray:
    """The indices in ``range(n)`` of the successes of ``n`` Bernoulli(``p``) trials.

    Rare successes are found by geometric skipping (the gaps between successes of a
    Bernoulli process are geometric), so the cost follows the successes, not ``n``."""
    if p <= 0.0 or n == 0:
        return np.zeros(0, dtype=np.int64)
    if p >= 0.05:
        return np.flatnonzero(rng.random(n) < p)
    chunks: list[np.ndarray] = []
    last = -1
    while True:
        expected = (n - last) * p
        size = int(expected + 6 * math.sqrt(expected) + 16)
        positions = last + np.cumsum(rng.geometric(p, size))
        chunks.append(positions)
        last = int(positions[-1])
        if last >= n:
            break
    found = np.concatenate(chunks)
    return found[found < n]


@dataclass(slots=True)
class _Losses:
    """Loss drawn for every shot (sparse: only the losses that happened), and the gates
    it skips."""

    #: Every loss: its shot, its atom and the step it happened at (an atom's earliest wins).
    shot: np.ndarray
    atom: np.ndarray
    step: np.ndarray
    #: The two-qubit gate steps, and shots x those steps: whether the gate is skipped.
    gate_steps: list[int]
    skipped: np.ndarray

    @property
    def atoms_lost(self) -> int:
        """How many (shot, atom) pairs lost their atom."""
        return len(np.unique(self.shot * (int(self.atom.max(initial=0)) + 1) + self.atom))


def _draw_losses(circuit: Circuit, shots: int, rng: np.random.Generator) -> _Losses:
    """Walk the circuit in order: a two-qubit gate is skipped in the shots where one of its
    atoms is lost before it, and the loss its noise would cause is then not drawn.

    Loss events are drawn in batches (all those between two two-qubit gates at once):
    only a gate's skip reads the losses before it. Events of one probability are one
    Bernoulli process over (event, shot) pairs, sampled sparsely (:func:`_bernoulli`)."""
    found: dict[int, list[tuple[np.ndarray, np.ndarray]]] = {}  # atom -> (shots, steps)
    gate_steps: list[int] = []
    columns: list[np.ndarray] = []
    skip_of: dict[int, np.ndarray] = {}
    pending: list[tuple[int, int, float, int]] = []  # step, atom, probability, owner

    def lost_before(atom: int, k: int) -> np.ndarray:
        out = np.zeros(shots, dtype=bool)
        for where, when in found.get(atom, ()):
            out[where[when < k]] = True
        return out

    def flush() -> None:
        by_p: dict[float, list[tuple[int, int, float, int]]] = {}
        for event in pending:
            by_p.setdefault(event[2], []).append(event)
        pending.clear()
        for p, events in by_p.items():
            hits = _bernoulli(rng, p, len(events) * shots)
            if not len(hits):
                continue
            which, shot = np.divmod(hits, shots)
            owners = np.array([e[3] for e in events])[which]
            keep = np.ones(len(hits), dtype=bool)
            for owner in np.unique(owners[owners >= 0]).tolist():
                if owner in skip_of:
                    mine = owners == owner
                    keep[mine] &= ~skip_of[owner][shot[mine]]
            which, shot = which[keep], shot[keep]
            if not len(which):  # every hit fell in a shot whose gate was skipped
                continue
            at = np.array([e[0] for e in events])[which]
            atoms = np.array([e[1] for e in events], dtype=np.intp)[which]
            order = np.argsort(atoms, kind="stable")
            atoms, shot, at = atoms[order], shot[order], at[order]
            unique, starts = np.unique(atoms, return_index=True)
            for a, lo, hi in zip(
                unique.tolist(), starts.tolist(), [*starts[1:].tolist(), len(atoms)], strict=True
            ):
                found.setdefault(a, []).append((shot[lo:hi], at[lo:hi]))

    for k, step in enumerate(circuit.steps):
        if step.kind is StepKind.GATE:
            if len(step.atoms) > 1:
                flush()
                skipped = np.zeros(shots, dtype=bool)
                for a in step.atoms:
                    if a in found:
                        skipped |= lost_before(a, k)
                gate_steps.append(k)
                columns.append(skipped)
                skip_of[k] = skipped
            continue
        if step.kind is StepKind.NOISE and step.noise is not None:
            if step.noise.kind is NoiseKind.LOSS:
                pending.append((k, step.atoms[0], step.noise.probs[0], step.owner))
        elif step.kind is StepKind.MEASURE and circuit.p_loss > 0:
            pending.append((k, step.atoms[0], circuit.p_loss, -1))
    flush()
    matrix = np.stack(columns, axis=1) if columns else np.zeros((shots, 0), dtype=bool)
    parts = [(a, where, when) for a, lists in found.items() for where, when in lists]
    return _Losses(
        shot=np.concatenate([w for _, w, _ in parts]) if parts else np.zeros(0, dtype=np.int64),
        atom=(
            np.concatenate([np.full(len(w), a) for a, w, _ in parts])
            if parts
            else np.zeros(0, dtype=np.int64)
        ),
        step=np.concatenate([t for _, _, t in parts]) if parts else np.zeros(0, dtype=np.int64),
        gate_steps=gate_steps,
        skipped=matrix,
    )


def _draw_paulis(ops: Sequence[NoiseOp], shots: int, rng: np.random.Generator) -> np.ndarray:
    """shots x len(ops): the Pauli each op applied (0: none; PAULI1: 1..3; PAULI2: 1..15)."""
    out = np.zeros((shots, len(ops)), dtype=np.int8)
    for column, op in enumerate(ops):
        probs = np.array(op.probs if op.kind is NoiseKind.PAULI2 else (0.0, *op.probs))
        probs[0] = 0.0
        cumulative = np.cumsum(probs)
        u = rng.random(shots)
        out[:, column] = np.searchsorted(cumulative, u, side="right")
        out[u >= cumulative[-1], column] = 0
    return out


def _apply_pauli(engine: Any, qubits: Sequence[int], op: NoiseOp, label: int) -> None:
    if label == 0:
        return
    if op.kind is NoiseKind.PAULI1:
        engine.apply(_PAULI_GATES[label], [qubits[0]])
        return
    first, second = divmod(label, 4)
    for q, p in ((qubits[0], first), (qubits[1], second)):
        if p:
            engine.apply(_PAULI_GATES[p], [q])


def _damp(engine: Any, qubit: int, gamma: float) -> None:
    """Amplitude damping by Kraus-branch sampling: the ancilla of its Stinespring dilation
    is rotated by RY(theta) controlled on ``qubit`` (sin^2(theta/2) = gamma) and measured;
    outcome 1 (probability gamma * P(1)) is the jump K1 (then |1> -> |0>), outcome 0 leaves
    K0 = diag(1, sqrt(1 - gamma)) applied and the state renormalised."""
    p1 = engine.probability(qubit)
    if p1 <= 1e-15:
        return  # |0>: K0 is the identity and the jump has probability 0
    theta = 2.0 * math.asin(math.sqrt(min(1.0, gamma)))
    ancilla = engine.allocate()
    engine.apply("ry", [ancilla], [theta / 2])
    engine.apply("cx", [qubit, ancilla])
    engine.apply("ry", [ancilla], [-theta / 2])
    engine.apply("cx", [qubit, ancilla])
    if engine.measure(ancilla):
        engine.apply("x", [qubit])
        engine.apply("x", [ancilla])
    engine.free(ancilla)


def _active(circuit: Circuit, skipped: set[int]) -> list[Step]:
    return [
        s
        for k, s in enumerate(circuit.steps)
        if k not in skipped and (s.owner < 0 or s.owner not in skipped)
    ]


def _run_statevector(
    circuit: Circuit, steps: Sequence[Step], shots: int, seed: int, stats: dict[str, int]
) -> np.ndarray:
    """shots x bits (uint8) of one group's circuit on the statevector engine."""
    from qmk.engines import make_engine

    n_bits = circuit.n_bits
    out = np.zeros((shots, n_bits), dtype=np.uint8)
    paulis = [s.noise for s in steps if s.noise is not None and s.noise.is_pauli]
    has_damp = any(s.noise is not None and s.noise.kind is NoiseKind.DAMP for s in steps)
    rng = np.random.default_rng(_seed(seed, 1))
    labels = _draw_paulis(paulis, shots, rng)
    if circuit.terminal and not has_damp:
        patterns, inverse = np.unique(labels, axis=0, return_inverse=True)
        inverse = inverse.ravel()
        for p, pattern in enumerate(patterns):
            rows = np.flatnonzero(inverse == p)
            engine = make_engine("statevector", seed=_seed(seed, 2, p))
            qubits = [engine.allocate() for _ in range(circuit.n_atoms)]
            measured: list[tuple[int, int]] = []
            column = 0
            for step in steps:
                if step.kind is StepKind.GATE:
                    for gate, params in step.gates:
                        engine.apply(gate, [qubits[a] for a in step.atoms], params)
                elif step.kind is StepKind.NOISE:
                    assert step.noise is not None
                    if step.noise.is_pauli:
                        _apply_pauli(
                            engine,
                            [qubits[a] for a in step.atoms],
                            step.noise,
                            int(pattern[column]),
                        )
                        column += 1
                elif step.kind is StepKind.MEASURE:
                    measured.append((step.record, qubits[step.atoms[0]]))
                else:
                    engine.reset(qubits[step.atoms[0]])
            stats["simulations"] += 1
            if measured:
                drawn = engine.sample([q for _, q in measured], len(rows))
                columns = np.array([r for r, _ in measured], dtype=np.intp)
                out[np.ix_(rows, columns)] = drawn
        stats["mode_sampled"] = 1
        return out
    engine = make_engine("statevector", seed=_seed(seed, 3))
    qubits = [engine.allocate() for _ in range(circuit.n_atoms)]
    start = engine.snapshot()
    for shot in range(shots):
        engine.restore(start)
        engine.reseed(_seed(seed, 4, shot))
        column = 0
        for step in steps:
            if step.kind is StepKind.GATE:
                for gate, params in step.gates:
                    engine.apply(gate, [qubits[a] for a in step.atoms], params)
            elif step.kind is StepKind.NOISE:
                assert step.noise is not None
                if step.noise.is_pauli:
                    _apply_pauli(
                        engine,
                        [qubits[a] for a in step.atoms],
                        step.noise,
                        int(labels[shot, column]),
                    )
                    column += 1
                elif step.noise.kind is NoiseKind.DAMP:
                    _damp(engine, qubits[step.atoms[0]], step.noise.probs[0])
            elif step.kind is StepKind.MEASURE:
                out[shot, step.record] = engine.measure(qubits[step.atoms[0]])
            else:
                engine.reset(qubits[step.atoms[0]])
        stats["simulations"] += 1
    stats["mode_trajectories"] = 1
    return out


@functools.lru_cache(maxsize=4096)
def _stim_gate_names(gates: tuple[tuple[str, tuple[float, ...]], ...]) -> tuple[str, ...]:
    from qmk.engines.stabilizer import stim_gate

    names = []
    for gate, params in gates:
        name = stim_gate(gate, params)
        assert name is not None, gate
        if name != "I":
            names.append(name)
    return tuple(names)


@functools.lru_cache(maxsize=4096)
def _stim_channel(kind: NoiseKind, probs: tuple[float, ...]) -> str:
    if kind is NoiseKind.PAULI1:
        return f"PAULI_CHANNEL_1({','.join(map(repr, probs))})"
    if kind is NoiseKind.PAULI2:
        return f"PAULI_CHANNEL_2({','.join(map(repr, probs[1:]))})"
    return ""  # loss is drawn classically; damping never reaches the stabilizer


def _stim_line(step: Step, slot: Mapping[int, int]) -> str:
    """The stim text of one step on stim qubits ``slot[atom]`` ("" when stim has nothing
    to do)."""
    atoms = step.atoms
    targets = str(slot[atoms[0]]) if len(atoms) == 1 else f"{slot[atoms[0]]} {slot[atoms[1]]}"
    kind = step.kind
    if kind is StepKind.NOISE:
        assert step.noise is not None
        head = _stim_channel(step.noise.kind, step.noise.probs)
        return f"{head} {targets}" if head else ""
    if kind is StepKind.GATE:
        return "\n".join(f"{name} {targets}" for name in _stim_gate_names(step.gates))
    if kind is StepKind.MEASURE:
        return f"M {targets}"
    return f"R {targets}"


def stim_program(
    circuit: Circuit, skipped: AbstractSet[int] = frozenset()
) -> tuple[str, list[int]]:
    """The circuit (less the ``skipped`` gate steps and their noise) as stim text, and the
    result column of each stim measurement record, in record order.

    Atoms share stim qubits: an atom's one-qubit steps before its first two-qubit step are
    emitted just before that step, those after its last one just after it (they act on no
    other atom, so they commute with everything in between), and once an atom is done its
    stim qubit is reset and handed to the next atom that starts. A chain program then needs
    a few stim qubits however many atoms it has, which keeps stim's reference sample (its
    cost grows with the square of the qubits) and its frame simulation small.
    """
    active = [
        s
        for k, s in enumerate(circuit.steps)
        if k not in skipped and (s.owner < 0 or s.owner not in skipped)
    ]
    first: dict[int, int] = {}
    last: dict[int, int] = {}
    for i, step in enumerate(active):
        if len(step.atoms) > 1:
            for a in step.atoms:
                first.setdefault(a, i)
                last[a] = i
    heads: dict[int, list[Step]] = {}
    tails: dict[int, list[Step]] = {}
    for i, step in enumerate(active):
        if len(step.atoms) == 1:
            a = step.atoms[0]
            if a not in first or i < first[a]:
                heads.setdefault(a, []).append(step)
            elif i > last[a]:
                tails.setdefault(a, []).append(step)
    lines: list[str] = []
    columns: list[int] = []
    slot: dict[int, int] = {}
    free: list[int] = []
    used = 0

    def emit(step: Step) -> None:
        line = _stim_line(step, slot)
        if line:
            lines.append(line)
        if step.kind is StepKind.MEASURE:
            columns.append(step.record)

    def start(a: int) -> None:
        nonlocal used
        if free:
            slot[a] = heapq.heappop(free)
            lines.append(f"R {slot[a]}")
        else:
            slot[a] = used
            used += 1
        for step in heads.pop(a, ()):
            emit(step)

    def finish(a: int) -> None:
        for step in tails.pop(a, ()):
            emit(step)
        heapq.heappush(free, slot.pop(a))

    for i, step in enumerate(active):
        if len(step.atoms) == 1:
            a = step.atoms[0]
            if a not in first:  # no two-qubit step: the whole atom at its first step
                if a in heads:
                    start(a)
                    finish(a)
            elif first[a] < i < last[a]:
                emit(step)
            continue
        for a in step.atoms:
            if a not in slot:
                start(a)
        emit(step)
        for a in step.atoms:
            if last[a] == i:
                finish(a)
    return "\n".join(lines), columns


def _run_stim(
    circuit: Circuit, skipped: AbstractSet[int], shots: int, seed: int, stats: dict[str, int]
) -> np.ndarray:
    import stim

    text, columns = stim_program(circuit, skipped)
    sampler = stim.Circuit(text).compile_sampler(seed=seed)
    stats["simulations"] += 1
    out = np.zeros((shots, circuit.n_bits), dtype=np.uint8)
    if columns:
        packed = sampler.sample(shots, bit_packed=True)
        drawn = np.unpackbits(packed, axis=1, count=len(columns), bitorder="little")
        out[:, np.array(columns, dtype=np.intp)] = drawn
    return out


def _mask_lost(circuit: Circuit, losses: _Losses, bits: np.ndarray) -> int:
    """Write -1 into the bits of atoms lost at or before their measurement; how many."""
    by_atom: dict[int, list[tuple[int, int]]] = {}
    for k, s in enumerate(circuit.steps):
        if s.record >= 0:
            by_atom.setdefault(s.atoms[0], []).append((k, s.record))
    cells: set[tuple[int, int]] = set()
    for shot, atom, step in zip(
        losses.shot.tolist(), losses.atom.tolist(), losses.step.tolist(), strict=True
    ):
        for k, column in by_atom.get(atom, ()):
            if step <= k:
                cells.add((shot, column))
    if cells:
        rows, columns = zip(*cells, strict=True)
        bits[list(rows), list(columns)] = -1
    return len(cells)


def _groups(matrix: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The distinct rows of a boolean matrix and, for each row, the index of its pattern
    (rows are bit-packed first: comparing bytes is far cheaper than booleans)."""
    shots = matrix.shape[0]
    if not matrix.any():
        return np.zeros((1, matrix.shape[1]), dtype=bool), np.zeros(shots, dtype=np.intp)
    packed = np.packbits(matrix, axis=1)
    rows = np.ascontiguousarray(packed).view(np.dtype((np.void, packed.shape[1]))).ravel()
    _, first, inverse = np.unique(rows, return_index=True, return_inverse=True)
    return matrix[first], inverse.ravel()


def execute(
    job: Job, circuit: Circuit, backend: str, seed: int
) -> tuple[np.ndarray, dict[str, Any]]:
    """Every shot's recorded bits (int8, -1 lost) of ``circuit`` on ``backend``, and stats."""
    shots = job.shots
    classical = np.random.default_rng(_seed(seed, 0))
    losses = _draw_losses(circuit, shots, classical)
    gate_steps = losses.gate_steps
    patterns, inverse = _groups(losses.skipped)
    raw = np.zeros((shots, circuit.n_bits), dtype=np.uint8)
    stats = {"groups": len(patterns), "simulations": 0}
    for g, pattern in enumerate(patterns):
        rows = np.flatnonzero(inverse == g)
        skipped = {gate_steps[j] for j in np.flatnonzero(pattern)}
        group_seed = _seed(seed, 5, g)
        if backend == STABILIZER:
            raw[rows] = _run_stim(circuit, skipped, len(rows), group_seed, stats)
        else:
            raw[rows] = _run_statevector(
                circuit, _active(circuit, skipped), len(rows), group_seed, stats
            )
    bits = raw.astype(np.int8)
    p01, p10 = circuit.readout
    if p01 > 0 or p10 > 0:
        # Candidates at the larger rate, kept at the rate of the bit they would flip.
        top = max(p01, p10)
        flat = bits.reshape(-1)
        hits = _bernoulli(classical, top, flat.size)
        rate = np.where(flat[hits] == 1, p10, p01) / top
        hits = hits[classical.random(len(hits)) < rate]
        flat[hits] ^= 1
    lost_bits = _mask_lost(circuit, losses, bits)
    mode = (
        "stim-batch"
        if backend == STABILIZER
        else ("trajectories" if stats.pop("mode_trajectories", 0) else "sampled")
    )
    stats.pop("mode_sampled", None)
    return bits, {**stats, "mode": mode, "lost_bits": lost_bits, "atoms_lost": losses.atoms_lost}


def run_job(
    job: Job | Mapping[str, Any],
    *,
    shots: int | None = None,
    seed: int | None = None,
    device: str | Profile | None = None,
    backend: str | None = None,
    strict_timing: bool = False,
) -> Result:
    """Run a job (its wire form, or a parsed :class:`Job`) on the emulator.

    Args:
        job: the job.
        shots, seed: in place of the job's (a job with no seed gets a fresh one, reported
            in the result so the run can be repeated).
        device: a preset name or :class:`Profile` in place of the job's ``profile``.
        backend: ``state-vector``, ``stabilizer`` or ``auto``, in place of ``device_id``.
        strict_timing: refuse operations inside a measurement cooldown (``QD209``)
            instead of letting the scheduler wait.

    Raises:
        DeviceError: a ``QD`` code: the job, a hardware violation, or a backend that
            cannot run it; nothing ran.

    >>> ghz = {"profile": "ideal_small_array", "program": [
    ...     {"op": "AllocArray", "n_qubits": 3},
    ...     {"op": "ApplyGate", "name": "H", "targets": [0]},
    ...     {"op": "ApplyGate", "name": "CX", "targets": [0, 1]},
    ...     {"op": "ApplyGate", "name": "CX", "targets": [1, 2]},
    ...     {"op": "Measure", "targets": [0, 1, 2]}]}
    >>> result = run_job(ghz, shots=1000, seed=7)
    >>> sorted(result.counts()), result.device_id
    (['000', '111'], 'stabilizer')
    """
    began = time.perf_counter()
    if isinstance(job, Job):
        parsed = job
        if shots is not None or seed is not None or device is not None or backend is not None:
            raise DeviceError.of(
                "job-malformed", "give shots, seed, device and backend to parse_job for a Job"
            )
    else:
        parsed = parse_job(job, preset=device, shots=shots, seed=seed, device_id=backend)
    timeline = validate_job(parsed, strict_timing=strict_timing)
    circuit = lower(parsed, timeline)
    chosen = choose_backend(parsed, circuit)
    run_seed = parsed.seed if parsed.seed is not None else secrets.randbits(63)
    validated = time.perf_counter()
    bits, stats = execute(parsed, circuit, chosen, run_seed)
    finished = time.perf_counter()
    noise_ops = sum(1 for s in circuit.steps if s.kind is StepKind.NOISE)
    telemetry = {
        "backend": chosen,
        **stats,
        "atoms": parsed.n_atoms,
        "instructions": len(parsed.program),
        "noise_ops": noise_ops,
        "duration_ns": timeline.total_ns,
        "inserted_waits": len(timeline.inserted),
        "validators": list(_validator_names()),
        "elapsed_s": round(finished - began, 6),
        "validate_s": round(validated - began, 6),
        "execute_s": round(finished - validated, 6),
    }
    if parsed.max_threads is not None:
        telemetry["max_threads"] = "accepted and ignored: each job runs on one thread"
    return Result(
        job_id=parsed.job_id,
        device_id=chosen,
        profile=parsed.profile,
        isa_version=str(parsed.isa_version),
        shots=parsed.shots,
        seed=run_seed,
        records=circuit.records,
        bits=bits,
        timeline=timeline,
        telemetry=telemetry,
    )


def _validator_names() -> tuple[str, ...]:
    from qmk.devices.neutral_atom.validate import VALIDATORS

    return tuple(VALIDATORS)


__all__ = [
    "BACKENDS",
    "Circuit",
    "Result",
    "Step",
    "StepKind",
    "choose_backend",
    "execute",
    "lower",
    "run_job",
    "stim_program",
]
