"""Workflow triggers in the kernel (qmk.kernel.running.triggers): schedules on the kernel's clock,
job and calibration events, runs as the owner's jobs through admission, durable rows.

Time is a :class:`~qmk.kernel.manual_clock.ManualClock`: a schedule runs when the test moves
the clock, never by waiting; a restart is a second ``Kernel.open`` of the same data
directory on a clock moved on. A run's jobs run on real workers; the waits for a run to
end wait for that event (a generous limit only against hangs). The same through a real
``qmk serve`` killed with SIGKILL: tests/e2e/test_triggers_serve.py.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import pytest

from qmk.errors import InvalidArgument, NotFoundError
from qmk.execution.runs import run
from qmk.frontends.qasm import from_qasm
from qmk.kernel.config import KernelConfig, config_from_dict
from qmk.kernel.manual_clock import ManualClock
from qmk.kernel.service import Kernel
from qmk.workflows.spec import loads, to_data
from support.kernel import KEYS, WorkerGate, login, run_kernel

START = 1_800_000_000.0
BELL_QASM = """OPENQASM 2.0;
include "qelib1.inc";
qreg q[2];
creg c[2];
h q[0];
cx q[0], q[1];
measure q -> c;
"""
#: Five qubits: past bob's max_logical_qubits (4).
WIDE_QASM = """OPENQASM 2.0;
include "qelib1.inc";
qreg q[5];
creg c[5];
h q[0];
measure q -> c;
"""


def bell_flow(shots: int = 100, seed: int = 5, source: str = BELL_QASM) -> dict[str, Any]:
    """A one-step workflow, its program inline (as ``qmk workflow trigger add`` sends it)."""
    return {
        "name": "bell",
        "steps": [{"name": "bell", "source": source, "shots": shots, "seed": seed}],
    }


def config() -> KernelConfig:
    """alice (an operator), bob (4 logical qubits at most)."""
    return config_from_dict(
        {
            "machine": {"physical_qubits": 200_000},
            "kernel": {"worker_memory_mb": 1024},
            "tenants": {
                "alice": {
                    "key": KEYS["alice"],
                    "caps": ["CAP_ALLOC", "CAP_LINK"],
                    "operator": True,
                    "max_concurrent_jobs": 4,
                },
                "bob": {"key": KEYS["bob"], "caps": ["CAP_ALLOC"], "max_logical_qubits": 4},
            },
        }
    )


async def runs_of(kernel: Kernel, sid: str, trigger_id: str) -> list[dict[str, Any]]:
    reply = await kernel.q_list_triggers(session_id=sid, trigger_id=trigger_id, runs=100)
    (trigger,) = reply.triggers
    return list(trigger.runs)


async def ended_runs(
    kernel: Kernel, sid: str, trigger_id: str, count: int, limit_s: float = 120.0
) -> list[dict[str, Any]]:
    """The trigger's runs (newest first) once ``count`` of them have ended."""
    end = time.monotonic() + limit_s
    while time.monotonic() < end:
        runs = await runs_of(kernel, sid, trigger_id)
        if sum(r.state != "RUNNING" for r in runs) >= count:
            return runs
        await asyncio.sleep(0.01)
    raise AssertionError(f"never {count} ended runs: {await runs_of(kernel, sid, trigger_id)}")


async def settle() -> None:
    """Let the loop take its turns (the trigger loop wakes on the clock's scope)."""
    for _ in range(20):
        await asyncio.sleep(0)


def bell_counts(shots: int = 100, seed: int = 5) -> dict[str, int]:
    return dict(run(from_qasm(BELL_QASM).to_json(), shots=shots, seed=seed).counts)


# ----------------------------------------------------------------------------- schedules


