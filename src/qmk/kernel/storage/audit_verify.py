"""Checking a data directory's audit log offline (``qmk audit verify``): :func:`verify`.

It walks the chain of :mod:`qmk.kernel.storage.audit` line by line and finds what that
module's docstring lists: an edited, removed or reordered line, a line written under
another key, a removed tail up to the head the database recorded. With the kernel
secret it also compares each stored result with its audit line and seal, and each
stored program with its seal. The kernel writes the log and checks its tail at start
(:func:`~qmk.kernel.storage.reopen.check_since`); it never walks the whole log, so the
kernel process does not import this module.
"""

from __future__ import annotations

import json
import os
import sqlite3
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from qmk.kernel.datafiles import AUDIT_FILE, DB_FILE, SECRET_FILE
from qmk.kernel.records.stored import digest_counts
from qmk.kernel.security.seals import KeyedMac, derive, sealed_result
from qmk.kernel.storage.audit import (
    GENESIS,
    LINE_FORMATS,
    MIGRATE_EVENT,
    AuditKeys,
    read_line,
    split_line,
)
from qmk.kernel.storage.job_reads import program_text
from qmk.kernel.storage.store import PACKED_GRAPH, check_version, committed_audit_head


@dataclass(frozen=True, slots=True, kw_only=True)
class AuditReport:
    """What :func:`verify` found: ``ok``, lines read, the first bad line (1-based) and why."""

    ok: bool
    lines: int
    first_bad_line: int | None = None
    reason: str | None = None
    head_checked: bool = False
    macs_checked: bool = False
    #: Lines where a kernel started on a damaged directory (``--recover``) and what it
    #: accepted: the chain is whole from there on, but what came before may be lost.
    recoveries: tuple[tuple[int, tuple[str, ...]], ...] = ()
    #: Stored results compared with their audit lines (and their seals, with the secret).
    results_checked: int = 0
    #: Stored programs checked against their seals (with the secret; 0 without it).
    programs_checked: int = 0

    def to_json(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "lines": self.lines,
            "first_bad_line": self.first_bad_line,
            "reason": self.reason,
            "head_checked": self.head_checked,
            "macs_checked": self.macs_checked,
            "recoveries": [{"line": line, "problems": list(p)} for line, p in self.recoveries],
            "results_checked": self.results_checked,
            "programs_checked": self.programs_checked,
        }


def verify(data_dir: str | os.PathLike[str]) -> AuditReport:
    """Check the audit chain of ``data_dir``.

    Raises:
        OSError: the log cannot be read (the CLI exits 2).
    """
    root = Path(data_dir)
    data = (root / AUDIT_FILE).read_bytes()
    try:
        secret: bytes | None = (root / SECRET_FILE).read_bytes()
    except OSError:
        secret = None
    keys = None if secret is None else AuditKeys(secret)
    head = committed_audit_head(root)
    count = 0
    recoveries: list[tuple[int, tuple[str, ...]]] = []

    def bad(
        reason: str, line: int | None = None, results_checked: int = 0, programs_checked: int = 0
    ) -> AuditReport:
        """The failing report: ``line`` the first bad one (default: the last read)."""
        return AuditReport(
            ok=False,
            lines=count,
            first_bad_line=count if line is None else line,
            reason=reason,
            head_checked=head is not None,
            macs_checked=secret is not None,
            results_checked=results_checked,
            programs_checked=programs_checked,
        )

    raw_lines = data.split(b"\n")
    if raw_lines and raw_lines[-1] == b"":
        raw_lines.pop()
    elif raw_lines:
        count = len(raw_lines)
        return bad("the last line is incomplete (no newline)")
    head_hash: str | None = None
    digests = _Digests()
    walk = _Walk(keys)
    for raw in raw_lines:
        count += 1
        record, trouble = walk.line(raw, count)
        if trouble is not None:
            if trouble is _UNCHAINED and count > 1 and keys and _signed(raw_lines, count, keys):
                # the rest of the write is the kernel's, its prev included: the line
                # before is the one changed
                return bad(
                    f"line {count - 1} is not the line the next chains on from, and its "
                    "write's mac signs the next (edited)",
                    line=count - 1,
                )
            return bad(trouble, line=walk.unsigned or None)
        digests.note(count, record)
        if record.get("event") == "kernel" and record.get("recovered_from"):
            recoveries.append((count, tuple(map(str, record["recovered_from"]))))
        if head is not None and count == head[0]:
            head_hash = walk.prev
    if walk.unsigned:
        return bad(
            f"lines {walk.unsigned}-{count} carry no mac (a write cut short, or lines added "
            "without the secret)",
            line=walk.unsigned,
        )
    if head is not None:
        if count < head[0]:
            return bad(
                f"the log ends at line {count} but the database recorded line {head[0]}"
                " (lines were removed from the end)",
                line=count + 1,
            )
        if head_hash != head[1]:
            return bad(f"line {head[0]} differs from the head the database recorded", line=head[0])
    checked, problem = digests.check(root, secret)
    if problem is not None:
        line, reason = problem
        return bad(reason, line=line, results_checked=checked)
    programs, unsealed = digests.check_programs(root, secret)
    if unsealed is not None:
        queued, reason = unsealed
        return bad(reason, line=queued, results_checked=checked, programs_checked=programs)
    return AuditReport(
        ok=True,
        lines=count,
        head_checked=head is not None,
        macs_checked=secret is not None,
        recoveries=tuple(recoveries),
        results_checked=checked,
        programs_checked=programs,
    )


