"""Error budgets at admission: would starting a job keep every job's idle error within
its budget at the factories' current rate?

A job's idle logical error is ``1 - (1 - p_L)^(n W)`` for its ``n`` live patches idle
``W`` cycles. Where T states bind, a running job's remaining ``T`` states over the
remaining private cycles ``R_T`` of its steps that draw them is what it asks a cycle
while it draws, ``d = T / R_T``.

Each tenant's jobs are projected on the tenant's own part of the module: its quota
weight over the weights of the tenants that draw T states there and of those with a
queued T-drawing job that fits beside the candidate now (:meth:`BudgetCheck.part`), of
the store's states, the factories' ``rate`` and each bus segment. The supply never gives
a tenant less while they draw (tenants by weight first, the ``fair`` rule, on the
factories and on every segment). A tenant not counted (its jobs did not fit, or came
later) that comes to draw takes from the parts of those drawing, so its first T-drawing
start on a module is weighed against their jobs on the parts they keep with it
(:meth:`BudgetCheck._others_keep`); any other start is weighed against its own tenant's
jobs only, and never buys another tenant's part. Counting a tenant whose jobs cannot
start beside a job would project the job on a part it never has: it would be refused a
fast placement with nothing drawing beside it.
Within the part, the projection runs the tenant's jobs forward as a fluid: the store's
states first, then the factories', shared max-min. Each job is given at most ``d``,
less where its bus segment, shared max-min among the jobs beside it as the supply
shares it, carries less. A job's share of the factories, and of its segment, passes to
the others when it has drawn all it needs. A job that has its states at ``E`` is
``E - R_T`` cycles late, all of them idle. It is what the machine promises at the rate
it has now (a job asks ``d`` until its last state, its steps without T states all
after, and the store refills at no rate). Where the decoder is limited, a start is
also weighed on the throttles it would set, against its tenant's running jobs
(:meth:`BudgetCheck._decoder_keeps`).

A job is **placed at the cheapest code distance** whose projection keeps the budgets
(:meth:`BudgetCheck.fit`): the machine's own first, then each of its
``larger_distances`` (:func:`~qmk.kernel.machine.footprints.at_distance`: more tiles,
longer logical cycles, and waits cheaper by the code's suppression, about ten times a
step of two at ``p = 1e-3``). A larger distance costs tiles; it buys the waiting a
tenant's part makes a job do. A placement that fits now but ends later than waiting
for a quicker one's tiles would is passed over (:meth:`BudgetCheck._soonest`).

A job its part alone cannot keep at any placement (no job of its tenant runs on the
module) starts only where no T state is drawn on the machine, at the first placement
whose projection on the whole rate keeps its budget (:meth:`BudgetCheck._alone`); it
runs ``sole`` and other tenants' T-drawing jobs wait on its module while it runs, so that
projection holds. Where no placement's does, waiting would not help it: it starts
``sole`` at the placement of least whole error (its budget is one no schedule meets,
``QK505``). Where no other tenant draws, its part is the whole, and it is projected
there as any job is: a placement its waits would take past its budget is passed over.
A placement its part keeps is passed over for a cheaper one the job may start ``sole``
at where it would run more than :data:`SOLE_GAIN` times as long.

A job held back is looked at again at every epoch boundary
(:meth:`~qmk.kernel.machine.core.Scheduler.look_again`): its projection changes as the
running jobs draw, with no arrival or end, so it is weighed again each time (a verdict
kept until its inputs change would hold them all: every running job's reading moves
with the time).

A job is started only if, with it, no job's projected idle error (what it has waited
so far plus the projection) passes :data:`HEADROOM` of its budget where it would not
without it.

**No job is started only to sit idle** (:meth:`BudgetCheck._only_idles`). A budgeted
job whose states, started now beside its tenant's drawing jobs, would come no sooner
than were it to stay queued until they leave it what it draws alone, then run as late
as it would alone, waits in the queue: started, it would end no sooner, its patches
idle all the while, and the jobs beside it slowed. A job without a budget puts no
price on its idle cycles: it starts as the budgets allow.

>>> idle_of(1e-3, 2, 0.0, 0.0)
0.0
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import TYPE_CHECKING

from qmk.kernel.machine.jobs import idle_error, whole_error
from qmk.kernel.machine.placement import Placement, Placements
from qmk.kernel.machine.policies.base import SchedulingPolicy
from qmk.kernel.machine.policies.reserve import reservation
from qmk.kernel.machine.policies.tenants import hold_free_at
from qmk.kernel.machine.supply import max_min, max_min_past

if TYPE_CHECKING:
    from collections.abc import Callable

    from qmk.kernel.machine.core import Scheduler
    from qmk.kernel.machine.jobs import MachineJob
    from qmk.kernel.machine.tiles import TileRange

INF = math.inf
#: Why :meth:`BudgetCheck.fit` refused a job (its ``refused_for``): the floorplan (no
#: placement's tiles free, its tenant's hold, or the wait for a quicker placement's
#: tiles) or a budget (a placement it could start at now, its projection refused).
TILES, BUDGET = "tiles", "budget"
#: How many times longer than a cheaper placement the job may start ``sole`` at (its
#: part refuses it, the whole rate keeps it, no T state is drawn on the machine) the
#: first placement its part keeps may run before the ``sole`` one is taken instead: the
#: cycles it saves then pass those the other tenants' T-drawing jobs wait on it.
SOLE_GAIN = 2.0
#: The part of a budget a projection may spend: the projection averages a job's demand
#: over its T steps and ignores what arrives later, so it keeps this much in reserve.
HEADROOM = 0.8


def idle_of(rate: float, patches: int, waited: float, ahead: float) -> float:
    """The idle error of ``patches`` that waited ``waited`` cycles and will wait
    ``ahead`` more (INF cycles: certain)."""
    if ahead == INF:
        return 1.0
    return idle_error(rate, patches, waited + ahead)


def _rate(job: MachineJob, p: float) -> float:
    """``job``'s patches' logical error a machine cycle: its own where it runs at a
    larger code distance (:meth:`BudgetCheck.fit`), else the machine's ``p``."""
    return job.p if job.p >= 0 else p


