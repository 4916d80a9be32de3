"""Who is where on the machine: the one value the scheduler changes, and only through it.

:class:`MachineState` holds the jobs that have not ended, by where they are (queued,
running, stopped). It holds the queue in the orders policies read it (arrival, per
tenant, per priority). It holds each tenant's hold on the floorplan: its tiles now and
its tile-cycles so far. Its methods are the only writes: a job arrives, leaves the queue,
runs, stops, resumes, ends; a tenant's tiles change. Policies read it. The scheduler's
event loop (:mod:`~qmk.kernel.machine.core`) is its one writer, so each move keeps every
index consistent.

>>> state = MachineState()
>>> state.tiles_changed("a", now=0.0, tiles=4)
>>> state.tiles_changed("a", now=10.0, tiles=-4)
>>> state.usage("a", now=20.0), state.held_tiles("a")
(40.0, 0)
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from qmk.kernel.machine.jobs import MachineJob

QUEUED, RUNNING, STOPPED, STORED, DONE = "queued", "running", "stopped", "stored", "done"
#: A queued job's kind (:attr:`~qmk.kernel.machine.jobs.MachineJob.kind`).
Kind = tuple[str, int, int, "float | None", int]


class _Hold:
    """A tenant's tiles held now, and its tile-cycles up to ``since``."""

    __slots__ = ("held", "since", "used")

    def __init__(self) -> None:
        self.held = 0
        self.since = 0.0
        self.used = 0.0

    def at(self, now: float) -> float:
        return self.used + self.held * (now - self.since)


