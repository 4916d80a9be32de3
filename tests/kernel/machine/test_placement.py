"""The block and code distance a job is placed at, and the resource ``QK505`` names
(kernel/machine/placement.py, alone.py): every figure computed by hand."""

from __future__ import annotations

import pytest

from qmk.execution.footprint import Footprint, Step
from qmk.kernel.errors import MachineError
from qmk.kernel.machine.core import Scheduler
from qmk.kernel.machine.footprints import in_block
from qmk.kernel.machine.jobs import JobSpec, own_error
from qmk.kernel.machine.live import LiveMachine
from qmk.kernel.machine.placement import placements
from qmk.kernel.machine.policies import policy
from qmk.kernel.machine.policies.budget import BUDGET, TILES
from qmk.kernel.machine.policies.fidelity import Fidelity
from qmk.kernel.machine.spec import MachineSpec
from support.machine import footprint


def compact(*steps: Step) -> Footprint:
    """4 logical qubits laid out in the compact block: 4 data tiles and 5 of routing
    (``qmk plan --layout``'s; the fast block's are 8 and 7, the intermediate's 4 and 8)."""
    return Footprint(
        target="lattice-surgery",
        logical_qubits=4,
        block="compact",
        data_tiles=4,
        routing_tiles=5,
        code_distance=9,
        steps=steps,
    )


def z_rotations(n: int) -> Step:
    return Step(kind="rotation", cycles=1, t_states=1, repeat=n, routed=True)


def xy_rotations(n: int) -> Step:  # Litinski's 9 ticks in the compact block
    return Step(kind="rotation", cycles=9, t_states=1, repeat=n, routed=True)


def job(name: str, fp: Footprint, budget: float | None, at: int = 0) -> JobSpec:
    return JobSpec(id=name, tenant="a", footprint=fp, arrival_cycle=at, error_budget=budget)


def run(machine: MachineSpec, *jobs: JobSpec) -> dict:
    sched = Scheduler(machine, policy("fidelity"))
    for spec in jobs:
        sched.submit(spec)
    return {r.id: r for r in sched.run()}


#: one T state a cycle, a store of 100, p_L 1e-4 a patch and cycle at d = 9
MACHINE = MachineSpec.simple(tiles=60, factory_rate=(1, 1), store=100, logical_error_rate=1e-4)


def test_a_program_moved_to_another_block_takes_that_blocks_tiles_and_ticks():
    # a 1-tick op of the compact block is Z-type (1 tick everywhere); a 9-tick one X or
    # Y-type (5 in the intermediate block, 1 in the fast one)
    fp = compact(z_rotations(3), xy_rotations(2))
    fast, middle = in_block(fp, "fast"), in_block(fp, "intermediate")
    assert (fast.data_tiles, fast.routing_tiles) == (8, 7)
    assert [(s.cycles, s.repeat) for s in fast.steps] == [(1, 3), (1, 2)]
    assert (middle.data_tiles, middle.routing_tiles) == (4, 8)
    assert [(s.cycles, s.repeat) for s in middle.steps] == [(1, 3), (5, 2)]
    # from the fast block a 1-tick op's Pauli is not known: Litinski's bound
    assert [(s.cycles, s.repeat) for s in in_block(fast, "compact").steps] == [(9, 3), (9, 2)]
    # another target's steps are not moved
    assert in_block(footprint(5, z_rotations(3)), "compact") is None


def test_a_job_of_z_type_rotations_is_placed_in_the_compact_block():
    # 20 Z-type rotations take 20 cycles in every block: compact holds 9 tiles x 20 =
    # 180 tile-cycles, intermediate 12 x 20 = 240, fast 15 x 20 = 300. Its own error
    # in the compact block, 1 - (1 - 1e-4)^(9 x 20) = 0.0178, is within 0.05: it runs
    # there, from 0 to 20, the store feeding it (no wait)
    fp = in_block(compact(z_rotations(20)), "intermediate")  # it came in that block
    out = run(MACHINE, job("z", fp, 0.05))["z"]
    assert (out.block, out.code_distance, out.tiles) == ("compact", 9, 9)
    assert (out.start_cycle, out.end_cycle) == (0.0, 20.0)
    assert out.own_logical_error == pytest.approx(1 - (1 - 1e-4) ** 180)
    assert out.idle_logical_error == 0.0
    assert out.within_budget
    # without a budget it runs as it came
    blind = run(MACHINE, job("z", fp, None))["z"]
    assert (blind.block, blind.tiles) == ("intermediate", 12)


