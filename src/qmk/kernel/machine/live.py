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
arrivals, which a shadow scheduler runs beside the policy's (the ratio of the two
throughputs over the same window: the issue's "ratio of makespans, or of throughput").

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
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from typing import TYPE_CHECKING, Any

import msgspec

from qmk.kernel.machine import metrics
from qmk.kernel.machine.core import Scheduler, runtime_alone
from qmk.kernel.machine.jobs import JobRecord, JobSpec
from qmk.kernel.machine.policies import policy as make_policy

if TYPE_CHECKING:
    from qmk.kernel.machine.spec import MachineSpec

#: Spans of the utilization series :meth:`LiveMachine.status` reports.
SERIES_SPANS = 100


class LiveMachine:
    """One machine's schedule kept by a live kernel (module docstring).

    Args:
        machine: the machine.
        policy: the policy's name (None: the machine's).
        tenants: quota weights by tenant (fairness, partitions).
    """

    def __init__(
        self,
        machine: MachineSpec,
        policy: str | None = None,
        tenants: Mapping[str, float] | None = None,
    ) -> None:
        self.machine = machine
        self.policy = policy or machine.policy
        self.tenants = dict(tenants or {})
        self.sched = Scheduler(machine, make_policy(self.policy), self.tenants)
        self.shadow = (
            Scheduler(machine, make_policy("exclusive"), self.tenants)
            if self.policy != "exclusive"
            else None
        )
        self._alone: dict[bytes, float] = {}
        self._told = 0
        self.records: list[JobRecord] = []

    def cycle_of(self, kernel_epoch: int) -> int:
        """The machine cycle kernel epoch ``kernel_epoch`` starts at."""
        return kernel_epoch * self.machine.epoch_cycles

    @property
    def now(self) -> float:
        return self.sched.now

    def admit(self, spec: JobSpec) -> None:
        """A job admitted at ``spec.arrival_cycle`` (not before :attr:`now`).

        Raises:
            MachineError: ``QK501`` no placement of the machine can ever hold it (the
                kernel refuses the job at its submit).
        """
        self.sched.submit(spec)
        if self.shadow is not None:
            self.shadow.submit(spec)

    def check(self, spec: JobSpec) -> None:
        """Refuse ``spec`` if no placement can ever hold it (nothing changes).

        Raises:
            MachineError: ``QK501`` naming it.
        """
        self.sched.check_placeable(spec)

    def withdraw(self, job_id: str) -> None:
        """Take back a job that has not started, from the policy's run and the shadow
        ``exclusive`` one alike (one that started runs out its schedule)."""
        self.sched.withdraw(job_id)
        if self.shadow is not None:
            self.shadow.withdraw(job_id)

    def next_event(self) -> float:
        """The machine time of the policy's next event (inf: none)."""
        return self.sched.next_event()

    def advance(self, cycle: float) -> list[JobRecord]:
        """Bring the machine to ``cycle``; the jobs whose schedule ended since the last
        call, with their runtimes alone (for slowdowns)."""
        self.sched.advance(cycle)
        if self.shadow is not None:
            self.shadow.advance(cycle)
        fresh = self.sched.done[self._told :]
        self._told = len(self.sched.done)
        out = [self._with_alone(r) for r in fresh]
        self.records += out
        return out

    def _with_alone(self, record: JobRecord) -> JobRecord:
        footprint = self.sched.footprint_of(record.id)
        key = msgspec.json.encode(footprint)
        alone = self._alone.get(key)
        if alone is None:
            spec = JobSpec(id=record.id, tenant=record.tenant, footprint=footprint, arrival_cycle=0)
            alone = self._alone[key] = runtime_alone(self.machine, spec)
        return replace(record, runtime_alone_cycles=alone)

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

    def status(self, *, series: bool = True) -> dict[str, Any]:
        """The machine's state now (``q_machine_status``; module docstring); without
        ``series``, no ``utilization_over_time``."""
        sched = self.sched
        now = sched.now
        start = min(sched.first_arrival, now)
        capacities = {
            "tiles": float(sum(p.spec.length for p in sched.pools)),
            "factories": sched.t_capacity,
            "links": self.machine.link.bell_pairs_per_cycle,
        }
        traces: dict[str, metrics.Trace] = {
            "tiles": sched.tile_trace,
            "factories": sched.t_trace,
            "links": sched.link_trace,
        }
        epoch = self.machine.epoch_cycles
        span = max(0.0, now - start)
        width = epoch * max(1, -(-int(span) // (epoch * SERIES_SPANS)))
        names = sorted({*self.tenants, *(r.tenant for r in self.records)} | set(_holders(sched)))
        used = {t: sched.usage(t) for t in names}
        total = sum(used.values())
        shares = {t: (used[t] / total if total else 0.0) for t in names}
        slow = [r.slowdown for r in self.records]
        done = len(self.records)
        shadow_done = len(self.shadow.done) if self.shadow is not None else done
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
                name: metrics.utilization(traces[name], capacity=cap, start=start, end=now)
                for name, cap in capacities.items()
            },
            "utilization_over_time": None
            if not series
            else {
                name: [
                    [round(t), u]
                    for t, u in metrics.series(
                        traces[name], capacity=cap, start=start, end=now, width=width
                    )
                ]
                for name, cap in capacities.items()
            },
            "tenant_shares": shares,
            "jain_fairness": metrics.jain(shares, self.tenants),
            "throughput_jobs_per_s": metrics.throughput(done, span, self.machine.cycle_time_ns),
            "mean_slowdown": metrics.mean(slow),
            "p95_slowdown": metrics.percentile(slow, 0.95),
            "speedup_vs_exclusive": (done / shadow_done) if shadow_done else None,
            "floorplan": self.floorplan(),
        }


def _holders(sched: Scheduler) -> list[str]:
    return [job.tenant for job in (*sched.running, *sched.stopped, *sched.queue)]
