"""The free-tile line: first fit, take and give back, against a list of booleans."""

from __future__ import annotations

import random

import pytest

from qmk.kernel.machine.tiles import FreeTiles


def _first_fit(free: list[bool], k: int) -> int | None:
    return next((i for i in range(len(free) - k + 1) if all(free[i : i + k])), None)


@pytest.mark.parametrize("n", [1, 2, 7, 64, 100])
def test_first_fit_take_and_give_agree_with_a_plain_list_at_seed_20261123(n: int):
    rng = random.Random(20261123 + n)
    line, free, held = FreeTiles(n), [True] * n, []
    for _ in range(3000):
        if held and rng.random() < 0.45:
            start, k = held.pop(rng.randrange(len(held)))
            line.give(start, k)
            free[start : start + k] = [True] * k
        else:
            k = rng.randint(1, max(1, n // 3))
            at = line.first_fit(k)
            assert at == _first_fit(free, k)
            if at is not None:
                line.take(at, k)
                free[at : at + k] = [False] * k
                held.append((at, k))
        assert line.free == sum(free)
        runs = "".join("x" if f else " " for f in free).split()
        assert line.largest == max((len(r) for r in runs), default=0)
        assert line.runs == len(runs)


def test_free_tiles_in_two_holes_do_not_hold_a_job_larger_than_either():
    line = FreeTiles(10)
    line.take(4, 2)  # holes 0-3 and 6-9
    assert line.free == 8 and line.largest == 4
    assert line.first_fit(5) is None and line.first_fit(4) == 0


def test_a_line_costs_its_free_runs_never_its_tiles():
    # 10^12 tiles: one run (a per-tile structure could not even be allocated); each job
    # placed splits one run at most, and giving every job back leaves one run again
    line = FreeTiles(10**12)
    assert (line.runs, line.free, line.largest) == (1, 10**12, 10**12)
    starts = []
    for size in (5, 7, 3, 11):
        at = line.first_fit(size)
        assert at is not None
        line.take(at, size)
        starts.append((at, size))
    assert starts == [(0, 5), (5, 7), (12, 3), (15, 11)] and line.runs == 1
    line.give(5, 7)  # a hole: two runs
    assert line.runs == 2 and line.first_fit(7) == 5 and line.first_fit(8) == 26
    for at, size in (starts[0], starts[2], starts[3]):
        line.give(at, size)
    assert (line.runs, line.free, line.largest) == (1, 10**12, 10**12)


def test_taking_tiles_not_free_or_giving_tiles_not_taken_is_refused_and_changes_nothing():
    line = FreeTiles(10)
    line.take(2, 3)
    for bad in ((1, 2), (4, 1), (9, 2), (-1, 1)):
        with pytest.raises(ValueError, match="not all free"):
            line.take(*bad)
    for bad in ((1, 2), (4, 2), (0, 1), (8, 3)):
        with pytest.raises(ValueError, match="not all taken"):
            line.give(*bad)
    assert (line.free, line.runs, line.largest, line.first_fit(5)) == (7, 2, 5, 5)
