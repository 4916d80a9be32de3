"""The fastest exclusive configuration of a machine: the baseline every speedup is
measured against.

A speedup over ``exclusive`` in the same configuration credits sharing with what a slow
configuration costs ``exclusive``: in the compact block a job runs about three times
longer, so packing its neighbours beside it looks fast. The baseline is instead the same
arrivals under ``exclusive`` in each configuration of the same machine (its physical
qubits, factory share, links and decoder as they are), of:

- the block: fast, intermediate or compact (Litinski's, as ``qmk plan --layout`` draws);
- the code distance: the machine's own and the next :data:`DISTANCE_STEPS` odd ones
  above it (a larger distance lowers the error per patch and cycle tenfold a step, and
  costs tiles and a longer cycle);
- the factory protocol: each of :data:`~qmk.defaults.FACTORY_PROTOCOLS`,

that keeps every job within its error budget, and of those the one with the shortest
makespan in seconds (configurations differ in cycle time, so cycles do not compare). A
job's error here is its whole logical error over its run (:func:`run_error`), not only
what waiting added: exclusive never idles a job in a queue, but a slow block or a small
distance spends its budget on the job's own memory.

A configuration the machine cannot take (a protocol with no factory at that distance,
``QK503``) or that cannot hold a job (``QK501``) is tried and reported as refused.

The kernel chooses each job's placement when it places it, so one configuration for the
whole run credits sharing with that choice. :func:`each_job_fastest` is the baseline
that chooses per job too: each job runs alone in its own fastest configuration that
keeps its budget, one job at a time in arrival order.

>>> Configuration("compact", 15, "litinski-15to1").label
'compact/d=15/litinski-15to1'
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import msgspec

from qmk.defaults import FACTORY_PROTOCOLS
from qmk.errors import QMKError
from qmk.kernel.machine.placement import all_blocks, least_own, placements
from qmk.kernel.machine.spec import DISTANCE_STEPS

if TYPE_CHECKING:
    from qmk.kernel.config import KernelConfig
    from qmk.kernel.machine.jobs import JobRecord, JobSpec
    from qmk.kernel.machine.spec import MachineSpec
    from qmk.kernel.machine.workload import Tune, Workload


def run_error(record: JobRecord) -> float:
    """A finished job's whole logical error: its own over its run at its distance and in
    its block, and what its waits added, either failing (its record's
    :attr:`~qmk.kernel.machine.jobs.JobRecord.total_logical_error`, the error budgets'
    reading). Its queue wait is not in it (no patch lives there).

    >>> from qmk.kernel.machine.jobs import JobRecord
    >>> r = JobRecord(id="j", tenant="a", program="p", priority=0, arrival_cycle=0,
    ...     start_cycle=5, end_cycle=105, tiles=4, module=0, logical_qubits=10,
    ...     wait_cycles={}, idle_logical_error=0.5, own_logical_error=0.5)
    >>> run_error(r)
    0.75
    """
    return record.total_logical_error


@dataclass(frozen=True, slots=True)
class Configuration:
    """One configuration of a machine: its jobs' block, its code distance, its factories'
    protocol."""

    block: str
    distance: int
    protocol: str

    @property
    def label(self) -> str:
        return f"{self.block}/d={self.distance}/{self.protocol}"

    def tune(self, config: KernelConfig) -> KernelConfig:
        """``config`` in this configuration (every other key as it is)."""
        from qmk.qvm.profiles import parse_profile

        machine = config.machine
        family = parse_profile(machine.profile).family
        factory = msgspec.structs.replace(machine.factory, protocol=self.protocol)
        changed = msgspec.structs.replace(
            machine,
            block=self.block,
            profile=f"logical:{family}(d={self.distance})",
            factory=factory,
        )
        return msgspec.structs.replace(config, machine=changed)


def configurations(machine: MachineSpec) -> list[Configuration]:
    """The configurations of ``machine`` tried (module docstring), fastest block first."""
    distances = [machine.distance + 2 * k for k in range(DISTANCE_STEPS + 1)]
    return [
        Configuration(block, distance, protocol)
        for distance in distances
        for block in all_blocks()
        for protocol in FACTORY_PROTOCOLS
    ]


@dataclass(frozen=True, slots=True, kw_only=True)
class Tried:
    """``exclusive`` in one configuration: its makespan and its worst job's error over
    budget, or why the configuration was refused."""

    configuration: Configuration
    makespan_cycles: float | None = None
    makespan_s: float | None = None
    cycle_time_ns: int | None = None
    epoch_cycles: int = 1
    worst_over_budget: float | None = None
    refused: str | None = None
    skipped: str | None = None

    @property
    def meets(self) -> bool:
        """Whether it ran and every job stayed within its budget (a job without one
        always does)."""
        return (
            self.refused is None
            and self.skipped is None
            and self.makespan_s is not None
            and (self.worst_over_budget or 0.0) <= 1.0
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "configuration": self.configuration.label,
            "makespan_cycles": self.makespan_cycles,
            "makespan_s": self.makespan_s,
            "cycle_time_ns": self.cycle_time_ns,
            "max_error_over_budget": self.worst_over_budget,
            "meets_budgets": self.meets,
            "refused": self.refused,
            "skipped": self.skipped,
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class Baseline:
    """The fastest exclusive configuration (None: no configuration keeps every budget),
    and every configuration tried."""

    best: Tried | None
    tried: tuple[Tried, ...]

    def speedup(self, makespan_s: float) -> float | None:
        """``makespan(fastest exclusive) / makespan`` in seconds (None: no baseline)."""
        if self.best is None or self.best.makespan_s is None or makespan_s <= 0:
            return None
        return self.best.makespan_s / makespan_s

    def to_json(self) -> dict[str, Any]:
        return {
            "configuration": None if self.best is None else self.best.configuration.label,
            "makespan_s": None if self.best is None else self.best.makespan_s,
            "tried": [t.to_json() for t in self.tried],
        }


def worst_over_budget(records: Sequence[JobRecord], *, whole: bool = True) -> float:
    """The most any job's error is of its budget (0 when no job has one): its whole
    error (:func:`run_error`), or with ``whole`` False only what waiting added (its
    ``idle_logical_error``, the error budgets' reading before issue 77)."""
    return max(
        (
            (run_error(r) if whole else r.idle_logical_error) / r.error_budget
            for r in records
            if r.error_budget is not None
        ),
        default=0.0,
    )


def in_configuration(
    load: Callable[[Tune], Workload], configuration: Configuration, reference_ns: int | None
) -> tuple[MachineSpec, list[JobSpec], dict[str, float]]:
    """The workload ``load`` reads in ``configuration``: its machine, its jobs and its
    tenants. Arrivals keep their time in seconds: a cycle of ``reference_ns`` (the
    workload's own machine's) is ``reference_ns / cycle_time_ns`` of this one's,
    rounded to whole cycles (None: as given)."""
    work = load(configuration.tune)
    machine = work.machine
    jobs = list(work.jobs)
    if reference_ns is not None and reference_ns != machine.cycle_time_ns:
        scale = reference_ns / machine.cycle_time_ns
        jobs = [
            msgspec.structs.replace(j, arrival_cycle=math.floor(j.arrival_cycle * scale + 0.5))
            for j in jobs
        ]
    return machine, jobs, work.tenants


def _skip(
    machine: MachineSpec,
    jobs: Sequence[JobSpec],
    beat: float | None,
    *,
    whole: bool,
    one_at_a_time: bool,
    places: bool = False,
) -> str | None:
    """Why running a configuration is needless, from its jobs' private cycles alone (a
    run is never shorter): a job whose whole error at its private cycles already passes
    its budget, or a makespan that cannot be shorter than ``beat`` seconds. The makespan
    is at least the last arrival plus that job's private cycles; ``one_at_a_time``
    (``exclusive``), at least the jobs' private cycles end to end in arrival order.
    ``places``: the policy chooses each job's block and distance by its budget
    (:func:`chooses_placements`), so a job's least error is its least placement's
    (:func:`~qmk.kernel.machine.placement.least_own`), not its own at the machine's."""
    p = machine.logical_error_rate
    first = min((j.arrival_cycle for j in jobs), default=0)
    bound = 0.0
    end = float(first)
    for j in sorted(jobs, key=lambda j: j.arrival_cycle):
        cycles = j.footprint.duration_cycles
        least = (
            least_own(j.footprint, machine)
            if places
            else -math.expm1(j.footprint.logical_qubits * cycles * math.log1p(-p))
        )
        if whole and j.error_budget is not None and least > j.error_budget:
            return f"job {j.id}'s error over its private cycles passes its budget"
        bound = max(bound, j.arrival_cycle - first + cycles)
        end = max(end, j.arrival_cycle) + cycles
    if one_at_a_time:
        bound = max(bound, end - first)
    if beat is not None and bound * machine.cycle_time_ns * 1e-9 >= beat:
        return "its makespan cannot be shorter than the fastest found"
    return None


def chooses_placements(policy: str) -> bool:
    """Whether ``policy`` chooses each job's block and code distance by its budget when
    it places it (the budget policies): then a configuration's distance is only the
    least a job may run at.

    >>> chooses_placements("fidelity"), chooses_placements("exclusive")
    (True, False)
    """
    from qmk.kernel.machine.policies import policy as make_policy

    return make_policy(policy).budgets


def try_policy(
    load: Callable[[Tune], Workload],
    configuration: Configuration,
    policy: str = "exclusive",
    *,
    epoch_cycles: int | None = None,
    reference_ns: int | None = None,
    beat: float | None = None,
    whole: bool = True,
) -> Tried:
    """``policy`` on the workload ``load`` reads in ``configuration``
    (:func:`in_configuration`); skipped where it cannot keep every budget or finish
    sooner than ``beat`` seconds."""
    from qmk.kernel.machine.simulate import run_policy

    try:
        machine, jobs, tenants = in_configuration(load, configuration, reference_ns)
        if epoch_cycles is not None:
            machine = machine.with_(epoch_cycles=epoch_cycles)
        skip = _skip(
            machine,
            jobs,
            beat,
            whole=whole,
            one_at_a_time=policy == "exclusive",
            places=chooses_placements(policy),
        )
        if skip is not None:
            return Tried(configuration=configuration, skipped=skip)
        scanned = _exclusive_scan(machine, jobs, tenants, whole) if policy == "exclusive" else None
        if scanned is None:
            run = run_policy(machine, jobs, policy, tenants=tenants)
            scanned = run.makespan, worst_over_budget(run.records, whole=whole)
    except QMKError as exc:
        return Tried(configuration=configuration, refused=f"{exc.code} {exc.name}")
    makespan, worst = scanned
    return Tried(
        configuration=configuration,
        makespan_cycles=makespan,
        makespan_s=makespan * machine.cycle_time_ns * 1e-9,
        cycle_time_ns=machine.cycle_time_ns,
        epoch_cycles=machine.epoch_cycles,
        worst_over_budget=worst,
    )


def _exclusive_scan(
    machine: MachineSpec, jobs: Sequence[JobSpec], tenants: dict[str, float], whole: bool
) -> tuple[float, float] | None:
    """``exclusive``'s makespan of ``jobs`` and its worst job's error over budget
    (:func:`worst_over_budget`) without its event loop, where each distinct
    footprint's run alone shifts (:func:`~qmk.kernel.machine.alone.shifting_run`):
    then each job's record under ``exclusive`` is its run alone moved to its start, so
    its errors are that run's, and the makespan is the scan over the arrivals
    (:func:`~qmk.kernel.machine.alone.exclusive_makespan`), to the bit. None: a run
    alone does not shift (the event loop decides).

    Raises:
        MachineError: ``QK501 unplaceable``: the first job no placement holds, as the
            event loop's submit refuses it.
    """
    from qmk.kernel.machine.alone import exclusive_makespan, shifting_run
    from qmk.kernel.machine.core import Scheduler
    from qmk.kernel.machine.policies.exclusive import Exclusive

    check = Scheduler(machine, Exclusive(), tenants, history=False)
    records: dict[int, JobRecord] = {}
    for job in jobs:
        key = id(job.footprint)
        if key not in records:
            check.check_placeable(job)
            record, shifts = shifting_run(machine, job)
            if not shifts:
                return None
            records[key] = record
    runtimes = {key: r.end_cycle - r.start_cycle for key, r in records.items()}
    worst = max(
        (
            (run_error(r) if whole else r.idle_logical_error) / job.error_budget
            for job in jobs
            if job.error_budget is not None
            for r in (records[id(job.footprint)],)
        ),
        default=0.0,
    )
    return exclusive_makespan(machine, jobs, runtimes), worst


def fastest(
    load: Callable[[Tune], Workload],
    machine: MachineSpec,
    policy: str = "exclusive",
    *,
    epoch_cycles: int | None = None,
    tried: Sequence[Configuration] | None = None,
    whole: bool = True,
) -> Baseline:
    """The fastest configuration of ``machine`` (the workload's own) in which ``policy``
    keeps every job of the workload ``load`` reads within its budget.

    ``load`` reads the same arrivals in another configuration, given a change of its
    kernel config (``lambda tune: workload.read(path, tune=tune)``); arrivals keep their
    seconds. ``epoch_cycles``: the epoch where given; ``tried``: the configurations
    (default :func:`configurations`), ties to the first. A configuration whose run
    could not keep every budget or beat the fastest so far is skipped, and says why.
    ``whole`` False judges budgets by the idle error alone (:func:`worst_over_budget`).
    """
    runs: list[Tried] = []
    best: Tried | None = None
    for c in configurations(machine) if tried is None else tried:
        done = try_policy(
            load,
            c,
            policy,
            epoch_cycles=epoch_cycles,
            reference_ns=machine.cycle_time_ns,
            beat=None if best is None else best.makespan_s,
            whole=whole,
        )
        runs.append(done)
        if done.meets and (best is None or _sooner(done, best)):
            best = done
    return Baseline(best=best, tried=tuple(runs))


def _sooner(run: Tried, than: Tried) -> bool:
    """Whether ``run`` ends sooner than ``than`` by more than one of its epochs (less is
    the rounding of arrivals and starts to another cycle time)."""
    if run.makespan_s is None or than.makespan_s is None or run.cycle_time_ns is None:
        return False
    return run.makespan_s < than.makespan_s - run.epoch_cycles * run.cycle_time_ns * 1e-9


def fastest_exclusive(
    load: Callable[[Tune], Workload],
    machine: MachineSpec,
    *,
    epoch_cycles: int | None = None,
    whole: bool = True,
) -> Baseline:
    """The baseline: :func:`fastest` under ``exclusive`` over every configuration."""
    return fastest(load, machine, "exclusive", epoch_cycles=epoch_cycles, whole=whole)


@dataclass(frozen=True, slots=True, kw_only=True)
class JobChoice:
    """One job alone in its own fastest configuration that keeps its budget: its
    seconds from start to end there and its whole error (:func:`run_error`)."""

    job: str
    configuration: Configuration
    seconds: float
    error: float


@dataclass(frozen=True, slots=True, kw_only=True)
class EachJob:
    """``exclusive`` with each job in its own fastest configuration
    (:func:`each_job_fastest`): its makespan in seconds (None: a job no configuration
    keeps within its budget), and each job's choice."""

    makespan_s: float | None
    choices: tuple[JobChoice, ...]
    unkept: tuple[str, ...] = ()

    def speedup(self, makespan_s: float) -> float | None:
        """``makespan(this baseline) / makespan`` in seconds (None: no baseline)."""
        if self.makespan_s is None or makespan_s <= 0:
            return None
        return self.makespan_s / makespan_s

    def to_json(self) -> dict[str, Any]:
        return {
            "makespan_s": self.makespan_s,
            "configurations": {c.job: c.configuration.label for c in self.choices},
            "unkept": list(self.unkept),
        }


def _loaded(
    load: Callable[[Tune], Workload],
    machine: MachineSpec,
    tried: Sequence[Configuration] | None,
) -> Iterator[tuple[Configuration, Workload]]:
    """Each configuration ``tried`` (default :func:`configurations`) with the workload
    ``load`` reads in it; one the machine refuses (a coded error) is passed over."""
    for c in configurations(machine) if tried is None else tried:
        try:
            yield c, load(c.tune)
        except QMKError:
            continue


def each_job_fastest(
    load: Callable[[Tune], Workload],
    machine: MachineSpec,
    *,
    tried: Sequence[Configuration] | None = None,
    whole: bool = True,
) -> EachJob:
    """The per-job fastest exclusive baseline of the workload ``load`` reads on
    ``machine`` (its own).

    Each job runs alone (:func:`~qmk.kernel.machine.alone.run_alone`) in every
    configuration ``tried`` (default :func:`configurations`); its choice is the one of
    fewest seconds whose whole error (``whole`` False: idle error) keeps its budget. A
    job without a budget keeps it everywhere. Then one job at a time in arrival order
    (arrivals in seconds of ``machine``'s cycle), each starting at its arrival or the
    previous job's end, whichever is later, and taking its chosen seconds: no epoch
    rounding and no reconfiguring time between jobs, so this baseline is never slower
    than the machine could be. A job's run alone is made once per configuration and
    footprint (jobs of one program share it), and a configuration the machine refuses
    (``QK503``) or a job no configuration's placement holds (``QK501``) is passed over.
    """
    from qmk.kernel.machine.alone import run_alone

    best: dict[str, JobChoice] = {}
    cache: dict[tuple[Configuration, bytes], tuple[float, float]] = {}
    arrivals = {
        j.id: j.arrival_cycle * machine.cycle_time_ns * 1e-9
        for j in load(lambda config: config).jobs
    }
    for c, work in _loaded(load, machine, tried):
        m = work.machine
        for job in work.jobs:
            key = (c, msgspec.json.encode(job.footprint))
            if key not in cache:
                try:
                    record = run_alone(m, job)
                except QMKError:
                    continue
                error = run_error(record) if whole else record.idle_logical_error
                seconds = (record.end_cycle - record.start_cycle) * m.cycle_time_ns * 1e-9
                cache[key] = (seconds, error)
            seconds, error = cache[key]
            if job.error_budget is not None and error > job.error_budget:
                continue
            if job.id not in best or seconds < best[job.id].seconds:
                best[job.id] = JobChoice(job=job.id, configuration=c, seconds=seconds, error=error)
    unkept = tuple(sorted(set(arrivals) - set(best)))
    if unkept or not arrivals:
        return EachJob(makespan_s=None, choices=tuple(best.values()), unkept=unkept)
    free = -math.inf
    for name in sorted(arrivals, key=lambda j: arrivals[j]):
        free = max(free, arrivals[name]) + best[name].seconds
    return EachJob(
        makespan_s=free - min(arrivals.values()),
        choices=tuple(best[j] for j in sorted(best)),
    )


@dataclass(frozen=True, slots=True, kw_only=True)
class PackingBound:
    """The least makespan any policy can reach on a workload in one configuration of a
    machine, as a policy that places jobs by their budgets runs it
    (:func:`packing_bound`).

    Attributes:
        configuration: the configuration where it is least.
        makespan_s: it, in seconds.
        binds: which term gives it there: ``longest`` (the longest job's fewest private
            cycles), ``tiles`` (the jobs' fewest tile-cycles over the job tiles) or
            ``factories`` (their T states over the factories' rate).
    """

    configuration: Configuration
    makespan_s: float
    binds: str

    def speedup(self, baseline_s: float | None) -> float | None:
        """The most speedup over a baseline of ``baseline_s`` seconds (None: none)."""
        return None if baseline_s is None else baseline_s / self.makespan_s


def packing_bound(
    load: Callable[[Tune], Workload],
    machine: MachineSpec,
    *,
    tried: Sequence[Configuration] | None = None,
) -> PackingBound | None:
    """A lower bound on the makespan of the workload ``load`` reads under any policy
    that keeps every job's whole error within its budget, each job at a placement of
    one configuration; the least over the configurations ``tried`` (default
    :func:`configurations`).

    In a configuration it is the largest of three terms, each a relaxation: the longest
    job's fewest private cycles (no job runs faster than alone); the jobs' fewest
    tile-cycles packed without a gap into the job tiles of every module (storage tiles
    hold a stopped job's patches, never a running one's, so they are not counted); and
    their T states at all the factories' rate. None: no configuration holds every job
    within its budget in a module.
    """
    best: PackingBound | None = None
    for c, work in _loaded(load, machine, tried):
        m = work.machine
        largest = max((module.tiles for module in m.modules), default=0)
        longest = area = states = 0.0
        for job in work.jobs:
            fits = [
                p
                for p in placements(job.footprint, m)
                if p.footprint.tiles <= largest
                and (job.error_budget is None or p.own <= job.error_budget)
            ]
            if not fits:
                break
            longest = max(longest, min(p.timeline.private_cycles for p in fits))
            area += min(p.cost for p in fits)
            states += min(p.timeline.t_total for p in fits)
        else:
            rate = sum(module.factory.rate for module in m.modules)
            terms = {
                "longest": longest,
                "tiles": area / m.total_tiles if m.total_tiles else math.inf,
                "factories": states / rate if rate else (math.inf if states else 0.0),
            }
            binds = max(terms, key=lambda k: terms[k])
            seconds = terms[binds] * m.cycle_time_ns * 1e-9
            if best is None or seconds < best.makespan_s:
                best = PackingBound(configuration=c, makespan_s=seconds, binds=binds)
    return best
