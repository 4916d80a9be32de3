"""Failure handling: each fault of the ``[faults]`` table is injected into a real
in-process kernel (real workers, SQLite, a ManualClock for the epochs), the job still
completes, its counts agree with exact theory (binomial bounds at stated seeds), and
telemetry and the audit log say what the kernel did."""

from __future__ import annotations

import gc
import json
import math
from pathlib import Path
from typing import Any

from qmk.abi import replies
from qmk.devices.purification import purify
from qmk.execution.request import RunRequest, program_digest
from qmk.kernel.admit.adjusted import adjust
from qmk.kernel.admit.faults import FaultPolicies, device_for
from qmk.kernel.config import KernelConfig, config_from_dict
from qmk.kernel.manual_clock import ManualClock
from qmk.kernel.records.jobs import Job, parse_policy
from qmk.kernel.security.replay import find_attestation, replay
from qmk.kernel.service import Kernel
from qmk.qec.logical import Calibration, logical_model
from qmk.qec.noise import parse_noise_model
from support.kernel import BELL, FENCED, KEYS, WorkerGate, login, run_kernel, wait_state

#: Binomial bounds: |k - n p| within this many standard deviations (a false alarm is
#: below 1e-6 per check).
SIGMAS = 5.0


def config(faults: dict[str, Any], **machine: Any) -> KernelConfig:
    return config_from_dict(
        {
            "machine": {"physical_qubits": 2_000_000, **machine},
            "kernel": {"worker_memory_mb": 1024},
            "faults": faults,
            "tenants": {
                "alice": {
                    "key": KEYS["alice"],
                    "caps": ["CAP_ALLOC", "CAP_LINK"],
                    "operator": True,
                },
                "bob": {"key": KEYS["bob"], "caps": ["CAP_ALLOC", "CAP_LINK"]},
            },
        }
    )


def assert_binomial(count: int, shots: int, p: float) -> None:
    sigma = math.sqrt(shots * p * (1 - p))
    assert abs(count - shots * p) <= SIGMAS * sigma + 1, (count, shots * p, sigma)


def odd(flips: list[float]) -> float:
    """P(an odd number of independent flips with these probabilities)."""
    product = 1.0
    for q in flips:
        product *= 1 - 2 * q
    return (1 - product) / 2


def measured(n: int = 1) -> dict[str, Any]:
    """|0> measured in Z ``n`` times in a row (events m0, m1, ...)."""
    nodes: list[dict[str, Any]] = [{"id": "a", "op": "ALLOC_LQ", "args": {"n": 1}, "vqs": ["q"]}]
    nodes += [
        {"id": f"m{i}", "op": "MEASURE_Z", "vqs": ["q"], "produces": [f"m{i}"]} for i in range(n)
    ]
    nodes.append({"id": "f", "op": "FREE_LQ", "vqs": ["q"]})
    return {
        "version": "0.2",
        "program": {"nodes": nodes},
        "resources": {"vqs": ["q"], "chs": [], "events": [f"m{i}" for i in range(n)]},
        "caps": ["CAP_ALLOC"],
    }


def ones(counts: dict[str, int], column: int) -> int:
    return sum(v for k, v in counts.items() if k[column] == "1")


def audit_lines(tmp_path: Path, event: str) -> list[dict[str, Any]]:
    lines = (tmp_path / "data" / "audit.log").read_text().splitlines()
    return [r for r in map(json.loads, lines) if r["event"] == event]


# --------------------------------------------------------------------------- drift


