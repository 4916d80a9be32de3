"""What the tenant-aware policies share: the order tenants are served in, and how much
of the floorplan a tenant may hold while others wait.

- **Order.** The tenant with the least weighted share goes first: tile-cycles held so
  far, plus the tiles it holds for the coming epoch, over its quota weight (ties: the
  name).
- **A bounded hold.** While another tenant has a job waiting, a tenant that holds
  tiles may start a job only if its tiles stay within its bound: its quota weight's
  share of the job tiles, among the tenants with jobs here. Alone, a tenant may take
  every tile; holding nothing, it may start one job of any size. Where a module
  has storage, a tenant past its bound whose hold keeps a waiting tenant's job out is
  asked to move its latest jobs there at their next fences (:func:`make_room`), so no
  tenant waits behind another's job for its whole run.
- **A tenant's priorities.** Where storage has room, a tenant's queued job held out moves
  its own much less urgent running jobs there first (:mod:`.urgent`).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import TYPE_CHECKING

from qmk.kernel.machine.policies import urgent

if TYPE_CHECKING:
    from qmk.kernel.machine.core import Scheduler
    from qmk.kernel.machine.jobs import MachineJob


def share_key(sched: Scheduler) -> Callable[[str], tuple[float, str]]:
    """A tenant's weighted share now and its name: the order tenants are served in."""
    ahead = sched.machine.epoch_cycles

    def share(tenant: str) -> tuple[float, str]:
        used = sched.usage(tenant) + sched.held_tiles(tenant) * ahead
        return used / sched.weight(tenant), tenant

    return share


def bound(sched: Scheduler, tenant: str) -> float:
    """The tiles ``tenant`` may hold while another tenant waits (module docstring)."""
    tenants = sched.state.tenants_with_jobs() | {tenant}
    total = sum(sched.weight(t) for t in tenants)
    tiles = sum(r.spec.length for r in sched.ranges)
    return tiles * sched.weight(tenant) / total


def may_hold(sched: Scheduler, job: MachineJob) -> bool:
    """Whether ``job`` may start as far as its tenant's hold goes: its tenant holds
    nothing yet, no other tenant waits, or its tenant stays within its bound."""
    return fits_hold(hold_of(sched, job.tenant), job.tiles)


def hold_of(sched: Scheduler, tenant: str) -> tuple[int, float]:
    """What :func:`may_hold` reads of ``tenant``: the tiles it holds, and the most it
    may hold (INF: any, as nothing or alone). It stays as it is until a job starts,
    stops or ends: a decision reads it once per tenant between starts."""
    held = sched.held_tiles(tenant)
    if not held or not any(t != tenant for t in sched.state.tenants_waiting()):
        return held, math.inf
    return held, bound(sched, tenant)


def fits_hold(hold: tuple[int, float], tiles: int) -> bool:
    """Whether a job of ``tiles`` tiles keeps its tenant's ``hold`` (:func:`hold_of`)."""
    held, most = hold
    return most == math.inf or held + tiles <= most + 1e-9


def hold_free_at(sched: Scheduler, job: MachineJob) -> float:
    """When ``job``'s tenant may hold it (:func:`may_hold`), if its running jobs end when
    their private-machine cycles say and its bound stays: now where it may, INF where
    the tiles its jobs hold past that are not running jobs' (stopped in place). A wait
    for a quicker placement is timed by this as well as by the floorplan."""
    held, most = hold_of(sched, job.tenant)
    if fits_hold((held, most), job.tiles):
        return sched.now
    ends = sorted(
        (sched.now + sched.remaining(j), j.tiles)
        for j in sched.state.running
        if j.tenant == job.tenant
    )
    for end, tiles in ends:
        held -= tiles
        if held <= 0 or held + job.tiles <= most + 1e-9:
            return end
    return math.inf


def make_room(sched: Scheduler, waiting: MachineJob) -> None:
    """``waiting`` is held out of the floorplan: ask its own tenant's much less urgent
    jobs to make room (:func:`.urgent.make_room`), or else the latest jobs of tenants
    past their bound to move to storage at their next fences, until their holds are
    within it (only where a module has storage room for them)."""
    if not sched.preempts or urgent.make_room(sched, waiting):
        return
    if sched.held_tiles(waiting.tenant) + waiting.tiles > bound(sched, waiting.tenant) + 1e-9:
        return  # its own tenant is past its bound: it waits its turn
    for job in reversed(list(sched.state.running)):
        if job.tenant == waiting.tenant or job.stopping is not None:
            continue
        over = sched.held_tiles(job.tenant) - bound(sched, job.tenant)
        leaving = sum(j.tiles for j in sched.state.running if j.tenant == job.tenant and j.stopping)
        if over - leaving <= 0:
            continue
        sched.preempt(job, storage=True)


def resume_stopped(sched: Scheduler) -> None:
    """Bring back the jobs :func:`make_room` moved out, oldest first, each once its
    tenant may hold it again (:func:`may_hold`) and it fits. At the first boundary
    after a job left for storage, another tenant's queued job that may start in the
    tiles it left goes first: that is the turn it was moved out for, and the job is
    not to take its tiles back at once (it waits no longer than that boundary)."""
    for job in sorted(sched.state.stopped, key=lambda j: j.seq):
        if (
            job.state == "stored"
            and sched.now - job.stop_at < sched.machine.epoch_cycles
            and _turn_of_another(sched, job)
        ):
            continue
        if may_hold(sched, job):
            sched.resume(job)


def _turn_of_another(sched: Scheduler, job: MachineJob) -> bool:
    """Whether another tenant's oldest queued job, or a much more urgent one of its own
    tenant (:func:`.urgent.goes_first`), may start where it stands now."""
    if urgent.goes_first(sched, job):
        return True
    for tenant, queue in sched.queue_of.items():
        if tenant != job.tenant:
            head = next(iter(queue))
            if may_hold(sched, head) and sched.find(head) is not None:
                return True
    return False
