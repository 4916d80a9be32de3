"""The shadow ``exclusive`` run of a live machine, without the event loop while it can.

A live machine's speedup over ``exclusive`` counts the jobs a shadow ``exclusive``
scheduler fed the same arrivals has ended (:class:`~qmk.kernel.machine.live.LiveMachine`).
``exclusive`` runs one job at a time, first come first served, and a shadow keeps no
record, only when each job ended. For jobs whose steps draw on nothing shared (no T
state, no Bell pair, no decoder limit on the machine) that run is a queue: the
scheduler's rules (``Scheduler._wake``, ``_boundary``, ``Exclusive.decide``,
``_enter``, ``_run_whole``, ``_finish``) come down to a few numbers. A job that arrives
wakes the first boundary at or after its cycle not yet decided, if none is set before
that; a boundary with nothing running starts the first job waiting, its end where its
steps, run whole, end; an end wakes the next boundary for the job waiting next. Ends
come before arrivals of their cycle, arrivals before its boundary (the canonical order,
:mod:`~qmk.kernel.machine.core`). :class:`Shadow` keeps those numbers and the jobs'
specs, not the scheduler's jobs, heap and tiles: a small job costs it a few
comparisons and one :meth:`Timeline.run_from`.

A job of any other kind, or a cancel, hands the run over to the scheduler
(:func:`_hand_over`): the job running then is placed there at its start (its end the
event its steps run whole give), those waiting join its queue in arrival order, those
not arrived yet are submitted, and the boundary set is its next: the state the event
loop would have reached, from which it goes on. Once the scheduler holds nothing again,
the queue takes the run back. Every end, and so every speedup, is the scheduler's to
the last bit; ``tests/kernel/machine/test_live.py`` compares the figure with an eager
scheduler's at random reads.

>>> from qmk.execution.footprint import Footprint, Step
>>> from qmk.kernel.machine.jobs import JobSpec, Timeline
>>> from qmk.kernel.machine.spec import MachineSpec
>>> fp = Footprint(target="x", logical_qubits=2, block="fast", data_tiles=4,
...                routing_tiles=5, code_distance=9, steps=(Step(kind="gates", cycles=4),))
>>> shadow = Shadow(MachineSpec.simple(tiles=20, epoch_cycles=10), {})
>>> for i in range(3):  # all at 3: they start at 10, 20 and 30, one at a time
...     spec = JobSpec(id=f"j{i}", tenant="a", footprint=fp, arrival_cycle=3)
...     shadow.submit(spec, checked=True, timeline=Timeline(fp))
>>> shadow.advance(25.0)
>>> shadow.take_ended(25.0), shadow.holding(), shadow.next_boundary
(2, 1, 30.0)
"""

from __future__ import annotations

import collections
import math
from collections.abc import Mapping
from typing import TYPE_CHECKING

from qmk.kernel.machine.core import _BOUNDARY, INF, Scheduler, enqueue
from qmk.kernel.machine.jobs import Job, JobSpec, Timeline
from qmk.kernel.machine.policies.exclusive import Exclusive

if TYPE_CHECKING:
    from qmk.kernel.machine.metrics import Gauge
    from qmk.kernel.machine.pools import Pool
    from qmk.kernel.machine.spec import MachineSpec


