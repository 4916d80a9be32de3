"""Safe assemble-time expressions: the arithmetic that assembly text may compute.

An expression is Python expression syntax, parsed with :func:`ast.parse` and
evaluated by walking a whitelist of node types; nothing is ever passed to
``eval``. What is allowed:

* constants: ints, floats, strings, ``True``/``False``; names from the
  environment, then the constants ``pi``, ``tau`` and ``e``;
* arithmetic on numbers: ``+ - * / // % **`` and unary ``+ -``; ``+`` also joins
  two strings;
* ``not``, ``and``, ``or`` (Python's short-circuit values), comparisons
  ``== != < <= > >=`` (chains allowed) and ``X if C else Y``;
* calls of the functions in :data:`FUNCTIONS` with positional arguments.

Every intermediate value is checked: floats must be finite, ints may hold at
most :data:`MAX_INT_BITS` bits, and ``**`` refuses exponents whose magnitude is
over :data:`MAX_EXPONENT`. Any other construct (attributes, subscripts, lambdas,
comprehensions, containers), an unknown name or function, division by zero and
math domain errors raise :class:`ExprError`, whose message names the problem.

>>> evaluate("2 * n + 1", {"n": 3})
7
>>> evaluate("sin(pi / 2)", {})
1.0
>>> evaluate("'q' + name", {"name": "7"})
'q7'
>>> evaluate("1 / 0", {})
Traceback (most recent call last):
...
qmk.qvm.expr.ExprError: division by zero in '1 / 0'
"""

from __future__ import annotations

import ast
import math
from collections.abc import Callable, Mapping
from typing import Any

from qmk.qvm.expr_core import (
    ARITHMETIC,
    COMPARISONS,
    SYMBOLS,
    ParseFailure,
    Walker,
    clip,
    constants,
    functions,
    parse,
)

#: Names every expression may use besides its environment.
CONSTANTS: Mapping[str, float] = constants("pi", "tau", "e")

#: The largest int an expression may produce, in bits.
MAX_INT_BITS = 4096
#: The largest exponent magnitude ``**`` accepts.
MAX_EXPONENT = 1024
#: The largest float ``**`` may produce (anything larger is refused, not rounded).
MAX_FLOAT = 1e308
#: The largest ``ndigits`` magnitude ``round`` accepts (bigger ones cost time for nothing).
MAX_ROUND_DIGITS = 1024


class ExprError(ValueError):
    """An expression that cannot be evaluated; the message says what and where."""


class UndefinedNameError(ExprError):
    """An expression names something that is neither in its environment nor a constant.

    Attributes:
        name: the undefined name.
    """

    def __init__(self, message: str, *, name: str) -> None:
        super().__init__(message)
        self.name = name


def _round(value: Any, ndigits: Any = None) -> Any:
    if ndigits is None:
        return round(value)
    if type(ndigits) is not int or abs(ndigits) > MAX_ROUND_DIGITS:
        raise ExprError(f"round() takes an int ndigits of at most {MAX_ROUND_DIGITS} in magnitude")
    return round(value, ndigits)


#: The functions an expression may call, by name.
FUNCTIONS: Mapping[str, Callable[..., Any]] = {
    **functions(
        "sin",
        "cos",
        "tan",
        "asin",
        "acos",
        "atan",
        "atan2",
        "sqrt",
        "exp",
        "log",
        "log2",
        "log10",
        "floor",
        "ceil",
        "abs",
        "min",
        "max",
    ),
    "round": _round,
    "int": int,
    "float": float,
}

# Readable names for constructs outside the whitelist, so an error says what was used.
_CONSTRUCTS: Mapping[type, str] = {
    ast.Attribute: "attribute access",
    ast.Subscript: "subscripts",
    ast.Lambda: "lambdas",
    ast.ListComp: "comprehensions",
    ast.SetComp: "comprehensions",
    ast.DictComp: "comprehensions",
    ast.GeneratorExp: "comprehensions",
    ast.List: "lists",
    ast.Tuple: "tuples",
    ast.Dict: "dicts",
    ast.Set: "sets",
    ast.JoinedStr: "f-strings",
    ast.NamedExpr: "assignment expressions (:=)",
    ast.Starred: "starred arguments",
    ast.Await: "await",
    ast.Yield: "yield",
    ast.YieldFrom: "yield",
    ast.Slice: "slices",
}

