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

>>> utilization([(0.0, 2), (5.0, 4), (10.0, 0)], capacity=4, start=0.0, end=10.0)
0.75
>>> percentile([1.0, 2.0, 3.0, 4.0], 0.95), mean([1.0, 3.0])
(4.0, 2.0)
>>> jain({"a": 0.5, "b": 0.5}, {"a": 1.0, "b": 1.0}), jain({"a": 1.0, "b": 0.0}, {})
(1.0, 0.5)
>>> round(jain({"a": 2 / 3, "b": 1 / 3}, {"a": 2.0, "b": 1.0}), 12)
1.0
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

Trace = Sequence[tuple[float, float]]


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
