"""``fair-share``: space-sharing, fair in machine share.

At a boundary, jobs start one by one while they fit. Each time, the tenant chosen is the
one with the least weighted share: tile-cycles held so far, plus the tiles it holds for
the coming epoch, over its quota weight (ties: the tenant's name). Its oldest queued job
starts if it fits; if not, no other job starts at this boundary, so a large job is never
overtaken for ever by the small jobs of others.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from qmk.kernel.machine.policies.base import Policy

if TYPE_CHECKING:
    from qmk.kernel.machine.core import Scheduler


class FairShare(Policy):
    """Least weighted share first; a misfit ends the boundary's starts."""

    name = "fair-share"

    def decide(self, sched: Scheduler) -> None:
        tenants = sched.queue_of
        while tenants:
            tenant = min(tenants, key=_shares(sched)) if len(tenants) > 1 else next(iter(tenants))
            if not sched.place(next(iter(tenants[tenant]))):
                return


def _shares(sched: Scheduler) -> Callable[[str], tuple[float, str]]:
    """A tenant's weighted share now and its name (the order :meth:`FairShare.decide`
    picks in)."""
    ahead = sched.machine.epoch_cycles

    def share(tenant: str) -> tuple[float, str]:
        weight = sched.weights.get(tenant, 1.0)
        used = sched.usage(tenant) + sched.held_tiles(tenant) * ahead
        return used / weight, tenant

    return share
