"""Run-time classical values: their types, their bits, and the typed expressions of ``CALC``.

A QVM event is one bit. A classical value of a program (an OpenQASM 3 ``int``, a QIR
``i64``) is the bits of its type, least significant first, each one event. A ``CALC``
node reads the events of its operands (``inputs``, grouped by the types its ``reads``
argument lists). It evaluates its ``expr`` and produces the bits of a value of its
``type``. Guards read those events as they read measurement outcomes, so a branch on
``n == 3`` is a ``CALC`` that produces one bool and a guard on it.

Types: ``bool``, ``bit[n]``, ``int[n]`` (two's complement), ``uint[n]``, ``angle[n]``
(``k`` of ``n`` bits stands for ``2 pi k / 2**n``) and ``float[64]``/``float[32]``
(IEEE 754 bits). Widths run from 1 to :data:`MAX_WIDTH`.

An expression is Python expression syntax, parsed with :func:`ast.parse` and never
given to ``eval``. It may use:

- ``v0, v1, ...``, the operands; int, float and bool literals; ``pi``, ``tau``, ``euler``;
- ``+ - * / % **`` (``/`` of integers truncates toward zero and ``%`` takes the
  dividend's sign, as C and OpenQASM 3 do), ``& | ^ ~ << >>``, comparisons,
  ``and``/``or``/``not``, ``x if c else y``;
- casts written as calls of a type name (``int32(v0)``, ``uint8(x)``, ``bool(x)``,
  ``float64(x)``, ``angle16(x)``, ``bit4(x)``);
- the functions of :data:`FUNCTIONS`, and OpenQASM 3's functions of bits
  ``popcount(x)``, ``rotl(x, k)``, ``rotr(x, k)``.

An angle is an unsigned integer of its width (``k`` stands for ``2 pi k / 2**n``).
``+ -`` with angles and ``* /`` by integers wrap modulo a turn. Its bits shift, rotate
and combine (``<< >> & | ^ ~``) as the bits of a ``uint[n]``; bits shifted off the end
are lost. :func:`compile_expr` types every subexpression (a mistyped one is a
:class:`ClassicalError` naming it). It returns the expression's type with a function of
the operand values. The result is cast to the node's type when it is stored
(:func:`cast`, whose rules are OpenQASM 3's: :data:`CASTS`).

>>> t = parse_type("int[8]")
>>> calc = compile_expr("v0 + int8(v1)", (t, parse_type("bit")))
>>> str(calc.type), calc.fn([-3, 1])
('int[8]', -2)
>>> prepare("bool", "int[8]", "v0 < 0", 8)(encode(t, -2))
[1]
>>> encode(t, -2), decode(t, encode(t, -2))
([0, 1, 1, 1, 1, 1, 1, 1], -2)
>>> compile_expr("v0 << 2", (parse_type("angle[4]"),)).fn([9])  # 9 pi/8 << 2 = pi/2
4
>>> try:
...     compile_expr("v0 + 1.5", (parse_type("angle[4]"),))
... except ClassicalError as exc:
...     print(exc)
+ of angle[4] and float[64] is not defined (cast the number to an angle: angle[n](x)) in \
'v0 + 1.5'
"""

from __future__ import annotations

import ast
import functools
import math
import re
import struct
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

from qmk.qvm.expr_core import COMPARISONS, ParseFailure, Walker, clip, constants, functions, parse
from qmk.qvm.expr_core import SYMBOLS as CORE_SYMBOLS

#: The widest value, in bits.
MAX_WIDTH = 1024
#: The kinds of classical value, and the width each takes when a type names none.
DEFAULT_WIDTH: Mapping[str, int] = MappingProxyType(
    {"bool": 1, "bit": 1, "int": 32, "uint": 32, "angle": 64, "float": 64}
)
_INTEGRAL = frozenset({"bool", "bit", "int", "uint"})

