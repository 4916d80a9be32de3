"""Clifford programs as one stim circuit, sampled in bulk.

A program the stabilizer formalism covers, whose feed-forward is linear over the
measurement record (``COND_PAULI``, and Pauli gates guarded by one event), compiles
to a single ``stim.Circuit``: feed-forward becomes classically controlled Paulis
(``CX rec[-k] q``), ``MEASURE_BELL`` becomes two ``MPP`` products, a channel of
fidelity F a ``PAULI_CHANNEL_1``, and each logical-noise location a
``HERALDED_PAULI_CHANNEL_1`` whose herald bit counts the injected errors exactly.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import stim

from qmk.engines.gates import quarter_turns
from qmk.engines.stabilizer import stim_gate
from qmk.kernel.plan import Noise, Plan, Step

_CONTROLLED = {"X": "CX", "Y": "CY", "Z": "CZ"}


@dataclass(frozen=True, slots=True)
class StimProgram:
    """A compiled program: the circuit, the record column of each event (None for an
    event nothing produces) and the herald columns of the noise locations."""

    circuit: stim.Circuit
    event_columns: tuple[int | None, ...]
    herald_columns: tuple[int, ...]

    def sample(self, shots: int, seed: int) -> tuple[np.ndarray, int]:
        """``shots`` rows of event bits (uint8) and the number of injected errors."""
        records = self.circuit.compile_sampler(seed=seed).sample(shots)
        bits = np.zeros((shots, len(self.event_columns)), dtype=np.uint8)
        for j, column in enumerate(self.event_columns):
            if column is not None:
                bits[:, j] = records[:, column]
        injected = int(records[:, list(self.herald_columns)].sum()) if self.herald_columns else 0
        return bits, injected


def why_not_compilable(step: Step) -> str | None:
    """Why ``step`` cannot be part of one stim circuit, or None when it can."""
    guard = step.node.guard
    if guard is None:
        return None
    if step.kind == "gate" and step.gate in ("x", "y", "z") and len(guard.terms) == 1:
        return None
    return f"node {step.node.id!r} ({step.node.op}) has a guard stim cannot express"


def compile_plan(plan: Plan) -> StimProgram:
    """Compile a Clifford plan; every step must pass :func:`why_not_compilable`."""
    circuit = stim.Circuit()
    index = {q: i for i, q in enumerate(plan.program.graph.resources.vqs)}
    record: dict[str, int] = {}
    heralds: list[int] = []
    count = 0

    def rec(event: str) -> stim.GateTarget:
        return stim.target_rec(record[event] - count)

    def noise(locations: Sequence[Noise], before: bool) -> None:
        nonlocal count
        for loc in locations:
            if loc.before is before:
                circuit.append(
                    "HERALDED_PAULI_CHANNEL_1", [index[loc.qubit]], [0.0, loc.px, loc.py, loc.pz]
                )
                heralds.append(count)
                count += 1

    def measure(name: str, targets: list, event: str) -> None:
        nonlocal count
        circuit.append(name, targets)
        record[event] = count
        count += 1

    for step in plan.steps:
        node = step.node
        qs = [index[q] for q in node.vqs]
        here = plan.noise_at.get(step.index, ())
        noise(here, True)
        kind = step.kind
        if kind in ("alloc", "reset"):
            circuit.append("R", qs)
        elif kind == "gate":
            name = stim_gate(step.gate, step.params)  # type: ignore[arg-type]
            assert name is not None, step
            if node.guard is not None:
                term = node.guard.terms[0]
                if term.equals == 0:
                    circuit.append(name, qs)
                circuit.append(_CONTROLLED[name], [rec(term.event), qs[0]])
            elif name != "I":
                circuit.append(name, qs)
        elif kind == "teleport_cnot":
            circuit.append("CX", qs)
        elif kind == "measure":
            measure({"Z": "M", "X": "MX", "Y": "MY"}[step.basis], qs, node.produces[0])
        elif kind == "measure_angle":
            turns = quarter_turns(step.params[0])
            name = "MX" if turns in (0, 2) else "MY"
            target = stim.target_inv(qs[0]) if turns in (2, 3) else qs[0]
            measure(name, [target], node.produces[0])
        elif kind == "bell":
            a, b = qs
            for pauli, event in zip(("X", "Z"), node.produces, strict=True):
                measure(
                    "MPP",
                    [
                        stim.target_pauli(a, pauli),
                        stim.target_combiner(),
                        stim.target_pauli(b, pauli),
                    ],
                    event,
                )
        elif kind == "cond_pauli":
            if step.pauli != "I":
                for event in node.inputs:
                    circuit.append(_CONTROLLED[step.pauli], [rec(event), qs[0]])
        elif kind == "open_chan":
            a, b = qs
            circuit.append("R", qs)
            circuit.append("H", [a])
            circuit.append("CX", [a, b])
            if step.fidelity < 1:
                p = (1 - step.fidelity) / 3
                circuit.append("PAULI_CHANNEL_1", [b], [p, p, p])
        elif kind in ("free", "none"):
            pass
        else:  # inject_t is never Clifford
            raise AssertionError(f"step kind {kind} in a Clifford plan")
        noise(here, False)
    columns = tuple(record.get(event) for event in plan.events)
    return StimProgram(circuit=circuit, event_columns=columns, herald_columns=tuple(heralds))
