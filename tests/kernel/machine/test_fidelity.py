"""What the machine protects, on schedules computed by hand: tenants' shares of the
factories (under fidelity too), error budgets at admission and at
submit, a tenant's bounded hold on the floorplan, and the bus that congests.

Every machine is ``MachineSpec.simple`` (a stated factory rate and store, no bus limit
unless given), so each figure follows from the model's rules in a line of arithmetic.
"""

from __future__ import annotations

import pytest

from qmk.execution.footprint import Footprint, Step
from qmk.kernel.errors import MachineError
from qmk.kernel.machine.alone import run_alone
from qmk.kernel.machine.core import Scheduler
from qmk.kernel.machine.jobs import JobSpec, idle_error, own_error
from qmk.kernel.machine.live import LiveMachine
from qmk.kernel.machine.policies import policy
from qmk.kernel.machine.simulate import Refused, simulate
from qmk.kernel.machine.spec import MachineSpec
from support.machine import footprint


def rotations(n: int) -> Step:
    return Step(kind="rotation", cycles=1, t_states=1, repeat=n, routed=True)


def run(machine: MachineSpec, name: str, *jobs: JobSpec, **weights: float) -> dict:
    sched = Scheduler(machine, policy(name), weights or None)
    for spec in jobs:
        sched.submit(spec)
    return {r.id: r for r in sched.run()}


def job(name: str, fp: Footprint, at: int = 0, *, tenant: str = "a", budget=None) -> JobSpec:
    return JobSpec(id=name, tenant=tenant, footprint=fp, arrival_cycle=at, error_budget=budget)


def whole(fp: Footprint, added: float, p: float = 1e-3) -> float:
    """The whole-error budget that leaves ``added`` for waiting beside ``fp``'s own error
    at ``p`` a patch and cycle (each of its tiles a patch through its cycles)."""
    own = own_error(p, fp.tiles, fp.duration_cycles)
    return 1 - (1 - own) * (1 - added)


ONE_A_CYCLE = MachineSpec.simple(tiles=40, factory_rate=(1, 1), store=0)


# --------------------------------------------------------------------------- tenants' shares


def test_the_factories_are_shared_by_tenant_then_among_a_tenants_jobs():
    # 1 state a cycle, no store. Tenant a has three jobs of 10 rotations, b one: per
    # tenant, a and b get 0.5 each, a's jobs 1/6 each. b's 10 states take 20 cycles
    # (10 waiting); by then each of a's jobs drew 20/6, then a has the whole 1/3 each:
    # 20/3 more take 20 cycles, to 40 (30 waiting). (Per job, b would have had 0.25.)
    fp = footprint(5, rotations(10))
    jobs = [job(f"a{i}", fp) for i in range(3)] + [job("b", fp, tenant="b")]
    out = run(ONE_A_CYCLE, "fair-share", *jobs, a=1.0, b=1.0)
    assert out["b"].end_cycle == pytest.approx(20)
    assert out["b"].wait_cycles["factory"] == pytest.approx(10)
    for i in range(3):
        assert out[f"a{i}"].end_cycle == pytest.approx(40)
        assert out[f"a{i}"].wait_cycles["factory"] == pytest.approx(30)


def test_a_tenants_share_of_the_factories_follows_its_quota_weight():
    # the same jobs, a's weight 3 and b's 1: a gets 0.75 (0.25 a job), b 0.25; every job
    # draws 0.25 a cycle, so all four end at 40
    fp = footprint(5, rotations(10))
    jobs = [job(f"a{i}", fp) for i in range(3)] + [job("b", fp, tenant="b")]
    out = run(ONE_A_CYCLE, "fair-share", *jobs, a=3.0, b=1.0)
    assert [r.end_cycle for r in out.values()] == [pytest.approx(40)] * 4


def test_one_tenants_many_jobs_no_longer_slow_anothers_single_job():
    # five of alice's jobs beside carol's one, one state a cycle: per job carol's 10
    # states came at 1/6 (60 cycles); by tenant at 1/2 (20 cycles)
    fp = footprint(5, rotations(10))
    jobs = [job(f"alice{i}", fp, tenant="alice") for i in range(5)]
    out = run(ONE_A_CYCLE, "fair-share", *jobs, job("carol", fp, tenant="carol"))
    assert out["carol"].end_cycle == pytest.approx(20)