def test_a_schedule_runs_its_workflow_as_the_owners_jobs_once_per_interval(
    tmp_path: Path,
) -> None:
    clock = ManualClock(start=START)

    async def body(kernel: Kernel) -> None:
        alice = await login(kernel, "alice")
        made = await kernel.q_create_trigger(
            session_id=alice, name="hourly bell", workflow=bell_flow(), on="schedule", every_s=60
        )
        trigger_id = made.trigger_id
        assert made.next_run_at == START + 60 and made.state == "ACTIVE"
        assert made.caps == ["CAP_ALLOC", "CAP_LINK"] and made.jobs == 1
        clock.advance(59)
        await settle()
        assert await runs_of(kernel, alice, trigger_id) == []
        clock.advance(1)
        (first,) = await ended_runs(kernel, alice, trigger_id, 1)
        assert first.state == "COMPLETED", first
        assert first.reason == "schedule" and first.detail["missed"] == 1
        assert first.summary == {"COMPLETED": 1}
        (job_id,) = first.jobs
        job = await kernel.q_status(session_id=alice, job_id=job_id)  # alice's own job
        assert job.tenant == "alice" and job.result["counts"] == bell_counts()
        listed = (await kernel.q_list_triggers(session_id=alice)).triggers
        assert [t.trigger_id for t in listed] == [trigger_id]
        assert listed[0].next_run_at == START + 120
        assert listed[0].last_run.run_id == first.run_id
        clock.advance(60)
        runs = await ended_runs(kernel, alice, trigger_id, 2)
        assert [r.state for r in runs] == ["COMPLETED", "COMPLETED"]

    run_kernel(tmp_path, body, config=config(), clock=clock)


def test_a_schedule_missed_while_the_kernel_was_down_runs_once_and_says_how_many_times(
    tmp_path: Path,
) -> None:
    async def create(kernel: Kernel) -> str:
        alice = await login(kernel, "alice")
        made = await kernel.q_create_trigger(
            session_id=alice, name="every minute", workflow=bell_flow(), on="schedule", every_s=60
        )
        return str(made.trigger_id)

    trigger_id = run_kernel(tmp_path, create, config=config(), clock=ManualClock(start=START))
    later = ManualClock(start=START + 10 * 60 + 30)  # down for ten and a half minutes

    async def reopened(kernel: Kernel) -> None:
        alice = await login(kernel, "alice")
        (caught,) = await ended_runs(kernel, alice, trigger_id, 1)
        assert caught.reason == "catch-up" and caught.state == "COMPLETED"
        assert caught.detail == {"due_at": START + 60, "missed": 10}
        (listed,) = (await kernel.q_list_triggers(session_id=alice)).triggers
        assert listed.next_run_at == START + 11 * 60
        await settle()
        assert len(await runs_of(kernel, alice, trigger_id)) == 1  # once, not ten times

    run_kernel(tmp_path, reopened, config=config(), clock=later)


def test_a_cron_schedule_runs_at_its_minutes_in_utc(tmp_path: Path) -> None:
    clock = ManualClock(start=START)  # 2027-01-15T08:00:00Z

    async def body(kernel: Kernel) -> None:
        alice = await login(kernel, "alice")
        made = await kernel.q_create_trigger(
            session_id=alice,
            name="quarter",
            workflow=bell_flow(),
            on="schedule",
            cron="*/15 * * * *",
        )
        assert made.next_run_at == START + 15 * 60
        clock.advance(15 * 60)
        (first,) = await ended_runs(kernel, alice, made.trigger_id, 1)
        assert first.state == "COMPLETED" and first.detail["due_at"] == START + 900

    run_kernel(tmp_path, body, config=config(), clock=clock)


def test_a_run_still_going_makes_the_next_start_skipped(tmp_path: Path) -> None:
    clock = ManualClock(start=START)

    async def body(kernel: Kernel) -> None:
        alice = await login(kernel, "alice")
        made = await kernel.q_create_trigger(
            session_id=alice, name="held", workflow=bell_flow(), on="schedule", every_s=60
        )
        trigger_id = made.trigger_id
        clock.advance(60)  # the first run's job is held at the gate
        end = time.monotonic() + 60
        while (
            not (await runs_of(kernel, alice, trigger_id))[0:1]
            or not (await runs_of(kernel, alice, trigger_id))[0].jobs
        ):
            assert time.monotonic() < end, "the first run never submitted its job"
            await asyncio.sleep(0.01)
        clock.advance(60)
        runs = await ended_runs(kernel, alice, trigger_id, 1)
        assert [r.state for r in runs] == ["SKIPPED", "RUNNING"]
        assert "still running" in runs[0].error
        gate.open()
        runs = await ended_runs(kernel, alice, trigger_id, 2)
        assert [r.state for r in runs] == ["SKIPPED", "COMPLETED"]

    with WorkerGate(tmp_path) as gate:
        run_kernel(tmp_path, body, config=config(), clock=clock, gate=gate)


