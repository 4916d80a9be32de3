"""The OpenQASM standard gate libraries and math constants, as both readers take them.

The statement reader (:mod:`~qmk.frontends.qasm_gates`) and the bulk reader
(:mod:`~qmk.frontends.qasm_bulk`) read the gates of ``qelib1.inc`` and ``stdgates.inc``
and the constants ``pi``, ``tau`` and ``euler`` alike. They live here, apart from the
statement reader's scopes and classical values, so that a flat file's read loads only
what it uses.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from qmk.frontends.builder import GATE_OPS, gate_op
from qmk.gates import GATES
from qmk.qvm.expr_core import constants

if TYPE_CHECKING:
    from qmk.frontends.decompose import Lowered

__all__ = ["MATH_CONSTANTS", "QELIB1_GATES", "STDGATES_GATES", "Step", "plan_of"]

#: One node of a lowered gate: its op, its local qubits, its angle (None: no angle).
Step = tuple[str, tuple[int, ...], float | None]
#: The built-in constants of constant expressions (the core's), by each spelling.
MATH_CONSTANTS = constants("pi", "π", "tau", "τ", "euler", "ℯ")

#: Gates of ``qelib1.inc`` (OpenQASM 2.0) beside those of the gate records, which are
#: written in the op table's gates by :mod:`~qmk.frontends.decompose`.
_QELIB1_WRITTEN = frozenset(
    [
        "c3sqrtx",
        "c3x",
        "c4x",
        "ch",
        "cp",
        "crx",
        "cry",
        "crz",
        "cswap",
        "csx",
        "cu",
        "cu1",
        "cu3",
        "cy",
        "id",
        "p",
        "rc3x",
        "rccx",
        "rxx",
        "rzz",
        "sx",
        "sxdg",
        "u",
        "u0",
        "u1",
        "u2",
        "u3",
    ]
)
#: Gates of ``stdgates.inc`` (OpenQASM 3) beside those of the gate records.
_STDGATES_WRITTEN = frozenset(
    [
        "ch",
        "cp",
        "cphase",
        "crx",
        "cry",
        "crz",
        "cswap",
        "cu",
        "cy",
        "id",
        "p",
        "phase",
        "sx",
        "u1",
        "u2",
        "u3",
    ]
)
_RECORDS = [GATES[gate] for gate in GATE_OPS]
#: Gates ``include "qelib1.inc";`` defines (OpenQASM 2.0): the OpenQASM 2 names of the
#: gates the op table applies, and the gates written in them.
QELIB1_GATES = frozenset(n for record in _RECORDS for n in record.names.of("qasm2")) | (
    _QELIB1_WRITTEN
)
#: Gates ``include "stdgates.inc";`` defines (OpenQASM 3): the same of OpenQASM 3, but a
#: gate ``stdgates.inc`` lacks (a record with a ``qasm3_definition``, as ``ccz``).
STDGATES_GATES = frozenset(
    n
    for record in _RECORDS
    if record.names.qasm3_definition is None
    for n in record.names.of("qasm3")
) | (_STDGATES_WRITTEN)


def plan_of(low: Lowered) -> list[Step]:
    """The nodes ``low`` writes, checked once (as :meth:`ProgramBuilder.gate` checks them)."""
    steps: list[Step] = []
    for gate, qs, ps in low.ops:
        op, theta = gate_op(gate, len(qs), ps)
        steps.append((op, qs, theta))
    return steps
