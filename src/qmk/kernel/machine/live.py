"""The machine scheduler driven by a live kernel: admissions in, the machine's state out.

A kernel holds one :class:`LiveMachine`: the same :class:`~qmk.kernel.machine.core.
Scheduler` ``qmk machine simulate`` runs, fed one admission at a time. Its clock is
machine time: an admitted job is stamped with the machine clock's cycle, and the same
admissions at the same cycles give the same schedule, on any computer and in a replay.
The kernel calls :meth:`LiveMachine.advance` and gets the jobs whose schedule ended
(their machine records). :meth:`LiveMachine.status` is the machine's state
(``q_machine_status``): its floorplan with each tenant's jobs in place, and the
utilization of tiles, factories and links so far and over time. It holds each
tenant's share, Jain's index, throughput, slowdowns, and the idle logical error the
jobs were given (mean and most).

Admission refuses what no schedule can serve: a job no placement can hold (``QK501``)
and one whose idle error alone on the empty machine passes its error budget
(``QK505``). Both are decided from the job's run alone, computed once per distinct
footprint.

**A hold bounded in time.** A job holds its tiles until it ends, or until the policy
moves it to storage at one of its fences. Under a policy that bounds tenants' holds
(``fair-share``, ``fidelity``), a job that runs longer than ``hold_cycles`` alone and
that the machine could never move out (no module's storage holds its data patches, or
the policy preempts none on this machine) may hold at most its tenant's share of the
largest tile range: its quota weight over all the tenants' (``QK501`` past it, naming
``[machine] storage_tiles``). So every tenant always finds its share of the floorplan
free of other tenants' long jobs, like memory a process may lock against swapping.

**The speedup over ``exclusive`` is computed on demand** (:meth:`LiveMachine.speedup`),
never beside the jobs. The machine keeps its last :data:`WINDOW` arrivals (and the
cancels among them). The figure is those arrivals run again on an empty machine under
``exclusive`` and under the kernel's policy: the ratio of the two makespans, as
``qmk machine simulate`` computes it for a workload.

A kernel runs for months, so nothing here grows with its history. The scheduler keeps
only the jobs that have not ended. A finished job's record goes to the kernel (which
puts it in the job's run request) and is not kept. Every figure is computed as the
jobs go: running sums of the resources' busy time, the utilization over time in a
bounded number of spans (:class:`~qmk.kernel.machine.metrics.Gauge`), a count and the
slowdowns' sketch (:class:`~qmk.kernel.machine.metrics.Sketch`: the mean exact, the p95
within 1%). ``docs/machine.md`` states the bounds.

>>> from qmk.execution.footprint import Footprint, Step
>>> from qmk.kernel.machine.spec import MachineSpec
>>> fp = Footprint(target="x", logical_qubits=2, block="fast", data_tiles=4,
...                routing_tiles=5, code_distance=9, steps=(Step(kind="idle", cycles=30),))
>>> live = LiveMachine(MachineSpec.simple(tiles=20, epoch_cycles=10), "fair-share")
>>> for i in range(3):
...     live.admit(JobSpec(id=f"j{i}", tenant="a", footprint=fp, arrival_cycle=10))
>>> [r.id for r in live.advance(50)]
['j0', 'j1']
>>> live.status()["jobs"]
{'queued': 0, 'running': 1, 'stopped': 0, 'done': 2}
>>> live.withdraw("j2", 60)  # it started at 40: its tiles free at 60, not 70
True
>>> live.advance(70), live.status()["jobs"]["running"], live.speedup()
([], 0, 2.0)
"""

from __future__ import annotations

from collections import OrderedDict, deque
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

import msgspec

from qmk.kernel.errors import MachineError
from qmk.kernel.machine import metrics
from qmk.kernel.machine.alone import refuse_over_budget, run_alone
from qmk.kernel.machine.core import Scheduler
from qmk.kernel.machine.jobs import JobRecord, JobSpec, Timeline
from qmk.kernel.machine.policies import policy as make_policy

if TYPE_CHECKING:
    from qmk.execution.footprint import Footprint
    from qmk.kernel.machine.spec import MachineSpec

#: Distinct footprints whose run alone and timeline are kept (the least recently used
#: go first).
ALONE_KEPT = 256
#: The arrivals the speedup over ``exclusive`` is computed on (the latest).
WINDOW = 512


