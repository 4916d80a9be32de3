"""The supply's water-filling, to the bit: the shares the scheduler and the budgets'
projection read are the textbook fills, computed in the same float order."""

from __future__ import annotations

import math
import random

import pytest

from qmk.kernel.machine.supply import level_for, max_min, weighted_fill

INF = math.inf


def _weighted_fill_by_definition(demands, weights, capacity):
    """Weighted max-min as first written: by demand over weight (then name), each gets
    its demand or its weight's part of what is left."""
    if sum(demands.values()) <= capacity:
        return dict(demands)
    order = sorted(demands, key=lambda k: (demands[k] / weights.get(k, 1.0), k))
    out, left = {}, capacity
    weight_left = sum(weights.get(k, 1.0) for k in order)
    for key in order:
        w = weights.get(key, 1.0)
        share = min(demands[key], left * w / weight_left)
        out[key] = share
        left -= share
        weight_left -= w
    return {k: out[k] for k in demands}


def _level_by_definition(groups, capacity):
    total = sum(d * n for d, n in groups.items())
    if total <= capacity:
        return INF
    left, count = capacity, sum(groups.values())
    for demand in sorted(groups):
        n = groups[demand]
        if demand * count > left:
            return left / count
        left -= demand * n
        count -= n
    return INF


def _demand(rng: random.Random) -> float:
    # ties and round numbers as often as not: the cases where an order could slip
    return rng.choice([rng.random() * 3, 0.25, 0.5, 1.0, 2.0, 3.078091625])


@pytest.mark.parametrize("seed", range(4))
def test_weighted_fill_gives_the_definitions_shares_to_the_bit(seed):
    rng = random.Random(seed)
    for _ in range(2000):
        names = rng.sample("abcdef", rng.randint(1, 5))
        demands = {k: _demand(rng) for k in names}
        weights = {k: rng.choice([1.0, 2.0, 3.0]) for k in names if rng.random() < 0.7}
        capacity = rng.choice([rng.random() * 4, 1.0, 3.078091625, INF])
        got = weighted_fill(demands, weights, capacity)
        want = _weighted_fill_by_definition(demands, weights, capacity)
        assert list(got) == list(want)
        assert [v.hex() for v in got.values()] == [v.hex() for v in want.values()]


@pytest.mark.parametrize("seed", range(4))
def test_max_min_and_level_for_give_the_definitions_level_to_the_bit(seed):
    rng = random.Random(seed)
    for _ in range(2000):
        wants = [_demand(rng) for _ in range(rng.randint(1, 12))]
        capacity = rng.choice([rng.random() * 6, 1.0, 3.078091625])
        groups: dict[float, int] = {}
        for w in wants:
            groups[w] = groups.get(w, 0) + 1
        level = _level_by_definition(groups, capacity)
        assert level_for(groups, capacity).hex() == level.hex()
        if sum(wants) > capacity and len(set(wants)) > 1:
            assert max_min(wants, capacity) == [w if w < level else level for w in wants]


@pytest.mark.parametrize("seed", range(2))
def test_max_min_of_distinct_wants_gives_the_definitions_level_to_the_bit(seed):
    # (all distinct: max_min walks the sorted wants, not their groups)
    rng = random.Random(seed)
    for _ in range(2000):
        wants = [rng.random() * 3 for _ in range(rng.randint(2, 12))]
        capacity = sum(wants) * rng.uniform(0.05, 0.999)
        level = _level_by_definition(dict.fromkeys(wants, 1), capacity)
        got = max_min(wants, capacity)
        assert [g.hex() for g in got] == [(w if w < level else level).hex() for w in wants]