def test_drift_raises_the_distance_until_the_logical_error_is_back_and_stats_match(
    tmp_path: Path,
) -> None:
    clock = ManualClock()
    profile, noise = "logical:surface_code(d=3)", "depolarizing(p=0.002)"
    cfg = config({"drift_per_epoch": 0.25}, profile=profile, noise_model=noise, error_budget=1.0)
    shots, seed = 200_000, 11

    # theory: the smallest d = 3, 5, ... whose drifted P_L is within the undrifted one
    target = logical_model(profile, noise=parse_noise_model(noise)).logical_error_per_cycle
    drifted_noise = parse_noise_model(f"{noise} + drift(factor=2.5)")
    distance = 3
    while (
        logical_model(
            f"logical:surface_code(d={distance})", noise=drifted_noise
        ).logical_error_per_cycle
        > target
    ):
        distance += 2
    assert distance == 9  # 3 steps of +2 at this factor
    rate = logical_model(
        f"logical:surface_code(d={distance})", noise=drifted_noise
    ).logical_error_per_cycle

    async def body(kernel: Kernel) -> replies.Telemetry:
        alice = await login(kernel, "alice")
        await clock.tick(6)  # drift factor 1 + 0.25 * 6 = 2.5
        job = await kernel.q_submit(session_id=alice, graph=measured(), shots=shots, seed=seed)
        done = await kernel.q_wait(session_id=alice, job_id=job.job_id)
        assert done.state == "COMPLETED"
        return await kernel.q_get_telemetry(session_id=alice, job_id=job.job_id)

    telemetry = run_kernel(tmp_path, body, config=cfg, clock=clock)
    run = telemetry.telemetry
    assert run["profiles"] == [f"logical:surface_code(d={distance})"]
    assert run["noise_model"] == f"{noise} + drift(factor=2.5)"
    action, tighten = telemetry.faults
    assert action["kind"] == "drift" and action["action"] == "raise-distance"
    assert tighten["action"] == "tighten-fences" and tighten["fences_added"] == 0  # 2 cycles
    assert (action["from_distance"], action["to_distance"]) == (3, distance)
    assert action["restored"] and action["logical_error_per_cycle"]["adjusted"] == rate
    # |0>: the alloc's cycle and the measurement's cycle each flip it with 2 P_L / 3
    counts = _counts(tmp_path, telemetry)
    assert_binomial(counts.get("1", 0), shots, odd([2 * rate / 3] * 2))
    assert [a["kind"] for a in audit_lines(tmp_path, "fault")] == ["drift", "drift"]


def _counts(tmp_path: Path, telemetry: Any) -> dict[str, int]:
    from qmk.kernel.storage.store import Store

    store = Store(tmp_path / "data")
    try:
        job = store.load_job(telemetry.job_id, "alice")
    finally:
        store.close()
    assert job is not None and job.result is not None
    return dict(job.result["counts"])


def test_a_drift_adjusted_job_replays_from_its_attestation(tmp_path: Path) -> None:
    clock = ManualClock()
    cfg = config(
        {"drift_per_epoch": 0.5},
        profile="logical:surface_code(d=3)",
        noise_model="depolarizing(p=0.002)",
    )

    async def body(kernel: Kernel) -> str:
        alice = await login(kernel, "alice")
        await clock.tick(2)
        job = await kernel.q_submit(session_id=alice, graph=measured(2), shots=2000, seed=3)
        assert (await kernel.q_wait(session_id=alice, job_id=job.job_id)).state == ("COMPLETED")
        return str(job.job_id)

    job_id = run_kernel(tmp_path, body, config=cfg, clock=clock)
    record = find_attestation(tmp_path / "data", job_id)
    assert record is not None and "drift(factor=2.0)" in record["noise_model"]
    assert replay(json.dumps(measured(2), separators=(",", ":")), record, job_id).same


def test_a_job_accepted_before_drift_set_in_starts_with_the_drift_of_its_start(
    tmp_path: Path,
) -> None:
    # accepting a job asks the policies for its run (the result cache's look-up); its
    # start, epochs later under drift, asks them again instead of reusing that answer
    clock = ManualClock()
    profile, noise = "logical:surface_code(d=3)", "depolarizing(p=0.002)"
    cfg = config(
        {"drift_per_epoch": 0.25, "drift_start_epoch": 1}, profile=profile, noise_model=noise
    )

    async def body(kernel: Kernel, gate: WorkerGate) -> replies.Telemetry:
        alice = await login(kernel, "alice")
        first = await kernel.q_submit(session_id=alice, graph=measured(), shots=10, seed=1)
        await wait_state(kernel, alice, first.job_id, "RUNNING")  # held at the gate
        job = await kernel.q_submit(session_id=alice, graph=measured(), shots=10, seed=2)
        await wait_state(kernel, alice, job.job_id, "QUEUED")  # behind the first
        await clock.tick(7)  # drift factor 1 + 0.25 * 6 = 2.5
        gate.release(2)
        done = await kernel.q_wait(session_id=alice, job_id=job.job_id)
        assert done.state == "COMPLETED", done.error
        return await kernel.q_get_telemetry(session_id=alice, job_id=job.job_id)

    with WorkerGate(tmp_path) as gate:
        telemetry = run_kernel(
            tmp_path, lambda k: body(k, gate), workers=1, config=cfg, gate=gate, clock=clock
        )
    assert telemetry.telemetry["noise_model"] == f"{noise} + drift(factor=2.5)"
    (start,) = telemetry.device["starts"]
    assert start["epoch"] == 7 and start["faults"][0]["kind"] == "drift"


