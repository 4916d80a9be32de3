"""Every validator catches its violation with its code, the same way on both backends."""

from __future__ import annotations

import pytest

from qmk.devices.errors import DeviceError
from qmk.devices.neutral_atom.emulator import run_job
from qmk.devices.neutral_atom.validate import VALIDATORS
from support.neutral_atom import gate, job, measure, wait

BACKENDS = ("state-vector", "stabilizer")


def move(atom, *, site=None, position=None):
    out = {"op": "MoveAtom", "atom": atom}
    if site is not None:
        out["site"] = site
    if position is not None:
        out["position"] = position
    return out


def pulse(target, detuning, duration):
    return {"op": "Pulse", "target": target, "detuning": detuning, "duration": duration}


def refused_alike(wire, code, **options):
    """The job is refused with ``code`` on both backends, with one message."""
    messages = set()
    for backend in BACKENDS:
        with pytest.raises(DeviceError) as caught:
            run_job(wire, shots=2, seed=1, backend=backend, **options)
        assert caught.value.code == code, str(caught.value)
        messages.add(caught.value.message)
    assert len(messages) == 1
    return caught.value


def passes_alike(wire, **options):
    results = [run_job(wire, shots=50, seed=3, backend=b, **options) for b in BACKENDS]
    return results


def test_every_validator_names_its_codes():
    codes = [c for v in VALIDATORS.values() for c in v.codes]
    assert len(codes) == len(set(codes))
    assert set(codes) == {f"QD2{n:02d}" for n in range(1, 14)}


# ---------------------------------------------------------------------- atoms


@pytest.mark.parametrize(
    ("ops", "n"),
    [
        ([gate("X", 3)], 3),
        ([gate("CZ", 1, 1)], 3),
        ([], 11),
    ],
)
def test_atoms_out_of_range_repeated_or_too_many_are_refused(ops, n):
    refused_alike(job(n, *ops, profile="ideal_small_array"), "QD211")


def test_an_op_before_allocarray_is_refused():
    wire = {"profile": "ideal_small_array", "program": [gate("X", 0)]}
    err = refused_alike(wire, "QD211")
    assert "before AllocArray" in err.message


# ---------------------------------------------------------------------- catalog


def test_a_gate_outside_the_catalog_is_refused_and_its_decomposition_passes():
    hardware = {
        "positions": [0.0, 1.0],
        "native_gates": [{"name": "H"}, {"name": "CZ", "arity": 2}],
    }
    refused_alike(job(2, gate("CX", 0, 1), hardware=hardware), "QD201")
    passes_alike(job(2, gate("H", 1), gate("CZ", 0, 1), gate("H", 1), hardware=hardware))


def test_an_angle_outside_the_catalog_range_is_refused():
    err = refused_alike(job(1, gate("RZ", 0, param=7.0), profile="ideal_small_array"), "QD202")
    assert err.details["limit"] == pytest.approx([-6.283185307179586, 6.283185307179586])
    passes_alike(job(1, gate("RZ", 0, param=3.141592653589793), profile="ideal_small_array"))


# ---------------------------------------------------------------------- connectivity, blockade


def test_a_gate_on_atoms_that_are_not_neighbours_is_refused_naming_the_atoms_and_sites():
    err = refused_alike(job(3, gate("CZ", 0, 2), profile="benchmark_chain"), "QD203")
    assert err.details["index"] == 1
    assert err.details["atoms"] == [0, 2] and err.details["sites"] == [0, 2]
    assert err.details["points"][1] == pytest.approx([2.6, 0.0, 0.0])
    assert err.details["limit"] == pytest.approx(1.3)
    assert "instruction #1" in err.message and "site 2" in err.message


def test_an_interaction_graph_restricts_the_pairs():
    hardware = {
        "positions": [0.0, 1.0, 2.0],
        "interaction_graphs": [{"gate_name": "CZ", "allowed_pairs": [{"site_a": 0, "site_b": 1}]}],
    }
    refused_alike(job(3, gate("CZ", 1, 2), hardware=hardware), "QD203")
    passes_alike(job(3, gate("CZ", 1, 0), hardware=hardware))


def test_the_isotropic_blockade_radius():
    err = refused_alike(job(4, gate("CZ", 0, 3), profile="noisy_square_array"), "QD204")
    assert err.details["limit"] == 2.0
    passes_alike(job(4, gate("CZ", 0, 2), profile="noisy_square_array", noise={}))


def test_the_anisotropic_blockade_limit_along_y():
    # Atoms 0 (0,0) and 8 (0,2): 2.0 apart, within the radius, but 2.0 along y > 1.0.
    err = refused_alike(job(9, gate("CZ", 0, 8), profile="noisy_square_array"), "QD204")
    assert "along y" in err.message


