"""A workload through the machine scheduler under each policy, schedule-only (footprints,
no state simulation), and the metrics of each run (:mod:`qmk.kernel.machine.metrics`).

:func:`simulate` runs the same arrivals under every policy asked for, and under
``exclusive`` (the baseline of ``speedup_vs_exclusive``) whether asked for or not: not
asked for, only its makespan is read, a scan over the arrivals where every job's run
alone shifts (:func:`~qmk.kernel.machine.alone.exclusive_makespan`), else its run. Each
job's run alone on the empty machine (the denominator of its slowdown, and the least
idle error any schedule gives it) is computed once per distinct footprint. A policy
that refuses a job (``QK501``: past a tenant's region under ``partition``; ``QK505``:
a budget no schedule meets) gives a :class:`Refused` in its place, and the others run.

>>> from qmk.execution.footprint import Footprint, Step
>>> from qmk.kernel.machine.spec import MachineSpec
>>> fp = Footprint(target="x", logical_qubits=2, block="fast", data_tiles=4,
...                routing_tiles=5, code_distance=9, steps=(Step(kind="idle", cycles=10),))
>>> jobs = [JobSpec(id=f"j{i}", tenant="a", footprint=fp, arrival_cycle=0) for i in range(4)]
>>> out = simulate(MachineSpec.simple(tiles=20), jobs, ["exclusive", "fair-share"])
>>> out["exclusive"].makespan, out["fair-share"].makespan, out["fair-share"].speedup
(40.0, 20.0, 2.0)
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

import msgspec

from qmk.kernel.errors import MachineError
from qmk.kernel.machine import metrics
from qmk.kernel.machine.alone import exclusive_makespan, refuse_over_budget, shifting_run
from qmk.kernel.machine.core import Scheduler
from qmk.kernel.machine.jobs import JobRecord, JobSpec, _whole
from qmk.kernel.machine.policies import policy as make_policy

if TYPE_CHECKING:
    from qmk.kernel.machine.spec import MachineSpec

#: Spans of the utilization series a result keeps (whole epochs each).
SERIES_SPANS = 200


@dataclass(frozen=True, slots=True, kw_only=True)
class Refused:
    """A policy that refused a job of the workload: its error, in place of its run."""

    policy: str
    error: MachineError

    def to_json(self, *, jobs: bool = True) -> dict[str, Any]:
        return {
            "policy": self.policy,
            "refused": {
                "code": self.error.code,
                "name": self.error.name,
                "message": self.error.message,
                **self.error.details,
            },
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class PolicyRun:
    """One policy's schedule of a workload and its metrics (``to_json``: the keys of
    ``qmk machine simulate --json``)."""

    policy: str
    machine: MachineSpec
    records: tuple[JobRecord, ...]
    order: tuple[str, ...]
    makespan: float
    start: float
    utilization: dict[str, float]
    series: dict[str, list[tuple[float, float]]]
    tenant_shares: dict[str, float]
    jain: float
    speedup: float | None
    #: what the scheduler did for it, by kind (the scheduler's ``work``: :class:`~.core.Scheduler`)
    work: dict[str, int] = field(default_factory=dict)

    @property
    def slowdowns(self) -> list[float]:
        return [r.slowdown for r in self.records]

    @property
    def idle_errors(self) -> list[float]:
        return [r.idle_logical_error for r in self.records]

    @property
    def alone_makespan_ratio(self) -> float:
        """The sum of the jobs' runtimes alone over the makespan: how many programs'
        worth of work the machine did at once, on average."""
        alone = sum(r.runtime_alone_cycles or 0.0 for r in self.records)
        return alone / self.makespan if self.makespan else 0.0

    def to_json(self, *, jobs: bool = True) -> dict[str, Any]:
        by_id = {r.id: r for r in self.records}
        alone = [r.runtime_alone_cycles or 0.0 for r in self.records]
        errors = self.idle_errors
        out: dict[str, Any] = {
            "policy": self.policy,
            "makespan_cycles": _whole(self.makespan),
            "utilization": self.utilization,
            "mean_slowdown": metrics.mean(self.slowdowns),
            "p95_slowdown": metrics.percentile(self.slowdowns, 0.95),
            "jain_fairness": self.jain,
            "throughput_jobs_per_s": metrics.throughput(
                len(self.records), self.makespan, self.machine.cycle_time_ns
            ),
            "speedup_vs_exclusive": self.speedup,
            "stp": metrics.stp(alone, [r.turnaround for r in self.records]),
            "alone_over_makespan": self.alone_makespan_ratio,
            "mean_idle_logical_error": metrics.mean(errors),
            "max_idle_logical_error": max(errors, default=0.0),
            "over_budget": sum(r.within_budget is False for r in self.records),
            "tenant_shares": self.tenant_shares,
            "wait_cycles": {
                cause: _whole(sum(r.wait_cycles[cause] for r in self.records))
                for cause in self.records[0].wait_cycles
            }
            if self.records
            else {},
            "utilization_over_time": {
                name: [[_whole(t), u] for t, u in points] for name, points in self.series.items()
            },
        }
        if jobs:
            out["jobs"] = [by_id[i].to_json() for i in self.order]
        return out


def run_policy(
    machine: MachineSpec,
    jobs: Sequence[JobSpec],
    name: str,
    *,
    tenants: Mapping[str, float] | None = None,
    alone: Mapping[int, float] | None = None,
) -> PolicyRun:
    """``jobs`` under the policy ``name`` (``alone``: runtimes alone by footprint id)."""
    sched = Scheduler(machine, make_policy(name), tenants)
    for spec in jobs:
        sched.submit(spec)
    done = sched.run()
    by_id = {j.id: j for j in jobs}
    times = alone or {}
    records = tuple(_with_alone(r, times.get(id(by_id[r.id].footprint))) for r in done)
    start = min((j.arrival_cycle for j in jobs), default=0)
    end = max((r.end_cycle for r in records), default=start)
    makespan = float(end - start)
    epoch = machine.epoch_cycles
    width = epoch * max(1, -(-int(makespan) // (epoch * SERIES_SPANS)))
    capacities = {
        "tiles": float(sum(r.spec.length for r in sched.ranges)),
        "factories": sched.t_capacity,
        "links": machine.link.bell_pairs_per_cycle,
    }
    traces: dict[str, metrics.Trace] = {
        name: gauge.trace or [] for name, gauge in sched.gauges.items()
    }
    utilization = {
        name: metrics.utilization(traces[name], capacity=cap, start=start, end=end)
        for name, cap in capacities.items()
    }
    series = {
        name: metrics.series(traces[name], capacity=cap, start=start, end=end, width=width)
        for name, cap in capacities.items()
    }
    names = sorted({j.tenant for j in jobs})
    used = {t: sched.usage(t) for t in names}
    total = sum(used.values())
    shares = {t: (used[t] / total if total else 0.0) for t in names}
    return PolicyRun(
        policy=name,
        machine=machine,
        records=records,
        order=tuple(j.id for j in jobs),
        makespan=makespan,
        start=float(start),
        utilization=utilization,
        series=series,
        tenant_shares=shares,
        jain=metrics.jain(shares, tenants or {}),
        speedup=None,
        work=dict(sched.work),
    )


def _with_alone(record: JobRecord, alone: float | None) -> JobRecord:
    return record if alone is None else msgspec.structs.replace(record, runtime_alone_cycles=alone)


def alone_times(machine: MachineSpec, jobs: Sequence[JobSpec]) -> dict[int, float]:
    """Each distinct footprint's runtime alone on the empty machine, by its id.

    Raises:
        MachineError: ``QK505 over-budget``: the first job whose budget its run alone
            passes.
    """
    return alone_runs(machine, jobs)[0]


def alone_runs(machine: MachineSpec, jobs: Sequence[JobSpec]) -> tuple[dict[int, float], bool]:
    """:func:`alone_times`, and whether every one of those runs shifts
    (:func:`~qmk.kernel.machine.alone.shifting_run`)."""
    out: dict[int, float] = {}
    records: dict[int, JobRecord] = {}
    shifts = True
    checked: set[tuple[int, float | None]] = set()  # (footprint, budget): one verdict
    for job in jobs:
        key = id(job.footprint)
        if key not in records:
            records[key], moved = shifting_run(machine, job)
            shifts = shifts and moved
            out[key] = records[key].end_cycle - records[key].start_cycle
        if (key, job.error_budget) not in checked:
            checked.add((key, job.error_budget))
            refuse_over_budget(job, records[key], machine)
    return out, shifts


def exclusive_baseline(
    machine: MachineSpec,
    jobs: Sequence[JobSpec],
    *,
    tenants: Mapping[str, float] | None = None,
    alone: Mapping[int, float] | None = None,
    shifts: bool = False,
) -> float:
    """``exclusive``'s makespan of ``jobs``: the scan over the arrivals where ``shifts``
    (every run alone in ``alone`` shifts), else its run."""
    if shifts and alone is not None:
        return exclusive_makespan(machine, jobs, alone)
    return run_policy(machine, jobs, "exclusive", tenants=tenants, alone=alone).makespan


def _check(
    machine: MachineSpec, jobs: Sequence[JobSpec], name: str, tenants: Mapping[str, float] | None
) -> None:
    """Refuse the first job no placement under ``name`` can ever hold (``QK501``)."""
    sched = Scheduler(machine, make_policy(name), tenants)
    seen: set[tuple[int, str]] = set()
    for spec in jobs:  # each footprint once per tenant (its region under partition)
        if (id(spec.footprint), spec.tenant) not in seen:
            seen.add((id(spec.footprint), spec.tenant))
            sched.check_placeable(spec)


def simulate(
    machine: MachineSpec,
    jobs: Sequence[JobSpec],
    policies: Sequence[str],
    *,
    tenants: Mapping[str, float] | None = None,
) -> dict[str, PolicyRun | Refused]:
    """Each policy's run of ``jobs``, with its speedup over ``exclusive``'s makespan; a
    policy that refuses a job gives a :class:`Refused` (module docstring).

    Raises:
        MachineError: ``exclusive`` itself refuses a job (no placement of the machine
            holds it, or its budget cannot be met): no policy could run the workload.
    """
    asked = list(dict.fromkeys(policies))
    try:
        _check(machine, jobs, "exclusive", tenants)
    except MachineError:  # no policy holds it: said under the first policy asked
        for name in asked:
            _check(machine, jobs, name, tenants)
        raise
    alone, shifts = alone_runs(machine, jobs)
    runs: dict[str, PolicyRun | Refused] = {}
    for name in asked:
        try:
            _check(machine, jobs, name, tenants)
        except MachineError as refused:
            runs[name] = Refused(policy=name, error=refused)
            continue
        runs[name] = run_policy(machine, jobs, name, tenants=tenants, alone=alone)
    base = runs.get("exclusive")
    if isinstance(base, PolicyRun):
        makespan = base.makespan
    else:
        makespan = exclusive_baseline(machine, jobs, tenants=tenants, alone=alone, shifts=shifts)
    out: dict[str, PolicyRun | Refused] = {}
    for name in asked:
        run = runs[name]
        if isinstance(run, PolicyRun):
            run = replace(run, speedup=makespan / run.makespan if run.makespan else 1.0)
        out[name] = run
    return out