#: The explicit casts OpenQASM 3 allows, as (from kind, to kind) pairs; a store casts
#: by the same rules. ``angle`` to ``float`` is QMK's addition (a rotation's radians).
CASTS: frozenset[tuple[str, str]] = frozenset(
    {(k, k) for k in DEFAULT_WIDTH}
    | {("bool", k) for k in ("bit", "int", "uint", "float")}
    | {(k, j) for k in ("int", "uint") for j in ("bool", "bit", "int", "uint", "float")}
    | {("float", k) for k in ("bool", "int", "uint", "angle")}
    | {("angle", k) for k in ("bool", "bit", "float")}
    | {("bit", k) for k in ("bool", "int", "uint", "angle")}
)


class ClassicalError(ValueError):
    """A type or expression that is not well formed or not well typed."""


class ClassicalFault(ClassicalError):
    """An expression that fails while it runs: division by zero, a non-finite float cast
    to an integer."""


@dataclass(frozen=True, slots=True)
class CType:
    """A classical type: its kind and width in bits (``width`` 0: an integer literal,
    which takes the type of what it meets)."""

    kind: str
    width: int

    def __str__(self) -> str:
        if self.kind == "bool":
            return "bool"
        if self.width == 0:
            return "int"
        return f"{self.kind}[{self.width}]"

    @property
    def integral(self) -> bool:
        return self.kind in _INTEGRAL

    @property
    def numeric(self) -> bool:
        return self.kind in ("int", "uint", "float", "bit", "bool")


BOOL = CType("bool", 1)
FLOAT = CType("float", 64)
_LITERAL = CType("int", 0)
_TYPE = re.compile(r"\s*(bool|bit|int|uint|angle|float)\s*(?:\[\s*(\d+)\s*\])?\s*\Z")
_CAST = re.compile(r"(bool|bit|int|uint|angle|float)(\d*)\Z")


def parse_type(text: str) -> CType:
    """``"int[8]"`` as a :class:`CType` (a missing width takes :data:`DEFAULT_WIDTH`).

    Raises:
        ClassicalError: not a type, or a width out of range.
    """
    match = _TYPE.match(text) if isinstance(text, str) else None
    if match is None:
        raise ClassicalError(
            f"{text!r} is not a classical type (bool, bit[n], int[n], uint[n], angle[n], "
            "float[64], float[32])"
        )
    kind, width = match.group(1), match.group(2)
    return make_type(kind, DEFAULT_WIDTH[kind] if width is None else int(width))


def make_type(kind: str, width: int) -> CType:
    """The type ``kind[width]``, checked."""
    if kind == "bool":
        return BOOL
    if kind == "float" and width not in (32, 64):
        raise ClassicalError(f"float[{width}]: floats are float[32] or float[64]")
    if not 1 <= width <= MAX_WIDTH:
        raise ClassicalError(f"{kind}[{width}]: widths run from 1 to {MAX_WIDTH}")
    return CType(kind, width)


def parse_reads(text: str) -> tuple[CType, ...]:
    """The operand types of a ``reads`` argument: types separated by commas ("" for none)."""
    if not isinstance(text, str):
        raise ClassicalError("reads must be a string of types separated by commas")
    if not text.strip():
        return ()
    return tuple(parse_type(part) for part in _split_types(text))


def _split_types(text: str) -> list[str]:
    parts, depth, start = [], 0, 0
    for i, ch in enumerate(text):
        depth += ch == "["
        depth -= ch == "]"
        if ch == "," and depth == 0:
            parts.append(text[start:i])
            start = i + 1
    parts.append(text[start:])
    return parts


# ----------------------------------------------------------------------------- values


def wrap(t: CType, value: Any) -> Any:
    """``value`` (a Python int, float or bool of ``t``'s kind) in ``t``'s range."""
    kind = t.kind
    if kind == "bool":
        return bool(value)
    if kind == "float":
        value = float(value)
        if t.width == 32 and math.isfinite(value):
            try:
                return struct.unpack("<f", struct.pack("<f", value))[0]
            except OverflowError:
                return math.copysign(math.inf, value)
        return value
    if t.width == 0:
        return int(value)
    mask = (1 << t.width) - 1
    value = int(value) & mask
    if kind == "int" and value >> (t.width - 1):
        value -= 1 << t.width
    return value


