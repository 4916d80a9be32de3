"""The footprint a target reports: totals over repeated steps, JSON round trip, refusals."""

from __future__ import annotations

import pytest

from qmk.errors import QMKError
from qmk.execution.footprint import Footprint, Step


def _footprint(*steps: Step) -> Footprint:
    return Footprint(
        target="lattice-surgery",
        logical_qubits=3,
        block="compact",
        data_tiles=3,
        routing_tiles=4,
        code_distance=7,
        steps=steps,
    )


def test_totals_count_every_repetition_of_every_step() -> None:
    fp = _footprint(
        Step(kind="rotation", cycles=9, t_states=1, routed=True, repeat=4),
        Step(kind="fence", cycles=0, repeat=2),
        Step(kind="teleport", cycles=2, bell_pairs=3, repeat=5),
        Step(kind="measure", cycles=0, measurements=3, node="m3"),
    )
    assert fp.tiles == 7
    assert fp.duration_cycles == 9 * 4 + 2 * 5
    assert fp.t_states == 4
    assert fp.bell_pairs == 15
    assert fp.measurements == 3
    assert fp.fences == 2


def test_footprint_round_trips_through_json() -> None:
    fp = _footprint(Step(kind="ppm", cycles=5, routed=True, repeat=2, node="n7"))
    assert Footprint.from_json(fp.to_json()) == fp


@pytest.mark.parametrize(
    "change, key",
    [
        ({"data_tiles": -1}, "footprint.data_tiles"),
        ({"block": "roomy"}, "footprint.block"),
        ({"steps": [{"kind": "gates", "cycles": 1, "repeat": 0}]}, "footprint.steps[0].repeat"),
        ({"tiles": 3}, "footprint.tiles"),
    ],
)
def test_a_bad_footprint_is_a_coded_error_naming_the_key(change: dict, key: str) -> None:
    data = {**_footprint().to_json(), **change}
    with pytest.raises(QMKError) as caught:
        Footprint.from_json(data)
    assert key in str(caught.value)


def _stretches(fp: Footprint) -> list[int]:
    """Private cycles between fences, in order."""
    out = [0]
    for step in fp.steps:
        if step.kind == "fence":
            out.append(0)
        else:
            out[-1] += step.cycles * step.repeat
    return out


@pytest.mark.parametrize("every", [1, 3, 7, 10, 50])
def test_fenced_runs_no_stretch_longer_than_asked_and_keeps_every_total(every: int) -> None:
    fp = _footprint(
        Step(kind="gates", cycles=2, node="a"),
        Step(kind="rotation", cycles=3, t_states=1, repeat=7, node="t"),
        Step(kind="fence", cycles=0),
        Step(kind="teleport", cycles=1, bell_pairs=2, repeat=20, node="b"),
        Step(kind="measure", cycles=0, measurements=4, node="m"),
    )
    fenced = fp.fenced(every)
    # a stretch is cut between repetitions; one repetition longer than asked is whole
    assert max(_stretches(fenced)) <= max(every, 3)
    assert (fenced.duration_cycles, fenced.t_states, fenced.bell_pairs, fenced.measurements) == (
        fp.duration_cycles,
        fp.t_states,
        fp.bell_pairs,
        fp.measurements,
    )
    assert fenced.tiles == fp.tiles
    # without its added fences, the same steps in the same order: each cut step's last
    # piece keeps its node, the pieces before it name none
    pieces = [s for s in fenced.steps if s.kind != "fence"]
    assert [s.node for s in pieces if s.node] == ["a", "t", "b", "m"]
    for step in fp.steps:
        if step.kind == "fence":
            continue
        mine = [s for s in pieces if s.kind == step.kind]
        assert sum(s.repeat for s in mine) == step.repeat
        assert all(s.cycles == step.cycles and s.t_states == step.t_states for s in mine)
        assert mine[-1].node == step.node and all(s.node is None for s in mine[:-1])


def test_fenced_adds_nothing_to_a_footprint_whose_stretches_are_short_enough() -> None:
    fp = _footprint(Step(kind="gates", cycles=4, repeat=2), Step(kind="fence", cycles=0))
    assert fp.fenced(8) is fp
    assert fp.fenced(7).fences == 2
    with pytest.raises(ValueError):
        fp.fenced(0)


def test_fenced_counts_a_step_at_the_pace_its_t_states_and_bell_pairs_come_alone() -> None:
    # one T state a repetition at 0.01 a cycle: 100 cycles each, not 1; a pair each at
    # 0.5 a cycle: 2 cycles each, not 1
    fp = _footprint(
        Step(kind="rotation", cycles=1, t_states=1, repeat=25, node="t"),
        Step(kind="teleport", cycles=1, bell_pairs=1, repeat=1000, node="b"),
    )
    assert fp.fenced(1100) is fp  # 1,025 private cycles
    paced = fp.fenced(1100, t_per_cycle=0.01, pairs_per_cycle=0.5)
    # 11 states (1,100 cycles), 11, then 3 (300) and 400 pairs (800), 550, 50
    assert [s.repeat for s in paced.steps if s.kind != "fence"] == [11, 11, 3, 400, 550, 50]
    assert paced.fences == 4 and paced.t_states == 25 and paced.bell_pairs == 1000


def test_fenced_spreads_its_fences_wider_past_the_most_it_may_add() -> None:
    fp = _footprint(Step(kind="gates", cycles=1, repeat=10**9, node="g"))
    assert fp.fenced(10_000).fences == 10**5 - 1
    spread = fp.fenced(10_000, most=2000)
    assert spread.fences == 1999 and spread.duration_cycles == 10**9
    assert {s.repeat for s in spread.steps if s.kind != "fence"} == {500_000}
    assert fp.fenced(10**6, most=2000).fences == 999  # within the most: as asked
