"""Error budgets at admission: would starting a job keep every job's idle error within
its budget at the factories' current rate?

A job's idle logical error is ``1 - (1 - p_L)^(n W)`` for its ``n`` live patches idle
``W`` cycles. Where T states bind, a running job's remaining ``T`` states over the
remaining private cycles ``R_T`` of its steps that draw them is what it asks a cycle
while it draws, ``d = T / R_T``. The projection runs the module's jobs forward as a
fluid: the store's states first, then the factories' ``rate``. They are shared among the
jobs by the policy's supply rule (``cost``: the job whose waiting costs most first;
``fair``: tenants by weight, then their jobs). Each job is given at most ``d``, less
where its bus segment, shared max-min among the jobs beside it as the supply shares it,
carries less. A job's share of the factories, and of its segment, passes to the others
when it has drawn all it needs. A job that has its states at ``E`` is ``E - R_T``
cycles late, all of them idle. It is what the machine promises at the rate it has now
(a job asks ``d`` until its last state, its steps without T states all after, and the
store refills at no rate). Where the decoder is limited, a start is also weighed on the
throttles it would set, against every running job (:meth:`BudgetCheck._decoder_keeps`).

A job is started only if, with it, no job's projected idle error (what it has waited
so far plus the projection) passes :data:`HEADROOM` of its budget where it would not
without it.

>>> idle_of(1e-3, 2, 0.0, 0.0)
0.0
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Iterator
from typing import TYPE_CHECKING

from qmk.kernel.machine.jobs import idle_error
from qmk.kernel.machine.supply import max_min, weighted_fill

if TYPE_CHECKING:
    from qmk.kernel.machine.core import Scheduler
    from qmk.kernel.machine.jobs import MachineJob

INF = math.inf
#: The part of a budget a projection may spend: the projection averages a job's demand
#: over its T steps and ignores what arrives later, so it keeps this much in reserve.
HEADROOM = 0.8


def idle_of(rate: float, patches: int, waited: float, ahead: float) -> float:
    """The idle error of ``patches`` that waited ``waited`` cycles and will wait
    ``ahead`` more (INF cycles: certain)."""
    if ahead == INF:
        return 1.0
    return idle_error(rate, patches, waited + ahead)


def _fresh(job: MachineJob) -> tuple[float, float]:
    """``(T states, private cycles in steps that draw them)`` of ``job`` not started."""
    tl = job.tl
    first = tl.t_cycles_after[0] + (tl.cycles[0] * tl.repeat[0] if tl.t_states[0] else 0)
    return float(tl.t_total), float(first if tl.cycles else 0)


def _left(sched: Scheduler, job: MachineJob) -> tuple[float, float]:
    """``(T states left, private cycles left in steps that draw them)`` of a running
    ``job``, its progress read at now."""
    if job.chain_end >= 0:  # its steps left run whole: they draw no T state
        return 0.0, 0.0
    done = sched.rates.progress(job)
    return job.remaining_t(done), job.remaining_t_cycles(done)


#: What a projection reads of a job: T states left, the private cycles left in steps
#: that draw them, the cycles it has idled so far, and its bus segment.
Reading = tuple[float, float, float, int]


class _Setup:
    """A projection's jobs set up: which draw T states (``users``; the others are
    ``idle``), their bus asks, and the ``cost`` rule's order. A projection with one job
    more is set up from it (:meth:`plus`), as from scratch: a decision weighs many
    candidates against the same running jobs."""

    __slots__ = ("bus", "by_cost", "idle", "jobs", "module", "owned", "readings", "sched", "users")

    def __init__(
        self, sched: Scheduler, module: int, jobs: list[MachineJob], readings: list[Reading]
    ) -> None:
        self.sched = sched
        self.module = module
        self.jobs = jobs
        self.readings = readings
        self.users: list[int] = []
        self.idle: list[int] = []
        for i, (t_left, t_cycles, _, _) in enumerate(readings):
            (self.users if t_left > 0 and t_cycles > 0 else self.idle).append(i)
        self.bus = _BusAsks(readings, self.users, sched.supply(module).bus.cap)
        #: whether :meth:`lates` may run on ``bus`` itself (a copy made for one use)
        self.owned = False
        self.by_cost = (
            sorted(self.users, key=lambda i: (-jobs[i].cost, jobs[i].seq))
            if sched.policy.supply == "cost"
            else None
        )

    def plus(self, job: MachineJob, reading: Reading) -> _Setup:
        """The same jobs and ``job`` last, as set up from scratch."""
        out = _Setup.__new__(_Setup)
        out.sched, out.module, out.owned = self.sched, self.module, True
        out.jobs = [*self.jobs, job]
        out.readings = [*self.readings, reading]
        i = len(self.jobs)
        out.users, out.idle = list(self.users), list(self.idle)
        out.by_cost = None if self.by_cost is None else list(self.by_cost)
        if reading[0] > 0 and reading[1] > 0:
            out.users.append(i)
            if out.by_cost is not None:
                jobs = out.jobs
                bisect.insort(out.by_cost, i, key=lambda k: (-jobs[k].cost, jobs[k].seq))
            out.bus = self.bus.plus(out.readings, i)
        else:
            out.idle.append(i)
            out.bus = self.bus.plus(out.readings, -1)
        return out

    def lates(self) -> Iterator[tuple[int, float]]:
        """Each job's cycles late, as ``(its index, cycles)`` the moment it is known:
        the jobs that draw no T state first, then each as it has drawn all. Its T states
        are drawn as a fluid from the module's store and factories under the policy's
        rule (module docstring). Each job draws at most what it asks a cycle, and its bus
        segment's neighbours share it max-min, as the supply shares it. A job's share of
        the factories, and of its segment, passes to the others when it has drawn all.
        What is set up here is not changed."""
        for i in self.idle:
            yield i, 0.0
        users = list(self.users)
        if not users:
            return
        sched, jobs, readings = self.sched, self.jobs, self.readings
        supply = sched.supply(self.module)
        states = [r[0] for r in readings]
        drawing = [r[1] for r in readings]
        bus = self.bus if self.owned else self.bus.plus(readings, -1)
        self.owned = False
        asks = bus.asks
        rate, store = supply.rate, supply.store
        by_cost = self.by_cost
        yield from _drawn(sched, jobs, users, bus, by_cost, states, drawing, asks, rate, store)


def _drawn(
    sched: Scheduler,
    jobs: list[MachineJob],
    users: list[int],
    bus: _BusAsks,
    by_cost: list[int] | None,
    states: list[float],
    drawing: list[float],
    asks: list[float],
    rate: float,
    store: float,
) -> Iterator[tuple[int, float]]:
    """The fluid of :meth:`_Setup.lates` run from its set-up: each user's cycles late."""
    now = 0.0
    while users:
        wanted = sum([asks[i] for i in users])
        if wanted <= rate and (not bus.held or bus.most(users) <= rate):
            yield from bus.ends(users, states, now, drawing)  # the factories keep up from now on
            return
        if wanted <= rate or store > 1e-9:  # each draws what it asks: the factories keep
            shares = asks  # up until a segment's neighbour leaves, or the store lasts
        elif by_cost is not None:
            shares = _costliest_first(by_cost, states, asks, rate)
        else:
            shares = _fair(sched, jobs, users, asks, rate)
        drawn = sum([shares[i] for i in users])
        step = min([states[i] / shares[i] for i in users if shares[i] > 0], default=INF)
        if store > 1e-9 and drawn > rate:
            step = min(step, store / (drawn - rate))
        if step == INF:  # the rest get nothing, ever
            for i in users:
                yield i, INF
            return
        now += step
        if wanted > rate:
            store = max(0.0, store + (rate - drawn) * step) if store > 1e-9 else 0.0
        going = []
        for i in users:
            states[i] -= shares[i] * step
            if states[i] <= 1e-9 * (1 + asks[i]):
                going.append(i)
        if going:
            for i in going:
                states[i] = 0.0
                yield i, max(0.0, now - drawing[i])
                bus.leave(i)
            users = [i for i in users if states[i] > 0]


