"""The one interface every scheduling policy meets.

A policy is consulted by the scheduler's core (:class:`~qmk.kernel.machine.core.Scheduler`)
at each epoch boundary where something changed (:meth:`SchedulingPolicy.decide`). It
acts through the core's public methods:

- ``place`` (start a queued job, or bring a stored one back);
- ``preempt`` (stop a running job at its next fence, in place or into storage),
  ``unpreempt``, ``resume``;
- the floorplan's ``hold`` and ``release_holds`` (keep a region free for a while).

It reads the machine's state (``sched.state``: the queues, who runs, who is stopped,
each tenant's hold), ``find`` and ``t_starved``. It may split the modules into
tile ranges (:meth:`SchedulingPolicy.ranges`) and say which ranges a job may use
(:meth:`SchedulingPolicy.allowed`). It never touches time, rates or resources: the core
owns those, so every policy's schedule obeys the same machine.

Each policy declares what the core needs to know of it as class attributes: whether it
preempts, how the factories' states are shared under it (``supply``), and whether it
keeps jobs within their error budgets (``budgets``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, ClassVar, Literal

if TYPE_CHECKING:
    from qmk.kernel.machine.core import Scheduler
    from qmk.kernel.machine.jobs import JobSpec, MachineJob
    from qmk.kernel.machine.spec import MachineSpec
    from qmk.kernel.machine.tiles import TileRangeSpec


class SchedulingPolicy:
    """Who starts, who is preempted and who resumes at an epoch boundary.

    Attributes:
        name: the policy's name in ``[machine] policy`` and ``--policy``.
        preempts: whether it may call ``preempt``.
        supply: who gets the T states the factories cannot give every job: ``fair``
            (tenants by quota weight, then their jobs max-min) or ``cost`` (the job whose
            waiting costs most first).
        budgets: whether it starts a job only when every running job's expected idle
            error stays within its budget (:mod:`~qmk.kernel.machine.policies.budget`).
        bounds_holds: whether it bounds a tenant's hold on the floorplan while another
            waits (:mod:`~qmk.kernel.machine.policies.tenants`): a kernel then refuses a
            long job it could never move out past its tenant's share
            (:class:`~qmk.kernel.machine.live.LiveMachine`).
    """

    name: ClassVar[str] = ""
    preempts: ClassVar[bool] = False
    supply: ClassVar[Literal["fair", "cost"]] = "fair"
    budgets: ClassVar[bool] = False
    bounds_holds: ClassVar[bool] = False

    def ranges(
        self, machine: MachineSpec, weights: Mapping[str, float]
    ) -> list[TileRangeSpec] | None:
        """The tile ranges the modules' job tiles are split into (None: one per module)."""
        return None

    def preempts_on(self, machine: MachineSpec) -> bool:
        """Whether it may call ``preempt`` on ``machine`` (a job's steps past a fence run
        as one event only where it may not)."""
        return self.preempts

    def setup(self, sched: Scheduler) -> None:
        """Called once when the scheduler is made."""

    def allowed(self, sched: Scheduler, spec: JobSpec) -> Sequence[int] | None:
        """The tile ranges ``spec``'s job may use (None: all)."""
        return None

    def arrived(self, sched: Scheduler, job: MachineJob) -> None:
        """A job joined the queue (the decision waits for the next boundary)."""

    def ended(self, sched: Scheduler, job: MachineJob) -> None:
        """A job ended, or was cancelled."""

    def decide(self, sched: Scheduler) -> None:
        """Act at an epoch boundary (``sched.now``)."""
        raise NotImplementedError

    @classmethod
    def summary(cls) -> str:
        """What it does, in one line (its class docstring's first line)."""
        return (cls.__doc__ or "").strip().splitlines()[0]