def test_a_job_of_xy_rotations_is_placed_in_the_fast_block_where_compact_breaks_its_budget():
    # 20 X/Y-type rotations: fast 15 tiles x 20 cycles = 300 tile-cycles, intermediate
    # 12 x 100 = 1,200, compact 9 x 180 = 1,620. Own errors: fast 1 - (1 - 1e-4)^300 =
    # 0.0296, intermediate 0.113, compact 0.150: only the fast block keeps 0.05. It came
    # in the compact block, where it would run 180 cycles
    fp = compact(xy_rotations(20))
    found = {p.label: p for p in placements(fp, MACHINE)}
    assert [(label, p.cost) for label, p in found.items()] == [
        ("fast/d=9", 300),
        ("intermediate/d=9", 1200),
        ("compact/d=9", 1620),
    ]
    assert found["compact/d=9"].own == pytest.approx(1 - (1 - 1e-4) ** 1620)
    out = run(MACHINE, job("xy", fp, 0.05))["xy"]
    assert (out.block, out.tiles, out.end_cycle) == ("fast", 15, 20.0)
    assert out.own_logical_error == pytest.approx(1 - (1 - 1e-4) ** 300)
    assert out.within_budget
    blind = run(MACHINE, job("xy", fp, None))["xy"]
    assert (blind.block, blind.end_cycle) == ("compact", 180.0)
    assert not run(MACHINE, job("xy", fp, None))["xy"].total_logical_error <= 0.05


def test_a_job_no_block_keeps_at_the_machines_distance_runs_at_a_larger_one():
    # 200 Z-type rotations: compact/d=9 9 x 200 = 1,800 tile-cycles, own 1 - (1 -
    # 1e-4)^1800 = 0.165, past 0.05, and every block at d = 9 more. At d = 11 (p_L 1e-5,
    # 1e-5 x 9/11 a machine cycle) a patch takes 121/81 of a tile: compact's 4 + 5 tiles
    # are 6 + 8 = 14, its 200 rotations of 11/9 cycle take 245 cycles (45 of 2, 155 of
    # 1). Its patches fail through its 200 logical cycles at d = 11 (244.4 machine
    # cycles, not the 245 its steps are rounded up to: the exclusive baseline runs it at
    # d = 11 on a machine of that cycle, where the same formula gives the same error):
    # own 1 - (1 - 1e-5 x 9/11)^(9 x 200 x 11/9) = 0.018, within
    machine = MACHINE.with_(larger_distances=((11, 1e-5),))
    fp = compact(z_rotations(200))
    out = run(machine, job("long", fp, 0.05))["long"]
    assert (out.block, out.code_distance, out.tiles) == ("compact", 11, 14)
    assert out.end_cycle == pytest.approx(245)
    assert out.own_logical_error == pytest.approx(own_error(1e-5 * 9 / 11, 9, 200 * 11 / 9))
    assert out.own_logical_error == pytest.approx(own_error(1e-5, 9, 200))


