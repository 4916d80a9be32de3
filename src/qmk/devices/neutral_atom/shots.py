"""How the emulator draws shots, on the engines' shot machinery (one semantics on every
backend; the seed fixes every draw).

1. Loss is state-independent, so it is sampled first, for all shots at once: every loss
   op of the IR and every measurement's ``p_loss``. A lost atom takes part in nothing
   later: the two-qubit gates it would join are skipped (so is their noise), and its
   measurements read -1. Shots are grouped by the set of skipped gates; each group is one
   circuit.
2. ``stabilizer``: a group's circuit (Clifford gates, Pauli channels, measurements,
   resets) becomes one batch circuit of the engines (:func:`batch_program`,
   :mod:`qmk.engines.batch`). The stabilizer engine's batch capability compiles it
   once and samples it for all its shots. Every Pauli channel, the two-qubit (correlated)
   ones included, is an instruction of that circuit, drawn by the engine.
   ``state-vector``: a chunk's shots start as one trajectory of the executor's runner
   (:class:`qmk.execution.trajectories.Runner`) on the statevector engine. A Pauli
   channel splits off the shots it gives an error, and a mid-circuit measurement or
   reset splits them by outcome as they fall. Each trajectory goes on from where it
   split (the shots no error touched are simulated once). Measurements at the end are
   sampled from each trajectory's final state. Amplitude damping is the measured ancilla
   of its Stinespring dilation. Where nearly every shot meets an error on a small
   register (:func:`stacks_pay`), a chunk's shots are instead the rows of one stack of
   state vectors, every step one pass over all of them (:mod:`.stacked`).
3. Readout flips are applied to the recorded bits. They are drawn (with the lost cells)
   right after the losses, before any shot, so each chunk's shots can be finished, and
   handed to ``on_chunk`` (a kernel job's streamed measurements), as soon as it is drawn.

**Pause points.** A group's shots are drawn in chunks of :func:`chunk_shots`: chunk 0
with the group's seed (so a group of at most that many shots is one draw), chunk ``c``
with a seed of its own. A chunk is :data:`CHUNK_SHOTS` on the stabilizer, and on a
state-vector backend as many as keep its estimated work (:func:`shot_work`) within
:data:`CHUNK_WORK`, about a second, so that a pause point is never further. The
chunks depend on the job and its seed only.
Between two chunks (of one group, or of two) :func:`execute` asks its control
(:class:`~qmk.execution.trajectories.Control`, the kernel worker's) whether to save its
state and go on, or save it and stop. The saved state is an
:class:`~qmk.execution.checkpoint.ExecutionState` whose ``bits`` are the raw bits drawn
so far, ``group`` the chunks done (also its
``epoch``) and ``progress`` the run's statistics. Resumed from it, the job draws the
same losses again (from the seed), the chunks not yet drawn, then the readout flips:
the bits of a run that never stopped. Inside a chunk a job does not stop.
"""

from __future__ import annotations

import functools
import heapq
import math
from collections.abc import Callable, Mapping, Sequence
from collections.abc import Set as AbstractSet
from dataclasses import dataclass
from typing import Any

import numpy as np

