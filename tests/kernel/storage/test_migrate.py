"""``qmk admin migrate``: a data directory an older kernel wrote is refused (QK105) until it
is brought forward once, and then reads as it ran: its jobs, their run requests, results
and graphs, and replays of its attest lines. The older forms are built here from what the
readers of before knew (the first schema's columns, graphs kept per job, rows without a run
request, results without an index, size or seal, attest lines with ``graph_sha256``)."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from qmk.execution.request import Policy, RunRequest, program_digest
from qmk.kernel.config import config_from_dict
from qmk.kernel.datafiles import DB_FILE
from qmk.kernel.errors import DataDirError
from qmk.kernel.records.encoded import encode_result
from qmk.kernel.security.replay import find_attestation, replay, request_of
from qmk.kernel.security.seals import derive, result_seal
from qmk.kernel.security.sessions import load_secret
from qmk.kernel.service import Kernel
from qmk.kernel.storage.audit import AuditLog
from qmk.kernel.storage.audit_verify import verify
from qmk.kernel.storage.datadir import open_data_dir
from qmk.kernel.storage.job_reads import unpack_graph
from qmk.kernel.storage.migrate import ADDED_COLUMNS, migrate
from qmk.kernel.storage.store import (
    GRAPH_APART,
    SCHEMA_KEY,
    SCHEMA_VERSION,
    Store,
)
from qmk.kernel.storage.trigger_rows import TriggerRows
from qmk.kernel.storage.usage_rows import UsageRows
from qmk.qvm.graph import compact_text
from support.cli import qmk
from support.kernel import BELL, FENCED, KEYS, chain_graph, login, make_config, run_kernel
from support.neutral_atom import gate, job
from support.tamper import unfinished_jobs

SHOTS, SEED = 300, 11


def _completed(tmp_path: Path) -> tuple[str, dict[str, Any]]:
    """A job run to completion by today's kernel: its id and its final reply."""

    async def body(kernel: Kernel) -> tuple[str, dict[str, Any]]:
        alice = await login(kernel, "alice")
        job = await kernel.q_submit(
            session_id=alice, graph=FENCED.to_json(), shots=SHOTS, seed=SEED, policy={}
        )
        done = await kernel.q_wait(session_id=alice, job_id=job.job_id, timeout_ms=60_000)
        assert done.state == "COMPLETED", done.error
        return job.job_id, done.to_json()

    return run_kernel(tmp_path, body, workers=1)  # type: ignore[no-any-return]


def _as_an_older_kernel_left_it(
    data: Path, job_id: str, *, graph_sha256: str | None = None
) -> None:
    """Rewrite the database and append the attest line as a kernel of the first format
    left them: no column added since (no run request, no result index, size or seal, no
    graph digest), the job's graph kept per job in ``job_graphs``, no format number; the
    job's newest attest line of the old form."""
    db = sqlite3.connect(data / DB_FILE)
    (graph,) = db.execute("SELECT graph FROM jobs WHERE job_id=?", (job_id,)).fetchone()
    db.execute("CREATE TABLE job_graphs (job_id TEXT PRIMARY KEY, graph TEXT NOT NULL)")
    db.execute("INSERT INTO job_graphs (job_id, graph) VALUES (?, ?)", (job_id, graph))
    db.execute("UPDATE jobs SET graph='' WHERE job_id=?", (job_id,))
    for index in ("jobs_cache", "jobs_idempotency"):
        db.execute(f"DROP INDEX {index}")
    for table, column, _ in ADDED_COLUMNS:
        db.execute(f"ALTER TABLE {table} DROP COLUMN {column}")
    db.execute("DELETE FROM meta WHERE key=?", (SCHEMA_KEY,))
    db.commit()
    db.close()
    record = find_attestation(data, job_id)
    assert record is not None
    request = request_of(record)
    old = {  # the fields an attest line had before: the run's inputs written out one by one
        "job_id": job_id,
        "tenant": "alice",
        "graph_sha256": graph_sha256 or program_digest(graph),
        "shots": request.shots,
        "seed": request.seed,
        "engine_requested": None,
        "engine": record["engine"],
        "noise": request.noise,
        "qubit": request.qubit,
        "profile": request.profile,
        "noise_model": request.noise_model,
        "calibration": None,
        "rewrite": None,
        "epochs": record["epochs"],
        "result_sha256": record["result_sha256"],
    }
    audit = AuditLog(data, load_secret(data))
    audit.append("attest", **old)
    audit.close()