# --------------------------------------------------------------------------- calibration


def test_calibration_ingest_changes_the_logical_error_of_later_jobs_and_is_audited(
    tmp_path: Path,
) -> None:
    profile, noise = "logical:surface_code(d=3)", "depolarizing(p=0.002)"
    cfg = config({}, profile=profile, noise_model=noise)
    fitted = Calibration(
        family="surface_code", crossing_prefactor=0.1, error_correction_threshold=0.01
    )
    shots = 100_000

    async def body(kernel: Kernel) -> list[dict[str, Any]]:
        from qmk.errors import CapabilityError

        alice, bob = await login(kernel, "alice"), await login(kernel, "bob")
        try:
            await kernel.q_calibrate(session_id=bob, calibration=fitted.to_json())
        except CapabilityError as exc:
            assert exc.details["missing"] == ["operator"]
        else:
            raise AssertionError("bob is no operator")
        out = []
        for step in ("before", "after"):
            if step == "after":
                device = await kernel.q_calibrate(session_id=alice, calibration=fitted.to_json())
                assert device.calibrations_ingested == 1
                assert device.inventory["calibration"]["crossing_prefactor"] == 0.1
            job = await kernel.q_submit(session_id=alice, graph=measured(), shots=shots, seed=5)
            done = await kernel.q_wait(session_id=alice, job_id=job.job_id)
            telemetry = await kernel.q_get_telemetry(session_id=alice, job_id=job.job_id)
            out.append({"counts": done.result["counts"], "telemetry": telemetry})
        return out

    before, after = run_kernel(tmp_path, body, config=cfg)
    noise_model = parse_noise_model(noise)
    for found, cal in ((before, None), (after, fitted)):
        rate = logical_model(profile, noise=noise_model, calibration=cal).logical_error_per_cycle
        (start,) = found["telemetry"].device["starts"]
        assert start["logical_error_per_cycle"] == {profile: rate}
        assert_binomial(found["counts"].get("1", 0), shots, odd([2 * rate / 3] * 2))
    assert after["telemetry"].telemetry["calibration"]["crossing_prefactor"] == 0.1
    assert before["telemetry"].telemetry["calibration"] is None
    (ingest,) = [r for r in audit_lines(tmp_path, "device") if r["action"] == "calibrate"]
    assert ingest["tenant"] == "alice" and ingest["calibration"]["crossing_prefactor"] == 0.1
    decisions = [r["decision"] for r in audit_lines(tmp_path, "cap") if r["where"] == "calibrate"]
    assert decisions == ["deny", "allow"]


def test_a_job_accepted_before_a_calibration_ingest_starts_with_the_ingested_one(
    tmp_path: Path,
) -> None:
    # the policies' answer at its acceptance predates the ingest: its start asks again
    profile, noise = "logical:surface_code(d=3)", "depolarizing(p=0.002)"
    cfg = config({}, profile=profile, noise_model=noise)
    fitted = Calibration(
        family="surface_code", crossing_prefactor=0.1, error_correction_threshold=0.01
    )

    async def body(kernel: Kernel, gate: WorkerGate) -> replies.Telemetry:
        alice = await login(kernel, "alice")
        first = await kernel.q_submit(session_id=alice, graph=measured(), shots=10, seed=1)
        await wait_state(kernel, alice, first.job_id, "RUNNING")  # held at the gate
        job = await kernel.q_submit(session_id=alice, graph=measured(), shots=10, seed=2)
        await wait_state(kernel, alice, job.job_id, "QUEUED")  # behind the first
        await kernel.q_calibrate(session_id=alice, calibration=fitted.to_json())
        gate.release(2)
        done = await kernel.q_wait(session_id=alice, job_id=job.job_id)
        assert done.state == "COMPLETED", done.error
        return await kernel.q_get_telemetry(session_id=alice, job_id=job.job_id)

    with WorkerGate(tmp_path) as gate:
        telemetry = run_kernel(tmp_path, lambda k: body(k, gate), workers=1, config=cfg, gate=gate)
    rate = logical_model(
        profile, noise=parse_noise_model(noise), calibration=fitted
    ).logical_error_per_cycle
    (start,) = telemetry.device["starts"]
    assert start["logical_error_per_cycle"] == {profile: rate}
    assert telemetry.telemetry["calibration"]["crossing_prefactor"] == 0.1


# --------------------------------------------------------------------------- link


