"""``tetris``: multi-resource packing, the published baseline of cluster schedulers.

Grandl, Ananthanarayanan, Kandula, Rao and Akella, "Multi-resource Packing for Cluster
Schedulers" (SIGCOMM 2014). At each decision, every waiting job that fits is scored by
the *alignment* of what it asks with what is free: the dot product of the two vectors
normalized by the machine's capacities. The best-aligned job starts; repeat while one
fits. Here the resources are a module's job tiles and its factories' T states a
cycle (a job asks its T states over its private cycles). Packing by alignment fills
both the floorplan and the factories, where first-come-first-served leaves one of them
idle; it knows neither tenants nor budgets (Tetris's fairness knob is off).
"""

from __future__ import annotations

import itertools
from typing import TYPE_CHECKING

from qmk.kernel.machine.policies.base import SchedulingPolicy

if TYPE_CHECKING:
    from qmk.kernel.machine.core import Scheduler
    from qmk.kernel.machine.jobs import MachineJob

#: Queued jobs scored per decision (in arrival order).
DEPTH = 100


def alignment(sched: Scheduler, job: MachineJob, module: int) -> float:
    """How well ``job`` fits what ``module`` has free: tiles asked x tiles free over the
    tiles squared, plus T states asked x states spare over the rate squared."""
    tiles = sum(r.spec.length for r in sched.ranges if r.module == module) or 1
    free = sum(r.tree.free for r in sched.ranges if r.module == module)
    score = (job.tiles / tiles) * (free / tiles)
    rate = sched.factory_rate(module)
    if rate > 0 and job.tl.private_cycles:
        asks = job.tl.t_total / job.tl.private_cycles
        spare = max(0.0, rate - sched.supply(module).consume)
        score += (asks / rate) * (spare / rate)
    return score


class Tetris(SchedulingPolicy):
    """Multi-resource packing (Grandl et al., SIGCOMM 2014): the best-aligned job first."""

    name = "tetris"

    def decide(self, sched: Scheduler) -> None:
        while sched.queue:
            best: tuple[float, int, MachineJob] | None = None
            for job in itertools.islice(sched.queue, DEPTH):
                spot = sched.find(job)
                if spot is None:
                    continue
                key = (alignment(sched, job, spot[0].module), -job.seq, job)
                if best is None or key[:2] > best[:2]:
                    best = key
            if best is None:
                return
            sched.place(best[2])
