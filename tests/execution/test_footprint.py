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
