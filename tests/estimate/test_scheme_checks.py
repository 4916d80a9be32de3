"""A custom scheme's formulas are checked at every code distance from 3 up, in QRE's order.

``code_from_json`` proves them positive from their bounds where it can (a formula of
positive numbers and variables joined by ``+ * /``), else compiles them once and
evaluates them on one variable map; these cases pin what that check reports: the first
distance where the logical cycle time is not positive (before the qubit count at that
distance), a variable the qubit does not have, and arithmetic that fails, each as the
one-line ``QC103`` error it was before.
"""

from __future__ import annotations

import random

import pytest

from qmk.estimate.counts import LogicalCounts
from qmk.estimate.estimator import estimate
from qmk.estimate.params import _positive
from qmk.qec.codes import SCHEMES
from qmk.qec.errors import QECError
from qmk.qec.formula import Formula, compile_formula
from qmk.qec.params import GATE_BASED

COUNTS = LogicalCounts(num_qubits=10, t_count=100)


def _scheme(cycle: str, qubits: str = "2 * codeDistance * codeDistance") -> dict[str, object]:
    return {
        "qecScheme": {
            "name": "custom",
            "errorCorrectionThreshold": 0.01,
            "crossingPrefactor": 0.03,
            "logicalCycleTime": cycle,
            "physicalQubitsPerLogicalQubit": qubits,
        }
    }


@pytest.mark.parametrize(
    ("cycle", "qubits", "message"),
    [
        (
            "(codeDistance - 4) * oneQubitGateTime",
            "2 * codeDistance * codeDistance",
            "logicalCycleTime formula yields non-positive value for code distance = 3",
        ),
        (
            "(codeDistance - 6) * (codeDistance - 7) * oneQubitGateTime",
            "2 * codeDistance * codeDistance",
            "logicalCycleTime formula yields non-positive value for code distance = 6",
        ),
        (
            "codeDistance * oneQubitGateTime",
            "codeDistance - 9",
            "physicalQubitsPerLogicalQubit formula yields non-positive value for code distance = 3",
        ),
        (
            "(codeDistance - 3) * oneQubitGateTime",
            "1 / (codeDistance - 3)",
            "logicalCycleTime formula yields non-positive value for code distance = 3",
        ),
        (
            "codeDistance * twoQubitJointMeasurementTime",
            "2 * codeDistance",
            "no value for 'twoQubitJointMeasurementTime' here",
        ),
        ("10 / (codeDistance - 3)", "2 * codeDistance", "cannot be evaluated: float division"),
        (
            "10 * codeDistance",
            "1 / ((codeDistance - 5) * (codeDistance - 5))",
            "cannot be evaluated: float division",
        ),
    ],
)
def test_custom_scheme_formulas_are_refused_at_the_first_bad_distance(cycle, qubits, message):
    with pytest.raises(QECError) as caught:
        estimate(COUNTS, _scheme(cycle, qubits))
    assert caught.value.code == "QC103"
    assert message in str(caught.value)
    assert "\n" not in str(caught.value)


def test_a_custom_scheme_positive_at_every_distance_is_accepted():
    out = estimate(COUNTS, _scheme("4 * codeDistance * oneQubitGateTime"))
    assert out["logicalQubit"]["codeDistance"] >= 3


def test_a_formula_whose_value_underflows_to_zero_is_refused_as_qre_refuses_it():
    with pytest.raises(QECError, match="logicalCycleTime formula yields non-positive value"):
        estimate(COUNTS, _scheme("1e-200 * 1e-200 * codeDistance * oneQubitGateTime"))


def test_the_predefined_schemes_formulas_are_proven_positive_without_evaluating_them():
    ranges = {"codeDistance": (3.0, 50.0), "twoQubitGateTime": (50.0, 50.0)}
    ranges["oneQubitMeasurementTime"] = (100.0, 100.0)
    surface = SCHEMES["surface_code"][GATE_BASED]
    for formula in (surface.logical_cycle_time, surface.physical_qubits_per_logical_qubit):
        assert _positive(compile_formula(formula.text)[0], ranges)
    assert not _positive(compile_formula("codeDistance - 1")[0], ranges)  # proves nothing


@pytest.mark.parametrize("seed", range(3))
def test_a_formula_proven_positive_is_positive_at_every_distance(seed):
    rng = random.Random(seed)
    names = ("codeDistance", "oneQubitGateTime")

    def formula(depth: int) -> str:
        if depth == 0 or rng.random() < 0.3:
            return rng.choice(
                (*names, f"{10 ** rng.uniform(-160, 160):.6g}", str(rng.randint(1, 9)))
            )
        op = rng.choice(("+", "*", "/", "-"))
        return f"({formula(depth - 1)} {op} {formula(depth - 1)})"

    proven = 0
    for _ in range(400):
        text = formula(4)
        time = 10 ** rng.uniform(-150, 150)
        ranges = {"codeDistance": (3.0, 50.0), "oneQubitGateTime": (time, time)}
        if not _positive(compile_formula(text)[0], ranges):
            continue
        proven += 1
        for distance in range(3, 51):
            value = Formula(text).evaluate({"codeDistance": distance, "oneQubitGateTime": time})
            assert value > 0, (text, time, distance)
    assert proven > 50
