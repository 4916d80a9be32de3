"""A job alone on the empty machine, and ``exclusive``'s makespan as a scan over the
arrivals: equal to the event loop's, to the bit, wherever every run alone shifts."""

from __future__ import annotations

import random

import pytest

from qmk.execution.footprint import Footprint, Step
from qmk.kernel.machine.alone import exclusive_makespan, shifting_run
from qmk.kernel.machine.jobs import JobSpec
from qmk.kernel.machine.simulate import alone_times, run_policy, simulate
from qmk.kernel.machine.spec import MachineSpec
from support.machine import footprint


def rotations(n: int, cycles: int = 1) -> Step:
    return Step(kind="rotation", cycles=cycles, t_states=1, repeat=n, routed=True)


def job(name: str, fp: Footprint, at: int = 0, tenant: str = "a") -> JobSpec:
    return JobSpec(id=name, tenant=tenant, footprint=fp, arrival_cycle=at)


def loop_makespan(machine: MachineSpec, jobs: list[JobSpec]) -> float:
    return run_policy(machine, jobs, "exclusive").makespan


def test_a_job_alone_on_whole_cycles_with_its_store_full_again_shifts():
    # rate 1 state a cycle, one state a cycle wanted: the store (2) never drains
    machine = MachineSpec.simple(tiles=10, store=2)
    record, shifts = shifting_run(machine, job("j", footprint(4, rotations(6))))
    assert (record.end_cycle, shifts) == (6.0, True)


def test_a_job_that_drains_the_store_does_not_shift():
    # rate 1/2 a cycle, one wanted a cycle from a store of 2: it runs dry at cycle 4
    # and is empty at the job's end (the next job would start with less)
    machine = MachineSpec.simple(tiles=10, factory_rate=(1, 2), store=2, lanes=4)
    record, shifts = shifting_run(machine, job("j", footprint(4, rotations(6))))
    assert (record.end_cycle, shifts) == (8.0, False)


def test_a_job_whose_events_fall_between_cycles_does_not_shift():
    # rate 2/3 a cycle, one state wanted a cycle: its one state ends at cycle 1.5
    machine = MachineSpec.simple(tiles=10, factory_rate=(2, 3))
    record, shifts = shifting_run(machine, job("j", footprint(4, rotations(1))))
    assert (record.end_cycle, shifts) == (1.5, False)


def test_exclusive_starts_each_job_at_the_first_boundary_after_the_last_end():
    # epoch 100: j0 runs 0-150, j1 (arrived at 1) starts at 200 and ends at 350, j2
    # (arrived at 400, the machine idle) starts at 400 and ends at 550
    machine = MachineSpec.simple(tiles=10, epoch_cycles=100)
    fp = footprint(4, Step(kind="idle", cycles=150))
    jobs = [job("j0", fp, 0), job("j1", fp, 1), job("j2", fp, 400)]
    assert exclusive_makespan(machine, jobs, alone_times(machine, jobs)) == 550.0
    assert loop_makespan(machine, jobs) == 550.0


def test_jobs_that_take_no_time_start_one_epoch_apart_under_exclusive():
    # a job that ends the moment it is placed frees the machine at that boundary, which
    # is decided: the next starts at the next one (10, 20); the last ends at 20 + 5
    machine = MachineSpec.simple(tiles=10, epoch_cycles=10)
    empty = footprint(4, Step(kind="measure", cycles=0, measurements=1))
    short = footprint(4, Step(kind="idle", cycles=5))
    jobs = [job("j0", empty), job("j1", empty), job("j2", short, 3)]
    assert exclusive_makespan(machine, jobs, alone_times(machine, jobs)) == 25.0
    assert loop_makespan(machine, jobs) == 25.0


def _footprint(rng: random.Random) -> Footprint:
    steps: list[Step] = []
    for _ in range(rng.randint(1, 5)):
        kind = rng.random()
        if kind < 0.35:
            steps.append(Step(kind="idle", cycles=rng.randint(0, 30)))
        elif kind < 0.75:
            steps.append(rotations(rng.randint(1, 30), cycles=rng.choice([1, 1, 3])))
        elif kind < 0.85:
            steps.append(Step(kind="fence", cycles=0))
        else:
            steps.append(Step(kind="ppm", cycles=1, measurements=2, repeat=rng.randint(1, 9)))
    return footprint(rng.randint(2, 10), *steps)


def _case(seed: int) -> tuple[MachineSpec, list[JobSpec]]:
    """A seeded machine (factory rates, stores, lanes, modules, epochs) and arrivals."""
    rng = random.Random(seed)
    machine = MachineSpec.simple(
        tiles=rng.randint(12, 30),
        factory_rate=(rng.randint(1, 3), rng.randint(1, 3)),
        store=rng.randint(0, 6),
        modules=rng.randint(1, 2),
        lanes=rng.randint(1, 3),
        epoch_cycles=rng.choice([1, 3, 10, 100]),
    )
    shapes = [_footprint(rng) for _ in range(4)]
    jobs = [job(f"j{i}", rng.choice(shapes), rng.randint(0, 300), "ab"[i % 2]) for i in range(25)]
    return machine, jobs


def _shifts(machine: MachineSpec, jobs: list[JobSpec]) -> bool:
    return all(shifting_run(machine, spec)[1] for spec in jobs)


@pytest.mark.parametrize("seed", range(30))
def test_the_scan_gives_the_event_loops_exclusive_makespan_to_the_bit(seed):
    # where every run alone shifts, the scan equals the event loop exactly; simulate's
    # speedup is over the event loop's makespan either way
    machine, jobs = _case(seed)
    loop = loop_makespan(machine, jobs)
    if _shifts(machine, jobs):
        assert exclusive_makespan(machine, jobs, alone_times(machine, jobs)) == loop
    run = simulate(machine, jobs, ["fair-share"])["fair-share"]
    assert run.speedup == loop / run.makespan


def test_the_seeded_cases_above_include_workloads_that_shift_and_ones_that_do_not():
    # (so the comparison above is not vacuous, nor the fallback untried)
    shifting = sum(_shifts(*_case(seed)) for seed in range(30))
    assert 5 <= shifting <= 25