from qmk import defaults
from qmk.arrays import distinct
from qmk.devices.neutral_atom import stacked
from qmk.devices.neutral_atom.backends import BACKENDS
from qmk.devices.neutral_atom.circuit import Circuit, Step, StepKind
from qmk.devices.neutral_atom.job import STABILIZER, Job
from qmk.devices.neutral_atom.noise import NoiseKind
from qmk.engines import EngineError, engine_class
from qmk.engines.batch import BatchCircuit, BatchCompiler, Instruction, Kind, batch_compiler
from qmk.execution.branches import ExecutionState, Progress
from qmk.execution.chunks import pause_between_chunks, resume_chunks
from qmk.execution.microcode import Ops, Writer
from qmk.execution.trajectories import Control, Runner, pauli_channel


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
    #: The two-qubit gate steps skipped in some shot, and shots x those steps: whether
    #: the gate is skipped. (A gate no shot skips has no column: dropping a column of
    #: zeros keeps both the groups and their order, and a large program's matrix small.)
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
    found: _Found = {}
    gate_steps: list[int] = []
    columns: list[np.ndarray] = []
    skip_of: dict[int, np.ndarray] = {}
    pending: list[_LossEvent] = []
    for k, step in enumerate(circuit.steps):
        if step.kind is StepKind.GATE:
            if len(step.atoms) > 1:
                _flush_losses(pending, found, skip_of, shots, rng)
                lost = [a for a in step.atoms if a in found]
                if not lost:
                    continue
                skipped = _lost_before(found, lost[0], k, shots)
                for a in lost[1:]:
                    skipped |= _lost_before(found, a, k, shots)
                if skipped.any():
                    gate_steps.append(k)
                    columns.append(skipped)
                    skip_of[k] = skipped
            continue
        if step.kind is StepKind.NOISE and step.noise is not None:
            if step.noise.kind is NoiseKind.LOSS:
                pending.append((k, step.atoms[0], step.noise.probs[0], step.owner))
        elif step.kind is StepKind.MEASURE and circuit.p_loss > 0:
            pending.append((k, step.atoms[0], circuit.p_loss, -1))
    _flush_losses(pending, found, skip_of, shots, rng)
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


#: The losses :func:`_draw_losses` has drawn: atom -> (shots, steps) of each batch.
_Found = dict[int, list[tuple[np.ndarray, np.ndarray]]]
#: A loss event waiting to be drawn: its step, atom, probability and owner gate step.
_LossEvent = tuple[int, int, float, int]


def _lost_before(found: _Found, atom: int, k: int, shots: int) -> np.ndarray:
    """The shots in which ``atom`` was lost before step ``k``."""
    out = np.zeros(shots, dtype=bool)
    for where, when in found.get(atom, ()):
        out[where[when < k]] = True
    return out


def _flush_losses(
    pending: list[_LossEvent],
    found: _Found,
    skip_of: dict[int, np.ndarray],
    shots: int,
    rng: np.random.Generator,
) -> None:
    """Draw the ``pending`` loss events into ``found`` (emptying ``pending``), each
    probability's events at once; a hit in a shot where its owner gate was skipped
    (``skip_of``) is no loss."""
    by_p: dict[float, list[_LossEvent]] = {}
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
        for owner in distinct(owners[owners >= 0]).tolist():
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


def _active(circuit: Circuit, skipped: set[int]) -> list[Step]:
    return [
        s
        for k, s in enumerate(circuit.steps)
        if k not in skipped and (s.owner < 0 or s.owner not in skipped)
    ]


@dataclass(frozen=True, slots=True)
class _Record:
    """The columns of the runner's record: the circuit's bits, then each damping's ancilla."""

    events: tuple[str, ...]


def _run_statevector(
    circuit: Circuit,
    steps: Sequence[Step],
    shots: int,
    seed: int,
    stats: dict[str, int],
    engine: str = defaults.STATEVECTOR,
    *,
    stack: bool = False,
) -> np.ndarray:
    """shots x bits (uint8) of one group's circuit on ``engine`` (the statevector, or the
    engine of another non-stabilizer backend: :mod:`.backends`).

    Every shot starts in one trajectory of the executor's runner. The runner splits its
    shots where a Pauli channel gives some of them an error
    (:func:`~qmk.execution.trajectories.pauli_channel`), or where a measurement, a
    damping's too, gives them different outcomes. The shots an error
    missed stay together, and a trajectory split off goes on from where it split.
    With ``stack`` (:func:`stacks_pay`) the shots run as the rows of one stack of state
    vectors instead, every step one pass over all of them (:mod:`.stacked`)."""
    if stack:
        stats["simulations"] += shots
        stats["mode_stacked"] = 1
        visible = visible_steps(circuit, steps)
        return stacked.run(circuit.n_atoms, circuit.n_bits, visible, shots, seed)
    micro = _MicroOps(circuit, steps)
    bits = tuple(f"bit{k}" for k in range(circuit.n_bits))
    record = _Record(events=bits + tuple(f"damp{k}" for k in range(micro.damps)))
    statevector = engine_class(engine)
    runner = Runner(
        record,
        lambda: statevector(seed=seed),
        [(micro.ops, np.arange(shots))],
        shots,
        np.random.SeedSequence(seed),
    )
    rows = runner.run()
    stats["simulations"] += runner.progress.simulations
    if micro.damps or not circuit.terminal:
        stats["mode_trajectories"] = 1
    return rows[:, : circuit.n_bits]