class _BusAsks:
    """What the jobs of a projection ask a cycle: what each wants (its T states over its
    cycles that draw them), or less where its bus segment's ``cap`` is shared max-min
    among the jobs on it (:func:`~qmk.kernel.machine.supply.max_min`, as the supply
    shares it); shared again as a job leaves its segment (``asks``: 0 for jobs that draw
    nothing). :meth:`plus` gives a copy with one job more, as built from scratch."""

    __slots__ = ("asks", "cap", "held", "members", "readings")

    def __init__(self, readings: list[Reading], users: list[int], cap: float) -> None:
        self.cap = cap
        self.readings = readings
        asks = self.asks = [0.0] * len(readings)
        members: dict[int, list[int]] = {}
        for i in users:  # (most jobs: a segment of their own, where this is their ask)
            t_left, t_cycles, _, segment = readings[i]
            want = t_left / t_cycles
            asks[i] = want if want <= cap else cap
            members.setdefault(segment, []).append(i)
        self.members = members
        #: the segments whose neighbours hold a job below what it wants: its ask grows
        #: when one of them leaves (a job alone on its segment has its final ask)
        self.held: set[int] = set()
        for segment, ids in members.items():  # neighbours that fit their segment keep their asks
            if len(ids) > 1 and sum([asks[i] for i in ids]) > cap:
                self._share(segment)

    def plus(self, readings: list[Reading], i: int) -> _BusAsks:
        """A copy over ``readings`` (these and one more, or the same) with job ``i``
        (the last of ``readings``; -1: none) added: only its segment is shared again,
        from its members' wants, as :meth:`__init__` shares it."""
        out = _BusAsks.__new__(_BusAsks)
        out.cap = cap = self.cap
        out.readings = readings
        asks = out.asks = self.asks + [0.0] * (len(readings) - len(self.asks))
        members = out.members = dict(self.members)
        out.held = set(self.held)
        for segment in out.held:  # (only a held segment's members change as jobs leave)
            members[segment] = list(members[segment])
        if i < 0:
            return out
        segment = readings[i][3]
        ids = members[segment] = [*members.get(segment, ()), i]
        for k in ids:  # the segment's asks as first set, then shared if they pass its cap
            want = readings[k][0] / readings[k][1]
            asks[k] = want if want <= cap else cap
        if len(ids) > 1 and sum([asks[k] for k in ids]) > cap:
            out._share(segment)
        else:
            out.held.discard(segment)
        return out

    def _share(self, segment: int) -> None:
        ids, asks, readings = self.members[segment], self.asks, self.readings
        wants = [readings[i][0] / readings[i][1] for i in ids]
        shares = max_min(wants, self.cap)
        for i, share in zip(ids, shares, strict=True):
            asks[i] = share
        if len(ids) > 1 and shares != wants:
            self.held.add(segment)
        else:
            self.held.discard(segment)

    def most(self, users: list[int]) -> float:
        """The most ``users`` will ever ask a cycle: a segment that holds one back gives
        all it carries until enough have left, then less; the others' asks stay."""
        held, asks, readings = self.held, self.asks, self.readings
        return sum([asks[i] for i in users if readings[i][3] not in held]) + self.cap * len(held)

    def ends(
        self, users: list[int], states: list[float], now: float, drawing: list[float]
    ) -> Iterator[tuple[int, float]]:
        """Each of ``users``' cycles late (:meth:`_Setup.lates`) where each always gets what it
        asks: a segment that holds one back is run alone, its asks shared again as each
        job leaves it; any other job asks the same to its end."""
        asks, readings = self.asks, self.readings
        for i in users:
            if readings[i][3] not in self.held:
                yield i, max(0.0, now + states[i] / asks[i] - drawing[i])
        for segment in sorted(self.held):
            ids, t = list(self.members[segment]), now
            while ids:
                step = min([states[i] / asks[i] for i in ids])
                t += step
                going = []
                for i in ids:
                    states[i] -= asks[i] * step
                    if states[i] <= 1e-9 * (1 + asks[i]):
                        going.append(i)
                for i in going:
                    states[i] = 0.0
                    yield i, max(0.0, t - drawing[i])
                    self.members[segment].remove(i)
                ids = [i for i in ids if states[i] > 0]
                self._share(segment)

    def leave(self, i: int) -> None:
        """Job ``i`` has drawn all: its neighbours share its segment without it (a
        segment that holds none back keeps its asks: its members are not read again)."""
        segment = self.readings[i][3]
        if segment in self.held:
            self.members[segment].remove(i)
            self._share(segment)


