"""QRE-style formulas: what they may say, and that they evaluate right."""

from __future__ import annotations

import pytest

from qmk.qec import QECError
from qmk.qec.formula import Formula


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("2 * codeDistance * codeDistance", 162.0),
        ("4 * codeDistance * codeDistance + 8 * (codeDistance - 1)", 388.0),
        ("ceil(log2(codeDistance)) + 1", 5.0),
        ("max(3, 1) ** 2 / 2", 4.5),
        ("-codeDistance + 10", 1.0),
        ("floor(codeDistance / 2)", 4.0),
    ],
)
def test_formulas_evaluate_at_d_9(text: str, value: float):
    assert Formula(text).evaluate({"codeDistance": 9}) == value


@pytest.mark.parametrize(
    "text",
    [
        "__import__('os').system('true')",
        "codeDistance.real",
        "[1, 2]",
        "codeDistance if 1 else 2",
        "lambda: 1",
        "exp(codeDistance)",
        "max(a=1)",
        "'text'",
        "3 % 2",
        "1 +",
        "codeDistanc * 2",
    ],
)
def test_anything_outside_the_formula_language_is_qc103(text: str):
    with pytest.raises(QECError) as caught:
        Formula(text)
    assert caught.value.code == "QC103" and caught.value.details == {"formula": text}


def test_a_missing_variable_or_bad_arithmetic_is_qc103_at_evaluation():
    with pytest.raises(QECError, match="no value for 'twoQubitGateTime'"):
        Formula("twoQubitGateTime * codeDistance").evaluate({"codeDistance": 3})
    with pytest.raises(QECError, match="cannot be evaluated"):
        Formula("1 / (codeDistance - 3)").evaluate({"codeDistance": 3})
    with pytest.raises(QECError, match="cannot be evaluated"):
        Formula("log2(codeDistance - 3)").evaluate({"codeDistance": 3})


def test_formulas_compare_and_print_by_text():
    assert Formula("codeDistance") == Formula("codeDistance")
    assert str(Formula("3 * codeDistance")) == "3 * codeDistance"
    assert Formula("a * b".replace("a", "codeDistance").replace("b", "tGateTime")).names == {
        "codeDistance",
        "tGateTime",
    }


def test_distillation_unit_formulas_are_read_by_the_same_checked_language():
    from qmk.estimate.tfactory import unit_formula
    from qmk.qec.errors import QECError
    from qmk.qec.formula import SCHEME_FORMULAS, compile_formula

    assert unit_formula("35 * z ^ 3 + 7.1 * c")(0.01, 1e-6, 0.0) == pytest.approx(4.21e-05)
    for text, problem in (
        ("ceil(z)", "only numbers, variables, + - * / ^ are allowed"),
        ("q + 1", "unknown variable 'q'"),
        ("__import__('os')", "only numbers"),
    ):
        with pytest.raises(QECError) as err:
            unit_formula(text)
        assert err.value.code == "QC103" and problem in err.value.message
    with pytest.raises(QECError):  # a scheme formula has no 'z'
        compile_formula("z * codeDistance", SCHEME_FORMULAS)
