"""Error budgets at admission: would starting a job keep every job's idle error within
its budget at the factories' current rate?

A job's idle logical error is ``1 - (1 - p_L)^(n W)`` for its ``n`` live patches idle
``W`` cycles. Where T states bind, a running job's remaining ``T`` states over its
remaining private cycles ``R`` is what it asks a cycle, ``d = T / R``. The projection
runs the module's jobs forward as a fluid: the store's states first, then the
factories' ``rate``, shared among the jobs by the policy's supply rule (``cost``: the
job whose waiting costs most first; ``fair``: tenants by weight, then their jobs), each
job given at most ``d``, and a job's share passing to the others when it ends. A job
that ends at ``E`` ends ``E - R`` cycles late, all of them idle. It is what the machine
promises at the rate it has now (a job's demand averaged over its run; the bus and the
decoder left out).

A job is started only if, with it, no job's projected idle error (what it has waited
so far plus the projection) passes its budget where it would not without it.

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


def idle_of(rate: float, patches: int, waited: float, ahead: float) -> float:
    """The idle error of ``patches`` that waited ``waited`` cycles and will wait
    ``ahead`` more (INF cycles: certain)."""
    if ahead == INF:
        return 1.0
    return idle_error(rate, patches, waited + ahead)


def _asks(sched: Scheduler, job: MachineJob, fresh: bool) -> tuple[float, float]:
    """``(T states left, private cycles left)`` of ``job`` (``fresh``: not started)."""
    if fresh:
        return float(job.tl.t_total), float(job.tl.private_cycles)
    cycles = sched.remaining(job)  # its progress brought up to now first
    return job.remaining_t(), cycles


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
    sched: Scheduler, module: int, candidate: MachineJob | None = None
) -> dict[MachineJob, float]:
    """Each running job's projected idle error on ``module`` (and ``candidate``'s, were
    it started there now): the jobs' T states drawn as a fluid from the store and the
    factories under the policy's rule, each at most what it asks a cycle, a job's share
    passing to the others when it ends (module docstring)."""
    jobs = [job for job in sched.state.running if job.module == module]
    if candidate is not None:
        jobs.append(candidate)
    states: dict[MachineJob, float] = {}
    cycles: dict[MachineJob, float] = {}
    asks: dict[MachineJob, float] = {}
    late: dict[MachineJob, float] = {}
    for job in jobs:
        t_left, left = _asks(sched, job, job is candidate)
        cycles[job] = left
        if t_left > 0 and left > 0:
            states[job] = t_left
            asks[job] = t_left / left
        else:
            late[job] = 0.0
    supply = sched.supply(module)
    rate, store = supply.rate, supply.store
    now = 0.0
    while states:
        users = list(states)
        wanted = sum(asks[j] for j in users)
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
                late[job] = max(0.0, now - cycles[job])
    p = sched.machine.logical_error_rate
    return {job: idle_of(p, job.cost, job.idle_waited(), late[job]) for job in jobs}


def keeps_budgets(sched: Scheduler, job: MachineJob, module: int) -> bool:
    """Whether starting ``job`` on ``module`` now keeps every job's projected idle error
    within its budget, where it would have been without ``job`` (module docstring). On
    a module where nothing runs it may always start: waiting would not help it."""
    if not any(other.module == module for other in sched.state.running):
        return True
    before = projected(sched, module)
    after = projected(sched, module, job)
    for other, error in after.items():
        budget = other.budget
        if budget is None or error <= budget:
            continue
        if other is job or error > before.get(other, 0.0) * (1 + 1e-9):
            return False
    return True
