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

from qmk.execution import executor
from qmk.kernel.config import config_from_dict
from qmk.kernel.datafiles import DB_FILE
from qmk.kernel.running import book as book_module
from qmk.kernel.service import Kernel
from qmk.kernel.storage import commit as commit_module
from qmk.kernel.storage.audit import verify
from qmk.kernel.storage.commit import GROUP_COMMIT_S
from support.kernel import BELL, login, run_kernel

CONFIG = config_from_dict(
    {
        "machine": {"physical_qubits": 200_000},
        "tenants": {"alice": {"key": "alice-key", "caps": ["CAP_ALLOC"], "max_queued_jobs": 50}},
    }
)


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
            row = committed(data, job["job_id"])
            assert row is not None, "a job was acknowledged before its commit"
            assert "QUEUED" in audit_states(data, job["job_id"])

    run(tmp_path, body)


def test_a_finished_job_reaches_the_database_within_the_group_commit_window(
    tmp_path: Path,
) -> None:
    async def body(kernel: Kernel, sid: str, data: Path) -> None:
        job = await kernel.q_submit(session_id=sid, graph=BELL, shots=200, seed=11)
        done = await kernel.q_wait(session_id=sid, job_id=job["job_id"], timeout_ms=20000)
        assert done["state"] == "COMPLETED"
        await asyncio.sleep(GROUP_COMMIT_S * 5)  # no request asks for durability meanwhile
        state, result = committed(data, job["job_id"])  # type: ignore[misc]
        assert state == "COMPLETED"
        assert result["counts"] == executor.run(BELL, shots=200, seed=11).counts
        states = audit_states(data, job["job_id"])
        assert states == ["QUEUED", "RUNNING", "COMPLETED"]
        # the start's check of the capabilities is on its RUNNING line (no line of its own)
        lines = map(json.loads, (data / "audit.log").read_text().splitlines())
        (running,) = (
            r for r in lines if r.get("job_id") == job["job_id"] and r.get("state") == "RUNNING"
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
            (await kernel.q_submit(session_id=sid, graph=BELL, shots=64, seed=s))["job_id"]
            for s in range(5)
        ]
        finals = [
            await kernel.q_wait(session_id=sid, job_id=job_id, timeout_ms=20000) for job_id in ids
        ]
        assert len(kernel.supervisor.finished) == 2  # the cache holds only the newest finished jobs
        again = [await kernel.q_status(session_id=sid, job_id=job_id) for job_id in ids]
        assert again == finals
        for seed, job in enumerate(again):
            assert job["result"]["counts"] == executor.run(BELL, shots=64, seed=seed).counts

    run(tmp_path, body)


def test_q_wait_answers_a_final_state_only_once_it_is_committed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # a job's end is committed lazily; with a window of an hour, only the wait's own
    # urgent commit can have put COMPLETED in the database before the reply
    monkeypatch.setattr(commit_module, "GROUP_COMMIT_S", 3600.0)

    async def body(kernel: Kernel, sid: str, data: Path) -> None:
        job = await kernel.q_submit(session_id=sid, graph=BELL, shots=100, seed=5)
        done = await kernel.q_wait(session_id=sid, job_id=job["job_id"], timeout_ms=60_000)
        assert done["state"] == "COMPLETED"
        row = committed(data, job["job_id"])  # no await between the reply and this read
        assert row is not None and row[0] == "COMPLETED"
        assert not kernel.supervisor.commits.pending
        again = await kernel.q_wait(session_id=sid, job_id=job["job_id"], timeout_ms=0)
        assert again == done

    run(tmp_path, body)
