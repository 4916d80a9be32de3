"""A data directory an earlier kernel left, checked before this kernel reads it.

:func:`~qmk.kernel.storage.datadir.open_data_dir` calls :func:`check_left` where the
directory holds a database, an audit log or a secret: a new directory has nothing to
check, and its kernel never loads this. The steps (the torn and unsigned tails cut, the
chain from the committed head, the lines since the last start's check) are those of
:mod:`qmk.kernel.storage.datadir`'s docstring.
"""

from __future__ import annotations

import json
import os
import sqlite3
from collections.abc import Callable
from pathlib import Path

from qmk.kernel.datafiles import AUDIT_FILE, DB_FILE, SECRET_FILE
from qmk.kernel.errors import DataDirError
from qmk.kernel.security.seals import derive
from qmk.kernel.storage.audit import (
    GENESIS,
    MAC_WIDTH,
    AuditKeys,
    chain_hash,
    read_line,
    split_line,
)
from qmk.kernel.storage.store import committed_audit_head, verified_audit_head


def check_left(root: Path, offset_of: Callable[[Path, int], int] | None) -> tuple[int, list[str]]:
    """Repair what a crash leaves in the data directory ``root`` (a torn audit tail, the
    lines of a write no MAC ended) and check the rest: (the bytes cut, the problems).

    ``offset_of``: as :func:`~qmk.kernel.storage.datadir.open_data_dir`'s.

    Raises:
        DataDirError: ``data-dir-outdated`` (a head without its offset, and no
            ``offset_of``).
    """
    head = _head(root, offset_of)
    repaired = _repair_torn_tail(root / AUDIT_FILE, head)
    if head is not None:  # and a write's lines no MAC ended
        repaired += cut_unsigned_tail(root / AUDIT_FILE, head[2])
    return repaired, check(root, head)


def _head(root: Path, offset_of: Callable[[Path, int], int] | None) -> tuple[int, str, int] | None:
    """The chain head the database committed, with the byte offset of its line.

    Raises:
        DataDirError: ``data-dir-outdated``: the database records no offset, and there
            is no ``offset_of`` to find it.
    """
    head = committed_audit_head(root)
    if head is None:
        return None
    seq, digest, offset = head
    if offset is None:
        if offset_of is None:
            raise DataDirError.of(
                "data-dir-outdated",
                f"{root}: its database records the audit head without its offset (an older "
                f"kernel's format); bring it forward once with: qmk admin migrate {root}",
            )
        offset = offset_of(root / AUDIT_FILE, seq)
    return seq, digest, offset


def check(root: Path, head: tuple[int, str, int] | None) -> list[str]:
    """The problems of the data directory ``root`` (empty: none); ``head`` is the chain
    head its database committed (:func:`qmk.kernel.storage.store.committed_audit_head`)."""
    problems: list[str] = []
    db, audit, secret = (root / DB_FILE), (root / AUDIT_FILE), (root / SECRET_FILE)
    has_lines = audit.exists() and audit.stat().st_size > 0
    if db.exists():
        try:
            connection = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
            try:
                result = connection.execute("PRAGMA quick_check").fetchone()
            finally:
                connection.close()
        except sqlite3.DatabaseError as exc:
            return [f"the database cannot be read ({exc})"]
        if result is None or result[0] != "ok":
            problems.append(f"the database is corrupt (quick_check: {result and result[0]})")
    if has_lines and head is None:
        problems.append(
            "the audit log has lines but the database records none (the database was "
            "deleted, truncated or replaced)"
        )
    if not secret.exists() and (has_lines or head is not None):
        problems.append("the kernel secret is missing (sessions and audit macs depend on it)")
    if head is not None:
        problems += _check_chain(audit, head)
    if not problems and has_lines and secret.exists():
        key = secret.read_bytes()
        problems += check_since(audit, verified_audit_head(root, derive(key, "audit-head")), key)
    return problems


def _repair_torn_tail(audit: Path, head: tuple[int, str, int] | None) -> int:
    """Cut a last line without its newline off ``audit`` when it lies past the committed
    head; the bytes cut (a torn line before the head is left for :func:`check`)."""
    try:
        size = audit.stat().st_size
    except FileNotFoundError:
        return 0
    if size == 0:
        return 0
    with open(audit, "rb+") as handle:
        handle.seek(max(0, size - 65536))
        tail = handle.read()
        if tail.endswith(b"\n"):
            return 0
        cut = tail.rfind(b"\n")
        keep = (size - len(tail)) + cut + 1 if cut >= 0 else 0
        if head is not None and keep <= head[2]:
            return 0  # the torn line is at or before the committed head: damage, not a tear
        handle.truncate(keep)
        handle.flush()
        os.fsync(handle.fileno())
    return size - keep


