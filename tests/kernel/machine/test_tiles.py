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
        longest = max((len(r) for r in "".join("x" if f else " " for f in free).split()), default=0)
        assert line.largest == longest


def test_free_tiles_in_two_holes_do_not_hold_a_job_larger_than_either():
    line = FreeTiles(10)
    line.take(4, 2)  # holes 0-3 and 6-9
    assert line.free == 8 and line.largest == 4
    assert line.first_fit(5) is None and line.first_fit(4) == 0
