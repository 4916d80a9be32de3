"""Backfill's reservation: when a region of the head's tiles frees, read as a sliding
maximum over the held runs, checked against every run weighed for every start."""

from __future__ import annotations

import math
import random

import pytest

from qmk.kernel.machine.policies.reserve import _free_at


def _by_every_run(held, starts, need, now):
    return [
        (
            start,
            max(
                (end for at, tiles, end in held if at < start + need and at + tiles > start),
                default=now,
            ),
        )
        for start in starts
    ]


@pytest.mark.parametrize("seed", range(40))
def test_a_windows_free_time_is_the_latest_end_of_the_runs_it_meets(seed):
    rng = random.Random(seed)
    size, need, now = rng.randint(5, 120), rng.randint(1, 30), float(rng.randint(0, 50))
    held, at = [], 0
    while at < size:
        at += rng.randint(0, 6)
        tiles = rng.randint(1, 9)
        if at + tiles > size:
            break
        end = math.inf if rng.random() < 0.1 else now + rng.choice([0.0, 1.5, 7.0, 20.25])
        held.append((at, tiles, end))
        at += tiles
    if need > size:
        need = size
    starts = {0, size - need}
    for at, tiles, _ in held:
        starts.update((at + tiles, at - need))
    ordered = sorted(s for s in starts if 0 <= s <= size - need)
    assert list(_free_at(held, ordered, need, now)) == _by_every_run(held, ordered, need, now)