def test_an_older_kernels_data_dir_is_refused_until_migrated_and_then_reads_as_it_ran(
    tmp_path: Path,
) -> None:
    data = tmp_path / "data"
    job_id, done = _completed(tmp_path)
    with sqlite3.connect(data / DB_FILE) as db:
        (graph,) = db.execute("SELECT graph FROM jobs WHERE job_id=?", (job_id,)).fetchone()
    _as_an_older_kernel_left_it(data, job_id)

    with pytest.raises(DataDirError) as refused:  # the store reads one format only
        Store(data)
    assert refused.value.code == "QK105" and "qmk admin migrate" in str(refused.value)
    with pytest.raises(Exception) as old_line:  # and the attest reader one form only
        request_of(find_attestation(data, job_id) or {})
    assert "qmk admin migrate" in str(old_line.value)

    status, out, err = qmk("admin", "migrate", str(data), "--json")
    assert status == 0, err
    report = json.loads(out)
    assert (report["version_from"], report["version_to"]) == (None, SCHEMA_VERSION)
    assert len(report["columns_added"]) == len(ADDED_COLUMNS)
    assert report["graphs_moved"] == 1 and report["requests_built"] == 1
    assert report["results_indexed"] == 1 and report["attest_lines"] == 1
    assert report["results_sealed"] == 1  # the one job stored before seals: sealed now
    again = qmk("admin", "migrate", str(data))
    assert again == (0, f"{data}: already of format {SCHEMA_VERSION}: nothing to do\n", "")
    assert verify(data).ok  # the audit chain is whole, the new lines in it

    store = Store(data)
    try:
        job = store.load_job(job_id, "alice")
    finally:
        store.close()
    assert job is not None and job.graph == graph
    machine = make_config().machine
    assert job.request == RunRequest(  # what the kernel of before ran it with
        program_digest=program_digest(graph),
        shots=SHOTS,
        seed=SEED,
        qubit=machine.qubit,
        profile=machine.profile,
        policy=Policy(timeout_ms=job.request.policy.timeout_ms),  # type: ignore[union-attr]
    )
    assert dict(job.result or {})["counts"] == done["result"]["counts"]

    record = find_attestation(data, job_id)
    assert record is not None and record["migrated_from"] is not None
    assert request_of(record).program_digest == program_digest(graph)
    assert replay(graph, record, job_id).same

    async def served(kernel: Kernel) -> None:
        alice = await login(kernel, "alice")
        status = await kernel.q_status(session_id=alice, job_id=job_id)
        assert status.state == "COMPLETED"
        assert dict(status.result)["counts"] == done["result"]["counts"]
        page = await kernel.q_get_result(session_id=alice, job_id=job_id, limit=2)
        assert page.entries == len(done["result"]["counts"]) and len(page.counts) == 2
        fresh = await kernel.q_submit(session_id=alice, graph=BELL, shots=10, seed=1)
        finished = await kernel.q_wait(session_id=alice, job_id=fresh.job_id, timeout_ms=60_000)
        assert finished.state == "COMPLETED"

    run_kernel(tmp_path, served, workers=1)


def test_an_old_attest_line_of_another_graph_is_brought_forward_and_replay_says_so(
    tmp_path: Path,
) -> None:
    data = tmp_path / "data"
    job_id, _ = _completed(tmp_path)
    with sqlite3.connect(data / DB_FILE) as db:
        (graph,) = db.execute("SELECT graph FROM jobs WHERE job_id=?", (job_id,)).fetchone()
    _as_an_older_kernel_left_it(data, job_id, graph_sha256="ab" * 32)
    migrate(data)
    record = find_attestation(data, job_id)
    assert record is not None and record["program_digest"] == "ab" * 32
    found = replay(graph, record, job_id)
    assert not found.same and "not the one the job ran" in found.reason


def test_a_current_or_new_data_dir_is_left_as_it_is_and_a_newer_one_is_refused(
    tmp_path: Path,
) -> None:
    empty = migrate(tmp_path / "none")
    assert not empty.changed and not (tmp_path / "none" / DB_FILE).exists()
    Store(tmp_path / "today").close()
    assert not migrate(tmp_path / "today").changed
    with sqlite3.connect(tmp_path / "today" / DB_FILE) as db:
        db.execute("UPDATE meta SET value='99' WHERE key=?", (SCHEMA_KEY,))
    for attempt in (lambda: Store(tmp_path / "today"), lambda: migrate(tmp_path / "today")):
        with pytest.raises(DataDirError) as newer:
            attempt()
        assert newer.value.code == "QK105" and "newer" in str(newer.value)
    status, _, err = qmk("admin", "migrate", str(tmp_path / "today"))
    assert status == 2 and err.startswith("QK105 data-dir-outdated:") and err.count("\n") == 1


# ------------------------------------------------------------- formats 2 and 3: seals from a job on


def _as_sealing_from_a_job(
    data: Path, before: list[str], after: list[str], *, version: int = 3, forged: bool = False
) -> None:
    """Rewrite the database as a kernel of format ``version`` (2 or 3) left it: its results
    stored before seals (the jobs ``before``) unsealed, with its ``result_seals_from``
    record (the first job after them, and its HMAC under the results' key; ``forged``: a
    wrong HMAC); the jobs ``after`` lost their seal to an edit."""
    key = derive(load_secret(data), "result")
    db = sqlite3.connect(data / DB_FILE)
    seq = dict(db.execute("SELECT job_id, seq FROM jobs").fetchall())
    first = str(min(seq[job] for job in after))
    mac = "00" * 32 if forged else result_seal(key, "", first, "seals-from")
    db.execute("UPDATE meta SET value=? WHERE key=?", (str(version), SCHEMA_KEY))
    db.execute("INSERT INTO meta (key, value) VALUES ('result_seals_from', ?)", (f"{first}:{mac}",))
    db.executemany(
        "UPDATE jobs SET result_seal=NULL WHERE job_id=?", [(job,) for job in before + after]
    )
    db.commit()
    db.close()