def visible_steps(circuit: Circuit, steps: Sequence[Step]) -> list[tuple[Step, tuple[float, ...]]]:
    """The steps a record can see, each noise step with its probabilities: the gates,
    measurements and resets, and the Pauli and damping noise that changes some record.

    What no record can see is left out, exactly. An atom in |0> (allocated or reset, no
    gate since) is left alone by damping and by a Z error. So its idle noise before its
    first gate (a register waiting for the gates to reach it) keeps only its X and Y
    errors, and no damping. A Z error with no gate on its atom before the atom's next
    measurement, reset or the end changes no outcome (the noise between keeps every
    record's distribution as it is). Loss is drawn classically, so it is not here.
    """
    ground = set(range(circuit.n_atoms))  # atoms in |0>
    blind = _z_blind(steps)
    out: list[tuple[Step, tuple[float, ...]]] = []
    for k, step in enumerate(steps):
        noise = step.noise
        if step.kind is StepKind.RESET:
            ground.update(step.atoms)
        elif step.kind is not StepKind.NOISE:
            ground.difference_update(step.atoms)
        elif noise is not None and noise.kind is NoiseKind.PAULI1:
            px, py, pz = noise.probs
            if k in blind:
                pz = 0.0
            if step.atoms[0] in ground:  # Z leaves |0> as it is
                pz = 0.0
                if px or py:
                    ground.discard(step.atoms[0])
            if not (px or py or pz):
                continue
            out.append((step, (px, py, pz)))
            continue
        elif noise is not None and noise.kind is NoiseKind.PAULI2:
            ground.difference_update(step.atoms)
            out.append((step, noise.probs[1:]))  # its 16 start with I x I
            continue
        elif noise is not None and noise.kind is NoiseKind.DAMP:
            if step.atoms[0] not in ground and noise.probs[0] > 0.0:  # |0> stays as it is
                out.append((step, noise.probs))
            continue
        else:
            continue  # loss: drawn classically
        out.append((step, ()))
    return out


def errors_a_shot(visible: Sequence[tuple[Step, tuple[float, ...]]]) -> float:
    """The expected visible error events of a shot (Pauli errors, and damping jumps at
    their most): how many shots leave the error-free trajectory."""
    return math.fsum(math.fsum(probs) for step, probs in visible if step.kind is StepKind.NOISE)


#: What a trajectory of the runner costs a step besides its amplitudes, in amplitudes
#: (its micro-op's Python and the engine's call): a stack pays where its rows would be
#: trajectories of their own anyway.
RUNNER_STEP_AMPLITUDES = 1 << 13


def stacks_pay(backend: str, circuit: Circuit) -> bool:
    """Whether ``circuit``'s shots run as a stack (:mod:`.stacked`) on ``backend``: on the
    numpy statevector (``state-vector``), a register of at most
    :data:`.stacked.MAX_ATOMS` atoms, and where the runner's trajectories would cost
    more. The runner simulates about ``1 + shots * (1 - exp(-errors))`` trajectories
    (``errors``: :func:`errors_a_shot`), each step ``2**atoms +``
    :data:`RUNNER_STEP_AMPLITUDES`; the stack every shot, each step ``2**atoms``."""
    if BACKENDS[backend].engine != defaults.STATEVECTOR or circuit.n_atoms > stacked.MAX_ATOMS:
        return False
    struck = -math.expm1(-errors_a_shot(visible_steps(circuit, circuit.steps)))
    size = 2.0**circuit.n_atoms
    return struck * (size + RUNNER_STEP_AMPLITUDES) > size


