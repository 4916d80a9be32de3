"""``backfill``: space-sharing in arrival order, where a later job may run in a hole
without delaying the head of the queue (EASY backfilling, on a floorplan).

Jobs start in arrival order while they fit. When the head does not fit, it gets a
reservation: the region of its size, in a pool it may use, that comes free earliest if
the running jobs end when their private-machine cycles say (the window whose latest
occupant ends first). That region is held from placements while up to ``depth`` later
jobs try to start in the remaining free tiles, so none of them sits where the head will
go. (Estimates are private-machine runtimes: contention for factories can make a job end
later than estimated, and then the head waits for it, as in EASY with user estimates.)
"""

from __future__ import annotations

import itertools
import math
from typing import TYPE_CHECKING

from qmk.kernel.machine.policies.base import Policy

if TYPE_CHECKING:
    from qmk.kernel.machine.core import Pool, Scheduler
    from qmk.kernel.machine.jobs import Job

#: Later jobs tried per boundary behind a blocked head (as Slurm's bf_max_job_test).
DEPTH = 100


def reservation(sched: Scheduler, head: Job) -> tuple[Pool, int, float] | None:
    """The head's region: ``(pool, first tile, when it is free)``, earliest first."""
    best: tuple[Pool, int, float] | None = None
    need = head.tiles
    for pool in sched.allowed_pools(head):
        size = pool.spec.length
        if size < need:
            continue
        held = sorted(
            (
                at,
                job.tiles,
                sched.now + sched.remaining(job) if job.state == "running" else math.inf,
            )
            for at, job in pool.occupants.items()
        )
        starts = {0, size - need}
        for at, tiles, _ in held:
            starts.update((at + tiles, at - need))
        for start in sorted(s for s in starts if 0 <= s <= size - need):
            free_at = max(
                (end for at, tiles, end in held if at < start + need and at + tiles > start),
                default=sched.now,
            )
            if best is None or free_at < best[2]:
                best = (pool, start, free_at)
    return best


class Backfill(Policy):
    """FCFS with a held region for a blocked head; later jobs fill the other holes."""

    name = "backfill"

    def __init__(self, depth: int = DEPTH) -> None:
        self.depth = depth

    def decide(self, sched: Scheduler) -> None:
        while sched.queue:
            head = next(iter(sched.queue))
            if not sched.place(head):
                break
        else:
            return
        spot = reservation(sched, head)
        if spot is None or spot[2] == math.inf:
            return
        pool, start, _ = spot
        later = list(itertools.islice(sched.queue, 1, 1 + self.depth))
        sched.hold(pool, start, head.tiles)
        try:
            for job in later:
                sched.place(job)
        finally:
            sched.release_holds()
