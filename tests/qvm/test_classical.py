"""Run-time classical values (``qmk.qvm.classical``): bits, types and expressions.

The arithmetic is checked against numpy's fixed-width integers (which wrap as two's
complement) and against C's truncating division, on seeded random values of every
width; every type's bits round-trip; the store casts follow OpenQASM 3's table.
"""

from __future__ import annotations

import math
import random

import numpy as np
import pytest

from qmk.qvm.classical import (
    BOOL,
    CASTS,
    FLOAT,
    ClassicalError,
    ClassicalFault,
    castable,
    check,
    compile_expr,
    decode,
    encode,
    make_type,
    parse_reads,
    parse_type,
    prepare,
)

SEED = 7
INTS = {8: np.int8, 16: np.int16, 32: np.int32, 64: np.int64}
UINTS = {8: np.uint8, 16: np.uint16, 32: np.uint32, 64: np.uint64}


@pytest.mark.parametrize(
    "text", ["bool", "bit", "bit[7]", "int[8]", "uint[3]", "angle[16]", "float[64]", "float[32]"]
)
def test_every_type_round_trips_its_bits(text):
    t = parse_type(text)
    rng = random.Random(SEED)
    for _ in range(200):
        if t.kind == "float":
            value = rng.uniform(-1e6, 1e6)
            if t.width == 32:
                value = float(np.float32(value))
        elif t.kind == "bool":
            value = rng.random() < 0.5
        elif t.kind == "int":
            value = rng.randrange(-(2 ** (t.width - 1)), 2 ** (t.width - 1))
        else:
            value = rng.randrange(0, 2**t.width)
        bits = encode(t, value)
        assert len(bits) == t.width and set(bits) <= {0, 1}
        assert decode(t, bits) == value


@pytest.mark.parametrize("width", [8, 16, 32, 64])
@pytest.mark.parametrize("op", ["+", "-", "*", "&", "|", "^"])
def test_integer_arithmetic_wraps_as_numpy_fixed_width_integers(width, op):
    rng = random.Random(SEED + width)
    for signed, table in ((True, INTS), (False, UINTS)):
        kind = "int" if signed else "uint"
        t = make_type(kind, width)
        compiled = compile_expr(f"v0 {op} v1", (t, t))
        assert compiled.type == t
        low, high = (-(2 ** (width - 1)), 2 ** (width - 1)) if signed else (0, 2**width)
        for _ in range(100):
            a, b = rng.randrange(low, high), rng.randrange(low, high)
            with np.errstate(over="ignore"):
                x, y = table[width](a), table[width](b)
                want = {
                    "+": x + y,
                    "-": x - y,
                    "*": x * y,
                    "&": x & y,
                    "|": x | y,
                    "^": x ^ y,
                }[op]
            assert compiled.fn([a, b]) == int(want), (kind, width, a, op, b)


def test_integer_division_truncates_toward_zero_and_remainder_takes_the_dividends_sign():
    t = make_type("int", 16)
    divide, remainder = compile_expr("v0 / v1", (t, t)), compile_expr("v0 % v1", (t, t))
    rng = random.Random(SEED)
    for _ in range(300):
        a, b = rng.randrange(-30000, 30000), rng.choice([-1, 1]) * rng.randrange(1, 300)
        assert divide.fn([a, b]) == math.trunc(a / b)
        assert remainder.fn([a, b]) == int(math.fmod(a, b))
    with pytest.raises(ClassicalFault, match="division by zero"):
        divide.fn([5, 0])


def test_literals_take_the_type_they_meet_and_unsigned_meets_signed_as_signed():
    u8, i4 = make_type("uint", 8), make_type("int", 4)
    assert compile_expr("v0 + 1", (u8,)).fn([255]) == 0  # uint[8] wraps
    assert str(compile_expr("v0 + v1", (u8, i4)).type) == "int[8]"
    assert str(compile_expr("1 + 2", ()).type) == "int[64]"
    assert compile_expr("v0 < -1", (u8,)).fn([200]) is False  # compared as numbers


def test_angles_add_modulo_a_turn_and_scale_by_integers():
    a4 = make_type("angle", 4)
    assert compile_expr("v0 + v1", (a4, a4)).fn([12, 7]) == 3  # 12/16 + 7/16 = 3/16 of a turn
    assert compile_expr("v0 * 3", (a4,)).fn([6]) == 2
    assert compile_expr("angle4(pi / 2)", ()).fn([]) == 4
    assert math.isclose(compile_expr("float64(v0)", (a4,)).fn([8]), math.pi)
    assert math.isclose(compile_expr("sin(v0)", (a4,)).fn([4]), 1.0)


def test_casts_follow_the_openqasm3_table():
    assert ("float", "bit") not in CASTS and ("angle", "int") not in CASTS
    assert castable(FLOAT, make_type("int", 8)) and castable(BOOL, FLOAT)
    assert not castable(make_type("bit", 3), make_type("angle", 4))  # widths must agree
    assert compile_expr("int8(v0)", (FLOAT,)).fn([-2.9]) == -2  # truncates toward zero
    assert compile_expr("int8(v0)", (FLOAT,)).fn([300.0]) == 44  # then wraps
    with pytest.raises(ClassicalFault, match="cannot be cast"):
        compile_expr("int8(v0)", (FLOAT,)).fn([math.inf])
    with pytest.raises(ClassicalError, match="cannot be cast to angle"):
        compile_expr("angle4(v0)", (make_type("int", 4),))


def test_a_checked_node_runs_on_bits_and_refuses_what_does_not_fit():
    reads = "int[8],bit"
    prepared = prepare("bool", reads, "v0 + int8(v1) == 0", 9)
    t = make_type("int", 8)
    assert prepared([*encode(t, -1), 1]) == [1]
    assert prepared([*encode(t, 5), 1]) == [0]
    assert parse_reads(reads) == (t, make_type("bit", 1))
    with pytest.raises(ClassicalError, match="takes 9 input event"):
        check("bool", reads, "v0 == 0", 8, 1)
    with pytest.raises(ClassicalError, match="is not an expression"):
        check("bool", "", "1 +", 0, 1)
    with pytest.raises(ClassicalError, match="cannot be stored as int"):
        check("int[4]", "angle[4]", "v0", 4, 4)