def test_a_job_waits_for_its_quick_placement_where_a_slow_one_now_would_end_later():
    # 27 tiles. "a": 30 X/Y rotations in the fast block (15 tiles x 30 cycles = 450
    # tile-cycles, its cheapest), from 0 to 30. "b": 20 of them; its fast placement
    # (15 tiles, 20 cycles) does not fit beside "a" (12 tiles free), its intermediate
    # one does (12 tiles, 5 ticks a rotation: 100 cycles), and its compact one (9
    # tiles, 180 cycles). Started now in the intermediate block it would end at 100;
    # waiting for "a" to end, at 30 + 20 = 50 in the fast block. A T state a cycle and
    # a store of 100 feed both: no wait. Own errors 1 - (1 - 1e-4)^450 = 0.044 and
    # 1 - (1 - 1e-4)^300 = 0.0296, both within 0.2 (b's intermediate run: 0.113)
    machine = MachineSpec.simple(tiles=27, factory_rate=(1, 1), store=100, logical_error_rate=1e-4)
    first, second = compact(xy_rotations(30)), compact(xy_rotations(20))
    out = run(machine, job("a", first, 0.2), job("b", second, 0.2))
    a, b = out["a"], out["b"]
    assert (a.block, a.tiles, a.start_cycle, a.end_cycle) == ("fast", 15, 0.0, 30.0)
    assert (b.block, b.tiles, b.start_cycle, b.end_cycle) == ("fast", 15, 30.0, 50.0)
    assert b.wait_cycles["queue"] == 30.0
    assert a.total_logical_error == pytest.approx(1 - (1 - 1e-4) ** 450)
    assert b.total_logical_error == pytest.approx(1 - (1 - 1e-4) ** 300)
    assert a.within_budget and b.within_budget


class Telling(Fidelity):
    """``fidelity``, each start it tries written down: ``(now, job, why not)`` (None:
    it started; else what ``BudgetCheck.fit`` refused it for)."""

    def __init__(self) -> None:
        super().__init__()
        self.told: list[tuple[float, str, str | None]] = []

    def decide(self, sched: Scheduler) -> None:
        told = self.told

        def start(*args: object) -> str | None:
            why = Fidelity._start(*args)  # type: ignore[arg-type]
            told.append((sched.now, args[1].id, why))  # type: ignore[attr-defined]
            return why

        self._start = start  # type: ignore[method-assign]
        super().decide(sched)


def test_a_refusal_says_whether_the_tiles_or_a_budget_held_the_job_back():
    # the machine of the test above, and "c": 10 Z-type rotations (compact, 9 tiles, 10
    # cycles). b is refused at 0 for tiles: its fast placement waits for a's (and c
    # backfills beside a, 0 to 10: it takes nothing b waits for); b starts at 30.
    machine = MachineSpec.simple(tiles=27, factory_rate=(1, 1), store=100, logical_error_rate=1e-4)
    telling = Telling()
    sched = Scheduler(machine, telling)
    jobs = [
        job("a", compact(xy_rotations(30)), 0.2),
        job("b", compact(xy_rotations(20)), 0.2),
        job("c", compact(z_rotations(10)), 0.2),
    ]
    for spec in jobs:
        sched.submit(spec)
    out = {r.id: r for r in sched.run()}
    assert (0.0, "b", TILES) in telling.told
    assert (out["b"].start_cycle, out["c"].start_cycle, out["c"].end_cycle) == (30.0, 0.0, 10.0)
    # test_fidelity's budget held back at the machine's distance: no store, x (no
    # budget) draws a state a cycle from 0 to 40; y (one placement: its target's steps
    # do not move block) arrives at 5, its budget refuses it until it starts at 40
    machine = MachineSpec.simple(tiles=40, factory_rate=(1, 1), store=0, logical_error_rate=1e-4)
    telling = Telling()
    sched = Scheduler(machine, telling)
    x, y = footprint(2, z_rotations(40), qubits=1), footprint(9, z_rotations(20), qubits=4)
    sched.submit(job("x", x, None))
    sched.submit(job("y", y, 0.025, at=5))
    out = {r.id: r for r in sched.run()}
    assert (5.0, "y", BUDGET) in telling.told
    assert {why for _, name, why in telling.told if name == "y"} == {BUDGET, None}
    assert out["y"].start_cycle == 40.0