_UNCHAINED = "prev does not match the previous line (edited, removed or moved)"


def _signed(raw_lines: list[bytes], count: int, keys: AuditKeys) -> bool:
    """Whether lines ``count``.. (1-based) chain on from line ``count``'s own ``prev`` to
    the first that carries a MAC, and that MAC holds: what the kernel wrote, from that
    ``prev`` on."""
    walk = _Walk(keys)
    try:
        walk.prev = json.loads(raw_lines[count - 1])["prev"]
    except (ValueError, KeyError, TypeError):
        return False
    for seq, raw in enumerate(raw_lines[count - 1 :], start=count):
        _, trouble = walk.line(raw, seq)
        if trouble is not None:
            return False
        if not walk.unsigned:  # this line's MAC held
            return True
    return False


class _Walk:
    """The chain as :func:`verify` reads it, line by line: the last chain hash, and the
    first line of the write no MAC has ended yet (0: none)."""

    def __init__(self, keys: AuditKeys | None) -> None:
        self.keys = keys
        self.prev = GENESIS
        self.unsigned = 0

    def line(self, raw: bytes, count: int) -> tuple[dict[str, Any], str | None]:
        """(the record, the problem or None) of line ``count``; a problem of its MAC is
        the write's, from :attr:`unsigned` (else the line's own)."""
        parts = split_line(raw)
        try:
            record = json.loads(raw.decode("ascii"))
            seq, line_prev = record["seq"], record["prev"]
            # the line's MAC, if any, is its last member (a MAC member elsewhere: no
            # record the kernel wrote)
            macs = [name for name in LINE_FORMATS.values() if name in record]
            if macs != ([] if parts is None else [LINE_FORMATS[parts[0]]]):
                raise KeyError("mac")
        except (UnicodeDecodeError, ValueError, KeyError, TypeError):
            self.unsigned = 0
            return {}, "not an audit record"
        if seq != count:
            self.unsigned = 0
            return record, f"seq {seq} where {count} was expected (a line was removed or moved)"
        if line_prev != self.prev:
            self.unsigned = 0
            return record, _UNCHAINED
        self.prev, signed = read_line(raw, self.keys)
        if signed is False:
            if self.unsigned:
                return record, (
                    f"the mac of line {count}, which ends the write of lines "
                    f"{self.unsigned}-{count}, does not match their content (edited)"
                )
            return record, "the line's mac does not match its content (edited)"
        if parts is None:
            self.unsigned = self.unsigned or count
        else:
            self.unsigned = 0
        return record, None


