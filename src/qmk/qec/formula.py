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
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from qmk.qec.errors import QECError
from qmk.qvm.expr_core import ARITHMETIC, SYMBOLS, ParseFailure, Walker, functions, parse

#: The operators and functions of formulas: the expression core's (:mod:`qmk.qvm.expr_core`).
_BINARY: dict[type[ast.operator], Callable[[float, float], float]] = {
    kind: ARITHMETIC[SYMBOLS[kind]] for kind in (ast.Add, ast.Sub, ast.Mult, ast.Div, ast.Pow)
}
_FUNCTIONS = functions("ceil", "floor", "log2", "min", "max")
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


def _bad(text: str, problem: str, what: str = "formula") -> QECError:
    return QECError.of("bad-parameter", f"{what} {text!r}: {problem}", formula=text)


@dataclass(frozen=True, slots=True, kw_only=True)
class Language:
    """What a formula may use: its variables and whether it may call the functions.

    ``caret_power`` reads ``^`` as a power (QRE's distillation-unit formulas write
    ``z ^ 3``); ``what`` names the formula in error messages.
    """

    variables: frozenset[str]
    functions: bool = True
    caret_power: bool = False
    what: str = "formula"


#: QEC scheme formulas: qubit times (ns), the code distance and the functions.
SCHEME_FORMULAS = Language(variables=VARIABLES)


class _Checker(Walker[None]):
    """Refuses every syntax outside a formula's :class:`Language`; collects the variables
    it names."""

    def __init__(self, text: str, language: Language) -> None:
        self.text = text
        self.language = language
        self.names: set[str] = set()

    def refuse(self, node: Any) -> QECError:
        power = "^" if self.language.caret_power else "**"
        calls = f", parentheses and {', '.join(_FUNCTIONS)}" if self.language.functions else ""
        return _bad(
            self.text,
            f"only numbers, variables, + - * / {power}{calls} are allowed",
            self.language.what,
        )

    def on_BinOp(self, node: ast.BinOp) -> None:
        if type(node.op) not in _BINARY:
            raise self.refuse(node)
        self.walk(node.left)
        self.walk(node.right)

    def on_UnaryOp(self, node: ast.UnaryOp) -> None:
        if not isinstance(node.op, (ast.UAdd, ast.USub)):
            raise self.refuse(node)
        self.walk(node.operand)

    def on_Constant(self, node: ast.Constant) -> None:
        if type(node.value) not in (int, float):
            raise self.refuse(node)

    def on_Name(self, node: ast.Name) -> None:
        language = self.language
        if node.id not in language.variables:
            known = ", ".join(sorted(language.variables))
            raise _bad(self.text, f"unknown variable {node.id!r}; known: {known}", language.what)
        self.names.add(node.id)

    def on_Call(self, node: ast.Call) -> None:
        if not (
            self.language.functions
            and isinstance(node.func, ast.Name)
            and node.func.id in _FUNCTIONS
            and not node.keywords
            and node.args
        ):
            raise self.refuse(node)
        for arg in node.args:
            self.walk(arg)


@functools.lru_cache(maxsize=256)
def compile_formula(
    text: str, language: Language = SCHEME_FORMULAS
) -> tuple[ast.Expression, frozenset[str]]:
    """The checked syntax tree of ``text`` in ``language`` and the variables it reads.

    Raises:
        QECError: ``QC103 bad-parameter`` when it does not parse or leaves the language.
    """
    if not isinstance(text, str):
        raise _bad(repr(text), "must be a string", language.what)
    source = text.strip().replace("^", "**") if language.caret_power else text.strip()
    try:
        body = parse(source)
    except ParseFailure:
        raise _bad(text, "does not parse", language.what) from None
    checker = _Checker(text, language)
    checker.walk(body)
    return ast.Expression(body), frozenset(checker.names)


def evaluate_tree(tree: ast.AST, variables: Mapping[str, float]) -> float:
    """The value of a tree :func:`compile_formula` checked (every variable it reads given)."""
    if isinstance(tree, ast.Expression):
        return evaluate_tree(tree.body, variables)
    if isinstance(tree, ast.BinOp):
        left, right = evaluate_tree(tree.left, variables), evaluate_tree(tree.right, variables)
        return float(_BINARY[type(tree.op)](left, right))
    if isinstance(tree, ast.UnaryOp):
        value = evaluate_tree(tree.operand, variables)
        return -value if isinstance(tree.op, ast.USub) else value
    if isinstance(tree, ast.Constant) and isinstance(tree.value, (int, float)):
        return float(tree.value)
    if isinstance(tree, ast.Name):
        return float(variables[tree.id])
    assert isinstance(tree, ast.Call) and isinstance(tree.func, ast.Name)
    args = (evaluate_tree(arg, variables) for arg in tree.args)
    return float(_FUNCTIONS[tree.func.id](*args))


def compile_tree(tree: ast.AST) -> Callable[[Mapping[str, float]], float]:
    """``lambda variables: evaluate_tree(tree, variables)``, walked once: the nodes become
    nested closures that do what :func:`evaluate_tree` does at each node (the same
    operations in the same order, so the same float and the same exceptions)."""
    if isinstance(tree, ast.Expression):
        return compile_tree(tree.body)
    if isinstance(tree, ast.BinOp):
        op = _BINARY[type(tree.op)]
        left, right = compile_tree(tree.left), compile_tree(tree.right)
        return lambda variables: float(op(left(variables), right(variables)))
    if isinstance(tree, ast.UnaryOp):
        operand = compile_tree(tree.operand)
        if isinstance(tree.op, ast.USub):
            return lambda variables: -operand(variables)
        return operand
    if isinstance(tree, ast.Constant) and isinstance(tree.value, (int, float)):
        value = float(tree.value)
        return lambda variables: value
    if isinstance(tree, ast.Name):
        name = tree.id
        return lambda variables: float(variables[name])
    assert isinstance(tree, ast.Call) and isinstance(tree.func, ast.Name)
    function = _FUNCTIONS[tree.func.id]
    args = [compile_tree(arg) for arg in tree.args]
    return lambda variables: float(function(*(arg(variables) for arg in args)))


@functools.lru_cache(maxsize=256)
def _evaluator(text: str) -> Callable[[Mapping[str, float]], float]:
    """The compiled form of a scheme formula :func:`compile_formula` has checked."""
    return compile_tree(compile_formula(text)[0])


@dataclass(frozen=True, slots=True)
class Formula:
    """A checked arithmetic formula (see the module docstring).

    Raises:
        QECError: ``QC103 bad-parameter`` when the text does not parse or uses
            anything outside the formula language.
    """

    text: str

    def __post_init__(self) -> None:
        # compiled when made (a predefined scheme's at import), not at a first estimate
        _evaluator(self.text)

    @property
    def names(self) -> frozenset[str]:
        """The variables the formula reads."""
        return compile_formula(self.text)[1]

    def evaluate(self, variables: Mapping[str, float]) -> float:
        """The formula's value for the given variables.

        Raises:
            QECError: ``QC103 bad-parameter`` when a variable the formula reads is
                missing (e.g. ``twoQubitGateTime`` for a Majorana qubit) or the
                arithmetic fails.
        """
        names = compile_formula(self.text)[1]
        if not names <= variables.keys():  # (a keys view: no set made of the variables)
            missing = sorted(names - set(variables))
            raise _bad(self.text, f"no value for {missing[0]!r} here")
        try:
            return _evaluator(self.text)(variables)
        except (ArithmeticError, ValueError) as exc:
            raise _bad(self.text, f"cannot be evaluated: {exc}") from None

    def __str__(self) -> str:
        return self.text
