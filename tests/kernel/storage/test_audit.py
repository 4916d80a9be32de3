"""The audit log's hash chain: every edit, removal, reordering and truncation is found."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from qmk.kernel.datafiles import AUDIT_FILE, SECRET_FILE
from qmk.kernel.security.sessions import load_secret
from qmk.kernel.storage import audit
from qmk.kernel.storage.audit import AuditLog
from qmk.kernel.storage.audit_verify import verify
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
    from qmk.kernel.manual_clock import ManualClock
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


@pytest.mark.parametrize("tenant", ["alice", "álice"])  # the second: the escaping encoder
def test_a_line_of_a_run_request_is_the_line_of_its_fields_made_plain_data(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, tenant: str
) -> None:
    from types import SimpleNamespace

    from qmk.execution.request import MachineRun, Policy, Rewrite, RunRequest

    # both logs' lines at one time: the same text
    monkeypatch.setattr(audit, "time", SimpleNamespace(time=lambda: 1795590556.964053))
    request = RunRequest(
        program_digest="ab" * 32,
        shots=100,
        seed=7,
        noise_model={"p1": 1e-07, "name": "dépolarisant"},
        rewrite=Rewrite(),
        machine=MachineRun(arrival_cycle=1, start_cycle=3, end_cycle=9, tiles=9, module=0),
        policy=Policy(priority=3, channels={"c": "chan_1"}),
    )
    head = {"job_id": "job_1", "tenant": tenant, "state": "COMPLETED"}
    rest = {"engine": "stabilizer", "epochs": [{"epoch": 0, "ops": {"H": 1}}], "cache_hit": False}
    logs = []
    for directory in ("struct", "plain"):
        (tmp_path / directory).mkdir()
        logs.append(AuditLog(tmp_path / directory, b"s" * 32))
    struct, plain = logs
    full: list[dict[str, object]] = []
    heads: list[dict[str, object]] = []
    before: list[dict[str, object]] = []  # what a listener got of such a line before
    struct.listeners.append(full.append)
    struct.head_listeners.append(heads.append)
    plain.listeners.append(before.append)
    for _ in range(2):  # the second chained on the first
        struct.append_run("job", head, request, rest)
        plain.append("job", {**head, **request.to_json(), **rest})
    assert struct.flush() == plain.flush()
    written = (tmp_path / "struct" / AUDIT_FILE).read_bytes()
    assert written == (tmp_path / "plain" / AUDIT_FILE).read_bytes() and written.isascii()
    assert full == before  # the listeners' record: every field, as plain data
    assert heads == [{k: v for k, v in r.items() if k not in request.to_json()} for r in before]


def test_each_line_is_its_records_text_hashed_once_and_each_write_ends_with_the_mac2_of_it(
    tmp_path: Path,
) -> None:
    # format 2: the record's compact ASCII JSON (seq, ts, event, the fields in order,
    # prev) is the body; h = SHA-256(body) is the one hash of the line and the next
    # line's prev; the last line of each write ends with mac2, HMAC-SHA256 of its h under
    # the key derived from the secret for audit lines; the lines before it in the write
    # are their body alone (computed here with hashlib and hmac, not the module's)
    import hashlib
    import hmac

    from qmk.kernel.security.seals import derive
    from qmk.kernel.storage.audit import GENESIS, _encode_line

    secret = b"s" * 32
    key = hmac.new(secret, b"qmk-seal:audit-line", hashlib.sha256).digest()
    assert key == derive(secret, "audit-line")
    log = AuditLog(tmp_path, secret)
    log.append("cap", tenant="bób", granted=["CAP_ALLOC"], denied=[], decision="grant")
    log.append("job", job_id="job_1", tenant="alice", state="QUEUED", seed=7)
    log.flush()
    log.append("attest", job_id="job_1", epochs=[{"ops": {"APPLY_H": 1}}], rate=1e-7)
    log.append("job", job_id="job_1", tenant="alice", state="COMPLETED")
    log.append("kernel", action="close")
    log.close()
    prev = GENESIS
    raws = (tmp_path / AUDIT_FILE).read_bytes().splitlines()
    for seq, raw in enumerate(raws, start=1):
        record = json.loads(raw)
        mac = record.pop("mac2", None)
        assert "mac" not in record and list(record)[:3] == ["seq", "ts", "event"]
        assert record["seq"] == seq and record["prev"] == prev
        body = _encode_line(record).encode()
        digest = hashlib.sha256(body).digest()
        if seq in (2, 5):  # each write's last line
            assert mac == hmac.new(key, digest, hashlib.sha256).hexdigest()
            assert raw == body[:-1] + b',"mac2":"' + mac.encode() + b'"}'
        else:
            assert mac is None and raw == body
        prev = digest.hex()
    assert log.head == prev
    assert verify(tmp_path).ok


GOLDEN = Path(__file__).parent / "golden" / "audit-format-1"


def format_1_log(data_dir: Path) -> list[bytes]:
    """The golden log of format 1 (main 849179f's kernel wrote it, its key beside it)
    in ``data_dir``, with its head committed to a store as that kernel did."""
    from qmk.kernel.storage.audit import tail

    data_dir.mkdir(exist_ok=True)
    for name in (AUDIT_FILE, SECRET_FILE):
        (data_dir / name).write_bytes((GOLDEN / name).read_bytes())
        (data_dir / name).chmod(0o600)
    store = Store(data_dir)
    store.commit(tail(data_dir / AUDIT_FILE))
    store.close()
    return (data_dir / AUDIT_FILE).read_bytes().splitlines(keepends=True)


def test_a_log_of_format_1_verifies_as_an_older_kernel_wrote_it(tmp_path: Path) -> None:
    lines = format_1_log(tmp_path)
    assert all(b'"mac":"' in line and b'"mac2"' not in line for line in lines)
    report = verify(tmp_path)
    assert report.ok and report.lines == 7 and report.head_checked and report.macs_checked


def mixed_log(data_dir: Path) -> list[bytes]:
    """The golden log of format 1, then four lines of format 2 written by today's kernel
    chained on from it, each flush's head committed."""
    from qmk.kernel.storage.audit import split_line

    format_1_log(data_dir)
    lines = write_log(data_dir, 4)
    assert [split_line(line.rstrip(b"\n"))[0] for line in lines] == [1] * 7 + [2] * 4
    return lines


def test_a_log_of_format_1_goes_on_in_format_2_and_verifies_whole(tmp_path: Path) -> None:
    import hashlib

    lines = mixed_log(tmp_path)
    # the first line of format 2 chains on from the whole last line of format 1
    assert json.loads(lines[7])["prev"] == hashlib.sha256(lines[6].rstrip(b"\n")).hexdigest()
    report = verify(tmp_path)
    assert report.ok and report.lines == 11 and report.head_checked and report.macs_checked
    (tmp_path / SECRET_FILE).unlink()
    assert verify(tmp_path).ok


@pytest.mark.parametrize("line", [3, 7, 8, 10])
def test_an_edited_line_of_either_format_is_found_by_its_mac(tmp_path: Path, line: int) -> None:
    lines = mixed_log(tmp_path)
    lines[line - 1] = lines[line - 1].replace(b'"ts":1', b'"ts":2')
    rewrite(tmp_path, lines)
    report = verify(tmp_path)
    assert not report.ok and report.first_bad_line == line and "mac" in report.reason


@pytest.mark.parametrize("line", [3, 7, 8, 10])
def test_an_edited_line_of_either_format_is_found_without_the_secret(
    tmp_path: Path, line: int
) -> None:
    """Without the secret, the next line's prev finds it: the chain is unkeyed."""
    lines = mixed_log(tmp_path)
    lines[line - 1] = lines[line - 1].replace(b'"ts":1', b'"ts":2')
    rewrite(tmp_path, lines)
    (tmp_path / SECRET_FILE).unlink()
    report = verify(tmp_path)
    assert not report.ok and report.first_bad_line == line + 1 and "prev" in report.reason


@pytest.mark.parametrize("first", [2, 7, 9])
def test_swapped_lines_of_either_format_or_across_the_change_are_found(
    tmp_path: Path, first: int
) -> None:
    lines = mixed_log(tmp_path)
    lines[first - 1], lines[first] = lines[first], lines[first - 1]
    rewrite(tmp_path, lines)
    assert verify(tmp_path).first_bad_line == first


def test_lines_of_either_format_under_another_key_are_found(tmp_path: Path) -> None:
    mixed_log(tmp_path)
    (tmp_path / SECRET_FILE).write_bytes(b"another kernel's secret, 32 byte")
    report = verify(tmp_path)
    assert not report.ok and report.first_bad_line == 1 and "mac" in report.reason
    lines = (tmp_path / AUDIT_FILE).read_bytes().splitlines(keepends=True)
    rewrite(tmp_path, lines[7:])  # the lines of format 2 alone, from another key
    store = Store(tmp_path)
    store.commit((1, "0" * 64, 0))  # (the head is not what is tested here)
    store.close()
    from qmk.kernel.storage.audit import AuditKeys

    assert not AuditKeys(b"another kernel's secret, 32 byte").signed(lines[7].rstrip(b"\n"))
    assert AuditKeys((GOLDEN / SECRET_FILE).read_bytes()).signed(lines[7].rstrip(b"\n"))


def test_a_line_of_format_2_relabelled_as_format_1_is_found(tmp_path: Path) -> None:
    """Its MAC is of its hash, not of its text: as format 1 it does not hold."""
    lines = mixed_log(tmp_path)
    lines[8] = lines[8].replace(b',"mac2":"', b',"mac":"')
    rewrite(tmp_path, lines)
    report = verify(tmp_path)
    assert not report.ok and report.first_bad_line == 9 and "mac" in report.reason


def test_a_kernel_starts_on_a_log_of_format_1_and_its_start_checks_both_formats(
    tmp_path: Path,
) -> None:
    from qmk.kernel.errors import DataDirError
    from qmk.kernel.storage.datadir import open_data_dir

    lines = mixed_log(tmp_path)
    open_data_dir(tmp_path).close()  # each line since the last start is checked
    lines[9] = lines[9].replace(b'"ts":1', b'"ts":2')
    rewrite(tmp_path, lines)
    with pytest.raises(DataDirError, match="audit line 10"):
        open_data_dir(tmp_path)


def batched_log(data_dir: Path) -> list[bytes]:
    """Nine lines in three writes of three, each write's head committed: lines 3, 6 and
    9 carry the writes' MACs."""
    store = Store(data_dir)
    log = AuditLog(data_dir, load_secret(data_dir))
    for write in range(3):
        for i in range(3):
            log.append("job", job_id=f"job_{write}", tenant="alice", state=f"S{i}")
        store.commit(log.flush())
    log.close()
    store.close()
    lines = (data_dir / AUDIT_FILE).read_bytes().splitlines(keepends=True)
    assert [b'"mac2":"' in line for line in lines] == [False, False, True] * 3
    return lines


def test_a_log_written_in_batches_verifies_with_one_mac_a_write(tmp_path: Path) -> None:
    batched_log(tmp_path)
    report = verify(tmp_path)
    assert report.ok and report.lines == 9 and report.macs_checked and report.head_checked


@pytest.mark.parametrize("secret", [True, False])
def test_an_edited_line_inside_a_write_is_found_by_the_next_lines_prev_and_named_with_the_mac(
    tmp_path: Path, secret: bool
) -> None:
    lines = batched_log(tmp_path)
    lines[3] = lines[3].replace(b'"S0"', b'"S9"')
    rewrite(tmp_path, lines)
    if not secret:
        (tmp_path / SECRET_FILE).unlink()
    report = verify(tmp_path)
    assert not report.ok and report.first_bad_line == (4 if secret else 5)
    if secret:  # line 5 and the MAC of its write (line 6) hold: line 4 was edited
        assert report.reason == (
            "line 4 is not the line the next chains on from, and its write's mac signs the"
            " next (edited)"
        )
    else:
        assert "prev" in report.reason


def test_a_write_whose_chain_was_made_again_without_the_secret_is_found_by_its_mac(
    tmp_path: Path,
) -> None:
    """Line 4 edited and lines 5 and 6 chained on from it again: the MAC that ends the
    write (line 6) signs the old chain; the report names the write's first line."""
    from qmk.kernel.storage.audit import chain_hash

    lines = batched_log(tmp_path)
    lines[3] = lines[3].replace(b'"S0"', b'"S9"')
    for i in (4, 5):
        prev = json.loads(lines[i])["prev"]
        lines[i] = lines[i].replace(prev.encode(), chain_hash(lines[i - 1].rstrip(b"\n")).encode())
    rewrite(tmp_path, lines)
    report = verify(tmp_path)
    assert not report.ok and report.first_bad_line == 4
    assert report.reason == (
        "the mac of line 6, which ends the write of lines 4-6, does not match their content"
        " (edited)"
    )


def test_lines_no_mac_ends_are_reported_and_cut_at_the_start_past_the_committed_head(
    tmp_path: Path,
) -> None:
    """What a crash inside a write leaves: its first lines, not the one with the MAC.
    Past the head the database committed, the start cuts them as it cuts a torn line."""
    from qmk.kernel.storage.datadir import open_data_dir

    lines = batched_log(tmp_path)
    rewrite(tmp_path, lines[:8])  # the last write's MAC line lost ...
    store = Store(tmp_path)
    store.commit((6, json.loads(lines[6])["prev"], sum(map(len, lines[:5]))))  # ... uncommitted
    store.close()
    report = verify(tmp_path)
    assert not report.ok and report.first_bad_line == 7
    assert report.reason.startswith("lines 7-8 carry no mac")
    opened = open_data_dir(tmp_path)
    opened.close()
    assert opened.repaired_bytes == len(lines[6]) + len(lines[7])
    assert (tmp_path / AUDIT_FILE).read_bytes() == b"".join(lines[:6])
    assert verify(tmp_path).ok


def test_lines_no_mac_ends_before_the_committed_head_stop_the_start(tmp_path: Path) -> None:
    from qmk.kernel.errors import DataDirError
    from qmk.kernel.storage.datadir import open_data_dir

    lines = batched_log(tmp_path)
    rewrite(tmp_path, lines[:8])  # the committed head, line 9, is gone
    with pytest.raises(DataDirError, match="line 9"):
        open_data_dir(tmp_path)
    lines = batched_log(tmp_path / "other")
    lines[8] = lines[8][: lines[8].index(b',"mac2":"')] + b"}\n"  # its MAC taken off
    rewrite(tmp_path / "other", lines)
    with pytest.raises(DataDirError, match="audit lines 7-9 carry no mac"):
        open_data_dir(tmp_path / "other")
