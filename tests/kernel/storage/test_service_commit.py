"""Group commit and the finished-job cache: what is durable when, seen from outside the kernel.

A second SQLite connection (as after a crash, another process) reads the kernel's
database while the kernel runs: it sees only committed rows.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from qmk import aio
from qmk.errors import NotFoundError, UnavailableError
from qmk.execution import runs
from qmk.kernel.config import config_from_dict
from qmk.kernel.datafiles import DB_FILE
from qmk.kernel.pools.pool import WorkerKilled
from qmk.kernel.running import book as book_module
from qmk.kernel.service import Kernel
from qmk.kernel.storage import commit as commit_module
from qmk.kernel.storage.audit_verify import verify
from qmk.kernel.storage.commit import GROUP_COMMIT_S
from support.kernel import BELL, WorkerGate, login, run_kernel
from support.wire import until

CONFIG = config_from_dict(
    {
        "machine": {"physical_qubits": 200_000},
        "tenants": {"alice": {"key": "alice-key", "caps": ["CAP_ALLOC"], "max_queued_jobs": 50}},
    }
)


def disk_full() -> Any:
    """An audit flush on a full disk (its commit fails)."""
    raise OSError(28, "No space left on device")


def committed(data_dir: Path, job_id: str) -> tuple[str, Any] | None:
    """(state, result) of ``job_id`` as another connection sees it; None if not committed."""
    db = sqlite3.connect(f"file:{data_dir / DB_FILE}?mode=ro", uri=True)
    try:
        row = db.execute("SELECT state, result FROM jobs WHERE job_id=?", (job_id,)).fetchone()
    finally:
        db.close()
    return None if row is None else (row[0], None if row[1] is None else json.loads(row[1]))


def audit_states(data_dir: Path, job_id: str) -> list[str]:
    lines = (data_dir / "audit.log").read_text().splitlines()
    records = [json.loads(line) for line in lines]
    return [r["state"] for r in records if r.get("job_id") == job_id and "state" in r]


def run(tmp_path: Path, body: Any) -> None:
    async def main(kernel: Kernel) -> None:
        sid = await login(kernel, "alice", ["CAP_ALLOC"])
        await body(kernel, sid, tmp_path / "data")

    run_kernel(tmp_path, main, config=CONFIG)
    assert verify(tmp_path / "data").ok


def test_every_job_is_committed_with_its_audit_line_before_q_submit_replies(
    tmp_path: Path,
) -> None:
    async def body(kernel: Kernel, sid: str, data: Path) -> None:
        jobs = await asyncio.gather(
            *(kernel.q_submit(session_id=sid, graph=BELL, shots=50, seed=s) for s in range(8))
        )
        for job in jobs:  # no await between the replies and these reads
            row = committed(data, job.job_id)
            assert row is not None, "a job was acknowledged before its commit"
            assert "QUEUED" in audit_states(data, job.job_id)

    run(tmp_path, body)


def test_a_finished_job_reaches_the_database_within_the_group_commit_window(
    tmp_path: Path,
) -> None:
    async def body(kernel: Kernel, sid: str, data: Path) -> None:
        job = await kernel.q_submit(session_id=sid, graph=BELL, shots=200, seed=11)
        done = await kernel.q_wait(session_id=sid, job_id=job.job_id, timeout_ms=20000)
        assert done.state == "COMPLETED"
        await asyncio.sleep(GROUP_COMMIT_S * 5)  # no request asks for durability meanwhile
        state, result = committed(data, job.job_id)  # type: ignore[misc]
        assert state == "COMPLETED"
        assert result["counts"] == runs.run(BELL, shots=200, seed=11).counts
        states = audit_states(data, job.job_id)
        assert states == ["QUEUED", "RUNNING", "COMPLETED"]
        # the start's check of the capabilities is on its RUNNING line (no line of its own)
        lines = map(json.loads, (data / "audit.log").read_text().splitlines())
        (running,) = (
            r for r in lines if r.get("job_id") == job.job_id and r.get("state") == "RUNNING"
        )
        assert running["decision"] == "allow" and running["required"] == ["CAP_ALLOC"]
        assert running["attempt"] == 1 and isinstance(running["epoch"], int)

    run(tmp_path, body)


def test_jobs_evicted_from_the_finished_cache_read_back_the_same_from_the_database(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(book_module, "FINISHED_CACHE_SIZE", 2)

    async def body(kernel: Kernel, sid: str, data: Path) -> None:
        ids = [
            (await kernel.q_submit(session_id=sid, graph=BELL, shots=64, seed=s)).job_id
            for s in range(5)
        ]
        finals = [
            await kernel.q_wait(session_id=sid, job_id=job_id, timeout_ms=20000) for job_id in ids
        ]
        assert len(kernel.supervisor.finished) == 2  # the cache holds only the newest finished jobs
        again = [await kernel.q_status(session_id=sid, job_id=job_id) for job_id in ids]
        assert again == finals
        for seed, job in enumerate(again):
            assert job.result["counts"] == runs.run(BELL, shots=64, seed=seed).counts

    run(tmp_path, body)


def test_q_wait_answers_a_final_state_only_once_it_is_committed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # a job's end is committed lazily; with a window of an hour, only the wait's own
    # urgent commit can have put COMPLETED in the database before the reply
    monkeypatch.setattr(commit_module, "GROUP_COMMIT_S", 3600.0)

    async def body(kernel: Kernel, sid: str, data: Path) -> None:
        job = await kernel.q_submit(session_id=sid, graph=BELL, shots=100, seed=5)
        done = await kernel.q_wait(session_id=sid, job_id=job.job_id, timeout_ms=60_000)
        assert done.state == "COMPLETED"
        row = committed(data, job.job_id)  # no await between the reply and this read
        assert row is not None and row[0] == "COMPLETED"
        assert not kernel.supervisor.commits.pending
        again = await kernel.q_wait(session_id=sid, job_id=job.job_id, timeout_ms=0)
        assert again == done

    run(tmp_path, body)


def test_q_wait_on_a_job_whose_end_is_committed_answers_without_committing_others(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # no lazy commit within the test: a commit is made only when a request asks for one
    monkeypatch.setattr(commit_module, "GROUP_COMMIT_S", 3600.0)

    async def body(kernel: Kernel, sid: str, data: Path) -> None:
        first = await kernel.q_submit(session_id=sid, graph=BELL, shots=100, seed=5, wait_ms=60_000)
        assert first.state == "COMPLETED"  # its end committed with its answer
        later = await kernel.q_submit(session_id=sid, graph=BELL, shots=100, seed=6)
        job = kernel.supervisor.job(later.job_id, "alice")
        await until(lambda: job.final)  # ended in memory: its end not committed
        commits = kernel.supervisor.commits
        assert commits.pending and committed(data, job.job_id)[0] != "COMPLETED"  # type: ignore[index]
        again = await kernel.q_wait(session_id=sid, job_id=first.job_id, timeout_ms=0)
        assert again == first
        assert commits.pending, "the answer of a committed end waited for others' commit"
        assert committed(data, job.job_id)[0] != "COMPLETED"  # type: ignore[index]
        done = await kernel.q_wait(session_id=sid, job_id=job.job_id, timeout_ms=0)
        assert done.state == "COMPLETED" and not commits.pending  # its own: committed first
        assert committed(data, job.job_id)[0] == "COMPLETED"  # type: ignore[index]

    run(tmp_path, body)


def test_a_job_read_back_while_writes_pend_is_answered_committed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # the finished cache holds one job: a job evicted before its end is committed is read
    # back from the open transaction, and answered only once that is committed
    monkeypatch.setattr(commit_module, "GROUP_COMMIT_S", 3600.0)
    monkeypatch.setattr(book_module, "FINISHED_CACHE_SIZE", 1)

    async def body(kernel: Kernel, sid: str, data: Path) -> None:
        ids = [
            (await kernel.q_submit(session_id=sid, graph=BELL, shots=100, seed=s)).job_id
            for s in (7, 8)
        ]
        await until(lambda: all(i not in kernel.supervisor.jobs for i in ids))
        evicted = ids[0] if ids[0] not in kernel.supervisor.finished else ids[1]
        assert kernel.supervisor.commits.pending
        assert committed(data, evicted)[0] != "COMPLETED"  # type: ignore[index]
        done = await kernel.q_wait(session_id=sid, job_id=evicted, timeout_ms=0)
        assert done.state == "COMPLETED"
        assert committed(data, evicted)[0] == "COMPLETED"  # type: ignore[index]

    run(tmp_path, body)


# --------------------------------------------------------------------------- a submit that waits


def usage_ids(data_dir: Path) -> list[str]:
    """The usage records' ids, as another connection sees them."""
    db = sqlite3.connect(f"file:{data_dir / DB_FILE}?mode=ro", uri=True)
    try:
        return sorted(row[0] for row in db.execute("SELECT usage_id FROM usage"))
    finally:
        db.close()


