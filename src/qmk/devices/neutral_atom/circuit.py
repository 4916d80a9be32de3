"""A validated, scheduled job as one circuit: the sequence every emulator backend runs.

:func:`lower` turns a job and its timeline into a :class:`Circuit` of :class:`Step`
values: gates (as engine gates, :data:`qmk.engines.gates.GATES`), noise ops (the one noise
IR of :mod:`.noise`: gate noise after gates, prep noise after AllocArray and Reset,
``p_quantum_flip`` before measurements, and idle noise for each atom's idle time on the
timeline), measurements and resets. :mod:`.shots` samples it.

>>> from qmk.devices.neutral_atom.job import parse_job
>>> from qmk.devices.neutral_atom.validate import validate_job
>>> job = parse_job({"profile": "ideal_small_array", "program": [
...     {"op": "AllocArray", "n_qubits": 2},
...     {"op": "ApplyGate", "name": "CX", "targets": [0, 1]},
...     {"op": "Measure", "targets": [0, 1]}]})
>>> circuit = lower(job, validate_job(job))
>>> [(s.kind.value, s.atoms) for s in circuit.steps], circuit.terminal
([('gate', (0, 1)), ('measure', (0,)), ('measure', (1,))], True)
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass

from qmk.devices.neutral_atom.isa import GATES, OpKind
from qmk.devices.neutral_atom.job import STABILIZER, Job
from qmk.devices.neutral_atom.noise import (
    NoiseKind,
    NoiseOp,
    gate_noise,
    idle_noise,
    measure_noise,
    prep_noise,
)
from qmk.devices.neutral_atom.schedule import Timeline
from qmk.engines.gates import GATES as ENGINE_GATES


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
        if backend != STABILIZER:  # the others run every gate and channel
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
        for op in ops:  # a loop, not a generator: this runs for every noise op
            steps.append(
                Step(kind=StepKind.NOISE, atoms=op.atoms, index=index, noise=op, owner=owner)
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


__all__ = ["Circuit", "Step", "StepKind", "lower"]