def _two_bells(tmp_path: Path) -> list[tuple[str, dict[str, int]]]:
    """Two Bell jobs run to completion by today's kernel, in order: their ids and counts."""

    async def body(kernel: Kernel) -> list[tuple[str, dict[str, int]]]:
        alice = await login(kernel, "alice")
        ran = []
        for seed in (1, 2):
            job = await kernel.q_submit(session_id=alice, graph=BELL, shots=SHOTS, seed=seed)
            done = await kernel.q_wait(session_id=alice, job_id=job.job_id, timeout_ms=60_000)
            assert done.state == "COMPLETED", done.error
            ran.append((job.job_id, dict(done.result)["counts"]))
        return ran

    return run_kernel(tmp_path, body, workers=1)  # type: ignore[no-any-return]


def _served(tmp_path: Path, job_ids: list[str]) -> list[Any]:
    """What a kernel serves of each job: its counts, or its result's coded error."""

    async def body(kernel: Kernel) -> list[Any]:
        alice = await login(kernel, "alice")
        out = []
        for job_id in job_ids:
            status = await kernel.q_status(session_id=alice, job_id=job_id)
            result = status.result
            out.append(status.result_error.code if result is None else dict(result)["counts"])
        return out

    return run_kernel(tmp_path, body, workers=1)  # type: ignore[no-any-return]


@pytest.mark.parametrize("version", [2, 3])
def test_results_stored_before_seals_are_sealed_by_the_migration_and_served_checked(
    tmp_path: Path, version: int
) -> None:
    """Formats 2 and 3 read the results of the jobs before their record unchecked; format
    4 reads every result against its seal: the migration seals those (and only those),
    so an edited result whose seal was dropped is still QK308, never counts."""
    data = tmp_path / "data"
    (old, old_counts), (edited, _) = _two_bells(tmp_path)
    _as_sealing_from_a_job(data, [old], [edited], version=version)
    with pytest.raises(DataDirError) as refused:
        Store(data)
    assert refused.value.code == "QK105" and f"format {version}" in str(refused.value)

    report = migrate(data)
    assert (report.version_from, report.version_to) == (version, SCHEMA_VERSION)
    assert report.results_sealed == 1
    with sqlite3.connect(data / DB_FILE) as db:
        keys = {key for (key,) in db.execute("SELECT key FROM meta")}
        seals = dict(db.execute("SELECT job_id, result_seal FROM jobs").fetchall())
    assert "result_seals_from" not in keys and seals[old] is not None and seals[edited] is None
    assert _served(tmp_path, [old, edited]) == [old_counts, "QK308"]
    assert not verify(data).ok  # audit verify says so too


def test_a_forged_record_of_where_seals_begin_seals_nothing(tmp_path: Path) -> None:
    data = tmp_path / "data"
    (old, _), (edited, _) = _two_bells(tmp_path)
    _as_sealing_from_a_job(data, [old], [edited], forged=True)
    assert migrate(data).results_sealed == 0
    assert _served(tmp_path, [old, edited]) == ["QK308", "QK308"]


# ------------------------------------------------------------------ before targets


def _device_config() -> Any:
    """alice may run device jobs too."""
    return config_from_dict(
        {
            "machine": {"physical_qubits": 200_000},
            "kernel": {"worker_memory_mb": 1024},
            "tenants": {"alice": {"key": KEYS["alice"], "caps": ["CAP_ALLOC", "CAP_DEVICE_NA"]}},
        }
    )


#: A device job's stream as a kernel of format 1 stored it (``StreamSpec`` written whole).
_OLD_STREAM = {"measurements": True, "pulses": False, "snapshots": []}


def _ran_before_targets(tmp_path: Path) -> dict[str, Any]:
    """A device job (timing strict, its measurements streamed) and a QVM job run to
    completion by today's kernel: their ids, counts and the device job's backend."""
    ghz = job(3, gate("H", 0), gate("CX", 0, 1), gate("CX", 1, 2), profile="benchmark_chain")

    async def body(kernel: Kernel) -> dict[str, Any]:
        alice = await login(kernel, "alice", ["CAP_ALLOC", "CAP_DEVICE_NA"])
        device = await kernel.q_submit(
            session_id=alice,
            graph=ghz,
            shots=SHOTS,
            seed=SEED,
            target="neutral-atom",
            policy={"strict_timing": True, "stream": {"measurements": True}},
        )
        qvm = await kernel.q_submit(session_id=alice, graph=BELL, shots=SHOTS, seed=SEED)
        out: dict[str, Any] = {"device": device.job_id, "qvm": qvm.job_id}
        for name in ("device", "qvm"):
            done = await kernel.q_wait(session_id=alice, job_id=out[name], timeout_ms=60_000)
            assert done.state == "COMPLETED", done.error
            out[f"{name}_counts"] = dict(done.result)["counts"]
            out[f"{name}_engine"] = dict(done.result)["engine"]
            out[f"{name}_result"] = json.loads(done.result.data)
        return out

    return run_kernel(tmp_path, body, workers=1, config=_device_config())  # type: ignore[no-any-return]