class Shadow:
    """A live machine's shadow ``exclusive`` run: a :class:`Scheduler`'s (no records,
    steps run whole) ends, kept without its event loop while every job's steps draw on
    nothing shared (module docstring).

    Args:
        machine: the machine.
        tenants: quota weights by tenant (the scheduler's).
    """

    def __init__(self, machine: MachineSpec, tenants: Mapping[str, float]) -> None:
        #: the scheduler, which runs what the queue does not (module docstring)
        self.sched = Scheduler(
            machine, Exclusive(), tenants, history=False, records=False, whole=True
        )
        self._epoch = machine.epoch_cycles
        #: whether the queue holds the run (else the scheduler does)
        self._queued = self.sched._whole
        #: the queue's state: its clock, the job running (spec, timeline, start, end),
        #: those arrived and waiting, those not arrived yet, the boundary set next and
        #: the last one decided
        self._now = 0.0
        self._running: tuple[JobSpec, Timeline, float, float] | None = None
        self._waiting: collections.deque[tuple[JobSpec, Timeline]] = collections.deque()
        self._arriving: collections.deque[tuple[JobSpec, Timeline]] = collections.deque()
        self.next_boundary: float | None = None
        self._decided = -INF
        self._ids: set[str] = set()
        #: jobs ended in the queue (the event loop never held them)
        self.queued_jobs = 0

    # ------------------------------------------------------------------ the scheduler's calls

    @property
    def now(self) -> float:
        return self._now if self._queued else self.sched.now

    @property
    def ends(self) -> list[float]:
        """When jobs ended, not yet taken (:meth:`take_ended`)."""
        return self.sched.ends

    @property
    def gauges(self) -> dict[str, Gauge]:
        return self.sched.gauges

    @property
    def pools(self) -> list[Pool]:
        return self.sched.pools

    def holding(self) -> int:
        """The jobs here that have not ended."""
        return len(self._ids) if self._queued else self.sched.holding()

    def take_ended(self, until: float = INF) -> int:
        """How many jobs ended by ``until`` since the last call."""
        return self.sched.take_ended(until)

    def submit(self, spec: JobSpec, *, checked: bool = False, timeline: Timeline) -> None:
        """A job arrives at ``spec.arrival_cycle`` (:meth:`Scheduler.submit`)."""
        first = timeline.first
        if self._queued:
            if spec.arrival_cycle < self._now or spec.id in self._ids:
                self._hand_over()  # the scheduler refuses it, and says why
            elif first >= 0 and timeline.plain_after[first]:
                self._arriving.append((spec, timeline))
                self._ids.add(spec.id)
                return
            else:
                self._hand_over()
        self.sched.submit(spec, checked=checked, timeline=timeline)

    def cancel(self, job_id: str, at: float) -> bool:
        """Cancel ``job_id`` at ``at`` (:meth:`Scheduler.cancel`)."""
        if self._queued:
            if job_id not in self._ids:
                return False
            self._hand_over()
        return self.sched.cancel(job_id, at)

    def advance(self, until: float) -> None:
        """Process every event up to ``until`` (:meth:`Scheduler.advance`)."""
        if not self._queued:
            sched = self.sched
            sched.advance(until)
            if not sched._by_id and not sched._heap and sched._whole:
                # it holds nothing: the queue takes the run back from its state
                self._queued = True
                self._now = sched.now
                self._decided = sched._last_decision
                self.next_boundary = None
            return
        arriving, waiting = self._arriving, self._waiting
        while True:
            running = self._running
            end = running[3] if running is not None else INF
            arrival = float(arriving[0][0].arrival_cycle) if arriving else INF
            boundary = self.next_boundary if self.next_boundary is not None else INF
            at = min(end, arrival, boundary)
            if at > until or at == INF:
                break
            self._now = at
            if end == at:  # the canonical order: ends, then arrivals, then the boundary
                self._running = None
                self._ids.discard(running[0].id)  # type: ignore[index]
                self.sched.ends.append(at)
                self.queued_jobs += 1
                if waiting:
                    self._wake(at)
            elif arrival == at:
                waiting.append(arriving.popleft())
                self._wake(at)
            else:
                self.next_boundary = None
                self._decided = at
                if running is None and waiting:  # Exclusive.decide
                    spec, timeline = waiting.popleft()
                    start = at
                    finish = timeline.run_from(timeline.first, start)[1]
                    self._running = (spec, timeline, start, finish)
        if until != INF and until > self._now:
            self._now = until

    def _wake(self, now: float) -> None:
        """``Scheduler._wake``: the first boundary at or after ``now`` not decided yet,
        unless one is set at or before it."""
        epoch = self._epoch
        at = float(math.ceil(now / epoch) * epoch)
        if at <= self._decided:
            at = self._decided + epoch
        if self.next_boundary is not None and self.next_boundary <= at:
            return
        self.next_boundary = at

    def _hand_over(self) -> None:
        """The scheduler takes the run over from the queue's state (module docstring)."""
        if not self._queued:
            return
        self._queued = False
        sched = self.sched
        sched._last_decision = self._decided
        running, self._running = self._running, None
        if running is not None:
            spec, timeline, start, _ = running
            sched.now = start
            job = _job(sched, spec, timeline)
            enqueue(sched, job)
            sched.place(job)  # at its start: its end, the event its steps run whole give
        sched.now = self._now
        for spec, timeline in self._waiting:
            enqueue(sched, _job(sched, spec, timeline))
        for spec, timeline in self._arriving:
            sched.submit(spec, checked=True, timeline=timeline)
        if self.next_boundary is not None:
            sched._boundary_at = self.next_boundary
            sched._push(self.next_boundary, _BOUNDARY, "boundary", None, 0)
        self._waiting.clear()
        self._arriving.clear()
        self._ids.clear()
        self.next_boundary = None


def _job(sched: Scheduler, spec: JobSpec, timeline: Timeline) -> Job:
    """``spec``'s job in ``sched``, as its submit makes it (next in arrival order)."""
    job = Job(spec, timeline, sched._count)
    sched._count += 1
    sched._by_id[spec.id] = job
    if spec.arrival_cycle < sched.first_arrival:
        sched.first_arrival = spec.arrival_cycle
    return job


__all__ = ["Shadow"]
