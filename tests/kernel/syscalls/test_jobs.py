"""The job desk's own checks (:mod:`qmk.kernel.syscalls.jobs`)."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest

from qmk import aio, defaults
from qmk.errors import InvalidArgument, QMKError, QuotaError
from qmk.execution import runs
from qmk.kernel.manual_clock import ManualClock
from qmk.kernel.service import Kernel
from support.kernel import BELL, WorkerGate, ghz_graph, login, run_kernel

# --------------------------------------------------------------------------- a submit that waits


def test_a_submit_with_wait_ms_answers_the_finished_job_as_q_wait_does(tmp_path: Path) -> None:
    async def body(kernel: Kernel) -> None:
        sid = await login(kernel, "alice")
        for graph, shots, seed in ((BELL, 1000, 7), (ghz_graph(3), 500, 11)):
            done = await kernel.q_submit(
                session_id=sid, graph=graph, shots=shots, seed=seed, wait_ms=20000
            )
            assert done.state == "COMPLETED", done.error
            expected = runs.run(graph, shots=shots, seed=seed).to_json()
            assert done.result["counts"] == expected["counts"]
            waited = await kernel.q_wait(session_id=sid, job_id=done.job_id, timeout_ms=0)
            assert done == waited  # the very answer q_wait gives, key for key

    run_kernel(tmp_path, body)


def test_a_submit_whose_wait_ms_passes_answers_the_job_as_it_stands(tmp_path: Path) -> None:
    clock = ManualClock()

    async def body(kernel: Kernel) -> None:
        sid = await login(kernel, "alice")
        waits = kernel.supervisor.book.waits  # q_wait's: one while the submit waits
        async with aio.TaskGroup() as group:
            waiting = group.create_task(
                kernel.q_submit(session_id=sid, graph=BELL, shots=10, seed=1, wait_ms=250)
            )
            for _ in range(10_000):  # until it waits (its admission and commit done)
                if waits.waiting:
                    break
                await asyncio.sleep(0.001)
            assert waits.waiting and not waiting.done()
            clock.advance(0.125)
            await asyncio.sleep(0)
            assert not waiting.done()  # half its time: still waiting
            clock.advance(0.125)
        job = waiting.result()
        assert job.state in ("QUEUED", "VALIDATING", "RUNNING")
        await kernel.q_cancel(session_id=sid, job_id=job.job_id)

    with WorkerGate(tmp_path) as gate:
        run_kernel(tmp_path, body, gate=gate, clock=clock)


def test_a_submit_with_wait_ms_0_answers_at_once_as_q_wait_with_timeout_0(tmp_path: Path) -> None:
    async def body(kernel: Kernel) -> None:
        sid = await login(kernel, "alice")
        job = await kernel.q_submit(session_id=sid, graph=BELL, shots=10, seed=1, wait_ms=0)
        assert job.state in ("QUEUED", "VALIDATING", "RUNNING")
        await kernel.q_cancel(session_id=sid, job_id=job.job_id)

    with WorkerGate(tmp_path) as gate:
        run_kernel(tmp_path, body, gate=gate)


def test_a_submit_again_with_its_idempotency_key_and_wait_ms_waits_for_the_first_job(
    tmp_path: Path,
) -> None:
    async def body(kernel: Kernel) -> None:
        sid = await login(kernel, "alice")
        first = await kernel.q_submit(
            session_id=sid, graph=BELL, shots=100, seed=3, idempotency_key="k-1"
        )
        again = await kernel.q_submit(
            session_id=sid, graph=BELL, shots=100, seed=3, idempotency_key="k-1", wait_ms=20000
        )
        assert again.job_id == first.job_id and again.state == "COMPLETED"
        listed = await kernel.q_list_jobs(session_id=sid)
        assert [job.job_id for job in listed.jobs] == [first.job_id]

    run_kernel(tmp_path, body)


@pytest.mark.parametrize(
    "wait_ms, shown",
    [
        (-1, "-1"),
        (defaults.MAX_TIMEOUT_MS + 1, str(defaults.MAX_TIMEOUT_MS + 1)),
        (True, "True"),
        (2.5, "2.5"),
        ("10", "'10'"),
        (10**400, f"{str(10**400)[:40]}... (401 characters)"),
    ],
    ids=["negative", "past-a-year", "bool", "float", "string", "huge"],
)
def test_a_bad_wait_ms_is_one_line_invalid_argument_and_queues_nothing(
    tmp_path: Path, wait_ms: Any, shown: str
) -> None:
    async def body(kernel: Kernel) -> None:
        sid = await login(kernel, "alice")
        with pytest.raises(InvalidArgument) as caught:
            await kernel.q_submit(session_id=sid, graph=BELL, shots=10, seed=1, wait_ms=wait_ms)
        refusal = caught.value
        assert refusal.rpc_code == 1012 and refusal.details["key"] == "wait_ms"
        assert refusal.message == (
            f"wait_ms must be an integer 0..{defaults.MAX_TIMEOUT_MS} or null, got {shown}"
        )
        assert "\n" not in str(refusal) and len(str(refusal)) < 200
        assert (await kernel.q_list_jobs(session_id=sid)).jobs == []

    run_kernel(tmp_path, body, workers=1)


def test_a_submit_that_waits_is_refused_as_a_submit_is(tmp_path: Path) -> None:
    """A refusal of the submit itself (here an unknown target) is the same error with or
    without a wait, and nothing is queued either way."""

    async def body(kernel: Kernel) -> None:
        sid = await login(kernel, "alice")
        refusals = []
        for wait in ({}, {"wait_ms": 1000}):
            with pytest.raises(QMKError) as caught:
                await kernel.q_submit(
                    session_id=sid, graph=BELL, shots=10, seed=1, target="nowhere", **wait
                )
            refusals.append(caught.value.to_json())
        assert refusals[0] == refusals[1]
        assert (await kernel.q_list_jobs(session_id=sid)).jobs == []

    run_kernel(tmp_path, body, workers=1)


def test_an_allowed_submits_capability_check_is_on_its_queued_line_a_refused_ones_a_cap_line(
    tmp_path: Path,
) -> None:
    """An allowed submit writes its capability check (session, required, decision) on its
    job's QUEUED line, not a cap line of its own; a submit refused after that check (here
    past alice's max_logical_qubits of 30) writes it as its cap line, as before."""

    async def body(kernel: Kernel) -> str:
        sid = await login(kernel, "alice")
        job = await kernel.q_submit(session_id=sid, graph=BELL, shots=10, seed=1, wait_ms=60_000)
        assert job.state == "COMPLETED"
        with pytest.raises(QuotaError) as refused:
            await kernel.q_submit(session_id=sid, graph=ghz_graph(31), shots=10, seed=1)
        assert refused.value.details["limit"] == "max_logical_qubits"
        return str(job.job_id)

    job_id = run_kernel(tmp_path, body, workers=1)
    lines = [json.loads(line) for line in (tmp_path / "data" / "audit.log").read_text().split()]
    (queued,) = (r for r in lines if r.get("job_id") == job_id and r.get("state") == "QUEUED")
    sid = queued["session"]  # the session's own id (the audit's), not its token
    assert isinstance(sid, str) and sid and queued["decision"] == "allow"
    assert queued["required"] == ["CAP_ALLOC"] and queued["seed"] == 1
    submits = [r for r in lines if r["event"] == "cap" and r.get("where") == "submit"]
    assert [(r["session"], r["decision"], r["tenant"]) for r in submits] == [
        (sid, "allow", "alice")
    ]  # the refused submit's alone
    assert submits[0]["seq"] > queued["seq"]
