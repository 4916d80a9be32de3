"""Bacon-Shor's column law in the logical layer: its formula, no threshold, calibrations."""

from __future__ import annotations

import math

import pytest

from qmk.qec import logical_model
from qmk.qec.codes import BACON_SHOR, BACON_SHOR_CIRCUIT_LAW, ColumnLaw, scheme_for
from qmk.qec.errors import QECError
from qmk.qec.logical import Calibration, calibrated

LAW = ColumnLaw(prefactor=0.5, column_factor=10.0, damping=20.0)


@pytest.mark.parametrize(("p", "d"), [(1e-4, 3), (1e-3, 5), (5e-4, 9), (2e-4, 25)])
def test_the_law_is_a_binomial_majority_of_columns_with_its_bend(p: float, d: int) -> None:
    k = (d + 1) // 2
    expected = 0.5 * math.comb(d, k) * (10.0 * d * p) ** k * math.exp(-20.0 * d * p)
    assert LAW.rate(p, d) == pytest.approx(expected, rel=1e-12)


def test_the_law_caps_at_one_half_and_has_a_best_distance() -> None:
    assert LAW.rate(0.2, 11) == 0.5
    best = LAW.best_distance(1e-3, 51)
    rates = {d: LAW.rate(1e-3, d) for d in range(3, 52, 2)}
    assert rates[best] == min(rates.values())
    assert rates[best + 2] > rates[best] and rates[best - 2] > rates[best]


def test_a_scheme_with_a_law_has_no_threshold_and_finds_distances_by_the_law() -> None:
    scheme = calibrated(BACON_SHOR, Calibration(family="bacon_shor", law=LAW))
    assert not scheme.has_threshold and scheme.law == LAW
    # above the QRE-form p* = 0.003 the law still answers (there is no threshold to pass)
    assert scheme.logical_error_rate(0.004, 3) == LAW.rate(0.004, 3)
    d = scheme.distance_for(1e-4, 1e-9)
    assert scheme.logical_error_rate(1e-4, d) <= 1e-9 < scheme.logical_error_rate(1e-4, d - 2)


def test_a_target_below_the_best_distance_is_distance_too_large_saying_why() -> None:
    scheme = calibrated(BACON_SHOR, Calibration(family="bacon_shor", law=BACON_SHOR_CIRCUIT_LAW))
    with pytest.raises(QECError) as caught:
        scheme.distance_for(1e-3, 1e-6)
    assert caught.value.code == "QC107"
    assert "no threshold" in str(caught.value) and "d = 7" in str(caught.value)


def test_the_built_in_scheme_is_the_law_fitted_to_its_circuits() -> None:
    scheme = scheme_for("bacon_shor", "gate_based")
    assert scheme.law == BACON_SHOR_CIRCUIT_LAW and not scheme.has_threshold
    assert scheme.logical_error_rate(1e-3, 7) == BACON_SHOR_CIRCUIT_LAW.rate(1e-3, 7)


def test_the_estimator_takes_the_law_unless_a_job_restates_the_threshold_form() -> None:
    from qmk.estimate.params import code_from_json, qubit_from_json

    qubit = qubit_from_json({"name": "qubit_gate_ns_e4"})
    assert code_from_json({"name": "bacon_shor"}, qubit).law == BACON_SHOR_CIRCUIT_LAW
    restated = {"name": "bacon_shor", "errorCorrectionThreshold": 0.003, "crossingPrefactor": 0.1}
    assert code_from_json(restated, qubit).law is None


def test_a_law_calibration_round_trips_and_reaches_the_logical_model() -> None:
    cal = Calibration(family="bacon_shor", law=LAW, source="test")
    again = Calibration.from_json(cal.to_json())
    assert again == cal
    model = logical_model("logical:bacon_shor(d=7)", "qubit_gate_ns_e4", calibration=cal)
    assert model.logical_error_per_cycle == LAW.rate(1e-4, 7)
    other = logical_model("logical:surface_code(d=7)", "qubit_gate_ns_e4", calibration=cal)
    assert other.calibration is None


@pytest.mark.parametrize(
    ("kwargs", "needle"),
    [
        ({"family": "bacon_shor"}, "give crossing_prefactor and error_correction_threshold"),
        ({"family": "surface_code", "law": LAW}, "a column law is Bacon-Shor's"),
        ({"family": "bacon_shor", "crossing_prefactor": 0.1}, "error_correction_threshold"),
    ],
)
def test_bad_calibrations_are_coded_errors(kwargs: dict, needle: str) -> None:
    with pytest.raises(QECError) as caught:
        Calibration(**kwargs)
    assert caught.value.code == "QC103" and needle in str(caught.value)


@pytest.mark.parametrize(
    "law", [{"prefactor": -1.0, "column_factor": 1.0}, {"prefactor": 1.0, "column_factor": 0.0}]
)
def test_a_law_with_bad_numbers_is_refused_when_read(law: dict) -> None:
    with pytest.raises(QECError) as caught:
        Calibration.from_json({"kind": "qmk.qec.calibration", "family": "bacon_shor", "law": law})
    assert caught.value.code == "QC103"