class _MicroOps:
    """A circuit's visible steps (:func:`visible_steps`) as the runner's micro-ops on atoms
    ``a0, a1, ...``: its gates, measurements and resets, a Pauli channel micro-op for each
    Pauli noise op, and each amplitude damping as the measured ancilla of its dilation."""

    def __init__(self, circuit: Circuit, steps: Sequence[Step]) -> None:
        names = [f"a{a}" for a in range(circuit.n_atoms)]
        ops = Writer()
        add = ops.add
        for name in names:
            add("alloc", (name,))
        damp = 0
        for step, probs in visible_steps(circuit, steps):
            atoms = tuple(names[a] for a in step.atoms)
            noise = step.noise
            if step.kind is StepKind.GATE:
                for g, p in step.gates:
                    add("gate", atoms, gate=g, params=p)
            elif step.kind is StepKind.MEASURE:
                add("meas", atoms, event=step.record)
            elif step.kind is StepKind.RESET:
                add("reset", atoms)
            elif noise is not None and noise.kind is NoiseKind.DAMP:
                _damping(add, atoms[0], probs[0], f"ancilla{damp}", circuit.n_bits + damp)
                damp += 1
            else:
                ops.take(pauli_channel(atoms, probs))
        self.ops: Ops = ops.done()
        self.damps = damp


def _z_blind(steps: Sequence[Step]) -> set[int]:
    """The one-atom noise steps after which no gate touches their atom before its next
    measurement, reset or the end: a Z error there changes no record."""
    blind: set[int] = set()
    gated: set[int] = set()  # atoms a gate touches later (before a measurement or reset)
    for k in range(len(steps) - 1, -1, -1):
        step = steps[k]
        if step.kind is StepKind.GATE or (step.noise is not None and len(step.atoms) > 1):
            gated.update(step.atoms)
        elif step.kind in (StepKind.MEASURE, StepKind.RESET):
            gated.difference_update(step.atoms)
        elif step.atoms[0] not in gated:
            blind.add(k)
    return blind


def _damping(add: Callable[..., None], atom: str, gamma: float, ancilla: str, event: int) -> None:
    """Amplitude damping as the measured ancilla of its Stinespring dilation: the ancilla
    is rotated by RY(theta) controlled on ``atom`` (sin^2(theta/2) = gamma) and measured;
    outcome 1 (probability gamma * P(1)) is the jump K1 (then |1> -> |0>), outcome 0
    leaves K0 = diag(1, sqrt(1 - gamma)) applied and the state renormalised."""
    theta = 2.0 * math.asin(math.sqrt(min(1.0, gamma)))
    add("alloc", (ancilla,))
    add("gate", (ancilla,), gate="ry", params=(theta / 2,))
    add("gate", (atom, ancilla), gate="cx")
    add("gate", (ancilla,), gate="ry", params=(-theta / 2,))
    add("gate", (atom, ancilla), gate="cx")
    add("meas", (ancilla,), event=event)
    add("cond", (atom,), gate="x", inputs=(event,))
    add("free", (ancilla,))


def _instructions(step: Step, slot: Mapping[int, int]) -> tuple[Instruction, ...]:
    """The batch instructions of one step on the batch qubits ``slot[atom]`` (none for
    loss, drawn classically; damping never reaches the stabilizer)."""
    atoms = step.atoms
    qubits = (slot[atoms[0]],) if len(atoms) == 1 else tuple([slot[a] for a in atoms])
    kind, noise = step.kind, step.noise
    if kind is StepKind.GATE:
        return _gates(step.gates, qubits)
    if kind is StepKind.MEASURE:
        return _measure(qubits)
    if kind is StepKind.RESET:
        return _reset(qubits)
    if noise is not None and noise.kind is NoiseKind.PAULI1:
        return _pauli1(noise.probs, qubits)
    if noise is not None and noise.kind is NoiseKind.PAULI2:
        return _pauli2(noise.probs, qubits)
    return ()


