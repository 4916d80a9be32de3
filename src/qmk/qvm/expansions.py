"""The steps a composite op stands for: its expansion, one row a composite op.

The executor's plan (:func:`qmk.execution.plan.expand`), the trajectories, the batch
circuits, the neutral-atom compiler and the OpenQASM 3 writer carry a composite op out
as these steps; the op table (:data:`qmk.qvm.ops.OPS`) says what the op is, this table
what it is made of. An op without a row is one step of its ``kind``. Importing this
module checks that every row names an op of the table and only its arguments.

>>> expansion_text("MEASURE_ANGLE")
'rz(-angle) q0; h q0; measure q0 -> e0; undo'
>>> expansion_text("APPLY_H"), measures(OPS["MEASURE_BELL"]), measures(OPS["APPLY_H"])
('', True, False)
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

from qmk.qvm.ops import OPS, Exec, OpSpec


class Micro(str, enum.Enum):
    """What one step of a composite op's expansion (:data:`EXPANSIONS`) does."""

    #: Return the qubit to ``|0>``.
    RESET = "reset"
    #: Apply the engine gate ``MicroStep.gate`` (:data:`qmk.engines.gates.GATES`).
    GATE = "gate"
    #: Measure the qubit in Z; the outcome is the op's event ``MicroStep.event``.
    MEASURE = "measure"
    #: Apply the adjoints of the expansion's gates before it, last first: after its
    #: measurements the qubits are left in the measured basis, not the computational one.
    UNDO = "undo"
    #: X, Y or Z, each with probability ``(1 - F) / 3`` (F the argument ``MicroStep.arg``):
    #: the noise of a Werner state of fidelity F.
    WERNER = "werner"


@dataclass(frozen=True, slots=True, kw_only=True)
class MicroStep:
    """One step of a composite op's expansion, on the op's qubits by position.

    ``qubits`` index the node's ``vqs`` and ``event`` its ``produces``. ``arg`` names
    the op argument that gives the step's number (``opts.fidelity``: a field of an
    object argument). That number is the gate's one parameter (negated when
    ``negate``) or the fidelity of a Werner step.

    >>> str(MicroStep(kind=Micro.GATE, gate="rz", arg="angle", negate=True))
    'rz(-angle) q0'
    """

    kind: Micro
    qubits: tuple[int, ...] = (0,)
    gate: str | None = None
    arg: str | None = None
    negate: bool = False
    event: int = 0

    def __str__(self) -> str:
        on = " ".join(f"q{q}" for q in self.qubits)
        if self.kind is Micro.UNDO:
            return "undo"
        if self.kind is Micro.MEASURE:
            return f"measure {on} -> e{self.event}"
        head = (self.gate or "") if self.kind is Micro.GATE else self.kind.value
        if self.arg is not None:
            head += f"({'-' if self.negate else ''}{self.arg})"
        return f"{head} {on}"


def _gate(gate: str, *qubits: int, arg: str | None = None, negate: bool = False) -> MicroStep:
    return MicroStep(kind=Micro.GATE, gate=gate, qubits=qubits or (0,), arg=arg, negate=negate)


def _measure_z(qubit: int, event: int) -> MicroStep:
    return MicroStep(kind=Micro.MEASURE, qubits=(qubit,), event=event)


_UNDO = MicroStep(kind=Micro.UNDO, qubits=())

#: The steps each composite op stands for, in order, by op name.
EXPANSIONS: Mapping[str, tuple[MicroStep, ...]] = MappingProxyType(
    {
        # H Rz(-angle) takes (|0> + e^{i angle}|1>)/sqrt2 to |0>: measure in Z, turn back
        "MEASURE_ANGLE": (
            _gate("rz", arg="angle", negate=True),
            _gate("h"),
            _measure_z(0, 0),
            _UNDO,
        ),
        # CNOT then H on the first turns the Bell basis to Z: XX on the first, ZZ on the second
        "MEASURE_BELL": (_gate("cx", 0, 1), _gate("h"), _measure_z(0, 0), _measure_z(1, 1), _UNDO),
        # the gadget's cost and noise are the plan's (qmk.execution.plan); its effect is
        "TELEPORT_CNOT": (_gate("cx", 0, 1),),
        "INJECT_T_STATE": (MicroStep(kind=Micro.RESET), _gate("h"), _gate("t")),
        "OPEN_CHAN": (
            MicroStep(kind=Micro.RESET, qubits=(0,)),
            MicroStep(kind=Micro.RESET, qubits=(1,)),
            _gate("h"),
            _gate("cx", 0, 1),
            MicroStep(kind=Micro.WERNER, qubits=(1,), arg="opts.fidelity"),
        ),
    }
)


def measures(spec: OpSpec) -> bool:
    """Whether the op measures (and so records events): in its own right or in its
    expansion."""
    steps = EXPANSIONS.get(spec.name, ())
    return spec.kind is Exec.MEASURE or any(m.kind is Micro.MEASURE for m in steps)


def arg_value(spec: OpSpec, args: Mapping[str, Any], path: str) -> float:
    """The number at ``path`` of a node's ``args``: an argument of ``spec``, or a field of
    an object argument (``opts.fidelity``); absent, the op table's default for it.

    >>> arg_value(OPS["OPEN_CHAN"], {}, "opts.fidelity")
    1.0
    >>> arg_value(OPS["OPEN_CHAN"], {"opts": {"fidelity": 0.9}}, "opts.fidelity")
    0.9
    """
    head, _, rest = path.partition(".")
    arg = spec.arg(head)
    value = args.get(head)
    for name in rest.split(".") if rest else ():
        assert arg is not None, path
        arg = next(f for f in arg.fields if f.name == name)
        value = (value or {}).get(name)
    if value is None:
        assert arg is not None and arg.default is not None, path
        value = arg.default
    return float(value)  # type: ignore[arg-type]


def expansion_text(op: str) -> str:
    """The expansion of ``op`` in one line (the op table of ``docs/qvm.md`` shows it)."""
    return "; ".join(str(step) for step in EXPANSIONS.get(op, ()))


def _check() -> None:
    """Refuse a row of no op, or a step that reads an argument its op lacks."""
    for op, steps in EXPANSIONS.items():
        spec = OPS.get(op)
        if spec is None:
            raise RuntimeError(f"the expansion of {op} is of no op in the op table")
        for step in steps:
            if step.arg is not None and spec.arg(step.arg.partition(".")[0]) is None:
                raise RuntimeError(f"{op}'s step {step} reads an argument {op} lacks")


_check()
