"""Each running job's pace on the shared machine: the rate its step runs at under its
shares of the factories, the links and the decoder, and the waits that rate leaves.

Between two events every share is constant, so a job's progress is a fluid: ``rate``
repetitions of its step a cycle (``docs/machine.md`` states the formulas). A step of
``c`` cycles, ``t`` T states and ``b`` Bell pairs a repetition runs at ``min(f / c,
a_T / t, a_B / b)``: ``f`` its tenant's decoder throttle, ``a_T`` its share of T states
(:mod:`~qmk.kernel.machine.supply`), ``a_B`` its share of the links' pairs. A share
that changes *settles* the job first: its progress and waits are brought up to now at
the rate it had.

The scheduler (:mod:`~qmk.kernel.machine.core`) decides who runs where and when steps
begin and end; this object prices what the jobs it runs draw. It is the host the
modules' supplies call back (:class:`~qmk.kernel.machine.supply.Host`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Protocol

from qmk.kernel.machine.supply import ModuleSupply, max_min, snap, split_wait, weighted_fill

if TYPE_CHECKING:
    from qmk.kernel.machine.jobs import MachineJob
    from qmk.kernel.machine.metrics import Gauge
    from qmk.kernel.machine.spec import MachineSpec
    from qmk.kernel.machine.state import MachineState

INF = math.inf


class Clock(Protocol):
    """What the rates need of the scheduler that runs them: machine time, and a place
    for the events a rate sets off (a step's end)."""

    @property
    def now(self) -> float: ...

    def push_event(self, time: float, kind: str, obj: object, version: int) -> None: ...


def throttle(want: float, share: float | None) -> float:
    """A tenant's decoder throttle: the part of the syndrome bits it sends a cycle
    (``want``) that its ``share`` of the capacity decodes (1: all of them)."""
    return 1.0 if want <= 0 or share is None or share >= want else share / want


def throttles(
    demand: Mapping[str, float], weights: Mapping[str, float], capacity: float
) -> dict[str, float]:
    """Each tenant's :func:`throttle` under these ``demand`` s (syndrome bits a cycle)."""
    shares = weighted_fill(demand, weights, capacity)
    return {name: throttle(want, shares.get(name)) for name, want in demand.items()}


class _Decoder:
    """The machine's decoder shared by tenants: each tenant's throttle ``f`` is its
    weighted max-min share of the capacity over the syndrome bits its jobs send."""

    __slots__ = ("capacity", "demand", "f", "weights")

    def __init__(self, capacity: float | None, weights: Mapping[str, float]) -> None:
        self.capacity = capacity
        self.weights = weights
        self.demand: dict[str, float] = {}
        self.f: dict[str, float] = {}

    def add(self, tenant: str, bits: float) -> dict[str, float]:
        """Change ``tenant``'s demand by ``bits`` a cycle; the tenants whose throttle
        changed, with their new throttle."""
        assert self.capacity is not None
        demand = self.demand.get(tenant, 0.0) + bits
        if demand <= 1e-9:
            self.demand.pop(tenant, None)
        else:
            self.demand[tenant] = demand
        now = throttles(self.demand, self.weights, self.capacity)
        changed = {}
        for name in {*self.f, *now}:
            f = now.get(name, 1.0)  # (a tenant that sends nothing is not throttled)
            if f != self.f.get(name, 1.0):
                changed[name] = f
            if f == 1.0:
                self.f.pop(name, None)
            else:
                self.f[name] = f
        return changed


class Rates:
    """Running jobs' rates of progress under their shares of the shared resources.

    Args:
        machine: the machine (its links and decoder).
        supplies: each module's magic-state supply, shared with the scheduler (which
            keeps their storage room).
        weights: each tenant's quota weight.
        clock: the scheduler's time and event queue.
        state: who runs (a throttle that changes re-rates the running jobs it binds).
        gauges: the ``factories`` and ``links`` use, traced as it changes.
    """

    def __init__(
        self,
        machine: MachineSpec,
        supplies: Sequence[ModuleSupply],
        weights: Mapping[str, float],
        clock: Clock,
        state: MachineState,
        gauges: Mapping[str, Gauge],
    ) -> None:
        self.machine = machine
        self.supplies = supplies
        self.weights = weights
        self._clock = clock
        self._state = state
        self._factories_gauge = gauges["factories"]
        self._links_gauge = gauges["links"]
        self._link_users: dict[MachineJob, None] = {}
        self._link_consume = 0.0
        self._decoder = _Decoder(machine.decoder_bits_per_cycle, weights)
        #: no decoder limit: a step's measurements change no rate
        self.no_decoder = machine.decoder_bits_per_cycle is None

    @property
    def now(self) -> float:
        return self._clock.now

    def throttle(self, tenant: str) -> float:
        """``tenant``'s decoder throttle now (1: the decoder keeps up)."""
        return 1.0 if self.no_decoder else self._decoder.f.get(tenant, 1.0)

    def throttles_with(self, tenant: str, bits: float) -> dict[str, float] | None:
        """Each tenant's decoder throttle were ``tenant`` to send ``bits`` more a cycle
        (None: no decoder limit), read without changing anything."""
        decoder = self._decoder
        if decoder.capacity is None:
            return None
        demand = dict(decoder.demand)
        if bits:
            demand[tenant] = demand.get(tenant, 0.0) + bits
        return throttles(demand, self.weights, decoder.capacity)

    # ------------------------------------------------------------------ settling and rates

    def settle(self, job: MachineJob) -> None:
        """Bring an uncapped ``job``'s progress and waits up to now at its current rate."""
        now = self._clock.now
        dt = now - job.last
        if dt <= 0:
            return
        progress = job.rate * dt
        job.done += progress
        job.t_used += progress * job.t
        job.b_used += progress * job.b
        if job.forced is not None:
            job.wait(job.forced, dt)
        else:
            lost = dt - progress * job.c
            if lost > 0:
                if job.t and job.cause in ("", "factory", "routing"):
                    supply = self.supplies[job.module]
                    supply.advance(now)
                    split_wait(job, dt, lost, supply.bound_time - job.bound0)
                else:
                    throttled = dt * (1.0 - job.f) if job.c else 0.0
                    decoder = min(lost, throttled)
                    job.wait("decoder", decoder)
                    if lost - decoder > 0:
                        job.wait(job.cause or "decoder", lost - decoder)
        job.last = now
        if job.t:
            job.bound0 = self.supplies[job.module].bound_time

    def set_rate(self, job: MachineJob, *, settled: bool = False) -> None:
        """Settle ``job`` (unless ``settled``), set its rate (its cycles under its
        tenant's decoder throttle; its share of the link or of T states if less), and
        schedule its step's end."""
        if not settled:
            self.settle(job)
        f = job.f
        rate = f / job.c if job.c else INF
        job.cause = "decoder" if f < 1.0 else ""
        if job.b:
            by_b = job.b_alloc / job.b
            if by_b < rate:
                rate, job.cause = by_b, "link"
        if job.t and job.t_alloc < job.want:
            by_t = job.t_alloc / job.t
            if by_t < rate:
                rate, job.cause = by_t, "factory"
        job.rate = rate
        job.version += 1
        now = self._clock.now
        if rate > 0 and rate != INF:
            left = job.r - job.done
            at = now + (left if left > 0.0 else 0.0) / rate
            self._clock.push_event(snap(at), "step", job, job.version)
        elif rate == INF:
            self._clock.push_event(now, "step", job, job.version)

    def want(self, job: MachineJob) -> float:
        """T states a cycle ``job`` would draw if its bus segment and the factories kept
        up."""
        rate = job.f / job.c if job.c else INF
        if job.b:
            rate = min(rate, job.b_alloc / job.b)
        return job.t * rate

    def settle_any(self, job: MachineJob) -> None:
        """Settle ``job`` whether it is capped in its module's supply or not."""
        if job.capped:
            supply = self.supplies[job.module]
            supply.advance(self._clock.now)
            supply.settle(self, job)
        else:
            self.settle(job)

    # ------------------------------------------------------------------ shares

    def join_supply(self, job: MachineJob) -> None:
        """``job``'s step draws T states: it joins its module's supply."""
        self.supplies[job.module].join(self, job, self.want(job))

    def leave_supply(self, job: MachineJob) -> None:
        """``job``'s step stops drawing T states (settled by its supply)."""
        self.supplies[job.module].leave(self, job)

    def use_link(self, job: MachineJob) -> None:
        """``job``'s step draws Bell pairs: the links are shared again."""
        self._link_users[job] = None
        self._reshare_link()

    def leave_link(self, job: MachineJob) -> None:
        """``job`` stops drawing Bell pairs: the links are shared again."""
        self._link_users.pop(job, None)
        job.b_alloc = 0.0
        self._reshare_link()

    def _reshare_link(self) -> None:
        """Share the links' pairs: by tenant (weighted max-min), then among a tenant's
        jobs (max-min)."""
        users = list(self._link_users)
        cap = self.machine.link.bell_pairs_per_cycle
        demands = [job.b * (job.f / job.c if job.c else INF) for job in users]
        by_tenant: dict[str, list[int]] = {}
        for i, job in enumerate(users):
            by_tenant.setdefault(job.tenant, []).append(i)
        tenant_demand = {t: sum(demands[i] for i in idx) for t, idx in by_tenant.items()}
        tenant_share = weighted_fill(tenant_demand, self.weights, cap)
        shares = [0.0] * len(users)
        for tenant, idx in by_tenant.items():
            for i, share in zip(
                idx, max_min([demands[i] for i in idx], tenant_share[tenant]), strict=True
            ):
                shares[i] = share
        consume = 0.0
        for job, share in zip(users, shares, strict=True):
            if share != job.b_alloc:
                if job.t:  # its T want follows its share of the link
                    supply = self.supplies[job.module]
                    self.settle_any(job)
                    job.b_alloc = share
                    supply.regroup(self, {job: self.want(job)})
                else:
                    self.settle(job)
                    job.b_alloc = share
                    self.set_rate(job)
            consume += share
        if consume != self._link_consume:
            self._link_consume = consume
            self._links_gauge.set(self._clock.now, consume)

    def decoder_add(self, tenant: str, bits: float) -> None:
        """Change ``tenant``'s decoder demand by ``bits`` a cycle; re-rate the jobs of every
        tenant whose throttle changes."""
        if self.no_decoder:
            return
        changed = self._decoder.add(tenant, bits)
        if not changed:
            return
        jobs = [job for job in self._state.running if job.tenant in changed]
        for job in jobs:
            self.settle_any(job)
        for job in jobs:
            job.f = changed[job.tenant]
        self._reshare_link()
        by_module: dict[int, dict[MachineJob, float]] = {}
        for job in jobs:
            if job.t:
                by_module.setdefault(job.module, {})[job] = self.want(job)
            elif not job.b and job.c:
                self.set_rate(job)
        for module, wants in sorted(by_module.items()):
            self.supplies[module].regroup(self, wants)

    # ------------------------------------------------------------------ readings

    def progress(self, job: MachineJob) -> float:
        """Repetitions of its current step a running ``job`` has done by now, read without
        settling anything (a projection's reading: nothing of the schedule changes)."""
        now = self._clock.now
        dt = now - job.last
        if job.capped:
            supply = self.supplies[job.module]
            queue = supply.queues[job.tenant]
            vclock = queue.vclock + queue.level * max(0.0, now - supply.last)
            return job.done + (vclock - job.vjoin) / job.t
        if dt <= 0 or job.rate == INF:
            return job.done
        return job.done + job.rate * dt

    def idled_since_settled(self, job: MachineJob) -> float:
        """Cycles a running ``job``'s patches have idled since it was last settled, read
        without settling anything: what settling it now would add to its waits (a
        forced wait whole, else the cycles its progress since then did not fill)."""
        since = job.tjoin if job.capped else job.last
        dt = self._clock.now - since
        if dt <= 0:
            return 0.0
        if job.forced is not None and not job.capped:
            return dt
        done = self.progress(job) - job.done
        return max(0.0, dt - done * job.c)

    # ------------------------------------------------------------------ the supplies' host

    def push_event(self, time: float, kind: str, obj: object, version: int) -> None:
        self._clock.push_event(time, kind, obj, version)

    def rate_job(self, job: MachineJob) -> None:
        self.set_rate(job)

    def settle_job(self, job: MachineJob) -> None:
        self.settle(job)

    def trace_t(self, delta: float) -> None:
        self._factories_gauge.add(self._clock.now, delta)
