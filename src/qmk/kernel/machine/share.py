"""A module's T states shared among its jobs: max-min fair, with a virtual clock.

The jobs of a module that draw T states now each ask for ``d = t * (their cycle rate)``
states a cycle. While the module can deliver all they ask for, each gets its ``d``. When
it cannot (``sum d > capacity``: the factories' rate when the store is empty, the
routing lanes otherwise), shares are max-min fair: the jobs asking less than a level
``L`` get what they ask, the others ``L`` each, with ``L`` the level that spends the
capacity (water-filling).

Jobs at the level ("capped") all draw at the same rate, so their progress is one
**virtual clock** ``V`` (states drawn by each capped job since the clock started, which
runs at ``L`` states a cycle): a capped job's step ends when ``V`` reaches the value it
was given on joining, whatever happens to ``L`` meanwhile. A change of ``L`` (a job
arriving or leaving, the store running dry) then costs no per-job work; only jobs whose
demand the level crosses move between capped and uncapped (jobs of equal demand move
together). That is what keeps a saturated module's events at ``O(log n)``: the
generalized processor sharing simulation of fair queueing.

A capped job's lost time (its time beyond its private-machine cycles) is a wait for the
factories or for routing, in proportion to the time the module spent in each state.

>>> share = FactoryShare(rate=0.5, store=0, lanes=4)
>>> share.level_for({1.0: 2}, 0.5)
0.25
"""

from __future__ import annotations

import heapq
import math
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from qmk.kernel.machine.jobs import Job
    from qmk.kernel.machine.spec import ModuleSpec

INF = math.inf
#: A store below this many states is empty (the fluid model's rounding).
EMPTY = 1e-9


class Host(Protocol):
    """What a share needs of the scheduler that holds it."""

    now: float

    def push_event(self, time: float, kind: str, obj: object, version: int) -> None: ...

    def rate_job(self, job: Job) -> None:
        """Settle an uncapped job and set its own rate (it gets all it asks for)."""

    def settle_job(self, job: Job) -> None:
        """Bring an uncapped job's progress up to now at its current rate."""

    def trace_t(self, delta: float) -> None:
        """The factories' busy rate (states drawn a cycle, each module's at most its
        factories' rate) changed by ``delta``."""