#: The binary operators an expression may use (``**`` is checked apart: :meth:`power`).
_SYMBOLS: Mapping[type, str] = {
    kind: symbol for kind, symbol in SYMBOLS.items() if symbol in ARITHMETIC
}
_ARITH: Mapping[type, Callable[[Any, Any], Any]] = {
    kind: ARITHMETIC[symbol] for kind, symbol in _SYMBOLS.items() if symbol != "**"
}
_COMPARE: Mapping[type, Callable[[Any, Any], bool]] = {
    kind: COMPARISONS[symbol] for kind, symbol in SYMBOLS.items() if symbol in COMPARISONS
}


def evaluate(text: str, env: Mapping[str, object]) -> object:
    """Evaluate one expression safely.

    Args:
        text: the expression, in Python syntax restricted as the module describes.
        env: the names it may use (parameters, loop variables), mapped to ints,
            floats, strings or bools. They shadow nothing: ``pi``, ``tau`` and ``e``
            are looked up only when ``env`` lacks the name.

    Returns:
        The value: an int, a finite float, a str or a bool.

    Raises:
        ExprError: the text does not parse, uses a construct outside the
            whitelist, divides by zero, leaves a math function's domain, or
            produces a value that is too large. :class:`UndefinedNameError`
            (a subclass) when it names something undefined.

    >>> evaluate("floor(7 / 2) if n > 1 else -1", {"n": 2})
    3
    >>> evaluate("x.real", {"x": 1})
    Traceback (most recent call last):
    ...
    qmk.qvm.expr.ExprError: expressions may not use attribute access: 'x.real'
    """
    source = text.strip()
    try:
        tree = parse(source)
    except ParseFailure as exc:
        raise ExprError(str(exc)) from None
    try:
        return _Evaluator(source, env).walk(tree)
    except RecursionError:
        raise ExprError(f"{clip(source)!r} nests too deeply to evaluate") from None


def _is_number(value: Any) -> bool:
    return type(value) in (int, float, bool)


