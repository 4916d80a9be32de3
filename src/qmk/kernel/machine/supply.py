"""A module's magic-state supply: its factories, their store, and the bus to the jobs.

Three things limit how fast a job draws T states. Each is a fluid rate, constant
between two events.

- **The routing bus.** The module's bus row is cut into segments. A job is served by the
  segment beside the middle of its tiles. A segment carries ``lanes / segments`` states a
  cycle. Neighbours on one segment share it by tenant (weighted max-min by quota
  weight), then a tenant's neighbours max-min (water-filling). So a job's *demand* on
  the factories is what it wants, less what its segment cannot carry.
- **The store.** While it holds states, every job gets its demand. The store drains at
  what they draw beyond the factories' rate.
- **The factories.** With the store empty, the module gives ``rate`` states a cycle. A
  rule of the scheduling policy decides who gets them:

  - ``fair``: tenants by their quota weights (weighted max-min), then a tenant's jobs
    max-min. A tenant's capped jobs advance on one virtual clock (generalized processor
    sharing), so a saturated tenant costs no per-job work per event.
  - ``cost``: the next state goes to the job whose waiting costs most. That cost is its
    live patches, since each idles at the same logical error per cycle. Ties go by
    arrival.

A job's lost time is what it takes beyond its private cycles. It is a ``routing`` wait
where its segment held the job below its want. It is a ``factory`` wait where the
factories held it below its demand.

>>> level_for({1.0: 2}, 0.5)
0.25
>>> weighted_fill({"a": 3.0, "b": 1.0}, {"a": 1.0, "b": 1.0}, 2.0)
{'a': 1.0, 'b': 1.0}
"""

from __future__ import annotations

import bisect
import heapq
import math
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from qmk.kernel.machine.jobs import MachineJob
    from qmk.kernel.machine.spec import ModuleSpec

INF = math.inf
#: A store below this many states is empty (the fluid model's rounding).
EMPTY = 1e-9


class Host(Protocol):
    """What a supply needs of what holds it (:class:`~qmk.kernel.machine.rates.Rates`)."""

    @property
    def now(self) -> float: ...

    def push_event(self, time: float, kind: str, obj: object, version: int) -> None: ...

    def rate_job(self, job: MachineJob) -> None:
        """Settle an uncapped job and set its own rate from ``job.t_alloc``."""

    def settle_job(self, job: MachineJob) -> None:
        """Bring an uncapped job's progress up to now at its current rate."""

    def trace_t(self, delta: float) -> None:
        """The factories' busy rate (states made and drawn a cycle) changed by ``delta``."""


def level_for(groups: Mapping[float, int], capacity: float) -> float:
    """The water level: each demand at most it, the capacity spent (INF: all fit).

    >>> level_for({1.0: 1, 5.0: 2}, 7.0)
    3.0
    """
    if sum([d * n for d, n in groups.items()]) <= capacity:
        return INF
    left, count = capacity, sum(groups.values())
    for demand, n in sorted(groups.items()):  # (keys are distinct: sorted by demand)
        if demand * count > left:
            return left / count
        left -= demand * n
        count -= n
    return INF


def weighted_fill(
    demands: Mapping[str, float], weights: Mapping[str, float], capacity: float
) -> dict[str, float]:
    """Weighted max-min shares of ``capacity``: each gets its demand, or ``weight x L``
    for the level ``L`` that spends the capacity (a weight not given is 1).

    >>> weighted_fill({"a": 5.0, "b": 5.0, "c": 0.5}, {"a": 2.0}, 6.5)
    {'a': 4.0, 'b': 2.0, 'c': 0.5}
    """
    if sum(demands.values()) <= capacity:
        return dict(demands)
    get = weights.get
    # by demand over weight, then name (names are distinct: the sort reads no further)
    order = sorted([(d / get(k, 1.0), k, d, get(k, 1.0)) for k, d in demands.items()])
    out: dict[str, float] = {}
    left = capacity
    weight_left = sum([w for _, _, _, w in order])
    for _, key, demand, w in order:
        share = left * w / weight_left
        if demand <= share:  # (min(demand, share), as min picks it)
            share = demand
        out[key] = share
        left -= share
        weight_left -= w
    return {k: out[k] for k in demands}


