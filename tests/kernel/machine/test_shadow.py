"""The shadow exclusive run kept as a queue while it can: the scheduler's ends, to the
last bit (qmk.kernel.machine.shadow)."""

from __future__ import annotations

import math
import random

import pytest

from qmk.execution.footprint import Step
from qmk.kernel.machine.core import Scheduler
from qmk.kernel.machine.jobs import JobSpec, Timeline
from qmk.kernel.machine.policies import policy
from qmk.kernel.machine.shadow import Shadow
from qmk.kernel.machine.spec import MachineSpec
from support.machine import footprint

SHAPES = [
    footprint(3, Step(kind="gates", cycles=1, repeat=2), Step(kind="measure", cycles=1)),
    footprint(5, Step(kind="idle", cycles=30)),
    footprint(4, Step(kind="fence", cycles=0), Step(kind="gates", cycles=49, repeat=2)),
    footprint(2, Step(kind="gates", cycles=1, repeat=0)),  # it ends where it starts
    footprint(6, Step(kind="gates", cycles=7, repeat=3), Step(kind="idle", cycles=0)),
]
DRAWING = [  # T states: the scheduler runs them
    footprint(8, Step(kind="rotation", cycles=1, t_states=1, repeat=20)),
    footprint(4, Step(kind="fence", cycles=0)),  # nothing takes time: it ends at once
]
MACHINE = MachineSpec.simple(tiles=24, factory_rate=(1, 2), store=3, epoch_cycles=10)


@pytest.mark.parametrize("seed", range(10))
def test_the_shadows_queue_ends_its_jobs_when_the_exclusive_scheduler_does(seed):
    # bursts and lulls of arrivals (the same cycle, the next, far apart), the clock moved
    # to random points (before, at and after events; back, which changes nothing),
    # cancels of queued, running and ended jobs, and jobs the queue cannot run (T
    # states, none that takes time) handing the run to the scheduler and back: the
    # ends taken at every move and the jobs held are the scheduler's
    rng = random.Random(seed)
    shadow = Shadow(MACHINE, {"a": 1.0})
    sched = Scheduler(MACHINE, policy("exclusive"), {"a": 1.0}, history=False, records=False)
    timelines = {id(fp): Timeline(fp) for fp in SHAPES + DRAWING}
    cycle = 0
    for i in range(300):
        cycle += rng.choice([0, 0, 1, 3, 9, 10, 37, 150, 400])
        for _ in range(rng.randrange(3)):
            at = rng.choice([cycle - 0.5, float(cycle), cycle - 20.0, cycle - 1e-9])
            shadow.advance(at)
            sched.advance(at)
            assert shadow.take_ended(at) == sched.take_ended(at)
            assert shadow.holding() == sched.holding() and shadow.now == sched.now
        fp = rng.choice(DRAWING) if rng.random() < 0.04 else rng.choice(SHAPES)
        spec = JobSpec(id=f"j{i}", tenant="a", footprint=fp, arrival_cycle=cycle)
        shadow.submit(spec, checked=True, timeline=timelines[id(fp)])
        sched.submit(spec, checked=True, timeline=timelines[id(fp)])
        if rng.random() < 0.03:
            victim = f"j{rng.randrange(max(0, i - 4), i + 1)}"
            assert shadow.cancel(victim, cycle) == sched.cancel(victim, cycle)
    for at in (cycle + 0.5, cycle + 100.0, math.inf):
        shadow.advance(at)
        sched.advance(at)
        assert shadow.take_ended(at) == sched.take_ended(at)
        assert shadow.holding() == sched.holding()
    assert shadow.holding() == 0
    assert shadow.queued_jobs >= 50  # ran in the queue, none of the scheduler's events