# --------------------------------------------------------------------------- shares under fidelity


def test_fidelity_divides_the_factories_by_tenant_weight_as_the_fair_rule_computed_by_hand():
    # one state a cycle, no store; weights a 1, b 3. a has two jobs of 30 rotations, b
    # two of 90, all at 0 (1 patch each, budgets 0.5: none held by them). The fair rule
    # by hand: a gets 1/4, b 3/4. A tenant's second job beside its first would get half
    # its part (a's 30 / (1/8) = 240, b's 90 / (3/8) = 240), its states no sooner than
    # queued until the first has drawn all, so it waits (no job is started only to sit
    # idle): a0 takes 30 / (1/4) = 120 cycles, b0 90 / (3/4) = 120, then a1 and b1 the
    # same to 240. By 240 a has drawn 60 states and b 180, 1:3. Per job (as the cost
    # rule or a job-level max-min would share) a would get half
    machine = MachineSpec.simple(tiles=40, factory_rate=(1, 1), store=0, logical_error_rate=1e-4)
    short, long = footprint(5, rotations(30), qubits=1), footprint(5, rotations(90), qubits=1)
    jobs = [job(f"a{i}", short, budget=0.5) for i in range(2)]
    jobs += [job(f"b{i}", long, tenant="b", budget=0.5) for i in range(2)]
    out = run(machine, "fidelity", *jobs, a=1.0, b=3.0)
    for first, second in (("a0", "a1"), ("b0", "b1")):
        assert (out[first].start_cycle, out[second].start_cycle) == (0.0, 120.0)
        assert out[first].end_cycle == pytest.approx(120, rel=0.02)
        assert out[second].end_cycle == pytest.approx(240, rel=0.02)
    assert out["a0"].wait_cycles["factory"] == pytest.approx(90, rel=0.02)
    assert out["b0"].wait_cycles["factory"] == pytest.approx(30, rel=0.02)


def test_a_tenant_that_comes_to_draw_waits_until_the_running_tenants_budgets_hold():
    # fidelity, one state a cycle, p_L 1e-3, weights 1:1. a (4 patches on 9 tiles, 20
    # rotations, a whole budget that leaves 0.02 for waiting) starts alone at 0 on the
    # whole rate: no other tenant draws. b of another tenant arrives at 5; from t, a
    # would get half: its 20 - t states left take 2 (20 - t) cycles, 20 - t late. b's
    # first start is weighed against a on the half a keeps with it: 1 - 0.999^(4 (20 -
    # t)) <= 0.8 x 0.02 holds from 20 - t <= 4.03: b starts at 16. From 16 each gets
    # 1/2: a's last 4 take 8 cycles (to 24, 4 idle), b draws 4 by 24, then 16 at full
    # rate: ends 40. (Started at 5, b left a 15 cycles idle: 0.058, past its budget.)
    machine = MachineSpec.simple(tiles=40, factory_rate=(1, 1), store=0, logical_error_rate=1e-3)
    a = footprint(9, rotations(20), qubits=4)
    b = footprint(3, rotations(20), qubits=1)
    out = run(
        machine,
        "fidelity",
        job("a", a, budget=whole(a, 0.02)),
        job("b", b, 5, tenant="b", budget=0.5),
    )
    assert out["b"].start_cycle == 16.0
    assert out["a"].end_cycle == pytest.approx(24)
    assert out["b"].end_cycle == pytest.approx(40)
    assert out["a"].idle_logical_error == pytest.approx(idle_error(1e-3, 4, 4))
    assert out["a"].within_budget and out["b"].within_budget