def _check_chain(audit: Path, head: tuple[int, str, int]) -> list[str]:
    """The audit log holds the committed head, and every line after it chains on."""
    seq, digest, offset = head
    try:
        with open(audit, "rb") as handle:
            handle.seek(offset)
            rest = handle.read()
    except FileNotFoundError:
        return [f"the audit log is missing (the database recorded line {seq})"]
    lines = rest.split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()
    if not lines:
        return [f"the audit log ends before line {seq}, the head the database recorded (cut)"]
    if chain_hash(lines[0]) != digest:
        return [f"audit line {seq} is not the head the database recorded (cut or edited)"]
    prev, expected = digest, seq + 1
    for raw in lines[1:]:
        try:
            record = json.loads(raw)
            ok = record["seq"] == expected and record["prev"] == prev
        except (ValueError, KeyError, TypeError):
            ok = False
        if not ok:
            return [f"audit line {expected} does not chain on from the head (edited or moved)"]
        prev, expected = chain_hash(raw), expected + 1
    return []


def check_since(path: Path, since: tuple[int, str, int] | None, secret: bytes) -> list[str]:
    """Whether every line of the log at ``path`` after ``since`` is where that check
    left it, chains on and carries its MAC: the problem found first, as one message, or
    none. ``since`` is the seq, chain hash and byte offset of the line a start's check
    reached (None: from the first).

    The lines are read at their places, not parsed (a JSON parse a line costs more). The
    kernel writes ``{"seq":N,...,"prev":"<64 hex>","<mac>":"<64 hex>"}`` at the end of a
    write and ``{"seq":N,...,"prev":"<64 hex>"}`` before it. A line it did not write
    fails the MAC that ends its write, whatever its shape.
    """
    seq, prev, offset = since or (0, GENESIS, 0)
    keys = AuditKeys(secret)
    with open(path, "rb") as handle:
        handle.seek(offset)
        if seq > 0:
            first = handle.readline().rstrip(b"\n")
            if chain_hash(first) != prev:
                return [
                    f"audit line {seq}, checked at the last start, is not where it was "
                    "(edited, cut or moved)"
                ]
        expected, unsigned = seq + 1, 0  # (unsigned: the first line of a write not yet signed)
        for raw in handle:
            line = raw.rstrip(b"\n")
            parts = split_line(line)
            width = 1 if parts is None else MAC_WIDTH[parts[0]]  # (no MAC: "}")
            # ,"prev":"<64 hex>" just before the MAC member, or last
            chained = (
                line.startswith(b'{"seq":%d,' % expected)
                and line[-width - 74 : -width - 65] == b',"prev":"'
                and line[-width - 65 : -width - 1] == prev.encode()
                and line[-width - 1 : -width] == b'"'
            )
            link, signed = read_line(line, keys)
            if not chained:
                return [
                    f"audit line {expected} does not chain on from line {expected - 1} "
                    "(edited, removed or moved)"
                ]
            if signed is False:
                before = f", or lines {unsigned}-{expected - 1} of its write" if unsigned else ""
                return [
                    f"audit line {expected}'s mac does not match its content (edited, or "
                    f"written without the kernel's secret{before})"
                ]
            unsigned = (unsigned or expected) if signed is None else 0
            prev, expected = link, expected + 1
    if unsigned:
        return [
            f"audit lines {unsigned}-{expected - 1} carry no mac (a write cut short, or "
            "lines added without the kernel's secret)"
        ]
    return []


def cut_unsigned_tail(path: Path, after: int) -> int:
    """Cut the lines at the end of the log at ``path`` that no MAC ends; return the bytes
    cut.

    They are cut only when they lie past the line that starts at byte ``after``, the head
    the database committed. Such lines are what a crash inside a write leaves, as a torn
    line is. A run that reaches back to that line is left for the checks, which find it.

    >>> import tempfile
    >>> log = Path(tempfile.mkdtemp()) / "audit.log"
    >>> signed = b'{"seq":1,"prev":"p","mac2":"' + b"0" * 64 + b'"}\\n'
    >>> _ = log.write_bytes(signed + b'{"seq":2,"prev":"q"}\\n')
    >>> cut_unsigned_tail(log, 0), log.read_bytes() == signed
    (21, True)
    """
    try:
        with open(path, "rb+") as handle:
            handle.seek(after)
            lines = handle.read().split(b"\n")
            if lines[-1] != b"":  # a torn line: the torn tail's repair or the checks
                return 0
            lines.pop()
            keep = len(lines)
            while keep > 1 and split_line(lines[keep - 1]) is None:
                keep -= 1
            if keep == len(lines) or split_line(lines[keep - 1]) is None:
                return 0
            cut = sum(len(line) + 1 for line in lines[keep:])
            size = handle.seek(0, os.SEEK_END)
            handle.truncate(size - cut)
            handle.flush()
            os.fsync(handle.fileno())
    except FileNotFoundError:
        return 0
    return cut


__all__ = ["check", "check_left", "check_since", "cut_unsigned_tail"]
