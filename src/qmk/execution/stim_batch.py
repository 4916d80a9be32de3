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
from qmk.execution.plan import Noise, Plan, Step

_CONTROLLED = {"X": "CX", "Y": "CY", "Z": "CZ"}
_MEASURE = {"Z": "M", "X": "MX", "Y": "MY"}


@dataclass(frozen=True, slots=True)
class StimProgram:
    """A compiled program: the circuit, the record column of each event (None for an
    event nothing produces) and the herald columns of the noise locations."""

    circuit: stim.Circuit
    event_columns: tuple[int | None, ...]
    herald_columns: tuple[int, ...]

    def sample(self, shots: int, seed: int) -> tuple[np.ndarray, int]:
        """``shots`` rows of event bits (uint8) and the number of injected errors."""
        # Bit-packed sampling is stim's fastest output; bits are unpacked only for events.
        packed = self.circuit.compile_sampler(seed=seed).sample(shots, bit_packed=True)
        width = len(self.event_columns)
        if self.event_columns == tuple(range(width)):
            bits = np.unpackbits(packed, axis=1, count=width, bitorder="little")
        else:
            bits = np.zeros((shots, width), dtype=np.uint8)
            present = [j for j, c in enumerate(self.event_columns) if c is not None]
            if present:
                cols = np.array([self.event_columns[j] for j in present], dtype=np.int64)
                bits[:, present] = (packed[:, cols >> 3] >> (cols & 7).astype(np.uint8)) & 1
        injected = 0
        if self.herald_columns:
            mask = np.zeros(packed.shape[1], dtype=np.uint8)
            for column in self.herald_columns:
                mask[column >> 3] |= np.uint8(1 << (column & 7))
            injected = int(np.bitwise_count(packed & mask).sum(dtype=np.int64))
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
    """Compile a Clifford plan; every step must pass :func:`why_not_compilable`.

    The circuit is written as text and parsed once: much faster than appending
    instruction by instruction.
    """
    index = {q: i for i, q in enumerate(plan.program.graph.resources.vqs)}
    lines: list[str] = []
    emit = lines.append
    record: dict[str, int] = {}
    heralds: list[int] = []
    count = 0

    def rec(event: str) -> str:
        return f"rec[{record[event] - count}]"

    def noise(locations: Sequence[Noise], before: bool) -> None:
        nonlocal count
        for loc in locations:
            if loc.before is before:
                emit(
                    f"HERALDED_PAULI_CHANNEL_1(0,{loc.px!r},{loc.py!r},{loc.pz!r}) "
                    f"{index[loc.qubit]}"
                )
                heralds.append(count)
                count += 1

    def measure(text: str, event: str) -> None:
        nonlocal count
        emit(text)
        record[event] = count
        count += 1

    for step in plan.steps:
        node = step.node
        qs = " ".join(str(index[q]) for q in node.vqs)
        here = plan.noise_at.get(step.index, ())
        if here:
            noise(here, True)
        kind = step.kind
        if kind in ("alloc", "reset"):
            emit(f"R {qs}")
        elif kind == "gate":
            name = stim_gate(step.gate, step.params)  # type: ignore[arg-type]
            assert name is not None, step
            if node.guard is not None:
                term = node.guard.terms[0]
                if term.equals == 0:
                    emit(f"{name} {qs}")
                emit(f"{_CONTROLLED[name]} {rec(term.event)} {qs}")
            elif name != "I":
                emit(f"{name} {qs}")
        elif kind == "teleport_cnot":
            emit(f"CX {qs}")
        elif kind == "measure":
            measure(f"{_MEASURE[step.basis]} {qs}", node.produces[0])
        elif kind == "measure_angle":
            turns = quarter_turns(step.params[0])
            name = "MX" if turns in (0, 2) else "MY"
            invert = "!" if turns in (2, 3) else ""
            measure(f"{name} {invert}{qs}", node.produces[0])
        elif kind == "bell":
            a, b = (index[q] for q in node.vqs)
            for pauli, event in zip(("X", "Z"), node.produces, strict=True):
                measure(f"MPP {pauli}{a}*{pauli}{b}", event)
        elif kind == "cond_pauli":
            if step.pauli != "I":
                for event in node.inputs:
                    emit(f"{_CONTROLLED[step.pauli]} {rec(event)} {qs}")
        elif kind == "open_chan":
            a, b = (index[q] for q in node.vqs)
            emit(f"R {a} {b}\nH {a}\nCX {a} {b}")
            if step.fidelity < 1:
                p = (1 - step.fidelity) / 3
                emit(f"PAULI_CHANNEL_1({p!r},{p!r},{p!r}) {b}")
        elif kind in ("free", "none"):
            pass
        else:  # inject_t is never Clifford
            raise AssertionError(f"step kind {kind} in a Clifford plan")
        if here:
            noise(here, False)
    columns = tuple(record.get(event) for event in plan.events)
    circuit = stim.Circuit("\n".join(lines))
    return StimProgram(circuit=circuit, event_columns=columns, herald_columns=tuple(heralds))