def test_a_tenant_whose_jobs_cannot_fit_beside_a_job_is_not_counted_in_its_part():
    # one state a cycle, p_L 1e-4 at d = 9 and 1e-5 at d = 11, 20 tiles. y (tenant a, 4
    # qubits on 9 tiles, 20 rotations, whole budget 0.025: own 0.0178 at d = 9, 7.3e-3
    # left for waiting) and z (tenant b, 15 tiles, 10 rotations) queued at 0. z cannot
    # fit in the 11 tiles beside y, so b draws nothing while y runs: y's part is the
    # whole rate, it is never late, and it starts at d = 9 (0 to 20), z after it (20 to
    # 30). Counting b would give y half the states (20 cycles late at d = 9: 8.0e-3,
    # past 80% of 7.3e-3) and send it to d = 11 (14 tiles, 25 cycles: z from 25 to 35)
    machine = MachineSpec.simple(
        tiles=20,
        factory_rate=(1, 1),
        store=0,
        logical_error_rate=1e-4,
        larger_distances=((11, 1e-5),),
    )
    y, z = footprint(9, rotations(20), qubits=4), footprint(15, rotations(10), qubits=2)
    out = run(machine, "fidelity", job("y", y, budget=0.025), job("z", z, tenant="b"))
    assert (out["y"].start_cycle, out["y"].end_cycle, out["y"].code_distance) == (0.0, 20.0, 9)
    assert out["y"].idle_logical_error == 0.0 and out["y"].within_budget
    assert (out["z"].start_cycle, out["z"].end_cycle) == (20.0, 30.0)


# --------------------------------------------------------------------------- budgets


def test_a_job_is_held_back_where_starting_it_would_break_a_running_jobs_budget():
    # fair-share, one state a cycle, p_L 1e-3, epochs of 1 cycle. a (4 patches, budget
    # 0.02) starts alone at 0 and wants 1 a cycle for 20 rotations. b (20 rotations of 2
    # cycles: it asks half a state a cycle) arriving at 5 would take half: a's 20 - t
    # states left at t would take 2 (20 - t) cycles, 20 - t of them idle; within 80% of
    # its budget, 1 - 0.999^(4 W) <= 0.016, W <= 4.03. So b waits in the queue (its
    # patches not yet alive) and is looked at again each epoch, with no arrival or end,
    # until t = 16: a's last 4 states at 1/2 end it at 24, 4 cycles idle (1 - 0.999^16 =
    # 0.0159); b gets the half it asks throughout, never late: 16 to 56. Each budget is a
    # whole error that leaves 0.02 for waiting beside the job's own (its tiles' patches
    # through its run).
    machine = MachineSpec.simple(tiles=40, factory_rate=(1, 1), store=0, logical_error_rate=1e-3)
    a = footprint(9, rotations(20), qubits=4)
    b = footprint(3, Step(kind="rotation", cycles=2, t_states=1, repeat=20, routed=True), qubits=1)
    out = run(
        machine,
        "fair-share",
        job("a", a, budget=whole(a, 0.02)),
        job("b", b, 5, budget=whole(b, 0.02)),
    )
    assert out["a"].end_cycle == pytest.approx(24)
    assert out["a"].idle_logical_error == pytest.approx(idle_error(1e-3, 4, 4))
    assert (out["b"].start_cycle, out["b"].end_cycle) == (16.0, pytest.approx(56))
    assert out["b"].wait_cycles["queue"] == 11
    assert out["b"].idle_logical_error == 0.0
    assert out["a"].within_budget and out["b"].within_budget
    # without budgets the two share from 5: a ends at 35, 15 cycles idle
    blind = run(machine, "fair-share", job("a", a), job("b", b, 5))
    assert blind["a"].end_cycle == pytest.approx(35)
    assert blind["a"].idle_logical_error == pytest.approx(idle_error(1e-3, 4, 15))


def test_a_budget_no_schedule_can_meet_is_refused_naming_the_job():
    # half a state a cycle, p_L 1e-3: 10 rotations alone take 20 cycles, 10 of them
    # waiting: 1 - 0.999^10 = 0.00996 of idle error, past a budget that leaves 0.005
    # beside its own error
    machine = MachineSpec.simple(tiles=20, factory_rate=(1, 2), store=0, logical_error_rate=1e-3)
    fp = footprint(5, rotations(10), qubits=1)
    alone = run_alone(machine, job("j", fp))
    assert alone.idle_logical_error == pytest.approx(idle_error(1e-3, 1, 10))
    live = LiveMachine(machine, "fidelity")
    with pytest.raises(MachineError) as refused:
        live.check(job("tight", fp, budget=whole(fp, 0.005)))
    assert refused.value.code == "QK505" and "tight" in refused.value.message
    assert refused.value.details["error_budget"] == whole(fp, 0.005)
    live.check(job("loose", fp, budget=whole(fp, 0.01)))  # within: accepted
    with pytest.raises(MachineError) as whole_run:
        simulate(machine, [job("tight", fp, budget=whole(fp, 0.005))], ["fidelity"])
    assert whole_run.value.code == "QK505"


