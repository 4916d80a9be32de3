"""A custom scheme's formulas are checked at every code distance from 3 up, in QRE's order.

``code_from_json`` compiles the two formulas once and evaluates them on one variable map;
these cases pin what that check reports: the first distance where the logical cycle time
is not positive (before the qubit count at that distance), a variable the qubit does not
have, and arithmetic that fails, each as the one-line ``QC103`` error it was before.
"""

from __future__ import annotations

import pytest

from qmk.estimate.counts import LogicalCounts
from qmk.estimate.estimator import estimate
from qmk.qec.errors import QECError

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