def _device_result_before_targets(result: dict[str, Any]) -> dict[str, Any]:
    """A device job's result as kernels before targets stored it: the device's own
    (``Result.to_json`` without measurements), not the result every target returns."""
    device = result["device"]
    return {
        "job_id": device["job_id"],
        "status": "completed",
        "device_id": device["backend"],
        "profile": device["profile"],
        "isa_version": device["isa_version"],
        "shots": result["shots"],
        "seed": result["seed"],
        "counts": device["counts"],
        "timeline_units": device["timeline_units"],
        "timeline": device["timeline"],
        "telemetry": device["telemetry"],
    }


def _store_device_result_before_targets(
    db: sqlite3.Connection, data: Path, ran: dict[str, Any]
) -> None:
    """The device job's result in the device's own form, sealed, and the COMPLETED line
    with its ``stored_sha256`` that such a kernel wrote."""
    stored = encode_result(_device_result_before_targets(ran["device_result"]))
    meta = json.dumps(dict(stored.meta), separators=(",", ":"))
    seal = result_seal(derive(load_secret(data), "result"), ran["device"], stored.sha256, meta)
    db.execute(
        "UPDATE jobs SET result=CAST(? AS TEXT), result_meta=?, result_bytes=?, result_seal=? "
        "WHERE job_id=?",
        (stored.data, meta, stored.nbytes, seal, ran["device"]),
    )
    audit = AuditLog(data, load_secret(data))
    audit.append(
        "job", job_id=ran["device"], tenant="alice", state="COMPLETED", stored_sha256=stored.sha256
    )
    audit.close()


def _as_before_targets(data: Path, ran: dict[str, Any], *, numbered: bool) -> None:
    """Rewrite the rows and append the QVM job's attest line as a kernel of format 1 (before
    targets) left them: every policy with its ``device`` key (null; ``"neutral-atom"`` for
    a device job, whose request named no target), the device job's program stored as
    ``{"job": the wire job with its shots, seed and backend, "strict_timing", "stream"}``
    and its result as the device's own. Not ``numbered``: as a kernel before formats had
    numbers left them too (no run requests nor any column added since the first format:
    device jobs came first)."""
    db = sqlite3.connect(data / DB_FILE)
    _store_device_result_before_targets(db, data, ran)
    for job_id, graph, policy_text, request_text in db.execute(
        "SELECT job_id, graph, policy, request FROM jobs"
    ).fetchall():
        policy, request = json.loads(policy_text), json.loads(request_text)
        request["policy"]["device"] = None
        if job_id == ran["device"]:
            wire = {**json.loads(graph), "shots": SHOTS, "seed": SEED}
            wire["device_id"] = ran["device_engine"]
            graph = json.dumps(
                {"job": wire, "strict_timing": True, "stream": _OLD_STREAM},
                separators=(",", ":"),
            )
            policy["device"] = request["policy"]["device"] = "neutral-atom"
            request.update(program_digest=program_digest(graph), target="logical")
            request["target_options"] = {}
        db.execute(
            "UPDATE jobs SET graph=?, policy=?, request=? WHERE job_id=?",
            (graph, json.dumps(policy), json.dumps(request), job_id),
        )
    db.execute("UPDATE meta SET value='1' WHERE key=?", (SCHEMA_KEY,))
    if numbered:  # programs' seals came with format 9: a kernel of format 1 wrote none
        db.execute("ALTER TABLE jobs DROP COLUMN program_seal")
    else:
        for index in ("jobs_cache", "jobs_idempotency"):
            db.execute(f"DROP INDEX {index}")
        for table, column, _ in ADDED_COLUMNS:
            db.execute(f"ALTER TABLE {table} DROP COLUMN {column}")
        db.execute("DELETE FROM meta WHERE key=?", (SCHEMA_KEY,))
    db.commit()
    db.close()
    record = find_attestation(data, ran["qvm"])
    assert record is not None
    old = {k: v for k, v in record.items() if k not in ("seq", "ts", "event", "prev", "mac")}
    old["policy"] = {**old["policy"], "device": None}
    audit = AuditLog(data, load_secret(data))
    audit.append("attest", **old)
    audit.close()