def test_a_job_whose_syndrome_bits_the_decoder_cannot_keep_up_with_is_refused_naming_it():
    # 9 data tiles of 10 bits a cycle on a decoder of 50: alone it goes at 50/90 of its
    # speed, so its 100 cycles take 180, 80 of them idle: 1 - 0.999^(2 * 80) = 0.148
    machine = MachineSpec.simple(
        tiles=20, decoder_bits_per_cycle=50, tile_bits_per_cycle=10, logical_error_rate=1e-3
    )
    fp = footprint(10, Step(kind="idle", cycles=100))
    alone = run_alone(machine, job("j", fp))
    assert alone.wait_cycles["decoder"] == pytest.approx(80)
    with pytest.raises(MachineError) as refused:
        LiveMachine(machine, "fidelity").check(job("wide", fp, budget=whole(fp, 0.01)))
    assert refused.value.code == "QK505" and "wide" in refused.value.message
    assert "decoder" in refused.value.message and "T states" not in refused.value.message


def test_a_policy_that_refuses_a_job_leaves_the_others_run():
    # a job wider than its tenant's region under partition: that policy refuses it
    # (coded), fair-share runs the workload
    machine = MachineSpec.simple(tiles=20)
    wide = footprint(15, Step(kind="idle", cycles=5))
    jobs = [job("wide", wide), job("b", footprint(3, Step(kind="idle", cycles=5)), tenant="b")]
    runs = simulate(machine, jobs, ["partition", "fair-share"], tenants={"a": 1.0, "b": 1.0})
    refused = runs["partition"]
    assert isinstance(refused, Refused) and refused.error.code == "QK501"
    assert refused.to_json()["refused"]["code"] == "QK501"
    assert not isinstance(runs["fair-share"], Refused) and len(runs["fair-share"].records) == 2


# ------------------------------------------------------------ no start only to sit idle


@pytest.mark.parametrize("name", ["fidelity", "fair-share", "backfill"])
def test_a_job_that_could_only_sit_idle_stays_queued_for_the_same_makespan(name):
    # one state a cycle, no store, p_L 1e-3, loose budgets (0.5). j0 and j1 (20
    # rotations, 1 a cycle each, 2 patches) arrive at 0. Started beside j0, j1 would get
    # half: both end at 40, 20 cycles idle each (1 - 0.999^40 = 0.039 each). Queued, j1
    # waits for the 20 cycles j0 draws the whole rate, then runs alone: its states come
    # no sooner (20 + 20 = 40 either way), so it stays queued. Same makespan, no idle
    # error (before the rule: 0.039 on each job)
    fp = footprint(5, rotations(20))
    machine = MachineSpec.simple(tiles=40, factory_rate=(1, 1), store=0, logical_error_rate=1e-3)
    out = run(machine, name, job("j0", fp, budget=0.5), job("j1", fp, budget=0.5))
    assert (out["j0"].start_cycle, out["j0"].end_cycle) == (0.0, pytest.approx(20))
    assert (out["j1"].start_cycle, out["j1"].end_cycle) == (20.0, pytest.approx(40))
    assert out["j1"].wait_cycles["queue"] == 20
    assert out["j0"].idle_logical_error == out["j1"].idle_logical_error == 0.0
    # a job without a budget puts no price on its idle cycles: it starts beside j0
    blind = run(machine, name, job("j0", fp), job("j1", fp))
    assert [blind[n].end_cycle for n in ("j0", "j1")] == pytest.approx([40, 40])
    assert blind["j1"].idle_logical_error == pytest.approx(idle_error(1e-3, 2, 20))


