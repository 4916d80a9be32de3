"""``exclusive``: one job owns the machine, first come first served (the baseline every
speedup is measured against).

The oldest queued job starts when no job holds the machine; the others wait.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from qmk.kernel.machine.policies.base import SchedulingPolicy

if TYPE_CHECKING:
    from qmk.kernel.machine.core import Scheduler


class Exclusive(SchedulingPolicy):
    """One job at a time, in arrival order."""

    name = "exclusive"

    def decide(self, sched: Scheduler) -> None:
        if sched.running or sched.stopped or not sched.queue:
            return
        sched.place(next(iter(sched.queue)))
