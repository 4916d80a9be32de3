"""``tetris`` as Grandl et al. publish it, on schedules computed by hand: one where each
term decides the order (alignment, remaining work, fit on every resource) and one per
setting of the fairness knob.

Every machine is ``MachineSpec.simple`` at epochs of one cycle. A job's demand vector is
(tiles, T states a cycle, the same on its bus stretch, Bell pairs a cycle, decoder bits a
cycle), each over its capacity; a resource without a limit is not scored.
"""

from __future__ import annotations

import pytest

from qmk.execution.footprint import Footprint, Step
from qmk.kernel.machine.core import Scheduler
from qmk.kernel.machine.jobs import JobSpec
from qmk.kernel.machine.policies.tetris import Peak, Tetris, peak
from qmk.kernel.machine.spec import MachineSpec
from support.machine import footprint


def idle(cycles: int) -> Step:
    return Step(kind="idle", cycles=cycles)


def rotations(n: int, cycles: int = 1) -> Step:
    return Step(kind="rotation", cycles=cycles, t_states=1, repeat=n, routed=True)


def job(name: str, fp: Footprint, at: int = 0, tenant: str = "a") -> JobSpec:
    return JobSpec(id=name, tenant=tenant, footprint=fp, arrival_cycle=at)


def run(machine: MachineSpec, *jobs: JobSpec, fairness: float = 0.0) -> dict:
    sched = Scheduler(machine, Tetris(fairness))
    for spec in jobs:
        sched.submit(spec)
    return {r.id: (r.start_cycle, r.end_cycle) for r in sched.run()}


def test_a_jobs_peak_demand_is_the_most_any_step_asks_a_cycle():
    from qmk.kernel.machine.jobs import Timeline

    fp = footprint(4, rotations(10, cycles=5), rotations(3), idle(7))
    assert peak(Timeline(fp)) == Peak(1.0, 0.0, 0.0)


def test_alignment_decides_between_jobs_of_equal_remaining_work():
    # 20 tiles, r holds 10 from cycle 0. At cycle 1, of the 10 free tiles, a (8 tiles,
    # 10 idle cycles) and b (4 tiles, a T state every 5 cycles for 10) cannot both fit.
    # Remaining work: a 10 x 8/20 = 4, b 10 x (4/20 + 0.2/1) = 4, equal. Alignment:
    # a 8/20 x 10/20 = 0.2; b 4/20 x 10/20 + 0.2 x 1 = 0.3: b first, though a came first.
    machine = MachineSpec.simple(tiles=20)
    out = run(
        machine,
        job("r", footprint(10, idle(100))),
        job("a", footprint(8, idle(10)), at=1),
        job("b", footprint(4, rotations(2, cycles=5)), at=1),
    )
    assert out["b"] == (1, 11)
    assert out["a"] == (11, 21)


def test_remaining_work_decides_between_jobs_of_equal_alignment():
    # 10 tiles, two jobs of 8 arriving together: equal alignment (8/10 x 10/10); a's work
    # 20 x 0.8 = 16, b's 10 x 0.8 = 8, so b (less remaining work) first: SRTF's order
    # with e = a_bar / W_bar = 0.8 / 12, b scores 0.8 - 8e > a's 0.8 - 16e
    machine = MachineSpec.simple(tiles=10)
    out = run(machine, job("a", footprint(8, idle(20))), job("b", footprint(8, idle(10))))
    assert out == {"b": (0, 10), "a": (10, 30)}


def test_a_job_waits_while_the_factories_output_it_asks_is_allocated():
    # factories of 1 state a cycle; r asks all of it for 10 cycles; a (4 of the 16 free
    # tiles) asks 0.5 a cycle, which is not free: it starts when r ends, not at cycle 1
    machine = MachineSpec.simple(tiles=20)
    out = run(
        machine,
        job("r", footprint(4, rotations(10))),
        job("a", footprint(4, rotations(5, cycles=2)), at=1),
    )
    assert out == {"r": (0, 10), "a": (10, 20)}


def test_a_job_waits_while_its_bus_stretch_is_allocated():
    # factories of 2 a cycle, but one bus lane (one stretch): r's 1 a cycle fills it, so a
    # waits for it though the factories have 1 a cycle free
    machine = MachineSpec.simple(tiles=20, factory_rate=(2, 1), lanes=1)
    out = run(
        machine,
        job("r", footprint(4, rotations(10))),
        job("a", footprint(4, rotations(5, cycles=2)), at=1),
    )
    assert out == {"r": (0, 10), "a": (10, 20)}