# ----------------------------------------------------------------------------- events


def test_a_job_ending_starts_a_job_trigger_and_the_runs_own_jobs_start_none(
    tmp_path: Path,
) -> None:
    async def body(kernel: Kernel) -> None:
        alice, bob = await login(kernel, "alice"), await login(kernel, "bob")
        made = await kernel.q_create_trigger(
            session_id=alice, name="after each job", workflow=bell_flow(), on="job"
        )
        trigger_id = made.trigger_id
        assert made.states == ["COMPLETED"] and made.next_run_at is None
        graph = from_qasm(BELL_QASM).to_json()
        theirs = await kernel.q_submit(session_id=bob, graph=graph, shots=10, seed=1)
        await kernel.q_wait(session_id=bob, job_id=theirs.job_id, timeout_ms=60_000)
        await settle()
        assert await runs_of(kernel, alice, trigger_id) == []  # bob's jobs are not alice's
        mine = await kernel.q_submit(session_id=alice, graph=graph, shots=10, seed=2)
        await kernel.q_wait(session_id=alice, job_id=mine.job_id, timeout_ms=60_000)
        (ran,) = await ended_runs(kernel, alice, trigger_id, 1)
        assert ran.reason == "job" and ran.state == "COMPLETED"
        assert ran.detail == {"job_id": mine.job_id, "state": "COMPLETED"}
        again = await kernel.q_submit(session_id=alice, graph=graph, shots=100, seed=5)
        await kernel.q_wait(session_id=alice, job_id=again.job_id, timeout_ms=60_000)
        runs = await ended_runs(kernel, alice, trigger_id, 2)
        await settle()
        # the runs' own jobs (one of them answered from the cache: the same program,
        # shots and seed as alice's third job) started no run
        assert len(await runs_of(kernel, alice, trigger_id)) == 2
        assert all(r.state == "COMPLETED" for r in runs)

    run_kernel(tmp_path, body, config=config())


def test_a_calibration_ingested_starts_a_calibration_trigger(tmp_path: Path) -> None:
    from qmk.qec.logical import Calibration

    fitted = Calibration(
        family="surface_code", crossing_prefactor=0.1, error_correction_threshold=0.01
    )

    async def body(kernel: Kernel) -> None:
        alice, bob = await login(kernel, "alice"), await login(kernel, "bob")
        made = await kernel.q_create_trigger(
            session_id=bob, name="recheck", workflow=bell_flow(), on="calibration"
        )
        await settle()
        assert await runs_of(kernel, bob, made.trigger_id) == []
        await kernel.q_calibrate(session_id=alice, calibration=fitted.to_json())
        (ran,) = await ended_runs(kernel, bob, made.trigger_id, 1)
        assert ran.reason == "calibration" and ran.state == "COMPLETED"
        (job_id,) = ran.jobs
        assert (await kernel.q_status(session_id=bob, job_id=job_id)).tenant == "bob"

    run_kernel(tmp_path, body, config=config())


# ----------------------------------------------------------------------------- admission


def test_a_runs_jobs_pass_admission_as_the_owners_a_quota_refusal_fails_the_run(
    tmp_path: Path,
) -> None:
    """bob may hold 4 logical qubits: the run's five-qubit job is refused at admission,
    the run FAILED with the refusal; the kernel and the trigger go on."""
    clock = ManualClock(start=START)

    async def body(kernel: Kernel) -> None:
        bob = await login(kernel, "bob", caps=["CAP_ALLOC"])
        made = await kernel.q_create_trigger(
            session_id=bob,
            name="too wide",
            workflow=bell_flow(source=WIDE_QASM),
            on="schedule",
            every_s=60,
        )
        clock.advance(60)
        (ran,) = await ended_runs(kernel, bob, made.trigger_id, 1)
        assert ran.state == "FAILED" and ran.jobs == []
        assert ran.error is not None
        assert "QS1006" in ran.error and "max_logical_qubits" in ran.error
        assert ran.summary == {"FAILED": 1}

    run_kernel(tmp_path, body, config=config(), clock=clock)


