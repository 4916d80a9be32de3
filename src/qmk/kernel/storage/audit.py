"""The audit log: one hash-chained, HMAC-signed JSON line per decision and job transition.

``DATA_DIR/audit.log`` holds one JSON object per line::

    {"seq": 7, "ts": 1700000000.123, "event": "job", "job_id": "...", "tenant": "alice",
     "state": "RUNNING", "prev": "<sha256 hex of line 6>", "mac": "<hmac hex>"}

``seq`` counts lines from 1; ``prev`` is the SHA-256 of the previous line's text (64 zeros
on line 1); ``mac`` is HMAC-SHA256 of the line's text without its ``mac`` member, keyed by
the kernel secret. The kernel also stores the chain head (seq and SHA-256 of the last line
written before each database commit) in the job database.

:func:`verify` detects: an edited line (its mac, and the next line's ``prev``), a removed
or reordered line (``seq`` and ``prev``), and a removed tail up to the head the database
recorded (fewer lines than the head's seq, or a different last hash). Lines written after
the last database commit are not covered by the head, so losing exactly those cannot be
told from a crash. An attacker who holds the kernel secret and the database can rewrite
everything; the log defends against anyone who holds neither.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import json.encoder
import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import msgspec

from qmk.kernel.datafiles import AUDIT_FILE, SECRET_FILE
from qmk.kernel.records.stored import digest_counts
from qmk.kernel.security.seals import KeyedMac
from qmk.kernel.storage.store import committed_audit_head, stored_results

_log = logging.getLogger("qmk.kernel.storage.audit")

GENESIS = "0" * 64
#: The event of ``qmk admin migrate``'s lines (:mod:`qmk.kernel.storage.migrate`): what it
#: brought forward, and each stored result it rewrote (``job_id``, ``stored_sha256``).
MIGRATE_EVENT = "migrate"


def _mac(secret: bytes, body: str) -> str:
    return hmac.new(secret, body.encode(), hashlib.sha256).hexdigest()


def line_mac_ok(secret: bytes, text: str, mac: Any) -> bool:
    """Whether ``text`` (one audit line) carries the HMAC of its content, ``mac``."""
    marker = f',"mac":"{mac}"}}'
    return (
        isinstance(mac, str)
        and text.endswith(marker)
        and hmac.compare_digest(mac, _mac(secret, text[: -len(marker)] + "}"))
    )


def _line_encoder() -> Callable[[dict[str, Any]], str]:
    """``json.dumps(record, separators=(",", ":"), ensure_ascii=True, default=str)``, the
    same text, with the encoder made once: ``json.dumps`` builds a new one per call (its C
    encoder included), a good part of the cost of a line. Without the C encoder, dumps.
    A record is flat data the kernel builds, never circular, so no marker table is kept.
    (An attest line of 1 KB: 14.5 us here, 2.0 us by msgspec.)"""
    make = getattr(json.encoder, "c_make_encoder", None)  # (not in the stubs)
    if make is None:  # pragma: no cover - CPython has it
        return lambda record: json.dumps(
            record, separators=(",", ":"), ensure_ascii=True, default=str
        )
    encode = make(
        None, str, json.encoder.encode_basestring_ascii, None, ":", ",", False, False, True
    )
    return lambda record: "".join(encode(record, 0))


_json_line = _line_encoder()
_msgspec_line = msgspec.json.Encoder(enc_hook=str).encode


def _line_bytes(record: dict[str, Any]) -> bytes:
    """A record's line (:func:`_encode_line`) as its ASCII bytes."""
    data = _msgspec_line(record)
    return data if data.isascii() else _json_line(record).encode("ascii")