class _Digests:
    """What the audit log says each job's stored result is, and where each job was
    accepted.

    A job's stored result is the ``stored_sha256`` of its last COMPLETED line (the stored
    JSON's SHA-256) or ``migrate`` line (a result ``qmk admin migrate`` rewrote). Else it
    is the ``result_sha256`` of its last attestation: the counts' digest, on the lines of
    older kernels that sealed no results. An attestation is on the COMPLETED line, or on
    an ``attest`` line of its own (:mod:`qmk.kernel.security.attest`). A job's acceptance
    is its first QUEUED line, where a stored program that is not the one sealed is
    named."""

    def __init__(self) -> None:
        self.stored: dict[str, tuple[int, str]] = {}
        self.counts: dict[str, tuple[int, str]] = {}
        self.queued: dict[str, int] = {}

    def note(self, line: int, record: dict[str, Any]) -> None:
        event, job_id = record.get("event"), record.get("job_id")
        if not isinstance(job_id, str):
            return
        if event == "job" and record.get("state") == "QUEUED":
            self.queued.setdefault(job_id, line)
        elif event == "job" and record.get("state") == "COMPLETED":
            stored = record.get("stored_sha256")
            if isinstance(stored, str):
                self.stored[job_id] = (line, stored)
            else:
                self.stored.pop(job_id, None)
            if isinstance(digest := record.get("result_sha256"), str):
                self.counts[job_id] = (line, digest)
        elif event == "attest" and isinstance(digest := record.get("result_sha256"), str):
            self.counts[job_id] = (line, digest)
        elif event == MIGRATE_EVENT and isinstance(stored := record.get("stored_sha256"), str):
            self.stored[job_id] = (line, stored)  # qmk admin migrate rewrote the result

    def check(self, root: Path, secret: bytes | None) -> tuple[int, tuple[int, str] | None]:
        """(results compared, the first mismatch as (line, reason) or None)."""
        from qmk.kernel.records.stored import stored_result
        from qmk.kernel.security.seals import data_digest, derive

        key = None if secret is None else derive(secret, "result")
        checked = 0
        for job_id, data, meta, sealed in stored_results(root, key):
            checked += 1
            edited = f"job {job_id}'s stored result differs from "
            if sealed is False or meta is None:  # (every stored result has its index)
                line = self.stored.get(job_id, self.counts.get(job_id, (0, "")))[0]
                return checked, (line, edited + "the seal the kernel wrote (edited in kernel.db)")
            if job_id in self.stored:
                line, digest = self.stored[job_id]
                if data_digest(data) != digest:
                    return checked, (line, edited + f"line {line}'s stored_sha256 (edited)")
            elif job_id in self.counts:
                line, digest = self.counts[job_id]
                counts = stored_result(data, meta).get("counts")
                if not isinstance(counts, dict) or digest_counts(counts) != digest:
                    return checked, (line, edited + f"line {line}'s attested counts (edited)")
        return checked, None

    def check_programs(
        self, root: Path, secret: bytes | None
    ) -> tuple[int, tuple[int | None, str] | None]:
        """(programs checked against their seals, the first that fails as (the line of
        its job's acceptance, None where the log has none, and the reason) or None); none
        without the secret."""
        if secret is None:
            return 0, None
        checked = 0
        for job_id, sealed in stored_programs(root, derive(secret, "result")):
            checked += 1
            if not sealed:
                return checked, (
                    self.queued.get(job_id),
                    f"job {job_id}'s stored program differs from the seal the kernel wrote "
                    "(edited or swapped in kernel.db)",
                )
        return checked, None


def stored_results(
    data_dir: Path, key: bytes | None
) -> Iterable[tuple[str, bytes, str | None, bool | None]]:
    """Every stored result of ``data_dir``'s database, read without opening it for
    writing: (job id, its JSON, its index's text, whether its seal matches; None
    without ``key``).

    Raises:
        DataDirError: ``QK105 data-dir-outdated``: an older kernel's database.
    """
    path = data_dir / DB_FILE
    if not path.exists():
        return
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        check_version(db, data_dir)
        rows = db.execute(
            "SELECT job_id, CAST(result AS BLOB), result_meta, result_seal FROM jobs "
            "WHERE result IS NOT NULL ORDER BY seq"
        )
        for job_id, data, meta, seal in rows:
            sealed = None
            if key is not None:
                sealed = meta is not None and sealed_result(key, job_id, data, meta, seal)
            yield job_id, data, meta, sealed
    finally:
        db.close()


def stored_programs(data_dir: Path, key: bytes | None) -> Iterable[tuple[str, bool | None]]:
    """Every job's stored program of ``data_dir``'s database, read without opening it for
    writing: (job id, whether it is the text the kernel sealed, :func:`program_text`;
    None without ``key``).

    Raises:
        DataDirError: ``QK105 data-dir-outdated``: an older kernel's database.
    """
    path = data_dir / DB_FILE
    if not path.exists():
        return
    sealer = None if key is None else KeyedMac(key)
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        check_version(db, data_dir)
        rows = db.execute(
            "SELECT job_id, tenant, json_extract(request, '$.program_digest'), graph, "
            f"{PACKED_GRAPH}, program_seal FROM jobs ORDER BY seq"
        )
        for row in rows:
            yield row[0], None if sealer is None else program_text(sealer, row) is not None
    finally:
        db.close()


__all__ = ["AuditReport", "stored_programs", "stored_results", "verify"]
