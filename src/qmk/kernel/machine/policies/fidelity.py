"""``fidelity``: sharing that never buys speed with a tenant's results.

Each job's idle logical error is a budget, like its memory limit in a classic operating
system:

- **Admission within budgets.** A queued job starts only where every job's projected
  idle error stays within its budget with it, at the factories' current rate
  (:mod:`~qmk.kernel.machine.policies.budget`): T-heavy jobs are admitted only as fast
  as the factories feed them. A job held back waits in the queue, where its patches do
  not live yet and pay nothing.
- **Shares first.** The factories' states (and each bus segment's) are divided among
  tenants by quota weight, then max-min among a tenant's jobs (the supply rule
  ``fair``). A tenant's budgets are projected on its own part, so they never hold
  another tenant's job back and never buy another tenant's share.
- **Tenants in turn.** Tenants are served least weighted share first, each tenant's
  hold on the floorplan bounded while others wait
  (:mod:`~qmk.kernel.machine.policies.tenants`); where storage has room, a tenant past
  its bound moves its latest jobs there at their fences.
- **No starvation by size.** The first job that does not fit gets the region that frees
  earliest, held from placements while later jobs start in the other holes (as
  ``backfill``'s reservation).
"""

from __future__ import annotations

import itertools
import math
import operator
from typing import TYPE_CHECKING

from qmk.kernel.machine.policies.aging import admits
from qmk.kernel.machine.policies.backfill import DEPTH
from qmk.kernel.machine.policies.budget import BUDGET, TILES, BudgetCheck, Budgeted
from qmk.kernel.machine.policies.tenants import (
    fits_hold,
    hold_of,
    make_room,
    resume_stopped,
    share_key,
)

if TYPE_CHECKING:
    from collections.abc import Callable

    from qmk.kernel.machine.core import Scheduler
    from qmk.kernel.machine.jobs import MachineJob
    from qmk.kernel.machine.spec import MachineSpec
    from qmk.kernel.machine.tiles import TileRange

#: Why a job did not start beside :data:`~.budget.TILES` and :data:`~.budget.BUDGET`:
#: a job of its tenant held below its want has aged more (:func:`~.aging.admits`).
AGED = "aged"
#: A queued job's kind (:attr:`~qmk.kernel.machine.jobs.MachineJob.kind`).
_KIND = operator.attrgetter("kind")