@pytest.mark.parametrize("name", ["fidelity", "fair-share", "backfill"])
def test_a_job_whose_states_come_sooner_started_than_queued_starts_idle_cycles_and_all(name):
    # one state a cycle, no store. j0 asks half a state a cycle (20 rotations of 2
    # cycles: to 40); j1 (20 rotations of 1) gets the other half started beside it: its
    # states are in by 40, 20 cycles idle. Queued, j1 waits for j0's states to end at 40,
    # then runs to 60: started now it ends 20 cycles sooner, so it starts.
    half = footprint(5, Step(kind="rotation", cycles=2, t_states=1, repeat=20, routed=True))
    fp = footprint(5, rotations(20))
    machine = MachineSpec.simple(tiles=40, factory_rate=(1, 1), store=0, logical_error_rate=1e-3)
    out = run(machine, name, job("j0", half, budget=0.5), job("j1", fp, budget=0.5))
    assert (out["j1"].start_cycle, out["j1"].end_cycle) == (0.0, pytest.approx(40))
    assert out["j1"].wait_cycles["factory"] == pytest.approx(20)
    assert out["j0"].end_cycle == pytest.approx(40)
    assert out["j0"].idle_logical_error == 0.0


def test_a_tenants_later_t_jobs_wait_behind_one_its_budget_holds_back_a_clifford_job_does_not():
    # fidelity, one state a cycle, no store, budgets 0.5, all of tenant a at 0 in this
    # order. j0 (20 rotations, 1 a cycle) starts and draws the whole rate to 20. A (the
    # same) could only sit idle beside it (as above): its budget holds it back. B (10
    # rotations of 2 cycles: half a state a cycle) would not be late beside j0, but it
    # arrived after A: it waits its turn (before, it started at 0, took half the rate,
    # and A started at 30). At 20 A starts, then B beside it: B gets the half it asks
    # (20 to 40, never late), A the other half to 40 (10 states), its last 10 at the
    # whole rate to 50: 10 cycles idle. C draws no T state (10 idle cycles): it takes
    # nothing A waits for and backfills at 0.
    machine = MachineSpec.simple(tiles=40, factory_rate=(1, 1), store=0, logical_error_rate=1e-3)
    half = footprint(5, Step(kind="rotation", cycles=2, t_states=1, repeat=10, routed=True))
    jobs = [
        job("j0", footprint(5, rotations(20)), budget=0.5),
        job("A", footprint(5, rotations(20)), budget=0.5),
        job("B", half, budget=0.5),
        job("C", footprint(5, Step(kind="idle", cycles=10)), budget=0.5),
    ]
    out = run(machine, "fidelity", *jobs)
    assert (out["j0"].start_cycle, out["j0"].end_cycle) == (0.0, pytest.approx(20))
    assert (out["A"].start_cycle, out["A"].end_cycle) == (20.0, pytest.approx(50))
    assert out["A"].idle_logical_error == pytest.approx(idle_error(1e-3, 2, 10))
    assert (out["B"].start_cycle, out["B"].end_cycle) == (20.0, pytest.approx(40))
    assert (out["C"].start_cycle, out["C"].end_cycle) == (0.0, 10.0)


# --------------------------------------------------------------------------- a bounded hold


def test_a_tenant_past_its_bound_moves_its_latest_job_to_storage_at_its_fence():
    # 20 tiles, storage 10, epochs of 10. a's two 8-tile jobs start at 0 (nobody else
    # waits): 16 tiles. b's 8-tile job arrives at 5 and does not fit; a holds 16, past its
    # bound of 10 (half of 20 between two tenants), so a1, a's latest, moves to storage
    # at its fence (50; 1 cycle to move: its tiles free at 51). b starts at the boundary
    # 60 and ends at 160; a1 comes back when 8 tiles are free: at 100 a0 ends (100 is
    # a boundary), a1 resumes there (1 cycle from storage) and ends 100 + 1 + 50 = 151.
    machine = MachineSpec.simple(tiles=20, storage_tiles=10, epoch_cycles=10)
    fp = footprint(
        8, Step(kind="idle", cycles=50), Step(kind="fence", cycles=0), Step(kind="idle", cycles=50)
    )
    jobs = [
        job("a0", fp),
        job("a1", fp),
        job("b", footprint(8, Step(kind="idle", cycles=100)), 5, tenant="b"),
    ]
    out = run(machine, "fair-share", *jobs, a=1.0, b=1.0)
    assert out["a0"].end_cycle == 100 and out["a0"].preemptions == 0
    assert out["a1"].preemptions == 1
    assert (out["b"].start_cycle, out["b"].end_cycle) == (60, 160)
    assert out["a1"].end_cycle == 151
    assert out["a1"].wait_cycles["preempted"] == pytest.approx(51)
    # without storage nothing can move: b waits for a0's end (at the boundary 100)
    plain = run(MachineSpec.simple(tiles=20, epoch_cycles=10), "fair-share", *jobs, a=1.0, b=1.0)
    assert plain["b"].start_cycle == 100 and plain["a1"].preemptions == 0


