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
from support import qasm_spec as spec

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


# ----------------------------------------------------------------------------- OpenQASM 3's
# operations on bits: shifts, bitwise operators, rotations, popcount, and angle arithmetic,
# each against the specification's rule written apart (support.qasm_spec) on seeded random
# values of every width, and the specification's own examples.

WIDTHS = (1, 2, 3, 4, 7, 8, 16, 64)


def _core(t, raw):
    """The value the core computes with for the bit pattern ``raw`` of ``t``."""
    return spec.signed(t.width, raw) if t.kind == "int" else raw


def _pattern(t, value):
    return spec.pattern(t.width, int(value))


@pytest.mark.parametrize("kind", ["angle", "uint", "int", "bit"])
@pytest.mark.parametrize("op", ["<<", ">>"])
def test_shifts_lose_the_bits_shifted_off_the_end_as_the_specification_says(kind, op):
    rng = random.Random(SEED)
    count_types = (make_type("uint", 8), make_type("int", 8), make_type("bit", 3), BOOL)
    for n in WIDTHS:
        t = make_type(kind, n)
        for ct in count_types:
            compiled = compile_expr(f"v0 {op} v1", (t, ct))
            assert compiled.type == t
            for _ in range(20):
                raw = rng.randrange(1 << n)
                count = rng.randrange(2 if ct == BOOL else min(n + 3, 1 << ct.width - 1))
                want = spec.shl(n, raw, count) if op == "<<" else spec.shr(kind, n, raw, count)
                got = compiled.fn([_core(t, raw), count])
                assert _pattern(t, got) == want, (t, raw, op, count)
        literal = compile_expr(f"v0 {op} 1", (t,))
        raw = rng.randrange(1 << n)
        want = spec.shl(n, raw, 1) if op == "<<" else spec.shr(kind, n, raw, 1)
        assert _pattern(t, literal.fn([_core(t, raw)])) == want


def test_a_shift_by_a_negative_count_fails_when_it_runs_and_by_a_non_integer_never_types():
    a4, i8 = make_type("angle", 4), make_type("int", 8)
    with pytest.raises(ClassicalFault, match="negative count"):
        compile_expr("v0 << v1", (a4, i8)).fn([3, -1])
    for reads in ((a4, a4), (a4, FLOAT), (FLOAT, i8)):
        with pytest.raises(ClassicalError, match="<< of"):
            compile_expr("v0 << v1", reads)


@pytest.mark.parametrize("kind", ["angle", "bit", "uint"])
def test_bitwise_operators_act_on_the_bit_patterns(kind):
    rng = random.Random(SEED + 1)
    for n in WIDTHS:
        t = make_type(kind, n)
        for op in ("&", "|", "^"):
            compiled = compile_expr(f"v0 {op} v1", (t, t))
            assert compiled.type == t
            for _ in range(30):
                a, b = rng.randrange(1 << n), rng.randrange(1 << n)
                assert compiled.fn([a, b]) == spec.bitwise(op, n, a, b), (t, a, op, b)
        flip = compile_expr("~v0", (t,))
        for _ in range(30):
            a = rng.randrange(1 << n)
            assert flip.fn([a]) == spec.bitwise("~", n, a)


def test_angles_of_different_widths_do_not_combine_bitwise():
    with pytest.raises(ClassicalError, match="& of angle\\[4\\] and angle\\[8\\]"):
        compile_expr("v0 & v1", (make_type("angle", 4), make_type("angle", 8)))


@pytest.mark.parametrize("n", WIDTHS)
def test_angle_arithmetic_is_unsigned_arithmetic_modulo_a_turn(n):
    rng = random.Random(SEED + n)
    a_t, u_t = make_type("angle", n), make_type("uint", n)
    for op in ("+", "-"):
        compiled = compile_expr(f"v0 {op} v1", (a_t, a_t))
        assert compiled.type == a_t
        for _ in range(50):
            a, b = rng.randrange(1 << n), rng.randrange(1 << n)
            assert compiled.fn([a, b]) == spec.angle_arith(op, n, a, b)
    times, by, ratio = (compile_expr(e, (a_t, u_t)) for e in ("v0 * v1", "v0 / v1", "v0 / v0"))
    left = compile_expr("v1 * v0", (a_t, u_t))
    negate = compile_expr("-v0", (a_t,))
    assert (times.type, by.type, ratio.type, left.type) == (a_t, a_t, u_t, a_t)
    for _ in range(50):
        a, u = rng.randrange(1 << n), rng.randrange(1, 1 << n) if n > 0 else 1
        assert times.fn([a, u]) == left.fn([a, u]) == spec.angle_arith("*", n, a, u)
        assert by.fn([a, u]) == spec.angle_arith("/", n, a, u)
        assert negate.fn([a]) == spec.angle_neg(n, a)
        assert (compile_expr("v0 + v1", (a_t, a_t)).fn([a, negate.fn([a])])) == 0


@pytest.mark.parametrize("kind", ["bit", "uint", "angle"])
def test_rotations_and_popcount_follow_the_specification(kind):
    rng = random.Random(SEED + 2)
    for n in WIDTHS:
        t = make_type(kind, n)
        left, right = (
            compile_expr(f"{f}(v0, v1)", (t, make_type("int", 8))) for f in ("rotl", "rotr")
        )
        count = compile_expr("popcount(v0)", (t,))
        assert left.type == right.type == t and count.type == make_type("uint", 32)
        for _ in range(30):
            raw, d = rng.randrange(1 << n), rng.randrange(-2 * n - 1, 2 * n + 2)
            assert left.fn([raw, d]) == spec.rotl(n, raw, d) == right.fn([raw, -d])
            assert right.fn([raw, d]) == spec.rotr(n, raw, d)
            assert count.fn([raw]) == spec.popcount(raw)
    with pytest.raises(ClassicalError, match="rotl\\(\\) of int\\[8\\]"):
        compile_expr("rotl(v0, 1)", (make_type("int", 8),))