def _encode_line(record: dict[str, Any]) -> str:
    """A record's line: compact JSON, ASCII only (other characters escaped), a value of
    a type JSON does not have written as msgspec writes it (an array for a set) or else
    as its ``str``. msgspec writes it (5-7 times faster than :mod:`json`'s C encoder);
    a line with other than ASCII goes to :mod:`json` for its escapes. The text differs
    from :mod:`json`'s only in how a float that needs an exponent is spelt (``1e-05`` by
    :mod:`json`, ``0.00001`` or ``1e-7`` by msgspec: the same value read back) and in a
    NaN or infinity (``NaN`` by :mod:`json`, which is not JSON; ``null``). The MAC and
    the chain cover the text as written, whichever wrote it.

    >>> print(_encode_line({"seq": 1, "event": "job", "tenant": "álice", "ts": 1.5}))
    {"seq":1,"event":"job","tenant":"\\u00e1lice","ts":1.5}
    """
    return _line_bytes(record).decode("ascii")


class AuditLog:
    """Appends chained lines to ``DATA_DIR/audit.log``; lines are buffered until :meth:`flush`.

    Args:
        data_dir: the kernel's data directory.
        secret: the kernel secret that signs every line.
    """

    def __init__(self, data_dir: str | os.PathLike[str], secret: bytes) -> None:
        self.path = Path(data_dir) / AUDIT_FILE
        self._secret = secret
        self.seq, self.head, self.head_offset = tail(self.path)
        self._mac = KeyedMac(secret)  # each line's: the MAC _mac makes, keyed once
        self._pending: list[bytes] = []
        self._fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        self._size = os.fstat(self._fd).st_size  # where the next line starts
        #: The chain as written: (seq, head) of the last line in the file.
        self._written = (self.seq, self.head)
        #: Called with each record as it is queued (without its mac), on the caller's
        #: thread and context: the observers of :mod:`qmk.kernel.observe` (metrics,
        #: traces, live events). One that raises is logged; the kernel goes on.
        self.listeners: list[Callable[[dict[str, Any]], None]] = []

    def append(self, event: str, **fields: Any) -> None:
        """Queue one line: ``event`` (e.g. "cap", "job", "chan", "kernel") and its fields."""
        self.seq += 1
        # the time to the microsecond: the double nearest n / 10**6, as round(t, 6) gives
        # it (an exact integer over an exact power of ten, one rounding), 4x cheaper
        record = {
            "seq": self.seq,
            "ts": round(time.time() * 1e6) / 1e6,
            "event": event,
            **fields,
            "prev": self.head,
        }
        # the line's bytes as written: encoded once, MACed and hashed as they are
        body = _line_bytes(record)
        line = b"".join((body[:-1], b',"mac":"', self._mac.hexdigest(body).encode(), b'"}'))
        self.head = hashlib.sha256(line).hexdigest()
        self._pending.append(line)
        for listener in self.listeners:
            try:
                listener(record)
            except Exception:
                _log.exception("an audit listener failed")

    def position(self) -> tuple[int, int, str, int]:
        """Where the file stands: (bytes, seq, head, head offset) of what is written, the
        lines still pending not included; see :meth:`restore`."""
        return self._size, self._written[0], self._written[1], self.head_offset

    def restore(self, position: tuple[int, int, str, int]) -> None:
        """Go back to ``position`` (a write that failed, or a commit that failed after it):
        the file is cut back to its size then, and the lines since are dropped, so the
        chain on disk stays whole and the next line chains on from it."""
        size, self.seq, self.head, self.head_offset = position
        self._written = (self.seq, self.head)
        self._pending.clear()
        if self._size != size:
            os.ftruncate(self._fd, size)
            self._size = size

    @property
    def pending(self) -> bool:
        """True when lines wait for :meth:`flush`."""
        return bool(self._pending)

    def flush(self) -> tuple[int, str, int]:
        """Write the queued lines with one ``write`` call; return the chain head (seq, hash,
        and the byte offset its line starts at, for the checks at start)."""
        if self._pending:
            data = b"\n".join(self._pending) + b"\n"
            self.head_offset = self._size + len(data) - len(self._pending[-1]) - 1
            self._pending.clear()
            view = memoryview(data)
            while view:
                written = os.write(self._fd, view)
                view = view[written:]
                self._size += written
            self._written = (self.seq, self.head)
        return self.seq, self.head, self.head_offset

    def close(self) -> None:
        """Flush and close the file."""
        self.flush()
        os.close(self._fd)


