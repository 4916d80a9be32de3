"""The kernel operates the shared machine: every job is scheduled in machine time before
its worker computes its outcomes (qmk.kernel.running.shared_machine, docs/machine.md).

A real in-process kernel with real workers, on a machine clock the test drives
(:class:`~qmk.kernel.manual_clock.ManualMachineClock`), so every arrival's cycle is fixed and a
job ends in machine time exactly when the test moves the clock: no sleep races it.

The machine: one module, one factory copy of 1 T state a cycle and no store, epochs of 10
cycles. The program: 2 H cycles, 20 T cycles (a T state each), 1 H cycle and a
measurement cycle: 24 cycles alone, asking 1 state a cycle while it rotates.

- ``exclusive``: alice's job runs 0-24, bob's starts at the next boundary (30) and ends
  at 54: bob waits 30 in the queue, nobody for the factory; makespan 54.
- ``fair-share``: both start at 0 and share the factory, half a state a cycle each, so
  their 20 T cycles take 40: both end at 44, each after 20 cycles of ``factory`` waits;
  makespan 44.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

from qmk.errors import AdmissionError, QMKError
from qmk.execution.logical import LogicalTarget
from qmk.execution.request import RunRequest, program_digest
from qmk.kernel.config import config_from_dict
from qmk.kernel.manual_clock import ManualMachineClock
from qmk.qvm.asm import assemble
from qmk.qvm.graph import compact_text
from support.kernel import KEYS, run_kernel, wait_state
from support.machine import footprint

T_HEAVY = assemble(
    ".caps CAP_ALLOC\na: ALLOC_LQ vq:q\nh: APPLY_H vq:q\n"
    + "\n".join(f"t{i}: APPLY_{'T' if i % 2 else 'TDG'} vq:q" for i in range(20))
    + "\nh2: APPLY_H vq:q\nm: MEASURE_Z vq:q, out:m"
)


def config(policy: str, **machine: Any) -> Any:
    return config_from_dict(
        {
            "machine": {
                "physical_qubits": 200_000,
                "epoch_cycles": 10,
                "policy": policy,
                "factory": {"copies": 1, "states_per_run": 1, "duration_cycles": 1, "store": 0},
                **machine,
            },
            "kernel": {"worker_memory_mb": 1024},
            "tenants": {
                "alice": {"key": KEYS["alice"], "caps": ["CAP_ALLOC"], "max_queued_jobs": 3},
                "bob": {"key": KEYS["bob"], "caps": ["CAP_ALLOC"]},
            },
        }
    )


async def login(kernel: Any, tenant: str) -> str:
    reply = await kernel.q_negotiate_caps(tenant=tenant, key=KEYS[tenant], requested=["CAP_ALLOC"])
    return str(reply.session_id)


def local_counts(shots: int, seed: int) -> dict[str, int]:
    """The program run in process on a private machine, noise off."""
    target = LogicalTarget()
    program = target.read(T_HEAVY)
    request = RunRequest.build(
        program_digest=program_digest(compact_text(T_HEAVY.to_json())),
        shots=shots,
        seed=seed,
        noise=False,
    )
    return dict(target.compile(program, request).run(shots, seed).counts)


def two_tenants(tmp_path, policy: str) -> dict[str, Any]:
    clock = ManualMachineClock()

    async def body(kernel):
        sessions = {t: await login(kernel, t) for t in ("alice", "bob")}
        jobs = {}
        for seed, tenant in enumerate(("alice", "bob"), start=5):
            accepted = await kernel.q_submit(
                session_id=sessions[tenant],
                graph=T_HEAVY.to_json(),
                shots=200,
                seed=seed,
                policy={"noise": False},
            )
            jobs[tenant] = accepted.job_id
        for _ in range(20):  # the loop turns: nothing ends until machine time passes
            await asyncio.sleep(0)
        waiting = {
            t: (await kernel.q_status(session_id=sessions[t], job_id=j)).state
            for t, j in jobs.items()
        }
        clock.advance(1000)
        out: dict[str, Any] = {"waiting": waiting}
        for tenant, job_id in jobs.items():
            done = await kernel.q_wait(
                session_id=sessions[tenant], job_id=job_id, timeout_ms=120_000
            )
            telemetry = await kernel.q_get_telemetry(session_id=sessions[tenant], job_id=job_id)
            out[tenant] = {"job": done, "telemetry": telemetry}
        return out

    return run_kernel(tmp_path, body, config=config(policy), machine_clock=clock)


def test_jobs_wait_for_their_schedule_and_the_shared_factory_shows_in_their_telemetry(tmp_path):
    out = two_tenants(tmp_path, "fair-share")
    assert out["waiting"] == {"alice": "QUEUED", "bob": "QUEUED"}
    for tenant, seed in (("alice", 5), ("bob", 6)):
        job, telemetry = out[tenant]["job"], out[tenant]["telemetry"]
        assert job.state == "COMPLETED"
        machine = telemetry.machine
        assert (machine["arrival_cycle"], machine["start_cycle"], machine["end_cycle"]) == (
            0,
            0,
            44,
        )
        assert machine["wait_cycles"]["factory"] == 20 and machine["wait_cycles"]["queue"] == 0
        assert machine["tiles"] == 6 and machine["module"] == 0
        assert telemetry.telemetry["machine"] == machine  # the worker's, from its request
        assert job.machine == machine
        assert job.result["counts"] == local_counts(200, seed)  # noise off: as alone


def test_the_same_arrivals_under_exclusive_and_fair_share_give_the_same_counts_not_makespans(
    tmp_path,
):
    shared = two_tenants(tmp_path / "shared", "fair-share")
    alone = two_tenants(tmp_path / "alone", "exclusive")

    def makespan(out):
        machines = [out[t]["telemetry"].machine for t in ("alice", "bob")]
        return max(m["end_cycle"] for m in machines) - min(m["arrival_cycle"] for m in machines)

    for tenant in ("alice", "bob"):
        counts = shared[tenant]["job"].result["counts"]
        assert counts == alone[tenant]["job"].result["counts"]
    assert (makespan(alone), makespan(shared)) == (54, 44)
    bob = alone["bob"]["telemetry"].machine
    assert (bob["start_cycle"], bob["wait_cycles"]["queue"], bob["wait_cycles"]["factory"]) == (
        30,
        30,
        0,
    )


def test_a_job_cancelled_while_it_waits_for_the_machine_leaves_it_and_frees_its_queue_room(
    tmp_path,
):
    clock = ManualMachineClock()

    async def body(kernel):
        sid = await login(kernel, "alice")
        # the exclusive machine holds the first; the others wait in machine time
        jobs = [
            (
                await kernel.q_submit(session_id=sid, graph=T_HEAVY.to_json(), shots=10, seed=i)
            ).job_id
            for i in range(3)
        ]
        with pytest.raises(QMKError) as full:  # max_queued_jobs counts the machine's
            await kernel.q_submit(session_id=sid, graph=T_HEAVY.to_json(), shots=10, seed=9)
        cancelled = await kernel.q_cancel(session_id=sid, job_id=jobs[2])
        more = await kernel.q_submit(session_id=sid, graph=T_HEAVY.to_json(), shots=10, seed=9)
        clock.advance(10_000)
        for job_id in (*jobs[:2], more.job_id):
            await wait_state(kernel, sid, job_id, "COMPLETED")
        return full.value.code, cancelled.state

    code, state = run_kernel(
        tmp_path, body, config=config("exclusive"), machine_clock=clock, workers=1
    )
    assert (code, state) == ("QS1006", "CANCELLED")


def test_a_job_cancelled_after_it_started_in_machine_time_frees_its_tiles_at_that_cycle(
    tmp_path,
):
    # exclusive: alice's job starts at 0 (24 cycles), bob's waits. alice cancels at cycle
    # 12: her tiles are free at 12, and bob starts at the next boundary, 20, and ends at
    # 44 (were her job kept to its schedule, bob would start at 30 and end at 54)
    clock = ManualMachineClock()

    async def body(kernel):
        sessions = {t: await login(kernel, t) for t in ("alice", "bob")}
        jobs = {
            tenant: (
                await kernel.q_submit(
                    session_id=sessions[tenant],
                    graph=T_HEAVY.to_json(),
                    shots=20,
                    seed=1,
                    policy={"noise": False},
                )
            ).job_id
            for tenant in ("alice", "bob")
        }
        clock.advance(12)
        for _ in range(20):  # the machine's task decides up to the clock (alice started)
            await asyncio.sleep(0)
        cancelled = await kernel.q_cancel(session_id=sessions["alice"], job_id=jobs["alice"])
        clock.advance(1000)
        done = await kernel.q_wait(session_id=sessions["bob"], job_id=jobs["bob"])
        return cancelled.state, done

    state, done = run_kernel(tmp_path, body, config=config("exclusive"), machine_clock=clock)
    assert state == "CANCELLED" and done.state == "COMPLETED"
    machine = done.machine
    assert (machine["start_cycle"], machine["end_cycle"]) == (20, 44)
    assert machine["wait_cycles"]["queue"] == 20


WAITER = assemble(
    ".caps CAP_ALLOC\na: ALLOC_LQ vq:q\n"
    + "\n".join(f"t{i}: APPLY_T vq:q" for i in range(10))
    + "\nm: MEASURE_Z vq:q, out:m"
)


def test_a_jobs_waits_are_idle_noise_in_its_result_and_audit_replay_reproduces_its_counts(
    tmp_path,
):
    # a factory of one state per 100 cycles and no store: the job's 10 T cycles take
    # about 1,000, so its qubit idles ~990 cycles at the d=3 code's 3e-4 a cycle, and
    # flips with 2/3 of 1 - (1 - 3e-4)^990 (0.17); alone it would flip with ~0.002
    from scipy import stats

    from qmk.qec import logical_model
    from support.cli import qmk

    profile, qubit = "logical:surface_code(d=3)", "qubit_gate_ns_e3"
    clock = ManualMachineClock()
    shots = 4000

    async def body(kernel):
        sid = await login(kernel, "alice")
        job = await kernel.q_submit(session_id=sid, graph=WAITER.to_json(), shots=shots, seed=3)
        clock.advance(100_000)
        done = await kernel.q_wait(session_id=sid, job_id=job.job_id, timeout_ms=120_000)
        return done

    machine = {
        "profile": profile,
        "factory": {"copies": 1, "states_per_run": 1, "duration_cycles": 100, "store": 0},
        "error_budget": 1.0,  # the idle error it is meant to suffer (0.26) is its own
    }
    done = run_kernel(tmp_path, body, config=config("fair-share", **machine), machine_clock=clock)
    assert done.state == "COMPLETED", done.error
    waited = done.machine["wait_cycles"]["factory"]
    assert 980 <= waited <= 1000
    model = logical_model(profile, qubit)
    rates = model.pauli_error(waited)
    ops = [model.pauli_error(model.op_cycles(op)) for op in ("ALLOC_LQ", "MEASURE_Z")]
    ops += [model.pauli_error(model.op_cycles("APPLY_T"))] * 10
    product = 1.0
    for r in (rates, *ops):
        product *= 1 - 2 * (r.px + r.py)
    flips = done.result["counts"].get("1", 0)
    assert stats.binomtest(flips, shots, (1 - product) / 2).pvalue > 1e-3
    code, out, err = qmk("audit", "replay", str(tmp_path / "data"), done.job_id, "--json")
    assert code == 0, err
    assert json.loads(out)["same"] is True


def test_a_job_waiting_on_the_machine_when_the_kernel_stops_arrives_again_after_its_restart(
    tmp_path,
):
    first, second = ManualMachineClock(), ManualMachineClock()

    async def submit(kernel):
        sid = await login(kernel, "alice")
        job = await kernel.q_submit(
            session_id=sid, graph=T_HEAVY.to_json(), shots=50, seed=4, policy={"noise": False}
        )
        return job.job_id

    async def finish(kernel):
        sid = await login(kernel, "alice")
        assert (await kernel.q_status(session_id=sid, job_id=job_id)).state == "QUEUED"
        second.advance(1000)
        return await kernel.q_wait(session_id=sid, job_id=job_id, timeout_ms=120_000)

    job_id = run_kernel(tmp_path, submit, config=config("fair-share"), machine_clock=first)
    done = run_kernel(tmp_path, finish, config=config("fair-share"), machine_clock=second)
    assert done.state == "COMPLETED"
    # alone on the restarted machine: 24 cycles, no wait
    assert (done.machine["arrival_cycle"], done.machine["end_cycle"]) == (0, 24)
    assert done.result["counts"] == local_counts(50, 4)


DECODER_PROGRAM = """OPENQASM 2.0;
include "qelib1.inc";
qreg q[1];
creg c[1];
h q[0];
t q[0];
t q[0];
t q[0];
t q[0];
h q[0];
measure q -> c;
"""


def test_the_old_faults_decoder_key_is_the_machines_one_decoder_in_serve_and_simulate(
    tmp_path,
):
    # [faults] decoder_capacity_bits_per_s = 1e8 is the machine's decoder: 1e8 x 3.6 us =
    # 360 syndrome bits a cycle, less than the job's one data tile sends (720), so the
    # machine throttles it, in a kernel and in qmk machine simulate of the same config
    # alike (the same lattice-surgery footprint at cycle 0: the same schedule), and the
    # fault policy throttles nothing of its own (the old kernel charged its own throttle
    # and none of the machine's)
    from qmk.frontends import read_program
    from qmk.kernel.config import config_warnings, load_config
    from support.cli import qmk

    toml = tmp_path / "kernel.toml"
    toml.write_text(
        "[machine]\nphysical_qubits = 200000\nepoch_cycles = 10\n"
        "[machine.factory]\ncopies = 1\nstates_per_run = 1\nduration_cycles = 1\nstore = 0\n"
        "[faults]\ndecoder_capacity_bits_per_s = 1e8\n"
        f'[tenants.alice]\nkey = "{KEYS["alice"]}"\ncaps = ["CAP_ALLOC"]\n'
    )
    program = tmp_path / "prog.qasm"
    program.write_text(DECODER_PROGRAM)
    workload = tmp_path / "w.yaml"
    workload.write_text(
        "machine: kernel.toml\ntenants:\n  - name: alice\n"
        "    jobs:\n      - {program: prog.qasm, arrival_cycle: 0}\n"
    )
    cfg = load_config(toml)
    assert [w["code"] for w in config_warnings(cfg)] == ["QK402", "QK504"]
    clock = ManualMachineClock()

    async def body(kernel):
        assert kernel.supervisor.machine.spec.decoder_bits_per_cycle == pytest.approx(360)
        sid = await login(kernel, "alice")
        job = await kernel.q_submit(
            session_id=sid,
            graph=read_program(str(program)).to_json(),
            shots=50,
            seed=2,
            policy={"noise": False},
            target="lattice-surgery",
        )
        clock.advance(1000)
        done = await kernel.q_wait(session_id=sid, job_id=job.job_id, timeout_ms=120_000)
        telemetry = await kernel.q_get_telemetry(session_id=sid, job_id=job.job_id)
        return done, telemetry

    done, telemetry = run_kernel(tmp_path, body, config=cfg, machine_clock=clock)
    assert done.state == "COMPLETED", done.error
    assert not [f for f in telemetry.faults if f.get("kind") == "decoder"]
    code, out, err = qmk("machine", "simulate", str(workload), "--policy", "fair-share", "--json")
    assert code == 0, err
    assert "QK504 deprecated-decoder-key" in err
    (simulated,) = json.loads(out)["fair-share"]["jobs"]
    assert done.machine == simulated["machine"]
    assert done.machine["wait_cycles"]["decoder"] > 0
    # the run took the span the machine gave it: its telemetry's cycles are the
    # machine's (they were the private schedule's, 7 where the machine said 20)
    machine = done.machine
    run = telemetry.telemetry
    assert run["logical_cycles"] == machine["end_cycle"] - machine["start_cycle"]
    assert run["factory_wait_cycles"] == machine["wait_cycles"]["factory"]
    assert run["private_logical_cycles"] < run["logical_cycles"]


@pytest.mark.parametrize(
    ("qubits", "t_gates", "tiles", "least"),
    [
        # 8 patches fit 5,000 physical qubits (the kernel counted them alone before the
        # machine); their fast block (25 tiles) does not fit its 24 job tiles
        (8, False, 25, 5_022),
        # 6 patches' block (20 tiles) fits, but their T gates need a factory, of 9,680
        # qubits: factory_share 0.25 rounds to none below 38,720 qubits, and a module
        # gets one copy where it takes at most half of it, from 19,360 qubits on (51 job
        # tiles beside it); before, no module under 38,720 had one
        (6, True, 20, 19_360),
    ],
)
def test_a_job_the_floorplan_cannot_hold_is_refused_at_submit_naming_the_qubits_that_would(
    tmp_path, qubits: int, t_gates: bool, tiles: int, least: int
):
    program = _chain(qubits, t_gates=t_gates)
    submit = _submit(program)
    refused, listed = run_kernel(tmp_path / "small", submit, config=_kernel_of(5000))
    assert isinstance(refused, AdmissionError) and refused.rpc_code == 1007
    assert refused.details["code"] == "QK501" and listed == []  # nothing of it stored
    assert (refused.details["needed"], refused.details["total"]) == (least, 5000)
    assert f"raise [machine] physical_qubits from 5,000 to {least:,}," in refused.message
    done, _ = run_kernel(tmp_path / "enough", submit, config=_kernel_of(least))
    assert done.state == "COMPLETED" and done.machine["tiles"] == tiles


@pytest.mark.parametrize("t_gates", [False, True])
def test_a_job_past_the_machines_physical_qubits_is_refused_once_naming_the_floorplans_least(
    tmp_path, t_gates: bool
):
    """Admission counted a job's patches alone (7 x 162 = 1,134 physical qubits on a
    machine of 1,000): a user who raised the machine to 1,134 was then refused by the
    floorplan, which names more (the block's tiles, a factory). Now the first refusal
    is the floorplan's (QK501) and names the number at which the job runs."""
    program = _chain(7, t_gates=t_gates)
    refused, listed = run_kernel(tmp_path / "small", _submit(program), config=_kernel_of(1000))
    assert isinstance(refused, AdmissionError) and refused.rpc_code == 1007
    assert refused.details["code"] == "QK501" and listed == []
    least = refused.details["needed"]
    assert least > 1_134 and refused.details["total"] == 1000
    assert "needs 1134 physical qubits at its peak; the machine has 1000" in refused.message
    assert f"raise [machine] physical_qubits from 1,000 to {least:,}," in refused.message
    done, _ = run_kernel(tmp_path / "enough", _submit(program), config=_kernel_of(least))
    assert done.state == "COMPLETED", done


def _chain(qubits: int, *, t_gates: bool) -> Any:
    names = [f"q{i}" for i in range(qubits)]
    lines = [".caps CAP_ALLOC", f"a: ALLOC_LQ {', '.join('vq:' + q for q in names)}"]
    lines += [f"h{i}: APPLY_{'T' if t_gates else 'H'} vq:{q}" for i, q in enumerate(names)]
    lines += [f"c{i}: APPLY_CNOT vq:q{i}, vq:q{i + 1}" for i in range(qubits - 1)]
    lines += [f"m{i}: MEASURE_Z vq:{q}, out:m{i}" for i, q in enumerate(names)]
    return assemble("\n".join(lines)).to_json()


def _kernel_of(physical_qubits: int) -> Any:
    return config_from_dict(
        {
            "machine": {"physical_qubits": physical_qubits},
            "tenants": {"alice": {"key": KEYS["alice"], "caps": ["CAP_ALLOC"]}},
        }
    )


def _submit(program: Any) -> Any:
    async def submit(kernel):
        sid = await login(kernel, "alice")
        try:
            job = await kernel.q_submit(session_id=sid, graph=program, shots=20, seed=3)
        except QMKError as exc:
            listed = await kernel.q_list_jobs(session_id=sid)
            return exc, listed.jobs
        done = await kernel.q_wait(session_id=sid, job_id=job.job_id, timeout_ms=120_000)
        return done, None

    return submit


def _kernel_job(job_id: str, fp: Any) -> Any:
    """A kernel's job of footprint ``fp``, as admission leaves it (no worker behind it)."""
    from qmk.execution.request import Policy
    from qmk.kernel.records.jobs import Job

    request = RunRequest(program_digest="ab" * 32, shots=10, seed=1, policy=Policy())
    job = Job(
        job_id=job_id,
        tenant="alice",
        graph="",
        request=request,
        caps=(),
        required_caps=(),
        physical_qubits=100,
        qubits={"alice": 2},
    )
    job.footprint = fp
    return job


def test_an_arrival_brings_the_machine_to_its_cycle_first_releasing_the_jobs_ended_before():
    # the machine's task has not run since j0 arrived at 0 (boundary 0, 4 cycles: it
    # ended at 4 in machine time); j1 arrives at 500. It brings the machine up to 500
    # first, as the task would on waking: j0 is released then, with its schedule, and
    # j1 finds the machine idle
    from qmk.execution.footprint import Step
    from qmk.kernel.running.shared_machine import SharedMachine

    fp = footprint(9, Step(kind="gates", cycles=4))
    clock = ManualMachineClock()
    released: list[tuple[str, int, int]] = []
    shared = SharedMachine(
        config("fair-share"),
        lambda job, run: released.append((job.job_id, run.start_cycle, run.end_cycle)),
        clock=clock,
    )
    j0, j1 = _kernel_job("j0", fp), _kernel_job("j1", fp)
    shared.check(j0)
    assert shared.offer(j0)
    clock.advance(500)
    assert released == [] and shared.holds("alice") == 1
    shared.check(j1)
    assert shared.offer(j1)
    assert released == [("j0", 0, 4)] and shared.holds("alice") == 1
    assert shared.live.sched.knows("j1") and not shared.live.sched.knows("j0")


def _machine_of(clock: Any, released: list[tuple[str, int, int]]) -> Any:
    """A fair-share shared machine on ``clock`` that notes each release in ``released``."""
    from qmk.kernel.running.shared_machine import SharedMachine

    def release(job: Any, run: Any) -> None:
        released.append((job.job_id, run.start_cycle, run.end_cycle))

    return SharedMachine(config("fair-share"), release, clock=clock)


def test_a_job_withdrawn_and_admitted_again_before_its_cancel_passes_gets_a_fresh_machine_id():
    # j0 leaves at cycle 0 (its cancel an event at 0) and comes back at 0 (restored): its
    # id is still on the machine, so it arrives as j0.1, starts at boundary 0 and is
    # released under its own id; j1, a job never withdrawn, keeps its id
    from qmk.execution.footprint import Step

    fp = footprint(9, Step(kind="gates", cycles=4))
    clock = ManualMachineClock()
    released: list[tuple[str, int, int]] = []
    shared = _machine_of(clock, released)
    j0, j1 = _kernel_job("j0", fp), _kernel_job("j1", fp)
    shared.check(j0)
    assert shared.offer(j0)
    assert shared.withdraw("j0") and not shared.withdraw("j0")
    assert shared.offer(j0) and shared.live.knows("j0.1")
    clock.advance(500)
    shared.check(j1)
    assert shared.offer(j1) and shared.live.knows("j1")
    assert released == [("j0", 0, 4)] and shared.holds("alice") == 1


def test_the_withdrawn_ids_kept_are_bounded_and_one_off_the_machine_arrives_under_its_id(
    monkeypatch,
):
    # with room for 2 withdrawn ids, the third withdrawal drops those whose cancel has
    # passed (the kernel runs for months): j0, withdrawn at 0 and off the machine by
    # cycle 10, arrives again as j0 (boundary 10, 4 cycles)
    from qmk.execution.footprint import Step
    from qmk.kernel.running import shared_machine

    monkeypatch.setattr(shared_machine, "GONE_KEPT", 2)
    fp = footprint(9, Step(kind="gates", cycles=4))
    clock = ManualMachineClock()
    released: list[tuple[str, int, int]] = []
    shared = _machine_of(clock, released)
    jobs = [_kernel_job(f"j{i}", fp) for i in range(3)]
    for job in jobs[:2]:
        assert shared.offer(job) and shared.withdraw(job.job_id)
    clock.advance(10)
    assert shared.offer(jobs[2]) and shared.withdraw("j2")
    assert shared._gone == {"j2"}
    assert shared.offer(jobs[0]) and shared.live.knows("j0")
    clock.advance(500)
    shared.turn()
    assert released == [("j0", 10, 14)] and shared.holds("alice") == 0


def test_a_footprint_that_passed_the_check_is_checked_again_for_another_budget():
    # the check's pass is kept for the footprint, the tenant and the budget it read: a job
    # of the same footprint with a budget no schedule can meet is still refused (QK505),
    # and one with the first budget passes again
    from msgspec.structs import replace

    from qmk.execution.footprint import Step
    from qmk.execution.request import Policy

    fp = footprint(9, Step(kind="gates", cycles=4))
    shared = _machine_of(ManualMachineClock(), [])
    first, tight, again = (_kernel_job(f"j{i}", fp) for i in range(3))
    tight.request = replace(tight.request, policy=Policy(error_budget=1e-300))
    shared.check(first)
    with pytest.raises(AdmissionError) as refused:
        shared.check(tight)
    assert refused.value.code == "QK505"
    shared.check(again)
    assert shared.offer(again) and shared.live.knows("j2")


def test_offer_refuses_a_job_the_machine_does_not_take():
    from qmk.execution.footprint import Step

    shared = _machine_of(ManualMachineClock(), [])
    job = _kernel_job("j0", footprint(9, Step(kind="gates", cycles=4)))
    job.footprint = None
    assert not shared.takes(job) and not shared.offer(job)
    assert not shared.live.knows("j0")


def test_a_budget_no_schedule_can_meet_is_refused_at_submit_and_set_policy_names_one(tmp_path):
    # a factory of one state per 100 cycles and no store: the program's 20 T cycles take
    # ~2,000 alone, its patch idling ~1,980 at d=9's 3e-7: ~5.9e-4 of idle error, ten
    # times less a step of two of distance the kernel may place it at; its 20 T states
    # alone, at the factories' output error, give it more than 1e-7 of its own. A budget
    # of 1e-7 (the submit's policy, or the program's SET_POLICY) is refused before
    # anything is stored, QS1007 with QK505 naming its own error; the machine's default
    # (0.01) admits it, and its record says so
    clock = ManualMachineClock()
    graph = T_HEAVY.to_json()
    hinted = json.loads(json.dumps(graph))
    hinted["program"]["nodes"].insert(
        0, {"id": "hints", "op": "SET_POLICY", "args": {"error_budget": 1e-7}}
    )

    async def body(kernel):
        sid = await login(kernel, "alice")
        refused = []
        for given, policy in ((graph, {"error_budget": 1e-7}), (hinted, None)):
            with pytest.raises(AdmissionError) as caught:
                await kernel.q_submit(session_id=sid, graph=given, shots=10, seed=1, policy=policy)
            refused.append(caught.value)
        job = await kernel.q_submit(session_id=sid, graph=graph, shots=10, seed=1)
        clock.advance(100_000)
        done = await kernel.q_wait(session_id=sid, job_id=job.job_id, timeout_ms=120_000)
        listed = await kernel.q_list_jobs(session_id=sid)
        return refused, done, listed

    machine = {"factory": {"copies": 1, "states_per_run": 1, "duration_cycles": 100, "store": 0}}
    refused, done, listed = run_kernel(
        tmp_path, body, config=config("fidelity", **machine), machine_clock=clock
    )
    for error in refused:
        assert error.details["code"] == "QK505" and error.details["error_budget"] == 1e-7
        assert error.details["binds"] == "memory"
    record = done.machine
    assert done.state == "COMPLETED"
    assert record["error_budget"] == 0.01 and record["within_budget"] is True
    assert 1e-4 < record["idle_logical_error"] < 0.01
    assert len(listed.jobs) == 1  # the refused submits stored nothing


def _layers(qubits: int, layers: int) -> Any:
    """A Clifford program with no fence: ``layers`` of H on every qubit and CNOTs on
    pairs, then every qubit measured."""
    lines = [".caps CAP_ALLOC", "a: ALLOC_LQ " + ", ".join(f"vq:q{i}" for i in range(qubits))]
    for layer in range(layers):
        lines += [f"h{layer}_{i}: APPLY_H vq:q{i}" for i in range(qubits)]
        lines += [f"c{layer}_{i}: APPLY_CNOT vq:q{i}, vq:q{i + 1}" for i in range(0, qubits - 1, 2)]
    lines += [f"m{i}: MEASURE_Z vq:q{i}, out:m{i}" for i in range(qubits)]
    return assemble("\n".join(lines))


BELL_PAIR = assemble(
    ".caps CAP_ALLOC\na: ALLOC_LQ vq:a, vq:b\nh: APPLY_H vq:a\nc: APPLY_CNOT vq:a, vq:b\n"
    "ma: MEASURE_Z vq:a, out:ma\nmb: MEASURE_Z vq:b, out:mb"
)


def _two_tenants_machine(fence_cycles: int, storage_tiles: int, **more: Any) -> Any:
    """A module of 16,000 physical qubits, epochs of 10 cycles, the default policy (unless
    ``more`` says), and alice's and bob's equal shares. Budgets are 0.1: a whole error,
    and a 16-qubit program of 500 layers is 0.0134 of its own (45 tiles through about
    1,000 cycles at d = 9), which no larger distance's tiles leave room for here."""
    machine = {
        "physical_qubits": 16_000,
        "storage_tiles": storage_tiles,
        "epoch_cycles": 10,
        "fence_cycles": fence_cycles,
        "error_budget": 0.1,
        **more,
    }
    return config_from_dict(
        {
            "machine": machine,
            "kernel": {"worker_memory_mb": 1024},
            "tenants": {t: {"key": KEYS[t], "caps": ["CAP_ALLOC"]} for t in ("alice", "bob")},
        }
    )


def behind_a_fenceless_job(
    tmp_path,
    fence_cycles: int,
    *,
    bob_at: int = 0,
    priority: int = 0,
    bell_of: str = "bob",
    **machine: Any,
) -> dict[str, Any]:
    """alice's fence-less program of 16 qubits (45 tiles, 32 of data, about 1,000 cycles)
    arriving at cycle 0 and a Bell pair (9 tiles, ``priority``) of ``bell_of`` arriving at
    ``bob_at`` on a module of 50 job tiles and 40 storage tiles (``machine``: more
    [machine] keys): their machine records, ``alice`` the long job's, ``bob`` the Bell
    pair's (whoever submits it)."""
    clock = ManualMachineClock()
    conf = _two_tenants_machine(fence_cycles, 40, **machine)

    async def body(kernel):
        sessions = {t: await login(kernel, t) for t in ("alice", "bob")}
        jobs = {}
        for role, tenant, program in (
            ("alice", "alice", _layers(16, 500)),
            ("bob", bell_of, BELL_PAIR),
        ):
            if role == "bob" and bob_at:
                clock.advance(bob_at)
                for _ in range(20):  # the machine's task decides up to the clock
                    await asyncio.sleep(0)
            accepted = await kernel.q_submit(
                session_id=sessions[tenant],
                graph=program.to_json(),
                shots=100,
                seed=3,
                policy={"noise": False, "priority": priority if role == "bob" else 0},
            )
            jobs[role] = (tenant, accepted.job_id)
        clock.advance(100_000)
        out = {}
        for role, (tenant, job_id) in jobs.items():
            done = await kernel.q_wait(
                session_id=sessions[tenant], job_id=job_id, timeout_ms=120_000
            )
            assert done.state == "COMPLETED", done.error
            status = await kernel.q_status(session_id=sessions[tenant], job_id=job_id)
            assert status.machine == done.machine  # q_status shows the same record
            out[role] = done.machine
        return out

    return run_kernel(tmp_path, body, config=conf, machine_clock=clock)


def test_a_fenceless_job_is_preempted_at_the_fences_the_kernel_adds_and_its_record_says_so(
    tmp_path,
):
    # alice's job fills the floorplan but for 5 tiles; bob's 9 do not fit. With fences
    # every 100 cycles, alice's job stops at its first (cycle 100), moves to storage (1
    # cycle), and bob starts at the next boundary, 110 (ends 114). Alice's job comes back
    # at 120 (1 cycle out of storage): 21 cycles preempted, one stop. Without them (a
    # bound past its run) bob waits for her end.
    fenced = behind_a_fenceless_job(tmp_path / "fenced", 100)
    alice, bob = fenced["alice"], fenced["bob"]
    assert (alice["tiles"], bob["tiles"]) == (45, 9)
    assert (bob["arrival_cycle"], bob["start_cycle"], bob["end_cycle"]) == (0, 110, 114)
    assert bob["start_cycle"] < alice["end_cycle"]
    assert alice["preemptions"] == 1 and alice["wait_cycles"]["preempted"] == 21
    assert bob["preemptions"] == 0 and bob["wait_cycles"]["preempted"] == 0
    whole = behind_a_fenceless_job(tmp_path / "whole", 10**9)
    assert whole["alice"]["preemptions"] == 0 and whole["alice"]["wait_cycles"]["preempted"] == 0
    assert whole["bob"]["start_cycle"] >= whole["alice"]["end_cycle"]
    assert alice["end_cycle"] == whole["alice"]["end_cycle"] + 21


def test_a_long_job_the_machine_could_never_move_out_is_refused_past_its_tenants_share(
    tmp_path,
):
    # no storage: 88 job tiles, 44 a tenant's share. alice's 16 qubits (45 tiles, about
    # 1,000 cycles) would hold bob out for their whole run, past fence_cycles (100):
    # refused at submit, nothing stored. 14 qubits (41 tiles) stay within her share, and
    # a bound past the run (2,000 cycles) takes the 16 too.
    async def body(kernel):
        sid = await login(kernel, "alice")
        out = []
        for qubits in (16, 14):
            try:
                job = await kernel.q_submit(
                    session_id=sid, graph=_layers(qubits, 500).to_json(), shots=10, seed=1
                )
            except AdmissionError as exc:
                out.append(exc)
            else:
                out.append(job.job_id)
        listed = await kernel.q_list_jobs(session_id=sid)
        return out, listed.jobs

    (refused, accepted), listed = run_kernel(
        tmp_path / "short", body, config=_two_tenants_machine(100, 0)
    )
    assert isinstance(refused, AdmissionError) and refused.details["code"] == "QK501"
    assert "would hold 45 tiles" in refused.message
    assert "give [machine] storage_tiles at least 32" in refused.message
    assert isinstance(accepted, str) and [j.job_id for j in listed] == [accepted]
    (long_bound, _), _ = run_kernel(tmp_path / "long", body, config=_two_tenants_machine(2_000, 0))
    assert isinstance(long_bound, str)


@pytest.mark.parametrize("policy", ["fidelity", "fair-share", "priority"])
def test_a_job_arriving_behind_a_running_fenceless_one_starts_after_its_next_added_fence(
    tmp_path, policy: str
):
    # bob's Bell pair arrives at cycle 333, alice's job running since 0. It is asked to
    # stop at its next fence (400; under priority, for bob's priority 5, 5 above hers and
    # past preempt_gap 3), leaves for storage at 401, and bob starts at the boundary
    # after, 410: within fence_cycles + epoch_cycles + the move of his arrival. She is
    # back at 420 (21 cycles preempted) and ends 21 cycles late.
    out = behind_a_fenceless_job(tmp_path, 100, bob_at=333, priority=5, policy=policy)
    alice, bob = out["alice"], out["bob"]
    assert (bob["arrival_cycle"], bob["start_cycle"], bob["end_cycle"]) == (333, 410, 414)
    assert bob["start_cycle"] - bob["arrival_cycle"] <= 100 + 10 + 1
    assert alice["preemptions"] == 1 and alice["wait_cycles"]["preempted"] == 21
    assert alice["end_cycle"] == 1023


@pytest.mark.parametrize("policy", ["fidelity", "fair-share"])
def test_a_tenants_urgent_job_preempts_its_own_fenceless_job_at_its_next_fence(
    tmp_path, policy: str
):
    # alice's own Bell pair, priority 5 (past preempt_gap 3 above her running job's 0),
    # arrives at cycle 333. The kernel's rule for a tenant's priorities is the machine's,
    # at its epoch boundaries: her long job is asked at the boundary of 340 to stop at its
    # next fence (400), leaves for storage at 401, and the Bell pair starts at the
    # boundary after, 410, and ends at 414. The long job is back at 420 (1 cycle out of
    # storage): one stop, 21 cycles preempted, in its record; it ends at 1,023, 21 late.
    out = behind_a_fenceless_job(
        tmp_path / "urgent", 100, bob_at=333, priority=5, bell_of="alice", policy=policy
    )
    long, bell = out["alice"], out["bob"]
    assert (bell["arrival_cycle"], bell["start_cycle"], bell["end_cycle"]) == (333, 410, 414)
    assert long["preemptions"] == 1 and long["wait_cycles"]["preempted"] == 21
    assert long["end_cycle"] == 1023
    assert bell["preemptions"] == 0 and bell["wait_cycles"]["queue"] == 77
    # 2 above hers, within preempt_gap: it waits for her end (1,002, the next boundary 1,010)
    calm = behind_a_fenceless_job(
        tmp_path / "calm", 100, bob_at=333, priority=2, bell_of="alice", policy=policy
    )
    assert calm["alice"]["preemptions"] == 0 and calm["alice"]["end_cycle"] == 1002
    assert calm["bob"]["start_cycle"] == 1010
