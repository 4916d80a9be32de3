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