# A large program repeats a few steps on a few batch qubits (atoms share them) many
# times: each distinct instruction is built once (they are frozen), and the stabilizer's
# compiler writes the stim text of each once. One cache per kind keeps the keys cheap to
# hash (no enum in them).
@functools.lru_cache(maxsize=4096)
def _gates(
    gates: tuple[tuple[str, tuple[float, ...]], ...], qubits: tuple[int, ...]
) -> tuple[Instruction, ...]:
    return tuple(
        Instruction(kind=Kind.GATE, qubits=qubits, gate=gate, params=params)
        for gate, params in gates
    )


@functools.lru_cache(maxsize=4096)
def _measure(qubits: tuple[int, ...]) -> tuple[Instruction, ...]:
    return (Instruction(kind=Kind.MEASURE, qubits=qubits),)


@functools.lru_cache(maxsize=4096)
def _reset(qubits: tuple[int, ...]) -> tuple[Instruction, ...]:
    return (Instruction(kind=Kind.RESET, qubits=qubits),)


@functools.lru_cache(maxsize=4096)
def _pauli1(probs: tuple[float, ...], qubits: tuple[int, ...]) -> tuple[Instruction, ...]:
    return (Instruction(kind=Kind.PAULI_CHANNEL, qubits=qubits, probs=probs),)


@functools.lru_cache(maxsize=4096)
def _pauli2(probs: tuple[float, ...], qubits: tuple[int, ...]) -> tuple[Instruction, ...]:
    # The IR's 16 pair probabilities start with I x I; the channel's 15 do not, and are
    # otherwise in the same order (PAULI_PAIRS).
    return (Instruction(kind=Kind.PAULI_CHANNEL_2, qubits=qubits, probs=probs[1:]),)


@dataclass(frozen=True, slots=True, kw_only=True)
class BatchProgram:
    """A circuit as the engines' batch circuit (:class:`~qmk.engines.batch.BatchCircuit`):
    ``columns`` is the result column of each measurement record, in record order."""

    circuit: BatchCircuit
    columns: tuple[int, ...]


def batch_program(circuit: Circuit, skipped: AbstractSet[int] = frozenset()) -> BatchProgram:
    """The circuit, less the ``skipped`` gate steps and their noise, as a batch circuit.

    Atoms share batch qubits. An atom's one-qubit steps before its first two-qubit step are
    emitted just before that step, those after its last one just after it. (They act on
    no other atom, so they commute with everything in between.) Once an atom is done its
    qubit is reset and handed to the next atom that starts. A chain program then needs a
    few qubits however many atoms it has, which keeps the stabilizer engine's reference
    sample (its cost grows with the square of the qubits) and its frame simulation small.
    """
    active = [
        s
        for k, s in enumerate(circuit.steps)
        if k not in skipped and (s.owner < 0 or s.owner not in skipped)
    ]
    slots = _Slots(active)
    for i, step in enumerate(active):
        if len(step.atoms) == 1:
            a = step.atoms[0]
            if a not in slots.first:  # no two-qubit step: the whole atom at its first step
                if a in slots.heads:
                    slots.start(a)
                    slots.finish(a)
            elif slots.first[a] < i < slots.last[a]:
                slots.emit(step)
            continue
        for a in step.atoms:
            if a not in slots.slot:
                slots.start(a)
        slots.emit(step)
        for a in step.atoms:
            if slots.last[a] == i:
                slots.finish(a)
    batch = BatchCircuit(num_qubits=slots.used, instructions=tuple(slots.out))
    return BatchProgram(circuit=batch, columns=tuple(slots.columns))


