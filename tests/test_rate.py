"""Token buckets on a clock the test moves by hand: exact, and no waiting."""

from __future__ import annotations

import math

import pytest

from qmk.rate import Buckets, TokenBucket


def test_a_bucket_gives_its_burst_at_once_then_its_rate():
    bucket = TokenBucket(rate=4.0, burst=5.0, now=100.0)
    assert [bucket.take(100.0) for _ in range(5)] == [0.0] * 5
    assert bucket.take(100.0) == 0.25
    assert bucket.take(100.25) == 0.0 and bucket.take(100.25) == 0.25


def test_a_refused_take_takes_nothing_and_says_how_long_to_wait():
    bucket = TokenBucket(rate=1000.0, burst=100_000.0, now=0.0)
    assert bucket.take(0.0, cost=60_000) == 0.0
    assert bucket.take(0.0, cost=60_000) == pytest.approx(20.0)
    assert bucket.take(19.0, cost=60_000) == pytest.approx(1.0)
    assert bucket.take(20.0, cost=60_000) == 0.0


def test_idle_time_fills_a_bucket_to_its_burst_and_no_further():
    bucket = TokenBucket(rate=1.0, burst=3.0, now=0.0)
    assert bucket.take(0.0, cost=3) == 0.0
    assert bucket.level(1e9) == 3.0


def test_time_that_goes_backwards_adds_nothing():
    bucket = TokenBucket(rate=1.0, burst=2.0, now=50.0)
    assert bucket.take(50.0, cost=2) == 0.0
    assert bucket.level(10.0) == 0.0 and bucket.level(11.0) == 1.0


def test_a_cost_over_the_burst_never_fits():
    assert TokenBucket(rate=1.0, burst=2.0, now=0.0).take(0.0, cost=3) == math.inf


@pytest.mark.parametrize("rate, burst", [(0, 1), (1, 0), (-1, 1), (math.inf, 1), (1, math.nan)])
def test_a_bucket_needs_a_positive_finite_rate_and_burst(rate, burst):
    with pytest.raises(ValueError):
        TokenBucket(rate=rate, burst=burst, now=0.0)


def test_buckets_of_two_keys_are_independent():
    buckets = Buckets(rate=1.0, burst=1.0)
    assert buckets.take("a", 0.0) == 0.0 and buckets.take("a", 0.0) == 1.0
    assert buckets.take("b", 0.0) == 0.0


def test_buckets_forget_full_ones_first_and_keep_the_busy_ones():
    buckets = Buckets(rate=1.0, burst=1.0, most=2)
    buckets.take("busy", 0.0)
    buckets.take("idle", -10.0)  # full again by 0.0
    buckets.take("new", 0.0)
    assert len(buckets) == 2
    assert buckets.take("busy", 0.0) == 1.0  # still empty: it was kept
