"""A tenant's urgent job before its own less urgent ones, in machine time.

The kernel's rule for a tenant's priorities, decided by the policies that share the
floorplan by tenant (``fidelity``, ``fair-share``) at their epoch boundaries. A queued
job held out of the floorplan asks the fewest of its own tenant's running jobs at least
``preempt_gap`` priorities lower to move to storage at their next fences, where those
jobs' tiles, with the free ones beside them, would hold it. A job moved out so does not
take its tiles back before the urgent job starts. Each stop is in the victim's machine
record (``preemptions``, ``wait_cycles.preempted``). Priorities order a tenant's own jobs
only: across tenants the shares decide (:mod:`.tenants`).
"""

from __future__ import annotations

import itertools
from typing import TYPE_CHECKING

from qmk.kernel.machine.policies.priority import DEPTH, victims_in

if TYPE_CHECKING:
    from qmk.kernel.machine.core import Scheduler
    from qmk.kernel.machine.jobs import MachineJob


def make_room(sched: Scheduler, waiting: MachineJob) -> bool:
    """``waiting`` is held out: ask the fewest of its tenant's running jobs at least
    ``preempt_gap`` below it to move to storage at their next fences, so that it fits.
    Whether room is being made for it (jobs asked now or leaving already)."""
    gap = sched.machine.preempt_gap
    if gap <= 0 or not sched.preempts:
        return False
    below = waiting.priority - gap
    if not any(j.tenant == waiting.tenant and j.priority <= below for j in sched.running):
        return False  # nothing to ask: the tiles' scan below is skipped
    best: list[MachineJob] | None = None
    for area in sched.allowed_ranges(waiting):
        found = victims_in(sched, area, waiting, gap, tenant=waiting.tenant)
        if found is not None and (best is None or len(found) < len(best)):
            best = found
    if best is None:
        return False
    for victim in best:
        sched.preempt(victim, storage=True)
    return True


def goes_first(sched: Scheduler, job: MachineJob) -> bool:
    """Whether a queued job of ``job``'s tenant, at least ``preempt_gap`` more urgent,
    may start where things stand now: ``job``, moved out for it, waits for it."""
    gap = sched.machine.preempt_gap
    if gap <= 0:
        return False
    queue = sched.queue_of.get(job.tenant, {})
    return any(
        other.priority >= job.priority + gap and sched.find(other) is not None
        for other in itertools.islice(queue, DEPTH)
    )


__all__ = ["goes_first", "make_room"]
