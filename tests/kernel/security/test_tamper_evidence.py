"""Tamper evidence past the audit log: a stored result edited in ``kernel.db`` is never
served (``QK308``), and ``qmk audit verify`` and ``qmk audit replay`` say so."""

from __future__ import annotations

import asyncio
import json
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from qmk.errors import StateError
from qmk.execution.runs import run
from qmk.kernel.datafiles import AUDIT_FILE, DB_FILE, SECRET_FILE
from qmk.kernel.security.replay import attests
from qmk.kernel.service import Kernel
from qmk.kernel.storage.audit import chain_hash
from qmk.kernel.storage.audit_verify import verify
from support.cli import qmk
from support.kernel import BELL, login, make_config

SHOTS, SEED = 400, 17


def completed_job(data_dir: Path) -> str:
    """A Bell job run to COMPLETED in a kernel on ``data_dir`` (closed after); its id."""

    async def main() -> str:
        kernel = await Kernel.open(make_config(), data_dir)
        try:
            sid = await login(kernel, "alice")
            job = await kernel.q_submit(session_id=sid, graph=BELL, shots=SHOTS, seed=SEED)
            done = await kernel.q_wait(session_id=sid, job_id=job.job_id, timeout_ms=60_000)
            assert done.state == "COMPLETED"
            return str(job.job_id)
        finally:
            await kernel.close()

    return asyncio.run(main())


def forge(data_dir: Path, job_id: str) -> dict[str, int]:
    """Swap the Bell counts of ``job_id``'s stored result for 00 and 11 (what an editor
    of kernel.db would do), its index and size left as they were; the forged counts."""
    db = sqlite3.connect(data_dir / DB_FILE)
    try:
        (text,) = db.execute("SELECT result FROM jobs WHERE job_id=?", (job_id,)).fetchone()
        result = json.loads(text)
        counts = result["counts"]
        forged = {"00": counts["11"], "11": counts["00"]}
        assert forged != counts
        edited = text.replace(
            f'"00":{counts["00"]},"11":{counts["11"]}', f'"00":{forged["00"]},"11":{forged["11"]}'
        )
        assert edited != text
        db.execute("UPDATE jobs SET result=? WHERE job_id=?", (edited, job_id))
        db.commit()
    finally:
        db.close()
    return forged


def served(data_dir: Path, job_id: str) -> tuple[dict[str, Any], StateError | None]:
    """``q_status`` of ``job_id`` from a kernel opened on ``data_dir``, and the error of
    ``q_get_result`` (None when it answered)."""

    async def main() -> tuple[dict[str, Any], StateError | None]:
        kernel = await Kernel.open(make_config(), data_dir)
        try:
            sid = await login(kernel, "alice")
            status = await kernel.q_status(session_id=sid, job_id=job_id)
            try:
                await kernel.q_get_result(session_id=sid, job_id=job_id)
            except StateError as exc:
                return status, exc
            return status, None
        finally:
            await kernel.close()

    return asyncio.run(main())


def test_an_untouched_result_is_served_and_verified_with_its_digest_in_the_chain(
    tmp_path: Path,
) -> None:
    data = tmp_path / "data"
    job_id = completed_job(data)
    status, error = served(data, job_id)
    assert error is None
    assert status.result["counts"] == run(BELL, shots=SHOTS, seed=SEED).counts
    lines = [json.loads(line) for line in (data / AUDIT_FILE).read_text().splitlines()]
    done = [r for r in lines if r.get("state") == "COMPLETED" and r.get("job_id") == job_id]
    assert len(done) == 1 and len(done[0]["stored_sha256"]) == 64
    report = verify(data)
    assert report.ok and report.results_checked == 1


def test_a_result_edited_in_the_database_is_a_coded_error_not_the_forged_counts(
    tmp_path: Path,
) -> None:
    data = tmp_path / "data"
    job_id = completed_job(data)
    forge(data, job_id)
    status, error = served(data, job_id)
    assert status.result is None
    assert status.result_error.code == "QK308"
    assert error is not None and error.details.get("code") == "QK308"


def test_audit_verify_and_replay_refuse_a_result_edited_in_the_database(
    tmp_path: Path,
) -> None:
    data = tmp_path / "data"
    job_id = completed_job(data)
    code, out, err = qmk("audit", "replay", str(data), job_id)
    assert code == 0 and "the same counts" in out, err
    forge(data, job_id)
    report = verify(data)
    assert not report.ok and job_id in str(report.reason)
    code, out, err = qmk("audit", "verify", str(data))
    assert code == 1 and job_id in err and out == ""
    code, out, err = qmk("audit", "replay", str(data), job_id)
    assert code == 1 and "the same counts" not in out and job_id in err


