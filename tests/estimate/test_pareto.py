"""The frontier's dominance sweep agrees with comparing every pair (seeded points with ties)."""

from __future__ import annotations

import random

import pytest

from qmk.estimate.search import _dominated


def _pairwise(points: list[tuple[float, int, None]]) -> list[bool]:
    def dominates(a: tuple[float, int, None], b: tuple[float, int, None]) -> bool:
        return (a[0] < b[0] and a[1] <= b[1]) or (a[0] <= b[0] and a[1] < b[1])

    return [any(dominates(other, point) for other in points) for point in points]


@pytest.mark.parametrize("seed", range(5))
def test_the_sweep_flags_exactly_the_points_another_point_dominates(seed: int) -> None:
    rng = random.Random(seed)
    for _ in range(400):
        points = [
            (float(rng.randint(0, 6)), rng.randint(0, 6), None) for _ in range(rng.randint(0, 25))
        ]
        assert _dominated(points) == _pairwise(points)
