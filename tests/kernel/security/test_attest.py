"""Attestation: a completed job's inputs, epochs and result digest are chained into the
audit log, and ``qmk audit replay`` runs the job again and proves the same counts."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

from qmk.kernel.datafiles import AUDIT_FILE, DB_FILE
from qmk.kernel.records.stored import digest_counts
from qmk.kernel.security.attest import ATTEST_EVENT
from qmk.kernel.security.replay import attests, find_attestation
from qmk.kernel.security.sessions import load_secret
from qmk.kernel.storage.audit import AuditLog
from qmk.kernel.storage.audit_verify import verify
from support.cli import qmk
from support.kernel import login, run_kernel
from support.paths import EXAMPLES

#: Two epochs: a Bell pair, a fence, then a measured T-rotated qubit.
FENCED = json.loads((EXAMPLES / "bell.qvm.json").read_text())


def _fenced_graph() -> dict[str, Any]:
    graph = json.loads(json.dumps(FENCED))
    nodes = graph["program"]["nodes"]
    free = nodes.pop()  # FREE_LQ last
    nodes.append({"id": "fence", "op": "FENCE_EPOCH"})
    nodes.append({"id": "again", "op": "APPLY_H", "vqs": [free["vqs"][0]]})
    nodes.append(free)
    return graph


def _completed_job(tmp_path: Path) -> tuple[str, dict[str, Any]]:
    async def body(kernel: Any) -> tuple[str, dict[str, Any]]:
        sid = await login(kernel, "alice")
        job = await kernel.q_submit(session_id=sid, graph=_fenced_graph(), shots=300, seed=9)
        done = await kernel.q_wait(session_id=sid, job_id=job.job_id, timeout_ms=60_000)
        assert done.state == "COMPLETED", done.error
        return job.job_id, done

    return run_kernel(tmp_path, body)


def test_a_completed_job_is_attested_with_its_inputs_epochs_and_result_digest(
    tmp_path: Path,
) -> None:
    job_id, done = _completed_job(tmp_path)
    record = find_attestation(tmp_path / "data", job_id)
    assert record is not None
    assert record["shots"] == 300 and record["seed"] == 9 and record["tenant"] == "alice"
    assert record["result_sha256"] == digest_counts(done.result["counts"])
    epochs = record["epochs"]
    assert [e["epoch"] for e in epochs] == [0, 1]
    assert epochs[0]["ops"]["ALLOC_LQ"] == 1 and epochs[0]["allocated_qubits"] == 2
    assert epochs[1]["ops"] == {"APPLY_H": 1, "FREE_LQ": 1}


def test_a_completed_jobs_attestation_is_on_its_completed_line(tmp_path: Path) -> None:
    job_id, done = _completed_job(tmp_path)
    lines = (tmp_path / "data" / AUDIT_FILE).read_text().splitlines()
    records = [r for r in map(json.loads, lines) if r.get("job_id") == job_id]
    assert [(r["event"], r.get("state")) for r in records] == [
        ("job", "QUEUED"),
        ("job", "RUNNING"),
        ("job", "COMPLETED"),
    ]
    completed = records[-1]
    assert attests(completed) and completed == find_attestation(tmp_path / "data", job_id)
    # one record: the attestation, and what the job's stored row must hold
    assert completed["result_sha256"] == digest_counts(done.result["counts"])
    assert isinstance(completed["stored_sha256"], str) and completed["cache_hit"] is False


def test_an_attest_line_of_an_older_kernel_still_reads_replays_and_verifies(
    tmp_path: Path,
) -> None:
    job_id, _ = _completed_job(tmp_path)
    data = tmp_path / "data"
    record = find_attestation(data, job_id)
    assert record is not None
    # as kernels before 2026-11-26 wrote it: a line of its own with the same fields
    own = ("seq", "ts", "event", "state", "stored_sha256", "prev", "mac", "mac2")
    audit = AuditLog(data, load_secret(data))
    audit.append(ATTEST_EVENT, **{k: v for k, v in record.items() if k not in own})
    audit.close()
    older = find_attestation(data, job_id)
    assert older is not None and older["event"] == ATTEST_EVENT
    assert {k: v for k, v in older.items() if k not in own} == {
        k: v for k, v in record.items() if k not in own
    }
    status, out, err = qmk("audit", "replay", str(data), job_id)
    assert status == 0, err
    assert "the same counts" in out
    assert verify(data).ok


def test_audit_replay_proves_the_same_counts_and_catches_a_changed_graph(
    tmp_path: Path,
) -> None:
    job_id, _ = _completed_job(tmp_path)
    data = str(tmp_path / "data")
    status, out, err = qmk("audit", "replay", data, job_id)
    assert status == 0, err
    assert "replayed 300 shots over 2 epochs: the same counts" in out
    status, out, _ = qmk("audit", "replay", data, job_id, "--json")
    assert status == 0 and json.loads(out)["same"] is True
    with sqlite3.connect(tmp_path / "data" / DB_FILE) as db:
        (graph,) = db.execute("SELECT graph FROM jobs WHERE job_id = ?", (job_id,)).fetchone()
        db.execute(
            "UPDATE jobs SET graph = ? WHERE job_id = ?",
            (graph.replace("APPLY_H", "APPLY_X"), job_id),
        )
    status, out, err = qmk("audit", "replay", data, job_id)  # verify finds it first
    assert status == 1 and f"job {job_id}'s stored program differs from the seal" in err


def test_audit_replay_of_an_unknown_job_is_a_coded_error(tmp_path: Path) -> None:
    _completed_job(tmp_path)
    status, out, err = qmk("audit", "replay", str(tmp_path / "data"), "job_nope")
    assert status == 2 and out == ""
    assert err.startswith("QW012 no-attestation:") and len(err.splitlines()) == 1
