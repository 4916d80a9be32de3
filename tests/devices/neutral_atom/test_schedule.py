"""The scheduler: ASAP within the caps, barriers, cooldown waits, times in ns."""

from __future__ import annotations

from qmk.devices.neutral_atom.job import parse_job
from qmk.devices.neutral_atom.validate import validate_job
from support.neutral_atom import gate, job, measure, wait


def starts(wire):
    timeline = validate_job(parse_job(wire))
    return [(e.op, e.atoms, e.start_ns, e.duration_ns) for e in timeline.entries[1:]], timeline


def test_independent_gates_start_together_and_dependent_ones_follow():
    entries, timeline = starts(
        job(3, gate("H", 0), gate("H", 2), gate("CZ", 0, 1), profile="ideal_small_array")
    )
    assert entries[0][2] == entries[1][2] == 0.0
    assert entries[2][2] == 500.0 and entries[2][3] == 1000.0
    assert timeline.total_ns == entries[-1][2] + entries[-1][3]


def test_a_wait_is_a_barrier_for_every_atom():
    entries, _ = starts(
        job(2, gate("H", 0), wait(2000.0), gate("H", 1), profile="ideal_small_array")
    )
    assert entries[1][2] == 500.0  # the wait starts when atom 0 is done
    assert entries[2][2] == 2500.0  # atom 1 waits for it although it was free


def test_the_two_qubit_cap_serialises_gates():
    hardware = {"timing_limits": {"max_parallel_two_qubit": 1}}
    entries, _ = starts(
        job(4, gate("CZ", 0, 1), gate("CZ", 2, 3), profile="ideal_small_array", hardware=hardware)
    )
    assert entries[1][2] == entries[0][2] + entries[0][3]


def test_two_qubit_gates_within_blockade_range_of_each_other_never_overlap():
    # On a chain of spacing 1 with radius 1.5, CZ(0,1) and CZ(2,3) have atoms 1 and 2 only
    # 1 apart: their Rydberg excitations would interact.
    entries, _ = starts(job(4, gate("CZ", 0, 1), gate("CZ", 2, 3), profile="ideal_small_array"))
    assert entries[1][2] == entries[0][3]
    far, _ = starts(job(6, gate("CZ", 0, 1), gate("CZ", 4, 5), profile="ideal_small_array"))
    assert far[0][2] == far[1][2] == 0.0


def test_the_per_zone_cap_counts_operations_in_a_zone():
    # ideal_square_grid allows four operations at once in a zone.
    ops = [gate("H", a) for a in range(6)]
    entries, _ = starts(job(6, *ops, profile="ideal_square_grid"))
    assert [e[2] for e in entries[:6]] == [0.0] * 4 + [500.0] * 2


def test_overlapping_pulses_are_capped():
    pulse = lambda a: {"op": "Pulse", "target": a, "detuning": 1.0, "duration": 100.0}  # noqa: E731
    entries, _ = starts(job(3, pulse(0), pulse(1), pulse(2), profile="readout_stress"))
    assert [e[2] for e in entries[:3]] == [0.0, 0.0, 100.0]


def test_the_cooldown_after_a_measurement_is_waited_out_and_shown():
    entries, timeline = starts(job(1, measure(0), gate("X", 0), profile="benchmark_chain"))
    assert entries[1][2] == 50_000.0 + 50_000.0
    (inserted,) = timeline.inserted
    assert (inserted.start_ns, inserted.duration_ns, inserted.atoms) == (50_000.0, 50_000.0, (0,))
    assert timeline.to_json()[2]["inserted"] is True


def test_a_rearrangement_starts_when_every_atom_is_free_and_ends_with_its_slowest_move():
    hardware = {"site_ids": [0, 2, 4]}
    ops = [
        gate("H", 0),
        {"op": "MoveAtom", "atom": 1, "site": 1},
        {"op": "MoveAtom", "atom": 2, "site": 6},
        gate("H", 0),
    ]
    entries, _ = starts(job(3, *ops, profile="ideal_small_array", hardware=hardware))
    assert entries[1][2] == entries[2][2] == 500.0
    assert entries[1][3] == 200.0 and entries[2][3] == 400.0  # 200 ns per um
    assert entries[3][2] == 900.0
