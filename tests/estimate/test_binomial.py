"""The factory search's binomial shortcuts decide exactly as the crate's sums do."""

from __future__ import annotations

import random

import pytest

from qmk.estimate.tfactory import _at_most_half_cdf_reaches, _binomial_cdf


@pytest.mark.parametrize("seed", range(4))
def test_the_hoeffding_shortcut_picks_the_same_end_as_the_summed_cdf(seed: int) -> None:
    rng = random.Random(seed)
    for _ in range(20_000):
        n = rng.choice((rng.randint(1, 10), rng.randint(1, 100), rng.randint(1, 999)))
        q = rng.choice((rng.random(), 10 ** rng.uniform(-9, 0), 1 - 10 ** rng.uniform(-9, 0)))
        if not 0.0 < q < 1.0:
            continue
        u = rng.choice((rng.random(), 10 ** rng.uniform(-6, 0), 0.01 / rng.randint(1, 4)))
        p = 1.0 - q
        assert _at_most_half_cdf_reaches(n, p, q, u) == (u <= _binomial_cdf(n, p, q, n // 2))