class FactoryShare:
    """One module's factories, store, routing lanes and the jobs drawing on them."""

    __slots__ = (
        "acc",
        "capped",
        "cause",
        "consume",
        "groups",
        "heap",
        "index",
        "lanes",
        "last",
        "level",
        "pending",
        "rate",
        "state",
        "storage_free",
        "store",
        "store_cap",
        "vclock",
        "version",
    )

    def __init__(
        self, *, rate: float, store: int, lanes: int, index: int = 0, storage: int = 0
    ) -> None:
        self.index = index
        self.rate = rate
        self.store = float(store)
        self.store_cap = float(store)
        self.lanes = float(lanes)
        self.storage_free = storage
        self.groups: dict[float, dict[Job, None]] = {}  # demand -> jobs asking it
        self.state: dict[float, bool] = {}  # demand -> whether that group is capped
        self.capped: dict[Job, None] = {}
        self.pending: list[Job] = []
        self.heap: list[tuple[float, int, Job]] = []
        self.level = INF
        self.vclock = 0.0
        self.consume = 0.0
        self.last = 0.0
        self.cause = "factory"
        self.acc = {"factory": 0.0, "routing": 0.0}
        self.version = 0

    @classmethod
    def of(cls, module: ModuleSpec) -> FactoryShare:
        """``module``'s factories, store, routing lanes and storage, none of them used."""
        return cls(
            rate=module.factory.rate,
            store=module.factory.store,
            lanes=module.routing_lanes,
            index=module.index,
            storage=module.storage_tiles,
        )

    # ------------------------------------------------------------------ time

    def advance(self, now: float) -> None:
        """Bring the store, the virtual clock and the causes' clocks up to ``now``."""
        dt = now - self.last
        if dt <= 0:
            return
        level = self.store + (self.rate - self.consume) * dt
        self.store = min(self.store_cap, max(0.0, level))
        if self.capped:
            self.vclock += self.level * dt
        self.acc[self.cause] += dt
        self.last = now

    @staticmethod
    def level_for(groups: dict[float, int], capacity: float) -> float:
        """The water level: each demand at most it, the capacity spent (INF: all fit)."""
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

    # ------------------------------------------------------------------ jobs

    def join(self, host: Host, job: Job, demand: float) -> None:
        """``job`` starts drawing ``demand`` states a cycle."""
        self.advance(host.now)
        job.demand = demand
        self.groups.setdefault(demand, {})[job] = None
        self.pending.append(job)
        self.reshare(host)

    def leave(self, host: Host, job: Job) -> None:
        """``job`` stops drawing (its step ended, or its demand changes)."""
        self.advance(host.now)
        self.settle(host, job)
        group = self.groups.get(job.demand)
        if group is not None:
            group.pop(job, None)
            if not group:
                del self.groups[job.demand]
                self.state.pop(job.demand, None)
        if job.capped:
            del self.capped[job]
            job.capped = False
        job.t_alloc = 0.0
        self.reshare(host)

    def settle(self, host: Host, job: Job) -> None:
        """Bring ``job``'s progress and waits up to now."""
        if not job.capped:
            host.settle_job(job)
            return
        drawn = self.vclock - job.vjoin
        progress = drawn / job.t
        dt = host.now - job.tjoin
        lost = dt - progress * job.c
        if lost > 0:
            routing = self.acc["routing"] - job.acc0[0]
            factory = self.acc["factory"] - job.acc0[1]
            spent = routing + factory
            if spent > 0:
                job.wait("routing", lost * routing / spent)
                job.wait("factory", lost * factory / spent)
            else:
                job.wait(self.cause, lost)
        job.done += progress
        job.t_used += drawn
        job.vjoin = self.vclock
        job.tjoin = host.now
        job.last = host.now
        job.acc0 = (self.acc["routing"], self.acc["factory"])

    def _cap(self, host: Host, job: Job) -> None:
        host.settle_job(job)
        job.version += 1  # its own end event no longer holds
        job.capped = True
        job.vjoin = self.vclock
        job.tjoin = host.now
        job.acc0 = (self.acc["routing"], self.acc["factory"])
        job.vfinish = self.vclock + max(0.0, job.r - job.done) * job.t
        self.capped[job] = None
        heapq.heappush(self.heap, (job.vfinish, job.seq, job))

    def _uncap(self, host: Host, job: Job) -> None:
        self.settle(host, job)
        del self.capped[job]
        job.capped = False
        job.t_alloc = job.demand
        host.rate_job(job)

    def reshare(self, host: Host) -> None:
        """Level, moves between capped and uncapped, the next end, the store's event."""
        self.advance(host.now)
        if self.store > EMPTY or self.lanes < self.rate:
            capacity, cause = self.lanes, "routing"
        else:
            capacity, cause = self.rate, "factory"
        if cause != self.cause:
            for job in self.capped:  # their waits so far were of the other cause
                self.settle(host, job)
            self.cause = cause
        counts = {d: len(jobs) for d, jobs in self.groups.items()}
        level = self.level_for(counts, capacity)
        self.level = level
        new = set(self.pending)
        for demand, jobs in self.groups.items():
            capped = demand > level
            if self.state.get(demand, capped) != capped:
                for job in list(jobs):
                    if job in new:
                        continue
                    if capped:
                        self._cap(host, job)
                    else:
                        self._uncap(host, job)
            self.state[demand] = capped
        pending, self.pending = self.pending, []
        for job in pending:
            if job.demand > level:
                self._cap(host, job)
            else:
                job.t_alloc = job.demand
                host.rate_job(job)
        self._schedule(host, capacity)

    def _schedule(self, host: Host, capacity: float) -> None:
        self.version += 1
        total = sum(d * len(j) for d, j in self.groups.items())
        consume = min(total, capacity)
        if consume != self.consume:
            # the factories' work: states drawn beyond their rate come from the store,
            # made before (its states at the start, an idle machine's)
            host.trace_t(min(consume, self.rate) - min(self.consume, self.rate))
            self.consume = consume
        if self.store > EMPTY and consume > self.rate:
            at = host.now + self.store / (consume - self.rate)
            host.push_event(_snap(at), "empty", self, self.version)
        heap = self.heap
        while heap and (not heap[0][2].capped or heap[0][0] != heap[0][2].vfinish):
            heapq.heappop(heap)
        if heap and self.level > 0 and self.level != INF:
            at = host.now + max(0.0, heap[0][0] - self.vclock) / self.level
            host.push_event(_snap(at), "capped-end", self, self.version)

    def next_finished(self) -> Job | None:
        """The capped job whose step ends at the virtual clock's value now."""
        heap = self.heap
        while heap and (not heap[0][2].capped or heap[0][0] != heap[0][2].vfinish):
            heapq.heappop(heap)
        if not heap:
            return None
        return heapq.heappop(heap)[2]

    def empty(self, host: Host) -> None:
        """The store ran dry now."""
        self.advance(host.now)
        self.store = 0.0
        self.reshare(host)

    def regroup(self, host: Host, demands: dict[Job, float]) -> None:
        """Every job's demand changed (the decoder's throttle): settle and place again."""
        self.advance(host.now)
        for job in list(self.capped):
            self.settle(host, job)
            job.capped = False
        for jobs in self.groups.values():
            for job in jobs:
                if not job.capped:
                    host.settle_job(job)
        self.capped.clear()
        self.groups.clear()
        self.state.clear()
        self.pending = []
        for job, demand in demands.items():
            job.demand = demand
            self.groups.setdefault(demand, {})[job] = None
            self.pending.append(job)
        self.reshare(host)

    def users(self) -> list[Job]:
        return [job for jobs in self.groups.values() for job in jobs]

    @property
    def starved(self) -> bool:
        """Whether some job gets fewer states than it asks for."""
        return bool(self.capped)


def _snap(time: float) -> float:
    """A time within 1e-7 of a whole cycle is that cycle (so a fluid end computed with
    rounding lands on the boundary it should)."""
    near = round(time)
    return float(near) if abs(time - near) < 1e-7 else time