def encode(t: CType, value: Any) -> list[int]:
    """The bits of ``value`` as ``t`` stores it, least significant first."""
    if t.kind == "float":
        fmt, code = ("<d", "<Q") if t.width == 64 else ("<f", "<I")
        raw = struct.unpack(code, struct.pack(fmt, float(value)))[0]
    else:
        raw = int(wrap(t, value)) & ((1 << t.width) - 1)
    return [(raw >> k) & 1 for k in range(t.width)]


def decode(t: CType, bits: Sequence[int]) -> Any:
    """The value the bits (least significant first) of ``t`` hold."""
    raw = 0
    for k, bit in enumerate(bits):
        raw |= (int(bit) & 1) << k
    if t.kind == "float":
        fmt, code = ("<d", "<Q") if t.width == 64 else ("<f", "<I")
        return struct.unpack(fmt, struct.pack(code, raw))[0]
    return wrap(t, raw)


def cast(src: CType, dst: CType, value: Any) -> Any:
    """``value`` of ``src`` as ``dst`` (the rules of :data:`CASTS`).

    Raises:
        ClassicalFault: a float that is not finite cast to an integer or angle.
    """
    s, d = src.kind, dst.kind
    if d == "bool":
        return bool(value)
    if s == "angle":
        if d == "float":
            return wrap(dst, value * math.tau / 2**src.width)
        if d == "angle":
            return wrap(dst, _rescale(value, src.width, dst.width))
        return wrap(dst, value)
    if s == "float":
        if not math.isfinite(value):
            raise ClassicalFault(f"the float {value} cannot be cast to {dst}")
        if d == "angle":
            return wrap(dst, round((value % math.tau) / math.tau * 2**dst.width))
        if d == "float":
            return wrap(dst, value)
        return wrap(dst, math.trunc(value))
    if d == "float":
        return wrap(dst, float(value))
    return wrap(dst, int(value))


def weights(t: CType) -> list[float]:
    """What each bit of a ``t`` adds to its value (least significant first): an
    angle's bit ``k`` ``2 pi 2**k / 2**n`` radians, an integer's ``2**k`` (the sign bit
    of an ``int[n]`` ``-2**(n-1)``). The value is the sum over the bits that are 1.

    Raises:
        ClassicalError: a float, whose value is no sum of its bits.

    >>> weights(parse_type("angle[2]")), weights(parse_type("int[3]"))
    ([1.5707963267948966, 3.141592653589793], [1.0, 2.0, -4.0])
    """
    if t.kind == "float":
        raise ClassicalError(f"a {t} is no sum of its bits")
    if t.kind == "angle":
        return [math.ldexp(math.tau, k - t.width) for k in range(t.width)]
    out = [math.ldexp(1.0, k) for k in range(t.width)]
    if t.kind == "int":
        out[-1] = -out[-1]
    return out


def _rescale(k: int, src: int, dst: int) -> int:
    """Angle ``k`` of ``src`` bits as ``dst`` bits: padded with zeros, or rounded to the
    nearest with ties to the even value (OpenQASM 3's rounding)."""
    if dst >= src:
        return k << (dst - src)
    drop = src - dst
    q, r = k >> drop, k & ((1 << drop) - 1)
    half = 1 << (drop - 1)
    return q + (r > half or (r == half and q & 1))


def castable(src: CType, dst: CType) -> bool:
    """Whether a ``src`` value may be cast (or stored) to ``dst``: :data:`CASTS`, and
    between a bit register and an angle only of the same width (OpenQASM 3 reinterprets
    the bits; another width needs a slice)."""
    if (src.kind, dst.kind) not in CASTS:
        return False
    between = {src.kind, dst.kind} == {"bit", "angle"}
    return not (between and src.width != dst.width)


# ----------------------------------------------------------------------------- expressions

Fn = Callable[[Sequence[Any]], Any]


@dataclass(frozen=True, slots=True)
class Compiled:
    """A typed expression: its type and a function of the operand values."""

    type: CType
    fn: Fn


