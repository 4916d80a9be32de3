"""The one expression core: what QMK's four expression languages share.

QMK reads arithmetic in four places, each a dialect of the same core:

- assembly text's assemble-time expressions (:mod:`qmk.qvm.expr`): Python syntax,
  evaluated at once;
- ``CALC`` nodes' typed run-time expressions (:mod:`qmk.qvm.classical`): Python syntax
  typed over OpenQASM 3's classical types, compiled to a function;
- QRE's formulas of a QEC scheme (:mod:`qmk.qec.formula`): Python syntax, compiled;
- OpenQASM's constant expressions (:mod:`qmk.frontends.qasm_scope`): the reference
  parser's syntax tree, evaluated at once.

Here, once:

- the parse of an expression's text (:func:`parse`), its failures one
  :class:`ParseFailure` whose ``reason`` each dialect words its own way;
- the walk of a syntax tree by node class (:class:`Walker`);
- the meaning of each operator by its symbol (:data:`ARITHMETIC`, :data:`COMPARISONS`,
  :data:`BITWISE`), and the symbol of each of Python's operator nodes (:data:`SYMBOLS`);
- the mathematical constants and functions by every name a dialect gives them
  (:data:`CONSTANTS`, :func:`functions`);
- the clipped text an error quotes (:func:`clip`).

A dialect says which of them it allows and what differs (OpenQASM's ``/`` of two
integers that divide exactly is an integer; a typed ``CALC`` wraps to its width).

>>> SYMBOLS[type(parse("2 ** 3").op)], ARITHMETIC["**"](2, 3)
('**', 8)
>>> functions("sin", arcsin="asin")["arcsin"](1.0) == math.pi / 2
True
>>> parse("1 +")
Traceback (most recent call last):
...
qmk.qvm.expr_core.ParseFailure: '1 +' is not an expression (invalid syntax)
"""

from __future__ import annotations

import ast
import math
import operator
from collections.abc import Callable, Mapping
from types import MappingProxyType
from typing import Any, Generic, TypeVar

_T = TypeVar("_T")

#: The symbol of each of Python's operator nodes (the spelling OpenQASM 3 shares).
SYMBOLS: Mapping[type, str] = MappingProxyType(
    {
        ast.Add: "+",
        ast.Sub: "-",
        ast.Mult: "*",
        ast.Div: "/",
        ast.FloorDiv: "//",
        ast.Mod: "%",
        ast.Pow: "**",
        ast.BitAnd: "&",
        ast.BitOr: "|",
        ast.BitXor: "^",
        ast.LShift: "<<",
        ast.RShift: ">>",
        ast.Eq: "==",
        ast.NotEq: "!=",
        ast.Lt: "<",
        ast.LtE: "<=",
        ast.Gt: ">",
        ast.GtE: ">=",
    }
)

#: The arithmetic of numbers, by symbol: Python's meaning.
ARITHMETIC: Mapping[str, Callable[[Any, Any], Any]] = MappingProxyType(
    {
        "+": operator.add,
        "-": operator.sub,
        "*": operator.mul,
        "/": operator.truediv,
        "//": operator.floordiv,
        "%": operator.mod,
        "**": operator.pow,
    }
)
#: The comparisons, by symbol.
COMPARISONS: Mapping[str, Callable[[Any, Any], bool]] = MappingProxyType(
    {
        "==": operator.eq,
        "!=": operator.ne,
        "<": operator.lt,
        "<=": operator.le,
        ">": operator.gt,
        ">=": operator.ge,
    }
)
#: The operations on the bits of integers, by symbol.
BITWISE: Mapping[str, Callable[[int, int], int]] = MappingProxyType(
    {
        "&": operator.and_,
        "|": operator.or_,
        "^": operator.xor,
        "<<": operator.lshift,
        ">>": operator.rshift,
    }
)

#: The mathematical constants, by every name a dialect gives them.
CONSTANTS: Mapping[str, float] = MappingProxyType(
    {
        "pi": math.pi,
        "π": math.pi,
        "tau": math.tau,
        "τ": math.tau,
        "e": math.e,
        "euler": math.e,
        "ℯ": math.e,
    }
)

