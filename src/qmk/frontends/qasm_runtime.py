"""The pieces of OpenQASM 3's run-time classical values that need no lowering scope.

A value computed at run time (``int n; n += int(c[0]);``) lives in events, one per
bit, written by ``CALC`` nodes (:mod:`qmk.qvm.classical`); the lowerer
(:mod:`qmk.frontends.qasm`) writes their expressions. Here: a run-time variable
(:class:`Value`), the operands one ``CALC`` reads (:class:`Operands`), a constant or a
condition as expression text, loop state (:class:`Loop`) and the names of types.

>>> ops = Operands()
>>> ops.ref(make_type("bit", 1), ("m0",)), ops.ref(make_type("bit", 1), ("m0",))
('v0', 'v0')
>>> cond_text([{"m0": 1, "m1": 0}, {"m0": 0}], ops), ops.reads, ops.inputs
('((v0 and not v1) or (not v0))', 'bit[1],bit[1]', ['m0', 'm1'])
>>> literal(-3), literal(True), literal(0.5)
('(-3)', 'True', '0.5')
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from qmk.frontends.conditions import Cond
from qmk.qvm.classical import BOOL, CType, make_type

#: OpenQASM 3's scalar classical types (the AST's class names) and their kinds.
KINDS = {
    "BitType": "bit",
    "BoolType": "bool",
    "IntType": "int",
    "UintType": "uint",
    "FloatType": "float",
    "AngleType": "angle",
}
#: OpenQASM 3's operators, as the expression language of CALC spells them.
OPERATORS = {"&&": "and", "||": "or"}
UNARY = {"-": "-", "!": "not ", "~": "~"}
#: OpenQASM 3's built-in functions of one argument, as CALC names them.
FUNCTIONS = {
    "sin": "sin",
    "cos": "cos",
    "tan": "tan",
    "arcsin": "arcsin",
    "arccos": "arccos",
    "arctan": "arctan",
    "exp": "exp",
    "ln": "log",
    "sqrt": "sqrt",
    "floor": "floor",
    "ceiling": "ceiling",
}
#: How many iterations a ``while`` loop runs at most, unless ``pragma qmk loop_cap N``
#: says otherwise: a shot still looping after them stops the run (``QE115``).
DEFAULT_LOOP_CAP = 100
#: The largest cap a program may ask for (every iteration is written out).
MAX_LOOP_CAP = 100_000


@dataclass(frozen=True, slots=True)
class Value:
    """A run-time classical variable: its type, and the events holding its bits (least
    significant first)."""

    type: CType
    events: tuple[str, ...]


class Operands:
    """The operands of one ``CALC`` node: each (type, events) is read once, as ``vK``."""

    def __init__(self) -> None:
        self.items: list[tuple[CType, tuple[str, ...]]] = []
        self.index: dict[tuple[CType, tuple[str, ...]], int] = {}

    def ref(self, t: CType, events: tuple[str, ...]) -> str:
        key = (t, events)
        k = self.index.get(key)
        if k is None:
            k = self.index[key] = len(self.items)
            self.items.append(key)
        return f"v{k}"

    @property
    def reads(self) -> str:
        return ",".join(str(t) if t.kind != "bool" else "bool" for t, _ in self.items)

    @property
    def inputs(self) -> list[str]:
        return [event for _, events in self.items for event in events]


@dataclass(slots=True)
class Loop:
    """The loop being lowered: the conditions under which the current iteration broke
    (``broke``), and every break or continue of it in order (``stops``: the statements
    after one run only where it did not)."""

    broke: Cond = field(default_factory=list)
    stops: list[Cond] = field(default_factory=list)


def literal(value: object) -> str:
    """A constant as expression text."""
    if isinstance(value, bool):
        return "True" if value else "False"
    if isinstance(value, int):
        return f"({value})" if value < 0 else str(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"the constant {value} is not finite")
        return f"({value!r})" if value < 0 else repr(value)
    raise ValueError(f"the constant {value!r} is not a number")


def cond_text(cond: Cond, ops: Operands) -> str:
    """A condition (exclusive conjunctions of event tests) as expression text."""
    if not cond:
        return "False"
    terms = []
    for term in cond:
        if not term:
            return "True"
        literals = [
            (ref if value else f"not {ref}")
            for event, value in term.items()
            for ref in [ops.ref(make_type("bit", 1), (event,))]
        ]
        terms.append("(" + " and ".join(literals) + ")")
    return terms[0] if len(terms) == 1 else "(" + " or ".join(terms) + ")"


def cast_name(t: CType) -> str:
    """The cast to ``t`` as CALC spells it: ``int8``, ``bool``."""
    return "bool" if t == BOOL else f"{t.kind}{t.width}"


def zero_of(t: CType) -> float | int | bool:
    """The value a declared variable without an initialiser starts with."""
    if t.kind == "bool":
        return False
    if t.kind == "float" or t.kind == "angle":
        return 0.0
    return 0