def bell_over_channel(fidelity: float = 1.0) -> dict[str, Any]:
    nodes = [
        {"id": "a", "op": "ALLOC_LQ", "args": {"n": 2}, "vqs": ["x", "y"]},
        {
            "id": "open",
            "op": "OPEN_CHAN",
            "args": {"opts": {"fidelity": fidelity}},
            "vqs": ["x", "y"],
            "chs": ["link"],
        },
        {"id": "mx", "op": "MEASURE_Z", "vqs": ["x"], "produces": ["mx"]},
        {"id": "my", "op": "MEASURE_Z", "vqs": ["y"], "produces": ["my"]},
        {"id": "close", "op": "CLOSE_CHAN", "chs": ["link"]},
        {"id": "f", "op": "FREE_LQ", "vqs": ["x", "y"]},
    ]
    return {
        "version": "0.2",
        "program": {"nodes": nodes},
        "resources": {"vqs": ["x", "y"], "chs": ["link"], "events": ["mx", "my"]},
        "caps": ["CAP_ALLOC", "CAP_LINK"],
    }


def test_a_degraded_link_is_purified_and_the_bell_pair_has_the_purified_correlation(
    tmp_path: Path,
) -> None:
    clock = ManualClock()
    faults = {"link_fidelity": 0.95, "link_drop_per_epoch": 0.01, "link_target": 0.95}
    shots, seed = 200_000, 21
    cfg = config(faults)
    raw = cfg.faults.link_fidelity_at(5)  # 0.9 when the job starts
    purified = purify(raw, target=0.95, max_rounds=3)
    assert purified.reached and purified.rounds == 3

    async def body(kernel: Kernel) -> dict[str, Any]:
        alice = await login(kernel, "alice")
        await clock.tick(5)
        job = await kernel.q_submit(
            session_id=alice,
            graph=bell_over_channel(),
            shots=shots,
            seed=seed,
            policy={"noise": False},
        )
        done = await kernel.q_wait(session_id=alice, job_id=job.job_id)
        assert done.state == "COMPLETED"
        telemetry = (await kernel.q_get_telemetry(session_id=alice, job_id=job.job_id)).to_json()
        telemetry["counts"] = done.result["counts"]
        return telemetry

    telemetry = run_kernel(tmp_path, body, config=cfg, clock=clock)
    (action,) = telemetry["faults"]
    assert action["kind"] == "link" and action["action"] == "purify"
    assert action["delivered_fidelity"] == purified.fidelity
    assert action["purification"]["rounds"] == 3
    assert action["bell_pairs_consumed"] == purified.raw_pairs_per_pair * shots
    # A Werner pair of fidelity F gives unequal Z outcomes with probability 2 (1 - F) / 3
    counts = telemetry["counts"]
    unequal = counts.get("01", 0) + counts.get("10", 0)
    assert_binomial(unequal, shots, 2 * (1 - purified.fidelity) / 3)
    unpurified = 2 * (1 - raw) / 3  # and not what the raw link would give
    assert unequal < shots * unpurified - SIGMAS * math.sqrt(shots * unpurified)


def test_a_link_purification_cannot_save_fails_the_job_without_local_decomposition(
    tmp_path: Path,
) -> None:
    cfg = config({"link_fidelity": 0.5, "link_target": 0.9, "local_decomposition": False})

    async def body(kernel: Kernel) -> dict[str, Any]:
        alice = await login(kernel, "alice")
        job = await kernel.q_submit(session_id=alice, graph=bell_over_channel(), shots=10)
        done = await kernel.q_wait(session_id=alice, job_id=job.job_id)
        found = done.to_json()
        found["faults"] = (await kernel.q_get_telemetry(session_id=alice, job_id=job.job_id)).faults
        return found

    done = run_kernel(tmp_path, body, config=cfg)
    assert done["state"] == "FAILED"
    assert done["error"]["code"] == "QK304" and "'open'" in done["error"]["message"]
    assert done["faults"][0]["action"] == "fail"


