"""The machine scheduler driven by a live kernel: admissions in, the machine's state out.

A kernel holds one :class:`LiveMachine`. Its clock is the kernel's epoch counter: kernel
epoch ``e`` is machine cycle ``e * epoch_cycles`` (:meth:`LiveMachine.cycle_of`), so an
admitted job is stamped with the cycle of the epoch it was admitted in, and the same
admissions at the same epochs give the same schedule, on any computer and in a replay.
At each epoch tick the kernel calls :meth:`LiveMachine.advance` and gets the jobs whose
schedule ended (their machine records); :meth:`LiveMachine.status` is the machine's
state (``q_machine_status``): its floorplan with each tenant's jobs in place, the
utilization of tiles, factories and links so far and over time, each tenant's share,
Jain's index, throughput, slowdowns, and the speedup over ``exclusive`` for the same
arrivals, which a shadow scheduler runs over the policy's arrivals (the ratio of the
two throughputs over the same window: the issue's "ratio of makespans, or of
throughput"). Both count the jobs that arrived since the shadow started: when the
machine does more than ``exclusive`` could for long, the shadow's queue would grow for
ever, so past :data:`SHADOW_JOBS` jobs it starts again, empty, at the next arrival of a
later cycle (the speedup then counts the arrivals from that cycle on; the policy's run
still holds its older jobs there while the shadow starts empty, so the figure errs low).

The figure is read only by :meth:`LiveMachine.status` (and a metrics scrape), so the
shadow runs lazily: its arrivals, cancels and the clock's moves between them are kept
in a log (:class:`_ShadowLog`) and replayed into it, in the order they came, when the
figure is read, when the log holds :data:`SHADOW_LOG` entries, or when an arrival
might start the shadow again (the jobs it may hold reach :data:`SHADOW_JOBS`). The
replay makes the same calls on the shadow the eager run made (only consecutive clock
moves merge into the last, which changes nothing: no event is pushed between them), so
the figure is exactly the eager one. Jobs whose steps draw on nothing shared run
there as a queue of numbers, not the scheduler's jobs and events
(:class:`~qmk.kernel.machine.shadow.Shadow`: the same ends). Arrivals and cancels come
in the order of their cycles.

A kernel runs for months, so nothing here grows with its history: the scheduler keeps
only the jobs that have not ended, a finished job's record goes to the kernel (which
puts it in the job's run request) and is not kept, and every figure is computed as the
jobs go: running sums of the resources' busy time, the utilization over time in a
bounded number of spans (:class:`~qmk.kernel.machine.metrics.Gauge`), a count and the
slowdowns' sketch (:class:`~qmk.kernel.machine.metrics.Sketch`: the mean exact, the p95
within 1%). ``docs/machine.md`` states the bounds.

It imports nothing of the service: it is the same scheduler object
``qmk machine simulate`` runs, fed one admission at a time.

>>> from qmk.execution.footprint import Footprint, Step
>>> from qmk.kernel.machine.spec import MachineSpec
>>> fp = Footprint(target="x", logical_qubits=2, block="fast", data_tiles=4,
...                routing_tiles=5, code_distance=9, steps=(Step(kind="idle", cycles=30),))
>>> live = LiveMachine(MachineSpec.simple(tiles=20, epoch_cycles=10), "fair-share")
>>> for i in range(3):
...     live.admit(JobSpec(id=f"j{i}", tenant="a", footprint=fp,
...                        arrival_cycle=live.cycle_of(1)))
>>> [r.id for r in live.advance(live.cycle_of(5))]
['j0', 'j1']
>>> live.status()["jobs"]
{'queued': 0, 'running': 1, 'stopped': 0, 'done': 2}
>>> live.withdraw("j2", live.cycle_of(6))  # it started at 40: its tiles free at 60, not 70
True
>>> live.advance(live.cycle_of(7)), live.status()["jobs"]["running"]
([], 0)
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import msgspec

from qmk.kernel.machine import metrics
from qmk.kernel.machine.core import Scheduler, runtime_alone
from qmk.kernel.machine.groups import Groups
from qmk.kernel.machine.jobs import JobRecord, JobSpec, Timeline
from qmk.kernel.machine.policies import policy as make_policy
from qmk.kernel.machine.shadow import Shadow

if TYPE_CHECKING:
    from qmk.execution.footprint import Footprint
    from qmk.kernel.machine.spec import MachineSpec

#: Distinct footprints whose runtime alone and timeline are kept (the least recently
#: used go first).
ALONE_KEPT = 256
#: The most jobs the shadow ``exclusive`` run holds (queued or running): past them it
#: starts again, empty, at the next arrival (module docstring).
SHADOW_JOBS = 4096
#: The most entries of the shadow's log not yet replayed (an arrival is two: the clock's
#: move before it, and it). The replay's cost is the same per job in any batch; a
#: smaller log bounds the pause of the one that fills it (about 10 ms here).
SHADOW_LOG = 1024


class _ShadowLog:
    """The shadow's calls not yet made, in order: ``("submit", spec, timeline)``, ``("cancel",
    id, at)`` and ``("advance", cycle)``, the last clock move kept apart until a submit or
    a cancel follows it (consecutive moves merge: module docstring). ``submits``: the
    submits among them."""

    __slots__ = ("moved", "ops", "submits")

    def __init__(self) -> None:
        self.ops: list[tuple[Any, ...] | list[Any]] = []
        self.moved: float | None = None  # the clock's last move not yet in ops
        self.submits = 0

    def add(self, op: tuple[Any, ...] | list[Any]) -> None:
        if self.moved is not None:
            self.ops.append(("advance", self.moved))
            self.moved = None
        self.ops.append(op)
        self.submits += op[0] == "submit"

    def replay(self, shadow: Shadow) -> int:
        """Make the logged calls on ``shadow`` and empty the log; the jobs that ended."""
        ended = 0
        for op in self.ops:
            kind = op[0]
            if kind == "submit":
                shadow.submit(op[1], checked=True, timeline=op[2])
            elif kind == "cancel":
                shadow.cancel(op[1], op[2])
            else:
                shadow.advance(op[1])
                ended += shadow.take_ended(op[1])
        if self.moved is not None:
            shadow.advance(self.moved)
            ended += shadow.take_ended(self.moved)
        self.ops.clear()
        self.moved = None
        self.submits = 0
        return ended


class LiveMachine:
    """One machine's schedule kept by a live kernel (module docstring).

    Args:
        machine: the machine.
        policy: the policy's name (None: the machine's).
        tenants: quota weights by tenant (fairness, partitions).
        shadow_jobs: the most jobs the shadow ``exclusive`` run holds
            (:data:`SHADOW_JOBS`).
        shadow_log: the most entries of its log not replayed (:data:`SHADOW_LOG`).
        groups: whether the policy's run decides groups of jobs without its event loop
            (:mod:`~qmk.kernel.machine.groups`: the same figures; False: the event loop
            decides every job, the reference its tests compare with).
    """

    def __init__(
        self,
        machine: MachineSpec,
        policy: str | None = None,
        tenants: Mapping[str, float] | None = None,
        *,
        shadow_jobs: int = SHADOW_JOBS,
        shadow_log: int = SHADOW_LOG,
        groups: bool = True,
    ) -> None:
        self.machine = machine
        self.policy = policy or machine.policy
        self.tenants = dict(tenants or {})
        self._sched = Scheduler(machine, make_policy(self.policy), self.tenants, history=False)
        #: the jobs the policy's run decides as groups, not yet made on its scheduler
        #: (:mod:`~qmk.kernel.machine.groups`; ``groups=False``: never, the reference)
        self._groups = Groups(self._sched, machine.logical_error_rate)
        self._groups.enabled = self._groups.enabled and groups
        self.shadow = self._shadow() if self.policy != "exclusive" else None
        self.shadow_jobs = shadow_jobs
        self.shadow_log = shadow_log
        #: the shadow's calls not yet made (module docstring)
        self._log = _ShadowLog()
        #: the arrivals the speedup counts: since this cycle (the shadow's start)
        self.window_start = 0.0
        self._last_arrival = -1
        #: each footprint's (by its encoding) runtime alone and timeline, built once for
        #: all its jobs in both runs (a kernel's jobs each have a footprint object)
        self._alone: OrderedDict[bytes, tuple[float, Timeline]] = OrderedDict()
        #: jobs ended here, all and those arrived since :attr:`window_start`; and in the
        #: shadow ``exclusive`` run
        self.ended = 0
        self.ended_in_window = 0
        self.shadow_ended = 0
        self.slowdowns = metrics.Sketch()
        #: the spec :meth:`check` passed last, and its runtime alone and timeline
        self._checked: tuple[JobSpec, tuple[float, Timeline]] | None = None
        #: the footprint object :meth:`check` read last, and what is known of it (a
        #: program's jobs share one: no encoding of it a job)
        self._last: tuple[Footprint | None, tuple[float, Timeline] | None] = (None, None)
        #: jobs the shadows before this one ran in their queue
        self._ran_before = 0

    def _shadow(self) -> Shadow:
        return Shadow(self.machine, self.tenants)

    @property
    def ran_alone(self) -> int:
        """Jobs the shadow ran in its queue, without its scheduler's events (module
        docstring), since the machine started."""
        return self._ran_before + (self.shadow.queued_jobs if self.shadow is not None else 0)

    def sync_shadow(self) -> None:
        """Bring the shadow ``exclusive`` run up to the policy's: replay its log."""
        if self.shadow is not None and (self._log.ops or self._log.moved is not None):
            self.shadow_ended += self._log.replay(self.shadow)

    def cycle_of(self, kernel_epoch: int) -> int:
        """The machine cycle kernel epoch ``kernel_epoch`` starts at."""
        return kernel_epoch * self.machine.epoch_cycles

    @property
    def sched(self) -> Scheduler:
        """The policy's scheduler, holding what its event loop would hold now (the
        groups it has not made there are made first: :meth:`Groups.settle`)."""
        self._groups.settle()
        return self._sched

    @property
    def now(self) -> float:
        """The policy's clock (where its event loop would be)."""
        return self._groups.now if self._groups.groups else self._sched.now

    def admit(
        self, spec: JobSpec, *, checked: bool = False, arrival_cycle: int | None = None
    ) -> None:
        """A job admitted at ``spec.arrival_cycle`` (not before :attr:`now`), or at
        ``arrival_cycle`` when given. ``checked``: :meth:`check` passed ``spec`` (but
        for its arrival, which the check does not read) since the machine last changed.

        Raises:
            MachineError: ``QK501`` no placement of the machine can ever hold it (the
                kernel refuses the job at its submit).
        """
        last, self._checked = self._checked, None
        if checked and last is not None and last[0] is spec:
            alone, timeline = last[1]  # what the check found of its footprint
        else:
            if not checked:
                self._sched.check_placeable(spec)
            alone, timeline = self._known(spec)
        if arrival_cycle is None:
            spec = msgspec.structs.replace(spec, runtime_alone_cycles=alone)
        else:
            spec = msgspec.structs.replace(
                spec, runtime_alone_cycles=alone, arrival_cycle=arrival_cycle
            )
        groups = self._groups
        if not (groups.enabled and groups.submit(spec, timeline)):
            groups.settle()
            self._sched.submit(spec, checked=True, timeline=timeline)
        if self.shadow is not None:
            log = self._log
            later = spec.arrival_cycle > self._last_arrival  # none of the window before it
            # the shadow may hold shadow_jobs only if every logged arrival is still in it
            shadow = self.shadow
            if later and shadow.holding() + len(shadow.ends) + log.submits >= self.shadow_jobs:
                self.sync_shadow()
                # those it holds, and those that ended in it past the policy's clock:
                # the eager shadow still held them at that clock
                if self.shadow.holding() + len(self.shadow.ends) >= self.shadow_jobs:
                    self._ran_before += self.shadow.queued_jobs
                    self.shadow = self._shadow()
                    self.window_start = float(spec.arrival_cycle)
                    self.ended_in_window = self.shadow_ended = 0
            # the policy's check holds for exclusive's (all pools, every module)
            log.add(("submit", spec, timeline))
            if len(log.ops) >= self.shadow_log:
                self.sync_shadow()
        self._last_arrival = spec.arrival_cycle

    def knows(self, job_id: str) -> bool:
        """Whether ``job_id`` is on the machine (not ended, not cancelled)."""
        return job_id in self._groups.ids or self._sched.knows(job_id)

    def check(self, spec: JobSpec) -> None:
        """Refuse ``spec`` if no placement can ever hold it (nothing changes but what is
        known of its footprint: an :meth:`admit` of ``spec`` reuses it).

        Raises:
            MachineError: ``QK501`` naming it.
        """
        self._checked = None
        footprint, known = self._last
        if footprint is not spec.footprint or known is None:
            key = msgspec.json.encode(spec.footprint)
            known = self._alone.get(key)
            self._sched.check_placeable(spec, None if known is None else known[1])
            # its runtime alone only once it is known to fit (an exclusive run of it)
            known = self._known(spec, key)
            self._last = (spec.footprint, known)
        else:
            self._sched.check_placeable(spec, known[1])
        self._checked = (spec, known)

    def withdraw(self, job_id: str, at: float) -> bool:
        """Cancel ``job_id`` at machine cycle ``at``, in the policy's run and the shadow
        ``exclusive`` one alike: at ``at`` it leaves the queue, or frees its tiles and its
        claims on the factories, links and decoder. Whether it was here."""
        if self.shadow is not None:
            self._log.add(("cancel", job_id, at))
            if len(self._log.ops) >= self.shadow_log:
                self.sync_shadow()
        if job_id in self._groups.ids:
            self._groups.settle()
        return self._sched.cancel(job_id, at)

    def next_event(self) -> float:
        """The machine time of the policy's next event (inf: none)."""
        if self._groups.groups:
            return self._groups.next_event()
        return self._sched.next_event()

    def next_release(self) -> float:
        """The machine time of the policy's next event, or, while groups run
        (:mod:`~qmk.kernel.machine.groups`), of their first end: up to then
        :meth:`advance` gives no record (inf: none)."""
        if self._groups.groups:
            return self._groups.next_end()
        return self._sched.next_event()

    def advance(self, cycle: float) -> list[JobRecord]:
        """Bring the machine to ``cycle``; the jobs whose schedule ended since the last
        call, with their runtimes alone (for slowdowns). They are not kept. The shadow
        ``exclusive`` run follows when its figure is read (module docstring)."""
        sched = self._sched
        if self._groups.groups:
            out = self._groups.advance(cycle)
        else:
            sched.advance(cycle)
            out = sched.take_done() if sched.done else []
        if self.shadow is not None:
            moved = self._log.moved
            if moved is None or cycle > moved:
                self._log.moved = cycle
        if not out:
            return out
        for record in out:
            self.slowdowns.add(record.slowdown)
            self.ended_in_window += record.arrival_cycle >= self.window_start
        self.ended += len(out)
        return out

    def _known(self, spec: JobSpec, key: bytes | None = None) -> tuple[float, Timeline]:
        """``spec``'s runtime alone and its footprint's timeline (``key``: the
        footprint's encoding, where the caller has it)."""
        if key is None:
            key = msgspec.json.encode(spec.footprint)
        known = self._alone.get(key)
        if known is None:
            known = (runtime_alone(self.machine, spec), Timeline(spec.footprint))
            self._alone[key] = known
            if len(self._alone) > ALONE_KEPT:
                self._alone.popitem(last=False)
        else:
            self._alone.move_to_end(key)
        return known

    def floorplan(self) -> list[dict[str, Any]]:
        """Each module's jobs in place: ``{module, tiles, jobs: [{job, tenant, first_tile,
        tiles, state}], storage_free}``; a pool's tiles are numbered within its module."""
        modules = []
        for module in self.machine.modules:
            jobs = []
            for pool in self.sched.pools:
                if pool.module != module.index:
                    continue
                for at, job in sorted(pool.occupants.items()):
                    jobs.append(
                        {
                            "job": job.id,
                            "tenant": job.tenant,
                            "first_tile": pool.spec.offset + at,
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
                    "storage_free": self._sched.storage_free(module.index),
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
        sched = self._sched
        return {
            "tiles": float(sum(p.spec.length for p in sched.pools)),
            "factories": sched.t_capacity,
            "links": self.machine.link.bell_pairs_per_cycle,
        }

    def status(self, *, series: bool = True) -> dict[str, Any]:
        """The machine's state now (``q_machine_status``; module docstring); without
        ``series``, no ``utilization_over_time``."""
        sched = self.sched  # the groups made on it
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
        self.sync_shadow()
        shadow_done = self.shadow_ended if self.shadow is not None else self.ended_in_window
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
            "speedup_vs_exclusive": (self.ended_in_window / shadow_done) if shadow_done else None,
            "floorplan": self.floorplan(),
        }


def _holders(sched: Scheduler) -> list[str]:
    return [job.tenant for job in (*sched.running, *sched.stopped, *sched.queue)]