def _costliest_first(
    by_cost: list[int], states: list[float], asks: list[float], rate: float
) -> list[float]:
    """What each job still drawing gets a cycle of ``rate`` under the ``cost`` rule: in
    ``by_cost``'s order (the costliest wait first), what it asks while any is left."""
    shares = [0.0] * len(asks)
    left = rate
    for i in by_cost:
        if states[i] > 0:
            ask = asks[i]
            shares[i] = share = ask if ask <= left else left
            left -= share
    return shares


def _fair(
    sched: Scheduler, jobs: list[MachineJob], users: list[int], asks: list[float], rate: float
) -> list[float]:
    """What each of ``users`` (indices of ``jobs``) gets a cycle of ``rate`` under the
    ``fair`` rule: tenants by weight, then a tenant's jobs max-min."""
    by_tenant: dict[str, list[int]] = {}
    for i in users:
        by_tenant.setdefault(jobs[i].tenant, []).append(i)
    tenant_asks = {t: sum(asks[i] for i in members) for t, members in by_tenant.items()}
    tenant_share = weighted_fill(tenant_asks, sched.weights, rate)
    shares = [0.0] * len(jobs)
    for tenant, members in by_tenant.items():
        share = tenant_share[tenant]
        if tenant_asks[tenant] <= share:  # each gets what it asks (weighted_fill's own test)
            for i in members:
                shares[i] = asks[i]
            continue
        got = weighted_fill({str(k): asks[i] for k, i in enumerate(members)}, {}, share)
        for k, i in enumerate(members):
            shares[i] = got[str(k)]
    return shares


