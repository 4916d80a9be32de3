"""The machine driven one admission and one epoch tick at a time, as a kernel drives it."""

from __future__ import annotations

import random

import pytest

from qmk.execution.footprint import Footprint, Step
from qmk.kernel.errors import MachineError
from qmk.kernel.machine.core import Scheduler
from qmk.kernel.machine.jobs import JobSpec
from qmk.kernel.machine.live import LiveMachine
from qmk.kernel.machine.policies import policy
from qmk.kernel.machine.spec import MachineSpec


def footprint(tiles: int, *steps: Step) -> Footprint:
    return Footprint(
        target="test",
        logical_qubits=2,
        block="fast",
        data_tiles=tiles - 1,
        routing_tiles=1,
        code_distance=9,
        steps=steps,
    )


SHAPES = [
    footprint(5, Step(kind="idle", cycles=30)),
    footprint(8, Step(kind="rotation", cycles=1, t_states=1, repeat=20)),
    footprint(
        3,
        Step(kind="rotation", cycles=1, t_states=1, repeat=5),
        Step(kind="fence", cycles=0),
        Step(kind="idle", cycles=12),
    ),
]
MACHINE = MachineSpec.simple(
    tiles=24, factory_rate=(1, 2), store=3, epoch_cycles=10, storage_tiles=10
)


def arrivals(seed: int) -> list[tuple[int, JobSpec]]:
    """(kernel epoch, job) pairs: each job admitted in the epoch it arrives in."""
    rng = random.Random(seed)
    out = []
    for i in range(25):
        epoch = rng.randint(0, 30)
        spec = JobSpec(
            id=f"j{i}",
            tenant="ab"[i % 2],
            footprint=rng.choice(SHAPES),
            arrival_cycle=MACHINE.epoch_cycles * epoch,
            priority=rng.randint(0, 9),
        )
        out.append((epoch, spec))
    return sorted(out, key=lambda pair: pair[0])


@pytest.mark.parametrize("name", ["exclusive", "fair-share", "priority", "backfill"])
def test_admissions_one_epoch_at_a_time_give_the_schedule_of_the_whole_workload(name):
    given = arrivals(20261125)
    batch = Scheduler(MACHINE, policy(name), {"a": 1.0, "b": 1.0})
    batch.submit_all(spec for _, spec in given)
    whole = {r.id: r for r in batch.run()}
    live = LiveMachine(MACHINE, name, {"a": 1.0, "b": 1.0})
    ended = []
    pending = list(given)
    for epoch in range(2000):
        while pending and pending[0][0] == epoch:
            live.admit(pending.pop(0)[1])
        ended += live.advance(live.cycle_of(epoch))
        if not pending and len(ended) == len(given):
            break
    assert {r.id: r.end_cycle for r in ended} == {i: r.end_cycle for i, r in whole.items()}
    assert {r.id: r.wait_cycles for r in ended} == {i: r.wait_cycles for i, r in whole.items()}
    assert all(r.runtime_alone_cycles and r.slowdown >= 1.0 - 1e-9 for r in ended)


def test_status_shows_the_floorplan_shares_and_the_speedup_over_exclusive():
    live = LiveMachine(MACHINE, "fair-share", {"a": 1.0, "b": 1.0})
    for i in range(4):
        live.admit(JobSpec(id=f"j{i}", tenant="ab"[i % 2], footprint=SHAPES[0], arrival_cycle=0))
    live.advance(15)
    status = live.status()
    assert status["jobs"] == {"queued": 0, "running": 4, "stopped": 0, "done": 0}
    (module,) = status["floorplan"]
    assert [(j["job"], j["first_tile"], j["tiles"]) for j in module["jobs"]] == [
        ("j0", 0, 5),
        ("j1", 5, 5),
        ("j2", 10, 5),
        ("j3", 15, 5),
    ]
    assert status["utilization"]["tiles"] == pytest.approx(20 / 24)
    assert status["tenant_shares"] == {"a": 0.5, "b": 0.5}
    live.advance(200)
    status = live.status()
    assert status["jobs"]["done"] == 4 and status["mean_slowdown"] == pytest.approx(1.0)
    # the shadow exclusive run has done 4 by 200 as well (4 x 30 cycles, one at a time)
    assert status["speedup_vs_exclusive"] == pytest.approx(1.0)
    assert status["throughput_jobs_per_s"] == pytest.approx(4 / (200 * 3600e-9))


def test_a_job_no_placement_can_hold_is_refused_at_admission():
    live = LiveMachine(MACHINE, "fair-share")
    with pytest.raises(MachineError) as caught:
        live.admit(
            JobSpec(
                id="wide",
                tenant="a",
                footprint=footprint(25, Step(kind="idle", cycles=1)),
                arrival_cycle=0,
            )
        )
    assert caught.value.code == "QK501" and "wide" in caught.value.message
