"""Authorization holds on every path: a restore is admitted like a submit, capabilities the
config took away are gone for old sessions and queued jobs, priorities order a tenant's own
jobs only (up to its max_priority), and a restored job's earlier outcome stays readable."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from qmk.abi import replies
from qmk.errors import CapabilityError, QuotaError, SessionError
from qmk.kernel.config import KernelConfig, config_from_dict
from qmk.kernel.manual_clock import ManualClock
from qmk.kernel.service import Kernel
from support.kernel import BELL, FENCED, KEYS, WorkerGate, login, run_kernel, wait_state
from support.paths import EXAMPLES

MAGIC: dict[str, Any] = json.loads((EXAMPLES / "t_gate_injection.qvm.json").read_text())


def config(alice_caps: list[str], **alice: Any) -> KernelConfig:
    return config_from_dict(
        {
            "machine": {"physical_qubits": 2_000_000},
            "kernel": {"worker_memory_mb": 1024},
            "tenants": {
                "alice": {"key": KEYS["alice"], "caps": alice_caps, **alice},
                "bob": {"key": KEYS["bob"], "caps": ["CAP_ALLOC"]},
            },
        }
    )


def test_a_restore_needs_the_capabilities_a_submit_needs(tmp_path: Path) -> None:
    async def body(kernel: Kernel) -> None:
        full = await login(kernel, "alice", ["CAP_ALLOC", "CAP_MAGIC"])
        job = await kernel.q_submit(session_id=full, graph=MAGIC, shots=10, seed=1)
        await kernel.q_wait(session_id=full, job_id=job.job_id, timeout_ms=60_000)
        await kernel.q_checkpoint(session_id=full, job_id=job.job_id)
        plain = await login(kernel, "alice", ["CAP_ALLOC"])
        with pytest.raises(CapabilityError):
            await kernel.q_restore(session_id=plain, job_id=job.job_id)
        restored = await kernel.q_restore(session_id=full, job_id=job.job_id)
        assert restored.state == "QUEUED"

    run_kernel(tmp_path, body, workers=1, config=config(["CAP_ALLOC", "CAP_MAGIC"]))


def test_capabilities_the_config_took_away_end_old_sessions_and_fail_queued_jobs(
    tmp_path: Path,
) -> None:
    async def before(kernel: Kernel) -> tuple[str, str]:
        session = await login(kernel, "alice", ["CAP_ALLOC", "CAP_MAGIC"])
        job = await kernel.q_submit(session_id=session, graph=MAGIC, shots=10, seed=1)
        await wait_state(kernel, session, job.job_id, "RUNNING")  # held at the gate
        return session, str(job.job_id)  # the kernel closes with the job unfinished

    with WorkerGate(tmp_path) as gate:
        session, job_id = run_kernel(
            tmp_path, before, workers=1, gate=gate, config=config(["CAP_ALLOC", "CAP_MAGIC"])
        )

    async def after(kernel: Kernel) -> replies.Job:
        with pytest.raises(SessionError) as caught:
            await kernel.q_status(session_id=session, job_id=job_id)
        assert "CAP_MAGIC" in caught.value.message
        fresh = await login(kernel, "alice", ["CAP_ALLOC"])
        return await kernel.q_wait(session_id=fresh, job_id=job_id, timeout_ms=60_000)

    done = run_kernel(tmp_path, after, workers=1, config=config(["CAP_ALLOC"]))
    assert done.state == "FAILED" and done.error.code == "QS1004"


def test_a_tenants_priority_never_preempts_another_tenants_job(tmp_path: Path) -> None:
    clock = ManualClock()

    async def body(kernel: Kernel) -> None:
        bob = await login(kernel, "bob", ["CAP_ALLOC"])
        slow = await kernel.q_submit(
            session_id=bob,
            graph=FENCED.to_json(),
            shots=100,
            seed=3,
            policy={"priority": 0, "noise": False},
        )
        await wait_state(kernel, bob, slow.job_id, "RUNNING")  # held at its first fence
        alice = await login(kernel, "alice", ["CAP_ALLOC"])
        urgent = await kernel.q_submit(
            session_id=alice, graph=BELL, shots=10, seed=1, policy={"priority": 9}
        )
        await clock.tick(3)
        state = await kernel.q_get_telemetry(session_id=bob, job_id=slow.job_id)
        assert state.state == "RUNNING" and state.preemptions == 0
        waiting = await kernel.q_status(session_id=alice, job_id=urgent.job_id)
        assert waiting.state == "QUEUED"  # the one worker is bob's until his job ends
        pause.open()
        done = await kernel.q_wait(session_id=alice, job_id=urgent.job_id, timeout_ms=60_000)
        assert done.state == "COMPLETED"

    with WorkerGate(tmp_path, "pause-gate") as pause:
        run_kernel(
            tmp_path, body, workers=1, pause=pause, clock=clock, config=config(["CAP_ALLOC"])
        )


def test_a_priority_above_the_tenants_max_priority_is_refused(tmp_path: Path) -> None:
    async def body(kernel: Kernel) -> None:
        alice = await login(kernel, "alice", ["CAP_ALLOC"])
        with pytest.raises(QuotaError) as caught:
            await kernel.q_submit(
                session_id=alice, graph=BELL, shots=10, seed=1, policy={"priority": 7}
            )
        assert caught.value.details["limit"] == "max_priority"
        ok = await kernel.q_submit(
            session_id=alice, graph=BELL, shots=10, seed=1, policy={"priority": 5}
        )
        assert ok.state in ("QUEUED", "RUNNING", "COMPLETED")

    run_kernel(tmp_path, body, workers=1, config=config(["CAP_ALLOC"], max_priority=5))


def test_a_plain_submit_of_a_tenant_capped_below_the_default_priority_runs_at_its_cap(
    tmp_path: Path,
) -> None:
    async def body(kernel: Kernel) -> None:
        alice = await login(kernel, "alice", ["CAP_ALLOC"])
        for policy in (None, {}, {"priority": None}, {"noise": False}):
            job = await kernel.q_submit(
                session_id=alice, graph=BELL, shots=10, seed=1, policy=policy
            )
            done = await kernel.q_wait(session_id=alice, job_id=job.job_id, timeout_ms=60_000)
            assert done.state == "COMPLETED" and done.priority == 2, (policy, done)
        with pytest.raises(QuotaError) as caught:  # a priority asked for is still checked
            await kernel.q_submit(
                session_id=alice, graph=BELL, shots=10, seed=1, policy={"priority": 5}
            )
        assert caught.value.details["limit"] == "max_priority"
        bob = await login(kernel, "bob", ["CAP_ALLOC"])  # uncapped: the default, 5
        job = await kernel.q_submit(session_id=bob, graph=BELL, shots=10, seed=1)
        assert job.priority == 5

    run_kernel(tmp_path, body, workers=1, config=config(["CAP_ALLOC"], max_priority=2))


def test_a_restored_jobs_earlier_outcome_stays_readable(tmp_path: Path) -> None:
    async def body(kernel: Kernel) -> None:
        alice = await login(kernel, "alice", ["CAP_ALLOC"])
        job = await kernel.q_submit(session_id=alice, graph=BELL, shots=50, seed=4)
        first = await kernel.q_wait(session_id=alice, job_id=job.job_id, timeout_ms=60_000)
        await wait_gate_then_restore(kernel, alice, job.job_id)
        reply = await kernel.q_get_telemetry(session_id=alice, job_id=job.job_id)
        (earlier,) = reply.earlier_outcomes
        assert earlier["state"] == "COMPLETED" and earlier["result"] == first.result

    run_kernel(tmp_path, body, workers=1, config=config(["CAP_ALLOC"]))


async def wait_gate_then_restore(kernel: Kernel, session: str, job_id: str) -> None:
    """Restore ``job_id`` and cancel the rerun: the earlier result must survive that."""
    await kernel.q_checkpoint(session_id=session, job_id=job_id)
    await kernel.q_restore(session_id=session, job_id=job_id)
    await kernel.q_cancel(session_id=session, job_id=job_id)
    done = await kernel.q_wait(session_id=session, job_id=job_id, timeout_ms=60_000)
    assert done.state in ("CANCELLED", "COMPLETED")


def test_a_queued_job_that_a_lowered_quota_no_longer_admits_fails_and_blocks_nothing(
    tmp_path: Path,
) -> None:
    from support.kernel import qubits

    names = qubits(8)
    wide = {
        "version": "0.2",
        "program": {
            "nodes": [
                {"id": "a", "op": "ALLOC_LQ", "args": {"n": 8}, "vqs": names},
                {"id": "f", "op": "FREE_LQ", "vqs": names},
            ]
        },
        "resources": {"vqs": names, "chs": [], "events": []},
        "caps": ["CAP_ALLOC"],
    }

    async def before(kernel: Kernel) -> str:
        alice = await login(kernel, "alice", ["CAP_ALLOC"])
        job = await kernel.q_submit(session_id=alice, graph=wide, shots=10, seed=1)
        await wait_state(kernel, alice, job.job_id, "RUNNING")  # held at the gate
        return str(job.job_id)

    with WorkerGate(tmp_path) as gate:
        job_id = run_kernel(tmp_path, before, workers=1, gate=gate, config=config(["CAP_ALLOC"]))

    async def after(kernel: Kernel) -> None:
        alice = await login(kernel, "alice", ["CAP_ALLOC"])
        done = await kernel.q_wait(session_id=alice, job_id=job_id, timeout_ms=60_000)
        assert done.state == "FAILED" and done.error.code == "QS1006"
        assert "max_logical_qubits is now 4" in done.error.message
        small = await kernel.q_submit(session_id=alice, graph=BELL, shots=10, seed=1)
        ok = await kernel.q_wait(session_id=alice, job_id=small.job_id, timeout_ms=60_000)
        assert ok.state == "COMPLETED"

    lowered = config(["CAP_ALLOC"], max_logical_qubits=4)
    run_kernel(tmp_path, after, workers=1, config=lowered)