def _cycles(option: Placement) -> float:
    """``option``'s private cycles (its run alone there)."""
    return option.timeline.private_cycles


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
    """A projection of one tenant's jobs set up on its ``part`` of a module: which draw
    T states (``users``; the others are ``idle``) and their bus asks. A projection with
    one job more is set up from it (:meth:`plus`), as from scratch: a decision weighs
    many candidates against the same running jobs."""

    __slots__ = ("bus", "idle", "jobs", "module", "owned", "part", "readings", "sched", "users")

    def __init__(
        self,
        sched: Scheduler,
        module: int,
        jobs: list[MachineJob],
        readings: list[Reading],
        part: float = 1.0,
    ) -> None:
        self.sched = sched
        self.module = module
        self.jobs = jobs
        self.readings = readings
        self.part = part
        self.users: list[int] = []
        self.idle: list[int] = []
        for i, (t_left, t_cycles, _, _) in enumerate(readings):
            (self.users if t_left > 0 and t_cycles > 0 else self.idle).append(i)
        self.bus = _BusAsks(readings, self.users, sched.supply(module).bus.cap * part)
        #: whether :meth:`lates` may run on ``bus`` itself (a copy made for one use)
        self.owned = False

    def plus(self, job: MachineJob, reading: Reading) -> _Setup:
        """The same jobs and ``job`` last, as set up from scratch."""
        out = _Setup.__new__(_Setup)
        out.sched, out.module, out.owned, out.part = self.sched, self.module, True, self.part
        out.jobs = [*self.jobs, job]
        out.readings = [*self.readings, reading]
        i = len(self.jobs)
        out.users, out.idle = list(self.users), list(self.idle)
        if reading[0] > 0 and reading[1] > 0:
            out.users.append(i)
            out.bus = self.bus.plus(out.readings, i)
        else:
            out.idle.append(i)
            out.bus = self.bus.plus(out.readings, -1)
        return out

    def lates(self) -> Iterator[tuple[int, float]]:
        """Each job's cycles late, as ``(its index, cycles)`` the moment it is known:
        the jobs that draw no T state first, then each as it has drawn all. Its T states
        are drawn as a fluid from the tenant's part of the module's store and factories,
        max-min (module docstring). Each job draws at most what it asks a cycle, and its bus
        segment's neighbours share it max-min, as the supply shares it. A job's share of
        the factories, and of its segment, passes to the others when it has drawn all.
        What is set up here is not changed."""
        for i in self.idle:
            yield i, 0.0
        users = list(self.users)
        if not users:
            return
        self.sched.work["projections"] += 1
        readings = self.readings
        supply = self.sched.supply(self.module)
        states = [r[0] for r in readings]
        drawing = [r[1] for r in readings]
        bus = self.bus if self.owned else self.bus.plus(readings, -1)
        self.owned = False
        asks = bus.asks
        rate, store = supply.rate * self.part, supply.store * self.part
        yield from _drawn(users, bus, states, drawing, asks, rate, store)