def test_a_link_purification_cannot_save_gets_a_pair_made_inside_the_module(
    tmp_path: Path,
) -> None:
    """Local decomposition: the link delivers F = 0.5 (a third of the Z outcomes would
    differ, and no purification helps), so the kernel makes the pair with a logical H and
    CNOT inside the job's module: an exact pair, charged the cycles of those two gates."""
    from qmk.execution.runs import run

    cfg = config({"link_fidelity": 0.5, "link_target": 0.9})
    shots, seed = 20_000, 13

    async def body(kernel: Kernel) -> dict[str, Any]:
        alice = await login(kernel, "alice")
        job = await kernel.q_submit(
            session_id=alice,
            graph=bell_over_channel(),
            shots=shots,
            seed=seed,
            policy={"noise": False},
        )
        done = await kernel.q_wait(session_id=alice, job_id=job.job_id)
        assert done.state == "COMPLETED", done
        reply = await kernel.q_get_telemetry(session_id=alice, job_id=job.job_id)
        return {"counts": done.result["counts"], **reply.to_json()}

    found = run_kernel(tmp_path, body, config=cfg)
    (action,) = found["faults"]
    assert action["kind"] == "link" and action["action"] == "local-decomposition"
    assert action["link_fidelity"] == 0.5 and action["delivered_fidelity"] == 1.0
    assert action["logical_cycles_added"] == 2
    counts = found["counts"]
    assert set(counts) == {"00", "11"}  # the exact pair: never unequal
    assert_binomial(counts["11"], shots, 0.5)
    healthy = run(bell_over_channel(), shots=10, seed=1, noise=False).telemetry
    assert found["telemetry"]["logical_cycles"] == healthy.logical_cycles + 2


# --------------------------------------------------------------------------- decoder


def test_decoder_overload_is_the_machines_throttle_and_its_waits_are_idle_noise(
    tmp_path: Path,
) -> None:
    # [faults] decoder_capacity_bits_per_s (the machine decoder's deprecated name) at a
    # fifth of one live logical qubit's syndrome bits: the shared machine throttles the
    # job in machine time (its decoder waits), and its waits are idle noise after the
    # nodes they fell behind. The fault policy no longer throttles a job of its own (the
    # old kernel stretched each measurement and left the machine's decoder unlimited).
    profile, noise = "logical:surface_code(d=3)", "depolarizing(p=0.004)"
    model = logical_model(profile, noise=parse_noise_model(noise))
    load = logical_model(profile).decoder_bits_per_second  # one logical qubit live
    cfg = config(
        {"decoder_capacity_bits_per_s": load / 5},
        profile=profile,
        noise_model=noise,
        error_budget=1.0,  # the idle noise it is meant to show is past the default budget
    )
    shots, seed = 200_000, 31

    async def body(kernel: Kernel) -> dict[str, Any]:
        alice = await login(kernel, "alice")
        job = await kernel.q_submit(session_id=alice, graph=measured(2), shots=shots, seed=seed)
        done = await kernel.q_wait(session_id=alice, job_id=job.job_id)
        assert done.state == "COMPLETED"
        telemetry = (await kernel.q_get_telemetry(session_id=alice, job_id=job.job_id)).to_json()
        telemetry["counts"] = done.result["counts"]
        stored = kernel.store.load_job(job.job_id, "alice")
        assert stored is not None and stored.request.machine is not None
        telemetry["idle"] = dict(stored.request.machine.idle)
        return telemetry

    telemetry = run_kernel(tmp_path, body, config=cfg)
    assert telemetry["faults"] == []  # no throttle of the fault policy's own
    assert telemetry["telemetry"]["logical_cycles"] == 3  # the program is not rewritten
    assert telemetry["machine"]["wait_cycles"]["decoder"] > 0
    idle = telemetry["idle"]
    assert set(idle) <= {"a", "m0"} and idle.get("a", 0) > 0

    def flip(cycles: float) -> float:
        rates = model.pauli_error(cycles)
        return rates.px + rates.py

    q = 2 * model.logical_error_per_cycle / 3
    after_a, after_m0 = flip(idle.get("a", 0.0)), flip(idle.get("m0", 0.0))
    counts = telemetry["counts"]
    assert_binomial(ones(counts, 0), shots, odd([q, q, after_a]))  # alloc, wait, m0
    assert_binomial(ones(counts, 1), shots, odd([q, q, q, after_a, after_m0]))  # + m1


# --------------------------------------------------------------------------- module failure


