"""Groups of jobs a live machine's policy run decides without its event loop: every
figure the event loop's, to the last bit (qmk.kernel.machine.groups)."""

from __future__ import annotations

import hashlib
import json
import math
import random

import pytest

from qmk.execution.footprint import Footprint, Step
from qmk.kernel.errors import MachineError
from qmk.kernel.machine.jobs import JobSpec
from qmk.kernel.machine.live import LiveMachine
from qmk.kernel.machine.spec import MachineSpec
from support import machine


def footprint(tiles: int, *steps: Step) -> Footprint:
    return machine.footprint(tiles, *steps, qubits=3)


PLAIN = [  # steps that draw on nothing shared: a group may hold them
    footprint(3, Step(kind="gates", cycles=1, repeat=2), Step(kind="measure", cycles=1)),
    footprint(5, Step(kind="idle", cycles=30)),  # not a power of two: a rounding to record
    footprint(4, Step(kind="gates", cycles=3, repeat=7), Step(kind="idle", cycles=0)),
    footprint(
        6,
        Step(kind="idle", cycles=0),
        Step(kind="fence", cycles=0),
        Step(kind="gates", cycles=7, repeat=3),
        Step(kind="fence", cycles=0),
        Step(kind="idle", cycles=11),
    ),
    footprint(2, Step(kind="gates", cycles=1, repeat=0), Step(kind="gates", cycles=4)),
    footprint(9, Step(kind="gates", cycles=64, repeat=3)),
    footprint(3, Step(kind="gates", cycles=49, repeat=2)),  # its end leaves a rounding
    footprint(2, Step(kind="gates", cycles=1, repeat=0)),  # it ends where it starts
]
SHARED = [  # steps that draw T states, or none that takes time: never in a group
    footprint(8, Step(kind="rotation", cycles=1, t_states=1, repeat=20)),
    footprint(3, Step(kind="idle", cycles=2), Step(kind="rotation", cycles=1, t_states=2)),
    footprint(4, Step(kind="fence", cycles=0)),
]
MACHINES = [
    MachineSpec.simple(
        tiles=24,
        factory_rate=(1, 2),
        store=3,
        epoch_cycles=10,
        storage_tiles=10,
        logical_error_rate=1e-4,
    ),
    MachineSpec.simple(tiles=13, modules=3, epoch_cycles=7, logical_error_rate=1e-5),
]
POLICIES = ["exclusive", "fair-share", "priority", "backfill", "partition"]


def _run(seed: int, name: str, machine: MachineSpec, *, groups: bool) -> tuple[str, int]:
    """A live machine driven as a kernel drives it (bursts of arrivals, the clock moved
    to each next event or read late, cancels, status read at random moments); a digest
    of every record given (in order), every status, next event and answer; and how many
    jobs its groups decided."""
    rng = random.Random(seed)
    tenants = {"a": 1.0, "b": 2.0}
    live = LiveMachine(machine, name, tenants, shadow_jobs=9, shadow_log=40, groups=groups)
    own = [footprint(fp.tiles, *fp.steps) for fp in PLAIN]  # shared objects, or fresh
    out: list[object] = []
    cycle = 0

    def to(at: float) -> None:
        for r in live.advance(at):
            out.append([r.id, r.arrival_cycle, r.start_cycle, r.end_cycle, r.module, r.tiles])
            out.append([r.wait_cycles, r.waits_at, r.idle_logical_error, r.slowdown])
        out.append(live.next_event())

    for i in range(160):
        cycle += rng.choice([0, 0, 0, 1, 2, 3, 5, 9, 40, 120, 300])
        while (upcoming := live.next_event()) < cycle and rng.random() < 0.9:
            to(math.nextafter(float(math.floor(upcoming) + 1), -math.inf))
        if rng.random() < 0.7:  # a task that caught up; else one that lags
            to(math.nextafter(float(cycle), -math.inf))
        act = rng.random()
        if act < 0.8:
            shapes = PLAIN if rng.random() < 0.9 else SHARED
            k = rng.randrange(len(shapes))
            fp = shapes[k] if rng.random() < 0.5 or shapes is SHARED else own[k]
            tenant = "a" if rng.random() < 0.7 else "b"
            spec = JobSpec(
                id=f"j{i}",
                tenant=tenant,
                footprint=fp,
                arrival_cycle=cycle,
                priority=rng.choice([0, 0, 0, 3]),
                program=str(k),
            )
            try:
                live.check(spec)
            except MachineError as exc:  # past a tenant's region (partition)
                out.append(exc.code)
                continue
            live.admit(spec, checked=True, arrival_cycle=cycle)
        elif act < 0.88:
            victim = f"j{rng.randrange(max(0, i - 4), i + 1)}"
            out.append([live.knows(victim), live.withdraw(victim, cycle)])
        elif act < 0.92:
            out.append(live.status())
        else:
            out.append([live.now, live.knows(f"j{rng.randrange(i + 1)}")])
    for end in (cycle + 3, cycle + 50, math.inf):
        to(end)
        out.append(live.status())
    digest = hashlib.sha256(json.dumps(out).encode()).hexdigest()
    return digest, live._groups.decided_jobs