def test_a_result_edited_with_its_seal_dropped_is_never_served_and_verify_finds_it(
    tmp_path: Path,
) -> None:
    """Every stored result carries its seal (an older kernel's were sealed by ``qmk admin
    migrate``), so one without its seal is no result the kernel wrote; and a reader
    without the secret finds the edit by the COMPLETED line's stored_sha256."""
    data = tmp_path / "data"
    job_id = completed_job(data)
    forge(data, job_id)
    db = sqlite3.connect(data / DB_FILE)
    db.execute("UPDATE jobs SET result_seal=NULL WHERE job_id=?", (job_id,))
    # format 2 read every result unchecked below this record, and one deleted was
    # recorded anew from the next job on: a dropped seal then passed at read
    db.execute("DELETE FROM meta WHERE key='result_seals_from'")
    db.commit()
    db.close()
    status, error = served(data, job_id)
    assert status.result is None and status.result_error.code == "QK308"
    assert error is not None and error.details.get("code") == "QK308"
    report = verify(data)
    assert not report.ok and "the seal the kernel wrote" in str(report.reason)
    (data / SECRET_FILE).rename(tmp_path / "away")  # no secret: no seal to check
    report = verify(data)  # the COMPLETED line's stored_sha256 is in the signed chain
    assert not report.ok and "stored_sha256" in str(report.reason)


def test_a_results_head_edited_in_its_text_is_found_when_served(tmp_path: Path) -> None:
    """The head a result is read back with (its members after the counts: shots,
    telemetry) is its text's (format 8 keeps none in its index): an edit of it there is
    ``QK308``, as an edit of its counts is."""
    data = tmp_path / "data"
    job_id = completed_job(data)
    db = sqlite3.connect(data / DB_FILE)
    (text, meta) = db.execute(
        "SELECT result, result_meta FROM jobs WHERE job_id=?", (job_id,)
    ).fetchone()
    assert "head" not in json.loads(meta) and f'"shots":{SHOTS}' in text
    edited = text.replace(f'"shots":{SHOTS}', f'"shots":{SHOTS + 1}')
    db.execute("UPDATE jobs SET result=? WHERE job_id=?", (edited, job_id))
    db.commit()
    db.close()
    status, error = served(data, job_id)
    assert status.result is None and status.result_error.code == "QK308"
    assert error is not None and error.details.get("code") == "QK308"


@pytest.mark.parametrize("edit", ["seal", "meta"])
def test_a_seal_or_index_edited_alone_is_found_when_served(tmp_path: Path, edit: str) -> None:
    data = tmp_path / "data"
    job_id = completed_job(data)
    db = sqlite3.connect(data / DB_FILE)
    column = "result_seal" if edit == "seal" else "result_meta"
    (value,) = db.execute(f"SELECT {column} FROM jobs WHERE job_id=?", (job_id,)).fetchone()
    changed = ("0" if value[0] != "0" else "1") + value[1:] if edit == "seal" else value + " "
    db.execute(f"UPDATE jobs SET {column}=? WHERE job_id=?", (changed, job_id))
    db.commit()
    db.close()
    status, error = served(data, job_id)
    assert status.result is None and status.result_error.code == "QK308"
    assert error is not None


# --------------------------------------------------------------------------- checkpoints


def _edit_state(path: Path, what: str) -> None:
    """Edit the state file ``path`` as a forger without the kernel's key would: its
    shot-group index or its running branch's random stream changed in the manifest, the
    archive written again, the old trailer (seal) kept at its end."""
    import io

    import numpy as np

    from qmk.kernel.security.seals import STATE_TRAILER

    data = path.read_bytes()
    cut = data.rfind(STATE_TRAILER)
    body, trailer = (data[:cut], data[cut:]) if cut >= 0 else (data, b"")
    with np.load(io.BytesIO(body), allow_pickle=False) as archive:
        arrays = {name: archive[name] for name in archive.files}
    manifest = json.loads(bytes(arrays["manifest"]).decode())
    if what == "group":
        manifest["group"] = int(manifest["group"]) + 1
    else:
        rng = manifest["branches"][-1]["rng"]["state"]
        rng["state"] = int(rng["state"]) ^ 0x5DEECE66D
    arrays["manifest"] = np.frombuffer(json.dumps(manifest).encode(), dtype=np.uint8)
    out = io.BytesIO()
    np.savez(out, **arrays)
    path.write_bytes(out.getvalue() + trailer)


