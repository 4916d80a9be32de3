"""The machine's metrics, each one formula (``docs/machine.md`` states them).

- **utilization** of a resource over ``[a, b)``: busy over available,
  ``integral of busy(t) dt / (capacity * (b - a))``, from a trace of ``(time, busy)``
  at each change; per epoch (:func:`series`) and overall (:func:`utilization`);
- **slowdown** of a job: turnaround over its runtime alone on the empty machine,
  ``(end - arrival) / alone``; the mean (Eyerman and Eeckhout's *ANTT*, average
  normalized turnaround time) and the 95th percentile (nearest rank);
- **STP** (system throughput, Eyerman and Eeckhout, "System-Level Performance Metrics
  for Multiprogram Workloads", IEEE Micro 28(3), 2008; the *weighted speedup* of
  Snavely and Tullsen, ASPLOS 2000): ``sum over jobs of alone / turnaround``;
- **throughput**: jobs per machine-second, ``n / (makespan * cycle time)``;
- **speedup vs exclusive**: the ratio of makespans for the same arrivals,
  ``makespan(exclusive) / makespan(policy)``;
- **Jain's fairness** over tenants' tile-cycle shares weighted by their quotas:
  ``x_i = share_i / quota_i`` (quotas normalized to sum 1),
  ``J = (sum x_i)^2 / (n * sum x_i^2)``: 1 when every tenant has its quota's share,
  ``1/n`` when one tenant has everything.

A run of a workload keeps every change of every resource (a trace) and every job's
record, and computes each formula from them (:func:`utilization`, :func:`series`,
:func:`percentile`). A kernel that runs for months cannot: it computes them as it goes,
in memory that does not grow with its history (:class:`Gauge`: running sums of busy
time, and the series in a bounded number of spans; :class:`Sketch`: the slowdowns'
quantiles to a relative error, in a bounded number of buckets).

>>> utilization([(0.0, 2), (5.0, 4), (10.0, 0)], capacity=4, start=0.0, end=10.0)
0.75
>>> percentile([1.0, 2.0, 3.0, 4.0], 0.95), mean([1.0, 3.0])
(4.0, 2.0)
>>> jain({"a": 0.5, "b": 0.5}, {"a": 1.0, "b": 1.0}), jain({"a": 1.0, "b": 0.0}, {})
(1.0, 0.5)
>>> round(jain({"a": 2 / 3, "b": 1 / 3}, {"a": 2.0, "b": 1.0}), 12)
1.0
>>> gauge = Gauge(width=5.0)
>>> gauge.start(0.0); gauge.set(0.0, 2); gauge.set(5.0, 4); gauge.set(10.0, 0)
>>> gauge.utilization(capacity=4, end=10.0), gauge.series(capacity=4, end=10.0)
(0.75, [(0.0, 0.5), (5.0, 1.0)])
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

Trace = Sequence[tuple[float, float]]

#: Spans a :class:`Gauge`'s series holds at most (and reports at least half of, once
#: its history is longer than that many of its first width).
SPANS = 100
#: The relative error of a :class:`Sketch`'s quantiles, and its most buckets.
SKETCH_ERROR = 0.01
SKETCH_BUCKETS = 2048


#: Below this, an idle or added logical error is float residue (a wait of a few ulps of
#: a cycle, or a sum of shares that cancels), not an error the machine gave: printed as 0.
ERROR_RESIDUE = 1e-15


def error_text(value: float, digits: int = 1) -> str:
    """A logical error for people: ``value`` in ``e`` notation to ``digits`` digits after
    the point, or ``0`` where it is float residue (under :data:`ERROR_RESIDUE`).

    >>> error_text(3e-4), error_text(4e-18), error_text(0.0), error_text(2.5e-15, 0)
    ('3.0e-04', '0', '0', '2e-15')
    """
    return "0" if value < ERROR_RESIDUE else f"{value:.{digits}e}"


def busy(trace: Trace, start: float, end: float) -> float:
    """``integral of busy(t) dt`` over ``[start, end)`` of a step function given by its
    values at each change (``(time, value)``, in time order)."""
    total = 0.0
    for i, (time, value) in enumerate(trace):
        nxt = trace[i + 1][0] if i + 1 < len(trace) else end
        lo, hi = max(time, start), min(nxt, end)
        if hi > lo:
            total += value * (hi - lo)
    return total


def utilization(trace: Trace, *, capacity: float, start: float, end: float) -> float:
    """Busy over available over ``[start, end)`` (0 when nothing is available)."""
    if capacity <= 0 or end <= start:
        return 0.0
    return busy(trace, start, end) / (capacity * (end - start))


def series(
    trace: Trace, *, capacity: float, start: float, end: float, width: float
) -> list[tuple[float, float]]:
    """Utilization per span of ``width`` cycles (an epoch, or a whole number of epochs):
    ``(span start, utilization)``, one pass over the trace.

    >>> series([(0.0, 1), (3.0, 0)], capacity=1, start=0.0, end=4.0, width=2.0)
    [(0.0, 1.0), (2.0, 0.5)]
    """
    if capacity <= 0 or end <= start or width <= 0:
        return []
    spans = max(1, math.ceil((end - start) / width))
    sums = [0.0] * spans
    for i, (time, value) in enumerate(trace):
        nxt = trace[i + 1][0] if i + 1 < len(trace) else end
        lo, hi = max(time, start), min(nxt, end)
        while hi > lo and value:
            k = min(spans - 1, int((lo - start) // width))
            edge = min(hi, start + (k + 1) * width) if k < spans - 1 else hi
            sums[k] += value * (edge - lo)
            lo = edge
    out = []
    for k, total in enumerate(sums):
        lo = start + k * width
        length = min(width, end - lo)
        out.append((lo, total / (capacity * length) if length > 0 else 0.0))
    return out


def mean(values: Sequence[float]) -> float:
    return sum(values) / len(values) if values else 0.0


def percentile(values: Sequence[float], q: float) -> float:
    """The ``q`` quantile by nearest rank: the ``ceil(q n)``-th smallest value."""
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q * len(ordered)) - 1)]


def jain(shares: Mapping[str, float], quotas: Mapping[str, float]) -> float:
    """Jain's index of ``shares`` weighted by ``quotas`` (a tenant not named: weight 1).

    Raises nothing for an empty map: one tenant, or none, is perfectly fair (1.0).
    """
    names = sorted(shares)
    if len(names) <= 1:
        return 1.0
    weights = [quotas.get(n, 1.0) for n in names]
    total = sum(weights)
    xs = [shares[n] / (w / total) for n, w in zip(names, weights, strict=True)]
    square = sum(x * x for x in xs)
    return (sum(xs) ** 2) / (len(xs) * square) if square else 1.0


def stp(alone: Sequence[float], turnaround: Sequence[float]) -> float:
    """Eyerman and Eeckhout's system throughput: ``sum alone_i / turnaround_i``."""
    return sum(a / t for a, t in zip(alone, turnaround, strict=True) if t > 0)