@pytest.mark.parametrize("numbered", [True, False], ids=["format-1", "unnumbered"])
def test_device_jobs_and_policies_of_before_targets_are_brought_forward_and_run_as_they_ran(
    tmp_path: Path, numbered: bool
) -> None:
    data = tmp_path / "data"
    ran = _ran_before_targets(tmp_path)
    _as_before_targets(data, ran, numbered=numbered)
    with pytest.raises(DataDirError) as refused:
        Store(data)
    assert refused.value.code == "QK105"
    assert ("format 1" if numbered else "format unnumbered") in str(refused.value)

    status, out, err = qmk("admin", "migrate", str(data), "--json")
    assert status == 0, err
    report = json.loads(out)
    assert report["version_from"] == (1 if numbered else None)
    assert report["version_to"] == SCHEMA_VERSION and report["device_jobs"] == 1
    assert report["device_results"] == 1
    # before run requests, only a device job's policy (in its own column) had the key
    assert report["policies_updated"] == (2 if numbered else 1)
    assert report["requests_built"] == (0 if numbered else 1) and report["attest_lines"] == 1
    assert verify(data).ok

    store = Store(data)
    try:
        device = store.load_job(ran["device"], "alice")
    finally:
        store.close()
    assert device is not None
    assert json.loads(device.graph)["device_id"] == ran["device_engine"]
    assert device.graph == compact_text(json.loads(device.graph))  # as admission stores it
    request = device.request
    assert request.target == "neutral-atom"
    assert request.program_digest == program_digest(device.graph)
    assert request.target_options == {"strict_timing": True, "stream": _OLD_STREAM}
    assert (request.shots, request.seed) == (SHOTS, SEED)
    record = find_attestation(data, ran["qvm"])
    assert record is not None and "device" not in record["policy"]
    assert replay(_stored_graph(data, ran["qvm"]), record, ran["qvm"]).same

    async def served(kernel: Kernel) -> None:
        alice = await login(kernel, "alice", ["CAP_ALLOC", "CAP_DEVICE_NA"])
        status = await kernel.q_status(session_id=alice, job_id=ran["device"])
        assert status.state == "COMPLETED"
        assert dict(status.result)["counts"] == ran["device_counts"]
        # the result every target returns, as today's kernel stored it; its wall time the
        # device's own (the run's around it was not kept), its backend named by the job (an
        # older kernel stored the wire job with the backend that ran it)
        result = json.loads(status.result.data)
        expected = ran["device_result"]
        telemetry = {
            **expected["telemetry"],
            "wall_time_s": expected["device"]["telemetry"]["elapsed_s"],
            "engine_reason": "named by the job",
        }
        assert result == {**expected, "telemetry": telemetry}
        page = await kernel.q_get_result(session_id=alice, job_id=ran["device"])
        assert page.counts == ran["device_counts"]
        for name in ("device", "qvm"):  # each runs again through its target: the same counts
            again = await kernel.q_replay(session_id=alice, job_id=ran[name])
            done = await kernel.q_wait(session_id=alice, job_id=again.job_id, timeout_ms=60_000)
            assert done.state == "COMPLETED", done.error
            assert dict(done.result)["counts"] == ran[f"{name}_counts"]

    run_kernel(tmp_path, served, workers=1, config=_device_config())


def test_an_edited_device_result_of_before_targets_is_not_sealed_again(tmp_path: Path) -> None:
    data = tmp_path / "data"
    ran = _ran_before_targets(tmp_path)
    _as_before_targets(data, ran, numbered=True)
    with sqlite3.connect(data / DB_FILE) as db:  # a count changed after the kernel sealed it
        (text,) = db.execute("SELECT result FROM jobs WHERE job_id=?", (ran["device"],)).fetchone()
        edited = text.replace('"counts":{"', '"counts":{"9', 1)
        assert edited != text
        db.execute("UPDATE jobs SET result=? WHERE job_id=?", (edited, ran["device"]))
    report = migrate(data)
    assert report.device_jobs == 1 and report.device_results == 0
    assert _stored_result_text(data, ran["device"]) == edited  # left as it was: QK308
    audit = verify(data)
    assert not audit.ok and "edited in kernel.db" in str(audit.reason)


def _stored_result_text(data: Path, job_id: str) -> str:
    with sqlite3.connect(data / DB_FILE) as db:
        (text,) = db.execute("SELECT result FROM jobs WHERE job_id=?", (job_id,)).fetchone()
    return str(text)


def _stored_graph(data: Path, job_id: str) -> str:
    """The stored graph of ``job_id``."""
    with sqlite3.connect(data / DB_FILE) as db:
        (graph,) = db.execute("SELECT graph FROM jobs WHERE job_id=?", (job_id,)).fetchone()
    return str(graph)


def _refused_then_migrated(data: Path, version: int) -> dict[str, Any]:
    """``data``, of format ``version``: refused by a store (QK105), then brought forward
    by ``qmk admin migrate``; its report."""
    with pytest.raises(DataDirError) as refused:
        Store(data)
    assert refused.value.code == "QK105" and f"format {version}" in str(refused.value)
    status, out, err = qmk("admin", "migrate", str(data), "--json")
    assert status == 0, err
    report: dict[str, Any] = json.loads(out)
    assert report["version_from"] == version
    return report


