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


def _check(node: ast.AST, text: str, names: set[str], language: Language) -> None:
    """Refuse every syntax outside ``language``; collect the variable names."""
    if isinstance(node, ast.Expression):
        _check(node.body, text, names, language)
    elif isinstance(node, ast.BinOp) and type(node.op) in _BINARY:
        _check(node.left, text, names, language)
        _check(node.right, text, names, language)
    elif isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.UAdd, ast.USub)):
        _check(node.operand, text, names, language)
    elif isinstance(node, ast.Constant) and type(node.value) in (int, float):
        pass
    elif isinstance(node, ast.Name):
        if node.id not in language.variables:
            known = ", ".join(sorted(language.variables))
            raise _bad(text, f"unknown variable {node.id!r}; known: {known}", language.what)
        names.add(node.id)
    elif (
        language.functions
        and isinstance(node, ast.Call)
        and isinstance(node.func, ast.Name)
        and node.func.id in _FUNCTIONS
        and not node.keywords
        and node.args
    ):
        for arg in node.args:
            _check(arg, text, names, language)
    else:
        power = "^" if language.caret_power else "**"
        calls = f", parentheses and {', '.join(_FUNCTIONS)}" if language.functions else ""
        raise _bad(
            text,
            f"only numbers, variables, + - * / {power}{calls} are allowed",
            language.what,
        )


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
        tree = ast.parse(source, mode="eval")
    except SyntaxError:
        raise _bad(text, "does not parse", language.what) from None
    names: set[str] = set()
    _check(tree, text, names, language)
    return tree, frozenset(names)


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