class _Slots:
    """:func:`batch_program`'s batch qubits as atoms take and give them back, and what it
    emits: each atom's first and last two-qubit step (an index of ``active``), its
    one-qubit steps before the first (``heads``) and after the last (``tails``)."""

    def __init__(self, active: Sequence[Step]) -> None:
        self.first: dict[int, int] = {}
        self.last: dict[int, int] = {}
        for i, step in enumerate(active):
            if len(step.atoms) > 1:
                for a in step.atoms:
                    self.first.setdefault(a, i)
                    self.last[a] = i
        self.heads: dict[int, list[Step]] = {}
        self.tails: dict[int, list[Step]] = {}
        for i, step in enumerate(active):
            if len(step.atoms) == 1:
                a = step.atoms[0]
                if a not in self.first or i < self.first[a]:
                    self.heads.setdefault(a, []).append(step)
                elif i > self.last[a]:
                    self.tails.setdefault(a, []).append(step)
        self.out: list[Instruction] = []
        self.columns: list[int] = []
        self.slot: dict[int, int] = {}
        self.free: list[int] = []
        self.used = 0

    def emit(self, step: Step) -> None:
        self.out.extend(_instructions(step, self.slot))
        if step.kind is StepKind.MEASURE:
            self.columns.append(step.record)

    def start(self, a: int) -> None:
        if self.free:
            self.slot[a] = heapq.heappop(self.free)
            self.out.extend(_reset((self.slot[a],)))
        else:
            self.slot[a] = self.used
            self.used += 1
        for step in self.heads.pop(a, ()):
            self.emit(step)

    def finish(self, a: int) -> None:
        for step in self.tails.pop(a, ()):
            self.emit(step)
        heapq.heappush(self.free, self.slot.pop(a))


def _run_batch(
    circuit: Circuit, skipped: AbstractSet[int], shots: int, seed: int, stats: dict[str, int]
) -> np.ndarray:
    """shots x bits (uint8) of one group's circuit, sampled in bulk by the stabilizer
    engine's batch capability (:mod:`qmk.engines.batch`)."""
    program = batch_program(circuit, skipped)
    sampler = _stabilizer_batch()(program.circuit)
    assert sampler is not None  # choose_backend let only Clifford Pauli circuits here
    stats["simulations"] += 1
    out = np.zeros((shots, circuit.n_bits), dtype=np.uint8)
    if program.columns:
        records = tuple(range(len(program.columns)))
        drawn, _ = sampler.sample(shots, seed, records, ())
        out[:, np.array(program.columns, dtype=np.intp)] = drawn
    return out


@functools.cache
def _stabilizer_batch() -> BatchCompiler:
    """The stabilizer engine's batch capability."""
    compiler = batch_compiler(engine_class(defaults.STABILIZER))
    assert compiler is not None, "the stabilizer engine samples batch circuits"
    return compiler