def tail(path: Path) -> tuple[int, str, int]:
    """(seq, hash, byte offset) of the last complete line of ``path``, or (0, GENESIS, 0)."""
    try:
        with open(path, "rb") as handle:
            handle.seek(0, os.SEEK_END)
            size = handle.tell()
            back = min(size, 65536)
            handle.seek(size - back)
            data = handle.read()
    except FileNotFoundError:
        return 0, GENESIS, 0
    lines = [line for line in data.split(b"\n") if line]
    if not lines:
        return 0, GENESIS, 0
    last = lines[-1]
    try:
        seq = int(json.loads(last)["seq"])
    except (ValueError, KeyError, TypeError):
        seq = 0
    offset = size - len(last) - (1 if data.endswith(b"\n") else 0)
    return seq, hashlib.sha256(last).hexdigest(), offset


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
    head = committed_audit_head(root)
    prev, count = GENESIS, 0
    recoveries: list[tuple[int, tuple[str, ...]]] = []

    def bad(reason: str, line: int | None = None, results_checked: int = 0) -> AuditReport:
        """The failing report: ``line`` the first bad one (default: the last read)."""
        return AuditReport(
            ok=False,
            lines=count,
            first_bad_line=count if line is None else line,
            reason=reason,
            head_checked=head is not None,
            macs_checked=secret is not None,
            results_checked=results_checked,
        )

    raw_lines = data.split(b"\n")
    if raw_lines and raw_lines[-1] == b"":
        raw_lines.pop()
    elif raw_lines:
        count = len(raw_lines)
        return bad("the last line is incomplete (no newline)")
    head_hash: str | None = None
    digests = _Digests()
    for raw in raw_lines:
        count += 1
        try:
            text = raw.decode("ascii")
            record = json.loads(text)
            seq, line_prev, mac = record["seq"], record["prev"], record["mac"]
        except (UnicodeDecodeError, ValueError, KeyError, TypeError):
            return bad("not an audit record")
        if seq != count:
            return bad(f"seq {seq} where {count} was expected (a line was removed or moved)")
        if line_prev != prev:
            return bad("prev does not match the previous line (edited, removed or moved)")
        if secret is not None and not line_mac_ok(secret, text, mac):
            return bad("the line's mac does not match its content (edited)")
        prev = hashlib.sha256(raw).hexdigest()
        digests.note(count, record)
        if record.get("event") == "kernel" and record.get("recovered_from"):
            recoveries.append((count, tuple(map(str, record["recovered_from"]))))
        if head is not None and count == head[0]:
            head_hash = prev
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
    return AuditReport(
        ok=True,
        lines=count,
        head_checked=head is not None,
        macs_checked=secret is not None,
        recoveries=tuple(recoveries),
        results_checked=checked,
    )


class _Digests:
    """What the audit log says each job's stored result is: the ``stored_sha256`` of its
    last COMPLETED line (the stored JSON's SHA-256) or ``migrate`` line (a result ``qmk
    admin migrate`` rewrote), else the ``result_sha256`` of its last ``attest`` line (the
    counts' digest: lines of kernels from before seals)."""

    def __init__(self) -> None:
        self.stored: dict[str, tuple[int, str]] = {}
        self.counts: dict[str, tuple[int, str]] = {}

    def note(self, line: int, record: dict[str, Any]) -> None:
        event, job_id = record.get("event"), record.get("job_id")
        if not isinstance(job_id, str):
            return
        if event == "job" and record.get("state") == "COMPLETED":
            stored = record.get("stored_sha256")
            if isinstance(stored, str):
                self.stored[job_id] = (line, stored)
            else:
                self.stored.pop(job_id, None)
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


__all__ = ["GENESIS", "MIGRATE_EVENT", "AuditLog", "AuditReport", "line_mac_ok", "tail", "verify"]