def throughput(jobs: int, makespan_cycles: float, cycle_time_ns: float) -> float:
    """Jobs per second of machine time."""
    seconds = makespan_cycles * cycle_time_ns * 1e-9
    return jobs / seconds if seconds > 0 else 0.0


class Gauge:
    """One resource's busy level, a step function of machine time, integrated as it
    changes, in memory that does not grow with time.

    - the busy integral since :meth:`start` (a running sum): :meth:`utilization`;
    - the busy integral per span, in at most ``spans`` spans from the start; the spans
      are ``width`` cycles (whole epochs) until the history outgrows them, then adjacent
      spans merge two by two and the width doubles: :meth:`series` gives between
      ``spans / 2`` and ``spans`` spans of ``width * 2^k`` cycles over the whole history;
    - with ``keep``, every change too (:attr:`trace`, what :func:`utilization` and
      :func:`series` read): a run of a workload's, which ends.

    Args:
        width: the first width of a span (the machine's epoch).
        spans: the most spans held.
        keep: whether to keep the trace.
    """

    __slots__ = ("bins", "origin", "since", "spans", "total", "trace", "value", "width")

    def __init__(self, *, width: float, spans: int = SPANS, keep: bool = False) -> None:
        self.value = 0.0
        self.since = 0.0
        self.total = 0.0
        self.origin: float | None = None
        self.width = float(width)
        self.spans = max(2, spans)
        self.bins: list[float] = []
        self.trace: list[tuple[float, float]] | None = [(0.0, 0.0)] if keep else None

    def start(self, origin: float) -> None:
        """Count from ``origin`` (the first arrival; an earlier one moves it back: nothing
        is busy before an arrival, so no span holds anything yet)."""
        if self.origin is None or (origin < self.origin and not self.total):
            self.origin = origin

    def set(self, now: float, value: float) -> None:
        """The level is ``value`` from ``now`` on."""
        self._close(now)
        self.value = value
        if self.trace is not None:
            self.trace.append((now, value))

    def add(self, now: float, delta: float) -> None:
        self.set(now, self.value + delta)

    def _close(self, now: float) -> None:
        dt = now - self.since
        if dt > 0 and self.value:
            self.total += self.value * dt
            self.bins, self.width = _binned(
                self.bins, self.width, self._origin(), self.since, now, self.value, self.spans
            )
        if now > self.since:
            self.since = now

    def _origin(self) -> float:
        return self.since if self.origin is None else self.origin

    def busy(self, end: float) -> float:
        """``integral of busy(t) dt`` from the start to ``end`` (not before the last change)."""
        return self.total + self.value * max(0.0, end - self.since)

    def utilization(self, *, capacity: float, end: float) -> float:
        """Busy over available from the start to ``end`` (0 when nothing is available)."""
        origin = self._origin()
        if capacity <= 0 or end <= origin:
            return 0.0
        return self.busy(end) / (capacity * (end - origin))

    def series(self, *, capacity: float, end: float) -> list[tuple[float, float]]:
        """Utilization per span from the start to ``end``: ``(span start, utilization)``."""
        origin = self._origin()
        if capacity <= 0 or end <= origin:
            return []
        bins, width = list(self.bins), self.width
        if self.value and end > self.since:
            bins, width = _binned(bins, width, origin, self.since, end, self.value, self.spans)
        while end - origin > self.spans * width:
            bins, width = _halved(bins), width * 2
        out = []
        for k in range(max(1, math.ceil((end - origin) / width))):
            lo = origin + k * width
            length = min(width, end - lo)
            total = bins[k] if k < len(bins) else 0.0
            out.append((lo, total / (capacity * length) if length > 0 else 0.0))
        return out


