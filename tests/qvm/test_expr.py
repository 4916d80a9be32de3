"""Assemble-time expressions: what they compute and what they refuse."""

from __future__ import annotations

import math

import pytest

from qmk.qvm.expr import ExprError, UndefinedNameError, evaluate


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("1 + 2 * 3", 7),
        ("7 // 2", 3),
        ("7 % 3", 1),
        ("2 ** 10", 1024),
        ("-3", -3),
        ("+3", 3),
        ("2 ** -1", 0.5),
        ("(1 + 2) * 3", 9),
    ],
)
def test_integer_arithmetic_follows_python(text: str, expected: object) -> None:
    assert evaluate(text, {}) == expected


def test_ints_stay_ints_and_division_gives_floats() -> None:
    assert type(evaluate("4 // 2", {})) is int
    assert type(evaluate("4 / 2", {})) is float
    assert type(evaluate("1.0", {})) is float


def test_negative_zero_and_tiny_floats_survive() -> None:
    assert math.copysign(1.0, evaluate("-0.0", {})) == -1.0
    assert evaluate("1e-300", {}) == 1e-300


def test_constants_and_functions_are_available() -> None:
    assert evaluate("pi", {}) == math.pi
    assert evaluate("tau / 2", {}) == math.pi
    assert evaluate("e", {}) == math.e
    assert evaluate("atan2(1, 1)", {}) == math.pi / 4
    assert evaluate("max(1, 5, 3) + min(2, 4)", {}) == 7
    assert evaluate("round(2.567, 2)", {}) == 2.57
    assert evaluate("int(3.9) + floor(1.5) + ceil(1.5)", {}) == 6
    assert evaluate("log(8, 2)", {}) == 3.0
    assert evaluate("sqrt(16) + abs(-2) + float(1)", {}) == 7.0


def test_environment_names_shadow_constants() -> None:
    assert evaluate("e", {"e": 5}) == 5


def test_strings_join_and_compare() -> None:
    assert evaluate("'q' + name", {"name": "0"}) == "q0"
    assert evaluate("name == 'a'", {"name": "a"}) is True


def test_logic_comparisons_and_conditional_expressions() -> None:
    assert evaluate("1 < 2 < 3", {}) is True
    assert evaluate("1 < 3 < 2", {}) is False
    assert evaluate("not 0", {}) is True
    assert evaluate("0 or 5", {}) == 5
    assert evaluate("2 and 0", {}) == 0
    assert evaluate("'big' if n > 10 else 'small'", {"n": 3}) == "small"


def test_the_untaken_branch_is_not_evaluated() -> None:
    assert evaluate("1 if 1 else 1 / 0", {}) == 1
    assert evaluate("0 and undefined", {}) == 0


@pytest.mark.parametrize(
    ("text", "construct"),
    [
        ("x.real", "attribute access"),
        ("x[0]", "subscripts"),
        ("(lambda: 1)()", "only the listed functions"),
        ("lambda: 1", "lambdas"),
        ("[i for i in range(3)]", "comprehensions"),
        ("(1, 2)", "tuples"),
        ("[1]", "lists"),
        ("{'a': 1}", "dicts"),
        ("f'{x}'", "f-strings"),
        ("1 if (y := 2) else 0", "assignment expressions"),
    ],
)
def test_constructs_outside_the_whitelist_are_named(text: str, construct: str) -> None:
    with pytest.raises(ExprError, match=construct):
        evaluate(text, {"x": 1})


def test_unknown_names_raise_undefined_name_error_naming_them() -> None:
    with pytest.raises(UndefinedNameError, match="undefined name 'nope'") as info:
        evaluate("nope + 1", {})
    assert info.value.name == "nope"


def test_unknown_functions_are_refused_with_the_known_list() -> None:
    with pytest.raises(ExprError, match="unknown function 'eval'; known: abs"):
        evaluate("eval('1')", {})


def test_keyword_arguments_are_refused() -> None:
    with pytest.raises(ExprError, match="positional arguments only"):
        evaluate("round(1.5, ndigits=1)", {})


@pytest.mark.parametrize("text", ["1 / 0", "1 // 0", "1 % 0", "0 ** -1", "1.0 / 0.0"])
def test_division_by_zero_is_an_expr_error(text: str) -> None:
    with pytest.raises(ExprError, match="division by zero"):
        evaluate(text, {})


@pytest.mark.parametrize("text", ["log(0)", "sqrt(-1)", "asin(2)", "log(-1)"])
def test_math_domain_errors_are_expr_errors(text: str) -> None:
    with pytest.raises(ExprError, match="failed"):
        evaluate(text, {})


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("2 ** 100000", "exponent"),
        ("(2 ** 1000) ** 5", "4096 bits"),
        ("10.0 ** 400", "failed|larger than"),
        ("(2 ** 1000) * (2 ** 1000) * (2 ** 1000) * (2 ** 1000) * (2 ** 1000)", "4096 bits"),
        ("exp(1000)", "failed"),
        ("1e308 * 10", "not a finite number"),
        ("float(2 ** 4000)", "failed"),
        ("(-8) ** 0.5", "complex"),
        ("round(5, -100000)", "ndigits"),
    ],
)
def test_huge_or_complex_results_are_refused(text: str, reason: str) -> None:
    with pytest.raises(ExprError, match=reason):
        evaluate(text, {})


def test_string_repetition_and_formatting_are_refused() -> None:
    with pytest.raises(ExprError, match="needs two numbers"):
        evaluate("'a' * 1000000000", {})
    with pytest.raises(ExprError, match="needs two numbers"):
        evaluate("'%s' % 1", {})


@pytest.mark.parametrize("text", ["", "   ", "1 +", "(", "1 2"])
def test_text_that_is_not_an_expression_is_refused(text: str) -> None:
    with pytest.raises(ExprError):
        evaluate(text, {})


@pytest.mark.parametrize("text", ["None", "b'x'", "1j", "...", "~1", "1 << 2", "1 in 2"])
def test_other_constants_and_operators_are_refused(text: str) -> None:
    with pytest.raises(ExprError):
        evaluate(text, {})


def test_very_deep_expressions_are_refused_not_crashed() -> None:
    with pytest.raises(ExprError):
        evaluate("(" * 5000 + "1" + ")" * 5000, {})
    with pytest.raises(ExprError):
        evaluate("-" * 100_000 + "1", {})


def test_long_flat_expressions_evaluate() -> None:
    assert evaluate(" + ".join(["1"] * 900), {}) == 900
    assert evaluate("10 ** 1000", {}) == int("1" + "0" * 1000)


def test_comparing_a_string_with_a_number_by_order_is_refused() -> None:
    with pytest.raises(ExprError, match="cannot compare str with int"):
        evaluate("'a' < 1", {})


def test_expr_error_is_a_value_error() -> None:
    assert issubclass(ExprError, ValueError)
