"""How the resource estimator counts each QVM op: its tally, one row an op.

The estimator's tracer (:mod:`qmk.estimate.counts`) and the logical target's T states
and routed steps (:mod:`qmk.execution.logical`) read an op's tally here; the op table
(:data:`qmk.qvm.ops.OPS`) says what an op is, this table what the estimator makes of
it. Every op of the op table has a row, and only those: importing this module checks it.

>>> TALLIES["APPLY_T"].value, TALLIES["MEASURE_BELL"].value, TALLIES["APPLY_H"].value
('t', 'bell_measure', 'nothing')
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from types import MappingProxyType

from qmk.qvm.ops import OPS


class Tally(str, enum.Enum):
    """How the resource estimator's tracer (QRE's logical counts) counts an op."""

    NOTHING = "nothing"  # Pauli-frame and Clifford one-qubit ops, bookkeeping
    T = "t"  # one T gate (T, TDG, a magic-state injection)
    ROTATION = "rotation"  # one arbitrary-angle rotation (a quarter turn counts as nothing)
    TWO_QUBIT = "two_qubit"  # synchronises its two qubits' rotation layers
    CCZ = "ccz"  # one CCZ on three qubits
    MEASURE = "measure"  # one measurement
    ROTATION_MEASURE = "rotation_measure"  # a rotation by ``angle``, then a measurement
    BELL_MEASURE = "bell_measure"  # a two-qubit sync, then two measurements
    ALLOC = "alloc"  # qubits enter the count
    FREE = "free"  # qubits are released


_ROWS: dict[str, Tally] = {
    "ALLOC_LQ": Tally.ALLOC,
    "FREE_LQ": Tally.FREE,
    "APPLY_T": Tally.T,
    "APPLY_TDG": Tally.T,
    "INJECT_T_STATE": Tally.T,
    "APPLY_RX": Tally.ROTATION,
    "APPLY_RY": Tally.ROTATION,
    "APPLY_RZ": Tally.ROTATION,
    "APPLY_CNOT": Tally.TWO_QUBIT,
    "APPLY_CZ": Tally.TWO_QUBIT,
    "APPLY_SWAP": Tally.TWO_QUBIT,
    "TELEPORT_CNOT": Tally.TWO_QUBIT,
    "OPEN_CHAN": Tally.TWO_QUBIT,
    "APPLY_CCX": Tally.CCZ,
    "APPLY_CCZ": Tally.CCZ,
    "MEASURE_Z": Tally.MEASURE,
    "MEASURE_X": Tally.MEASURE,
    "MEASURE_Y": Tally.MEASURE,
    # a stim circuit's noisy record bit counts as the measurement it is
    "NOISY_MEASURE": Tally.MEASURE,
    "MEASURE_ANGLE": Tally.ROTATION_MEASURE,
    "MEASURE_BELL": Tally.BELL_MEASURE,
    # Clifford one-qubit gates, Paulis, resets, the Pauli frame's corrections, channel
    # bookkeeping, classical values, scheduling and a stim circuit's annotations
    **dict.fromkeys(
        (
            "RESET",
            "APPLY_H",
            "APPLY_S",
            "APPLY_SDG",
            "APPLY_X",
            "APPLY_Y",
            "APPLY_Z",
            "COND_PAULI",
            "USE_CHAN",
            "CLOSE_CHAN",
            "CALC",
            "HALT",
            "FENCE_EPOCH",
            "BAR_REGION",
            "SET_POLICY",
            "TICK",
            "QUBIT_COORDS",
            "SHIFT_COORDS",
            "DETECTOR",
            "OBSERVABLE_INCLUDE",
            "NOISE",
        ),
        Tally.NOTHING,
    ),
}
if set(_ROWS) != set(OPS):  # an op added to the op table is counted here too
    raise RuntimeError(
        f"the estimator's tallies and the op table differ: {sorted(set(_ROWS) ^ set(OPS))}"
    )

#: Each op's tally, by op name, in the op table's order.
TALLIES: Mapping[str, Tally] = MappingProxyType({name: _ROWS[name] for name in OPS})
