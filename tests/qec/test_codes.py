"""QEC schemes: QRE's numbers, the threshold formula, QMK's assumed families, refusals."""

from __future__ import annotations

import itertools
import math
from dataclasses import replace

import pytest

from qmk.qec import SCHEMES, QECError, QecScheme, qubit_params, scheme_for
from qmk.qec.codes import QRE_MAX_CODE_DISTANCE, powi
from qmk.qec.formula import Formula
from qmk.qvm.profiles import FAMILIES

NS_E3 = qubit_params("qubit_gate_ns_e3")
SURFACE = scheme_for("surface_code", "gate_based")


def test_every_profile_family_has_a_scheme_and_nothing_else_does():
    assert set(SCHEMES) == set(FAMILIES)
    for family, variants in SCHEMES.items():
        assert variants, family
        for kind, scheme in variants.items():
            assert (scheme.family, scheme.instruction_set) == (family, kind)


def test_qres_published_surface_code_numbers():
    # resource_estimator/src/system/modeling/{physical_qubit,fault_tolerance}/tests.rs
    assert SURFACE.physical_qubits(7) == 98
    assert SURFACE.logical_error_rate(NS_E3.physical_error_rate, 7) == 3.0000000000000013e-6
    assert SURFACE.logical_error_rate(NS_E3.physical_error_rate, 5) == 3.0000000000000008e-5
    assert SURFACE.cycle_time_ns(NS_E3, 1) == 400
    # QRE's reference report (system/test_report.json): d = 19 on qubit_gate_ns_e3
    assert SURFACE.physical_qubits(19) == 722
    assert SURFACE.cycle_time_ns(NS_E3, 19) == 7600
    assert SURFACE.logical_error_rate(1e-3, 19) == 3.000000000000003e-12
    assert SURFACE.distance_for(1e-3, 9.52655861643884e-12) == 19


def test_default_surface_code_numbers():
    assert SURFACE.physical_qubits(9) == 2 * 9 * 9 == 162
    assert SURFACE.cycle_time_ns(NS_E3, 9) == (4 * 50 + 2 * 100) * 9 == 3600
    assert SURFACE.rounds(9) == 9
    assert SURFACE.logical_error_rate(1e-3, 9) == pytest.approx(0.03 * 0.1**5, rel=1e-15)


@pytest.mark.parametrize(
    ("family", "kind", "a", "threshold", "cycle", "qubits"),
    [
        (
            "surface_code",
            "gate_based",
            0.03,
            0.01,
            "(4 * twoQubitGateTime + 2 * oneQubitMeasurementTime) * codeDistance",
            "2 * codeDistance * codeDistance",
        ),
        (
            "surface_code",
            "majorana",
            0.08,
            0.0015,
            "20 * oneQubitMeasurementTime * codeDistance",
            "2 * codeDistance * codeDistance",
        ),
        (
            "floquet_code",
            "majorana",
            0.07,
            0.01,
            "3 * oneQubitMeasurementTime * codeDistance",
            "4 * codeDistance * codeDistance + 8 * (codeDistance - 1)",
        ),
    ],
)
def test_qre_schemes_are_qres_verbatim(family, kind, a, threshold, cycle, qubits):
    scheme = scheme_for(family, kind)
    assert scheme.qre
    assert (scheme.crossing_prefactor, scheme.error_correction_threshold) == (a, threshold)
    assert (scheme.logical_cycle_time.text, scheme.physical_qubits_per_logical_qubit.text) == (
        cycle,
        qubits,
    )
    assert scheme.max_distance == QRE_MAX_CODE_DISTANCE == 50


def test_majorana_schemes_numbers():
    maj = qubit_params("qubit_maj_ns_e4")
    floquet = scheme_for("floquet_code", maj)
    assert floquet.physical_qubits(9) == 4 * 81 + 8 * 8 == 388
    assert floquet.cycle_time_ns(maj, 9) == 3 * 100 * 9
    assert floquet.logical_error_rate(1e-4, 9) == pytest.approx(0.07 * 1e-10)
    surface = scheme_for("surface_code", maj)
    assert surface.cycle_time_ns(maj, 9) == 20 * 100 * 9
    assert surface.logical_error_rate(1e-4, 9) == pytest.approx(0.08 * (1e-4 / 0.0015) ** 5)


@pytest.mark.parametrize("family", ["bacon_shor", "SHYPS"])
def test_families_outside_qre_are_marked_assumptions_with_sources(family: str):
    scheme = scheme_for(family, "gate_based")
    assert not scheme.qre
    assert scheme.sources and "assumption" in scheme.notes
    with pytest.raises(QECError) as caught:
        scheme_for(family, "majorana")
    assert caught.value.code == "QC105"


def test_floquet_code_on_gate_based_qubits_is_refused_like_qre():
    with pytest.raises(QECError) as caught:
        scheme_for("floquet_code", NS_E3)
    err = caught.value
    assert (err.code, err.name) == ("QC105", "scheme-not-supported")
    assert "qubit_gate_ns_e3" in err.message and "majorana" in err.message


def test_an_unknown_family_is_qc102():
    with pytest.raises(QECError) as caught:
        scheme_for("toric_code", "gate_based")
    assert caught.value.code == "QC102"


