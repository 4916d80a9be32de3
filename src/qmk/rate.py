"""Token buckets: how often a thing may happen, with a burst, on any clock.

A :class:`TokenBucket` holds at most ``burst`` tokens and gains ``rate`` of them per
second. The caller passes the time to every call. So the same bucket runs on the event
loop's clock (the server's accept rate), on the kernel's injectable clock (a tenant's
verification rate), and in a test on a clock it moves by hand: no test of a rate waits
for time to pass. :class:`Buckets` keeps one bucket per key (a peer, a tenant).

>>> bucket = TokenBucket(rate=2.0, burst=3.0, now=0.0)
>>> [bucket.take(0.0) for _ in range(4)]  # a burst of 3, then a wait of half a second
[0.0, 0.0, 0.0, 0.5]
>>> bucket.take(0.5), bucket.take(0.5, cost=4)  # refilled by one; 4 never fit in 3
(0.0, inf)
"""

from __future__ import annotations

import math


class TokenBucket:
    """At most ``burst`` tokens, ``rate`` more per second, starting full at ``now``.

    Raises:
        ValueError: ``rate`` or ``burst`` is not a positive finite number.
    """

    __slots__ = ("burst", "rate", "stamp", "tokens")

    def __init__(self, *, rate: float, burst: float, now: float) -> None:
        if not (0 < rate < math.inf and 0 < burst < math.inf):
            raise ValueError(f"a rate and a burst are positive and finite, got {rate}, {burst}")
        self.rate = rate
        self.burst = burst
        self.tokens = burst
        self.stamp = now

    def level(self, now: float) -> float:
        """The tokens held at ``now`` (time that goes backwards adds none)."""
        if now > self.stamp:
            self.tokens = min(self.burst, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now
        return self.tokens

    def take(self, now: float, cost: float = 1.0) -> float:
        """Take ``cost`` tokens at ``now``: 0.0 when they were there; else nothing is
        taken and the answer is the seconds until they will be (``inf``: never, the cost
        is over the burst)."""
        held = self.level(now)
        if held >= cost:
            self.tokens = held - cost
            return 0.0
        if cost > self.burst:
            return math.inf
        return (cost - held) / self.rate


class Buckets:
    """One :class:`TokenBucket` per key, made full on first use.

    At most ``most`` keys are kept: past that the full buckets are dropped (a full
    bucket is what a new one is), then, if all are in use, the oldest.
    """

    __slots__ = ("_buckets", "burst", "most", "rate")

    def __init__(self, *, rate: float, burst: float, most: int = 4096) -> None:
        TokenBucket(rate=rate, burst=burst, now=0.0)  # the same checks
        self.rate, self.burst, self.most = rate, burst, most
        self._buckets: dict[str, TokenBucket] = {}

    def take(self, key: str, now: float, cost: float = 1.0) -> float:
        """:meth:`TokenBucket.take` on ``key``'s bucket."""
        bucket = self._buckets.get(key)
        if bucket is None:
            if len(self._buckets) >= self.most:
                self._forget(now)
            bucket = self._buckets[key] = TokenBucket(rate=self.rate, burst=self.burst, now=now)
        return bucket.take(now, cost)

    def wait(self, key: str, now: float, cost: float = 1.0) -> float:
        """The seconds until ``key``'s bucket holds ``cost`` tokens (0.0: it does now),
        taking none.

        >>> peers = Buckets(rate=1.0, burst=1.0)
        >>> peers.wait("a", 0.0), peers.take("a", 0.0), peers.wait("a", 0.0)
        (0.0, 0.0, 1.0)
        """
        bucket = self._buckets.get(key)
        if bucket is None:
            return 0.0 if cost <= self.burst else math.inf
        held = bucket.level(now)
        if held >= cost:
            return 0.0
        return math.inf if cost > self.burst else (cost - held) / self.rate

    def give(self, key: str, now: float, cost: float = 1.0) -> None:
        """Put ``cost`` tokens back in ``key``'s bucket (up to its burst): a token taken
        for something that did not happen after all.

        >>> peers = Buckets(rate=1.0, burst=1.0)
        >>> peers.take("a", 0.0), peers.wait("a", 0.0)
        (0.0, 1.0)
        >>> peers.give("a", 0.0); peers.wait("a", 0.0)
        0.0
        """
        bucket = self._buckets.get(key)
        if bucket is not None:
            bucket.tokens = min(bucket.burst, bucket.level(now) + cost)

    def _forget(self, now: float) -> None:
        full = [key for key, b in self._buckets.items() if b.level(now) >= b.burst]
        for key in full:
            del self._buckets[key]
        if len(self._buckets) >= self.most:
            del self._buckets[next(iter(self._buckets))]

    def __len__(self) -> int:
        return len(self._buckets)


__all__ = ["Buckets", "TokenBucket"]
