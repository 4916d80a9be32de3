"""Aging: a job's claim on its tenant's T states grows with its wait relative to its own
run, so a small job's slowdown stays bounded where the factories bind.

The rule is highest response ratio next (Brinch Hansen, "Short-Term Scheduling in
Multiprogramming Systems", SOSP 1971: the ageing batch schedulers add to priorities, as
Slurm's multifactor age factor, here measured in the job's own length). A job's
**response ratio** is its turnaround over its private cycles. Where its tenant's factory
share holds its jobs below what they ask (``capped``: each gets ``level`` states a cycle
of the ``want`` it asks, :mod:`~qmk.kernel.machine.supply`), a job's ratio is projected
at that level: ``(now - arrival + left * want / level) / own``, its private cycles
``left`` stretched; a queued job is weighed as if started now (``left = own``, its want
what its first T-drawing steps ask).

A queued job that draws T states starts (:func:`admits`) only where no capped job of
its tenant on its module has a higher projected ratio than its own: it would lower
their level and push them further. Under max-min sharing every admitted job would
otherwise stretch together (processor sharing), and a small job's turnaround grow with
the number beside it. Holding it back costs its tenant nothing: while a job of it is
capped, its jobs draw its whole share. As it waits its ratio grows until it passes
theirs, so it is never starved; where none is capped it starts at once. A job held back
is looked at again at the next epoch boundary.

>>> response_ratio(waited=30.0, own=10.0)
4.0
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from qmk.kernel.machine.core import Scheduler
    from qmk.kernel.machine.jobs import MachineJob
    from qmk.kernel.machine.tiles import TileRange

#: Ratios within this factor are equal (float rounding).
SLACK = 1e-9


def response_ratio(waited: float, own: float) -> float:
    """Turnaround over ``own`` cycles for a job that finishes ``waited`` cycles late."""
    return (waited + own) / own if own > 0 else 1.0


def admits(
    sched: Scheduler,
    job: MachineJob,
    spot: tuple[TileRange, int] | None,
    aged: dict[tuple[int, str], float] | None = None,
) -> bool:
    """Whether queued ``job`` may start now as far as aging goes (module docstring):
    it draws no T state, or no capped job of its tenant, on the module it would be
    placed on, has aged more. Not where it does not fit: placement decides that.
    ``spot``: where :meth:`~qmk.kernel.machine.core.Scheduler.find` places it now (the
    caller asked it). ``aged``: the highest ratio of each (module, tenant)'s capped
    jobs, kept by a caller while no job starts, stops or ends and the time stands (a
    candidate is weighed against the highest, as against each in turn)."""
    own = job.tl.private_cycles
    if not job.tl.t_total or own <= 0:
        return True
    if not any(_capped(sched, m.index, job.tenant) for m in sched.machine.modules):
        return True  # (found without looking for a placement)
    if spot is None:
        return True
    module = spot[0].module
    if not _capped(sched, module, job.tenant):
        return True
    queue = sched.supply(module).queues[job.tenant]
    level = queue.level
    tl = job.tl  # what it would ask a cycle, as the budgets' projection reads it
    drawing = tl.t_cycles_after[0] + (tl.cycles[0] * tl.repeat[0] if tl.t_states[0] else 0)
    mine = ratio_of(sched, job, level, own, tl.t_total / drawing if drawing > 0 else 0.0)
    key = (module, job.tenant)
    top = None if aged is None else aged.get(key)
    if top is None:
        top = max(
            ratio_of(sched, other, level, sched.remaining(other), other.want)
            for other in queue.capped
        )
        if aged is not None:
            aged[key] = top
    if top > mine * (1 + SLACK):
        sched.look_again()
        return False
    return True


def _capped(sched: Scheduler, module: int, tenant: str) -> bool:
    """Whether ``tenant`` has jobs on ``module`` its factory share holds below their want."""
    queue = sched.supply(module).queues.get(tenant)
    return queue is not None and bool(queue.capped) and queue.level > 0


def ratio_of(sched: Scheduler, job: MachineJob, level: float, left: float, want: float) -> float:
    """``job``'s projected response ratio, its ``left`` private cycles run at ``level``
    states a cycle of the ``want`` it asks from now on."""
    own = job.tl.private_cycles
    stretch = want / level if 0 < level < want else 1.0
    return response_ratio(sched.now - job.arrival + left * stretch - own, own)