def test_a_job_waits_for_its_quick_placement_where_its_tenants_bound_holds_it_back_only_now():
    # 50 tiles, two tenants of weight 1: while one waits, the other may hold 25. "b"
    # holds 20 (b1, no budget, 200 idle cycles) and waits with b2 (20 more: past its
    # bound). "a1": 30 X/Y rotations in the fast block (15 tiles), from 0 to 30. "a2":
    # 20 of them. Its fast placement (15 tiles, 20 cycles) fits the 15 free tiles but
    # not a's bound (15 + 15 > 25), nor does its intermediate one (12 tiles); its
    # compact one does (9 tiles, 180 cycles: 0 to 180). When a1 ends at 30, a holds
    # nothing and a2 runs fast from 30 to 50. Own errors as in the test above; the
    # compact run's, 1 - (1 - 1e-4)^1620 = 0.15, is within 0.2 too: only the wait rule
    # keeps a2 out of it
    machine = MachineSpec.simple(tiles=50, factory_rate=(1, 1), store=100, logical_error_rate=1e-4)
    held = Footprint(
        target="lattice-surgery",
        logical_qubits=10,
        block="compact",
        data_tiles=10,
        routing_tiles=10,
        code_distance=9,
        steps=(Step(kind="idle", cycles=200),),
    )
    b = [
        JobSpec(id=f"b{i}", tenant="b", footprint=held, arrival_cycle=0, error_budget=None)
        for i in (1, 2)
    ]
    out = run(
        machine,
        *b,
        job("a1", compact(xy_rotations(30)), 0.2),
        job("a2", compact(xy_rotations(20)), 0.2),
    )
    a1, a2 = out["a1"], out["a2"]
    assert (out["b1"].start_cycle, out["b1"].tiles) == (0.0, 20)
    assert out["b2"].start_cycle >= 50.0
    assert (a1.block, a1.tiles, a1.start_cycle, a1.end_cycle) == ("fast", 15, 0.0, 30.0)
    assert (a2.block, a2.tiles, a2.start_cycle, a2.end_cycle) == ("fast", 15, 30.0, 50.0)
    assert a2.total_logical_error == pytest.approx(1 - (1 - 1e-4) ** 300)
    assert a1.within_budget and a2.within_budget


def test_a_job_its_part_refuses_runs_sole_where_the_placement_its_part_keeps_runs_far_longer():
    # 20 tiles, no store, one state a cycle, p_L 1e-4 at d = 9 and 1e-6 at d = 11. "a"
    # (tenant a): 20 X/Y rotations, budget 0.035. Fast/d=9: 15 tiles, 20 cycles, own
    # 1 - (1 - 1e-4)^300 = 0.0296, leaving (0.035 - 0.0296) / 0.9704 = 5.6e-3. Tenant
    # b's "x" (2 tiles, 40 rotations, no budget) is queued and fits beside it, so a's
    # part is a half: its 4 patches 20 cycles late, 1 - (1 - 1e-4)^80 = 8.0e-3, past
    # 80% of that; on the whole rate, with nothing drawing, never late. Intermediate
    # and compact at d = 9 pass the budget on their own (0.113, 0.150); fast/d=11 (23
    # tiles) never fits; intermediate/d=11 (18 tiles, 5 x 11/9 cycles a rotation: 123
    # cycles) keeps on the half, but runs over twice the 20 (SOLE_GAIN): a runs
    # fast/d=9 sole from 0 to 20 (before: intermediate/d=11 to 123), and x, which
    # draws T states, starts beside it only when it ends
    def machine(tiles: int) -> MachineSpec:
        return MachineSpec.simple(
            tiles=tiles,
            factory_rate=(1, 1),
            store=0,
            logical_error_rate=1e-4,
            larger_distances=((11, 1e-6),),
        )

    x = JobSpec(
        id="x", tenant="b", footprint=footprint(2, z_rotations(40), qubits=1), arrival_cycle=0
    )
    out = run(machine(20), job("a", compact(xy_rotations(20)), 0.035), x)
    a = out["a"]
    assert (a.block, a.code_distance, a.start_cycle, a.end_cycle) == ("fast", 9, 0.0, 20.0)
    assert a.idle_logical_error == 0.0
    assert a.total_logical_error == pytest.approx(1 - (1 - 1e-4) ** 300)
    assert a.within_budget
    assert (out["x"].start_cycle, out["x"].end_cycle) == (20.0, 60.0)
    # on 25 tiles fast/d=11 fits (23 tiles: 20 rotations of 11/9 cycle, 25 cycles, and
    # its waits 1e-6 x 9/11 a patch and cycle): its part keeps it and it runs under
    # twice the 20, so a runs there from 0, x beside it: each gets half a state a
    # cycle, a's 20 take 40 cycles (1 - (1 - 8.2e-7)^(4 x 15.6) idle error, within)
    wide = run(machine(25), job("a", compact(xy_rotations(20)), 0.035), x)
    assert (wide["a"].block, wide["a"].code_distance, wide["a"].start_cycle) == ("fast", 11, 0.0)
    assert wide["a"].end_cycle == pytest.approx(40) and wide["x"].start_cycle == 0.0
    assert wide["a"].within_budget


