"""The one interface every machine policy meets.

A policy is consulted by the scheduler's core (:class:`~qmk.kernel.machine.core.Scheduler`)
at each epoch boundary where something changed (:meth:`Policy.decide`); it acts through
the core's public methods: ``place`` (start a queued job, or bring a stored one back),
``preempt`` (stop a running job at its next fence, in place or into storage),
``unpreempt``, ``resume``, ``hold`` and ``release_holds`` (keep a region free for a
while), and reads ``queue``, ``stopped``, ``running``, ``usage``, ``find``,
``t_starved``. It may split the modules into pools (:meth:`Policy.pools`) and say which
pools a job may use (:meth:`Policy.allowed`). It never touches time, rates or resources:
the core owns those, so every policy's schedule obeys the same machine.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, ClassVar

if TYPE_CHECKING:
    from qmk.kernel.machine.core import PoolSpec, Scheduler
    from qmk.kernel.machine.jobs import Job, JobSpec
    from qmk.kernel.machine.spec import MachineSpec


class Policy:
    """Who starts, who is preempted and who resumes at an epoch boundary.

    Attributes:
        name: the policy's name in ``[machine] policy`` and ``--policy``.
        preempts: whether it may call ``preempt``.
    """

    name: ClassVar[str] = ""
    #: whether it ever asks a job to stop at a fence (:meth:`Scheduler.preempt`): a
    #: job's steps past a fence run as one event only under a policy that does not
    preempts: ClassVar[bool] = False

    def pools(self, machine: MachineSpec, weights: Mapping[str, float]) -> list[PoolSpec] | None:
        """The pools the modules' job tiles are split into (None: one per module)."""
        return None

    def setup(self, sched: Scheduler) -> None:
        """Called once when the scheduler is made."""

    def allowed(self, sched: Scheduler, spec: JobSpec) -> Sequence[int] | None:
        """The pools ``spec``'s job may use (None: all)."""
        return None

    def arrived(self, sched: Scheduler, job: Job) -> None:
        """A job joined the queue (the decision waits for the next boundary)."""

    def ended(self, sched: Scheduler, job: Job) -> None:
        """A job ended."""

    def decide(self, sched: Scheduler) -> None:
        """Act at an epoch boundary (``sched.now``)."""
        raise NotImplementedError


def overrides(policy: Policy, hook: str) -> bool:
    """Whether ``policy``'s class overrides :class:`Policy`'s ``hook`` (one it inherits
    does nothing: the scheduler need not call it).

    >>> from qmk.kernel.machine.policies import policy
    >>> overrides(policy("partition"), "allowed"), overrides(policy("fair-share"), "ended")
    (True, False)
    """
    return getattr(type(policy), hook) is not getattr(Policy, hook)