def _drawn(
    users: list[int],
    bus: _BusAsks,
    states: list[float],
    drawing: list[float],
    asks: list[float],
    rate: float,
    store: float,
) -> Iterator[tuple[int, float]]:
    """The fluid of :meth:`_Setup.lates` run from its set-up: each user's cycles late."""
    now = 0.0
    while users:
        mine = [asks[i] for i in users]  # what each of ``users`` draws a cycle, in order
        wanted = sum(mine)
        if wanted <= rate and (not bus.held or bus.most(users) <= rate):
            yield from bus.ends(users, states, now, drawing)  # the factories keep up from now on
            return
        # each draws what it asks where the factories keep up until a segment's
        # neighbour leaves, or while the store lasts
        if wanted > rate and store <= 1e-9:
            mine = max_min_past(mine, rate)  # (the ``fair`` rule within a tenant)
            drawn = sum(mine)
        else:
            drawn = wanted
        pairs = zip(users, mine, strict=True)
        step = min([states[i] / share for i, share in pairs if share > 0], default=INF)
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
        for i, share in zip(users, mine, strict=True):
            left = states[i] - share * step
            states[i] = left
            if left <= 1e-9 * (1 + asks[i]):
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


def projected(
    sched: Scheduler,
    module: int,
    candidate: MachineJob | None = None,
    at: int = 0,
    tiles: int = 0,
) -> dict[MachineJob, float]:
    """Each running job's projected idle error on ``module`` (and ``candidate``'s, were
    it started there now, its first tile ``at`` of the module), each tenant's jobs on
    its part beside a job of ``tiles`` tiles (the candidate's where given):
    :meth:`_Setup.lates`."""
    return BudgetCheck(sched).projected(module, candidate, at, tiles)


class Drawers:
    """The tenants with T-drawing jobs on the machine (queued, running or stopped), and
    how many each has: those a tenant's part is counted among
    (:meth:`BudgetCheck.part`). Kept as jobs arrive and end, never counted over them.
    A tenant that arrives later is not foreseen; counting every tenant named with a
    weight instead would hold jobs back for tenants with nothing here."""

    __slots__ = ("_jobs", "count")

    def __init__(self) -> None:
        self.count: dict[str, int] = {}
        self._jobs: set[MachineJob] = set()

    @classmethod
    def of(cls, sched: Scheduler) -> Drawers:
        """The drawers of ``sched``: its policy's where it keeps them
        (:class:`Budgeted`), else counted over its jobs once."""
        policy = sched.policy
        if isinstance(policy, Budgeted):
            return policy.drawers
        out = cls()
        state = sched.state
        for job in [*state.queue, *state.running, *state.stopped]:
            out.arrived(job)
        return out

    def arrived(self, job: MachineJob) -> None:
        if job.tl.t_total and job not in self._jobs:
            self._jobs.add(job)
            self.count[job.tenant] = self.count.get(job.tenant, 0) + 1

    def ended(self, job: MachineJob) -> None:
        if job in self._jobs:
            self._jobs.remove(job)
            left = self.count[job.tenant] - 1
            if left:
                self.count[job.tenant] = left
            else:
                del self.count[job.tenant]


#: A start's verdict (:meth:`BudgetCheck._verdict`): True, it keeps every budget on its
#: tenant's part; False, it waits; None, it may start ``sole`` (the whole rate keeps
#: it); a float, waiting would not help it (no T state is drawn) and even the whole rate
#: cannot keep it: its projected idle error there, so :meth:`BudgetCheck.fit` starts it
#: at its placement of least error over budget where no placement keeps.
Verdict = bool | float | None


class Budgeted(SchedulingPolicy):
    """A policy that keeps budgets: the T-drawing tenants kept as jobs come and go
    (:class:`Drawers`), its supply the ``fair`` rule a tenant's part rests on."""

    budgets = True
    supply = "fair"

    def __init__(self) -> None:
        self.drawers = Drawers()
        #: each program's placements on the machine (:meth:`setup` makes it)
        self.placements: Placements | None = None
        #: the fewest tiles a queued job of each kind (``job.kind``) that draws T
        #: states may start on (of its usable placements): whether it fits beside a
        #: candidate (:meth:`BudgetCheck.part`)
        self.least_tiles: dict[tuple[object, ...], int] = {}
        #: each kind's :meth:`BudgetCheck._soonest`, with what it read
        self.ends: dict[tuple[object, ...], tuple[tuple[object, ...], float]] = {}

    def setup(self, sched: Scheduler) -> None:
        self.drawers = Drawers()
        self.placements = Placements(sched.machine)
        self.least_tiles = {}
        self.ends = {}

    def arrived(self, sched: Scheduler, job: MachineJob) -> None:
        if not job.tl.t_total:
            return  # it draws no T state: no drawer, no least tiles
        self.drawers.arrived(job)
        if job.kind not in self.least_tiles:
            known = self.placements
            options = [job.fp] if known is None else [p.footprint for p in known.usable(job)[0]]
            self.least_tiles[job.kind] = min(fp.tiles for fp in options)

    def ended(self, sched: Scheduler, job: MachineJob) -> None:
        self.drawers.ended(job)


