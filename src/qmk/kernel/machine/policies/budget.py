"""Error budgets at admission: would starting a job keep every job's idle error within
its budget at the factories' current rate?

A job's idle logical error is ``1 - (1 - p_L)^(n W)`` for its ``n`` live patches idle
``W`` cycles. Where T states bind, a running job's remaining ``T`` states over the
remaining private cycles ``R_T`` of its steps that draw them is what it asks a cycle
while it draws, ``d = T / R_T``. The projection runs the module's jobs forward as a
fluid: the store's states first, then the factories' ``rate``. They are shared among the
jobs by the policy's supply rule (``cost``: the job whose waiting costs most first;
``fair``: tenants by weight, then their jobs). Each job is given at most ``d``, and a
job's share passes to the others when it has drawn all it needs. A job that has its
states at ``E`` is ``E - R_T`` cycles late, all of them idle. It is what the machine
promises at the rate it has now (a job asks ``d`` until its last state, its steps
without T states all after; the bus and the decoder left out).

A job is started only if, with it, no job's projected idle error (what it has waited
so far plus the projection) passes :data:`HEADROOM` of its budget where it would not
without it.

>>> idle_of(1e-3, 2, 0.0, 0.0)
0.0
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from qmk.kernel.machine.jobs import idle_error
from qmk.kernel.machine.supply import weighted_fill

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


def _asks(sched: Scheduler, job: MachineJob, fresh: bool) -> tuple[float, float, float]:
    """``(T states left, private cycles left, of them in steps that draw T states)`` of
    ``job`` (``fresh``: not started)."""
    tl = job.tl
    if fresh:
        first = tl.t_cycles_after[0] + (tl.cycles[0] * tl.repeat[0] if tl.t_states[0] else 0)
        return float(tl.t_total), float(tl.private_cycles), float(first if tl.cycles else 0)
    if job.chain_end >= 0:  # its steps left run whole: they draw no T state
        return 0.0, 0.0, 0.0
    done = sched.progress(job)
    return job.remaining_t(done), job.remaining(done), job.remaining_t_cycles(done)


def _shares(
    sched: Scheduler, jobs: list[MachineJob], asks: dict[MachineJob, float], rate: float
) -> dict[MachineJob, float]:
    """What each of ``jobs`` would get a cycle of ``rate`` under the policy's rule."""
    if sched.policy.supply == "cost":
        left, out = rate, {}
        for job in sorted(jobs, key=lambda j: (-j.cost, j.seq)):
            out[job] = min(asks[job], left)
            left -= out[job]
        return out
    by_tenant: dict[str, list[MachineJob]] = {}
    for job in jobs:
        by_tenant.setdefault(job.tenant, []).append(job)
    tenant_asks = {t: sum(asks[j] for j in js) for t, js in by_tenant.items()}
    tenant_share = weighted_fill(tenant_asks, sched.weights, rate)
    out = {}
    for tenant, members in by_tenant.items():
        shares = weighted_fill(
            {str(i): asks[j] for i, j in enumerate(members)}, {}, tenant_share[tenant]
        )
        for i, job in enumerate(members):
            out[job] = shares[str(i)]
    return out


