"""``fair-share``: space-sharing, fair in machine share, each tenant's hold bounded.

At a boundary, jobs start one by one while they fit. Each time, the tenant chosen is the
one with the least weighted share (:mod:`~qmk.kernel.machine.policies.tenants`). Its
oldest queued job starts if it fits; if not, no other job starts at this boundary, so a
large job is never overtaken for ever by the small jobs of others. A tenant past its
bound while others wait is passed over, and where storage has room, its latest jobs
move there at their fences to let a waiting tenant in. A job with an error budget
starts only when every job's projected idle error stays within its budget
(:mod:`~qmk.kernel.machine.policies.budget`), and no job starts that would push a
running job past its budget; such a job waits. The factories' states
go to tenants by their weights, then to a tenant's jobs max-min.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from qmk.kernel.machine.policies.budget import BudgetCheck, Budgeted
from qmk.kernel.machine.policies.tenants import (
    make_room,
    may_hold,
    resume_stopped,
    share_key,
)

if TYPE_CHECKING:
    from qmk.kernel.machine.core import Scheduler
    from qmk.kernel.machine.spec import MachineSpec


class FairShare(Budgeted):
    """Least weighted share first, each tenant's hold bounded; a misfit ends the starts."""

    name = "fair-share"
    bounds_holds = True

    def preempts_on(self, machine: MachineSpec) -> bool:
        return any(module.storage_tiles for module in machine.modules)

    def decide(self, sched: Scheduler) -> None:
        if sched.state.stopped:
            resume_stopped(sched)
        tenants = dict(sched.queue_of)
        budgets = BudgetCheck(sched)
        while tenants:
            tenant = min(tenants, key=share_key(sched)) if len(tenants) > 1 else next(iter(tenants))
            job = next(iter(sched.queue_of[tenant]))
            spot = sched.find(job)
            if spot is None:
                make_room(sched, job)
                return
            spot = budgets.fit(job, lambda j: may_hold(sched, j), spot)
            if spot is None:
                del tenants[tenant]  # its head waits; the others may start
                continue
            sched.place(job, spot=spot)
            budgets.started()
            if tenant not in sched.queue_of:
                del tenants[tenant]