class BudgetCheck:
    """One decision's budget verdicts: each projection made once per state of the machine.

    A policy makes one at a boundary and calls :meth:`started` after each start: until
    then a tenant's running jobs' projection is the same for every candidate, and
    candidates of one program (its timeline, tenant and budget) on one bus segment share
    a verdict. What a projection reads of a running job is read once while the job stays
    as it was (its version and its last settling unchanged) and the time does not move.
    """

    def __init__(self, sched: Scheduler) -> None:
        self.sched = sched
        self.drawers = Drawers.of(sched)
        self._before: dict[tuple[int, str, float], dict[MachineJob, float]] = {}
        self._verdicts: dict[tuple[object, ...], Verdict] = {}
        self._readings: dict[MachineJob, tuple[tuple[int, float, float], Reading]] = {}
        self._decoder_verdicts: dict[tuple[object, ...], bool] = {}
        #: each (module, tenant)'s running jobs set up for a projection, with what each
        #: was read at (a running job settled meanwhile is read again)
        self._setups: dict[
            tuple[int, str, float], tuple[list[tuple[int, float, float]], _Setup]
        ] = {}
        #: the running jobs by (module, tenant), the modules where one draws T states,
        #: and the tenants running ``sole`` by module: grouped once until a start
        self._groups: dict[tuple[int, str], list[MachineJob]] | None = None
        self._parts: dict[tuple[str, int, int], float] = {}
        #: the tenants that draw T states on each module (:meth:`drawing`)
        self._drawing: dict[int, set[str]] = {}
        #: whether a first T-drawing job on a module of a tenant of a weight keeps the
        #: other tenants' budgets there (:meth:`_others_keep`)
        self._others: dict[tuple[float, int], bool] = {}
        self._floor: tuple[object, ...] | None = None  # what :meth:`_soonest` reads
        #: why the last :meth:`fit` that refused did (:data:`TILES` or :data:`BUDGET`)
        self.refused_for = TILES
        #: each tile range's held runs and their ends (:func:`~.reserve.occupied`),
        #: read once until a start: within a decision the time stands
        self._runs: dict[int, list[tuple[int, int, float]]] = {}
        #: each running jobs' set-up's ends of drawing, sorted (:meth:`_only_idles`)
        self._ends: dict[tuple[int, str, float], tuple[_Setup, list[tuple[float, float, int]]]] = {}

    def started(self) -> None:
        """A job started: what was projected holds no longer."""
        self._before.clear()
        self._verdicts.clear()
        self._readings.clear()
        self._decoder_verdicts.clear()
        self._setups.clear()
        self._groups = None
        self._parts.clear()
        self._drawing.clear()
        self._others.clear()
        self._floor = None
        self._runs.clear()

    def reservation(self, job: MachineJob) -> tuple[TileRange, int, float] | None:
        """:func:`~.reserve.reservation` of ``job``, each tile range's held runs read
        once until a start."""
        return reservation(self.sched, job, self._runs)

    def part(self, tenant: str, module: int = 0, tiles: int = 0) -> float:
        """The part of ``module``'s factories, store and bus segments ``tenant`` is sure
        of while a job of ``tiles`` tiles it starts there runs: its quota weight over
        the weights of the tenants that draw T states on the module (:meth:`drawing`),
        its own included, and of those with a queued T-drawing job that fits in the
        module's free tiles beside it (at its fewest tiles). The ``fair`` supply never
        gives it less while they all draw, so its jobs are projected on this part
        alone. A tenant not counted that comes to draw later is weighed when it does:
        its first start keeps the counted tenants' budgets (:meth:`_others_keep`).
        Where the policy keeps no table of queued jobs' tiles, every tenant with a
        T-drawing job on the machine is counted (:class:`Drawers`)."""
        key = (tenant, module, tiles)
        part = self._parts.get(key)
        if part is None:
            sched = self.sched
            own = sched.weight(tenant)
            counted = self._counted(module, tiles)
            others = sum(sched.weight(t) for t in counted if t != tenant)
            part = self._parts[key] = own / (own + others)
        return part

    def _counted(self, module: int, tiles: int) -> set[str] | dict[str, int]:
        """The tenants a part on ``module`` beside a job of ``tiles`` is counted among
        (:meth:`part`)."""
        sched = self.sched
        policy = sched.policy
        if not isinstance(policy, Budgeted) or policy.placements is None:
            return self.drawers.count
        counted = set(self.drawing(module))
        room = sum(r.tree.free for r in sched.ranges if r.module == module) - tiles
        least = policy.least_tiles
        for tenant, kinds in sched.state.kinds_of.items():
            if tenant in counted:
                continue
            for kind in kinds:
                need = least.get(kind)
                if need is not None and need <= room:
                    counted.add(tenant)
                    break
        return counted

    def drawing(self, module: int) -> set[str]:
        """The tenants that draw T states on ``module``: with a running job there that
        has T states left, or a stopped job that draws them (it may resume there)."""
        out = self._drawing.get(module)
        if out is None:
            out = self._drawing[module] = set()
            state = self.sched.state
            for (m, tenant), jobs in state.running_at.items():
                if m == module and any(
                    job.tl.t_total and self._reading(job)[0] > 0 for job in jobs
                ):
                    out.add(tenant)
            for job in state.stopped:
                if job.tl.t_total:
                    out.add(job.tenant)
        return out

    def _others_keep(self, job: MachineJob, module: int) -> bool:
        """Whether ``job``'s tenant coming to draw T states on ``module`` keeps every
        other drawing tenant's jobs there within their budgets on the part they keep
        with it, where they were on their part without it (a tenant not counted in their
        parts, :meth:`part`). A tenant drawing there already takes no more from them."""
        tenant = job.tenant
        drawing = self.drawing(module)
        if tenant in drawing or not drawing:
            return True
        # (a tenant not drawing here weighs on the others by its weight alone)
        key = (self.sched.weight(tenant), module)
        kept = self._others.get(key)
        if kept is None:
            kept = self._others[key] = self._others_weigh(key[0], module, drawing)
        return kept

    def _others_weigh(self, joining: float, module: int, drawing: set[str]) -> bool:
        """:meth:`_others_keep` for a tenant of weight ``joining``: each drawing
        tenant's projection on its part without it and with it, each made once a
        decision (:meth:`_errors`)."""
        sched = self.sched
        total = sum(sched.weight(t) for t in drawing)
        for other in drawing:
            if not self._running_on(module, other):
                continue
            weight = sched.weight(other)
            before = self._errors(module, other, weight / total)
            after = self._errors(module, other, weight / (total + joining))
            for job, error in after.items():
                budget = job.budget
                if budget is None:
                    continue
                if error > budget * HEADROOM and error > before[job] * (1 + 1e-9):
                    return False
        return True

    def _errors(self, module: int, tenant: str, part: float) -> dict[MachineJob, float]:
        """:meth:`_projected_of` ``tenant``'s running jobs on ``part`` of ``module``,
        made once until a start."""
        key = (module, tenant, part)
        errors = self._before.get(key)
        if errors is None:
            errors = self._before[key] = self._projected_of(module, tenant, part=part)
        return errors

    def keeps(self, job: MachineJob, module: int, at: int = 0) -> bool:
        """:meth:`verdict`; a job held back is looked at again at the next epoch
        (:meth:`~qmk.kernel.machine.core.Scheduler.look_again`): its projection
        changes as the running jobs draw."""
        if self.verdict(job, module, at):
            return True
        self.sched.look_again()
        return False

    def verdict(self, job: MachineJob, module: int, at: int = 0) -> bool:
        """:meth:`_verdict`, a job that may start ``sole`` marked so."""
        verdict = self._verdict(job, module, at)
        job.sole = verdict is not True and verdict is not False
        return verdict is not False

    def fit(
        self,
        job: MachineJob,
        may: Callable[[MachineJob], bool] | None = None,
        spot: tuple[TileRange, int] | None = None,
    ) -> tuple[TileRange, int] | None:
        """Where ``job`` starts now, and at which block and code distance: the first of
        its placements (:func:`~qmk.kernel.machine.placement.usable`, cheapest first)
        that ``find`` places, ``may`` lets its tenant hold, that ends no later than
        waiting for a quicker one would (:meth:`_soonest`), and whose projection keeps
        the budgets (:meth:`verdict`), its waits on what its own error there leaves of
        its budget (but for a cheaper one it may start ``sole`` at that runs under a
        :data:`SOLE_GAIN`-th of its cycles); the first it may start ``sole`` at last
        (module docstring). None: it waits as it came, looked at again at the next
        epoch boundary. ``spot``: where ``find`` places ``job`` as it is (the caller
        asked, the floorplan unchanged since), not asked again for its placement now.
        Where it refuses, ``refused_for`` says why: :data:`BUDGET` where a placement it
        could start at now was refused by its projection, else :data:`TILES`."""
        sched = self.sched
        sched.work["fits"] += 1
        policy = sched.policy
        if not isinstance(policy, Budgeted) or policy.placements is None:
            return self._fit_as_is(job, may, spot)
        options, home = policy.placements.usable(job)
        sole = None
        futile: tuple[float, Placement, tuple[TileRange, int]] | None = None
        held = False  # a placement was refused by a budget (not by the floorplan)
        found = job.fp if spot is not None else None  # the placement ``spot`` is of
        soonest = None  # the earliest a placement the floorplan holds back could end
        ranges = sched.allowed_ranges(job)
        # the most tiles ``find`` can place now: a placement of more is not looked for
        room = max([area.tree.largest for area in ranges], default=0)
        quickest = min([p.timeline.private_cycles for p in options])
        for option in options:
            if option.footprint is not found and option.footprint.tiles > room:
                continue
            job.take(option.footprint, option.timeline, option.rate, option.own)
            there = spot if option.footprint is found else sched.find(job, ranges)
            if there is None or (may is not None and not may(job)):
                continue
            cycles = option.timeline.private_cycles
            if quickest < cycles:  # a quicker placement is among them
                soonest = self._soonest(policy, job, options, may) if soonest is None else soonest
                job.take(option.footprint, option.timeline, option.rate, option.own)
                if sched.now + cycles > soonest:
                    continue  # it ends later than waiting for a quicker placement would
            verdict = self._verdict(job, there[0].module, there[0].spec.offset + there[1])
            if verdict is True:
                if sole is None or cycles <= SOLE_GAIN * sole[0].timeline.private_cycles:
                    job.sole = False
                    return there
                break  # a cheaper placement ``sole`` ends far sooner (:data:`SOLE_GAIN`)
            if verdict is None and sole is None:
                sole = option, there
            elif verdict is not None and verdict is not False:
                whole = whole_error(option.own, verdict)
                if futile is None or whole < futile[0]:
                    futile = whole, option, there
            held = held or verdict is False
        if sole is None and futile is not None:
            sole = futile[1], futile[2]
        if sole is not None:
            option, there = sole
            job.take(option.footprint, option.timeline, option.rate, option.own)
            job.sole = True
            return there
        job.take(home.footprint, home.timeline, home.rate, home.own)  # as it came
        self.refused_for = BUDGET if held else TILES
        if held:
            sched.look_again()
        return None

    def _soonest(
        self,
        policy: Budgeted,
        job: MachineJob,
        options: list[Placement],
        may: Callable[[MachineJob], bool] | None,
    ) -> float:
        """The earliest ``job`` could end at one of ``options`` the floorplan or its
        tenant's hold holds back, were it to wait for its tiles: backfill's
        ``reservation`` (or later, when its tenant's own running jobs leave it room:
        :func:`~.tenants.hold_free_at`) plus its cycles there (INF: none). A tenant at its
        bound now is not a tenant at its bound for good. Made once a kind while the
        running jobs' steps, the stopped jobs and the tenants waiting stay; it leaves
        ``job`` at one of ``options``."""
        sched, state = self.sched, self.sched.state
        if self._floor is None:
            running = tuple([(j.seq, j.version) for j in state.running])
            self._floor = (running, tuple(state.stopped), frozenset(state.tenants_waiting()))
        held = policy.ends.get(job.kind)
        if held is not None and held[0] == self._floor:
            return held[1]
        best = INF
        now = sched.now
        # quickest first: a placement ends no sooner than now and its cycles, so once
        # that is past the best found, no later one can better it
        for option in sorted(options, key=_cycles):
            cycles = option.timeline.private_cycles
            if now + cycles >= best:
                break
            job.take(option.footprint, option.timeline, option.rate, option.own)
            mays = may is None or may(job)
            if mays and sched.find(job) is not None:
                continue  # free now, nothing holds it back: its reservation is now, no wait
            free = self.reservation(job)
            if free is None:
                continue
            at = free[2]
            if not mays:
                at = max(at, hold_free_at(sched, job))  # its tenant's own jobs end first
            if at > now:
                best = min(best, at + cycles)
        policy.ends[job.kind] = (self._floor, best)
        return best

    def _fit_as_is(
        self,
        job: MachineJob,
        may: Callable[[MachineJob], bool] | None,
        spot: tuple[TileRange, int] | None = None,
    ) -> tuple[TileRange, int] | None:
        """:meth:`fit` at the placement ``job`` has (a policy that chooses none)."""
        if spot is None:
            spot = self.sched.find(job)
        if spot is None or (may is not None and not may(job)):
            self.refused_for = TILES
            return None
        verdict = self._verdict(job, spot[0].module, spot[0].spec.offset + spot[1])
        job.sole = verdict is not True and verdict is not False
        if verdict is False:
            self.refused_for = BUDGET
            self.sched.look_again()
            return None
        return spot

    def _verdict(self, job: MachineJob, module: int, at: int = 0) -> Verdict:
        """Whether starting ``job`` on ``module`` now (its first tile ``at`` there) keeps
        its tenant's jobs' projected idle errors within their budgets on its
        :meth:`part`, where they would have been without ``job`` (module docstring):
        a :data:`Verdict`. A job that draws no T state (it takes none from the others)
        may always start. Where its part cannot keep it, none of its own runs here and
        no T state is drawn on the machine, waiting would not help it: it may start
        ``sole`` where the whole rate keeps it (:meth:`_alone`), else its error there
        is told (module docstring)."""
        sched = self.sched
        if not sched.rates.no_decoder and not self._decoder_keeps(job):
            return False
        if not job.tl.t_total:
            return True
        tenant = job.tenant
        here = self._running_on(module, tenant)
        if any(t != tenant for t in self._sole_on(module)):
            return False  # another tenant's job runs past its part: it has the factories
        if not self._others_keep(job, module):
            return False  # it would take from another tenant's part what its jobs need
        segment = sched.supply(module).bus.segment_of(at, job.tiles)
        part = self.part(tenant, module, job.tiles)
        key = (job.tl, tenant, job.budget, job.cost, module, segment, part)
        if key in self._verdicts:
            return self._verdicts[key]
        verdict: Verdict = self._keeps(job, module, at, part)
        if not verdict and not here and not self._drawing_on():
            error = self._alone(job, module, at)
            keeps = job.budget is None or error <= job.budget * HEADROOM
            verdict = None if keeps else error
        self._verdicts[key] = verdict
        return verdict

    def _alone(self, job: MachineJob, module: int, at: int) -> float:
        """``job``'s projected idle error started alone on ``module`` now (its first
        tile ``at`` there), on the whole of its factories, store and bus: what it has
        running ``sole``."""
        sched = self.sched
        t_left, t_cycles = _fresh(job)
        segment = sched.supply(module).bus.segment_of(at, job.tiles)
        reading = (t_left, t_cycles, job.idle_waited(), segment)
        setup = _Setup(sched, module, [job], [reading], 1.0)
        late = dict(setup.lates())[0]
        return idle_of(_rate(job, sched.machine.logical_error_rate), job.cost, reading[2], late)

    def _decoder_keeps(self, job: MachineJob) -> bool:
        """Whether the decoder's throttles with ``job`` started keep every job of its
        tenant within :data:`HEADROOM` of its budget, where they did without it (the
        decoder is the machine's, so its tenant's running jobs of every module are
        weighed; the decoder shares its bits by tenant weight first).

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
            if idle_of(_rate(job, p), job.cost, job.idle_waited(), ahead) > job.budget * HEADROOM:
                return False
        for other in running:
            if other.tenant != job.tenant:  # its tenant's share is its own
                continue
            f_after = after.get(other.tenant, 1.0)
            f_before = rates.throttle(other.tenant)  # (the decoder's own, as it is now)
            if other.budget is None or f_after >= 1.0 or f_after >= f_before:
                continue
            left = other.remaining(rates.progress(other))
            waited = other.idle_waited() + rates.idled_since_settled(other)
            error = idle_of(_rate(other, p), other.cost, waited, left * (1.0 / f_after - 1.0))
            if error <= other.budget * HEADROOM:
                continue
            if error > idle_of(
                _rate(other, p), other.cost, waited, left * (1.0 / f_before - 1.0)
            ) * (1 + 1e-9):
                return False
        return True

    def _running_on(self, module: int, tenant: str) -> list[MachineJob]:
        """``tenant``'s running jobs on ``module``, in the machine's order (listed once
        until a start: no job ends or stops within a decision)."""
        groups = self._groups
        if groups is None:
            groups = self._groups = {}
        key = (module, tenant)
        jobs = groups.get(key)
        if jobs is None:
            jobs = groups[key] = list(self.sched.state.running_at.get(key, ()))
        return jobs

    def _sole_on(self, module: int) -> dict[str, int]:
        """The tenants with a job running on ``module`` past its part (``sole``)."""
        return self.sched.state.sole_on.get(module, {})

    def _drawing_on(self) -> dict[int, int]:
        """The modules where a running job draws T states."""
        return self.sched.state.drawing_on

    def projected(
        self, module: int, candidate: MachineJob | None = None, at: int = 0, tiles: int = 0
    ) -> dict[MachineJob, float]:
        """Each running job's projected idle error on ``module`` (and ``candidate``'s,
        were it started there now, its first tile ``at`` of the module): each tenant's
        jobs on its :meth:`part` beside a job of ``tiles`` tiles (the candidate's where
        given)."""
        tenants = dict.fromkeys(t for m, t in self.sched.state.running_at if m == module)
        if candidate is not None:
            tenants[candidate.tenant] = None
            tiles = candidate.tiles
        out: dict[MachineJob, float] = {}
        for tenant in tenants:
            mine = candidate if candidate is not None and candidate.tenant == tenant else None
            part = self.part(tenant, module, tiles)
            out.update(self._projected_of(module, tenant, mine, at, part))
        return out

    def _projected_of(
        self,
        module: int,
        tenant: str,
        candidate: MachineJob | None = None,
        at: int = 0,
        part: float = 1.0,
    ) -> dict[MachineJob, float]:
        """Each of ``tenant``'s running jobs' projected idle error on ``module`` (and
        ``candidate``'s, one of its jobs) on ``part`` of it."""
        setup = self._setup(module, tenant, candidate, at, part)
        jobs, readings = setup.jobs, setup.readings
        late = dict(setup.lates())
        p = self.sched.machine.logical_error_rate
        return {
            job: idle_of(_rate(job, p), job.cost, reading[2], late[i])
            for i, (job, reading) in enumerate(zip(jobs, readings, strict=True))
        }

    def _setup(
        self, module: int, tenant: str, candidate: MachineJob | None, at: int, part: float
    ) -> _Setup:
        """``tenant``'s projection on ``part`` of ``module`` set up (``candidate`` last,
        its first tile ``at``). The running jobs' part is made once while none of them
        moves on or is settled."""
        sched = self.sched
        jobs = self._running_on(module, tenant)
        now = sched.now
        stamps = [(job.version, job.last, now) for job in jobs]
        held = self._setups.get((module, tenant, part))
        if held is not None and held[0] == stamps and held[1].jobs == jobs:
            base = held[1]
        else:
            readings = [self._reading(job) for job in jobs]
            base = _Setup(sched, module, list(jobs), readings, part)
            self._setups[(module, tenant, part)] = (stamps, base)
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

    def _keeps(self, job: MachineJob, module: int, at: int, part: float) -> bool:
        """:meth:`verdict`'s projection, each of its tenant's jobs weighed as its
        projection is known: the verdict is known at the first job it fails. The
        projection without ``job`` is made (and kept for the next candidates) where a
        running job passes its budget with it."""
        tenant = job.tenant
        setup = self._setup(module, tenant, job, at, part)
        jobs, readings = setup.jobs, setup.readings
        p = self.sched.machine.logical_error_rate
        last = len(jobs) - 1  # ``job``
        before = self._before.get((module, tenant, part))
        mine = 0.0  # ``job``'s cycles late
        for i, late in setup.lates():
            other = jobs[i]
            if i == last:
                mine = late
            budget = other.budget
            if budget is None:
                continue
            error = idle_of(_rate(other, p), other.cost, readings[i][2], late)
            if error <= budget * HEADROOM:
                continue
            if i == last:  # it passes its own budget: whatever the others' fate
                return False
            if before is None:
                before = self._errors(module, tenant, part)
            if error > before.get(other, 0.0) * (1 + 1e-9):
                return False
        return job.budget is None or not self._only_idles(setup, mine)

    def _only_idles(self, setup: _Setup, mine: float) -> bool:
        """Whether the last job of ``setup`` (the candidate, ``mine`` cycles late) would
        only sit idle: its states come no sooner than were it to stay queued until its
        tenant's running jobs (on the part) leave it what it would draw alone, then run
        late as it would alone (module docstring). The running jobs are taken to draw
        what they ask until they have drawn all, as projected without it; the store is
        left out of the wait (it only makes starting now look better)."""
        t_left, t_cycles, _, segment = setup.readings[-1]
        if mine <= 0 or t_left <= 0 or t_cycles <= 0:
            return False
        tenant = setup.jobs[-1].tenant
        base = self._setup(setup.module, tenant, None, 0, setup.part)
        supply = self.sched.supply(setup.module)
        rate, cap = supply.rate * setup.part, base.bus.cap
        alone = min(t_left / t_cycles, cap, rate)  # what it would draw a cycle alone
        if alone <= 0:
            return False
        key = (setup.module, tenant, setup.part)
        held = self._ends.get(key)
        if held is None or held[0] is not base:  # (made once while its jobs stay)
            asks, readings = base.bus.asks, base.readings
            ends = sorted(
                (readings[i][1] + late, asks[i], readings[i][3])
                for i, late in base.lates()
                if asks[i] > 0
            )
            held = self._ends[key] = (base, ends)
        ends = held[1]
        drawn = sum(ask for _, ask, _ in ends)
        beside = sum(ask for _, ask, at in ends if at == segment)
        queued = 0.0  # from when the running jobs leave it ``alone`` (INF: never)
        for end, ask, at in [(0.0, 0.0, -1), *ends]:
            drawn, beside = drawn - ask, beside - (ask if at == segment else 0.0)
            if rate - drawn >= alone * (1 - 1e-9) and cap - beside >= alone * (1 - 1e-9):
                queued = end
                break
        else:
            return False
        if queued <= 0 or queued == INF:
            return False
        late_alone = max(0.0, t_left / alone - t_cycles)
        return mine >= (queued + late_alone) * (1 - 1e-9)