def projected(
    sched: Scheduler, module: int, candidate: MachineJob | None = None, at: int = 0
) -> dict[MachineJob, float]:
    """Each running job's projected idle error on ``module`` (and ``candidate``'s, were
    it started there now, its first tile ``at`` of the module).

    The jobs' T states are drawn as a fluid from the store and the factories under the
    policy's rule (module docstring). Each job draws at most what it asks a cycle and
    its even part of its bus segment. A job's share passes to the others when it has
    drawn all."""
    jobs = [job for job in sched.state.running if job.module == module]
    if candidate is not None:
        jobs.append(candidate)
    states: dict[MachineJob, float] = {}
    drawing: dict[MachineJob, float] = {}
    asks: dict[MachineJob, float] = {}
    late: dict[MachineJob, float] = {}
    for job in jobs:
        t_left, _, t_cycles = _asks(sched, job, job is candidate)
        if t_left > 0 and t_cycles > 0:
            states[job] = t_left
            drawing[job] = t_cycles
            asks[job] = t_left / t_cycles
        else:
            late[job] = 0.0
    supply = sched.supply(module)
    bus = supply.bus
    segment = {
        job: bus.segment_of(at if job is candidate else job.pos_in_module, job.tiles)
        for job in states
    }
    sharing: dict[int, int] = {}
    for where in segment.values():
        sharing[where] = sharing.get(where, 0) + 1
    for job in states:  # neighbours on a segment split it
        asks[job] = min(asks[job], bus.cap / sharing[segment[job]])
    rate, store = supply.rate, supply.store
    now = 0.0
    while states:
        users = list(states)
        wanted = sum(asks[j] for j in users)
        if wanted <= rate:  # the factories keep up from now on: each draws what it asks
            for job in users:
                late[job] = max(0.0, now + states[job] / asks[job] - drawing[job])
            break
        cap = INF if store > 1e-9 else rate
        shares = _shares(sched, users, asks, cap) if wanted > cap else asks
        drawn = sum(shares[j] for j in users)
        step = min((states[j] / shares[j] for j in users if shares[j] > 0), default=INF)
        if store > 1e-9 and drawn > rate:
            step = min(step, store / (drawn - rate))
        if step == INF:  # the rest get nothing, ever
            late.update(dict.fromkeys(users, INF))
            break
        now += step
        store = max(0.0, store + (rate - drawn) * step) if store > 1e-9 else 0.0
        for job in users:
            states[job] -= shares[job] * step
            if states[job] <= 1e-9 * (1 + asks[job]):
                del states[job]
                late[job] = max(0.0, now - drawing[job])
    p = sched.machine.logical_error_rate
    return {job: idle_of(p, job.cost, job.idle_waited(), late[job]) for job in jobs}


class BudgetCheck:
    """One decision's budget verdicts: each projection made once per state of the machine.

    A policy makes one at a boundary and calls :meth:`started` after each start: until
    then the running jobs' projection is the same for every candidate, and candidates of
    one program (its timeline, tenant and budget) on one bus segment share a verdict.
    """

    def __init__(self, sched: Scheduler) -> None:
        self.sched = sched
        self._before: dict[int, dict[MachineJob, float]] = {}
        self._verdicts: dict[tuple[object, ...], bool] = {}

    def started(self) -> None:
        """A job started: what was projected holds no longer."""
        self._before.clear()
        self._verdicts.clear()

    def keeps(self, job: MachineJob, module: int, at: int = 0) -> bool:
        """Whether starting ``job`` on ``module`` now (its first tile ``at`` there) keeps
        every job's projected idle error within its budget, where it would have been
        without ``job`` (module docstring). A job that draws no T state (it takes none
        from the others), or one on a module where nothing runs (waiting would not help
        it), may always start."""
        sched = self.sched
        if not job.tl.t_total:
            return True
        if not any(other.module == module for other in sched.state.running):
            return True
        segment = sched.supply(module).bus.segment_of(at, job.tiles)
        key = (id(job.tl), job.tenant, job.budget, job.cost, module, segment)
        verdict = self._verdicts.get(key)
        if verdict is None:
            verdict = self._verdicts[key] = self._keeps(job, module, at)
        return verdict

    def _keeps(self, job: MachineJob, module: int, at: int) -> bool:
        after = projected(self.sched, module, job, at)
        before = None  # projected without ``job`` only where a budget is at stake
        for other, error in after.items():
            budget = other.budget
            if budget is None or error <= budget * HEADROOM:
                continue
            if other is job:
                return False
            if before is None:
                before = self._before.get(module)
                if before is None:
                    before = self._before[module] = projected(self.sched, module)
            if error > before.get(other, 0.0) * (1 + 1e-9):
                return False
        return True