def test_a_tenant_holding_tiles_starts_no_job_past_its_bound_while_another_waits():
    # 20 tiles: a runs a0 (8 tiles, 0-100). At 10 a1 (8) and b's job (14, which does not
    # fit beside a0) wait. a holds 8: a1 would take it to 16, past its bound of 10, while
    # b waits, so a1 waits too; at 100 b (the least share) starts, and a1 (14 + 8 > 20)
    # when b ends, at 200
    machine = MachineSpec.simple(tiles=20, epoch_cycles=10)
    long = Step(kind="idle", cycles=100)
    jobs = [
        job("a0", footprint(8, long)),
        job("a1", footprint(8, long), 10),
        job("b", footprint(14, long), 10, tenant="b"),
    ]
    out = run(machine, "fair-share", *jobs, a=1.0, b=1.0)
    assert out["b"].start_cycle == 100 and out["a1"].start_cycle == 200


# --------------------------------------------------------------------------- the bus


def test_neighbours_on_one_bus_segment_share_it_and_wait_for_routing():
    # a store that never runs dry (1,000 states), a bus of 2 states a cycle in 2 segments
    # (1 each) over 40 tiles: j0 (tiles 0-9) and j1 (10-19) sit beside segment 0 and
    # share its state a cycle: 10 rotations each take 20 cycles, 10 of them routing
    # waits. j2 (tiles 20-29) has segment 1 to itself: 10 cycles
    machine = MachineSpec.simple(tiles=40, factory_rate=(1, 1), store=1000, lanes=2, segments=2)
    fp = footprint(10, rotations(10))
    out = run(machine, "fair-share", job("j0", fp), job("j1", fp), job("j2", fp))
    for name in ("j0", "j1"):
        assert out[name].end_cycle == pytest.approx(20)
        assert out[name].wait_cycles["routing"] == pytest.approx(10)
        assert out[name].wait_cycles["factory"] == 0
    assert out["j2"].end_cycle == pytest.approx(10) and out["j2"].wait_cycles["routing"] == 0


def test_a_job_whose_waits_are_on_the_routing_bus_is_refused_naming_the_bus_and_its_lanes():
    # a store that never runs dry and one bus lane: 2 T states a cycle for 10 cycles come
    # at 1 a cycle, so alone it takes 20 cycles, 10 of them routing waits (no factory
    # wait): 1 - 0.999^10 = 0.00996 of idle error, past 0.005. Faster factories would
    # change nothing; more lanes would
    machine = MachineSpec.simple(
        tiles=20, factory_rate=(1, 1), store=1000, lanes=1, logical_error_rate=1e-3
    )
    fp = footprint(5, Step(kind="rotation", cycles=1, t_states=2, repeat=10, routed=True), qubits=1)
    alone = run_alone(machine, job("j", fp))
    assert alone.wait_cycles["routing"] == pytest.approx(10)
    assert alone.wait_cycles["factory"] == 0
    with pytest.raises(MachineError) as refused:
        LiveMachine(machine, "fidelity").check(job("bused", fp, budget=whole(fp, 0.005)))
    error = refused.value
    assert error.code == "QK505" and error.details["binds"] == "routing"
    assert "routing bus" in error.message and "routing_lanes" in error.message
    assert "10 of its cycles alone wait on routing" in error.message
    assert "factories" not in error.message and "T states come slower" not in error.message
    more_lanes = MachineSpec.simple(
        tiles=20, factory_rate=(1, 1), store=1000, lanes=2, logical_error_rate=1e-3
    )
    LiveMachine(more_lanes, "fidelity").check(job("bused", fp, budget=whole(fp, 0.005)))


