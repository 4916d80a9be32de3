"""Arithmetic formulas over qubit times and the code distance, as QRE writes them.

QRE states a QEC scheme's logical cycle time and physical qubits per logical
qubit as formula strings such as ``"(4 * twoQubitGateTime + 2 *
oneQubitMeasurementTime) * codeDistance"``. A :class:`Formula` keeps that text
(so reports can show it, and a QRE-style custom scheme can be given as text)
and evaluates it safely: numbers, variables, ``+ - * / **``, parentheses and
the functions ``ceil``, ``floor``, ``log2``, ``min`` and ``max``; nothing else
parses.

>>> f = Formula("(4 * twoQubitGateTime + 2 * oneQubitMeasurementTime) * codeDistance")
>>> f.evaluate({"twoQubitGateTime": 50, "oneQubitMeasurementTime": 100, "codeDistance": 9})
3600.0
>>> sorted(f.names)
['codeDistance', 'oneQubitMeasurementTime', 'twoQubitGateTime']
>>> Formula("__import__('os')")  # doctest: +ELLIPSIS
Traceback (most recent call last):
...
qmk.qec.errors.QECError: QC103 bad-parameter: formula "__import__('os')": ...
"""

from __future__ import annotations

import ast
import functools
import math
import operator
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from qmk.qec.errors import QECError

_BINARY: dict[type[ast.operator], Callable[[float, float], float]] = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
    ast.Pow: operator.pow,
}
_FUNCTIONS: dict[str, Callable[..., float]] = {
    "ceil": math.ceil,
    "floor": math.floor,
    "log2": math.log2,
    "min": min,
    "max": max,
}
#: Every variable a formula may name: the qubit times (ns) and the code distance.
VARIABLES: frozenset[str] = frozenset(
    {
        "codeDistance",
        "oneQubitMeasurementTime",
        "oneQubitGateTime",
        "twoQubitGateTime",
        "twoQubitJointMeasurementTime",
        "tGateTime",
    }
)


def _bad(text: str, problem: str) -> QECError:
    return QECError.of("bad-parameter", f"formula {text!r}: {problem}", formula=text)


def _check(node: ast.AST, text: str, names: set[str]) -> None:
    """Refuse every syntax outside the formula language; collect the variable names."""
    if isinstance(node, ast.Expression):
        _check(node.body, text, names)
    elif isinstance(node, ast.BinOp) and type(node.op) in _BINARY:
        _check(node.left, text, names)
        _check(node.right, text, names)
    elif isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.UAdd, ast.USub)):
        _check(node.operand, text, names)
    elif isinstance(node, ast.Constant) and type(node.value) in (int, float):
        pass
    elif isinstance(node, ast.Name):
        if node.id not in VARIABLES:
            raise _bad(text, f"unknown variable {node.id!r}; known: {', '.join(sorted(VARIABLES))}")
        names.add(node.id)
    elif (
        isinstance(node, ast.Call)
        and isinstance(node.func, ast.Name)
        and node.func.id in _FUNCTIONS
        and not node.keywords
        and node.args
    ):
        for arg in node.args:
            _check(arg, text, names)
    else:
        raise _bad(
            text,
            "only numbers, variables, + - * / **, parentheses and "
            f"{', '.join(_FUNCTIONS)} are allowed",
        )


@functools.lru_cache(maxsize=256)
def _compile(text: str) -> tuple[ast.Expression, frozenset[str]]:
    try:
        tree = ast.parse(text.strip(), mode="eval")
    except SyntaxError:
        raise _bad(text, "does not parse") from None
    names: set[str] = set()
    _check(tree, text, names)
    return tree, frozenset(names)


def _eval(node: ast.AST, variables: Mapping[str, float]) -> float:
    if isinstance(node, ast.Expression):
        return _eval(node.body, variables)
    if isinstance(node, ast.BinOp):
        return _BINARY[type(node.op)](_eval(node.left, variables), _eval(node.right, variables))
    if isinstance(node, ast.UnaryOp):
        value = _eval(node.operand, variables)
        return -value if isinstance(node.op, ast.USub) else value
    if isinstance(node, ast.Constant) and isinstance(node.value, (int, float)):
        return float(node.value)
    if isinstance(node, ast.Name):
        return float(variables[node.id])
    assert isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
    return float(_FUNCTIONS[node.func.id](*(_eval(arg, variables) for arg in node.args)))


@dataclass(frozen=True, slots=True)
class Formula:
    """A checked arithmetic formula (see the module docstring).

    Raises:
        QECError: ``QC103 bad-parameter`` when the text does not parse or uses
            anything outside the formula language.
    """

    text: str

    def __post_init__(self) -> None:
        _compile(self.text)

    @property
    def names(self) -> frozenset[str]:
        """The variables the formula reads."""
        return _compile(self.text)[1]

    def evaluate(self, variables: Mapping[str, float]) -> float:
        """The formula's value for the given variables.

        Raises:
            QECError: ``QC103 bad-parameter`` when a variable the formula reads is
                missing (e.g. ``twoQubitGateTime`` for a Majorana qubit) or the
                arithmetic fails.
        """
        tree, names = _compile(self.text)
        missing = sorted(names - set(variables))
        if missing:
            raise _bad(self.text, f"no value for {missing[0]!r} here")
        try:
            return _eval(tree, variables)
        except (ArithmeticError, ValueError) as exc:
            raise _bad(self.text, f"cannot be evaluated: {exc}") from None

    def __str__(self) -> str:
        return self.text
