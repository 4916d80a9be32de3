"""The audit log's hash chain: every edit, removal, reordering and truncation is found."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from qmk.kernel.datafiles import AUDIT_FILE, SECRET_FILE
from qmk.kernel.security.sessions import load_secret
from qmk.kernel.storage.audit import AuditLog, verify
from qmk.kernel.storage.store import Store


def write_log(data_dir: Path, lines: int = 6) -> list[bytes]:
    """A log of ``lines`` records with the chain head committed to the store, as the kernel does."""
    store = Store(data_dir)
    log = AuditLog(data_dir, load_secret(data_dir))
    for i in range(lines):
        log.append("job", job_id=f"job_{i}", tenant="alice", state="QUEUED")
        store.commit(log.flush())
    log.close()
    store.close()
    return (data_dir / AUDIT_FILE).read_bytes().splitlines(keepends=True)


def rewrite(data_dir: Path, lines: list[bytes]) -> None:
    (data_dir / AUDIT_FILE).write_bytes(b"".join(lines))


def test_an_untouched_log_verifies(tmp_path: Path) -> None:
    write_log(tmp_path)
    report = verify(tmp_path)
    assert report.ok and report.lines == 6 and report.head_checked and report.macs_checked


def test_the_chain_continues_across_reopen(tmp_path: Path) -> None:
    write_log(tmp_path, 3)
    write_log(tmp_path, 3)
    assert verify(tmp_path).ok and verify(tmp_path).lines == 6


def test_an_edited_line_is_found(tmp_path: Path) -> None:
    lines = write_log(tmp_path)
    lines[2] = lines[2].replace(b'"QUEUED"', b'"COMPLETED"')
    rewrite(tmp_path, lines)
    report = verify(tmp_path)
    assert not report.ok and report.first_bad_line == 3 and "mac" in report.reason


def test_an_edited_last_line_is_found(tmp_path: Path) -> None:
    lines = write_log(tmp_path)
    record = json.loads(lines[-1])
    record["tenant"] = "bob"
    lines[-1] = json.dumps(record, separators=(",", ":")).encode() + b"\n"
    rewrite(tmp_path, lines)
    assert verify(tmp_path).first_bad_line == 6


def test_a_removed_line_is_found(tmp_path: Path) -> None:
    lines = write_log(tmp_path)
    del lines[3]
    rewrite(tmp_path, lines)
    report = verify(tmp_path)
    assert not report.ok and report.first_bad_line == 4


def test_swapped_lines_are_found(tmp_path: Path) -> None:
    lines = write_log(tmp_path)
    lines[1], lines[2] = lines[2], lines[1]
    rewrite(tmp_path, lines)
    assert verify(tmp_path).first_bad_line == 2


@pytest.mark.parametrize("keep", [0, 3, 5])
def test_a_removed_tail_is_found_from_the_head_in_the_database(tmp_path: Path, keep: int) -> None:
    lines = write_log(tmp_path)
    rewrite(tmp_path, lines[:keep])
    report = verify(tmp_path)
    assert not report.ok and "removed from the end" in report.reason
    assert report.lines == keep and report.first_bad_line == keep + 1 and report.head_checked


def test_an_edited_last_line_is_found_from_the_head_without_the_secret(tmp_path: Path) -> None:
    """Without the secret no mac is checked, and the last line has no next line to
    chain to it: the head the database recorded is what finds the edit."""
    lines = write_log(tmp_path)
    lines[-1] = lines[-1].replace(b'"alice"', b'"bob"')
    rewrite(tmp_path, lines)
    (tmp_path / SECRET_FILE).unlink()
    report = verify(tmp_path)
    assert not report.ok and report.reason == "line 6 differs from the head the database recorded"
    assert report.lines == 6 and report.first_bad_line == 6
    assert report.head_checked and not report.macs_checked


def test_a_log_rewritten_without_the_secret_is_found(tmp_path: Path) -> None:
    """Recomputing every prev hash is not enough: the macs need the kernel secret."""
    import hashlib

    lines = write_log(tmp_path)
    prev = "0" * 64
    out = []
    for raw in lines:
        record = json.loads(raw)
        record["prev"] = prev
        record["tenant"] = "mallory"
        text = json.dumps(record, separators=(",", ":"))
        prev = hashlib.sha256(text.encode()).hexdigest()
        out.append(text.encode() + b"\n")
    rewrite(tmp_path, out)
    report = verify(tmp_path)
    assert not report.ok and report.first_bad_line == 1


def test_failed_negotiations_are_audited_once_per_window_then_as_a_count(
    tmp_path: Path,
) -> None:
    import asyncio

    from qmk.errors import AuthError
    from qmk.kernel.clock import ManualClock
    from qmk.kernel.service import Kernel
    from support.kernel import run_kernel

    clock = ManualClock()

    async def body(kernel: Kernel) -> None:
        for i in range(500):
            with pytest.raises(AuthError):
                await kernel.q_negotiate_caps(tenant=f"x{i % 20}", key="wrong", requested=[])
        clock.advance(2.0)  # the next window: one more line in full, after the summary
        with pytest.raises(AuthError):
            await kernel.q_negotiate_caps(tenant="alice", key="wrong", requested=[])
        await asyncio.sleep(0)

    run_kernel(tmp_path, body, workers=1, clock=clock)
    lines = (tmp_path / "data" / "audit.log").read_text().splitlines()
    auth = [r for r in map(json.loads, lines) if r.get("decision") == "auth"]
    assert [r.get("failures") for r in auth] == [None, 499, None]
    assert auth[0]["tenant"] == "x0" and auth[2]["tenant"] == "alice"
    assert len(auth[1]["tenants"]) == 8  # a bounded sample of the names tried


def test_a_line_reads_back_as_its_record_and_says_so_in_ascii() -> None:
    from qmk.kernel.storage.audit import _encode_line

    record = {
        "seq": 7,
        "ts": 1795590556.964053,
        "event": "attest",
        "tenant": "bob",
        "rate": 9.034463646286873e-07,
        "epochs": [{"ops": {"APPLY_H": 1}, "caps": ["CAP_ALLOC"]}],
        "engine": None,
        "cache_hit": False,
    }
    for tenant in ("bob", "bób"):  # the second goes through the escaping encoder
        line = _encode_line({**record, "tenant": tenant})
        assert line.isascii() and json.loads(line) == {**record, "tenant": tenant}
        assert " " not in line  # compact: the MAC marker is found at the line's end


def test_each_line_is_its_records_text_then_its_mac_chained_by_the_hash_of_the_last(
    tmp_path: Path,
) -> None:
    # the text a line has had since the log began: the record's compact ASCII JSON
    # (seq, ts, event, the fields in order, prev), its HMAC-SHA256 under the secret
    # appended as the last member; prev is the SHA-256 of the line before
    import hashlib
    import hmac

    from qmk.kernel.storage.audit import GENESIS, _encode_line

    secret = b"s" * 32
    log = AuditLog(tmp_path, secret)
    log.append("cap", tenant="bób", granted=["CAP_ALLOC"], denied=[], decision="grant")
    log.append("job", job_id="job_1", tenant="alice", state="QUEUED", seed=7)
    log.flush()
    log.append("attest", job_id="job_1", epochs=[{"ops": {"APPLY_H": 1}}], rate=1e-7)
    log.close()
    prev = GENESIS
    for raw in (tmp_path / AUDIT_FILE).read_bytes().splitlines():
        record = json.loads(raw)
        mac = record.pop("mac")
        assert record["prev"] == prev and list(record)[:3] == ["seq", "ts", "event"]
        body = _encode_line(record)
        assert mac == hmac.new(secret, body.encode(), hashlib.sha256).hexdigest()
        assert raw == f'{body[:-1]},"mac":"{mac}"}}'.encode()
        prev = hashlib.sha256(raw).hexdigest()
    assert log.head == prev
