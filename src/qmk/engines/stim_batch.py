"""Batch circuits as one stim circuit, sampled in bulk: the stabilizer engine's batch capability.

A :class:`~qmk.engines.batch.BatchCircuit` of Clifford gates, resets, Pauli-basis and
Pauli-product measurements, (heralded) Pauli channels and feed-forward that is linear
over the measurement record (Paulis controlled by the XOR of record bits) compiles to a
single ``stim.Circuit``: feed-forward becomes classically controlled Paulis
(``CX rec[-k] q``), a product measurement an ``MPP``, a heralded channel a
``HERALDED_PAULI_CHANNEL_1`` whose herald bit says whether an error was injected.
Anything else (a non-Clifford gate, a controlled non-Pauli) is not compiled:
:func:`compile_batch` returns None and the executor runs the program another way.

>>> from qmk.engines.batch import BatchCircuit, Instruction, Kind
>>> bell = BatchCircuit(num_qubits=2, instructions=(
...     Instruction(kind=Kind.GATE, qubits=(0,), gate="h"),
...     Instruction(kind=Kind.GATE, qubits=(0, 1), gate="cx"),
...     Instruction(kind=Kind.MEASURE, qubits=(0,)),
...     Instruction(kind=Kind.MEASURE, qubits=(1,)),
... ))
>>> bits, _ = compile_batch(bell).sample(1000, 7, (0, 1), ())
>>> bool((bits[:, 0] == bits[:, 1]).all()), 400 < int(bits[:, 0].sum()) < 600
(True, True)
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import stim

from qmk.engines.batch import BatchCircuit, Instruction, Kind
from qmk.engines.stabilizer import stim_gate

_CONTROLLED = {"X": "CX", "Y": "CY", "Z": "CZ"}
_MEASURE = {"Z": "M", "X": "MX", "Y": "MY"}


@dataclass(frozen=True, slots=True)
class StimSampler:
    """A compiled circuit (see the module docstring)."""

    circuit: stim.Circuit
    mode: str = "stim-batch"

    def sample(
        self, shots: int, seed: int, columns: tuple[int | None, ...], tallied: tuple[int, ...]
    ) -> tuple[np.ndarray, int]:
        """Rows of the record bits at ``columns`` and the 1 bits at ``tallied``."""
        # Bit-packed sampling is stim's fastest output; bits are unpacked only for columns.
        packed = self.circuit.compile_sampler(seed=seed).sample(shots, bit_packed=True)
        width = len(columns)
        if columns == tuple(range(width)):
            bits = np.unpackbits(packed, axis=1, count=width, bitorder="little")
        else:
            bits = np.zeros((shots, width), dtype=np.uint8)
            present = [j for j, c in enumerate(columns) if c is not None]
            if present:
                cols = np.array([columns[j] for j in present], dtype=np.int64)
                bits[:, present] = (packed[:, cols >> 3] >> (cols & 7).astype(np.uint8)) & 1
        ones = 0
        if tallied:
            mask = np.zeros(packed.shape[1], dtype=np.uint8)
            for column in tallied:
                mask[column >> 3] |= np.uint8(1 << (column & 7))
            ones = int(np.bitwise_count(packed & mask).sum(dtype=np.int64))
        return bits, ones


def _line(instruction: Instruction, count: int) -> str | None:
    """The stim text of one instruction (``count`` record bits precede it), or None when
    stim cannot express it."""
    kind, qs = instruction.kind, " ".join(map(str, instruction.qubits))
    if kind is Kind.RESET:
        return f"R {qs}"
    if kind is Kind.GATE:
        name = stim_gate(instruction.gate, instruction.params)
        if name is None:
            return None
        if not instruction.controls:
            return "" if name == "I" else f"{name} {qs}"
        if name not in _CONTROLLED:
            return None
        lines = [f"{name} {qs}"] if instruction.invert else []
        lines += [f"{_CONTROLLED[name]} rec[{r - count}] {qs}" for r in instruction.controls]
        return "\n".join(lines)
    if kind is Kind.MEASURE:
        return f"{_MEASURE[instruction.basis]} {'!' if instruction.invert else ''}{qs}"
    if kind is Kind.MEASURE_PRODUCT:
        product = "*".join(
            f"{p}{q}" for p, q in zip(instruction.paulis, instruction.qubits, strict=True)
        )
        return f"MPP {product}"
    px, py, pz = instruction.probs
    if kind is Kind.PAULI_CHANNEL:
        return f"PAULI_CHANNEL_1({px!r},{py!r},{pz!r}) {qs}"
    return f"HERALDED_PAULI_CHANNEL_1(0,{px!r},{py!r},{pz!r}) {qs}"


def compile_batch(circuit: BatchCircuit) -> StimSampler | None:
    """One stim circuit for ``circuit``, or None when an instruction is beyond stim.

    The circuit is written as text and parsed once: much faster than appending
    instruction by instruction.
    """
    lines: list[str] = []
    count = 0
    for instruction in circuit.instructions:
        line = _line(instruction, count)
        if line is None:
            return None
        if line:
            lines.append(line)
        count += instruction.records
    return StimSampler(circuit=stim.Circuit("\n".join(lines)))
