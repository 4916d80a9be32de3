"""The factory search's binomial shortcuts decide exactly as the crate's sums do."""

from __future__ import annotations

import random

import pytest

from qmk.estimate.tfactory import (
    _at_most_half_cdf_reaches,
    _binomial_cdf,
    _inverse,
    _units_needed,
)
from support.estimate import crate_units


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


@pytest.mark.parametrize("seed", range(3))
def test_units_needed_skips_only_counts_too_small_to_deliver(seed: int) -> None:
    rng = random.Random(seed)
    for _ in range(1_000):
        needed = rng.choice((1, 15, rng.randint(1, 60), rng.randint(1, 600)))
        out = rng.choice((1, 1, 2, 3))
        failure = rng.choice((10 ** rng.uniform(-9, -0.3), 1e-6 + rng.random() * 0.3))
        requirement = rng.choice((0.01, 0.005, 0.01 / 3, 10 ** rng.uniform(-6, -1)))
        if rng.random() < 0.05:  # a trivial unit: neither fails
            failure = requirement = 0.0
        expected, _ = crate_units(needed, failure, requirement, out)
        assert _units_needed.__wrapped__(needed, failure, requirement, out)[0] == expected
    for value in (0, 1, 999):  # the inverse of n trials is at most n (what the skip relies on)
        assert _inverse.__wrapped__(value, 0.3, 0.5)[0] <= value


def test_a_quantile_whose_first_term_underflows_is_the_exact_one_and_says_qre_never_returns() -> (
    None
):
    # QRE's sum starts from q**n, which is 0.0 here: it would add zeros without end
    n, q, u = 966, 0.4565, 0.0025
    assert q**n == 0.0
    value, fell_back = _inverse.__wrapped__(n, q, u)
    assert fell_back
    p = 1.0 - q
    assert _binomial_cdf(n, p, q, value) >= u > _binomial_cdf(n, p, q, value - 1)