#: The mathematical functions, by their name in Python's ``math``.
MATH: Mapping[str, Callable[..., Any]] = MappingProxyType(
    {
        "sin": math.sin,
        "cos": math.cos,
        "tan": math.tan,
        "asin": math.asin,
        "acos": math.acos,
        "atan": math.atan,
        "atan2": math.atan2,
        "sqrt": math.sqrt,
        "exp": math.exp,
        "log": math.log,
        "log2": math.log2,
        "log10": math.log10,
        "floor": math.floor,
        "ceil": math.ceil,
        "abs": abs,
        "min": min,
        "max": max,
    }
)


def constants(*names: str) -> Mapping[str, float]:
    """A dialect's constants: those of :data:`CONSTANTS` it names.

    >>> dict(constants("pi", "euler"))
    {'pi': 3.141592653589793, 'euler': 2.718281828459045}
    """
    return MappingProxyType({name: CONSTANTS[name] for name in names})


def functions(*names: str, **renamed: str) -> Mapping[str, Callable[..., Any]]:
    """A dialect's functions: those of :data:`MATH` it names, and others under its own
    names (``arcsin="asin"``: the dialect's ``arcsin`` is ``math.asin``)."""
    table = {name: MATH[name] for name in names}
    table.update({name: MATH[math_name] for name, math_name in renamed.items()})
    return MappingProxyType(table)


def clip(text: str, width: int = 80) -> str:
    """``text`` as an error quotes it: at most ``width`` characters.

    >>> clip("x" * 100, 10)
    'xxxxxxx...'
    """
    return text if len(text) <= width else text[: width - 3] + "..."


class ParseFailure(ValueError):
    """Text that is no expression; ``reason`` says why (``"empty"``, ``"syntax"``: the
    parser refused it, ``"limits"``: it parsed past what the parser takes), and the
    message says it in words a dialect may keep or replace."""

    def __init__(self, message: str, *, reason: str, detail: str = "") -> None:
        super().__init__(message)
        self.reason = reason
        self.detail = detail


def parse(text: str) -> ast.expr:
    """The syntax tree of one expression in Python syntax (``text`` stripped).

    Raises:
        ParseFailure: empty text, a syntax error, or text the parser cannot take (null
            bytes, an int past Python's digit limit, nesting past the parser's depth).
    """
    source = text.strip()
    if not source:
        raise ParseFailure("empty expression", reason="empty")
    try:
        return ast.parse(source, mode="eval").body
    except SyntaxError as exc:
        raise ParseFailure(
            f"{clip(source)!r} is not an expression ({exc.msg})", reason="syntax", detail=exc.msg
        ) from None
    except (ValueError, RecursionError, MemoryError) as exc:
        raise ParseFailure(
            f"{clip(source)!r} cannot be parsed: {exc}", reason="limits", detail=str(exc)
        ) from None


class Walker(Generic[_T]):
    """A walk of a syntax tree by node class: ``walk(node)`` calls the method named
    :attr:`PREFIX` + the node's class name (``on_BinOp``), and :meth:`refuse` where the
    dialect has none. Works for Python's ``ast`` and OpenQASM's reference tree alike.

    >>> class Count(Walker[int]):
    ...     def on_BinOp(self, node): return 1 + self.walk(node.left) + self.walk(node.right)
    ...     def on_Constant(self, node): return 0
    >>> Count().walk(parse("1 + 2 * 3"))
    2
    """

    #: The prefix of the walk's methods.
    PREFIX = "on_"

    def walk(self, node: Any) -> _T:
        method = getattr(self, f"{self.PREFIX}{type(node).__name__}", None)
        if method is None:
            raise self.refuse(node)
        result: _T = method(node)
        return result

    def refuse(self, node: Any) -> Exception:
        """The error for a node of a class the dialect does not allow."""
        return ValueError(f"{type(node).__name__} is not allowed")


__all__ = [
    "ARITHMETIC",
    "BITWISE",
    "COMPARISONS",
    "CONSTANTS",
    "MATH",
    "SYMBOLS",
    "ParseFailure",
    "Walker",
    "clip",
    "constants",
    "functions",
    "parse",
]
