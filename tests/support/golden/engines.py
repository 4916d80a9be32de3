"""Examples of the engines' structs: a batch circuit's instruction.

Each is a realistic value, most fields away from their defaults; its JSON is its
struct's golden file (:mod:`support.golden`)."""

from __future__ import annotations

from qmk.engines.batch import Instruction, Kind

#: A Pauli X fed forward from the XOR of two record bits (its complement).
INSTRUCTION = Instruction(
    kind=Kind.GATE,
    qubits=(3,),
    gate="x",
    params=(0.25,),
    basis="X",
    paulis="XZ",
    invert=True,
    controls=(0, 2),
    probs=(0.001, 0.002, 0.003),
)

#: Every example of this room.
EXAMPLES = (INSTRUCTION,)