def test_the_specifications_own_examples_give_what_it_says():
    a4, u4, b8, u6 = (make_type(*t) for t in (("angle", 4), ("uint", 4), ("bit", 8), ("uint", 6)))
    a, b, c, two = 0b0111, 0b0001, 0b1010, 2  # 7 pi/8, pi/8, 5 pi/4
    assert compile_expr("v0 + v1", (a4, a4)).fn([a, b]) == 0b1000
    assert compile_expr("v0 - v1", (a4, a4)).fn([b, a]) == 0b1010
    assert compile_expr("v0 / v1", (a4, u4)).fn([a, two]) == 0b0011
    assert compile_expr("v1 * v0", (a4, u4)).fn([c, two]) == 0b0100
    assert compile_expr("v0 / v1", (a4, a4)).fn([c, b]) == 10
    assert compile_expr("angle4(pi * 2)", ()).fn([]) == 0
    assert compile_expr("-v0", (a4,)).fn([0b0010]) == 0b1110  # -(pi/4) = 7 pi/4
    assert compile_expr("v0 << 2", (a4,)).fn([0b1001]) == 0b0100  # 9 pi/8 << 2 = pi/2
    assert compile_expr("v0 >> 2", (a4,)).fn([0b1001]) == 0b0010
    assert compile_expr("v0 << 1", (b8,)).fn([0b10001111]) == 0b00011110
    assert compile_expr("rotl(v0, 2)", (b8,)).fn([0b10001111]) == 0b00111110
    assert compile_expr("v0 | v1", (b8, b8)).fn([0b10001111, 0b01110000]) == 0b11111111
    assert compile_expr("v0 & v1", (b8, b8)).fn([0b10001111, 0b01110000]) == 0
    assert compile_expr("popcount(v0)", (u6,)).fn([37]) == 3
    assert compile_expr("rotl(v0, 3)", (u6,)).fn([37]) == 44
    assert compile_expr("rotl(v0, 3)", (b8,)).fn([0b00101010]) == 0b01010001
    assert compile_expr("v0 == pi", (make_type("angle", 32),)).fn([1 << 31]) is True
    # angle[8](f) of f = 2 pi (127/512): 63.5 units, a tie, to the even 64 ("01000000")
    assert compile_expr("angle8(v0)", (FLOAT,)).fn([2 * math.pi * (127 / 512)]) == 64


def test_float_to_angle_rounds_to_the_nearest_ties_to_even_modulo_a_turn():
    rng = random.Random(SEED + 3)
    for n in WIDTHS:
        to_angle = compile_expr(f"angle{n}(v0)", (FLOAT,))
        for _ in range(100):
            x = rng.uniform(-20, 20)
            assert to_angle.fn([x]) == spec.angle_of_float(n, x), (n, x)
        for k in range(min(1 << n, 64)):  # exact ties: half-way between two angles
            x = spec.float_of_angle(n + 1, 2 * k + 1)
            assert to_angle.fn([x]) == spec.angle_of_float(n, x)


def test_angles_resize_by_padding_or_rounding_ties_to_even():
    rng = random.Random(SEED + 4)
    for src in WIDTHS:
        for dst in WIDTHS:
            resize = compile_expr(f"angle{dst}(v0)", (make_type("angle", src),))
            for _ in range(30):
                raw = rng.randrange(1 << src)
                assert resize.fn([raw]) == spec.angle_resize(src, dst, raw), (src, dst, raw)
    narrow = compile_expr("angle2(v0)", (make_type("angle", 4),))
    assert [narrow.fn([k]) for k in (0b0010, 0b0110, 0b1010, 0b1110)] == [0, 2, 2, 0]


def test_an_angle_and_bits_cast_into_each_other_only_at_one_width_keeping_the_pattern():
    rng = random.Random(SEED + 5)
    for n in WIDTHS:
        a_t, b_t = make_type("angle", n), make_type("bit", n)
        to_bits, to_angle = (
            compile_expr(f"bit{n}(v0)", (a_t,)),
            compile_expr(f"angle{n}(v0)", (b_t,)),
        )
        for _ in range(20):
            raw = rng.randrange(1 << n)
            assert to_bits.fn([raw]) == raw and to_angle.fn([raw]) == raw
        assert castable(a_t, b_t) and castable(b_t, a_t)
        if n > 1:
            assert not castable(a_t, make_type("bit", n - 1))
            assert not castable(make_type("bit", n - 1), a_t)
    with pytest.raises(ClassicalError, match="angle\\[4\\] cannot be cast to bit\\[3\\]"):
        compile_expr("bit3(v0)", (make_type("angle", 4),))


def test_an_angle_compares_with_a_number_as_the_angle_that_number_is():
    a4 = make_type("angle", 4)
    assert compile_expr("v0 == pi", (a4,)).fn([8]) is True
    assert compile_expr("pi / 2 < v0", (a4,)).fn([5]) is True  # 5 pi/8 > pi/2
    assert compile_expr("v0 == 0", (a4,)).fn([0]) is True
    assert compile_expr("v0 == 2 * pi", (a4,)).fn([0]) is True  # a turn is 0
    with pytest.raises(ClassicalError, match="== of angle\\[4\\] and int\\[8\\]"):
        compile_expr("v0 == v1", (a4, make_type("int", 8)))