def test_a_zone_override_shrinks_the_blockade_in_its_zone():
    hardware = {
        "blockade_model": {"radius": 1.5, "zone_overrides": [{"zone_id": 1, "radius": 0.9}]}
    }
    wire = job(10, gate("CZ", 8, 9), profile="ideal_square_grid", hardware=hardware)
    err = refused_alike(wire, "QD204")
    assert err.details["limit"] == 0.9
    passes_alike(job(10, gate("CZ", 0, 1), profile="ideal_square_grid", hardware=hardware))


def test_moves_change_the_geometry_the_next_gate_is_checked_on():
    hardware = {"site_ids": [0, 2, 4]}
    refused_alike(job(3, gate("CZ", 0, 1), profile="ideal_small_array", hardware=hardware), "QD203")
    moved = job(
        3, move(1, site=1), gate("CZ", 0, 1), profile="ideal_small_array", hardware=hardware
    )
    for result in passes_alike(moved):
        assert result.counts() == {"000": 50}
    # ...and a move away breaks a pair that was connected.
    crowded = job(3, move(1, site=2), gate("CZ", 0, 1), profile="ideal_small_array")
    refused_alike(crowded, "QD206")  # site 2 holds atom 2
    away = job(
        2,
        move(1, site=2),
        gate("CZ", 0, 1),
        profile="ideal_small_array",
        hardware={"site_ids": [0, 1]},
    )
    refused_alike(away, "QD203")


# ---------------------------------------------------------------------- transport


@pytest.mark.parametrize(
    "bad_move",
    [move(0, position=0.5), move(0, site=1), move(0, site=42)],
    ids=["off-lattice", "occupied", "unknown-site"],
)
def test_moves_that_leave_the_transport_graph_are_refused(bad_move):
    refused_alike(job(3, bad_move, profile="ideal_small_array"), "QD206")


def test_a_move_with_no_transport_path_is_refused():
    hardware = {
        "positions": [0.0, 1.0, 2.0],
        "site_ids": [0],
        "transport_edges": [{"src_site_id": 0, "dst_site_id": 1, "duration_ns": 100.0}],
    }
    refused_alike(job(1, move(0, site=2), hardware=hardware), "QD206")
    passes_alike(job(1, move(0, site=1), hardware=hardware))


def test_the_move_budgets():
    hardware = {"site_ids": [0]}
    there_and_back = [move(0, site=1), move(0, site=0)] * 4 + [move(0, site=1)]
    refused_alike(job(1, *there_and_back, profile="ideal_small_array", hardware=hardware), "QD207")
    far = {"site_ids": [0], "move_limits": {"max_total_displacement_per_atom": 3.0}}
    refused_alike(job(1, move(0, site=4), profile="ideal_small_array", hardware=far), "QD207")
    window = {"site_ids": [0], "move_limits": {"rearrangement_window_ns": 500.0}}
    refused_alike(job(1, move(0, site=3), profile="ideal_small_array", hardware=window), "QD207")


def test_a_move_closer_than_the_minimum_spacing_is_refused():
    hardware = {"move_limits": {"min_spacing": 1.0}}
    err = refused_alike(
        job(3, move(0, position=1.5), profile="benchmark_chain", hardware=hardware), "QD205"
    )
    assert err.details["atoms"] == [0, 1]
    passes_alike(job(3, move(0, position=-2.0), profile="benchmark_chain", hardware=hardware))


# ---------------------------------------------------------------------- timing, cooldown, pulses


def test_waits_outside_the_timing_limits_are_refused():
    hardware = {"positions": [0.0], "timing_limits": {"min_wait_ns": 100.0, "max_wait_ns": 1000.0}}
    refused_alike(job(1, wait(5000.0), hardware=hardware), "QD208")
    refused_alike(job(1, wait(10.0), hardware=hardware), "QD208")
    passes_alike(job(1, wait(500.0), hardware=hardware))


def test_strict_timing_refuses_a_gate_inside_the_measurement_cooldown():
    wire = job(1, measure(0), gate("X", 0), measure(0), profile="benchmark_chain")
    err = refused_alike(wire, "QD209", strict_timing=True)
    assert err.details["index"] == 2
    # Without strict timing the scheduler waits the cooldown out...
    for result in passes_alike(wire):
        assert result.timeline.inserted[0].duration_ns == 50_000.0
    # ...and with an explicit Wait strict timing passes.
    waited = job(1, measure(0), wait(50_000.0), gate("X", 0), measure(0), profile="benchmark_chain")
    passes_alike(waited, strict_timing=True)


def test_pulses_outside_the_pulse_limits_are_refused():
    refused_alike(job(1, pulse(0, 20.0, 100.0), profile="readout_stress"), "QD210")
    refused_alike(job(1, pulse(0, 1.0, 5.0), profile="readout_stress"), "QD210")
    # A quarter turn (pi/2 rad/us for 1 us) is Clifford: the stabilizer runs it too.
    passes_alike(job(1, pulse(0, 1.5707963267948966, 1000.0), profile="readout_stress", noise={}))
