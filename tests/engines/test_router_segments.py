"""The router prices a segment engine's state round trips, so it keeps programs with many
mid-circuit resets or measurements on an engine that holds its state."""

from __future__ import annotations

from qmk import defaults
from qmk.engines.registry import SEGMENT_ROUND_TRIP_S, SPECS, Workload, spec


def _resets(qubits: int, segments: int) -> Workload:
    """QASMBench bwt_n21's shape: a reset every dozen gates."""
    return Workload(
        qubits=qubits, gate_count=12 * segments, clifford=False, mid_circuit=True,
        segments=segments,
    )  # fmt: skip


def test_every_segment_engine_pays_a_round_trip_per_segment_and_no_other_does() -> None:
    """A resident one (its state stays on its GPU) pays none for its first segment."""
    one, many = _resets(20, 1), _resets(20, 101)
    for entry in SPECS:
        extra = entry.seconds(many) - entry.cost.seconds(many)
        if entry.state == "segments":
            trips = 100 if entry.resident else 101
            expected = trips * SEGMENT_ROUND_TRIP_S * entry.cost.elements(20)
            assert abs(extra - expected) < 1e-9 * expected, entry.name
            first = entry.seconds(one) - entry.cost.seconds(one)
            assert first == 0.0 if entry.resident else first > 0.0, entry.name
        else:
            assert not entry.resident and extra == 0.0, entry.name
    assert [e.name for e in SPECS if e.resident] == [defaults.CUSTATEVEC]


def test_many_mid_circuit_resets_at_21_qubits_cost_more_on_qsim_than_on_the_statevector() -> None:
    work = _resets(21, 9207)
    assert spec(defaults.QSIM).seconds(work) > 2 * spec(defaults.STATEVECTOR).seconds(work)
    # one segment of 10^4 gates (terminal measurements only): the round trip is a small part
    single = Workload(qubits=21, gate_count=10_000, clifford=False)
    assert spec(defaults.QSIM).seconds(single) < 1.1 * spec(defaults.QSIM).cost.seconds(single)