#: The functions an expression may call: name -> (argument kinds, the function). Each
#: takes floats (an angle argument is its radians) and gives a float.
FUNCTIONS: Mapping[str, Callable[[float], float]] = MappingProxyType(
    {
        **functions(
            "sin", "cos", "tan", "exp", "log", "sqrt", arcsin="asin", arccos="acos", arctan="atan"
        ),
        "floor": lambda x: float(math.floor(x)),
        "ceiling": lambda x: float(math.ceil(x)),
    }
)
#: OpenQASM 3's functions of the bits of a value, by their argument counts.
BIT_FUNCTIONS: Mapping[str, int] = MappingProxyType({"popcount": 1, "rotl": 2, "rotr": 2})
#: The named constants an expression may read (OpenQASM 3's names for them).
CONSTANTS: Mapping[str, float] = constants("pi", "tau", "euler")
#: The OpenQASM 3 spelling of each operator an expression may use (the writer's too).
SYMBOLS: Mapping[type, str] = MappingProxyType(
    {kind: symbol for kind, symbol in CORE_SYMBOLS.items() if symbol != "//"}
)
#: The longest expression text a node may carry.
MAX_EXPR = 65536


def compile_expr(text: str, reads: Sequence[CType]) -> Compiled:
    """Type ``text`` over operands of the types ``reads``; see the module docstring.

    Raises:
        ClassicalError: the text does not parse, names an unknown operand or function,
            or a subexpression is not well typed (the message names it).
    """
    if not isinstance(text, str) or not text.strip():
        raise ClassicalError("an empty expression")
    if len(text) > MAX_EXPR:
        raise ClassicalError(f"an expression longer than {MAX_EXPR} characters")
    try:
        tree = parse(text)
    except ParseFailure:
        raise ClassicalError(f"{clip(text)!r} is not an expression") from None
    try:
        return _Typer(text, tuple(reads)).walk(tree)
    except RecursionError:
        raise ClassicalError(f"{clip(text)!r} nests too deeply") from None


def _literal_for(c: Compiled, dst: CType) -> Compiled:
    """An integer literal (width 0) as a value to cast to ``dst``: a number of radians
    for an angle (as a float is), an ``int[64]`` otherwise; any other value as it is."""
    if c.type.width != 0:
        return c
    if dst.kind == "angle":
        f = c.fn
        return Compiled(FLOAT, lambda v: float(f(v)))
    return Compiled(CType("int", 64), c.fn)


def _join_int(a: CType, b: CType) -> CType:
    """The integer type of an arithmetic result: a literal takes the other's type;
    signed when either is; the wider width."""
    a = CType("uint", 1) if a.kind == "bool" else CType("uint", a.width) if a.kind == "bit" else a
    b = CType("uint", 1) if b.kind == "bool" else CType("uint", b.width) if b.kind == "bit" else b
    if a.width == 0 and b.width == 0:
        return CType("int", 64)
    if a.width == 0:
        return b
    if b.width == 0:
        return a
    kind = "int" if "int" in (a.kind, b.kind) else "uint"
    return CType(kind, max(a.width, b.width))


def _cdiv(a: int, b: int) -> int:
    if b == 0:
        raise ClassicalFault("integer division by zero")
    q = abs(a) // abs(b)
    return q if (a >= 0) == (b >= 0) else -q


def _cmod(a: int, b: int) -> int:
    if b == 0:
        raise ClassicalFault("integer remainder by zero")
    return a - b * _cdiv(a, b)


def _fdiv(a: float, b: float) -> float:
    if b == 0:
        raise ClassicalFault("float division by zero")
    return a / b


def _ipow(a: int, b: int, t: CType) -> int:
    if b < 0:
        raise ClassicalFault(f"an integer to the negative power {b}")
    return int(wrap(t, pow(a, b, 1 << t.width)))


def _fpow(a: float, b: float) -> float:
    try:
        value = math.pow(a, b)
    except (ValueError, OverflowError, ZeroDivisionError):
        raise ClassicalFault(f"{a} ** {b} is not a real number") from None
    return value


