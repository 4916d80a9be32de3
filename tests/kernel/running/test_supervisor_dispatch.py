"""The supervisor hands a free worker its next job as soon as the worker answers.

A worker's reply is read in the pool's callback; the job it ran ends there and the next
queued job goes to the same worker in the same loop turn, before any request waiting on
the first job is answered (the worker does not sit idle while the loop serves them).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from qmk.kernel.service import Kernel
from qmk.kernel.storage.audit_verify import verify
from support.kernel import BELL, WorkerGate, login, run_kernel, wait_run_queue, wait_state


def test_the_next_queued_job_is_running_when_the_wait_on_the_last_one_returns(
    tmp_path: Path,
) -> None:
    async def body(kernel: Kernel) -> list[Any]:
        sid = await login(kernel, "alice", ["CAP_ALLOC"])
        first = await kernel.q_submit(session_id=sid, graph=BELL, shots=100, seed=1)
        second = await kernel.q_submit(session_id=sid, graph=BELL, shots=100, seed=2)
        # each job waits QUEUED on the shared machine for its schedule first: the one
        # worker holds the first at the gate until the second is in the run queue
        await wait_state(kernel, sid, first.job_id, "RUNNING")
        await wait_run_queue(kernel, second.job_id)
        gate.release(1)  # the first only: the second, once taken, stays at the gate
        done = await kernel.q_wait(session_id=sid, job_id=first.job_id, timeout_ms=60_000)
        running = kernel.supervisor.jobs[second.job_id].state  # one worker: it took B
        gate.open()
        final = await kernel.q_wait(session_id=sid, job_id=second.job_id, timeout_ms=60_000)
        return [done.state, running, final.state, final.result["counts"]]

    with WorkerGate(tmp_path) as gate:
        first, running, second, counts = run_kernel(tmp_path, body, workers=1, gate=gate)
    assert (first, running, second) == ("COMPLETED", "RUNNING", "COMPLETED")
    assert sum(counts.values()) == 100 and set(counts) <= {"00", "11"}
    assert verify(tmp_path / "data").ok


def test_many_jobs_on_two_workers_all_complete_with_their_audit_chain_whole(
    tmp_path: Path,
) -> None:
    async def body(kernel: Kernel) -> list[str]:
        sid = await login(kernel, "alice", ["CAP_ALLOC"])
        ids = [
            (await kernel.q_submit(session_id=sid, graph=BELL, shots=50, seed=seed)).job_id
            for seed in range(40)
        ]
        return [
            (await kernel.q_wait(session_id=sid, job_id=job_id, timeout_ms=60_000)).state
            for job_id in ids
        ]

    assert run_kernel(tmp_path, body, workers=2) == ["COMPLETED"] * 40
    assert verify(tmp_path / "data").ok
