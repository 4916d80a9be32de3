"""The run queue: fair share across tenants, priority and deadline within a tenant.

Each tenant has its own queue ordered by (priority high first, deadline early first, then
submission order). :meth:`FairQueue.select` hands out jobs one at a time to the tenant with
the lowest *usage* (jobs started so far) whose best job may run now, so a tenant that
floods the queue gets one turn per round like everybody else. A tenant that comes back
after being idle starts at the lowest usage of the tenants already waiting: idle time is
not banked as credit. (Usage counts jobs, not CPU seconds: the fairness is in turns.)

>>> from types import SimpleNamespace as J
>>> q = FairQueue()
>>> for i in range(5):
...     q.push(J(job_id=f"a{i}", tenant="a", priority=5, deadline=None, seq=i))
>>> q.push(J(job_id="b0", tenant="b", priority=5, deadline=None, seq=9))
>>> [j.job_id for j in q.select(lambda job: True, 3)]
['a0', 'b0', 'a1']
"""

from __future__ import annotations

import heapq
import math
from collections import deque
from collections.abc import Callable, Iterator
from typing import Any, Protocol


class Queued(Protocol):
    """What the queue needs of a job."""

    job_id: str
    tenant: str
    seq: int

    @property
    def priority(self) -> int: ...

    @property
    def deadline(self) -> float | None: ...


def _key(job: Any) -> tuple[int, float, int]:
    deadline = job.deadline
    return (-job.priority, math.inf if deadline is None else deadline, job.seq)


#: A queued job's place: its key (:func:`_key`) and its id, as one flat tuple (a nested
#: key costs a tuple's comparison more at each step of a heap).
_Entry = tuple[int, float, int, str]


def _entry(job: Any) -> _Entry:
    deadline = job.deadline
    return (-job.priority, math.inf if deadline is None else deadline, job.seq, job.job_id)


class FairQueue:
    """Per-tenant priority queues served lowest-usage-first.

    A tenant's queue is two: the jobs pushed in the order of their keys (a run of one
    priority without deadlines comes in ``seq`` order: each one after the last), a
    sorted line taken from its front; and the others, a heap. Its best job is the better
    of the two fronts: the order a single heap gives, without the sifting of a heap of
    thousands of entries at each job (each step a comparison of entries spread over the
    heap's memory)."""

    def __init__(self) -> None:
        self._heaps: dict[str, list[_Entry]] = {}
        self._lines: dict[str, deque[_Entry]] = {}
        self._jobs: dict[str, Any] = {}
        self._counts: dict[str, int] = {}
        self.usage: dict[str, float] = {}

    def __len__(self) -> int:
        return len(self._jobs)

    def __contains__(self, job_id: object) -> bool:
        return job_id in self._jobs

    def __iter__(self) -> Iterator[Any]:
        return iter(list(self._jobs.values()))

    def count(self, tenant: str) -> int:
        """How many of ``tenant``'s jobs wait."""
        return self._counts.get(tenant, 0)

    def push(self, job: Any) -> None:
        """Queue ``job`` (a job already queued is left as it is)."""
        if job.job_id in self._jobs:
            return
        tenant = job.tenant
        if self._first(tenant) is None:
            waiting = [self.usage.get(t, 0.0) for t in self._heaps if self._first(t) is not None]
            floor = min(waiting) if waiting else max(self.usage.values(), default=0.0)
            self.usage[tenant] = max(self.usage.get(tenant, 0.0), floor)
        self._jobs[job.job_id] = job
        self._counts[tenant] = self._counts.get(tenant, 0) + 1
        entry = _entry(job)
        line = self._lines.get(tenant)
        if line is None:
            line = self._lines[tenant] = deque()
            self._heaps[tenant] = []
        if not line or line[-1] < entry:
            line.append(entry)
        else:
            heapq.heappush(self._heaps[tenant], entry)

    def remove(self, job_id: str) -> Any | None:
        """Take ``job_id`` out of the queue (lazily); return it, or None if not queued."""
        job = self._jobs.pop(job_id, None)
        if job is not None:
            self._counts[job.tenant] -= 1
        return job

    def _first(self, tenant: str) -> _Entry | None:
        """``tenant``'s best entry of a job still queued (the entries of jobs gone from
        the fronts dropped), or None."""
        jobs = self._jobs
        line = self._lines.get(tenant)
        while line and line[0][3] not in jobs:
            line.popleft()
        heap = self._heaps.get(tenant)
        while heap and heap[0][3] not in jobs:
            heapq.heappop(heap)
        if line:
            return heap[0] if heap and heap[0] < line[0] else line[0]
        return heap[0] if heap else None

    def head(self, tenant: str) -> Any | None:
        """``tenant``'s best waiting job."""
        first = self._first(tenant)
        return None if first is None else self._jobs[first[3]]

    def heads(self) -> list[Any]:
        """Each waiting tenant's best job."""
        return [h for h in (self.head(t) for t in list(self._heaps)) if h is not None]

    def best(self) -> Any | None:
        """The waiting job of highest priority (earliest deadline, oldest) of any tenant."""
        return min(self.heads(), key=_key, default=None)

    def select(self, can_run: Callable[[Any], bool], limit: int) -> list[Any]:
        """Up to ``limit`` jobs to start now, in fair-share order; they leave the queue.

        ``can_run(job)`` says whether a job fits now (tenant limits, machine inventory);
        it is asked about each tenant's best job only, and it may count the jobs already
        chosen in this call (the caller reserves their resources inside ``can_run``).
        """
        chosen: list[Any] = []
        blocked: set[str] = set()
        usage = self.usage
        while len(chosen) < limit:
            # the waiting tenant of least (usage, best job's seq); the first of equals
            tenant, job, least = "", None, None
            for name in self._heaps:
                if name in blocked:
                    continue
                head = self.head(name)
                if head is None:
                    continue
                rank = (usage.get(name, 0.0), head.seq)
                if least is None or rank < least:
                    tenant, job, least = name, head, rank
            if job is None:
                break
            if not can_run(job):
                blocked.add(tenant)
                continue
            self.remove(job.job_id)
            usage[tenant] = usage.get(tenant, 0.0) + 1.0
            chosen.append(job)
        return chosen


__all__ = ["FairQueue", "Queued"]