class _Evaluator(Walker[Any]):
    """Walks one parsed expression; every method returns a checked value."""

    __slots__ = ("env", "source")

    def __init__(self, source: str, env: Mapping[str, object]) -> None:
        self.source = source
        self.env = env

    def fail(self, message: str) -> ExprError:
        return ExprError(f"{message} in {clip(self.source)!r}")

    def check(self, value: Any) -> Any:
        kind = type(value)
        if kind is float:
            if not math.isfinite(value):
                raise self.fail(f"the result {value!r} is not a finite number")
        elif kind is int:
            if value.bit_length() > MAX_INT_BITS:
                raise self.fail(f"an int result is larger than {MAX_INT_BITS} bits")
        elif kind not in (str, bool):
            raise self.fail(f"the result has type {kind.__name__}, not a number or string")
        return value

    def refuse(self, node: Any) -> ExprError:
        what = _CONSTRUCTS.get(type(node), f"{type(node).__name__} expressions")
        return ExprError(f"expressions may not use {what}: {clip(self.source)!r}")

    def on_Constant(self, node: ast.Constant) -> Any:
        if type(node.value) not in (int, float, str, bool):
            raise ExprError(
                f"the constant {node.value!r} is not allowed in expressions: "
                f"{clip(self.source)!r}; use ints, floats and strings"
            )
        return self.check(node.value)

    def on_Name(self, node: ast.Name) -> Any:
        if node.id in self.env:
            return self.check(self.env[node.id])
        if node.id in CONSTANTS:
            return CONSTANTS[node.id]
        if node.id in FUNCTIONS:
            raise self.fail(f"the function {node.id} is used without calling it")
        raise UndefinedNameError(
            f"undefined name {node.id!r} in {clip(self.source)!r}; "
            "define it with .param, a .for variable or a macro parameter",
            name=node.id,
        )

    def on_UnaryOp(self, node: ast.UnaryOp) -> Any:
        operand = self.walk(node.operand)
        if isinstance(node.op, ast.Not):
            return not operand
        if isinstance(node.op, ast.Invert):
            raise self.fail("the operator ~ is not allowed")
        if not _is_number(operand):
            raise self.fail(f"unary {'-' if isinstance(node.op, ast.USub) else '+'} needs a number")
        return self.check(-operand if isinstance(node.op, ast.USub) else +operand)

    def on_BinOp(self, node: ast.BinOp) -> Any:
        # Walk the left spine iteratively: "1 + 1 + ... + 1" nests as deep as it is long.
        spine: list[ast.BinOp] = []
        left_node: ast.expr = node
        while isinstance(left_node, ast.BinOp):
            spine.append(left_node)
            left_node = left_node.left
        value = self.walk(left_node)
        for binop in reversed(spine):
            value = self.binary(binop.op, value, self.walk(binop.right))
        return value

    def binary(self, op: ast.operator, left: Any, right: Any) -> Any:
        symbol = _SYMBOLS.get(type(op))
        if symbol is None:
            raise self.fail(f"the operator {type(op).__name__} is not allowed")
        if isinstance(op, ast.Add) and type(left) is str and type(right) is str:
            return left + right
        if not (_is_number(left) and _is_number(right)):
            # str * int and str % x would build huge strings or format; only + joins strings
            raise self.fail(
                f"{symbol} needs two numbers, got {type(left).__name__} and {type(right).__name__}"
            )
        try:
            if isinstance(op, ast.Pow):
                return self.check(self.power(left, right))
            return self.check(_ARITH[type(op)](left, right))
        except ZeroDivisionError:
            raise self.fail("division by zero") from None
        except (OverflowError, ValueError) as exc:
            raise self.fail(f"{symbol} failed ({exc})") from None

    def power(self, base: Any, exponent: Any) -> Any:
        if abs(exponent) > MAX_EXPONENT:
            raise self.fail(f"the exponent {exponent!r} is larger than {MAX_EXPONENT} in magnitude")
        # estimate before computing so a huge int is never built
        if (
            type(base) in (int, bool)
            and type(exponent) in (int, bool)
            and max(abs(base).bit_length() - 1, 0) * exponent > MAX_INT_BITS
        ):
            raise self.fail(f"an int result is larger than {MAX_INT_BITS} bits")
        result = base**exponent
        if type(result) is complex:
            raise self.fail("** gives a complex number")
        if type(result) is float and abs(result) > MAX_FLOAT:
            raise self.fail(f"** gives a result larger than {MAX_FLOAT}")
        return result

    def on_BoolOp(self, node: ast.BoolOp) -> Any:
        is_and = isinstance(node.op, ast.And)
        value: Any = None
        for operand in node.values:
            value = self.walk(operand)
            if bool(value) != is_and:
                return value
        return value

    def on_Compare(self, node: ast.Compare) -> Any:
        left = self.walk(node.left)
        for op, comparator in zip(node.ops, node.comparators, strict=True):
            compare = _COMPARE.get(type(op))
            if compare is None:
                raise self.fail(f"the comparison {type(op).__name__} is not allowed")
            right = self.walk(comparator)
            try:
                holds = compare(left, right)
            except TypeError:
                raise self.fail(
                    f"cannot compare {type(left).__name__} with {type(right).__name__}"
                ) from None
            if not holds:
                return False
            left = right
        return True

    def on_IfExp(self, node: ast.IfExp) -> Any:
        return self.walk(node.body) if self.walk(node.test) else self.walk(node.orelse)

    def on_Call(self, node: ast.Call) -> Any:
        if not isinstance(node.func, ast.Name):
            raise ExprError(
                f"only the listed functions may be called, by name: {clip(self.source)!r}"
            )
        name = node.func.id
        function = FUNCTIONS.get(name)
        if function is None:
            raise self.fail(f"unknown function {name!r}; known: {', '.join(sorted(FUNCTIONS))}")
        if node.keywords:
            raise self.fail(f"{name}() takes positional arguments only")
        args = [self.walk(arg) for arg in node.args]
        for arg in args:
            if not _is_number(arg):
                raise self.fail(f"{name}() takes numbers, got {type(arg).__name__}")
        try:
            return self.check(function(*args))
        except ExprError:
            raise
        except ZeroDivisionError:
            raise self.fail(f"division by zero in {name}()") from None
        except (ValueError, OverflowError, TypeError) as exc:
            raise self.fail(f"{name}() failed ({exc})") from None
