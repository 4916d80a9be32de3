"""A plan lowered to an engine's batch circuit (:mod:`qmk.engines.batch`).

When the chosen engine offers batch sampling (the stabilizer engine does, through
stim), a plan whose feed-forward is linear over the measurement record
(``COND_PAULI``, and Pauli gates guarded by one event) becomes one
:class:`~qmk.engines.batch.BatchCircuit`: ``MEASURE_ANGLE`` at a quarter turn becomes
an X or Y measurement (inverted for a half turn), ``MEASURE_BELL`` two product
measurements (XX then ZZ), a channel of fidelity F a Pauli channel, and each
logical-noise location a heralded Pauli channel whose herald bit counts the injected
errors exactly.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from qmk.engines.batch import BatchCircuit, Instruction, Kind
from qmk.engines.gates import quarter_turns
from qmk.execution.plan import Noise, Plan, Step
from qmk.qvm.ops import Exec


@dataclass(frozen=True, slots=True, kw_only=True)
class LoweredPlan:
    """The circuit, the record column of each event (None for an event nothing
    produces) and the herald columns of the noise locations."""

    circuit: BatchCircuit
    event_columns: tuple[int | None, ...]
    herald_columns: tuple[int, ...]


def why_not_lowerable(step: Step) -> str | None:
    """Why ``step`` cannot be part of a batch circuit, or None when it can."""
    guard = step.node.guard
    if guard is None:
        return None
    if step.kind is Exec.GATE and step.gate in ("x", "y", "z") and len(guard.terms) == 1:
        return None
    return f"node {step.node.id!r} ({step.node.op}) has a guard a batch circuit cannot express"


def lower(plan: Plan) -> LoweredPlan | None:
    """The plan as a batch circuit, or None when a step fails :func:`why_not_lowerable`
    or is never Clifford (``INJECT_T_STATE``)."""
    if any(why_not_lowerable(step) is not None for step in plan.steps):
        return None
    index = {q: i for i, q in enumerate(plan.program.graph.resources.vqs)}
    out: list[Instruction] = []
    emit = out.append
    record: dict[str, int] = {}
    heralds: list[int] = []
    count = 0

    def noise(locations: Sequence[Noise], before: bool) -> None:
        nonlocal count
        for loc in locations:
            if loc.before is before:
                emit(
                    Instruction(
                        kind=Kind.HERALDED_PAULI_CHANNEL,
                        qubits=(index[loc.qubit],),
                        probs=(loc.px, loc.py, loc.pz),
                    )
                )
                heralds.append(count)
                count += 1

    def measured(instruction: Instruction, event: str) -> None:
        nonlocal count
        emit(instruction)
        record[event] = count
        count += 1

    for step in plan.steps:
        node = step.node
        qs = tuple(index[q] for q in node.vqs)
        here = plan.noise_at.get(step.index, ())
        if here:
            noise(here, True)
        kind = step.kind
        if kind in (Exec.ALLOC, Exec.RESET):
            emit(Instruction(kind=Kind.RESET, qubits=qs))
        elif kind is Exec.GATE:
            guard = node.guard
            if guard is None:
                emit(
                    Instruction(kind=Kind.GATE, qubits=qs, gate=step.gate or "", params=step.params)
                )
            else:
                term = guard.terms[0]
                emit(
                    Instruction(
                        kind=Kind.GATE,
                        qubits=qs,
                        gate=step.gate or "",
                        params=step.params,
                        controls=(record[term.event],),
                        invert=term.equals == 0,
                    )
                )
        elif kind is Exec.TELEPORT_CNOT:
            emit(Instruction(kind=Kind.GATE, qubits=qs, gate="cx"))
        elif kind is Exec.MEASURE:
            measured(Instruction(kind=Kind.MEASURE, qubits=qs, basis=step.basis), node.produces[0])
        elif kind is Exec.MEASURE_ANGLE:
            turns = quarter_turns(step.params[0])
            if turns is None:
                return None
            measure = Instruction(
                kind=Kind.MEASURE,
                qubits=qs,
                basis="X" if turns % 2 == 0 else "Y",
                invert=turns >= 2,
            )
            measured(measure, node.produces[0])
        elif kind is Exec.BELL:
            for pauli, event in zip(("X", "Z"), node.produces, strict=True):
                measured(Instruction(kind=Kind.MEASURE_PRODUCT, qubits=qs, paulis=pauli * 2), event)
        elif kind is Exec.COND_PAULI:
            if step.pauli != "I":
                controls = tuple(record[event] for event in node.inputs)
                emit(
                    Instruction(
                        kind=Kind.GATE, qubits=qs, gate=step.pauli.lower(), controls=controls
                    )
                )
        elif kind is Exec.OPEN_CHAN:
            a, b = qs
            emit(Instruction(kind=Kind.RESET, qubits=qs))
            emit(Instruction(kind=Kind.GATE, qubits=(a,), gate="h"))
            emit(Instruction(kind=Kind.GATE, qubits=qs, gate="cx"))
            if step.fidelity < 1:
                p = (1 - step.fidelity) / 3
                emit(Instruction(kind=Kind.PAULI_CHANNEL, qubits=(b,), probs=(p, p, p)))
        elif kind is Exec.INJECT_T:
            return None
        if here:
            noise(here, False)
    columns = tuple(record.get(event) for event in plan.events)
    circuit = BatchCircuit(num_qubits=len(index), instructions=tuple(out))
    return LoweredPlan(circuit=circuit, event_columns=columns, herald_columns=tuple(heralds))