def audit_lines(data_dir: Path, job_id: str) -> list[dict[str, Any]]:
    lines = (data_dir / "audit.log").read_text().splitlines()
    return [r for r in map(json.loads, lines) if r.get("job_id") == job_id]


def test_a_submit_that_waits_commits_its_acceptance_with_its_end_in_one_commit(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # no lazy commit within the test: only the answer's own commit can hold the job
    monkeypatch.setattr(commit_module, "GROUP_COMMIT_S", 3600.0)

    async def body(kernel: Kernel, sid: str, data: Path) -> None:
        done = await kernel.q_submit(session_id=sid, graph=BELL, shots=100, seed=5, wait_ms=60_000)
        assert done.state == "COMPLETED"
        row = committed(data, done.job_id)  # no await between the reply and this read
        assert row is not None and row[0] == "COMPLETED"
        assert row[1]["counts"] == runs.run(BELL, shots=100, seed=5).counts
        lines = audit_lines(data, done.job_id)
        assert [r["state"] for r in lines] == ["QUEUED", "RUNNING", "COMPLETED"]
        # one write, so one commit: only its last line carries the write's MAC
        assert ["mac2" in r for r in lines] == [False, False, True]
        assert not kernel.supervisor.commits.pending

    run(tmp_path, body)


def test_a_submit_whose_wait_ms_passes_is_committed_as_it_stands_before_its_reply(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(commit_module, "GROUP_COMMIT_S", 3600.0)

    async def body(kernel: Kernel) -> None:
        sid = await login(kernel, "alice", ["CAP_ALLOC"])
        job = await kernel.q_submit(session_id=sid, graph=BELL, shots=10, seed=1, wait_ms=20)
        assert job.state in ("QUEUED", "VALIDATING", "RUNNING")  # held at the gate
        row = committed(tmp_path / "data", job.job_id)  # no await since the reply
        assert row is not None and row[0] in ("QUEUED", "VALIDATING", "RUNNING")
        # the same job asked for again by its idempotency key is answered committed too
        again = await kernel.q_submit(
            session_id=sid, graph=BELL, shots=10, seed=2, wait_ms=0, idempotency_key="k"
        )
        assert committed(tmp_path / "data", again.job_id) is not None
        await kernel.q_cancel(session_id=sid, job_id=job.job_id)
        await kernel.q_cancel(session_id=sid, job_id=again.job_id)

    with WorkerGate(tmp_path) as gate:
        run_kernel(tmp_path, body, config=CONFIG, gate=gate)


def test_a_job_asked_for_by_its_key_while_its_submit_waits_is_answered_committed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(commit_module, "GROUP_COMMIT_S", 3600.0)

    async def body(kernel: Kernel) -> None:
        sid = await login(kernel, "alice", ["CAP_ALLOC"])
        data = tmp_path / "data"
        async with aio.TaskGroup() as group:
            waiting = group.create_task(
                kernel.q_submit(
                    session_id=sid,
                    graph=BELL,
                    shots=10,
                    seed=1,
                    wait_ms=60_000,
                    idempotency_key="k",
                )
            )
            (job_id,) = await _accepted(kernel)
            assert committed(data, job_id) is None  # its submit has answered nothing yet
            again = await kernel.q_submit(
                session_id=sid, graph=BELL, shots=10, seed=1, idempotency_key="k"
            )
            assert again.job_id == job_id and committed(data, job_id) is not None
            await kernel.q_cancel(session_id=sid, job_id=job_id)
        assert waiting.result().state == "CANCELLED"

    with WorkerGate(tmp_path) as gate:
        run_kernel(tmp_path, body, config=CONFIG, gate=gate)


async def _accepted(kernel: Kernel) -> list[str]:
    """The ids of the jobs the kernel holds, once it holds one (a submit's admission runs
    over a few turns of the loop)."""
    await until(lambda: bool(kernel.supervisor.jobs))
    return list(kernel.supervisor.jobs)


def test_a_failed_commit_takes_back_a_waiting_submits_running_job_and_answers_the_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(commit_module, "GROUP_COMMIT_S", 3600.0)

    async def body(kernel: Kernel) -> None:
        sid = await login(kernel, "alice", ["CAP_ALLOC"])
        data = tmp_path / "data"
        supervisor = kernel.supervisor
        waiting = asyncio.create_task(
            kernel.q_submit(session_id=sid, graph=BELL, shots=10, seed=1, wait_ms=60_000)
        )
        (job_id,) = await _accepted(kernel)
        await until(lambda: job_id in supervisor.running)  # a worker holds it (at the gate)
        run = supervisor.running[job_id]
        kernel.store.db.execute("PRAGMA query_only=1")  # the next commit's writes refused
        kernel.commits.dirty()  # a commit now (another request's, say): it fails
        with pytest.raises(UnavailableError):
            await waiting
        kernel.store.db.execute("PRAGMA query_only=0")
        # taken back at once: off its worker (killed), not held, not stored, no line
        assert isinstance(run.future.exception(), WorkerKilled)
        assert job_id not in supervisor.jobs and job_id not in supervisor.running
        assert committed(data, job_id) is None
        assert audit_lines(data, job_id) == []
        with pytest.raises(NotFoundError):
            await kernel.q_status(session_id=sid, job_id=job_id)

    with WorkerGate(tmp_path) as gate:
        run_kernel(tmp_path, body, config=CONFIG, gate=gate)
    assert verify(tmp_path / "data").ok


def test_a_failed_commit_that_held_a_waiting_submits_whole_job_leaves_nothing_of_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(commit_module, "GROUP_COMMIT_S", 3600.0)

    async def body(kernel: Kernel) -> None:
        sid = await login(kernel, "alice", ["CAP_ALLOC"])
        data = tmp_path / "data"
        loop = asyncio.get_running_loop()
        refuse = lambda: kernel.store.db.execute("PRAGMA query_only=1")  # noqa: E731

        def on_line(record: dict[str, Any]) -> None:
            if record.get("state") == "COMPLETED":  # after its end's writes, before its commit
                loop.call_soon(refuse)

        kernel.audit.listeners.append(on_line)
        used = kernel.supervisor.results.usage["alice"]
        with pytest.raises(UnavailableError):
            await kernel.q_submit(session_id=sid, graph=BELL, shots=10, seed=1, wait_ms=60_000)
        kernel.audit.listeners.remove(on_line)
        kernel.store.db.execute("PRAGMA query_only=0")
        assert not kernel.supervisor.jobs and not kernel.supervisor.finished
        assert kernel.supervisor.results.usage["alice"] == used
        db = sqlite3.connect(f"file:{data / DB_FILE}?mode=ro", uri=True)
        try:
            assert db.execute("SELECT COUNT(*) FROM jobs").fetchone() == (0,)
            assert db.execute("SELECT COUNT(*) FROM usage").fetchone() == (0,)
        finally:
            db.close()
        # the next submit is kept as ever
        done = await kernel.q_submit(session_id=sid, graph=BELL, shots=10, seed=2, wait_ms=60_000)
        assert done.state == "COMPLETED" and committed(data, done.job_id) is not None

    run_kernel(tmp_path, body, config=CONFIG)
    assert verify(tmp_path / "data").ok


def test_jobs_whose_ends_were_in_a_failed_commit_are_never_answered_done_without_a_commit(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # no lazy commit within the test: the two ends wait in one transaction
    monkeypatch.setattr(commit_module, "GROUP_COMMIT_S", 3600.0)
    config = config_from_dict(
        {
            "machine": {"physical_qubits": 200_000},
            "tenants": {
                "alice": {"key": "alice-key", "caps": ["CAP_ALLOC"], "max_concurrent_jobs": 2}
            },
        }
    )

    async def body(kernel: Kernel) -> None:
        sid = await login(kernel, "alice", ["CAP_ALLOC"])
        data = tmp_path / "data"
        supervisor, audit = kernel.supervisor, kernel.audit
        ids = [
            (await kernel.q_submit(session_id=sid, graph=BELL, shots=10, seed=seed)).job_id
            for seed in (1, 2)
        ]
        await until(lambda: all(job_id in supervisor.running for job_id in ids))
        gate.release(2)
        jobs = [supervisor.job(job_id, "alice") for job_id in ids]
        lines: list[dict[str, Any]] = []
        audit.listeners.append(lines.append)  # each line as it is queued
        await until(lambda: all(job.final for job in jobs))
        assert jobs[0].ended_in == jobs[1].ended_in  # one batch: both ends in one commit
        flush = audit.flush
        written = [r for r in lines if r.get("state") == "COMPLETED"]
        monkeypatch.setattr(audit, "flush", disk_full)  # that commit fails
        waits = [kernel.q_wait(session_id=sid, job_id=job_id, timeout_ms=60_000) for job_id in ids]
        for answer in await asyncio.gather(*waits, return_exceptions=True):
            assert isinstance(answer, UnavailableError)
        monkeypatch.setattr(audit, "flush", flush)
        for job_id in ids:  # nothing of either end is kept
            assert committed(data, job_id)[0] in ("QUEUED", "RUNNING")  # type: ignore[index]
            assert "COMPLETED" not in audit_states(data, job_id)
        # asked again, each is answered done once its end, written again, is committed
        for job_id in ids:
            done = await kernel.q_wait(session_id=sid, job_id=job_id, timeout_ms=60_000)
            assert done.state == "COMPLETED"  # no await between the reply and these reads
            assert committed(data, job_id)[0] == "COMPLETED"  # type: ignore[index]
            assert audit_states(data, job_id).count("COMPLETED") == 1
            (line,) = (r for r in audit_lines(data, job_id) if r.get("state") == "COMPLETED")
            (first,) = (r for r in written if r["job_id"] == job_id)
            volatile = ("seq", "ts", "prev", "mac2")  # where it stands in the chain
            # the very end written first: its attestation (run request, result digests)
            assert {k: v for k, v in line.items() if k not in volatile} == {
                k: v for k, v in first.items() if k not in volatile
            }
            assert line["result_sha256"] and line["stored_sha256"]
        assert usage_ids(data) == sorted(f"{job_id}.1" for job_id in ids)

    with WorkerGate(tmp_path) as gate:
        run_kernel(tmp_path, body, config=config, gate=gate)
    assert verify(tmp_path / "data").ok


def test_a_failed_commit_of_a_kept_jobs_end_and_a_waiting_submits_whole_job_keeps_only_the_end(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(commit_module, "GROUP_COMMIT_S", 3600.0)

    async def body(kernel: Kernel) -> None:
        sid = await login(kernel, "alice", ["CAP_ALLOC"])
        data = tmp_path / "data"
        supervisor, audit = kernel.supervisor, kernel.audit
        kept = (await kernel.q_submit(session_id=sid, graph=BELL, shots=10, seed=1)).job_id
        job = supervisor.job(kept, "alice")
        await until(lambda: job.final)  # its acceptance committed, its end not yet
        flush = audit.flush

        def on_line(record: dict[str, Any]) -> None:
            if record.get("state") == "COMPLETED" and record.get("job_id") != kept:
                monkeypatch.setattr(audit, "flush", disk_full)  # the commit that holds both fails

        audit.listeners.append(on_line)
        with pytest.raises(UnavailableError):
            await kernel.q_submit(session_id=sid, graph=BELL, shots=10, seed=2, wait_ms=60_000)
        audit.listeners.remove(on_line)
        monkeypatch.setattr(audit, "flush", flush)
        # the waiting submit's job is taken back whole: nothing of it stays
        assert list(supervisor.finished) == [kept] and not supervisor.jobs
        done = await kernel.q_wait(session_id=sid, job_id=kept, timeout_ms=60_000)
        assert done.state == "COMPLETED" and committed(data, kept)[0] == "COMPLETED"  # type: ignore[index]
        states = audit_states(data, kept)  # (its start was in that commit too)
        assert states[0] == "QUEUED" and states.count("COMPLETED") == 1
        assert usage_ids(data) == [f"{kept}.1"]
        db = sqlite3.connect(f"file:{data / DB_FILE}?mode=ro", uri=True)
        try:
            assert db.execute("SELECT COUNT(*) FROM jobs").fetchone() == (1,)
        finally:
            db.close()

    run_kernel(tmp_path, body, config=CONFIG)
    assert verify(tmp_path / "data").ok