@dataclass(frozen=True, slots=True)
class _Finish:
    """What turns raw bits into recorded bits, drawn before any shot is: the readout
    flips (candidates at the larger rate, each with its uniform draw, kept at the rate
    of the bit it would flip) and the cells of lost atoms (``-1``). Drawn first, so a
    chunk's shots can be finished as soon as they are drawn (:func:`execute`'s
    ``on_chunk``) and give the bits of the whole run."""

    shots: int
    n_bits: int
    p01: float
    p10: float
    hits: np.ndarray  # flat positions: shot * n_bits + column
    draws: np.ndarray  # a uniform draw per hit
    lost_shot: np.ndarray  # the (shot, column) cells of lost atoms
    lost_column: np.ndarray

    def apply(self, raw: np.ndarray, rows: np.ndarray | None = None) -> np.ndarray:
        """The recorded bits (int8, -1 lost) of ``raw``: every shot's raw bits, or
        (``rows``, ascending) those shots' only."""
        bits = raw.astype(np.int8)
        hits, draws, lost_shot, lost_column = (
            self.hits,
            self.draws,
            self.lost_shot,
            self.lost_column,
        )
        if rows is not None:
            chosen = np.zeros(self.shots, dtype=bool)
            chosen[rows] = True
            if len(hits):
                pick = chosen[hits // self.n_bits]
                hits, draws = hits[pick], draws[pick]
            pick = chosen[lost_shot]
            lost_shot, lost_column = lost_shot[pick], lost_column[pick]
        if len(hits):
            shot, column = np.divmod(hits, self.n_bits)
            at = shot if rows is None else np.searchsorted(rows, shot)
            rate = np.where(bits[at, column] == 1, self.p10, self.p01) / max(self.p01, self.p10)
            flip = draws < rate
            bits[at[flip], column[flip]] ^= 1
        if len(lost_shot):
            at = lost_shot if rows is None else np.searchsorted(rows, lost_shot)
            bits[at, lost_column] = -1
        return bits


def _finish_of(circuit: Circuit, losses: _Losses, shots: int, rng: np.random.Generator) -> _Finish:
    """The readout flips (drawn from ``rng``) and lost cells of a run of ``shots``."""
    p01, p10 = circuit.readout
    hits: np.ndarray = np.zeros(0, dtype=np.int64)
    draws: np.ndarray = np.zeros(0)
    if p01 > 0 or p10 > 0:
        hits = _bernoulli(rng, max(p01, p10), shots * circuit.n_bits)
        draws = rng.random(len(hits))
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
    ordered = sorted(cells)
    return _Finish(
        shots=shots,
        n_bits=circuit.n_bits,
        p01=p01,
        p10=p10,
        hits=hits,
        draws=draws,
        lost_shot=np.array([c[0] for c in ordered], dtype=np.int64),
        lost_column=np.array([c[1] for c in ordered], dtype=np.int64),
    )


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


#: How many shots of one loss group a job draws in one pass at most (the stabilizer
#: backend's chunk: one batch sample); between two chunks it may pause (see the module
#: docstring).
CHUNK_SHOTS = 4096
#: The work one chunk of a state-vector backend holds at most, in amplitude-steps (a
#: step's pass over one shot's ``2**atoms`` amplitudes): about a second on the slowest
#: host measured (docs/neutral-atom.md), so that its pause points (a q_checkpoint, a
#: preemption) are never further apart.
CHUNK_WORK = 2**28
#: The fewest shots of a chunk.
MIN_CHUNK_SHOTS = 1


def shot_work(backend: str, circuit: Circuit) -> float:
    """What one shot of ``circuit`` costs on a state-vector ``backend``, in
    amplitude-steps: every step on a stack (:func:`stacks_pay`); on the runner, the
    steps of the shots an error strikes at :data:`RUNNER_STEP_AMPLITUDES` more a step
    (the others share a trajectory), and the draw from the final state."""
    size = 2.0 ** min(circuit.n_atoms, 60)
    steps = max(len(circuit.steps), 1)
    if stacks_pay(backend, circuit):
        return steps * size
    struck = -math.expm1(-errors_a_shot(visible_steps(circuit, circuit.steps)))
    return steps * (size + RUNNER_STEP_AMPLITUDES) * struck + size


def chunk_shots(backend: str, circuit: Circuit) -> int:
    """The shots of one chunk of ``circuit`` on ``backend`` (a function of the job alone,
    as the chunks' draws must be): :data:`CHUNK_SHOTS` on the stabilizer, else the power
    of two that keeps a chunk's :func:`shot_work` within :data:`CHUNK_WORK`, from
    :data:`MIN_CHUNK_SHOTS` up to :data:`CHUNK_SHOTS`.

    >>> from qmk.devices.neutral_atom.circuit import Circuit
    >>> wide = Circuit(n_atoms=20, steps=(), records=(), p_loss=0.0, readout=(0.0, 0.0))
    >>> chunk_shots("stabilizer", wide), chunk_shots("state-vector", wide)
    (4096, 256)
    """
    if backend == STABILIZER:
        return CHUNK_SHOTS
    fits = 2 ** max(0, math.floor(math.log2(CHUNK_WORK / shot_work(backend, circuit))))
    return int(min(CHUNK_SHOTS, max(MIN_CHUNK_SHOTS, fits)))


def execute(
    job: Job,
    circuit: Circuit,
    backend: str,
    seed: int,
    *,
    control: Control | None = None,
    resume: ExecutionState | None = None,
    key: str = "",
    on_chunk: Callable[[np.ndarray, np.ndarray], None] | None = None,
) -> tuple[np.ndarray, dict[str, Any]]:
    """Every shot's recorded bits (int8, -1 lost) of ``circuit`` on ``backend``, and stats.

    ``control`` is asked between every two chunks of shots (the module docstring);
    ``resume`` is a state it saved, of the run whose digest is ``key``. ``on_chunk``
    is called after each chunk with its shots (ascending indices) and their recorded
    bits, as the result will have them (a chunk drawn before ``resume``'s state is not
    told again).

    Raises:
        Suspended: the control asked the job to stop; its state was saved first.
        EngineError: ``QE106 checkpoint-mismatch`` for a state of another run.
    """
    shots = job.shots
    classical = np.random.default_rng(_seed(seed, 0))
    losses = _draw_losses(circuit, shots, classical)
    finish = _finish_of(circuit, losses, shots, classical)
    gate_steps = losses.gate_steps
    patterns, inverse = _groups(losses.skipped)
    chunks: list[tuple[int, int, np.ndarray]] = []  # (group, chunk of it, its shots)
    size = chunk_shots(backend, circuit)
    for g in range(len(patterns)):
        rows = np.flatnonzero(inverse == g)
        for c, lo in enumerate(range(0, max(len(rows), 1), size)):
            chunks.append((g, c, rows[lo : lo + size]))
    raw = np.zeros((shots, circuit.n_bits), dtype=np.uint8)
    stats: dict[str, Any] = {"groups": len(patterns), "simulations": 0}
    progress = Progress(preempted_at_epochs=[])
    start = 0
    if resume is not None:
        raw, start, progress, extra = resume_chunks(
            resume,
            key,
            shape=raw.shape,
            chunks=len(chunks),
            what="device job (program, shots, seed, profile or backend differ)",
        )
        raw = raw.astype(np.uint8)
        saved = extra.get("device")
        if not isinstance(saved, Mapping):
            raise EngineError.of("checkpoint-mismatch", "the checkpoint holds no device stats")
        stats = {str(k): int(v) for k, v in saved.items()}
    engine = BACKENDS[backend].engine
    stack = stacks_pay(backend, circuit)
    for done, (g, c, rows) in enumerate(chunks[start:], start=start + 1):
        skipped = {gate_steps[j] for j in np.flatnonzero(patterns[g])}
        chunk_seed = _seed(seed, 5, g) if c == 0 else _seed(seed, 5, g, c)
        if backend == STABILIZER:
            raw[rows] = _run_batch(circuit, skipped, len(rows), chunk_seed, stats)
        else:
            raw[rows] = _run_statevector(
                circuit,
                _active(circuit, skipped),
                len(rows),
                chunk_seed,
                stats,
                engine,
                stack=stack,
            )
        if on_chunk is not None and len(rows):
            on_chunk(rows, finish.apply(raw[rows], rows))
        if control is None or done == len(chunks):
            continue
        pause_between_chunks(
            control,
            epoch=done,
            done=done,
            bits=raw,
            progress=progress,
            key=key,
            engine=engine,
            extra={"device": dict(stats)},
        )
    if progress.checkpoints or progress.resumed_from_epoch is not None:
        stats["checkpoints"] = progress.checkpoints
        stats["preempted_at_epochs"] = list(progress.preempted_at_epochs or ())
        stats["resumed_from_epoch"] = progress.resumed_from_epoch
    bits = finish.apply(raw)
    lost_bits = len(finish.lost_shot)
    mode = (
        "stim-batch"
        if backend == STABILIZER
        else (
            "stacked"
            if stats.pop("mode_stacked", 0)
            else ("trajectories" if stats.pop("mode_trajectories", 0) else "sampled")
        )
    )
    stats.pop("mode_trajectories", None)
    stats.pop("mode_sampled", None)
    return bits, {**stats, "mode": mode, "lost_bits": lost_bits, "atoms_lost": losses.atoms_lost}


__all__ = [
    "CHUNK_SHOTS",
    "CHUNK_WORK",
    "BatchProgram",
    "batch_program",
    "chunk_shots",
    "execute",
    "shot_work",
    "stacks_pay",
    "visible_steps",
]
