"""OpenQASM 3's rules for classical bits, integers and angles, written from the specification.

A reference for the tests of :mod:`qmk.qvm.classical` and of the OpenQASM lowerer, kept
apart from the code it checks: each rule is the specification's sentence
(``source/language/classical.rst`` and ``types.rst`` of openqasm/openqasm) done on the
raw bit pattern of a value, a Python int in ``[0, 2**n)`` (bit ``k`` of the value is bit
``k`` of the pattern; an ``int[n]`` is two's complement). Nothing here imports QMK.

>>> shl(4, 0b1001, 2), shr("angle", 4, 0b1001, 2)  # 9 pi/8 << 2 = pi/2, >> 2 = pi/4
(4, 2)
>>> rotl(8, 0b10001111, 2), popcount(37), rotl(6, 37, 3)
(62, 3, 44)
>>> angle_of_float(8, 2 * math.pi * 127 / 512)  # ties to even: "01000000"
64
"""

from __future__ import annotations

import math
from fractions import Fraction


def mask(n: int) -> int:
    return (1 << n) - 1


def signed(n: int, raw: int) -> int:
    """The ``int[n]`` whose two's complement pattern is ``raw``."""
    return raw - (1 << n) if raw >> (n - 1) & 1 else raw


def pattern(n: int, value: int) -> int:
    """The ``n``-bit pattern of an integer (two's complement for a negative one)."""
    return value & mask(n)


def shl(n: int, raw: int, count: int) -> int:
    """``<<``: "shift bits off the end" (the same pattern for every kind)."""
    return (raw << count) & mask(n)


def shr(kind: str, n: int, raw: int, count: int) -> int:
    """``>>``: bits shifted off the low end; an ``int`` keeps its sign (C's arithmetic
    shift of a signed value), the others fill with zeros."""
    if kind == "int":
        return pattern(n, signed(n, raw) >> count)
    return raw >> count


def rotl(n: int, raw: int, distance: int) -> int:
    """ "Rotate the bits ... to the left (towards higher indices) ...
    ``rotl(a, n) == rotr(a, -n)``"."""
    bits = [(raw >> k) & 1 for k in range(n)]
    d = distance % n
    rotated = bits[n - d :] + bits[: n - d]  # bit k moves to k + d
    return sum(b << k for k, b in enumerate(rotated))


def rotr(n: int, raw: int, distance: int) -> int:
    return rotl(n, raw, -distance)


def popcount(raw: int) -> int:
    """ "Number of set (1) bits"."""
    return bin(raw).count("1")


def bitwise(op: str, n: int, a: int, b: int | None = None) -> int:
    """``& | ^`` of two patterns of one width, ``~`` of one."""
    if op == "~":
        return mask(n) ^ a
    assert b is not None
    return {"&": a & b, "|": a | b, "^": a ^ b}[op]


def angle_arith(op: str, n: int, a: int, b: int) -> int:
    """Angles "as if the operations had been carried out between two uint types of the
    same size ... including both upper and lower overflow": ``a + b``, ``a - b``,
    ``a * u``, ``a / u`` (and ``a / b`` of two angles, a ``uint[n]``)."""
    if op == "+":
        return (a + b) & mask(n)
    if op == "-":
        return (a - b) & mask(n)
    if op == "*":
        return (a * b) & mask(n)
    assert op == "/"
    return a // b


def angle_neg(n: int, a: int) -> int:
    """ "the same value as ``0 - a``"."""
    return (-a) & mask(n)


def angle_of_float(n: int, value: float) -> int:
    """A float cast to ``angle[n]``: "the nearest representable value modulo
    float_n(2 pi) ... ties ... to even", the fraction of a turn taken in floating point
    as the specification's example does (``(two_pi * (127./512.)) / two_pi ==
    (127./512.)`` exactly, a tie)."""
    turns = (value % math.tau) / math.tau
    return round(Fraction(turns) * (1 << n)) & mask(n)  # Fraction's round: half to even


def float_of_angle(n: int, raw: int) -> float:
    """ "2 pi * angle_as_uint / 2**size"."""
    return 2 * math.pi * raw / (1 << n)


def angle_resize(src: int, dst: int, raw: int) -> int:
    """An ``angle[src]`` as ``angle[dst]``: "padded with ... least significant bits of
    0", or rounded "to the nearest value, with ties going to the value with the even
    least significant bit"."""
    if dst >= src:
        return raw << (dst - src)
    return round(Fraction(raw, 1 << (src - dst))) & mask(dst)