@pytest.mark.parametrize("what", ["group", "rng"])
def test_an_edited_checkpoint_is_refused_on_restore_not_run_and_attested(
    tmp_path: Path, what: str
) -> None:
    from support.kernel import FENCED, WorkerGate, run_kernel, wait_state

    async def body(kernel: Kernel) -> None:
        alice = await login(kernel, "alice")
        job = await kernel.q_submit(
            session_id=alice, graph=FENCED.to_json(), shots=500, seed=17, policy={"noise": False}
        )
        job_id = job.job_id
        await wait_state(kernel, alice, job_id, "RUNNING")  # held at its first fence
        checkpoint = await kernel.q_checkpoint(session_id=alice, job_id=job_id)
        assert checkpoint.saved is True
        pause.open()
        done = await kernel.q_wait(session_id=alice, job_id=job_id, timeout_ms=60_000)
        assert done.state == "COMPLETED"
        (state,) = (tmp_path / "data" / "checkpoints" / job_id).glob("*.qmkstate")
        _edit_state(state, what)
        await kernel.q_restore(
            session_id=alice, job_id=job_id, checkpoint_id=checkpoint.checkpoint_id
        )
        again = await kernel.q_wait(session_id=alice, job_id=job_id, timeout_ms=60_000)
        assert again.state == "FAILED", again
        assert again.error.code == "QK309"
        records = map(json.loads, (tmp_path / "data" / AUDIT_FILE).read_text().splitlines())
        attested = [r for r in records if attests(r) and r.get("job_id") == job_id]
        assert len(attested) == 1  # the first run only

    with WorkerGate(tmp_path, "pause-gate") as pause:
        run_kernel(tmp_path, body, workers=1, pause=pause)


# --------------------------------------------------------------------------- start-up check


def _open(data_dir: Path, *, recover: bool = False) -> None:
    async def main() -> None:
        kernel = await Kernel.open(make_config(), data_dir, recover=recover)
        await kernel.close()

    asyncio.run(main())


def _refused(data_dir: Path) -> str:
    from qmk.kernel.errors import DataDirError

    with pytest.raises(DataDirError) as caught:
        _open(data_dir)
    assert caught.value.code == "QK103"
    return caught.value.message


def test_swapped_audit_lines_in_the_middle_stop_the_start_unless_told_to_recover(
    tmp_path: Path,
) -> None:
    data = tmp_path / "data"
    completed_job(data)
    lines = (data / AUDIT_FILE).read_bytes().splitlines(keepends=True)
    assert len(lines) >= 6
    lines[2], lines[3] = lines[3], lines[2]
    (data / AUDIT_FILE).write_bytes(b"".join(lines))
    assert "audit line 3 does not chain on" in _refused(data)
    _open(data, recover=True)
    _open(data)  # accepted once, recorded: the next start checks from there


def test_a_forged_line_after_the_head_stops_the_start_unless_told_to_recover(
    tmp_path: Path,
) -> None:
    data = tmp_path / "data"
    completed_job(data)
    lines = (data / AUDIT_FILE).read_bytes().splitlines()
    last = json.loads(lines[-1])
    forged = {
        "seq": last["seq"] + 1,
        "ts": last["ts"],
        "event": "job",
        "job_id": "job_forged",
        "tenant": "alice",
        "state": "COMPLETED",
        "prev": chain_hash(lines[-1]),
        "mac2": "0" * 64,  # whoever forges it has no secret
    }
    with open(data / AUDIT_FILE, "ab") as handle:
        handle.write(json.dumps(forged, separators=(",", ":")).encode() + b"\n")
    assert f"audit line {forged['seq']}'s mac does not match" in _refused(data)
    _open(data, recover=True)
    _open(data)


def test_each_start_records_the_line_its_check_reached(tmp_path: Path) -> None:
    from qmk.kernel.datafiles import SECRET_FILE
    from qmk.kernel.security.seals import derive
    from qmk.kernel.storage.store import verified_audit_head

    data = tmp_path / "data"
    completed_job(data)
    lines = (data / AUDIT_FILE).read_bytes().splitlines()
    key = derive((data / SECRET_FILE).read_bytes(), "audit-head")
    checked = verified_audit_head(data, key)
    assert checked == (0, "0" * 64, 0)  # the first start found an empty log
    _open(data)
    assert verified_audit_head(data, key) == (len(lines), *tail_of(data, len(lines)))


def tail_of(data_dir: Path, seq: int) -> tuple[str, int]:
    """(chain hash, byte offset) of audit line ``seq`` of ``data_dir``."""
    raw = (data_dir / AUDIT_FILE).read_bytes()
    lines = raw.splitlines(keepends=True)
    offset = sum(len(line) for line in lines[: seq - 1])
    return chain_hash(lines[seq - 1].rstrip(b"\n")), offset