def test_a_format_2_data_dir_gets_the_trigger_tables_when_migrated(tmp_path: Path) -> None:
    """Format 3 added the workflow triggers' tables (``triggers``, ``trigger_runs``): a
    directory of format 2 is refused, then migrated, and its jobs read as they ran."""
    data = tmp_path / "data"
    job_id, _ = _completed(tmp_path)
    db = sqlite3.connect(data / DB_FILE)
    db.execute("DROP TABLE triggers")
    db.execute("DROP TABLE trigger_runs")
    db.execute("UPDATE meta SET value='2' WHERE key=?", (SCHEMA_KEY,))
    db.commit()
    db.close()
    report = _refused_then_migrated(data, 2)
    assert report["version_to"] == SCHEMA_VERSION
    store = Store(data)
    try:
        rows = TriggerRows(store)
        assert rows.all() == [] and rows.unfinished_runs() == []
        job = store.load_job(job_id, "alice")
        assert job is not None and job.state == "COMPLETED"
    finally:
        store.close()
    status, out, err = qmk("admin", "migrate", str(data), "--json")  # again: no change
    assert status == 0 and json.loads(out)["version_from"] == SCHEMA_VERSION, err


def test_a_format_4_data_dir_has_its_big_graphs_packed_when_migrated(tmp_path: Path) -> None:
    """Format 5 keeps a graph apart from its job's row packed (``pack_graph``): a
    directory of format 4, which kept the text, is refused, then migrated, and the job's
    graph reads back whole; the kernel runs it again from it."""
    data = tmp_path / "data"
    graph = chain_graph(2_000)
    text = compact_text(graph)
    assert len(text) >= GRAPH_APART

    async def body(kernel: Kernel) -> str:
        alice = await login(kernel, "alice")
        job = await kernel.q_submit(session_id=alice, graph=graph, shots=10, seed=3)
        done = await kernel.q_wait(session_id=alice, job_id=job.job_id, timeout_ms=60_000)
        assert done.state == "COMPLETED", done
        return str(job.job_id)

    job_id = run_kernel(tmp_path, body)
    with sqlite3.connect(data / DB_FILE) as db:  # as format 4 kept it
        (packed,) = db.execute("SELECT graph FROM graph_texts").fetchone()
        db.execute("UPDATE graph_texts SET graph=?", (unpack_graph(packed),))
        db.execute("UPDATE meta SET value='4' WHERE key=?", (SCHEMA_KEY,))
    assert _refused_then_migrated(data, 4)["graphs_packed"] == 1
    with sqlite3.connect(data / DB_FILE) as db:
        assert db.execute("SELECT typeof(graph) FROM graph_texts").fetchall() == [("blob",)]
    store = Store(data)
    try:
        job = store.load_job(job_id, "alice")
        assert job is not None and job.graph == text
    finally:
        store.close()


