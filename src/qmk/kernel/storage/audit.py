"""The audit log: one hash-chained JSON line per decision and job transition, HMAC-signed.

``DATA_DIR/audit.log`` holds one JSON object per line::

    {"seq": 7, "ts": 1700000000.123, "event": "job", "job_id": "...", "tenant": "alice",
     "state": "RUNNING", "prev": "<sha256 hex>", "mac2": "<hmac hex>"}

``seq`` counts lines from 1; ``prev`` is the chain hash of the previous line (64 zeros on
line 1). A line's MAC is its last member, whose name says the line's format
(:data:`LINE_FORMATS`). A line's *body* is its text without that member: the record's
compact JSON, ``prev`` last.

- **Format 2** (``mac2``, what the kernel writes): the body is hashed once, ``h =
  SHA-256(body)``, and that is the line's chain hash, the next line's ``prev``. The last
  line of each write (:meth:`AuditLog.flush`: the lines of a group commit) ends with
  ``mac2``. That is HMAC-SHA256 of its ``h`` (the 32 bytes) under the key
  ``derive(secret, "audit-line")`` (:func:`qmk.kernel.security.seals.derive`). The
  lines before it in the write carry none (their body is the whole line). ``h`` holds
  ``prev``, so that MAC signs every line of the write through the chain. One pass of
  SHA-256 a line, one MAC a write. A log whose last lines carry no MAC was cut short
  inside a write (a crash), or had lines added without the secret.
- **Format 1** (``mac``, an older kernel's): ``mac`` is HMAC-SHA256 of the body under
  the kernel secret, and the chain hash is the SHA-256 of the whole line: two passes.
  The log is append-only and chained, so such lines stay as they were written and
  verify as format 1. A kernel that opens a log ending in one chains its first line of
  format 2 on from it.

The kernel also stores the chain head (seq and chain hash of the last line written before
each database commit) in the job database.

:func:`qmk.kernel.storage.audit_verify.verify` (``qmk audit verify``) detects:

- an edited line (its MAC, and the next line's ``prev``; without the secret, the next
  line's ``prev`` or the head);
- a removed or reordered line (``seq`` and ``prev``);
- a line written under another key (its MAC);
- a removed tail up to the head the database recorded (fewer lines than the head's seq,
  or a different last hash).

Lines written after the last database commit are not covered by the head, so losing
exactly those cannot be told from a crash. An attacker who holds the kernel secret and
the database can rewrite everything; the log defends against anyone who holds neither.
An edit of a line that carries no MAC is found by the next line's ``prev``. Where the
chain was made again after it, the MAC that ends its write finds it; the write's first
line is then named, since any line of that write may be the one edited.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import json.encoder
import logging
import os
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import msgspec

from qmk.kernel.datafiles import AUDIT_FILE
from qmk.kernel.security.seals import KeyedMac, derive

_log = logging.getLogger("qmk.kernel.storage.audit")

GENESIS = "0" * 64
_NONE: Mapping[str, Any] = {}  # a line's body when it has none (never changed)
#: The event of ``qmk admin migrate``'s lines (:mod:`qmk.kernel.storage.migrate`): what it
#: brought forward, and each stored result it rewrote (``job_id``, ``stored_sha256``).
MIGRATE_EVENT = "migrate"


#: The formats of a line (see the module docstring), by the member its MAC ends it with:
#: ``,"<name>":"<64 hex>"}``.
LINE_FORMATS: dict[int, str] = {1: "mac", 2: "mac2"}
#: The format the kernel writes.
LINE_FORMAT = 2
#: The purpose of format 2's key, derived from the kernel secret.
LINE_KEY = "audit-line"
#: The width of the MAC member at a line's end, per format: ``,"mac":"`` + 64 hex + ``"}``.
MAC_WIDTH = {version: len(name) + 5 + 64 + 2 for version, name in LINE_FORMATS.items()}
_V1, _V2 = MAC_WIDTH[1], MAC_WIDTH[2]
_V1_MARK, _V2_MARK = (b',"%s":"' % LINE_FORMATS[v].encode() for v in (1, 2))


class AuditKeys:
    """The keys of a line's MAC under one kernel secret, for each format.

    >>> keys = AuditKeys(b"s" * 32)
    >>> keys.signed(b'{"seq":1,"prev":"x","mac":"' + b"0" * 64 + b'"}')
    False
    >>> keys.signed(b'{"seq":1,"prev":"x"}')  # (a line inside a write carries no MAC)
    False
    """

    __slots__ = ("v1", "v2")

    def __init__(self, secret: bytes) -> None:
        self.v1 = KeyedMac(secret)
        self.v2 = KeyedMac(derive(secret, LINE_KEY))

    def signed(self, line: bytes) -> bool:
        """Whether ``line`` (without its newline) ends with the MAC of its body."""
        return read_line(line, self)[1] is True


def split_line(line: bytes) -> tuple[int, bytes, bytes] | None:
    """(format, body, MAC in hex) of one line (without its newline).

    None when it does not end with a MAC member of a known format: a line of format 2
    inside a write, whose body is the whole line. The body is the line's text without
    that member: the record's JSON as the kernel encoded it before adding the MAC.

    >>> split_line(b'{"seq":1,"prev":"p","mac2":"' + b"a" * 64 + b'"}')[:2]
    (2, b'{"seq":1,"prev":"p"}')
    """
    if line.endswith(b'"}'):
        if line[-_V2:-66] == _V2_MARK:
            return 2, line[:-_V2] + b"}", line[-66:-2]
        if line[-_V1:-66] == _V1_MARK:
            return 1, line[:-_V1] + b"}", line[-66:-2]
    return None


def read_line(line: bytes, keys: AuditKeys | None) -> tuple[str, bool | None]:
    """(chain hash, signed) of one line (without its newline).

    The chain hash is what the next line's ``prev`` holds. ``signed`` says whether its
    MAC is the one its format makes of its body under ``keys``: None without keys, or
    for a line that carries no MAC. A line of format 2 takes one pass of SHA-256, as it
    was written.

    >>> keys, body = AuditKeys(b"s" * 32), b'{"seq":1,"prev":"p"}'
    >>> line = body[:-1] + b',"mac":"' + keys.v1.hexdigest(body).encode() + b'"}'
    >>> read_line(line, keys)[1], read_line(line, None)[1], read_line(body, keys)[1]
    (True, None, None)
    >>> read_line(line.replace(b'"p"', b'"q"'), keys)[1]
    False
    """
    parts = split_line(line)
    if parts is None:
        return hashlib.sha256(line).hexdigest(), None
    version, body, mac = parts
    if version == 2:
        digest = hashlib.sha256(body).digest()
        signed = None if keys is None else _same(keys.v2.hexdigest(digest), mac)
        return digest.hex(), signed
    signed = None if keys is None else _same(keys.v1.hexdigest(body), mac)
    return hashlib.sha256(line).hexdigest(), signed


def chain_hash(line: bytes) -> str:
    """What the next line's ``prev`` holds for ``line`` (without its newline).

    For format 2 it is the SHA-256 of its body (of the whole line where it carries no
    MAC); for format 1, of the whole line."""
    return read_line(line, None)[0]


def _same(mac: str, given: bytes) -> bool:
    return hmac.compare_digest(mac.encode(), given)


def _line_encoder() -> Callable[[dict[str, Any]], str]:
    """``json.dumps(record, separators=(",", ":"), ensure_ascii=True, default=str)``, the
    same text, with the encoder made once: ``json.dumps`` builds a new one per call (its C
    encoder included), a good part of the cost of a line. Without the C encoder, dumps.
    A record is flat data the kernel builds, never circular, so no marker table is kept.
    (``docs/kernel.md`` has the figures, msgspec's beside them.)"""
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
    """A record's line: compact JSON, ASCII only (other characters escaped).

    A value of a type JSON does not have is written as msgspec writes it (an array for a
    set), or else as its ``str``. msgspec writes the line, since it is much faster than
    :mod:`json`'s C encoder; a line with other than ASCII goes to :mod:`json` for its
    escapes. The text differs from :mod:`json`'s only in how a float that needs an
    exponent is spelt (``1e-05`` by :mod:`json`, ``0.00001`` or ``1e-7`` by msgspec: the
    same value read back). A NaN or infinity differs too: :mod:`json` writes ``NaN``,
    which is not JSON, and msgspec ``null``. The MAC and the chain cover the text as
    written, whichever wrote it.

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
        self.seq, self.head, self.head_offset = tail(self.path)
        # each line's MAC (format 2): the key derived once, its pads hashed once
        self._mac = KeyedMac(derive(secret, LINE_KEY))
        self._last = b""  # the SHA-256 of the last line queued (its body)
        self._pending: list[bytes] = []
        self._fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        self._size = os.fstat(self._fd).st_size  # where the next line starts
        #: The chain as written: (seq, head) of the last line in the file.
        self._written = (self.seq, self.head)
        #: Called with each record as it is queued (without a MAC), on the caller's
        #: thread and context: the observers of :mod:`qmk.kernel.observe` (metrics,
        #: traces, live events). One that raises is logged; the kernel goes on.
        self.listeners: list[Callable[[dict[str, Any]], None]] = []
        #: The calls waiting for the lines queued before them to be kept (:meth:`when_kept`).
        self._waiting: list[Callable[[], None]] = []
        #: Called as :attr:`listeners` are, before them, with each record less the fields
        #: of a struct a line holds (:meth:`append_run`: its head and tail alone; every
        #: other line's whole record): a listener that reads a record's ``event``,
        #: ``state``, ``job_id`` or ``tenant`` (the triggers), for which a line whose run
        #: request no listener reads is never made plain data.
        self.head_listeners: list[Callable[[dict[str, Any]], None]] = []

    def append(self, event: str, given: Mapping[str, Any] = _NONE, /, **fields: Any) -> None:
        """Queue one line: ``event`` (e.g. "cap", "job", "chan", "kernel") and its fields:
        ``given``'s, then ``fields`` (a line of many fields made as a dict is passed as
        it is, not copied into keywords at each call on its way)."""
        self.seq += 1
        # the time to the microsecond: the double nearest n / 10**6, as round(t, 6) gives
        # it (an exact integer over an exact power of ten, one rounding), and cheaper
        record = {
            "seq": self.seq,
            "ts": round(time.time() * 1e6) / 1e6,
            "event": event,
            **given,
            **fields,
            "prev": self.head,
        }
        self._queue(_line_bytes(record), record, record)

    def append_run(
        self, event: str, head: Mapping[str, Any], run: msgspec.Struct, tail: Mapping[str, Any]
    ) -> None:
        """Queue one line of ``head``'s fields, then ``run``'s (a struct's, by their JSON
        names), then ``tail``'s.

        It is the very line :meth:`append` writes of those fields made plain data and
        merged (no name in two of them), but its bytes are encoded from the struct
        itself. The struct is made plain data only for :attr:`listeners`, when there are
        some (:attr:`head_listeners` get ``head`` and ``tail``'s fields). A completed
        job's line is its head, its run request, and its attestation's other fields
        (:mod:`qmk.kernel.security.attest`)."""
        self.seq += 1
        record = {"seq": self.seq, "ts": round(time.time() * 1e6) / 1e6, "event": event, **head}
        after = {**tail, "prev": self.head}
        fields = _msgspec_line(run)
        body = b"".join(
            (_msgspec_line(record)[:-1], b",", fields[1:-1], b",", _msgspec_line(after)[1:])
        )
        whole = None
        if self.listeners or not body.isascii():
            whole = {**record, **msgspec.to_builtins(run), **after}
            if not body.isascii():  # :func:`_line_bytes`: json escapes what is not ASCII
                body = _json_line(whole).encode("ascii")
        if self.head_listeners:
            record.update(after)
        self._queue(body, whole, record)

    def _queue(self, body: bytes, record: dict[str, Any] | None, head: dict[str, Any]) -> None:
        """Queue the line ``body`` (its chain hash taken: one SHA-256 pass, format 2;
        the write's last line gets its MAC at flush) and tell the listeners: ``record``
        (None: no listener wants it) to :attr:`listeners`, ``head`` to
        :attr:`head_listeners`."""
        digest = hashlib.sha256(body).digest()
        self.head = digest.hex()
        self._last = digest
        self._pending.append(body)
        for listener in self.head_listeners:
            try:
                listener(head)
            except Exception:
                _log.exception("an audit listener failed")
        for listener in self.listeners:
            try:
                listener(record)  # type: ignore[arg-type]  # (not None when there are some)
            except Exception:
                _log.exception("an audit listener failed")

    def when_kept(self, call: Callable[[], None]) -> None:
        """Call ``call`` once every line queued till now is written and committed
        (:meth:`release`; now where none waits), in order; never where they are taken
        back (:meth:`restore`). The live streams hear a record so: a cursor never names
        a line that a crash or a failed write takes back, whose seq a later line takes."""
        if self._pending or self._waiting:
            self._waiting.append(call)
        else:
            call()

    def release(self) -> None:
        """The lines written so far are committed: make the calls that waited for them
        (:class:`~qmk.kernel.storage.commit.GroupCommit` calls it after each commit)."""
        if self._pending:  # (lines queued since, not written)
            return
        waiting, self._waiting = self._waiting, []
        for call in waiting:  # (calls that queue no line)
            try:
                call()
            except Exception:
                _log.exception("an audit listener failed")

    def position(self) -> tuple[int, int, str, int]:
        """Where the file stands: (bytes, seq, head, head offset) of what is written, the
        lines still pending not included; see :meth:`restore`."""
        return self._size, self._written[0], self._written[1], self.head_offset

    def restore(self, position: tuple[int, int, str, int]) -> None:
        """Go back to ``position`` (a write that failed, or a commit that failed after it).
        The file is cut back to its size then, and the lines since are dropped. So the
        chain on disk stays whole and the next line chains on from it."""
        size, self.seq, self.head, self.head_offset = position
        self._written = (self.seq, self.head)
        self._pending.clear()
        self._waiting.clear()  # never made: their lines are gone
        if self._size != size:
            os.ftruncate(self._fd, size)
            self._size = size

    @property
    def pending(self) -> bool:
        """True when lines wait for :meth:`flush`."""
        return bool(self._pending)

    def flush(self) -> tuple[int, str, int]:
        """Write the queued lines with one ``write`` call and return the chain head.

        The last line ends with the MAC of its hash, which signs them all through the
        chain. The head is the seq, the hash, and the byte offset its line starts at (for
        the checks at start)."""
        if self._pending:
            pending = self._pending
            mac = self._mac.hexdigest(self._last).encode()
            last = pending[-1] = b"".join((pending[-1][:-1], _V2_MARK, mac, b'"}'))
            data = b"\n".join(pending) + b"\n"
            self.head_offset = self._size + len(data) - len(last) - 1
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
    return seq, chain_hash(last), offset


__all__ = [
    "GENESIS",
    "LINE_FORMAT",
    "LINE_FORMATS",
    "LINE_KEY",
    "MAC_WIDTH",
    "MIGRATE_EVENT",
    "AuditKeys",
    "AuditLog",
    "chain_hash",
    "read_line",
    "split_line",
    "tail",
]
