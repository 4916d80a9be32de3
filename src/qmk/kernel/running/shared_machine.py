"""The kernel's shared machine: every job scheduled in machine time before it runs.

A kernel holds one :class:`SharedMachine` (``docs/machine.md``, "The machine in a
kernel"): the floorplan of its ``[machine]`` table and its policy, the scheduler a
:class:`~qmk.kernel.machine.live.LiveMachine` keeps, and the machine clock
(:class:`~qmk.kernel.clock.MachineClock`: ``[machine] cycles_per_s`` logical cycles a
second from the kernel's start, real time by default).

- **Admission** asks each job's target for its footprint (``Job.footprint``).
- **Arrival.** Accepted, a job whose footprint holds tiles arrives at the machine
  stamped with the clock's cycle (:meth:`SharedMachine.offer`) and waits there,
  ``QUEUED``. The machine's schedule depends only on these stamps: the same arrivals
  under the same policy give the same schedule on any computer.
- **Advance.** The machine's task (:meth:`SharedMachine.run`) brings the scheduler up to
  (not including) the clock's cycle, whose arrivals may still come, and sleeps until the
  clock passes the scheduler's next event or a job arrives. Jobs stamped with the same
  cycle meet at the same decisions, however the kernel's loop turns fell between them.
  An arrival brings the scheduler up to its cycle first itself (what the task would do
  next), so the job finds the machine as it is then.
- **Fences.** A job's footprint goes to the machine with a fence wherever it would run
  more than ``[machine] fence_cycles`` cycles without one, at its pace alone (its T
  states at the fastest module's factory rate, its Bell pairs at the link's)
  (:func:`~qmk.kernel.machine.footprints.placed_for`, as ``qmk machine simulate`` places
  it; at most ``MOST_FENCES``, spread wider on a longer run): the points where the machine's
  policy may preempt it, at an epoch boundary, in place or into storage tiles. So no
  job, fences in its program or not, holds its tiles past a preemption by longer; its
  record counts its stops (``preemptions``) and their cycles (``wait_cycles.preempted``).
- **Release.** A job whose schedule ended gets it in its run request
  (:class:`~qmk.execution.request.MachineRun`: its ``machine`` record, and its waits as
  idle cycles after the program's nodes) and goes to the worker queue. Its worker
  computes the outcomes with those idle errors, and its telemetry and attestation carry
  the schedule. ``qmk audit replay`` runs it again with it.

A job the machine does not hold goes to the worker queue at once:

- a cache hit (it takes no machine time);
- a job whose footprint holds no tiles (a neutral-atom device job, a program of no
  qubits);
- a job teleported over several modules (a footprint places on one module);
- a job whose request has its schedule already (restored, recovered, or preempted in
  wall time: the schedule is fixed once).

A job cancelled or timed out while it is on the machine leaves it at the clock's cycle
then: a job waiting for its start leaves the queue, one that has started frees its tiles
and its claims on the factories, links and decoder, so the next boundary may start
another on them. On a machine of one module (no links between modules) a job's Bell
pairs are made inside the module and draw on no shared resource. The machine's decoder
is its one decoder: ``[machine] decoder_bits_per_cycle`` (or its deprecated name
``[faults] decoder_capacity_bits_per_s`` times the cycle time, QK504), the same capacity
``qmk machine simulate`` reads of the same config; a job the machine does not hold draws
on none.

**What a tenant sees.** No tenant reads another's names: ``q_machine_status`` shows the
caller its own name and its own jobs' ids. Every other tenant appears under a label
stable for the kernel, with its share and its patches in place, its jobs without ids.
The label is ``t-`` and 12 hex digits of a keyed hash of its name, the label
``/metrics`` gives it under ``[http] metrics_tenants = "hashed"``. Shares, utilization
and Jain's index are the machine's facts. An operator (``operator = true`` in its
``[tenants]`` table) sees every name and job id.

Nothing here imports the service: the supervisor hands jobs in and takes them back
through :meth:`SharedMachine.offer`, :meth:`SharedMachine.withdraw` and the ``release``
callback.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from qmk.errors import AdmissionError
from qmk.execution.request import MachineRun
from qmk.kernel.clock import MachineClock, RateClock
from qmk.kernel.errors import MachineError
from qmk.kernel.machine.footprints import placed_for
from qmk.kernel.machine.jobs import JobRecord, JobSpec
from qmk.kernel.machine.live import LiveMachine
from qmk.kernel.machine.spec import MachineSpec

if TYPE_CHECKING:
    from qmk.abi.probe import MachineFacts
    from qmk.execution.footprint import Footprint
    from qmk.kernel.config import KernelConfig
    from qmk.kernel.records.jobs import Job


#: Withdrawn machine ids kept before those off the machine are dropped (:meth:`SharedMachine.
#: withdraw`).
GONE_KEPT = 256


def clock_for(config: KernelConfig, cycle_time_ns: int) -> RateClock:
    """The machine clock of ``config``: ``[machine] cycles_per_s``, or real time (one
    second over the logical cycle time)."""
    rate = config.machine.cycles_per_s
    return RateClock(rate if rate is not None else 1e9 / cycle_time_ns)


def footprint_of(job: Job) -> Footprint | None:
    """``job``'s footprint asked of its target again (a job read back from the store,
    which keeps none); None when its target now refuses it (its worker will say why)."""
    from qmk.errors import QMKError
    from qmk.execution import targets

    target = targets.get(job.request.target)
    try:
        program = target.read(job.graph)
        return target.compile(program, job.request).footprint
    except QMKError:
        return None


class SharedMachine:
    """The kernel's side of the shared machine (module docstring).

    Args:
        config: the kernel configuration (``[machine]``, the tenants' ``machine_share``).
        release: called with each job whose schedule ended, and its schedule.
        clock: the machine clock (default: :func:`clock_for`).
        spec: the machine (default: :func:`~qmk.kernel.machine.derive.config_machine` of
            ``config``, derived here; a kernel derives it in its planner process).
    """

    def __init__(
        self,
        config: KernelConfig,
        release: Callable[[Job, MachineRun], None],
        *,
        clock: MachineClock | None = None,
        spec: MachineSpec | None = None,
    ) -> None:
        if spec is None:  # a kernel's comes from its planner: this is the tests' and tools'
            from qmk.kernel.machine.derive import config_machine

            spec = config_machine(config)
        self.spec = spec
        shares = {name: tenant.machine_share for name, tenant in config.tenants.items()}
        self.live = LiveMachine(
            self.spec, config.machine.policy, shares, hold_cycles=config.machine.fence_cycles
        )
        self.clock: MachineClock = clock or clock_for(config, self.spec.cycle_time_ns)
        self.fence_cycles = config.machine.fence_cycles
        self._release = release
        #: machine ids of the jobs the machine holds -> the kernel's job
        self._held: dict[str, Job] = {}
        #: machine ids of the jobs the machine holds -> the footprint it runs (its waits
        #: are counted by that footprint's steps)
        self._runs: dict[str, Footprint] = {}
        #: job id -> its machine id, where that is not its id (admitted again while its
        #: own id was still on the machine)
        self._renamed: dict[str, str] = {}
        self._again = 0  # machine ids given to jobs whose own id is still on the machine
        #: machine ids withdrawn that may still be on the machine (their cancel not yet
        #: past the clock): only these are asked of it at an admission
        self._gone: set[str] = set()
        self._gone_most = GONE_KEPT
        #: how many jobs each tenant has here (none: no key)
        self._per_tenant: dict[str, int] = {}
        self._wake = asyncio.Event()
        #: the cycle the task's wait returns at (inf: none; -inf: it is not waiting, or
        #: is woken and turns before it waits again)
        self._waits_for = -math.inf
        #: the job :meth:`check` passed last and its spec: the accept that checked it
        #: admits it in the same turn of the loop (nothing the check reads changes
        #: between), with that spec, not built and checked again
        self._checked: tuple[Job, JobSpec] | None = None
        #: a footprint the machine last took, and its form on the machine (fenced, and
        #: without Bell pairs from the link where it has none): a program's jobs share one
        self._placed: tuple[Footprint | None, Footprint | None] = (None, None)
        #: how another tenant is named to a tenant (module docstring); the kernel sets
        #: it from its secret (:func:`qmk.abi.probe.hashed_tenants`)
        self.label: Callable[[str], str] = _anonymous()

    # ------------------------------------------------------------------ jobs in

    def takes(self, job: Job) -> bool:
        """Whether ``job`` waits for a schedule here before it runs: it has a footprint
        of tiles (admission leaves none on a job teleported over modules) and no schedule
        yet (module docstring)."""
        footprint = job.footprint
        return job.request.machine is None and footprint is not None and footprint.tiles > 0

    def _spec(self, job: Job, footprint: Footprint, machine_id: str, arrival: int) -> JobSpec:
        given, placed = self._placed
        if footprint is given and placed is not None:
            footprint = placed
        else:
            placed = placed_for(footprint, self.spec, self.fence_cycles)
            self._placed = (footprint, placed)
            footprint = placed
        policy = job.request.policy
        budget = policy.error_budget if policy is not None else None
        return JobSpec(
            id=machine_id,
            tenant=job.tenant,
            footprint=footprint,
            arrival_cycle=arrival,
            priority=job.priority,
            program=job.request.program_digest[:12],
            shots=job.shots,
            error_budget=budget if budget is not None else self.spec.error_budget,
        )

    def check(self, job: Job) -> None:
        """Refuse a job no placement can ever hold (before it is stored): the machine
        cannot hold it at all, an admission refusal like a program past the qubits of
        every module, its code the machine's ``QK501`` and its message the
        ``[machine]`` key to raise and to what.

        Raises:
            AdmissionError: ``QK501 unplaceable`` (JSON-RPC 1007) naming it.
        """
        self._checked = None
        if self.takes(job):
            assert job.footprint is not None
            spec = self._spec(job, job.footprint, job.job_id, 0)  # the check reads no arrival
            try:
                self.live.check(spec)
            except MachineError as exc:
                raise AdmissionError(exc.message, code=exc.code, **exc.details) from None
            self._checked = (job, spec)

    def offer(self, job: Job) -> bool:
        """``job`` arrives now, stamped with the clock's cycle, if the machine takes it
        (:meth:`takes`; one :meth:`check` passed takes it): whether it does.

        Raises:
            MachineError: ``QK501`` no placement can ever hold it.
        """
        checked, self._checked = self._checked, None
        if checked is None or checked[0] is not job:
            if not self.takes(job):
                return False
            checked = None
        assert job.footprint is not None
        arrival = self._catch_up()
        machine_id = job.job_id
        if machine_id in self._held or (machine_id in self._gone and self.live.knows(machine_id)):
            # withdrawn, its cancel not yet past the clock: a fresh id
            self._again += 1
            machine_id = f"{job.job_id}.{self._again}"
        if checked is not None and machine_id == job.job_id:
            spec = checked[1]
            self.live.admit(spec, checked=True, arrival_cycle=arrival)
        else:
            spec = self._spec(job, job.footprint, machine_id, arrival)
            self.live.admit(spec)
        self._held[machine_id] = job
        self._runs[machine_id] = spec.footprint
        if machine_id != job.job_id:
            self._renamed[job.job_id] = machine_id
        per_tenant = self._per_tenant
        per_tenant[job.tenant] = per_tenant.get(job.tenant, 0) + 1
        waits_for = self._waits_for
        if waits_for != -math.inf:  # (else it is woken or not waiting: it reads it)
            upcoming = self.live.sched.next_event()  # (as a turn reads it)
            if upcoming != math.inf and math.floor(upcoming) + 1 < waits_for:
                self._wake.set()  # the task waits for later: it waits again, for this
                self._waits_for = -math.inf  # (it turns before it waits again)
        return True

    def _catch_up(self) -> int:
        """What the task would do first on waking (module docstring: what lies before
        the clock's cycle is final), done now: the machine brought up to the clock's
        cycle, the jobs that ended before it released. The cycle.

        An arrival finds the machine as it is at its cycle (idle, most often: its
        policy's first boundary after it places it), and a read of the machine sees it
        there."""
        cycle = self.clock.cycle()
        for record in self.live.advance(math.nextafter(float(cycle), -math.inf)):
            self._ended(record)
        return cycle

    def withdraw(self, job_id: str) -> bool:
        """Take ``job_id`` back (cancelled, timed out, restored): whether it was here.
        It leaves the machine at the clock's cycle now (module docstring): its record,
        should its schedule end before that cycle is decided, is dropped."""
        machine_id = self._renamed.pop(job_id, job_id)
        job = self._held.pop(machine_id, None)
        if job is None:
            return False
        del self._runs[machine_id]
        self._left(job.tenant)
        gone = self._gone
        if len(gone) >= self._gone_most:  # those whose cancel has passed are off it
            self._gone = gone = {i for i in gone if self.live.knows(i)}
            self._gone_most = max(GONE_KEPT, 2 * len(gone))  # (a scan per as many again)
        gone.add(machine_id)
        self.live.withdraw(machine_id, self.clock.cycle())
        self._wake.set()  # its cancel is an event the machine's task waits for
        return True

    def holds(self, tenant: str) -> int:
        """How many of ``tenant``'s jobs wait for their schedule to end."""
        return self._per_tenant.get(tenant, 0)

    def _left(self, tenant: str) -> None:
        """One of ``tenant``'s jobs left the machine."""
        left = self._per_tenant[tenant] - 1
        if left:
            self._per_tenant[tenant] = left
        else:
            del self._per_tenant[tenant]

    # ------------------------------------------------------------------ time

    async def run(self) -> None:
        """The machine's task: advance to the clock, release the jobs whose schedule
        ended, sleep until the next event or arrival (for as long as it runs)."""
        self.clock.start()
        while True:
            try:
                await self.clock.wait(self.turn(), self._wake)
            finally:
                self._waits_for = -math.inf

    def turn(self) -> float:
        """One turn of the task (:meth:`run`) before it waits: the machine brought up
        to the clock, the jobs whose schedule ended released; the cycle it waits for
        then (inf: none), unless a job arrives or leaves first (:attr:`woken`)."""
        self._wake.clear()
        # only what happens before the clock's cycle is final: a job may still arrive at
        # the cycle itself (stamped with it), and join that boundary's decision (what
        # :meth:`_catch_up` does, here without a call a turn)
        live = self.live
        for record in live.advance(math.nextafter(float(self.clock.cycle()), -math.inf)):
            self._ended(record)
        # the next record the machine gives (an arrival, a read bring the machine up to
        # the clock themselves), or its next event (:meth:`LiveMachine.next_release`, its
        # scheduler's next event, read there: a call less a turn)
        upcoming = live.sched.next_event()
        self._waits_for = upcoming if upcoming == math.inf else math.floor(upcoming) + 1
        return self._waits_for

    @property
    def woken(self) -> bool:
        """Whether the task is to turn before the cycle it waits for: a job arrived whose
        schedule ends before, or one left."""
        return self._wake.is_set()

    def _ended(self, record: JobRecord) -> None:
        job = self._held.pop(record.id, None)
        if job is None:
            return  # withdrawn after it started: its schedule ran out
        footprint = self._runs.pop(record.id)
        if record.id != job.job_id:
            self._renamed.pop(job.job_id, None)
        self._left(job.tenant)
        self._release(job, record.machine_run(record.idle_after(footprint)))

    # ------------------------------------------------------------------ status

    def facts(self) -> MachineFacts:
        """The machine's figures for a metrics scrape (no floorplan, no series)."""
        from qmk.abi.probe import MachineFacts

        self._catch_up()
        figures = self.live.figures()
        return MachineFacts(
            cycle=self.clock.cycle(),
            jobs=figures["jobs"],
            utilization=figures["utilization"],
            tenant_shares=figures["tenant_shares"],
            jain_fairness=figures["jain_fairness"],
            throughput_jobs_per_s=figures["throughput_jobs_per_s"],
            mean_slowdown=figures["mean_slowdown"],
            p95_slowdown=figures["p95_slowdown"],
            mean_idle_logical_error=figures["mean_idle_logical_error"],
            max_idle_logical_error=figures["max_idle_logical_error"],
            over_budget=figures["over_budget"],
        )

    def status(self, tenant: str, *, operator: bool = False) -> dict[str, Any]:
        """The machine as ``tenant`` sees it (``q_machine_status``): the floorplan with
        every tenant's jobs in place, utilization so far and over time, each tenant's
        share, Jain's index, throughput and slowdowns (the speedup over ``exclusive`` is
        the syscall's: :meth:`qmk.kernel.syscalls.machine.MachineDesk.speedup`); the
        machine's figures; the clock. Another tenant's name is its
        label and its jobs have no id, unless ``operator`` (module docstring)."""
        self._catch_up()
        out = self.live.status()

        def named(name: str) -> str:
            return name if operator or name == tenant else self.label(name)

        for module in out["floorplan"]:
            for placed in module["jobs"]:
                job = self._held.get(placed["job"])
                shown = job is not None and (operator or job.tenant == tenant)
                placed["job"] = job.job_id if shown and job is not None else None
                placed["tenant"] = named(placed["tenant"])
        out["tenant_shares"] = {named(t): share for t, share in out["tenant_shares"].items()}
        out["clock_cycle"] = self.clock.cycle()
        out["machine"] = self.spec.to_json()
        return out


def _anonymous() -> Callable[[str], str]:
    """Labels ``tenant-1``, ``tenant-2``, ... in the order tenants are first shown (a
    machine without the kernel's secret: tests)."""
    seen: dict[str, str] = {}

    def label(name: str) -> str:
        return seen.setdefault(name, f"tenant-{len(seen) + 1}")

    return label


__all__ = ["SharedMachine", "clock_for", "footprint_of"]