@pytest.mark.parametrize("name", POLICIES)
@pytest.mark.parametrize("machine", [0, 1])
def test_groups_give_the_event_loops_records_and_figures_to_the_last_bit(name, machine):
    # 12 seeded workloads a policy: bursts of jobs that draw on nothing shared (whole
    # cycles and not, fences, an empty step, a rounding recorded as a wait, none that
    # takes time), a few that draw T states, two tenants and
    # two priorities, cancels, status and the clock read at random moments, the task
    # caught up or lagging: every record, status, next event and answer the same with
    # the policy's run deciding groups as with its event loop deciding every job
    decided = 0
    for seed in range(12):
        fast, count = _run(seed, name, MACHINES[machine], groups=True)
        slow, none = _run(seed, name, MACHINES[machine], groups=False)
        assert fast == slow, (seed, name)
        assert none == 0
        decided += count
    assert decided >= 20, decided  # jobs the groups decided, of some 1,800


def test_jobs_arriving_before_one_boundary_end_in_one_group_of_one_tenants_jobs():
    # three Bell-like jobs (3 cycles) at 3, 5 and 10 of 10-cycle epochs: boundary 10,
    # all placed there side by side, ending at 13 in arrival order; one more at 20
    # (after them) is a group of its own at 20. No job went through the event loop
    fp = PLAIN[0]
    live = LiveMachine(MACHINES[0], "fair-share", {"a": 1.0})
    for name, at in (("j0", 3), ("j1", 5), ("j2", 10)):
        live.admit(JobSpec(id=name, tenant="a", footprint=fp, arrival_cycle=at))
    assert live.next_event() == 3.0 and live.knows("j1")
    assert live.advance(9.5) == [] and live.next_event() == 10.0
    assert live.advance(12.5) == [] and live.next_event() == 13.0
    ended = live.advance(13.0)
    assert [(r.id, r.start_cycle, r.end_cycle, r.wait_cycles["queue"]) for r in ended] == [
        ("j0", 10.0, 13.0, 7.0),
        ("j1", 10.0, 13.0, 5.0),
        ("j2", 10.0, 13.0, 0.0),
    ]
    assert not live.knows("j1")
    live.admit(JobSpec(id="j3", tenant="a", footprint=fp, arrival_cycle=20))
    assert [(r.id, r.start_cycle) for r in live.advance(30.0)] == [("j3", 20.0)]
    assert live._groups.decided_jobs == 4 and live._sched._count == 4
    assert live.status()["jobs"] == {"queued": 0, "running": 0, "stopped": 0, "done": 4}


def test_a_read_of_the_machine_while_a_group_runs_finds_the_event_loops_state():
    # j0 and j1 run 10-13 in a group; the floorplan read at 12 (the scheduler's state)
    # shows them in place, as the event loop has them; they end as they would have
    fp = PLAIN[0]
    live = LiveMachine(MACHINES[0], "backfill", {"a": 1.0, "b": 1.0})
    for name, tenant in (("j0", "a"), ("j1", "b")):
        live.admit(JobSpec(id=name, tenant=tenant, footprint=fp, arrival_cycle=3))
    live.advance(12.0)
    assert live._groups.groups  # not made on the scheduler yet
    (module,) = live.status()["floorplan"][:1]
    assert [(j["job"], j["first_tile"], j["state"]) for j in module["jobs"]] == [
        ("j0", 0, "running"),
        ("j1", 3, "running"),
    ]
    assert [r.id for r in live.advance(13.0)] == ["j0", "j1"]
    assert live._groups.decided_jobs == 0  # the event loop ran them, once read