def test_a_trigger_that_cannot_run_is_refused_when_made_with_its_code(tmp_path: Path) -> None:
    async def body(kernel: Kernel) -> None:
        alice = await login(kernel, "alice")
        cases: list[tuple[dict[str, Any], str, str]] = [
            ({"on": "schedule", "cron": "61 * * * *"}, "QW014", "minute 61 is out of 0-59"),
            ({"on": "schedule"}, "QW014", "every_s or cron"),
            ({"on": "schedule", "every_s": 0.5}, "QW014", "every_s"),
            ({"on": "job", "states": ["DONE"]}, "QW014", "a job ends in one of"),
            ({"on": "calibration", "every_s": 60}, "QW014", "for schedules"),
            ({"on": "sunrise"}, "QW014", "no event"),
        ]
        for options, code, words in cases:
            with pytest.raises(InvalidArgument) as caught:
                await kernel.q_create_trigger(
                    session_id=alice, name="x", workflow=bell_flow(), **options
                )
            assert caught.value.details["code"] == code and words in str(caught.value), options
        files = {"steps": [{"name": "a", "program": "/etc/passwd"}]}
        device = {"steps": [{"name": "a", "source": BELL_QASM, "device": "aquila-like"}]}
        noisy = {"steps": [{"name": "a", "source": BELL_QASM, "noise": "depolarizing(p=0.01)"}]}
        broken = {"steps": [{"name": "a", "source": "OPENQASM 2.0; qreg q[1]; nope q[0];"}]}
        for flow, words in (
            (files, "program names a file"),
            (device, "device steps run locally"),
            (noisy, "noise models run locally"),
            (broken, "does not lower"),
        ):
            with pytest.raises(InvalidArgument) as caught:
                await kernel.q_create_trigger(
                    session_id=alice, name="x", workflow=flow, on="schedule", every_s=60
                )
            assert caught.value.details["code"] == "QW013" and words in str(caught.value)
        assert (await kernel.q_list_triggers(session_id=alice)).triggers == []

    run_kernel(tmp_path, body, config=config())


def test_a_tenant_sees_and_deletes_only_its_own_triggers(tmp_path: Path) -> None:
    async def body(kernel: Kernel) -> None:
        alice, bob = await login(kernel, "alice"), await login(kernel, "bob")
        made = await kernel.q_create_trigger(
            session_id=alice, name="mine", workflow=bell_flow(), on="job"
        )
        assert (await kernel.q_list_triggers(session_id=bob)).triggers == []
        for call in (
            kernel.q_delete_trigger(session_id=bob, trigger_id=made.trigger_id),
            kernel.q_list_triggers(session_id=bob, trigger_id=made.trigger_id),
        ):
            with pytest.raises(NotFoundError):
                await call
        gone = await kernel.q_delete_trigger(session_id=alice, trigger_id=made.trigger_id)
        assert gone.state == "DELETED" and gone.trigger_id == made.trigger_id
        assert (await kernel.q_list_triggers(session_id=alice)).triggers == []

    run_kernel(tmp_path, body, config=config())


def test_a_workflow_file_read_by_the_client_becomes_the_data_a_trigger_keeps(
    tmp_path: Path,
) -> None:
    (tmp_path / "bell.qasm").write_text(BELL_QASM)
    (tmp_path / "flow.toml").write_text(
        '[[steps]]\nname = "bell"\nprogram = "bell.qasm"\nshots = 100\nseed = 5\n'
        '[[steps]]\nname = "again"\nprogram = "bell.qasm"\nafter = ["bell"]\n'
        "sweep = { seed = [1, 2] }\nshots = 50\n"
    )
    from qmk.workflows.spec import load

    data = to_data(load(tmp_path / "flow.toml"))
    assert data["steps"][0]["source"] == BELL_QASM and "program" not in data["steps"][0]
    clock = ManualClock(start=START)

    async def body(kernel: Kernel) -> None:
        alice = await login(kernel, "alice")
        made = await kernel.q_create_trigger(
            session_id=alice, name="file", workflow=data, on="schedule", every_s=60
        )
        assert made.steps == 2 and made.jobs == 3
        clock.advance(60)
        (ran,) = await ended_runs(kernel, alice, made.trigger_id, 1)
        assert ran.state == "COMPLETED" and ran.summary == {"COMPLETED": 3}
        assert len(ran.jobs) == 3

    run_kernel(tmp_path, body, config=config(), clock=clock)
    assert loads("[[steps]]\nsource = 'OPENQASM 2.0;'").steps[0].source == "OPENQASM 2.0;"