class Fidelity(Budgeted):
    """Starts jobs only within their error budgets; tenants' shares held under every budget."""

    name = "fidelity"
    bounds_holds = True

    def __init__(self, depth: int = DEPTH) -> None:
        super().__init__()
        self.depth = depth

    def preempts_on(self, machine: MachineSpec) -> bool:
        return any(module.storage_tiles for module in machine.modules)

    def decide(self, sched: Scheduler) -> None:
        """Tenants in turn (the least weighted share first), each one's queue in order,
        up to ``depth`` jobs of it tried.

        Until a job starts or a region is held, nothing a candidate's verdict reads
        changes: the tenants' shares, the free tiles, the holds, the projections. So the
        tenant first in turn stays first, one verdict serves every queued job alike
        (its ``kind``), and the shares are read once. A tenant's window goes from one
        job of a kind without a verdict to the next (:func:`_next`), each kind's first
        place in it found once: the jobs between are passed over at once. With
        thousands queued, each decision would otherwise weigh, or step past, hundreds of
        copies of a few programs.

        A tenant's jobs start in arrival order where a budget holds one back: behind a
        job whose budget refused every placement it could start at now
        (:data:`~.budget.BUDGET`), its tenant's later T-drawing jobs wait their turn,
        as they would take the part of the factories it waits for. A job held back for
        tiles (none free, its tenant's bound, the wait for a quicker placement's tiles)
        or by its age is passed by the later ones as backfill: they take nothing it
        waits for."""
        if sched.state.stopped:
            resume_stopped(sched)
        tried: dict[str, int] = {}
        reserved = False
        budgets = BudgetCheck(sched)
        refused: dict[tuple[object, ...], bool] = {}  # a failed verdict: did nothing fit?
        shares: dict[str, tuple[float, str]] = {}
        share: Callable[[str], tuple[float, str]] | None = None  # (with two tenants ready)
        queue_of = sched.state.queue_of  # (the same table through every start)
        holds: dict[str, tuple[int, float]] = {}  # each tenant's hold, until a start
        aged: dict[tuple[int, str], float] = {}  # capped jobs' highest ratio, until a start
        behind: set[str] = set()  # tenants with a job a budget holds back (arrival order)

        def may(job: MachineJob) -> bool:
            hold = holds.get(job.tenant)
            if hold is None:
                hold = holds[job.tenant] = hold_of(sched, job.tenant)
            return fits_hold(hold, job.tiles)

        try:
            while queue_of:
                ready = [t for t in queue_of if tried.get(t, 0) < self.depth]
                if not ready:
                    return
                if len(ready) > 1:
                    if share is None:
                        share = share_key(sched)
                    for name in ready:
                        if name not in shares:
                            shares[name] = share(name)
                    tenant = min(ready, key=shares.__getitem__)
                else:
                    tenant = ready[0]
                count = tried.get(tenant, 0)
                window = list(itertools.islice(queue_of[tenant], count, self.depth))
                kinds = list(map(_KIND, window))
                ids = list(map(id, kinds))  # (one value a kind queued: :class:`MachineState`)
                first: dict[tuple[object, ...], int] = {}
                for at in map(ids.index, dict.fromkeys(ids)):
                    first.setdefault(kinds[at], at)
                exhausted = True  # its queue ran out, or its depth was tried
                while True:
                    # the next job of a kind without a verdict (:func:`_next`)
                    i = _next(first, refused)
                    if i < 0:
                        break
                    job, alike = window[i], kinds[i]
                    if tenant in behind and job.tl.t_total:
                        refused[alike] = False  # it waits its turn
                        continue
                    spot = sched.find(job)
                    why = self._start(sched, job, budgets, may, spot, aged)
                    if why is None:
                        count += i
                        budgets.started()
                        exhausted = False
                        break  # the queue and the shares changed: choose again
                    unplaced = refused[alike] = spot is None
                    if why == BUDGET:  # (a kind is its tenant's: its later ones wait)
                        behind.add(tenant)
                    if not reserved and unplaced:
                        count += i + 1
                        tried[tenant] = count
                        reserved = self._reserve(sched, job, budgets)
                        exhausted = False
                        break  # a hold, or jobs asked to leave: verdicts may change
                if exhausted:
                    tried[tenant] = self.depth
                    continue
                tried[tenant] = count
                refused.clear()
                shares.clear()
                holds.clear()
                aged.clear()
        finally:
            sched.floorplan.release_holds()

    @staticmethod
    def _start(
        sched: Scheduler,
        job: MachineJob,
        budgets: BudgetCheck,
        may: Callable[[MachineJob], bool],
        spot: tuple[TileRange, int] | None,
        aged: dict[tuple[int, str], float],
    ) -> str | None:
        """Start ``job`` at the cheapest code distance where its tenant may hold it
        (``may``: :func:`~.tenants.may_hold`) and every budget keeps
        (:meth:`BudgetCheck.fit`); ``spot``: where ``find`` places it as it is. None
        where it started; else why not: :data:`AGED` (:func:`~.aging.admits`) or what
        ``fit`` refused it for (:data:`~.budget.TILES` where ``spot`` is None); ``aged``:
        :func:`~.aging.admits`' ratios kept until a start."""
        if spot is None:
            return TILES
        if not admits(sched, job, spot, aged):
            return AGED
        there = budgets.fit(job, may, spot)
        if there is None:
            return budgets.refused_for
        sched.place(job, spot=there)
        return None

    @staticmethod
    def _reserve(sched: Scheduler, job: MachineJob, budgets: BudgetCheck) -> bool:
        """Hold the region that frees earliest for ``job``; whether one was held."""
        make_room(sched, job)
        spot = budgets.reservation(job)
        if spot is None or spot[2] == math.inf:
            return False
        area, start, _ = spot
        sched.floorplan.hold(area, start, job.tiles)
        return True


def _next(first: dict[tuple[object, ...], int], refused: dict[tuple[object, ...], bool]) -> int:
    """The place in a tenant's window of the first job whose kind has no verdict in
    ``refused`` (-1: none), of each kind's first place there ``first``.

    A job of a kind with a verdict is passed over as its verdict says: a verdict of no
    that asks for a reservation sets one off at once, at the job that found it, so within
    one pass over the window every kind with a verdict is passed over. The jobs before
    the place returned have verdicts already, so a kind without one first comes at its
    first place in the window."""
    return min([at for kind, at in first.items() if kind not in refused], default=-1)
