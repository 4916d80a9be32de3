"""``priority``: higher priority first, with preemption at fences.

At a boundary, waiting jobs (queued, and stopped ones) are taken by priority (then
arrival): a job stopped in place resumes unless a job of its module it yields to still
runs; a stored or queued one starts where it fits. Preemption, only of jobs at least
``preempt_gap`` priorities lower, and only at their next fence:

- **for tiles**: when the highest waiting job does not fit, the fewest such jobs whose
  regions (with the free tiles beside them) would hold it are asked to stop and move to
  their module's storage tiles (when it has room for their patches), so it starts at a
  later boundary;
- **for T states**: in a module whose factories cannot feed all its jobs, such jobs
  below the highest one there stop in place (their patches idle where they are), and
  resume when no job they yield to runs in their module.
"""

from __future__ import annotations

import itertools
from typing import TYPE_CHECKING

from qmk.kernel.machine.policies.base import SchedulingPolicy

if TYPE_CHECKING:
    from qmk.kernel.machine.core import Scheduler
    from qmk.kernel.machine.jobs import MachineJob
    from qmk.kernel.machine.tiles import TileRange

#: Queued jobs of one priority looked at per boundary (in arrival order).
DEPTH = 100


def _order(job: MachineJob) -> tuple[int, int, int]:
    return (-job.priority, job.arrival, job.seq)


def _waiting(sched: Scheduler) -> list[MachineJob]:
    """Stopped and queued jobs by priority, then arrival (queued ones past the first of
    each priority that cannot start are left for later: the first blocks them)."""
    stopped = sorted(sched.stopped, key=_order)
    queued: list[MachineJob] = []
    for priority in sorted(sched.queue_at, reverse=True):
        queued += itertools.islice(sched.queue_at[priority], DEPTH)
    return sorted([*stopped, *queued], key=_order)


class Priority(SchedulingPolicy):
    """Priority order; preemption at fences of jobs preempt_gap or more lower."""

    name = "priority"
    preempts = True

    def decide(self, sched: Scheduler) -> None:
        gap = sched.machine.preempt_gap
        blocked: MachineJob | None = None
        for job in _waiting(sched):
            if job.state == "stopped":
                if not self._outranked(sched, job, gap):
                    sched.resume(job)
                continue
            started = sched.resume(job) if job.state == "stored" else sched.place(job)
            if not started and blocked is None:
                blocked = job
        if gap <= 0:
            return
        if blocked is not None:
            self._make_room(sched, blocked, gap)
        self._feed_the_highest(sched, gap)

    @staticmethod
    def _outranked(sched: Scheduler, job: MachineJob, gap: int) -> bool:
        return gap > 0 and any(
            other.module == job.module and other.priority >= job.priority + gap and other.t
            for other in sched.running
        )

    @staticmethod
    def _make_room(sched: Scheduler, waiting: MachineJob, gap: int) -> None:
        """Ask the fewest lower jobs to move to storage so that ``waiting`` fits."""
        best: tuple[int, list[MachineJob]] | None = None
        for area in sched.allowed_ranges(waiting):
            victims = victims_in(sched, area, waiting, gap)
            if victims is not None and (best is None or len(victims) < best[0]):
                best = (len(victims), victims)
        if best is None:
            return
        for victim in best[1]:
            if victim.stopping is None:
                sched.preempt(victim, storage=True)

    @staticmethod
    def _feed_the_highest(sched: Scheduler, gap: int) -> None:
        """Stop in place the jobs below a module's highest T user, while it starves."""
        by_module: dict[int, list[MachineJob]] = {}
        for job in sched.running:
            by_module.setdefault(job.module, []).append(job)
        for module, jobs in sorted(by_module.items()):
            if not sched.t_starved(module):
                continue
            top = max(job.priority for job in jobs if job.t) if any(j.t for j in jobs) else None
            if top is None:
                continue
            for job in jobs:
                if job.priority <= top - gap and job.stopping is None:
                    sched.preempt(job, storage=False)


def victims_in(
    sched: Scheduler, area: TileRange, waiting: MachineJob, gap: int, *, tenant: str | None = None
) -> list[MachineJob] | None:
    """The fewest jobs of ``area`` (of ``tenant`` only, when given) that may be preempted
    for ``waiting`` and whose tiles, with the free ones, make a run of its size; None: no
    such run. Storage must have room for them (their module's); jobs already stopping
    count as leaving."""
    need = waiting.tiles
    size = area.spec.length
    held = sorted(area.occupants.items())
    movable = {
        at: job
        for at, job in held
        if job.stopping == "storage"
        or (
            job.state == "running"
            and job.stopping is None
            and job.priority <= waiting.priority - gap
            and (tenant is None or job.tenant == tenant)
            and job.has_fence_ahead()
        )
    }
    best: list[MachineJob] | None = None
    starts = {0, *(at + job.tiles for at, job in held)}
    for start in sorted(s for s in starts if s + need <= size):
        inside = [job for at, job in held if at < start + need and at + job.tiles > start]
        if all(job in movable.values() for job in inside):
            fresh = [job for job in inside if job.stopping is None]
            room = sum(job.data_tiles for job in fresh)
            if room > sched.storage_free(area.module):
                continue
            if best is None or len(fresh) < len(best):
                best = fresh
    return best