def projected(
    sched: Scheduler, module: int, candidate: MachineJob | None = None, at: int = 0
) -> dict[MachineJob, float]:
    """Each running job's projected idle error on ``module`` (and ``candidate``'s, were
    it started there now, its first tile ``at`` of the module): :meth:`_Setup.lates`."""
    return BudgetCheck(sched).projected(module, candidate, at)


class BudgetCheck:
    """One decision's budget verdicts: each projection made once per state of the machine.

    A policy makes one at a boundary and calls :meth:`started` after each start: until
    then the running jobs' projection is the same for every candidate, and candidates of
    one program (its timeline, tenant and budget) on one bus segment share a verdict.
    What a projection reads of a running job is read once while the job stays as it
    was (its version and its last settling unchanged) and the time does not move.
    """

    def __init__(self, sched: Scheduler) -> None:
        self.sched = sched
        self._before: dict[int, dict[MachineJob, float]] = {}
        self._verdicts: dict[tuple[object, ...], bool] = {}
        self._readings: dict[MachineJob, tuple[tuple[int, float, float], Reading]] = {}
        self._decoder_verdicts: dict[tuple[object, ...], bool] = {}
        #: each module's running jobs set up for a projection, with what each was read
        #: at (a running job settled meanwhile is read again)
        self._setups: dict[int, tuple[list[tuple[int, float, float]], _Setup]] = {}
        self._running: dict[int, list[MachineJob]] = {}

    def started(self) -> None:
        """A job started: what was projected holds no longer."""
        self._before.clear()
        self._verdicts.clear()
        self._readings.clear()
        self._decoder_verdicts.clear()
        self._setups.clear()
        self._running.clear()

    def keeps(self, job: MachineJob, module: int, at: int = 0) -> bool:
        """Whether starting ``job`` on ``module`` now (its first tile ``at`` there) keeps
        every job's projected idle error within its budget, where it would have been
        without ``job`` (module docstring). A job that draws no T state (it takes none
        from the others), or one on a module where nothing runs (waiting would not help
        it), may always start."""
        sched = self.sched
        if not sched.rates.no_decoder and not self._decoder_keeps(job):
            return False
        if not job.tl.t_total:
            return True
        here = self._running_on(module)
        if not here:
            return True
        segment = sched.supply(module).bus.segment_of(at, job.tiles)
        key: tuple[object, ...] = (id(job.tl), job.tenant, job.budget, job.cost, module, segment)
        if sched.policy.supply == "cost":  # a tie of cost goes to the earlier arrival: how
            # many of its cost arrived before it (a job queued long may be ahead of some)
            key += (sum(1 for other in here if other.cost == job.cost and other.seq < job.seq),)
        verdict = self._verdicts.get(key)
        if verdict is None:
            verdict = self._verdicts[key] = self._keeps(job, module, at)
        return verdict

    def _decoder_keeps(self, job: MachineJob) -> bool:
        """Whether the decoder's throttles with ``job`` started keep every job's idle
        error within :data:`HEADROOM` of its budget, where they did without it (the
        decoder is the machine's, so every running job is weighed, of any module).

        A job throttled to ``f`` for its ``R`` private cycles left idles ``R (1/f - 1)``
        more; ``job`` adds its data tiles' syndrome bits to its tenant's demand. Its
        measurements' bits, which come and go by step, are left out."""
        key = (id(job.tl), job.tenant, job.budget, job.cost)
        verdict = self._decoder_verdicts.get(key)
        if verdict is None:
            verdict = self._decoder_verdicts[key] = self._decoder_weighs(job)
        return verdict

    def _decoder_weighs(self, job: MachineJob) -> bool:
        sched = self.sched
        running = list(sched.state.running)
        if not running:  # waiting would not help it
            return True
        rates = sched.rates
        after = rates.throttles_with(job.tenant, sched.machine.decoder_bits(job.data_tiles))
        if after is None:
            return True
        p = sched.machine.logical_error_rate
        f = after.get(job.tenant, 1.0)
        if job.budget is not None and f < 1.0:
            ahead = job.remaining() * (1.0 / f - 1.0)
            if idle_of(p, job.cost, job.idle_waited(), ahead) > job.budget * HEADROOM:
                return False
        for other in running:
            f_after = after.get(other.tenant, 1.0)
            f_before = rates.throttle(other.tenant)  # (the decoder's own, as it is now)
            if other.budget is None or f_after >= 1.0 or f_after >= f_before:
                continue
            left = other.remaining(rates.progress(other))
            waited = other.idle_waited() + rates.idled_since_settled(other)
            error = idle_of(p, other.cost, waited, left * (1.0 / f_after - 1.0))
            if error <= other.budget * HEADROOM:
                continue
            if error > idle_of(p, other.cost, waited, left * (1.0 / f_before - 1.0)) * (1 + 1e-9):
                return False
        return True

    def _running_on(self, module: int) -> list[MachineJob]:
        """``module``'s running jobs, in the machine's order (read once until a start:
        no job ends or stops within a decision)."""
        jobs = self._running.get(module)
        if jobs is None:
            jobs = self._running[module] = [
                job for job in self.sched.state.running if job.module == module
            ]
        return list(jobs)

    def projected(
        self, module: int, candidate: MachineJob | None = None, at: int = 0
    ) -> dict[MachineJob, float]:
        """Each running job's projected idle error on ``module`` (and ``candidate``'s,
        were it started there now, its first tile ``at`` of the module)."""
        setup = self._setup(module, candidate, at)
        jobs, readings = setup.jobs, setup.readings
        late = dict(setup.lates())
        p = self.sched.machine.logical_error_rate
        return {
            job: idle_of(p, job.cost, reading[2], late[i])
            for i, (job, reading) in enumerate(zip(jobs, readings, strict=True))
        }

    def _setup(self, module: int, candidate: MachineJob | None, at: int) -> _Setup:
        """``module``'s projection set up (``candidate`` last, its first tile ``at``).
        The running jobs' part is made once while none of them moves on or is settled."""
        sched = self.sched
        jobs = self._running_on(module)
        now = sched.now
        stamps = [(job.version, job.last, now) for job in jobs]
        held = self._setups.get(module)
        if held is not None and held[0] == stamps and held[1].jobs == jobs:
            base = held[1]
        else:
            base = _Setup(sched, module, jobs, [self._reading(job) for job in jobs])
            self._setups[module] = (stamps, base)
        if candidate is None:
            return base
        t_left, t_cycles = _fresh(candidate)
        segment = sched.supply(module).bus.segment_of(at, candidate.tiles)
        return base.plus(candidate, (t_left, t_cycles, candidate.idle_waited(), segment))

    def _reading(self, job: MachineJob) -> Reading:
        """What a projection reads of a running ``job`` now. It changes where the job is
        settled (its ``last``) or moves on (its ``version``), and with the time (its waits
        since it was last settled)."""
        at = (job.version, job.last, self.sched.now)
        held = self._readings.get(job)
        if held is not None and held[0] == at:
            return held[1]
        t_left, t_cycles = _left(self.sched, job)
        bus = self.sched.supply(job.module).bus
        reading = (
            t_left,
            t_cycles,
            job.idle_waited() + self.sched.rates.idled_since_settled(job),
            bus.segment_of(job.pos_in_module, job.tiles),
        )
        self._readings[job] = (at, reading)
        return reading

    def _keeps(self, job: MachineJob, module: int, at: int) -> bool:
        """:meth:`keeps`, each job weighed as its projection is known: the verdict is
        known at the first job it fails. The projection without ``job`` is made (and
        kept for the next candidates) where a running job passes its budget with it."""
        setup = self._setup(module, job, at)
        jobs, readings = setup.jobs, setup.readings
        p = self.sched.machine.logical_error_rate
        last = len(jobs) - 1  # ``job``
        before = self._before.get(module)
        for i, late in setup.lates():
            other = jobs[i]
            budget = other.budget
            if budget is None:
                continue
            error = idle_of(p, other.cost, readings[i][2], late)
            if error <= budget * HEADROOM:
                continue
            if i == last:  # it passes its own budget: whatever the others' fate
                return False
            if before is None:
                before = self._before[module] = self.projected(module)
            if error > before.get(other, 0.0) * (1 + 1e-9):
                return False
        return True