def test_a_module_failure_requeues_its_job_on_a_module_that_is_up(tmp_path: Path) -> None:
    clock = ManualClock()
    cfg = config({"module_failures": [{"module": 0, "epoch": 2}]}, modules=2)
    shots, seed = 20_000, 41

    async def body(kernel: Kernel, gate: WorkerGate) -> dict[str, Any]:
        alice = await login(kernel, "alice")
        job = await kernel.q_submit(
            session_id=alice, graph=BELL, shots=shots, seed=seed, policy={"noise": False}
        )
        await wait_state(kernel, alice, job.job_id, "RUNNING")  # held at the gate
        first = await kernel.q_get_telemetry(session_id=alice, job_id=job.job_id)
        assert first.device["starts"][0]["module"] == 0
        await clock.tick(2)  # module 0 fails: the job is stopped and starts again
        await wait_state(kernel, alice, job.job_id, "RUNNING")
        resources = await kernel.q_resource_query(session_id=alice)
        gate.release(1)
        done = await kernel.q_wait(session_id=alice, job_id=job.job_id)
        assert done.state == "COMPLETED"
        telemetry = await kernel.q_get_telemetry(session_id=alice, job_id=job.job_id)
        aggregate = await kernel.q_get_telemetry(session_id=alice)
        return {
            "done": done,
            "telemetry": telemetry,
            "resources": resources,
            "aggregate": aggregate,
        }

    with WorkerGate(tmp_path) as gate:
        found = run_kernel(
            tmp_path, lambda k: body(k, gate), workers=1, config=cfg, gate=gate, clock=clock
        )
    starts = found["telemetry"].device["starts"]
    assert [s["module"] for s in starts] == [0, 0, 1]
    assert starts[1]["faults"][0] == {
        "epoch": 2,
        "kind": "module-failure",
        "action": "requeue",
        "module": 0,
    }
    assert found["telemetry"].attempts == 2
    machine = found["resources"].machine
    assert machine["physical_qubits_total"] == 1_000_000  # module 0 is down
    assert found["resources"].device["health"]["modules_down"] == [0]
    assert found["aggregate"].faults[0]["requeued"] == [found["done"].job_id]
    counts = found["done"].result["counts"]
    assert set(counts) == {"00", "11"}  # a Bell pair without noise
    assert_binomial(counts["11"], shots, 0.5)
    events = [(r.get("kind"), r.get("action")) for r in audit_lines(tmp_path, "fault")]
    assert events == [("module-failure", "requeue"), ("module-failure", "mark-down")]


def test_after_a_module_failure_admission_refuses_what_no_module_up_can_hold(
    tmp_path: Path,
) -> None:
    from qmk.errors import AdmissionError
    from support.kernel import ghz_graph

    clock = ManualClock()
    cfg = config_from_dict(
        {
            "machine": {"physical_qubits": 2000, "modules": 2},
            "faults": {"module_failures": [{"module": 0, "epoch": 1}]},
            "tenants": {"alice": {"key": KEYS["alice"], "caps": ["CAP_ALLOC"]}},
        }
    )

    async def body(kernel: Kernel) -> str:
        alice = await login(kernel, "alice", ["CAP_ALLOC"])
        await clock.tick()
        try:  # 6 logical qubits of d=9 are 972 physical qubits: module 1 holds 1000
            await kernel.q_submit(session_id=alice, graph=ghz_graph(7), shots=1)
        except AdmissionError as exc:
            return str(exc)
        raise AssertionError("admitted")

    message = run_kernel(tmp_path, body, config=cfg, clock=clock)
    assert "its largest module up has 1000" in message


# --------------------------------------------------------------------------- resume


def test_a_job_resumed_after_drift_keeps_its_checkpoints_physics_and_its_counts(
    tmp_path: Path,
) -> None:
    """The error patterns of a run are drawn from the physics it starts with, so a job
    checkpointed before the drift resumes after it with the physics of the checkpoint
    (not a raised distance and a drifted model, which its state cannot continue under)."""
    clock = ManualClock()
    profile, noise = "logical:surface_code(d=3)", "depolarizing(p=0.002)"
    cfg = config({"drift_per_epoch": 0.25}, profile=profile, noise_model=noise, error_budget=1.0)

    async def body(kernel: Kernel) -> None:
        alice = await login(kernel, "alice")
        job = await kernel.q_submit(
            session_id=alice, graph=FENCED.to_json(), shots=2000, seed=23, policy={"noise": True}
        )
        job_id = job.job_id
        await wait_state(kernel, alice, job_id, "RUNNING")  # held at its first fence
        checkpoint = await kernel.q_checkpoint(session_id=alice, job_id=job_id)
        assert checkpoint.saved is True and checkpoint.program_epoch == 1
        pause.open()
        first = await kernel.q_wait(session_id=alice, job_id=job_id, timeout_ms=60_000)
        assert first.state == "COMPLETED"
        await clock.tick(6)  # drift factor 2.5: a fresh start would raise the distance to 9
        await kernel.q_restore(
            session_id=alice, job_id=job_id, checkpoint_id=checkpoint.checkpoint_id
        )
        again = await kernel.q_wait(session_id=alice, job_id=job_id, timeout_ms=60_000)
        assert again.state == "COMPLETED", again
        assert again.result["counts"] == first.result["counts"]
        telemetry = again.result["telemetry"]
        assert telemetry["resumed_from_epoch"] == 1
        assert telemetry["noise_model"] == noise and telemetry["profiles"] == [profile]
        reply = await kernel.q_get_telemetry(session_id=alice, job_id=job_id)
        (kept,) = [a for a in reply.faults if a["kind"] == "resume"]
        assert kept["action"] == "keep-physics" and kept["program_epoch"] == 1
        assert kept["checkpoint_id"] == checkpoint.checkpoint_id
        assert {"noise_model", "profile", "rewrite"} <= set(kept["differs_now"])

    with WorkerGate(tmp_path, "pause-gate") as pause:
        run_kernel(tmp_path, body, config=cfg, clock=clock, workers=1, pause=pause)
    assert [a["kind"] for a in audit_lines(tmp_path, "fault")].count("resume") == 1