class LiveMachine:
    """One machine's schedule kept by a live kernel (module docstring).

    Args:
        machine: the machine.
        policy: the policy's name (None: the machine's).
        tenants: quota weights by tenant (shares of tiles, factories, links, decoder).
        window: the latest arrivals the speedup over ``exclusive`` is computed on.
        hold_cycles: the longest a job the machine cannot move out may run past its
            tenant's share (module docstring; None: no bound).
    """

    def __init__(
        self,
        machine: MachineSpec,
        policy: str | None = None,
        tenants: Mapping[str, float] | None = None,
        *,
        window: int = WINDOW,
        hold_cycles: int | None = None,
    ) -> None:
        self.machine = machine
        self.policy = policy or machine.policy
        self.tenants = dict(tenants or {})
        self.hold_cycles = hold_cycles
        self.sched = Scheduler(machine, make_policy(self.policy), self.tenants, history=False)
        #: each footprint's (by its encoding) run alone and timeline, built once for all
        #: its jobs (a kernel's jobs each have a footprint object)
        self._alone: OrderedDict[bytes, tuple[JobRecord, Timeline]] = OrderedDict()
        #: the spec :meth:`check` passed last, and what it found of its footprint
        self._checked: tuple[JobSpec, tuple[JobRecord, Timeline]] | None = None
        #: the footprint object :meth:`check` read last, and what is known of it (a
        #: program's jobs share one: no encoding of it a job)
        self._last: tuple[Footprint | None, tuple[JobRecord, Timeline] | None] = (None, None)
        #: the tenant and error budget a job of that footprint passed :meth:`check` with
        #: (what else the check reads is the machine's and fixed): a job the same in
        #: these passes without the check again
        self._passed: tuple[str, float | None] | None = None
        #: the latest arrivals and the cancels among them (:meth:`speedup`)
        self._window: deque[JobSpec] = deque(maxlen=window)
        self._cancels: dict[str, float] = {}
        self._logged = 0
        self._speedup: tuple[int, float | None] = (-1, None)
        #: jobs ended, their slowdowns, and the idle errors they were given
        self.ended = 0
        self.slowdowns = metrics.Sketch()
        self.idle_sum = 0.0
        self.idle_max = 0.0
        self.over_budget = 0

    @property
    def now(self) -> float:
        """The machine's clock (where its event loop is)."""
        return self.sched.now

    def admit(
        self, spec: JobSpec, *, checked: bool = False, arrival_cycle: int | None = None
    ) -> None:
        """A job admitted at ``spec.arrival_cycle`` (not before :attr:`now`), or at
        ``arrival_cycle`` when given. ``checked``: :meth:`check` passed ``spec`` (but
        for its arrival, which the check does not read) since the machine last changed.

        Raises:
            MachineError: ``QK501`` no placement of the machine can ever hold it;
                ``QK505`` its budget cannot be met (the kernel refuses the job at its
                submit).
        """
        last, self._checked = self._checked, None
        if checked and last is not None and last[0] is spec:
            alone, timeline = last[1]  # what the check found of its footprint
        else:
            if not checked:
                self.sched.check_placeable(spec)
            alone, timeline = self._known(spec)
            if not checked:
                refuse_over_budget(spec, alone, self.sched.machine)
                self._refuse_locked(spec, alone)
        runtime = alone.end_cycle - alone.start_cycle
        if arrival_cycle is None:
            spec = msgspec.structs.replace(spec, runtime_alone_cycles=runtime)
        else:
            spec = msgspec.structs.replace(
                spec, runtime_alone_cycles=runtime, arrival_cycle=arrival_cycle
            )
        self.sched.submit(spec, checked=True, timeline=timeline)
        self._window.append(spec)
        self._logged += 1

    def knows(self, job_id: str) -> bool:
        """Whether ``job_id`` is on the machine (not ended, not cancelled)."""
        return self.sched.knows(job_id)

    def check(self, spec: JobSpec) -> None:
        """Refuse ``spec`` if no placement can ever hold it, or if its budget cannot be
        met (nothing changes but what is known of its footprint: an :meth:`admit` of
        ``spec`` reuses it).

        Raises:
            MachineError: ``QK501`` or ``QK505`` naming it.
        """
        self._checked = None
        footprint, known = self._last
        passed = (spec.tenant, spec.error_budget)
        if footprint is not spec.footprint or known is None:
            self._passed = None
            key = msgspec.json.encode(spec.footprint)
            known = self._alone.get(key)
            self.sched.check_placeable(spec, None if known is None else known[1])
            # its run alone only once it is known to fit
            known = self._known(spec, key)
            self._last = (spec.footprint, known)
        elif passed == self._passed:
            self._checked = (spec, known)
            return
        else:
            self.sched.check_placeable(spec, known[1])
        refuse_over_budget(spec, known[0], self.sched.machine)
        self._refuse_locked(spec, known[0])
        self._passed = passed
        self._checked = (spec, known)

    def _refuse_locked(self, spec: JobSpec, alone: JobRecord) -> None:
        """Refuse a long job the machine could never move out past its tenant's share
        (module docstring).

        Raises:
            MachineError: ``QK501`` naming it, its run and the share.
        """
        hold = self.hold_cycles
        if hold is None or not self.sched.policy.bounds_holds or not self.tenants:
            return
        runtime = alone.end_cycle - alone.start_cycle
        fp = spec.footprint
        if runtime <= hold:
            return
        room = max((m.storage_tiles for m in self.machine.modules), default=0)
        if self.sched.preempts and room >= fp.data_tiles:
            return  # moved to storage at its next fence when another tenant waits
        weights = {name: self.sched.weight(name) for name in {*self.tenants, spec.tenant}}
        share = self.sched.floorplan.largest * weights[spec.tenant] / sum(weights.values())
        if fp.tiles <= share:
            return
        raise MachineError.of(
            "unplaceable",
            f"job {spec.id} (tenant {spec.tenant}) would hold {fp.tiles} tiles for "
            f"{runtime:,.0f} cycles, past [machine] fence_cycles ({hold:,}), and the "
            f"machine could never move it out: tenant {spec.tenant}'s share holds "
            f"{share:,.0f} tiles; give [machine] storage_tiles at least {fp.data_tiles} "
            "(its data patches), raise its machine_share, or split the program",
            job=spec.id,
            tiles=fp.tiles,
            t_states=fp.t_states,
        )

    def withdraw(self, job_id: str, at: float) -> bool:
        """Cancel ``job_id`` at machine cycle ``at``: at ``at`` it leaves the queue, or
        frees its tiles and its claims on the factories, links and decoder. Whether it
        was here."""
        if any(spec.id == job_id for spec in self._window):
            self._cancels[job_id] = at
            self._logged += 1
        return self.sched.cancel(job_id, at)

    def next_event(self) -> float:
        """The machine time of the next event (inf: none)."""
        return self.sched.next_event()

    def next_release(self) -> float:
        """The machine time up to which :meth:`advance` gives no record (inf: none)."""
        return self.sched.next_event()

    def advance(self, cycle: float) -> list[JobRecord]:
        """Bring the machine to ``cycle``; the jobs whose schedule ended since the last
        call, with their runtimes alone (for slowdowns). They are not kept."""
        sched = self.sched
        sched.advance(cycle)
        if not sched.done:
            return []
        out = sched.take_done()
        for record in out:
            self.slowdowns.add(record.slowdown)
            error = record.idle_logical_error
            self.idle_sum += error
            if error > self.idle_max:
                self.idle_max = error
            self.over_budget += record.within_budget is False
            self.ended += 1
        return out

    def _known(self, spec: JobSpec, key: bytes | None = None) -> tuple[JobRecord, Timeline]:
        """``spec``'s run alone and its footprint's timeline (``key``: the footprint's
        encoding, where the caller has it)."""
        if key is None:
            key = msgspec.json.encode(spec.footprint)
        known = self._alone.get(key)
        if known is None:
            known = (run_alone(self.machine, spec), Timeline(spec.footprint))
            self._alone[key] = known
            if len(self._alone) > ALONE_KEPT:
                self._alone.popitem(last=False)
        else:
            self._alone.move_to_end(key)
        return known

    def speedup(self) -> float | None:
        """The speedup over ``exclusive`` of the latest arrivals (module docstring):
        ``exclusive``'s makespan over the policy's, both from an empty machine; None
        before any job arrived."""
        known, figure = self.speedup_known()
        return figure if known else self.speedup_work()()

    def speedup_known(self) -> tuple[bool, float | None]:
        """Whether the speedup of the latest arrivals is computed (no arrival or cancel
        since), and that figure."""
        logged, figure = self._speedup
        return logged == self._logged, figure

    def speedup_work(self) -> Callable[[], float | None]:
        """The work that computes the speedup of the arrivals now, on a copy of them: it
        may run in another thread while the machine goes on (it reads nothing the
        machine changes), and keeps its figure for these arrivals."""
        jobs = list(self._window)
        ids = {j.id for j in jobs}
        self._cancels = cancels = {i: at for i, at in self._cancels.items() if i in ids}
        logged, cancelled = self._logged, dict(cancels)

        def work() -> float | None:
            figure = None
            if jobs:
                names = ("exclusive", self.policy)
                spans = [self._makespan(name, jobs, cancelled) for name in names]
                figure = spans[0] / spans[1] if spans[1] else None
            if self._speedup[0] < logged:
                self._speedup = (logged, figure)
            return figure

        return work

    def _makespan(self, name: str, jobs: list[JobSpec], cancels: dict[str, float]) -> float:
        sched = Scheduler(self.machine, make_policy(name), self.tenants, history=False)
        for spec in jobs:
            sched.submit(spec, checked=True)
        for job_id, at in cancels.items():
            sched.cancel(job_id, at)
        sched.advance(float("inf"))
        records = sched.take_done()
        if not records:
            return 0.0
        return max(r.end_cycle for r in records) - min(j.arrival_cycle for j in jobs)

    def floorplan(self) -> list[dict[str, Any]]:
        """Each module's jobs in place: ``{module, tiles, jobs: [{job, tenant, first_tile,
        tiles, state}], storage_free}``; a range's tiles are numbered within its module."""
        modules = []
        for module in self.machine.modules:
            jobs = []
            for area in self.sched.ranges:
                if area.module != module.index:
                    continue
                for at, job in sorted(area.occupants.items()):
                    jobs.append(
                        {
                            "job": job.id,
                            "tenant": job.tenant,
                            "first_tile": area.spec.offset + at,
                            "tiles": job.tiles,
                            "state": job.state,
                        }
                    )
            modules.append(
                {
                    "module": module.index,
                    "tiles": module.tiles,
                    "width": module.width,
                    "jobs": jobs,
                    "storage_tiles": module.storage_tiles,
                    "storage_free": self.sched.storage_free(module.index),
                }
            )
        return modules

    def figures(self) -> dict[str, Any]:
        """:meth:`status` without the series and the floorplan: the figures a metrics
        scrape reads."""
        out = self.status(series=False)
        del out["floorplan"], out["utilization_over_time"]
        return out

    def capacities(self) -> dict[str, float]:
        """What each resource can give a cycle: job tiles, T states, Bell pairs."""
        sched = self.sched
        return {
            "tiles": float(sum(r.spec.length for r in sched.ranges)),
            "factories": sched.t_capacity,
            "links": self.machine.link.bell_pairs_per_cycle,
        }

    def status(self, *, series: bool = True, speedup: bool = False) -> dict[str, Any]:
        """The machine's state now (``q_machine_status``; module docstring); without
        ``series``, no ``utilization_over_time``; ``speedup``: with the speedup over
        ``exclusive`` computed (:meth:`speedup`; else None)."""
        sched = self.sched
        now = sched.now
        start = min(sched.first_arrival, now)
        capacities = self.capacities()
        epoch = self.machine.epoch_cycles
        span = max(0.0, now - start)
        names = sorted({*self.tenants, *sched.tenant_names()} | set(_holders(sched)))
        used = {t: sched.usage(t) for t in names}
        total = sum(used.values())
        shares = {t: (used[t] / total if total else 0.0) for t in names}
        done = self.ended
        gauges = sched.gauges
        return {
            "policy": self.policy,
            "now_cycle": round(now),
            "epoch_cycles": epoch,
            "jobs": {
                "queued": len(sched.queue),
                "running": len(sched.running),
                "stopped": len(sched.stopped),
                "done": done,
            },
            "utilization": {
                name: gauges[name].utilization(capacity=cap, end=now)
                for name, cap in capacities.items()
            },
            "utilization_over_time": None
            if not series
            else {
                name: [[round(t), u] for t, u in gauges[name].series(capacity=cap, end=now)]
                for name, cap in capacities.items()
            },
            "tenant_shares": shares,
            "jain_fairness": metrics.jain(shares, self.tenants),
            "throughput_jobs_per_s": metrics.throughput(done, span, self.machine.cycle_time_ns),
            "mean_slowdown": self.slowdowns.mean,
            "p95_slowdown": self.slowdowns.quantile(0.95),
            "mean_idle_logical_error": self.idle_sum / done if done else 0.0,
            "max_idle_logical_error": self.idle_max,
            "over_budget": self.over_budget,
            "speedup_vs_exclusive": self.speedup() if speedup else None,
            "floorplan": self.floorplan(),
        }


def _holders(sched: Scheduler) -> list[str]:
    return [job.tenant for job in (*sched.running, *sched.stopped, *sched.queue)]