@pytest.mark.parametrize("d", [1, 3, 5, 9, 25])
def test_bacon_shor_counts_data_and_one_ancilla_per_gauge(d: int):
    scheme = scheme_for("bacon_shor", "gate_based")
    assert scheme.physical_qubits(d) == d * d + 2 * d * (d - 1)
    assert scheme.cycle_time_ns(NS_E3, d) == SURFACE.cycle_time_ns(NS_E3, d)


@pytest.mark.parametrize(
    ("d", "r"),
    [(1, 3), (3, 3), (4, 3), (5, 4), (8, 4), (9, 5), (16, 5), (17, 6), (32, 6), (33, 7), (50, 7)],
)
def test_shyps_charges_its_smallest_block_of_at_least_the_distance(d: int, r: int):
    scheme = scheme_for("SHYPS", "gate_based")
    n, k, block_distance = (2**r - 1) ** 2, r * r, 2 ** (r - 1)
    assert block_distance >= d > (block_distance // 2 if r > 3 else 0)
    assert scheme.physical_qubits(d) == math.ceil(3 * n / k)
    assert scheme.cycle_time_ns(NS_E3, d) == (6 * 50 + 2 * 100) * d


def test_shyps_needs_fewer_qubits_than_the_surface_code_from_d_5():
    shyps = scheme_for("SHYPS", "gate_based")
    for d in range(5, 51):
        assert shyps.physical_qubits(d) < SURFACE.physical_qubits(d), d


@pytest.mark.parametrize("scheme", [s for v in SCHEMES.values() for s in v.values()])
def test_logical_error_rate_falls_with_distance_below_threshold(scheme: QecScheme):
    if not scheme.has_threshold:  # Bacon-Shor's law: tests/qec/test_column_law.py
        scheme = replace(scheme, law=None)
    p = scheme.error_correction_threshold / 10
    rates = [scheme.logical_error_rate(p, d) for d in range(1, scheme.max_distance + 1)]
    assert all(a >= b for a, b in itertools.pairwise(rates))
    odd = rates[::2]
    assert all(a > b for a, b in itertools.pairwise(odd))
    assert rates[0] == pytest.approx(scheme.crossing_prefactor / 10)


@pytest.mark.parametrize("d", [2, 4, 10])
def test_an_even_distance_counts_as_the_odd_one_below_as_in_qre(d: int):
    assert SURFACE.logical_error_rate(1e-3, d) == SURFACE.logical_error_rate(1e-3, d - 1)


def test_at_the_threshold_p_l_is_the_prefactor_and_above_it_is_qc106():
    assert SURFACE.logical_error_rate(0.01, 9) == 0.03
    with pytest.raises(QECError) as caught:
        SURFACE.logical_error_rate(0.011, 9)
    assert caught.value.name == "above-threshold" and caught.value.details["threshold"] == 0.01


@pytest.mark.parametrize("d", [51, 255])
def test_distances_above_qres_maximum_are_qc107(d: int):
    for method in (SURFACE.physical_qubits, SURFACE.rounds):
        with pytest.raises(QECError) as caught:
            method(d)
        assert caught.value.name == "distance-too-large"
        assert caught.value.details == {"distance": d, "max_distance": 50}


@pytest.mark.parametrize("d", [0, -3, 2.0, True])
def test_a_distance_that_is_not_a_positive_integer_is_qc103(d):
    with pytest.raises(QECError) as caught:
        SURFACE.physical_qubits(d)
    assert caught.value.code == "QC103"


def test_distance_for_matches_a_brute_force_search():
    for target in (1e-3, 1e-6, 1e-9, 1e-12, 1e-15):
        d = SURFACE.distance_for(1e-3, target)
        assert d % 2 == 1 and SURFACE.logical_error_rate(1e-3, d) <= target * (1 + 1e-12)
        assert d == 1 or SURFACE.logical_error_rate(1e-3, d - 2) > target


def test_distance_for_a_target_needing_more_than_50_is_qc107():
    with pytest.raises(QECError) as caught:
        SURFACE.distance_for(9e-3, 1e-20)
    assert caught.value.name == "distance-too-large"


def test_a_scheme_for_another_instruction_set_refuses_the_qubit():
    with pytest.raises(QECError) as caught:
        SURFACE.cycle_time_ns(qubit_params("qubit_maj_ns_e4"), 9)
    assert caught.value.code == "QC105"


@pytest.mark.parametrize(("base", "exp"), [(0.1, 10), (0.2, 12), (1 / 15, 5), (0.5, 0), (2.0, -3)])
def test_powi_agrees_with_pow_to_rounding(base: float, exp: int):
    assert powi(base, exp) == pytest.approx(base**exp, rel=1e-14)


@pytest.mark.parametrize(
    ("changes", "problem"),
    [
        ({"crossing_prefactor": 0.6}, "crossing_prefactor"),
        ({"error_correction_threshold": 0.0}, "error_correction_threshold"),
        ({"family": "toric"}, "unknown code family"),
        ({"instruction_set": "ion"}, "instruction set"),
        ({"physical_qubits_per_logical_qubit": Formula("2 * twoQubitGateTime")}, "only"),
        ({"max_distance": 0}, "max_distance"),
    ],
)
def test_bad_scheme_values_are_refused(changes, problem):
    import dataclasses

    with pytest.raises(QECError, match=problem):
        dataclasses.replace(SURFACE, **changes)