def test_a_job_whose_waits_are_on_the_factories_is_refused_naming_the_factories():
    machine = MachineSpec.simple(tiles=20, factory_rate=(1, 2), store=0, logical_error_rate=1e-3)
    fp = footprint(5, rotations(10), qubits=1)
    with pytest.raises(MachineError) as refused:
        LiveMachine(machine, "fidelity").check(job("slow", fp, budget=whole(fp, 0.005)))
    assert refused.value.details["binds"] == "factory"
    assert "faster factories ([machine.factory]" in refused.value.message


# --------------------------------------------------------------------------- whole error


def test_a_record_states_its_distance_block_own_error_added_error_and_their_total():
    # p_L 1e-3, one state a cycle, weights 1:1. a (4 logical qubits on 9 tiles, 20
    # rotations of 1 cycle) from 0; b (1 on 3 tiles, 20) of another tenant from 5. a's
    # own run is 20 cycles of its 9 patches (data and routing, as the estimator counts
    # a layout): 1 - 0.999^(9 x 20); it idles 15 (its 4 qubits: 1 - 0.999^60) waiting
    # for its half of the states; its total is either failing, 1 - 0.999^240. b draws
    # 15 at 1/2 by 35 and 5 more by 40: 15 idle, its total 1 - 0.999^(3 x 20 + 15)
    machine = MachineSpec.simple(tiles=40, factory_rate=(1, 1), store=0, logical_error_rate=1e-3)
    a = footprint(9, rotations(20), qubits=4)
    b = footprint(3, rotations(20), qubits=1)
    out = run(machine, "fidelity", job("a", a), job("b", b, 5, tenant="b"))
    ra, rb = out["a"], out["b"]
    assert (ra.code_distance, ra.block) == (a.code_distance, a.block)
    assert ra.own_logical_error == pytest.approx(idle_error(1e-3, 9, 20))
    assert ra.idle_logical_error == pytest.approx(idle_error(1e-3, 4, 15))
    assert ra.total_logical_error == pytest.approx(1 - 0.999**240)
    assert rb.own_logical_error == pytest.approx(idle_error(1e-3, 3, 20))
    assert rb.total_logical_error == pytest.approx(1 - 0.999**75)
    shown = ra.to_json()
    assert shown["own_logical_error"] == ra.own_logical_error
    assert shown["added_logical_error"] == ra.idle_logical_error
    assert shown["total_logical_error"] == ra.total_logical_error
    assert (shown["code_distance"], shown["block"]) == (a.code_distance, a.block)