def test_drift_tightens_fences_and_the_job_saves_its_state_at_every_one(
    tmp_path: Path,
) -> None:
    """Under drift the kernel adds fences so no epoch runs more than drift_fence_cycles
    logical cycles, and the job saves its state at each; the counts are those of the same
    job without them (fences cost no cycle and draw no randomness)."""
    clock = ManualClock()
    noise = "depolarizing(p=0.002)"
    shots, seed = 4000, 29
    policy = {"engine": "statevector"}  # trajectories: a run that stops at fences

    async def body(kernel: Kernel) -> dict[str, Any]:
        alice = await login(kernel, "alice")
        await clock.tick(6)
        job = await kernel.q_submit(
            session_id=alice, graph=measured(6), shots=shots, seed=seed, policy=policy
        )
        done = await kernel.q_wait(session_id=alice, job_id=job.job_id, timeout_ms=60_000)
        assert done.state == "COMPLETED", done
        reply = await kernel.q_get_telemetry(session_id=alice, job_id=job.job_id)
        return {"counts": done.result["counts"], **reply.to_json()}

    tight = run_kernel(
        tmp_path / "tight",
        body,
        config=config({"drift_per_epoch": 0.25, "drift_fence_cycles": 2}, noise_model=noise),
        clock=clock,
    )
    clock = ManualClock()
    loose = run_kernel(
        tmp_path / "loose",
        body,
        config=config({"drift_per_epoch": 0.25, "drift_fence_cycles": 0}, noise_model=noise),
        clock=clock,
    )
    # a: 1 cycle, m0..m5: 1 each -> fences after m0, m2 and m4
    (tighten,) = [a for a in tight["faults"] if a["action"] == "tighten-fences"]
    assert tighten["fences_added"] == 3 and tighten["longest_epoch_cycles"] == 7
    # every shot group (one per error pattern) passes the 3 fences, 2 micro-ops apart
    groups = tight["telemetry"]["simulations"]
    assert groups >= 2 and tight["telemetry"]["checkpoints"] == 3 * groups
    saved = audit_lines(tmp_path / "tight", "checkpoint")
    assert [r["program_epoch"] for r in saved] == [1, 2, 3] * groups
    assert len(list((tmp_path / "tight" / "data" / "checkpoints").glob("*/*"))) == 3  # kept
    assert not [a for a in loose["faults"] if a["action"] == "tighten-fences"]
    assert loose["telemetry"]["checkpoints"] == 0
    assert tight["counts"] == loose["counts"]
    assert tight["telemetry"]["profiles"] == loose["telemetry"]["profiles"]


def test_a_job_on_a_failed_module_migrates_and_resumes_from_its_checkpoint(
    tmp_path: Path,
) -> None:
    from qmk.execution.runs import run

    clock = ManualClock()
    cfg = config({"module_failures": [{"module": 0, "epoch": 2}]}, modules=2)
    shots, seed = 500, 43
    expected = dict(run(FENCED, shots=shots, seed=seed, noise=False).counts)

    async def body(kernel: Kernel) -> dict[str, Any]:
        alice = await login(kernel, "alice")
        job = await kernel.q_submit(
            session_id=alice,
            graph=FENCED.to_json(),
            shots=shots,
            seed=seed,
            policy={"noise": False},
        )
        await wait_state(kernel, alice, job.job_id, "RUNNING")  # held at fence 1
        saved = await kernel.q_checkpoint(session_id=alice, job_id=job.job_id)
        assert saved.saved and saved.program_epoch == 1
        await clock.tick(2)  # module 0 fails: the job is stopped and queued again
        pause.open()
        done = await kernel.q_wait(session_id=alice, job_id=job.job_id, timeout_ms=60_000)
        assert done.state == "COMPLETED"
        telemetry = await kernel.q_get_telemetry(session_id=alice, job_id=job.job_id)
        return {"done": done, "telemetry": telemetry}

    with WorkerGate(tmp_path, "pause-gate") as pause:
        found = run_kernel(tmp_path, body, workers=1, config=cfg, clock=clock, pause=pause)
    assert [s["module"] for s in found["telemetry"].device["starts"]] == [0, 0, 1]
    result = found["done"].result
    assert result["counts"] == expected
    assert result["telemetry"]["resumed_from_epoch"] == 1