_INT_OPS: Mapping[str, Callable[[int, int], int]] = MappingProxyType(
    {
        "+": lambda a, b: a + b,
        "-": lambda a, b: a - b,
        "*": lambda a, b: a * b,
        "/": _cdiv,
        "%": _cmod,
        "&": lambda a, b: a & b,
        "|": lambda a, b: a | b,
        "^": lambda a, b: a ^ b,
    }
)
_FLOAT_OPS: Mapping[str, Callable[[float, float], float]] = MappingProxyType(
    {
        "+": lambda a, b: a + b,
        "-": lambda a, b: a - b,
        "*": lambda a, b: a * b,
        "/": _fdiv,
        "%": lambda a, b: math.fmod(a, b) if b else _fdiv(a, b),
        "**": _fpow,
    }
)
_COMPARE = COMPARISONS


class _Typer(Walker[Compiled]):
    """Types one parsed expression, building the function that evaluates it."""

    __slots__ = ("reads", "source")
    PREFIX = "t_"

    def __init__(self, source: str, reads: tuple[CType, ...]) -> None:
        self.source = source
        self.reads = reads

    def fail(self, message: str) -> ClassicalError:
        return ClassicalError(f"{message} in {clip(self.source)!r}")

    def refuse(self, node: Any) -> ClassicalError:
        return self.fail(f"{type(node).__name__} is not allowed")

    def t_Constant(self, node: ast.Constant) -> Compiled:
        value = node.value
        if type(value) is bool:
            return Compiled(BOOL, lambda _v: value)
        if type(value) is int:
            return Compiled(_LITERAL, lambda _v: value)
        if type(value) is float:
            return Compiled(FLOAT, lambda _v: value)
        raise self.fail(f"the constant {value!r} is not allowed")

    def t_Name(self, node: ast.Name) -> Compiled:
        name = node.id
        if name in CONSTANTS:
            value = CONSTANTS[name]
            return Compiled(FLOAT, lambda _v: value)
        match = re.fullmatch(r"v(\d+)", name)
        if match is None or int(match.group(1)) >= len(self.reads):
            raise self.fail(f"unknown name {name!r} (operands are v0..v{len(self.reads) - 1})")
        k = int(match.group(1))
        return Compiled(self.reads[k], lambda v: v[k])

    def t_UnaryOp(self, node: ast.UnaryOp) -> Compiled:
        inner = self.walk(node.operand)
        t, f = inner.type, inner.fn
        if isinstance(node.op, ast.Not):
            return Compiled(BOOL, lambda v: not f(v))
        if isinstance(node.op, ast.UAdd):
            if t.kind == "bool":
                raise self.fail("unary + of a bool")
            return inner
        if isinstance(node.op, ast.USub):
            if t.kind == "bool":
                raise self.fail("unary - of a bool")
            out = CType("uint", t.width) if t.kind == "bit" else t
            return Compiled(out, lambda v: wrap(out, -f(v)))
        # ~: every bit flipped (an angle's too)
        if t.kind == "float":
            raise self.fail(f"~ of {t}")
        if t.kind == "bool":
            return Compiled(BOOL, lambda v: not f(v))
        out = CType("int", 64) if t.width == 0 else t
        return Compiled(out, lambda v: wrap(out, ~f(v)))

    def t_BoolOp(self, node: ast.BoolOp) -> Compiled:
        parts = [self.walk(value).fn for value in node.values]
        if isinstance(node.op, ast.And):
            return Compiled(BOOL, lambda v: all(bool(p(v)) for p in parts))
        return Compiled(BOOL, lambda v: any(bool(p(v)) for p in parts))

    def t_IfExp(self, node: ast.IfExp) -> Compiled:
        test = self.walk(node.test).fn
        a, b = self.walk(node.body), self.walk(node.orelse)
        out = self.unify(a.type, b.type, "if-else")
        fa, fb = self.coerce(a, out), self.coerce(b, out)
        return Compiled(out, lambda v: fa(v) if test(v) else fb(v))

    def t_Call(self, node: ast.Call) -> Compiled:
        if not isinstance(node.func, ast.Name) or node.keywords:
            raise self.fail("only casts and the listed functions may be called, by name")
        name = node.func.id
        args = [self.walk(arg) for arg in node.args]
        match = _CAST.fullmatch(name)
        if match is not None:
            if len(args) != 1:
                raise self.fail(f"the cast {name}() takes one value")
            kind, width = match.group(1), match.group(2)
            try:
                dst = make_type(kind, int(width) if width else DEFAULT_WIDTH[kind])
            except ClassicalError as exc:
                raise self.fail(str(exc)) from None
            src = _literal_for(args[0], dst)
            if not castable(src.type, dst):
                raise self.fail(f"{src.type} cannot be cast to {dst}")
            f, st = src.fn, src.type
            return Compiled(dst, lambda v: cast(st, dst, f(v)))
        if name in BIT_FUNCTIONS:
            return self.bit_function(name, args)
        function = FUNCTIONS.get(name)
        if function is None:
            known = ", ".join(sorted([*FUNCTIONS, *BIT_FUNCTIONS]))
            raise self.fail(f"unknown function {name!r} (casts, and {known})")
        if len(args) != 1:
            raise self.fail(f"{name}() takes one value")
        f = self.as_float(args[0], name)

        def call(v: Sequence[Any]) -> float:
            try:
                return function(f(v))
            except (ValueError, OverflowError):
                raise ClassicalFault(f"{name}() is undefined there") from None

        return Compiled(FLOAT, call)

    def bit_function(self, name: str, args: list[Compiled]) -> Compiled:
        """``popcount(x)``, ``rotl(x, k)``, ``rotr(x, k)`` of the bits of a ``bit[n]``,
        ``uint[n]`` or ``angle[n]`` (OpenQASM 3's; a rotation keeps the type and width,
        ``rotl(x, k) == rotr(x, -k)``)."""
        want = BIT_FUNCTIONS[name]
        if len(args) != want:
            raise self.fail(f"{name}() takes {want} value(s)")
        x = args[0]
        t = x.type
        if t.kind not in ("bit", "uint", "angle") or t.width == 0:
            raise self.fail(f"{name}() of {t}: it takes a bit[n], uint[n] or angle[n]")
        fx = x.fn
        if name == "popcount":
            out = CType("uint", DEFAULT_WIDTH["uint"])
            return Compiled(out, lambda v: wrap(out, int(fx(v)).bit_count()))
        count = args[1]
        if not count.type.integral:
            raise self.fail(f"{name}() rotates by an integer, not {count.type}")
        fk, n = count.fn, t.width
        sign = 1 if name == "rotl" else -1

        def rotate(v: Sequence[Any]) -> int:
            k = (sign * int(fk(v))) % n
            value = int(fx(v))
            return int(wrap(t, (value << k) | (value >> (n - k))))

        return Compiled(t, rotate)

    def as_float(self, c: Compiled, what: str) -> Fn:
        t = c.type
        if t.kind == "angle" or t.numeric:
            src = CType("int", 64) if t.width == 0 else t
            f = c.fn
            return lambda v: cast(src, FLOAT, f(v))
        raise self.fail(f"{what} takes a number, not {t}")

    def coerce(self, c: Compiled, out: CType) -> Fn:
        if c.type == out:
            return c.fn
        src = CType("int", 64) if c.type.width == 0 else c.type
        f = c.fn
        return lambda v: cast(src, out, f(v))

    def unify(self, a: CType, b: CType, what: str) -> CType:
        if a == b:
            return CType("int", 64) if a.width == 0 else a
        if a.kind == "float" or b.kind == "float":
            if a.kind == "angle" or b.kind == "angle":
                raise self.fail(f"{what} of {a} and {b}")
            return FLOAT
        if a.kind == "angle" and b.kind == "angle":
            return CType("angle", max(a.width, b.width))
        if a.kind == "angle" or b.kind == "angle":
            raise self.fail(f"{what} of {a} and {b}")
        if a.kind == "bool" and b.kind == "bool":
            return BOOL
        return _join_int(a, b)

    def t_BinOp(self, node: ast.BinOp) -> Compiled:
        symbol = SYMBOLS.get(type(node.op))
        if symbol is None:
            raise self.fail(f"the operator {type(node.op).__name__} is not allowed")
        return self.binary(symbol, self.walk(node.left), self.walk(node.right))

    def binary(self, op: str, a: Compiled, b: Compiled) -> Compiled:
        ta, tb = a.type, b.type
        if op in ("<<", ">>"):
            return self.shift(op, a, b)
        if ta.kind == "angle" or tb.kind == "angle":
            return self.angle_binary(op, a, b)
        if ta.kind == "float" or tb.kind == "float":
            if op in ("&", "|", "^"):
                raise self.fail(f"{op} of {ta} and {tb}")
            fa, fb = self.coerce(a, FLOAT), self.coerce(b, FLOAT)
            width = max(t.width for t in (ta, tb) if t.kind == "float")
            out = CType("float", width)
            fop = _FLOAT_OPS[op]
            return Compiled(out, lambda v: wrap(out, fop(fa(v), fb(v))))
        if op in ("&", "|", "^") and ta.kind == tb.kind and ta.kind in ("bool", "bit"):
            out = ta if ta.kind == "bool" else CType("bit", max(ta.width, tb.width))
        else:
            out = _join_int(ta, tb)
        fa, fb = self.coerce(a, out), self.coerce(b, out)
        if op == "**":
            return Compiled(out, lambda v: _ipow(fa(v), fb(v), out))
        iop = _INT_OPS[op]
        if out.kind == "bool":
            return Compiled(out, lambda v: bool(iop(int(fa(v)), int(fb(v)))))
        if out.kind == "bit":  # bitwise on raw bits: unsigned, no sign to extend
            return Compiled(out, lambda v: wrap(out, iop(fa(v), fb(v))))
        return Compiled(out, lambda v: wrap(out, iop(fa(v), fb(v))))

    def shift(self, op: str, a: Compiled, b: Compiled) -> Compiled:
        """``a << b``, ``a >> b``: the bits of an integer, bit register or angle, by an
        integer count, keeping ``a``'s type; bits shifted off the end are lost (an
        ``int`` shifts right arithmetically, the others logically). A negative count
        fails when it runs."""
        ta, tb = a.type, b.type
        if not (ta.integral or ta.kind == "angle") or not tb.integral:
            raise self.fail(f"{op} of {ta} and {tb} (an integer, bits or an angle, by an integer)")
        out = CType("int", 64) if ta.width == 0 else ta
        out = CType("uint", 1) if out.kind == "bool" else out
        fa, fb, left = a.fn, b.fn, op == "<<"

        def run(v: Sequence[Any]) -> int:
            count = int(fb(v))
            if count < 0:
                raise ClassicalFault(f"a shift {op} by a negative count ({count})")
            count = min(count, MAX_WIDTH)  # past every width: all bits are gone either way
            value = int(fa(v))
            return int(wrap(out, value << count if left else value >> count))

        return Compiled(out, run)

    def angle_binary(self, op: str, a: Compiled, b: Compiled) -> Compiled:
        ta, tb = a.type, b.type
        if ta.kind == "angle" and tb.kind == "angle" and op in ("+", "-", "/"):
            out = CType("angle", max(ta.width, tb.width))
            fa, fb = self.coerce(a, out), self.coerce(b, out)
            if op == "/":
                uout = CType("uint", out.width)
                return Compiled(uout, lambda v: wrap(uout, _cdiv(fa(v), fb(v))))
            iop = _INT_OPS[op]
            return Compiled(out, lambda v: wrap(out, iop(fa(v), fb(v))))
        if ta.kind == "angle" and tb.kind in ("int", "uint") and op in ("*", "/"):
            fa, fb = a.fn, b.fn
            if op == "*":
                return Compiled(ta, lambda v: wrap(ta, fa(v) * fb(v)))
            return Compiled(ta, lambda v: wrap(ta, _cdiv(fa(v), fb(v))))
        if tb.kind == "angle" and ta.kind in ("int", "uint") and op == "*":
            fa, fb = a.fn, b.fn
            return Compiled(tb, lambda v: wrap(tb, fa(v) * fb(v)))
        if op in ("&", "|", "^") and ta == tb:
            fa, fb, iop = a.fn, b.fn, _INT_OPS[op]
            return Compiled(ta, lambda v: wrap(ta, iop(fa(v), fb(v))))
        number = tb if ta.kind == "angle" else ta
        hint = " (cast the number to an angle: angle[n](x))" if number.numeric else ""
        raise self.fail(f"{op} of {ta} and {tb} is not defined{hint}")

    def t_Compare(self, node: ast.Compare) -> Compiled:
        tests: list[Fn] = []
        left = self.walk(node.left)
        for op, right_node in zip(node.ops, node.comparators, strict=True):
            symbol = SYMBOLS.get(type(op), "")
            if symbol not in _COMPARE:
                raise self.fail(f"the comparison {type(op).__name__} is not allowed")
            right = self.walk(right_node)
            tests.append(self.compare(symbol, left, right))
            left = right
        return Compiled(BOOL, lambda v: all(t(v) for t in tests))

    def compare(self, op: str, a: Compiled, b: Compiled) -> Fn:
        ta, tb = a.type, b.type
        if (ta.kind == "angle") != (tb.kind == "angle"):
            # an angle meets a number as the angle that number of radians is (pi == a)
            angle, other = (ta, b) if ta.kind == "angle" else (tb, a)
            if other.type.kind != "float" and other.type.width != 0:
                raise self.fail(f"{op} of {ta} and {tb}")
            number = self.coerce(_literal_for(other, angle), angle)
            fa, fb, cmp = a.fn, b.fn, _COMPARE[op]
            if ta.kind == "angle":
                return lambda v: cmp(fa(v), number(v))
            return lambda v: cmp(number(v), fb(v))
        if ta.kind == "angle":
            out = CType("angle", max(ta.width, tb.width))
        elif ta.kind == "float" or tb.kind == "float":
            out = FLOAT
        elif ta.kind == "bool" and tb.kind == "bool":
            out = BOOL
        else:
            # compare integers as the numbers they are (no wrap to a common width)
            fa, fb, cmp = a.fn, b.fn, _COMPARE[op]
            return lambda v: cmp(int(fa(v)), int(fb(v)))
        fa, fb, cmp = self.coerce(a, out), self.coerce(b, out), _COMPARE[op]
        return lambda v: cmp(fa(v), fb(v))