class Bus:
    """A module's routing bus: segments beside the job tiles, each shared by its neighbours.

    Args:
        segments: how many stretches the bus row is cut into.
        lanes: T states a cycle the whole bus carries (0: no limit).
        tiles: the module's job tiles (a job's middle tile names its segment).
        weights: the tenants' quota weights (a segment is shared by tenant first).
    """

    __slots__ = ("cap", "segments", "tiles", "users", "weights")

    def __init__(
        self,
        *,
        segments: int,
        lanes: float,
        tiles: int,
        weights: Mapping[str, float] | None = None,
    ) -> None:
        self.weights = dict(weights or {})
        self.segments = max(1, segments)
        self.cap = lanes / self.segments if lanes > 0 else INF
        self.tiles = max(1, tiles)
        #: the jobs drawing on each segment (only segments in use: a bus costs nothing
        #: until jobs draw on it)
        self.users: dict[int, dict[MachineJob, None]] = {}

    def segment_of(self, offset: int, tiles: int) -> int:
        """The segment beside the middle tile of a job at ``offset`` of ``tiles`` tiles."""
        middle = offset + tiles // 2
        return min(self.segments - 1, middle * self.segments // self.tiles)

    def shares(self, segment: int) -> dict[MachineJob, float]:
        """Each user's states a cycle from ``segment``: tenants by quota weight
        (weighted max-min), then a tenant's users max-min of what they want."""
        users = self.users.get(segment)
        if not users:
            return {}
        if len(users) == 1:  # alone on its segment (most jobs): max_min's share at once
            (job,) = users
            return {job: job.want if job.want <= self.cap else self.cap}
        by_tenant: dict[str, list[MachineJob]] = {}
        for job in users:
            by_tenant.setdefault(job.tenant, []).append(job)
        if len(by_tenant) == 1:
            return dict(zip(users, max_min([job.want for job in users], self.cap), strict=True))
        wants = {name: sum([job.want for job in jobs]) for name, jobs in by_tenant.items()}
        caps = weighted_fill(wants, self.weights, self.cap)
        out: dict[MachineJob, float] = {}
        for name, jobs in by_tenant.items():
            out.update(zip(jobs, max_min([job.want for job in jobs], caps[name]), strict=True))
        return {job: out[job] for job in users}


def max_min(wants: list[float], capacity: float) -> list[float]:
    """Max-min shares of ``capacity`` (water-filling): each gets what it wants, or the
    level that spends the capacity (a bus segment among its neighbours).

    >>> max_min([0.25, 1.0, 1.0], 1.0)
    [0.25, 0.375, 0.375]
    """
    if sum(wants) <= capacity:
        return list(wants)
    return max_min_past(wants, capacity)


def max_min_past(wants: list[float], capacity: float) -> list[float]:
    """:func:`max_min` of ``wants`` that pass ``capacity`` in all (the caller summed
    them): the level's shares at once.

    The level is :func:`level_for`'s, its arithmetic step for step, walked over the
    wants sorted (a run of equal wants is one of its groups), not over a table of them
    counted. Its check that the groups' sum passes the capacity is made only where the
    wants' own sum is within rounding of it: elsewhere both sums pass it alike."""
    first, n = wants[0], len(wants)
    if wants.count(first) == n:  # (neighbours alike, most often: level_for's level at once)
        level = capacity / n if first * n > capacity else INF
        return [first if first < level else level] * n
    if len(set(wants)) < n and not sum(wants) > capacity * (1 + 1e-12):
        level = level_for(_counts(wants), capacity)
    else:
        level, left, count = INF, capacity, n
        ordered = sorted(wants)
        i = 0
        while i < n:
            want = ordered[i]
            j = bisect.bisect_right(ordered, want, i + 1)
            if want * count > left:
                level = left / count
                break
            left -= want * (j - i)
            count -= j - i
            i = j
    return [want if want < level else level for want in wants]


def _counts(values: list[float]) -> dict[float, int]:
    out: dict[float, int] = {}
    for v in values:
        out[v] = out.get(v, 0) + 1
    return out


class TenantQueue:
    """One tenant's jobs drawing on a module under the ``fair`` rule: max-min among them,
    capped jobs on one virtual clock (module docstring)."""

    __slots__ = (
        "_demand",
        "alloc",
        "capped",
        "changed",
        "groups",
        "heap",
        "level",
        "module",
        "pending",
        "state",
        "tenant",
        "vclock",
        "version",
    )

    def __init__(self, module: ModuleSupply, tenant: str) -> None:
        self.module = module
        self.tenant = tenant
        self.groups: dict[float, dict[MachineJob, None]] = {}  # demand -> jobs asking it
        self.state: dict[float, bool] = {}  # demand -> whether that group is capped
        self.capped: dict[MachineJob, None] = {}
        self.pending: list[MachineJob] = []
        self.heap: list[tuple[float, int, MachineJob]] = []
        self.level = INF
        self.alloc = INF
        self.vclock = 0.0
        self.version = 0
        #: whether its groups changed since the factories were last shared, and their
        #: demand in all while they have not (None: to be summed again)
        self.changed = True
        self._demand: float | None = None

    @property
    def demand(self) -> float:
        demand = self._demand
        if demand is None:
            demand = self._demand = sum([d * len(jobs) for d, jobs in self.groups.items()])
        return demand

    def touch(self) -> None:
        """Its groups changed: share it again, its demand summed again."""
        self.changed = True
        self._demand = None

    def advance(self, now: float) -> None:
        """The module brought up to ``now`` (this queue's clock with it)."""
        self.module.advance(now)

    def next_finished(self) -> MachineJob | None:
        """The capped job whose step ends at the virtual clock's value now."""
        heap = self.heap
        while heap and (not heap[0][2].capped or heap[0][0] != heap[0][2].vfinish):
            heapq.heappop(heap)
        if not heap:
            return None
        return heapq.heappop(heap)[2]


class ModuleSupply:
    """One module's factories, store, bus and the jobs drawing on them (module docstring).

    Args:
        rate: T states a cycle the factories make.
        store: states the store holds (full at the start: an idle machine filled it).
        bus: the routing bus.
        rule: ``fair`` or ``cost`` (who gets the states the factories cannot give all).
        weights: the tenants' quota weights (``fair``).
        index: the module's number.
        storage: its storage tiles.
    """

    __slots__ = (
        "bound_time",
        "bus",
        "consume",
        "costed",
        "fresh",
        "index",
        "last",
        "order",
        "queues",
        "rate",
        "rule",
        "storage_free",
        "store",
        "store_cap",
        "version",
        "wanted",
        "weights",
    )

    def __init__(
        self,
        *,
        rate: float,
        store: int,
        bus: Bus,
        rule: str = "fair",
        weights: Mapping[str, float] | None = None,
        index: int = 0,
        storage: int = 0,
    ) -> None:
        self.index = index
        self.rate = rate
        self.store = float(store)
        self.store_cap = float(store)
        self.bus = bus
        self.rule = rule
        self.weights = dict(weights or {})
        self.storage_free = storage
        self.queues: dict[str, TenantQueue] = {}
        self.costed: dict[MachineJob, None] = {}  # the cost rule's users
        self.order: list[MachineJob] = []  # they, in the cost rule's order (_cost_key)
        self.fresh: set[MachineJob] = set()  # the cost rule's users not yet rated
        self.consume = 0.0
        self.last = 0.0
        self.version = 0
        #: what its jobs want a cycle in all, and the cycles so far the factories could
        #: not feed those wants (a shortfall then is the factories', not the bus's)
        self.wanted = 0.0
        self.bound_time = 0.0

    @classmethod
    def of(
        cls, module: ModuleSpec, *, rule: str = "fair", weights: Mapping[str, float] | None = None
    ) -> ModuleSupply:
        """``module``'s factories, store, bus and storage, none of them used."""
        return cls(
            rate=module.factory.rate,
            store=module.factory.store,
            bus=Bus(
                segments=module.routing_segments,
                lanes=module.routing_lanes,
                tiles=module.tiles,
                weights=weights,
            ),
            rule=rule,
            weights=weights,
            index=module.index,
            storage=module.storage_tiles,
        )

    @property
    def factory_bound(self) -> bool:
        """Whether the factories cannot feed what the jobs want (the store is empty)."""
        return self.store <= EMPTY and self.wanted > self.rate * (1 + 1e-12)

    @property
    def capacity(self) -> float:
        """States a cycle the module gives now: all asked while the store holds some."""
        return INF if self.store > EMPTY else self.rate

    # ------------------------------------------------------------------ time

    def advance(self, now: float) -> None:
        """Bring the store and the tenants' virtual clocks up to ``now``."""
        dt = now - self.last
        if dt <= 0:
            return
        if self.factory_bound:
            self.bound_time += dt
        level = self.store + (self.rate - self.consume) * dt
        self.store = min(self.store_cap, max(0.0, level))
        for queue in self.queues.values():
            if queue.capped:
                queue.vclock += queue.level * dt
        self.last = now

    # ------------------------------------------------------------------ jobs

    def join(self, host: Host, job: MachineJob, want: float) -> None:
        """``job`` starts drawing: it wants ``want`` states a cycle (its bus segment may
        carry less)."""
        self.advance(host.now)
        job.want = want
        job.bound0 = self.bound_time
        self.wanted += want
        segment = self.bus.segment_of(job.pos_in_module, job.tiles)
        job.segment = segment
        self.bus.users.setdefault(segment, {})[job] = None
        self._rebus(host, segment, job)

    def leave(self, host: Host, job: MachineJob) -> None:
        """``job`` stops drawing (its step ended, or what it wants changes)."""
        self.advance(host.now)
        self._drop(host, job)
        self.wanted -= job.want
        segment = job.segment
        users = self.bus.users.get(segment)
        if users is not None:
            users.pop(job, None)
            if not users:
                del self.bus.users[segment]
        job.segment = -1
        job.t_alloc = job.want = job.demand = 0.0
        self._rebus(host, segment, None)

    def pause(self, host: Host, job: MachineJob) -> None:
        """Take ``job`` out of the factories' sharing, its progress settled, its place
        on its bus segment and its want kept: its step changes, then it
        :meth:`rejoin` s (the factories are not shared in between)."""
        self.advance(host.now)
        self._drop(host, job)

    def rejoin(self, host: Host, job: MachineJob, want: float) -> None:
        """``job``, :meth:`pause` d, draws again at ``want``: its segment and the
        factories are shared again, as :meth:`leave` then :meth:`join` end up."""
        self.wanted += want - job.want
        job.want = want
        job.bound0 = self.bound_time
        self._rebus(host, job.segment, job)

    def _drop(self, host: Host, job: MachineJob) -> None:
        """Take ``job`` out of the factories' sharing, its progress settled."""
        if self.rule == "cost":
            host.settle_job(job)
            if self.costed.pop(job, False) is None:
                self.order.remove(job)
            self.fresh.discard(job)
            return
        queue = self.queues.get(job.tenant)
        if queue is None:
            return
        self.settle(host, job)
        queue.touch()
        group = queue.groups.get(job.demand)
        if group is not None:
            group.pop(job, None)
            if not group:
                del queue.groups[job.demand]
                queue.state.pop(job.demand, None)
        if job.capped:
            del queue.capped[job]
            job.capped = False
        if job in queue.pending:
            queue.pending.remove(job)
        if not queue.groups:  # gone: its events no longer hold
            queue.version += 1
            queue.heap.clear()
            del self.queues[job.tenant]

    def _add(self, job: MachineJob, demand: float) -> None:
        """Put ``job`` into the factories' sharing, asking ``demand``."""
        job.demand = demand
        if self.rule == "cost":
            if job not in self.costed:
                bisect.insort(self.order, job, key=_cost_key)
            self.costed[job] = None
            self.fresh.add(job)
            return
        queue = self.queues.get(job.tenant)
        if queue is None:
            queue = self.queues[job.tenant] = TenantQueue(self, job.tenant)
        queue.groups.setdefault(demand, {})[job] = None
        queue.touch()
        queue.pending.append(job)

    def _rebus(self, host: Host, segment: int, joined: MachineJob | None) -> None:
        """Share ``segment`` again; the jobs whose demand on the factories changed (and
        ``joined``) are taken out and put back with it; then share the factories."""
        users = self.bus.users.get(segment)
        if users is not None and len(users) == 1 and joined is not None:
            # alone on its segment (most jobs): Bus.shares' share at once
            cap = self.bus.cap
            self._add(joined, joined.want if joined.want <= cap else cap)
        elif users:
            for job, share in self.bus.shares(segment).items():
                if job is joined:
                    self._add(job, share)
                elif share != job.demand:
                    self._drop(host, job)
                    self._add(job, share)
        self.reshare(host)

    def settle(self, host: Host, job: MachineJob) -> None:
        """Bring ``job``'s progress and waits up to now."""
        if not job.capped:
            host.settle_job(job)
            return
        queue = self.queues[job.tenant]
        drawn = queue.vclock - job.vjoin
        progress = drawn / job.t
        dt = host.now - job.tjoin
        lost = dt - progress * job.c
        if lost > 0:
            split_wait(job, dt, lost, self.bound_time - job.bound0)
        job.bound0 = self.bound_time
        job.done += progress
        job.t_used += drawn
        job.vjoin = queue.vclock
        job.tjoin = host.now
        job.last = host.now

    def _cap(self, host: Host, queue: TenantQueue, job: MachineJob) -> None:
        host.settle_job(job)
        job.version += 1  # its own end event no longer holds
        job.capped = True
        job.bound0 = self.bound_time
        job.vjoin = queue.vclock
        job.tjoin = host.now
        job.vfinish = queue.vclock + max(0.0, job.r - job.done) * job.t
        queue.capped[job] = None
        heapq.heappush(queue.heap, (job.vfinish, job.seq, job))

    def _uncap(self, host: Host, queue: TenantQueue, job: MachineJob) -> None:
        self.settle(host, job)
        del queue.capped[job]
        job.capped = False
        job.t_alloc = job.demand
        host.rate_job(job)

    def reshare(self, host: Host) -> None:
        """Share the factories' states again (the rule's allocation), then set off the
        store's running dry and each capped job's next end."""
        self.advance(host.now)
        if self.rule == "cost":
            self._by_cost(host)
            self._schedule(host, ())
        else:
            self._schedule(host, self._by_tenant(host))

    def _by_cost(self, host: Host) -> None:
        left = self.capacity
        fresh = self.fresh
        for job in self.order:  # (kept in the rule's order as jobs come and go)
            demand = job.demand
            share = demand if demand <= left else left
            left -= share
            if share != job.t_alloc or job in fresh:
                host.settle_job(job)
                job.t_alloc = share
                host.rate_job(job)
        fresh.clear()

    def _by_tenant(self, host: Host) -> list[TenantQueue]:
        """Share the factories by tenant; the queues whose level or capped jobs may have
        changed (the others' next capped end stands as it was set off)."""
        demands = {name: queue.demand for name, queue in self.queues.items()}
        allocs = weighted_fill(demands, self.weights, self.capacity)
        moved = []
        for name, queue in self.queues.items():
            alloc = allocs[name]
            if not queue.changed and alloc == queue.alloc:
                continue  # its groups and part as they were: its level and caps hold
            queue.changed = False
            moved.append(queue)
            groups, state = queue.groups, queue.state
            level = (
                level_for({d: len(jobs) for d, jobs in groups.items()}, alloc)
                if alloc < demands[name]
                else INF
            )
            queue.alloc = alloc
            queue.level = level
            if level == INF and not queue.capped:
                # none capped and none to cap (a job not pending in a capped group is
                # capped): every group's state is uncapped, and no job changes
                for demand in groups:
                    state[demand] = False
            else:
                new = set(queue.pending)
                for demand, jobs in groups.items():
                    capped = demand > level
                    if state.get(demand, capped) != capped:
                        for job in list(jobs):
                            if job in new:
                                continue
                            if capped:
                                self._cap(host, queue, job)
                            else:
                                self._uncap(host, queue, job)
                    state[demand] = capped
            pending, queue.pending = queue.pending, []
            for job in pending:
                if job.demand > level:
                    self._cap(host, queue, job)
                else:
                    job.t_alloc = job.demand
                    host.rate_job(job)
        return moved

    def _schedule(self, host: Host, moved: Iterable[TenantQueue]) -> None:
        """Set off the store's running dry, where what is drawn changed, and the next
        capped end of each of the ``moved`` queues. An event set off before holds while
        what it was computed from holds: the store drains at the same rate, and a queue
        not moved keeps its level and its capped jobs."""
        if self.rule == "cost":
            consume = sum([job.t_alloc for job in self.costed])
        else:
            consume = sum([min(q.alloc, q.demand) for q in self.queues.values()])
        if consume != self.consume:
            # the factories' work: states drawn beyond their rate come from the store,
            # made before (its states at the start, an idle machine's)
            host.trace_t(min(consume, self.rate) - min(self.consume, self.rate))
            self.consume = consume
            self.version += 1
            if self.store > EMPTY and consume > self.rate:
                at = host.now + self.store / (consume - self.rate)
                host.push_event(snap(at), "empty", self, self.version)
        for queue in moved:
            queue.version += 1
            heap = queue.heap
            while heap and (not heap[0][2].capped or heap[0][0] != heap[0][2].vfinish):
                heapq.heappop(heap)
            if heap and queue.level > 0 and queue.level != INF:
                at = host.now + max(0.0, heap[0][0] - queue.vclock) / queue.level
                host.push_event(snap(at), "capped-end", queue, queue.version)

    def empty(self, host: Host) -> None:
        """The store ran dry now."""
        self.advance(host.now)
        self.store = 0.0
        self.reshare(host)

    def regroup(self, host: Host, wants: dict[MachineJob, float]) -> None:
        """What jobs want changed (the decoder's throttle, a link's share): take each out
        and put it back with its new want (a job not yet drawing only keeps it)."""
        self.advance(host.now)
        touched = set()
        for job, want in wants.items():
            if job.segment < 0:
                job.want = want
                continue
            self._drop(host, job)
            self.wanted += want - job.want
            job.want = want
            touched.add(job.segment)
        for segment in sorted(touched):
            for job, share in self.bus.shares(segment).items():
                if job in wants:
                    self._add(job, share)
                elif job.demand != share:
                    self._drop(host, job)
                    self._add(job, share)
        self.reshare(host)

    def users(self) -> list[MachineJob]:
        return [job for jobs in self.bus.users.values() for job in jobs]

    @property
    def starved(self) -> bool:
        """Whether some job gets fewer states from the factories than it asks for."""
        if self.rule == "cost":
            return any(job.t_alloc < job.demand for job in self.costed)
        return any(queue.capped for queue in self.queues.values())


def _cost_key(job: MachineJob) -> tuple[int, int]:
    """The cost rule's order: most live patches first (their waiting costs most), then
    arrival."""
    return (-job.cost, job.seq)


def split_wait(job: MachineJob, dt: float, lost: float, bound: float) -> None:
    """Record ``lost`` of ``dt`` cycles of a T-drawing ``job``, by cause.

    First comes what its tenant's decoder throttle took (``decoder``). The rest goes to
    what held the job. That is the factories (``factory``) where they gave it less than
    its demand, or for the ``bound`` cycles they could not feed every want. Else it is
    its bus segment (``routing``)."""
    decoder = min(lost, dt * (1.0 - job.f)) if job.c else 0.0
    if decoder > 0:
        job.wait("decoder", decoder)
    rest = lost - decoder
    if rest <= 0:
        return
    if job.capped or job.t_alloc < job.demand:
        job.wait("factory", rest)
        return
    factory = rest * min(1.0, max(0.0, bound / dt))
    if factory > 0:
        job.wait("factory", factory)
    if rest - factory > 0:
        job.wait("routing", rest - factory)


def snap(time: float) -> float:
    """A time within 1e-7 of a whole cycle is that cycle (so a fluid end computed with
    rounding lands on the boundary it should)."""
    near = round(time)
    return float(near) if abs(time - near) < 1e-7 else time