# --------------------------------------------------------------------------- foreseen


def _job(seed: int, *, shots: int = 10, noise: dict[str, Any] | None = None) -> Job:
    text = json.dumps(BELL)
    policy = parse_policy(noise, default_timeout_s=600)
    request = RunRequest(program_digest=program_digest(text), shots=shots, seed=seed, policy=policy)
    return Job(
        job_id=f"job_{seed}_{shots}",
        tenant="alice",
        graph=text,
        request=request,
        caps=("CAP_ALLOC",),
        required_caps=("CAP_ALLOC",),
        physical_qubits=100,
        qubits={"alice": 2},
    )


def test_each_job_is_foreseen_as_adjust_answers_it_the_same_run_but_its_seed_or_not() -> None:
    # the next job of a program whose run is the last one's but for its seed takes that
    # answer; any other difference (shots, its own noise, a calibration ingested since)
    # is computed again: every answer is adjust's own
    drifting = config(
        {"drift_per_epoch": 0.5, "drift_start_epoch": 1},
        profile="logical:surface_code(d=3)",
        noise_model="depolarizing(p=0.002)",
    )
    device = device_for(drifting)
    policies = FaultPolicies(device, audit=None)
    fitted = Calibration(
        family="surface_code", crossing_prefactor=0.1, error_correction_threshold=0.01
    )
    jobs = [
        (_job(1), 0),
        (_job(2), 0),  # the first's answer
        (_job(5), 1),  # the first's answer: no drift, the same link at either epoch
        (_job(3, shots=20), 1),
        (_job(4, noise={"noise_model": "depolarizing(p=0.001)"}), 1),
        (_job(6), 2),  # drift from epoch 2 on: computed each time
        (_job(7), 2),
        (_job(8), "calibrated"),
        (_job(9), "calibrated"),
    ]
    answers = []
    for job, epoch in jobs:
        if epoch == "calibrated":
            if device.calibrations == 0:
                device.calibrate(calibration=fitted)
            epoch = 1
        foreseen = policies.foresee(job, int(epoch))
        request, adjusted = adjust(
            job.request, job, device, int(epoch), room=device.largest_module_up
        )
        assert foreseen == request and job.foreseen.adjusted == adjusted
        assert foreseen.seed == job.seed
        answers.append(foreseen)
    assert answers[7].calibration == fitted.to_json() != answers[1].calibration
    assert answers[5].noise_model != answers[2].noise_model  # drifted at epoch 2


def test_a_jobs_fault_records_read_back_in_order_and_a_kept_start_is_not_collected() -> None:
    # the kernel keeps the newest jobs' records (4,096): a job that started once holds
    # its one record as it is, which the collector never walks (no list, no tracked
    # record); a job that started again holds its records in order
    policies = FaultPolicies(device_for(config({})), audit=None)
    once, again = _job(1), _job(2)
    for job in (once, again):
        assert policies.placement.place(job)
    policies.start(once, once.request, None, 3)
    policies.start(again, again.request, None, 4)
    policies.record(again.job_id, {"epoch": 5, "action": "requeue"})
    policies.start(again, again.request, None, 6)
    kept = policies.records[once.job_id]
    assert not gc.is_tracked(kept) and not isinstance(kept, list)
    (record,) = policies.of(once)
    assert (record["epoch"], record["attempt"], record["faults"]) == (3, 0, [])
    assert record["physical_qubits"] == 100 and record["logical_error_per_cycle"]
    records = policies.of(again)
    assert [r["epoch"] for r in records] == [4, 5, 6] and records[1]["action"] == "requeue"
    assert policies.of(_job(3)) == []
    queued = _job(4)  # a queued job's foreseen start: not walked by the collector either
    policies.foresee(queued, 1)
    assert queued.foreseen is not None and not gc.is_tracked(queued.foreseen)