def test_a_format_5_data_dir_drops_the_indexes_format_6_keeps_no_more_when_migrated(
    tmp_path: Path,
) -> None:
    """Format 6 writes fewer pages a job: no index of every job's state (``jobs_state``;
    the jobs not ended have ``jobs_active``) nor of the usage rows' jobs (``usage_job``),
    and ``meta`` without rowids. A directory of format 5 is refused, then migrated: its
    indexes and ``meta`` are today's, ``meta``'s rows (the audit head) as they were, the
    audit log still verifies against them, and its job and usage read as they ran."""
    data = tmp_path / "data"
    job_id, _ = _completed(tmp_path)
    db = sqlite3.connect(data / DB_FILE)
    meta = sorted(db.execute("SELECT key, value FROM meta").fetchall())
    db.execute("DROP INDEX jobs_active")
    db.execute("CREATE INDEX jobs_state ON jobs (state)")
    db.execute("CREATE INDEX usage_job ON usage (job_id)")
    db.execute("CREATE TABLE meta_5 (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
    db.execute("INSERT INTO meta_5 SELECT key, value FROM meta")
    db.execute("DROP TABLE meta")
    db.execute("ALTER TABLE meta_5 RENAME TO meta")
    db.execute("UPDATE meta SET value='5' WHERE key=?", (SCHEMA_KEY,))
    db.commit()
    db.close()

    report = _refused_then_migrated(data, 5)
    assert report["version_to"] == SCHEMA_VERSION
    with sqlite3.connect(data / DB_FILE) as db:
        indexes = {
            name for (name,) in db.execute("SELECT name FROM sqlite_master WHERE type='index'")
        }
        (sql,) = db.execute("SELECT sql FROM sqlite_master WHERE name='meta'").fetchone()
        after = dict(db.execute("SELECT key, value FROM meta").fetchall())
    assert "jobs_state" not in indexes and "usage_job" not in indexes and "jobs_active" in indexes
    assert "WITHOUT ROWID" in sql
    moved = {SCHEMA_KEY, "audit_seq", "audit_head", "audit_offset"}  # its migrate line's head
    assert set(after) == {key for key, _ in meta}
    assert {key: after[key] for key, _ in meta if key not in moved} == {
        key: value for key, value in meta if key not in moved
    }
    assert verify(data).ok
    store = Store(data)
    try:
        job = store.load_job(job_id, "alice")
        assert job is not None and job.state == "COMPLETED"
        assert [row[0] for row in UsageRows(store).rows("alice", None, None, job_id, 10)] == [
            f"{job_id}.1"
        ]
        assert [job.job_id for job in store.active_jobs()] == []
    finally:
        store.close()


def test_a_format_6_data_dir_has_its_usage_rows_keyed_by_their_jobs_when_migrated(
    tmp_path: Path,
) -> None:
    """Format 7 keys the usage rows by their job's sequence number (``job_seq``,
    ``usage_of_job``), not by their ``usage_id``: a directory of format 6 is refused,
    then migrated, each row kept with its rowid (``q_usage`` orders ties by it) and its
    job's ``seq``, and a job's usage reads as it was."""
    data = tmp_path / "data"
    job_id, _ = _completed(tmp_path)
    db = sqlite3.connect(data / DB_FILE)
    columns = [row[1] for row in db.execute("PRAGMA table_info(usage)") if row[1] != "job_seq"]
    rows = db.execute(f"SELECT rowid, {', '.join(columns)} FROM usage").fetchall()
    (seq,) = db.execute("SELECT seq FROM jobs WHERE job_id=?", (job_id,)).fetchone()
    db.execute("DROP TABLE usage")
    kinds = {"usage_id": "TEXT PRIMARY KEY", "job_id": "TEXT", "tenant": "TEXT", "state": "TEXT"}
    db.execute(
        "CREATE TABLE usage ("
        + ", ".join(f"{column} {kinds.get(column, 'REAL')}" for column in columns)
        + ")"
    )
    db.execute("CREATE INDEX usage_tenant_end ON usage (tenant, ended_at)")
    marks = ", ".join("?" * (1 + len(columns)))
    db.executemany(
        f"INSERT INTO usage (rowid, {', '.join(columns)}) VALUES ({marks})",
        [(rowid + 10, *values) for rowid, *values in rows],  # rowids a table rebuild would lose
    )
    db.execute("UPDATE meta SET value='6' WHERE key=?", (SCHEMA_KEY,))
    db.commit()
    db.close()

    _refused_then_migrated(data, 6)
    with sqlite3.connect(data / DB_FILE) as db:
        after = db.execute(f"SELECT rowid, {', '.join(columns)}, job_seq FROM usage").fetchall()
        indexes = {
            name for (name,) in db.execute("SELECT name FROM sqlite_master WHERE type='index'")
        }
    assert after == [(rowid + 10, *values, seq) for rowid, *values in rows]
    assert {"usage_of_job", "usage_tenant_end"} <= indexes
    assert not any(name.startswith("sqlite_autoindex_usage") for name in indexes)
    store = Store(data)
    try:
        assert [row[0] for row in UsageRows(store).rows("alice", None, None, job_id, 10)] == [
            f"{job_id}.1"
        ]
    finally:
        store.close()


def test_a_format_7_data_dir_keeps_its_results_indexes_with_their_heads_when_migrated(
    tmp_path: Path,
) -> None:
    """Format 8 stores a result's index without its head (the result's text holds it): a
    directory of format 7, whose indexes hold it, is refused (a kernel of format 7 would
    read a head from an index that has none), then migrated with its rows as they were;
    its result reads with the head its index holds, checked by the seal it was written
    with, and an index edited since is still ``QK308``. Its index of a tenant's jobs by
    state goes, and one by submission order (``jobs_tenant``) takes its place."""
    data = tmp_path / "data"
    job_id, done = _completed(tmp_path)
    key = derive(load_secret(data), "result")
    db = sqlite3.connect(data / DB_FILE)
    (text,) = db.execute(
        "SELECT CAST(result AS BLOB) FROM jobs WHERE job_id=?", (job_id,)
    ).fetchone()
    stored = encode_result(json.loads(text))
    assert stored.data == text
    old_meta = json.dumps(dict(stored.meta), separators=(",", ":"))  # as format 7 wrote it
    assert '"head":' in old_meta
    seal = result_seal(key, job_id, stored.sha256, old_meta)
    db.execute(
        "UPDATE jobs SET result_meta=?, result_seal=? WHERE job_id=?", (old_meta, seal, job_id)
    )
    db.execute("DROP INDEX jobs_tenant")  # format 7's index of a tenant's jobs by state
    db.execute("CREATE INDEX jobs_tenant_state ON jobs (tenant, state)")
    db.execute("UPDATE meta SET value='7' WHERE key=?", (SCHEMA_KEY,))
    db.commit()
    db.close()

    report = _refused_then_migrated(data, 7)
    assert report["version_to"] == SCHEMA_VERSION == 9
    with sqlite3.connect(data / DB_FILE) as db:
        row = db.execute(
            "SELECT result_meta, result_seal FROM jobs WHERE job_id=?", (job_id,)
        ).fetchone()
        indexes = {
            name for (name,) in db.execute("SELECT name FROM sqlite_master WHERE type='index'")
        }
    assert row == (old_meta, seal)
    assert "jobs_tenant" in indexes and "jobs_tenant_state" not in indexes
    store = Store(data, seal_key=key)
    try:
        job = store.load_job(job_id, "alice")
        assert job is not None and job.result is not None and job.result_damage is None
        assert [j.job_id for j in store.list_jobs("alice", "COMPLETED", 5)] == [job_id]
        assert dict(job.result.head) == {k: v for k, v in done["result"].items() if k != "counts"}
        assert json.loads(job.result.data) == done["result"]
        store.db.execute(
            "UPDATE jobs SET result_meta=? WHERE job_id=?",
            (old_meta.replace('"shots":', '"shots": '), job_id),
        )
        edited = store.load_job(job_id, "alice")
        assert edited is not None and edited.result is None
        assert edited.result_damage is not None and edited.result_damage["code"] == "QK308"
    finally:
        store.close()


def test_an_old_result_whose_text_is_not_todays_keeps_its_head_in_the_index_it_gets(
    tmp_path: Path,
) -> None:
    """A result an older kernel stored without an index, in a text of another layout than
    today's (spaces, its counts last): the index the migration makes for it keeps the
    head (which a format 8 index reads from the text after the counts, where this text
    has none), so the job reads back with its head; one in today's layout gets an index
    without it."""
    data = tmp_path / "data"
    job_id, done = _completed(tmp_path)
    _as_an_older_kernel_left_it(data, job_id)
    value = done["result"]
    spaced = json.dumps(
        {**{k: v for k, v in value.items() if k != "counts"}, "counts": value["counts"]}
    )
    db = sqlite3.connect(data / DB_FILE)
    db.execute("UPDATE jobs SET result=? WHERE job_id=?", (spaced, job_id))
    db.commit()
    db.close()
    assert migrate(data).results_indexed == 1
    with sqlite3.connect(data / DB_FILE) as db:
        (meta,) = db.execute("SELECT result_meta FROM jobs WHERE job_id=?", (job_id,)).fetchone()
    assert "head" in json.loads(meta)
    store = Store(data, seal_key=derive(load_secret(data), "result"))
    try:
        job = store.load_job(job_id, "alice")
        assert job is not None and job.result is not None and job.result_damage is None
        assert dict(job.result.head) == {k: v for k, v in value.items() if k != "counts"}
    finally:
        store.close()


def test_a_format_8_data_dir_has_its_programs_sealed_when_migrated(tmp_path: Path) -> None:
    """Format 9 seals every job's program (``program_seal``): a directory of format 8,
    whose rows carry none, is refused, then migrated: each program whose text is the one
    its run request names is sealed, and its unfinished job runs when the kernel starts;
    one edited before the migration (its text not the digest its request names) is left
    unsealed, and its job ends ``QK310 program-tampered``, never run."""
    data = tmp_path / "data"
    alices, bobs = unfinished_jobs(tmp_path, BELL)
    db = sqlite3.connect(data / DB_FILE)
    db.execute("ALTER TABLE jobs DROP COLUMN program_seal")
    db.execute("UPDATE meta SET value='8' WHERE key=?", (SCHEMA_KEY,))
    (graph,) = db.execute("SELECT graph FROM jobs WHERE job_id=?", (bobs,)).fetchone()
    db.execute(
        "UPDATE jobs SET graph=? WHERE job_id=?", (graph.replace("APPLY_H", "APPLY_X"), bobs)
    )
    db.commit()
    db.close()

    report = _refused_then_migrated(data, 8)
    assert report["version_to"] == SCHEMA_VERSION and report["programs_sealed"] == 1
    assert report["columns_added"] == ["jobs.program_seal"]

    async def body(kernel: Kernel) -> None:
        alice, bob = await login(kernel, "alice"), await login(kernel, "bob")
        done = await kernel.q_wait(session_id=alice, job_id=alices, timeout_ms=60_000)
        assert done.state == "COMPLETED", done.error
        edited = await kernel.q_wait(session_id=bob, job_id=bobs, timeout_ms=60_000)
        assert edited.state == "FAILED" and edited.error.code == "QK310"

    run_kernel(tmp_path, body, workers=1)


def test_a_data_dir_without_its_audit_heads_offset_is_refused_until_migrated(
    tmp_path: Path,
) -> None:
    data = tmp_path / "data"
    job_id, done = _completed(tmp_path)
    with sqlite3.connect(data / DB_FILE) as db:  # as kernels before offsets left it
        db.execute("DELETE FROM meta WHERE key='audit_offset'")
    with pytest.raises(DataDirError) as refused:  # no reader of that form at run time
        open_data_dir(data)
    assert refused.value.code == "QK105" and f"qmk admin migrate {data}" in str(refused.value)

    status, _, err = qmk("admin", "migrate", str(data))
    assert status == 0, err
    with sqlite3.connect(data / DB_FILE) as db:
        (offset,) = db.execute("SELECT value FROM meta WHERE key='audit_offset'").fetchone()
    lines = (data / "audit.log").read_bytes().split(b"\n")
    assert int(offset) == sum(len(line) + 1 for line in lines[:-2])  # the head: the last line
    assert verify(data).ok

    async def served(kernel: Kernel) -> None:
        alice = await login(kernel, "alice")
        status = await kernel.q_status(session_id=alice, job_id=job_id)
        assert dict(status.result)["counts"] == done["result"]["counts"]

    run_kernel(tmp_path, served, workers=1)