def _binned(
    bins: list[float], width: float, origin: float, a: float, b: float, value: float, spans: int
) -> tuple[list[float], float]:
    """``bins`` (spans of ``width`` from ``origin``) with ``value`` busy over ``[a, b)``
    added, merged two by two until ``spans`` of them reach ``b``."""
    while b - origin > spans * width:
        bins, width = _halved(bins), width * 2
    k = max(0, int((a - origin) // width))
    while a < b:
        edge = min(b, origin + (k + 1) * width)
        if len(bins) <= k:
            bins.extend([0.0] * (k + 1 - len(bins)))
        bins[k] += value * (edge - a)
        a = edge
        k += 1
    return bins, width


def _halved(bins: list[float]) -> list[float]:
    return [sum(bins[i : i + 2]) for i in range(0, len(bins), 2)]


class Sketch:
    """Quantiles of a stream of positive values in bounded memory, each within a relative
    error ``error`` of the value it stands for: DDSketch (Masson, Rim and Lee, "DDSketch:
    A Fast and Fully-Mergeable Quantile Sketch with Relative-Error Guarantees", VLDB
    2019).

    A value ``x > 0`` counts in bucket ``i = ceil(log_g x)``, ``g = (1 + a) / (1 - a)``;
    the ``q`` quantile by nearest rank is the bucket holding the ``ceil(q n)``-th smallest
    value, reported as ``2 g^i / (g + 1)``, within ``a x`` of it. At most ``buckets``
    buckets are held: past them the two lowest merge (the low quantiles lose their
    accuracy first: the high ones keep it while the values span less than
    ``g^buckets``, 10^17 at 1% and 2,048 buckets). Values at or below 0 count apart.
    The mean is exact (a running sum).

    >>> sketch = Sketch()
    >>> for x in range(1, 101):
    ...     sketch.add(float(x))
    >>> abs(sketch.quantile(0.95) - 95.0) <= 0.01 * 95.0, sketch.mean
    (True, 50.5)
    """

    __slots__ = ("buckets", "count", "error", "gamma", "limit", "log_gamma", "low", "sum")

    def __init__(self, error: float = SKETCH_ERROR, buckets: int = SKETCH_BUCKETS) -> None:
        self.error = error
        self.gamma = (1 + error) / (1 - error)
        self.log_gamma = math.log(self.gamma)
        self.limit = buckets
        self.buckets: dict[int, int] = {}
        self.low = 0  # values <= 0
        self.count = 0
        self.sum = 0.0

    def add(self, value: float) -> None:
        self.count += 1
        self.sum += value
        if value <= 0:
            self.low += 1
            return
        key = math.ceil(math.log(value) / self.log_gamma)
        self.buckets[key] = self.buckets.get(key, 0) + 1
        if len(self.buckets) > self.limit:
            first, second = sorted(self.buckets)[:2]
            self.buckets[second] += self.buckets.pop(first)

    @property
    def mean(self) -> float:
        return self.sum / self.count if self.count else 0.0

    def quantile(self, q: float) -> float:
        """The ``q`` quantile by nearest rank (0 for no values)."""
        if not self.count:
            return 0.0
        rank = max(1, math.ceil(q * self.count))
        seen = self.low
        if rank <= seen:
            return 0.0
        for key in sorted(self.buckets):
            seen += self.buckets[key]
            if seen >= rank:
                return 2 * self.gamma**key / (self.gamma + 1)
        return 0.0  # pragma: no cover - the counts add up to count
