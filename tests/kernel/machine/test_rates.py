"""Running jobs' paces (``rates.py``) on a schedule computed by hand: what a reading
says, and what settling then records."""

from __future__ import annotations

import pytest

from qmk.execution.footprint import Step
from qmk.kernel.machine.core import Scheduler
from qmk.kernel.machine.jobs import JobSpec
from qmk.kernel.machine.policies import policy
from qmk.kernel.machine.spec import MachineSpec
from support.machine import footprint


def throttled_pair() -> Scheduler:
    """A (4 data tiles, 100 idle cycles) and B (4 data tiles, 2 measurements a cycle for
    20 cycles) on a decoder of 50 bits a cycle, each data tile and measurement 10 bits:
    demand 100 while both run, so both go at half speed (test_scheduler's decoder case)."""
    machine = MachineSpec.simple(tiles=20, decoder_bits_per_cycle=50, tile_bits_per_cycle=10)
    sched = Scheduler(machine, policy("fair-share"))
    steps = {
        "A": Step(kind="idle", cycles=100),
        "B": Step(kind="ppm", cycles=1, measurements=2, repeat=20),
    }
    for name, step in steps.items():
        sched.submit(JobSpec(id=name, tenant="t", footprint=footprint(5, step), arrival_cycle=0))
    return sched


def test_a_reading_gives_progress_and_idle_cycles_at_the_running_rate_and_settles_nothing():
    sched = throttled_pair()
    sched.advance(30)  # both started at 0; nothing has changed a rate since
    jobs = {job.id: job for job in sched.running}
    # A: 30 cycles at half speed are 15 of its 100: 0.15 of its one repetition, 15 idle.
    # B: 15 of its 20 one-cycle repetitions, 15 idle.
    assert sched.rates.progress(jobs["A"]) == pytest.approx(0.15)
    assert sched.rates.idled_since_settled(jobs["A"]) == pytest.approx(15)
    assert sched.rates.progress(jobs["B"]) == pytest.approx(15)
    assert sched.rates.idled_since_settled(jobs["B"]) == pytest.approx(15)
    assert [(job.last, job.done) for job in jobs.values()] == [(0.0, 0.0), (0.0, 0.0)]


def test_settling_records_what_the_reading_said_as_decoder_waits():
    sched = throttled_pair()
    sched.advance(30)
    a = next(job for job in sched.running if job.id == "A")
    idle = sched.rates.idled_since_settled(a)
    sched.rates.settle(a)
    assert a.waits["decoder"] == pytest.approx(idle)
    assert (a.last, a.done) == (30.0, pytest.approx(0.15))
    assert sched.rates.idled_since_settled(a) == 0.0