# --------------------------------------------------------------------------- QK505


def refused(machine: MachineSpec, spec: JobSpec) -> MachineError:
    with pytest.raises(MachineError) as caught:
        LiveMachine(machine, "fidelity").check(spec)
    assert caught.value.code == "QK505"
    return caught.value


def test_qk505_names_the_jobs_own_memory_error_where_no_placement_keeps_it():
    # 5 tiles through 100 cycles at 1e-3: own 1 - 0.999^500 = 0.394 at the machine's
    # only distance, before any wait: more factories or lanes would not help
    machine = MachineSpec.simple(tiles=20, logical_error_rate=1e-3)
    fp = footprint(5, Step(kind="idle", cycles=100))
    error = refused(machine, job("deep", fp, 0.1))
    assert error.details["binds"] == "memory"
    assert error.details["own_logical_error"] == pytest.approx(1 - 0.999**500)
    assert "own memory and gate error" in error.message and "[machine] profile" in error.message
    assert "factories" not in error.message
    # a larger distance the machine offers keeps it: accepted (placed there)
    LiveMachine(machine.with_(larger_distances=((11, 1e-5),)), "fidelity").check(
        job("deep", fp, 0.1)
    )


def test_qk505_names_the_links_where_its_bell_pairs_come_slower_than_it_uses_them():
    # two modules, one Bell pair a cycle: 2 pairs a cycle for 10 cycles come in 20, 10
    # of them waiting on the link: 1 - 0.999^10 = 9.96e-3 added to its own 1 - 0.999^50
    machine = MachineSpec.simple(
        tiles=20, modules=2, link_pairs_per_cycle=1.0, logical_error_rate=1e-3
    )
    fp = footprint(5, Step(kind="teleport", cycles=1, bell_pairs=2, repeat=10), qubits=1)
    own = 1 - 0.999**50
    budget = 1 - (1 - own) * (1 - 0.005)
    error = refused(machine, job("far", fp, budget))
    assert error.details["binds"] == "link"
    assert "bell_pairs_per_cycle" in error.message
    assert "10 of its cycles alone wait on link" in error.message
    assert error.details["total_logical_error"] == pytest.approx(1 - 0.999**60)
    faster = machine.with_(link=machine.link.__class__(bell_pairs_per_cycle=2.0))
    LiveMachine(faster, "fidelity").check(job("far", fp, budget))  # the fix


def test_a_job_placed_in_another_block_leaves_nothing_of_its_program_when_it_ends():
    # the scheduler keeps one timeline a footprint while a job of it is here: a job that
    # ran elsewhere (its timeline swapped at placement) still gives it back at its end
    fp = in_block(compact(z_rotations(20)), "intermediate")
    sched = Scheduler(MACHINE, policy("fidelity"))
    sched.submit(job("z", fp, 0.05))
    (record,) = sched.run()
    assert record.block == "compact"
    assert not sched._timelines
