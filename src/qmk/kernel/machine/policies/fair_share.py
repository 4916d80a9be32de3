"""``fair-share``: space-sharing, fair in machine share.

At a boundary, jobs start one by one while they fit. Each time, the tenant chosen is the
one with the least weighted share: tile-cycles held so far, plus the tiles it holds for
the coming epoch, over its quota weight (ties: the tenant's name). Its oldest queued job
starts if it fits; if not, no other job starts at this boundary, so a large job is never
overtaken for ever by the small jobs of others.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from qmk.kernel.machine.policies.base import Policy

if TYPE_CHECKING:
    from qmk.kernel.machine.core import Scheduler


class FairShare(Policy):
    """Least weighted share first; a misfit ends the boundary's starts."""

    name = "fair-share"

    def decide(self, sched: Scheduler) -> None:
        ahead = sched.machine.epoch_cycles

        def share(tenant: str) -> tuple[float, str]:
            weight = sched.weights.get(tenant, 1.0)
            used = sched.usage(tenant) + sched.held_tiles(tenant) * ahead
            return used / weight, tenant

        while sched.queue_of:
            tenants = sched.queue_of
            tenant = min(tenants, key=share) if len(tenants) > 1 else next(iter(tenants))
            if not sched.place(next(iter(sched.queue_of[tenant]))):
                return