def check(type_text: str, reads_text: str, expr: str, inputs: int, produces: int) -> Compiled:
    """A ``CALC`` node's arguments checked against its operand counts; its compiled
    expression, ready to run (:func:`run`).

    Raises:
        ClassicalError: a type that does not parse, operand counts that differ from the
            types' widths, an expression that is not well typed, or a result that cannot
            be stored as the node's type.
    """
    out = parse_type(type_text)
    reads = parse_reads(reads_text)
    width = sum(t.width for t in reads)
    if width != inputs:
        raise ClassicalError(
            f"reads {reads_text!r} takes {width} input event(s), the node lists {inputs}"
        )
    if out.width != produces:
        raise ClassicalError(f"type {out} produces {out.width} event(s), the node lists {produces}")
    compiled = _literal_for(compile_expr(expr, reads), out)
    src = compiled.type
    if not castable(src, out):
        raise ClassicalError(f"a {src} cannot be stored as {out} ({clip(expr)!r})")
    f = compiled.fn
    return Compiled(out, lambda v: cast(src, out, f(v)))


@dataclass(frozen=True, slots=True, eq=False)
class Prepared:
    """A checked ``CALC`` node, ready to run on its input bits: ``prepared(bits)`` gives
    its output bits.

    Raises (when called):
        ClassicalFault: the expression fails on these values.
    """

    reads: tuple[CType, ...]
    compiled: Compiled

    def __call__(self, bits: Sequence[int]) -> list[int]:
        values = []
        at = 0
        for t in self.reads:
            values.append(decode(t, bits[at : at + t.width]))
            at += t.width
        return encode(self.compiled.type, self.compiled.fn(values))


@functools.lru_cache(maxsize=4096)
def prepare(type_text: str, reads_text: str, expr: str, inputs: int) -> Prepared:
    """The :class:`Prepared` form of a ``CALC`` node's arguments (verified: :func:`check`).

    Raises:
        ClassicalError: the arguments do not check.
    """
    out = parse_type(type_text)
    compiled = check(type_text, reads_text, expr, inputs, out.width)
    return Prepared(parse_reads(reads_text), compiled)
