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
from collections import deque
from collections.abc import Iterator
from typing import TYPE_CHECKING

from qmk.kernel.machine.policies.budget import BudgetCheck, Budgeted

if TYPE_CHECKING:
    from qmk.kernel.machine.core import Scheduler
    from qmk.kernel.machine.jobs import MachineJob
    from qmk.kernel.machine.tiles import TileRange

#: Later jobs tried per boundary behind a blocked head (as Slurm's bf_max_job_test).
DEPTH = 100


def reservation(sched: Scheduler, head: MachineJob) -> tuple[TileRange, int, float] | None:
    """The head's region: ``(area, first tile, when it is free)``, earliest first."""
    best: tuple[TileRange, int, float] | None = None
    need = head.tiles
    for area in sched.allowed_ranges(head):
        size = area.spec.length
        if size < need:
            continue
        held = sorted(
            (
                at,
                job.tiles,
                sched.now + sched.remaining(job) if job.state == "running" else math.inf,
            )
            for at, job in area.occupants.items()
        )
        starts = {0, size - need}
        for at, tiles, _ in held:
            starts.update((at + tiles, at - need))
        for start, free_at in _free_at(
            held, sorted(s for s in starts if 0 <= s <= size - need), need, sched.now
        ):
            if best is None or free_at < best[2]:
                best = (area, start, free_at)
    return best


def _free_at(
    held: list[tuple[int, int, float]], starts: list[int], need: int, now: float
) -> Iterator[tuple[int, float]]:
    """Each of ``starts`` (ascending) and when ``need`` tiles from it are free: the
    latest end of the ``held`` runs ``(first tile, tiles, end)`` (ascending, disjoint)
    that meet them, else ``now``. The runs that meet a window are a stretch of
    ``held`` that moves right as the window does: a sliding maximum, not a scan of
    every run for every start."""
    ends: deque[int] = deque()  # indices into held, their ends decreasing
    first = nxt = 0  # the stretch: held[first:nxt]
    for start in starts:
        while nxt < len(held) and held[nxt][0] < start + need:
            while ends and held[ends[-1]][2] <= held[nxt][2]:
                ends.pop()
            ends.append(nxt)
            nxt += 1
        while first < nxt and held[first][0] + held[first][1] <= start:
            first += 1
        while ends and ends[0] < first:
            ends.popleft()
        yield start, held[ends[0]][2] if ends else now


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