def test_a_job_its_budget_holds_back_at_the_machines_distance_starts_at_a_larger_one():
    # one state a cycle, p_L 1e-4 at d = 9 and 1e-5 at d = 11, epochs of 1 cycle. x (1
    # patch, no budget) draws 40 rotations from 0; y (4 qubits on 8 data tiles and 1 of
    # routing, 20 rotations, whole budget 0.025) arrives at 5. At d = 9 its own error
    # is 1 - (1 - 1e-4)^(9 x 20) = 0.0178, leaving (0.025 - 0.0178) / (1 - 0.0178) =
    # 7.3e-3 for waiting; beside x it would get half the states (max-min): 20 cycles
    # late, 1 - (1 - 1e-4)^80 = 8.0e-3, past 80% of that. At d = 11 its patches take
    # 121/81 of a tile each: 12 data tiles and 2 of routing (350 tile-cycles against
    # 180: tried second); its 20 rotations of 11/9 cycle take 25 (5 of 2 cycles, 15 of
    # 1), at 1e-5 x 9/11 a machine cycle: own 1 - (1 - 8.2e-6)^(9 x 25) = 1.8e-3,
    # leaving 0.0232; projected 15 cycles late, 1 - (1 - 8.2e-6)^60 = 4.9e-4, within.
    # So it starts at 5 at d = 11: its first 5 rotations want 1/2 a cycle (no wait, to
    # 15), its last 15 get half the states (30 cycles, to 45, 15 idle); x draws 20 by
    # 45 and its last 15 at full rate, ending at 60
    machine = MachineSpec.simple(
        tiles=40,
        factory_rate=(1, 1),
        store=0,
        logical_error_rate=1e-4,
        larger_distances=((11, 1e-5),),
    )
    x, y = footprint(2, rotations(40), qubits=1), footprint(9, rotations(20), qubits=4)
    out = run(machine, "fidelity", job("x", x), job("y", y, 5, budget=0.025))
    ry = out["y"]
    assert (ry.start_cycle, ry.code_distance, ry.tiles) == (5.0, 11, 14)
    assert ry.end_cycle == pytest.approx(45)
    p = 1e-5 * 9 / 11
    assert ry.idle_logical_error == pytest.approx(idle_error(p, 4, 15))
    # (its patches fail through its 20 x 11/9 machine cycles of rounds, not the 25 its
    # steps are rounded up to: placement.exact_cycles)
    assert ry.own_logical_error == pytest.approx(idle_error(p, 9, 20 * 11 / 9))
    assert ry.within_budget
    assert out["x"].end_cycle == pytest.approx(60) and out["x"].code_distance == 9
    # where the machine offers no larger distance, its budget holds y in the queue
    # until its projection leaves it late 40 - t cycles at most 80% of 7.3e-3 allows:
    # 1 - (1 - 1e-4)^(4 (40 - t)) <= 5.87e-3, 40 - t <= 14.7: t = 26. Started then, its
    # states would be in at 60 (14 cycles late), as they are queued until x has drawn
    # all at 40: it would only sit idle, so it waits to 40 and runs to 60 (idle error 0
    # where it was 1 - (1 - 1e-4)^56 before that rule)
    fixed = run(
        machine.with_(larger_distances=()), "fidelity", job("x", x), job("y", y, 5, budget=0.025)
    )
    assert (fixed["y"].start_cycle, fixed["y"].code_distance) == (40.0, 9)
    assert fixed["y"].end_cycle == pytest.approx(60)
    assert fixed["y"].idle_logical_error == 0.0
    assert fixed["y"].within_budget


# --------------------------------------------------------------------------- aging


def test_a_job_waits_until_it_has_aged_as_much_as_its_tenants_capped_jobs():
    # One state a cycle. a0 and a1 (10 rotations, 1 a cycle) start at 0 and share it, 0.5
    # each: projected at 0.5 their response ratio is (t + (10 - t/2) * 2) / 10 = 2. a2
    # (10 rotations of 2 cycles: it asks 0.5) arrives at 2; at 0.5 it would not be
    # stretched, so its ratio is (t - 2 + 20) / 20, below 2 until a0 and a1 end at 20
    # (highest response ratio next): it runs alone from 20 to 40. Started at 2 beside them
    # (processor sharing, as fair-share does), all three get 1/3: a0 and a1 end at 29, a2
    # at 31. The largest slowdown, 2.9, becomes 2.0 (a0, a1) and 1.9 (a2).
    fp = footprint(5, rotations(10))
    half = footprint(5, Step(kind="rotation", cycles=2, t_states=1, repeat=10, routed=True))
    jobs = (job("a0", fp), job("a1", fp), job("a2", half, 2))
    out = run(ONE_A_CYCLE, "fidelity", *jobs)
    assert out["a2"].start_cycle == pytest.approx(20)
    assert [out[n].end_cycle for n in ("a0", "a1", "a2")] == pytest.approx([20, 20, 40])
    shared = run(ONE_A_CYCLE, "fair-share", *jobs)
    assert [shared[n].end_cycle for n in ("a0", "a1", "a2")] == pytest.approx([29, 29, 31])
    assert shared["a2"].start_cycle == pytest.approx(2)


def test_a_job_starts_at_once_where_no_job_of_its_tenant_is_held_below_its_want():
    # a0 alone draws the one state a cycle it wants: nobody is capped, so a1, arriving
    # as a0 ends, starts when it comes and ends 10 cycles later
    fp = footprint(5, rotations(10))
    out = run(ONE_A_CYCLE, "fidelity", job("a0", fp), job("a1", fp, 10))
    assert out["a1"].start_cycle == pytest.approx(10)
    assert out["a1"].end_cycle == pytest.approx(20)
