"""``fidelity``: sharing that never buys speed with a tenant's results.

Each job's idle logical error is a budget, like its memory limit in a classic operating
system:

- **Admission within budgets.** A queued job starts only where every job's projected
  idle error stays within its budget with it, at the factories' current rate
  (:mod:`~qmk.kernel.machine.policies.budget`): T-heavy jobs are admitted only as fast
  as the factories feed them. A job held back waits in the queue, where its patches do
  not live yet and pay nothing.
- **The next state to the costliest wait.** The factories' states go first to the job
  whose waiting costs most, its live patches (the supply rule ``cost``).
- **Tenants in turn.** Tenants are served least weighted share first, each tenant's
  hold on the floorplan bounded while others wait
  (:mod:`~qmk.kernel.machine.policies.tenants`); where storage has room, a tenant past
  its bound moves its latest jobs there at their fences.
- **No starvation by size.** The first job that does not fit gets the region that frees
  earliest, held from placements while later jobs start in the other holes (as
  ``backfill``'s reservation).
"""

from __future__ import annotations

import itertools
import math
from typing import TYPE_CHECKING

from qmk.kernel.machine.policies.backfill import DEPTH, reservation
from qmk.kernel.machine.policies.base import SchedulingPolicy
from qmk.kernel.machine.policies.budget import BudgetCheck
from qmk.kernel.machine.policies.tenants import (
    make_room,
    may_hold,
    resume_stopped,
    share_key,
)

if TYPE_CHECKING:
    from qmk.kernel.machine.core import Scheduler
    from qmk.kernel.machine.jobs import MachineJob
    from qmk.kernel.machine.spec import MachineSpec
    from qmk.kernel.machine.tiles import TileRange


class Fidelity(SchedulingPolicy):
    """Starts jobs only within their error budgets; the next T state to the costliest wait."""

    name = "fidelity"
    supply = "cost"
    budgets = True

    def __init__(self, depth: int = DEPTH) -> None:
        self.depth = depth

    def preempts_on(self, machine: MachineSpec) -> bool:
        return any(module.storage_tiles for module in machine.modules)

    def decide(self, sched: Scheduler) -> None:
        """Tenants in turn (the least weighted share first), each one's queue in order,
        up to ``depth`` jobs of it tried.

        Until a job starts or a region is held, nothing a candidate's verdict reads
        changes: the tenants' shares, the free tiles, the holds, the projections. So the
        tenant first in turn stays first, one verdict serves every queued job alike
        (:func:`_alike`), and the shares are read once. With thousands queued, each
        decision would otherwise weigh hundreds of copies of a few programs."""
        resume_stopped(sched)
        tried: dict[str, int] = {}
        reserved = False
        budgets = BudgetCheck(sched)
        refused: dict[tuple[object, ...], bool] = {}  # a failed verdict: did nothing fit?
        shares: dict[str, tuple[float, str]] = {}
        share = share_key(sched)
        try:
            while True:
                ready = [t for t in sched.queue_of if tried.get(t, 0) < self.depth]
                if not ready:
                    return
                if len(ready) > 1:
                    for name in ready:
                        if name not in shares:
                            shares[name] = share(name)
                    tenant = min(ready, key=shares.__getitem__)
                else:
                    tenant = ready[0]
                skip = tried.get(tenant, 0)
                for job in itertools.islice(sched.queue_of[tenant], skip, self.depth):
                    alike = _alike(job)
                    unplaced = refused.get(alike)
                    if unplaced is None:
                        spot = sched.find(job)
                        if spot is not None and self._start(sched, job, spot, budgets):
                            budgets.started()
                            break  # the queue and the shares changed: choose again
                        unplaced = refused[alike] = spot is None
                    tried[tenant] = tried.get(tenant, 0) + 1
                    if not reserved and unplaced:
                        reserved = self._reserve(sched, job)
                        break  # a hold, or jobs asked to leave: verdicts may change
                else:  # its queue ran out, or its depth was tried
                    tried[tenant] = self.depth
                    continue
                refused.clear()
                shares.clear()
        finally:
            sched.floorplan.release_holds()

    @staticmethod
    def _start(
        sched: Scheduler, job: MachineJob, spot: tuple[TileRange, int], budgets: BudgetCheck
    ) -> bool:
        """Start ``job`` where :meth:`Scheduler.find` put it (``spot``), if its tenant may
        hold more and every budget keeps."""
        if not may_hold(sched, job):
            return False
        if not budgets.keeps(job, spot[0].module, spot[0].spec.offset + spot[1]):
            return False
        return sched.place(job)

    @staticmethod
    def _reserve(sched: Scheduler, job: MachineJob) -> bool:
        """Hold the region that frees earliest for ``job``; whether one was held."""
        make_room(sched, job)
        spot = reservation(sched, job)
        if spot is None or spot[2] == math.inf:
            return False
        area, start, _ = spot
        sched.floorplan.hold(area, start, job.tiles)
        return True


def _alike(job: MachineJob) -> tuple[object, ...]:
    """What a start's verdict reads of a queued job (its placement, its tenant's hold,
    its budget's projection): jobs alike in it get one verdict in one machine state.
    A queued job has never run, so it has no idle wait of its own to tell it apart."""
    return (job.tenant, id(job.tl), job.tiles, job.budget, job.cost)