def test_a_job_goes_beside_a_bus_stretch_with_room_when_first_fits_is_full():
    # two stretches of 1 state a cycle (2 lanes); r (tiles 0-3, middle 2) fills the
    # first; first fit would put a at 4-7 (middle 6, the first stretch), so it goes where
    # its middle is beside the second (tiles 8-11, middle 10) and starts at once
    machine = MachineSpec.simple(tiles=20, factory_rate=(2, 1), lanes=2, segments=2)
    sched = Scheduler(machine, Tetris())
    sched.submit(job("r", footprint(4, rotations(10))))
    sched.submit(job("a", footprint(4, rotations(5, cycles=2)), at=1))
    sched.advance(1)
    placed = {j.id: j.pos for j in sched.running}
    assert placed == {"r": 0, "a": 8}
    assert {r.id: (r.start_cycle, r.end_cycle) for r in sched.run()} == {
        "r": (0, 10),
        "a": (1, 11),
    }


def test_a_job_waits_while_the_decoder_bits_it_asks_are_allocated():
    # a decoder of 10 bits a cycle, a data tile sends 1: r's 7 data tiles leave 3, and a
    # (4 data tiles) asks 4, so it waits for r though 12 tiles are free
    machine = MachineSpec.simple(tiles=20, decoder_bits_per_cycle=10, tile_bits_per_cycle=1)
    out = run(machine, job("r", footprint(8, idle(10))), job("a", footprint(5, idle(10)), at=1))
    assert out == {"r": (0, 10), "a": (10, 20)}


def test_a_job_waits_while_the_link_pairs_it_asks_are_allocated():
    # links of 1 pair a cycle: r draws one a cycle for 10 cycles, so a, which asks half
    # a pair a cycle, waits for r though the other module is empty
    machine = MachineSpec.simple(tiles=20, modules=2, link_pairs_per_cycle=1)
    teleports = Step(kind="teleport", cycles=1, bell_pairs=1, repeat=10)
    halves = Step(kind="teleport", cycles=2, bell_pairs=1, repeat=5)
    out = run(machine, job("r", footprint(4, teleports)), job("a", footprint(4, halves), at=1))
    assert out == {"r": (0, 10), "a": (10, 20)}


def test_a_job_asking_more_than_the_whole_factory_runs_when_it_is_free():
    # 2 states a cycle asked of factories making 1: its demand is the whole of them, so
    # it fits the empty machine (and runs at their pace: 8 states in 8 cycles)
    out = run(MachineSpec.simple(tiles=20), job("a", footprint(4, rotations(4, cycles=1))))
    assert out == {"a": (0, 4)}
    heavy = footprint(4, Step(kind="rotation", cycles=1, t_states=2, repeat=4, routed=True))
    assert run(MachineSpec.simple(tiles=20), job("h", heavy)) == {"h": (0, 8)}


def _fairness_jobs() -> list[JobSpec]:
    # tenant a holds 10 of 20 tiles from cycle 0 (r); at cycle 1 a2 (a, 8 tiles, 10
    # cycles) and b1 (b, 8 tiles, 20 cycles) arrive and only one fits. Equal alignment
    # (8/20 x 10/20); a2 has less remaining work (4 against 8).
    return [
        job("r", footprint(10, idle(100))),
        job("a2", footprint(8, idle(10)), at=1),
        job("b1", footprint(8, idle(20)), at=1, tenant="b"),
    ]


def test_with_the_fairness_knob_at_0_every_tenant_is_considered():
    out = run(MachineSpec.simple(tiles=20), *_fairness_jobs(), fairness=0.0)
    assert out["a2"] == (1, 11)
    assert out["b1"] == (11, 31)


def test_with_the_fairness_knob_at_one_half_only_the_tenant_furthest_from_its_share_starts():
    # two tenants wait: ceil((1 - 0.5) x 2) = 1 is considered, b (dominant share 0; a's
    # is 10/20): b1 starts though a2 scores higher; a2 waits for b1's tiles
    out = run(MachineSpec.simple(tiles=20), *_fairness_jobs(), fairness=0.5)
    assert out["b1"] == (1, 21)
    assert out["a2"] == (21, 31)


def test_with_the_fairness_knob_near_1_one_tenant_is_still_considered():
    out = run(MachineSpec.simple(tiles=20), *_fairness_jobs(), fairness=0.99)
    assert out["b1"] == (1, 21)


@pytest.mark.parametrize("f", [-0.1, 1.0, 1.5])
def test_a_fairness_knob_outside_0_to_1_is_refused(f):
    with pytest.raises(ValueError, match="fairness knob"):
        Tetris(f)
