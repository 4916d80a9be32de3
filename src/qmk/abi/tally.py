"""The job counters of ``/metrics``, counted from the kernel's events as plain data.

One :class:`JobTally` counts jobs that ended by state and tenant, transitions, the
queue and run seconds (histograms), the engine of each completed job, cache hits,
injected logical errors and error codes. The HTTP application counts its kernel's
events in one (inline), and the kernel keeps one for ``q_kernel_load`` (a gateway in a
process of its own); :mod:`qmk.http.metrics` renders either the same way. It lives
below both so the kernel keeps it without importing a wire.

>>> from qmk.abi.probe import JobFacts, KernelEvent
>>> tally = JobTally()
>>> tally.on_event(KernelEvent(seq=1, ts=0.0, event="job", tenant="alice", job_id="j",
...     state="COMPLETED", job=JobFacts(created_at=0.0, started_at=0.5, finished_at=2.0,
...     final=True, engine="stabilizer")))
>>> data = tally.to_json(str)
>>> data["finished"], data["engines"]
([['COMPLETED', 'alice', 1]], [['stabilizer', 1]])
>>> JobTally.from_json(data).to_json(str) == data
True
"""

from __future__ import annotations

import bisect
from collections import Counter
from collections.abc import Callable, Iterable
from typing import Any

from qmk.abi.probe import KernelEvent

#: The upper bounds (seconds) of the queue and run histograms' buckets (+Inf follows).
JOB_BUCKETS: tuple[float, ...] = (
    0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0,
    1800.0,
)  # fmt: skip


class Histogram:
    """Observations in :data:`JOB_BUCKETS` (each bucket's own count, +Inf last) and
    their sum."""

    __slots__ = ("counts", "total")

    def __init__(self, counts: Iterable[int] | None = None, total: float = 0.0) -> None:
        self.counts = list(counts) if counts is not None else [0] * (len(JOB_BUCKETS) + 1)
        self.total = total

    def observe(self, value: float) -> None:
        """Count ``value`` in its bucket (a bound is inclusive, as Prometheus' ``le``)."""
        self.counts[bisect.bisect_left(JOB_BUCKETS, value)] += 1
        self.total += value

    def cumulative(self) -> list[tuple[str, int]]:
        """The buckets as Prometheus exposes them: ``(le, observations <= le)``."""
        out, running = [], 0
        for bound, count in zip((*JOB_BUCKETS, float("inf")), self.counts, strict=True):
            running += count
            out.append(("+Inf" if bound == float("inf") else repr(bound), running))
        return out


#: The counters by name, and the label each key holds (tenant labels are relabelled).
COUNTERS: dict[str, tuple[str, ...]] = {
    "finished": ("state", "tenant"),
    "transitions": ("state",),
    "engines": ("engine",),
    "cache_hits": ("tenant",),
    "injected": ("tenant",),
    "errors": ("code", "tenant"),
}
#: The histograms by name, and their one label.
HISTOGRAMS: dict[str, str] = {"queue_seconds": "tenant", "run_seconds": "state"}


class JobTally:
    """The job counters of one kernel (module docstring); tenants by their names."""

    def __init__(self) -> None:
        self.counters: dict[str, Counter[tuple[str, ...]]] = {name: Counter() for name in COUNTERS}
        self.histograms: dict[str, dict[str, Histogram]] = {name: {} for name in HISTOGRAMS}

    def _observe(self, name: str, key: str, value: float) -> None:
        found = self.histograms[name].get(key)
        if found is None:
            found = self.histograms[name][key] = Histogram()
        found.observe(value)

    def on_event(self, event: KernelEvent) -> None:
        """Count one kernel event (only a job's transitions count)."""
        if not event.is_job or event.state is None:
            return
        counters = self.counters
        counters["transitions"][(event.state,)] += 1
        facts = event.job
        if facts is None:
            return
        tenant = event.tenant or ""
        if event.state == "RUNNING" and facts.queued_s is not None:
            self._observe("queue_seconds", tenant, facts.queued_s)
        if not facts.final:
            return
        counters["finished"][(event.state, tenant)] += 1
        if facts.error_code is not None:
            counters["errors"][(facts.error_code, tenant)] += 1
        if event.record.get("cached_from") is not None:
            counters["cache_hits"][(tenant,)] += 1
        if facts.run_s is not None:
            self._observe("run_seconds", event.state, facts.run_s)
        if facts.engine is not None:
            counters["engines"][(facts.engine,)] += 1
        if facts.injected_logical_errors:
            counters["injected"][(tenant,)] += facts.injected_logical_errors

    def to_json(self, label: Callable[[str], str]) -> dict[str, Any]:
        """The counters as plain JSON, each tenant shown as ``label`` gives it: a counter
        is ``[[*labels, value], ...]``, a histogram ``[[label, counts, sum], ...]``
        (sorted, so equal tallies give equal JSON)."""
        out: dict[str, Any] = {}
        for name, keys in COUNTERS.items():
            merged: Counter[tuple[str, ...]] = Counter()
            for key, value in self.counters[name].items():
                shown = tuple(
                    label(k) if n == "tenant" else k for n, k in zip(keys, key, strict=True)
                )
                merged[shown] += value
            out[name] = [[*key, value] for key, value in sorted(merged.items())]
        for name, key_name in HISTOGRAMS.items():
            rows: dict[str, Histogram] = {}
            for which, hist in self.histograms[name].items():
                row = label(which) if key_name == "tenant" else which
                into = rows.setdefault(row, Histogram())
                into.counts = [a + b for a, b in zip(into.counts, hist.counts, strict=True)]
                into.total += hist.total
            out[name] = [[key, h.counts, h.total] for key, h in sorted(rows.items())]
        return out

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> JobTally:
        """The tally of :meth:`to_json`'s JSON (its tenants as they were shown)."""
        tally = cls()
        for name in COUNTERS:
            for row in data.get(name, ()):
                tally.counters[name][tuple(row[:-1])] = row[-1]
        for name in HISTOGRAMS:
            for key, counts, total in data.get(name, ()):
                tally.histograms[name][key] = Histogram(counts, total)
        return tally


__all__ = ["COUNTERS", "HISTOGRAMS", "JOB_BUCKETS", "Histogram", "JobTally"]
