"""``backfill``: space-sharing in arrival order, where a later job may run in a hole
without delaying the head of the queue (EASY backfilling, on a floorplan).

Jobs start in arrival order while they fit. When the head does not fit, it gets a
reservation: the region of its size, in a area it may use, that comes free earliest if
the running jobs end when their private-machine cycles say (the window whose latest
occupant ends first). That region is held from placements while up to ``depth`` later
jobs try to start in the remaining free tiles, so none of them sits where the head will
go. (Estimates are private-machine runtimes: contention for factories can make a job end
later than estimated, and then the head waits for it, as in EASY with user estimates.)
A job with an error budget starts only when every job's projected idle error stays
within its budget (:mod:`~qmk.kernel.machine.policies.budget`). A head held back so
gets no reservation, and a later job so held back waits.
"""

from __future__ import annotations

import itertools
import math
from typing import TYPE_CHECKING

from qmk.kernel.machine.policies.budget import BudgetCheck, Budgeted
from qmk.kernel.machine.policies.reserve import reservation

if TYPE_CHECKING:
    from qmk.kernel.machine.core import Scheduler
    from qmk.kernel.machine.jobs import MachineJob

#: Later jobs tried per boundary behind a blocked head (as Slurm's bf_max_job_test).
DEPTH = 100


class Backfill(Budgeted):
    """FCFS with a held region for a blocked head; later jobs fill the other holes."""

    name = "backfill"

    def __init__(self, depth: int = DEPTH) -> None:
        super().__init__()
        self.depth = depth

    def decide(self, sched: Scheduler) -> None:
        budgets = BudgetCheck(sched)
        while sched.queue:
            head = next(iter(sched.queue))
            fits = sched.find(head) is not None
            if not fits or not _within(budgets, head):
                break
            sched.place(head)
            budgets.started()
        else:
            return
        if fits:  # held back by a budget: no region to reserve
            for job in list(itertools.islice(sched.queue, 1, 1 + self.depth)):
                if _within(budgets, job) and sched.place(job):
                    budgets.started()
            return
        spot = reservation(sched, head)
        if spot is None or spot[2] == math.inf:
            return
        area, start, _ = spot
        later = list(itertools.islice(sched.queue, 1, 1 + self.depth))
        sched.floorplan.hold(area, start, head.tiles)
        try:
            for job in later:
                if _within(budgets, job) and sched.place(job):
                    budgets.started()
        finally:
            sched.floorplan.release_holds()


def _within(budgets: BudgetCheck, job: MachineJob) -> bool:
    """Whether ``job`` may start as far as error budgets go: it fits, and it and every
    running job stay within theirs."""
    return budgets.fit(job) is not None