class MachineState:
    """The jobs not ended, by where they are, and each tenant's hold (module docstring).

    Attributes:
        by_id: every job not ended (or cancelled), arrived or not, by id.
        queue: queued jobs in arrival order.
        queue_of: the queue by tenant, each in arrival order.
        queue_at: the queue by priority, each in arrival order.
        kinds_of: how many of each tenant's queued jobs are of each kind (``job.kind``).
            Queued jobs of one kind share one ``kind`` value, so a policy that walks the
            queue may tell kinds apart by identity, without hashing each.
        running: jobs holding tiles and not stopped, in start order.
        running_at: the running jobs by (module, tenant), each in ``running``'s order.
        drawing_on: how many running jobs draw T states, by module (none: no key).
        sole_on: the tenants with jobs running ``sole`` (past their part of the
            factories, :mod:`~qmk.kernel.machine.policies.budget`), by module, and how
            many each has (a job's ``sole`` is set before it starts, and kept).
        stopped: preempted jobs, stopped in place or in storage.
        stopped_of: how many stopped jobs each tenant has.
        held: tiles held by all jobs.
    """

    __slots__ = (
        "_holds",
        "_kinds",
        "by_id",
        "drawing_on",
        "held",
        "kinds_of",
        "queue",
        "queue_at",
        "queue_of",
        "running",
        "running_at",
        "sole_on",
        "stopped",
        "stopped_of",
    )

    def __init__(self) -> None:
        self.by_id: dict[str, MachineJob] = {}
        self.queue: dict[MachineJob, None] = {}
        self.queue_of: dict[str, dict[MachineJob, None]] = {}
        self.queue_at: dict[int, dict[MachineJob, None]] = {}
        self.kinds_of: dict[str, dict[tuple[object, ...], int]] = {}
        #: each kind queued, its one value (``kinds_of``)
        self._kinds: dict[Kind, Kind] = {}
        self.running: dict[MachineJob, None] = {}
        self.running_at: dict[tuple[int, str], dict[MachineJob, None]] = {}
        self.drawing_on: dict[int, int] = {}
        self.sole_on: dict[int, dict[str, int]] = {}
        self.stopped: dict[MachineJob, None] = {}
        self.stopped_of: dict[str, int] = {}
        self.held = 0
        self._holds: dict[str, _Hold] = {}

    # ------------------------------------------------------------------ jobs

    def admit(self, job: MachineJob) -> None:
        """``job`` is known (it arrives later, or now)."""
        self.by_id[job.id] = job

    def enqueue(self, job: MachineJob) -> None:
        """``job`` arrived: it joins the queues, last."""
        self.queue[job] = None
        self.queue_of.setdefault(job.tenant, {})[job] = None
        self.queue_at.setdefault(job.priority, {})[job] = None
        kind = job.kind = self._kinds.setdefault(job.kind, job.kind)
        kinds = self.kinds_of.setdefault(job.tenant, {})
        kinds[kind] = kinds.get(kind, 0) + 1

    def dequeue(self, job: MachineJob) -> None:
        """``job`` leaves the queues (it starts, or is cancelled)."""
        del self.queue[job]
        of = self.queue_of[job.tenant]
        del of[job]
        if not of:
            del self.queue_of[job.tenant]
        at = self.queue_at[job.priority]
        del at[job]
        if not at:
            del self.queue_at[job.priority]
        kinds = self.kinds_of[job.tenant]
        if kinds[job.kind] > 1:
            kinds[job.kind] -= 1
        else:
            del kinds[job.kind]
            del self._kinds[job.kind]  # (a kind is its tenant's: none of it is queued)
            if not kinds:
                del self.kinds_of[job.tenant]

    def run(self, job: MachineJob) -> None:
        """``job`` runs (started, or resumed)."""
        if self.stopped:
            self._unstop(job)
        job.state = RUNNING
        if job not in self.running:
            self.running[job] = None
            self.running_at.setdefault((job.module, job.tenant), {})[job] = None
            module = job.module
            if job.tl.t_total:
                self.drawing_on[module] = self.drawing_on.get(module, 0) + 1
            if job.sole:
                sole = self.sole_on.setdefault(module, {})
                sole[job.tenant] = sole.get(job.tenant, 0) + 1

    def _unrun(self, job: MachineJob) -> None:
        """``job`` leaves ``running`` and its indexes (as it entered them)."""
        del self.running[job]
        key = (job.module, job.tenant)
        group = self.running_at[key]
        del group[job]
        if not group:
            del self.running_at[key]
        module = job.module
        if job.tl.t_total:
            left = self.drawing_on[module] - 1
            if left:
                self.drawing_on[module] = left
            else:
                del self.drawing_on[module]
        if job.sole:
            sole = self.sole_on[module]
            if sole[job.tenant] > 1:
                sole[job.tenant] -= 1
            else:
                del sole[job.tenant]
                if not sole:
                    del self.sole_on[module]

    def _unstop(self, job: MachineJob) -> None:
        if self.stopped.pop(job, False) is None:
            left = self.stopped_of[job.tenant] - 1
            if left:
                self.stopped_of[job.tenant] = left
            else:
                del self.stopped_of[job.tenant]

    def park(self, job: MachineJob, state: str, now: float) -> None:
        """``job`` stops at a fence: in place (``STOPPED``) or in storage (``STORED``)."""
        self._unrun(job)
        job.state = state
        job.stop_at = now
        job.version += 1
        self.stopped[job] = None
        self.stopped_of[job.tenant] = self.stopped_of.get(job.tenant, 0) + 1

    def forget(self, job: MachineJob) -> None:
        """``job`` ended or was cancelled: nothing of it is kept."""
        if job in self.running:
            self._unrun(job)
        if self.stopped:
            self._unstop(job)
        job.state = DONE
        job.version += 1
        self.by_id.pop(job.id, None)

    def waiting(self) -> bool:
        """Whether a job is queued or stopped (a boundary has something to decide)."""
        return bool(self.queue or self.stopped)

    # ------------------------------------------------------------------ tenants' holds

    def tiles_changed(self, tenant: str, *, now: float, tiles: int) -> None:
        """``tenant`` takes (``tiles > 0``) or gives back tiles at ``now``."""
        hold = self._holds.get(tenant)
        if hold is None:
            hold = self._holds[tenant] = _Hold()
        hold.used += hold.held * (now - hold.since)  # (``hold.at(now)``)
        hold.since = now
        hold.held += tiles
        self.held += tiles

    def usage(self, tenant: str, now: float) -> float:
        """Tile-cycles ``tenant`` has held up to ``now``."""
        hold = self._holds.get(tenant)
        return 0.0 if hold is None else hold.at(now)

    def held_tiles(self, tenant: str) -> int:
        """Tiles ``tenant``'s jobs hold now."""
        hold = self._holds.get(tenant)
        return 0 if hold is None else hold.held

    def tenants(self) -> list[str]:
        """The tenants whose jobs have held tiles."""
        return list(self._holds)

    def tenants_waiting(self) -> set[str]:
        """The tenants with a job queued or stopped."""
        return {*self.queue_of, *self.stopped_of}

    def tenants_with_jobs(self) -> set[str]:
        """The tenants with a job queued, running or stopped."""
        return {*self.queue_of, *(tenant for _, tenant in self.running_at), *self.stopped_of}
