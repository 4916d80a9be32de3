"""A finished job's result as the kernel keeps it: its JSON, encoded once, with an index
of its counts (:class:`StoredResult`), and the digest of its counts the attestation
records (:func:`digest_counts`).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import msgspec


def digest_counts(counts: Mapping[str, int]) -> str:
    """SHA-256 of ``counts`` as canonical JSON (sorted keys, no spaces).

    >>> digest_counts({"11": 3, "00": 5}) == digest_counts({"00": 5, "11": 3})
    True
    """
    text = json.dumps(dict(counts), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


#: A stored result's index marks the start of every this-many-th counts entry, so a
#: page starts and ends after a scan of fewer entries than this (:meth:`StoredResult.page`).
RESULT_MARK_EVERY = 1024

#: One JSON value at an offset of a text, at C speed: (value, the offset after it).
_SCAN: Callable[[str, int], tuple[Any, int]] = json.JSONDecoder().scan_once  # type: ignore[attr-defined]


def compact_encoder(*, allow_nan: bool) -> Callable[[Any], str]:
    """``json.dumps(value, separators=(",", ":"), ensure_ascii=False, allow_nan=...)``:
    the same text (dumps runs this C encoder with these arguments), with the encoder
    made once, not per call (a worker encodes every result it makes, the store a job's
    row a few times). The values are plain data, never circular, so no marker table is
    kept; a value JSON cannot hold raises dumps' TypeError."""
    make = getattr(json.encoder, "c_make_encoder", None)  # (not in the stubs)
    if make is None:  # pragma: no cover - CPython has it
        return lambda value: json.dumps(
            value, separators=(",", ":"), ensure_ascii=False, allow_nan=allow_nan
        )
    encode = make(
        None,
        json.JSONEncoder().default,
        json.encoder.encode_basestring,
        None,
        ":",
        ",",
        False,
        False,
        allow_nan,
    )
    return lambda value: "".join(encode(value, 0))


_dumps = compact_encoder(allow_nan=False)


class TelemetryFacts(msgspec.Struct, frozen=True, kw_only=True, gc=False):
    """The members of a result's ``telemetry`` the kernel reads at every job's end (the
    job's row, its usage, whether it is marked a run or a cache hit yet, the event its
    observer tells: :mod:`qmk.kernel.observe`). ``cache_hit``
    is :data:`msgspec.UNSET` where the telemetry has no such member. Never tracked by
    the collector (``gc=False``): a value read from a text holds no cycle."""

    logical_cycles: Any = None
    logical_time_ns: Any = None
    injected_logical_errors: Any = None
    mode: Any = None
    cache_hit: Any = msgspec.UNSET


class ResultFacts(msgspec.Struct, frozen=True, kw_only=True, gc=False):
    """The members of a result's head the kernel reads at every job's end: its
    ``engine`` (the attestation) and of its ``telemetry`` (:class:`TelemetryFacts`;
    None where it has none, or none that is an object). :attr:`StoredResult.facts`
    reads them from the result's text without the rest of its head."""

    engine: Any = None
    telemetry: TelemetryFacts | None = None


def facts_of(head: Mapping[str, Any]) -> ResultFacts:
    """The :class:`ResultFacts` of a result's head (its members but the counts).

    >>> facts = facts_of({"engine": "stabilizer", "telemetry": {"logical_cycles": 4.0}})
    >>> facts.engine, facts.telemetry.logical_cycles, facts.telemetry.cache_hit
    ('stabilizer', 4.0, UNSET)
    >>> facts_of({"telemetry": [1]}).telemetry is None
    True
    """
    telemetry = head.get("telemetry")
    return ResultFacts(
        engine=head.get("engine"),
        telemetry=TelemetryFacts(
            logical_cycles=telemetry.get("logical_cycles"),
            logical_time_ns=telemetry.get("logical_time_ns"),
            injected_logical_errors=telemetry.get("injected_logical_errors"),
            mode=telemetry.get("mode"),
            cache_hit=telemetry.get("cache_hit", msgspec.UNSET),
        )
        if isinstance(telemetry, Mapping)
        else None,
    )


#: :class:`ResultFacts` read from a result's JSON object, its other members skipped.
_FACTS = msgspec.json.Decoder(ResultFacts).decode


class StoredResult(Mapping[str, Any]):
    """A finished job's result as the kernel keeps it: its JSON, encoded once (UTF-8).

    ``data`` is what the database holds (``jobs.result``) and what every reply carries.
    The wire splices it into a reply as it is (:func:`qmk.abi.jsonrpc.encode` writes any
    object with ``__json_bytes__``). So the kernel never parses or re-encodes a result to
    answer ``q_status``, ``q_wait`` or a REST call: a reply costs a copy of the bytes.

    ``meta`` is the small part the kernel reads:

    - ``entries``: how many counts;
    - ``counts_at``: the byte offsets where the counts object starts and ends;
    - ``marks``: where every :data:`RESULT_MARK_EVERY`-th entry starts;
    - ``counts_sha256``: :func:`digest_counts`;
    - ``head``, where the result was encoded in this process
      (:func:`~qmk.kernel.records.encoded.encode_result`): every member but ``counts``
      (engine, telemetry, ...).

    The store keeps the index without the head, since the text holds it once. A worker's
    answer leaves it out too. Such a result parses :attr:`head` from its text, after the
    counts, when it is first asked for. An index from before format 8 still holds the
    head, and it is read there. What the kernel reads of the head at every job's end is
    :attr:`facts`, read from the text without the rest of the head.

    It reads as the result's mapping in-process. ``result["counts"]`` parses the counts
    once; the ``head`` members cost at most one parse of the text after them.

    >>> from qmk.kernel.records.encoded import encode_result
    >>> stored = encode_result({"counts": {"00": 3, "11": 5}, "shots": 8})
    >>> stored.data
    b'{"counts":{"00":3,"11":5},"shots":8}'
    >>> stored["shots"], stored["counts"]["11"], len(stored)
    (8, 5, 2)
    >>> stored.page(1, 10)
    (b'{"11":5}', None)
    >>> StoredResult(stored.data, {k: v for k, v in stored.meta.items() if k != "head"}).head
    {'shots': 8}
    """

    __slots__ = ("_counts", "_facts", "_head", "_sha256", "data", "meta", "meta_text")

    def __init__(
        self,
        data: bytes,
        meta: Mapping[str, Any],
        *,
        sha256: str | None = None,
        meta_text: tuple[str, str] | None = None,
    ) -> None:
        """``sha256``: :attr:`data`'s, where its worker took it (None: taken when asked)."""
        self.data = data
        self.meta = meta
        self._counts: dict[str, Any] | None = None
        self._head: Mapping[str, Any] | None = meta.get("head")
        self._facts: ResultFacts | None = None
        self._sha256 = sha256
        #: :attr:`meta`'s text as the store writes it and that text's SHA-256, where its
        #: worker made them (:class:`~qmk.kernel.records.outcome.Done`); None: the store
        #: makes them.
        self.meta_text = meta_text

    @property
    def sha256(self) -> str:
        """SHA-256 (hex) of :attr:`data`, taken once: what the job's COMPLETED audit line
        records and its seal covers (:mod:`qmk.kernel.security.seals`)."""
        if self._sha256 is None:
            self._sha256 = hashlib.sha256(self.data).hexdigest()
        return self._sha256

    def __json_bytes__(self) -> bytes:
        return self.data

    @property
    def nbytes(self) -> int:
        """The stored JSON's size in bytes."""
        return len(self.data)

    @property
    def entries(self) -> int:
        """How many counts entries the result holds."""
        return int(self.meta.get("entries", 0))

    @property
    def head(self) -> Mapping[str, Any]:
        """The result without its counts: its index's ``head`` where it has one, else
        read from the text once (the members after the counts)."""
        head = self._head
        if head is None:
            head = self._head = head_of(self.data, self.meta.get("counts_at"))
        return head

    @property
    def facts(self) -> ResultFacts:
        """What the kernel reads of the head at a job's end (:class:`ResultFacts`).

        It is read once: from the head where it is decoded already, else from the text
        after the counts. The text's other members are skipped, not made. A worker's
        result comes without its head decoded, so the finished jobs the kernel keeps
        hold no head for the collector to walk. :attr:`head` parses it where something
        asks."""
        facts = self._facts
        if facts is None:
            facts = self._facts = self._read_facts()
        return facts

    def _read_facts(self) -> ResultFacts:
        head = self._head
        if head is None:
            try:
                return _FACTS(_head_text(self.data, self.meta.get("counts_at")))
            except msgspec.MsgspecError:  # a member not as the facts have it (a
                head = self.head  # telemetry that is no object): as the head reads
        return facts_of(head)

    @property
    def counts_sha256(self) -> str | None:
        digest = self.meta.get("counts_sha256")
        return None if digest is None else str(digest)

    def __getitem__(self, key: str) -> Any:
        head = self.head
        if key in head:
            return head[key]
        if key != "counts" or self.meta.get("counts_at") is None:
            raise KeyError(key)
        if self._counts is None:
            start, end = self.meta["counts_at"]
            self._counts = json.loads(self.data[start:end])
        return self._counts

    def __iter__(self) -> Iterator[str]:
        if self.meta.get("counts_at") is not None:
            yield "counts"
        yield from self.head

    def __len__(self) -> int:
        return len(self.head) + (self.meta.get("counts_at") is not None)

    def __repr__(self) -> str:
        return f"StoredResult({self.nbytes} bytes, {self.entries} counts entries)"

    def _entry_start(self, index: int) -> int:
        """The byte offset where counts entry ``index`` starts (``entries``: after the
        closing brace): from the mark before it, a scan of fewer than
        :data:`RESULT_MARK_EVERY` entries."""
        if index >= self.entries:
            return int(self.meta["counts_at"][1])
        mark = index // RESULT_MARK_EVERY
        at = int(self.meta["marks"][mark])
        skip = index % RESULT_MARK_EVERY
        if not skip:
            return at
        # the entries from this mark to the next one, as text: "key":value, ... (the scan
        # never reaches the end of the window: it stops before the index's own entry)
        window = self.data[
            at : self._entry_start(min((mark + 1) * RESULT_MARK_EVERY, self.entries))
        ]
        text = window.decode()
        pos = 0
        for _ in range(skip):
            _, pos = _SCAN(text, pos)
            _, pos = _SCAN(text, pos + 1)
            pos += 1  # the comma
        return at + (pos if text.isascii() else len(text[:pos].encode()))

    def page(self, start: int, limit: int) -> tuple[bytes, int | None]:
        """The counts entries ``start`` .. ``start + limit - 1`` (in stored order) as the
        UTF-8 JSON of an object, and the index after them (None: no more)."""
        if self.meta.get("counts_at") is None or start >= self.entries:
            return b"{}", None
        stop = min(start + limit, self.entries)
        body = self.data[self._entry_start(start) : self._entry_start(stop) - 1]
        return b"{" + body + b"}", (stop if stop < self.entries else None)


def head_of(data: bytes, counts_at: Any) -> dict[str, Any]:
    """The members of a result's JSON ``data`` but its counts.

    They are those after the counts object, which ends at byte ``counts_at[1]``, since
    :func:`~qmk.kernel.records.encoded.encode_result` writes the counts first. Where
    ``data`` has no counts mapping (``counts_at`` None) they are the whole object.

    >>> head_of(b'{"counts":{"0":1},"shots":1}', [10, 17]), head_of(b'{"counts":{}}', [10, 12])
    ({'shots': 1}, {})
    >>> head_of(b'{"shots":0}', None)
    {'shots': 0}
    """
    head: dict[str, Any] = json.loads(_head_text(data, counts_at))
    return head


def _head_text(data: bytes, counts_at: Any) -> bytes:
    """The JSON text of :func:`head_of`'s object: the members of ``data`` after its
    counts as an object of their own (``data`` itself where ``counts_at`` is None).

    >>> _head_text(b'{"counts":{"0":1},"shots":1}', [10, 17])
    b'{"shots":1}'
    >>> _head_text(b'{"counts":{}}', [10, 12])
    b'{}'
    """
    if counts_at is None:
        return data
    end = int(counts_at[1])
    if data[end : end + 1] != b",":  # the counts were all (``}`` follows them)
        return b"{}"
    return b"{" + data[end + 1 :]


def with_telemetry(result: StoredResult, **fields: Any) -> StoredResult:
    """``result`` with ``fields`` added to its ``telemetry`` member.

    Its counts' bytes and their index are kept as they are; only the members after the
    counts are written again. So it costs a copy of the bytes, never a parse of the
    counts.

    >>> from qmk.kernel.records.encoded import encode_result
    >>> stored = encode_result({"counts": {"0": 2}, "telemetry": {"shots": 2}})
    >>> with_telemetry(stored, cache_hit=True).data
    b'{"counts":{"0":2},"telemetry":{"shots":2,"cache_hit":true}}'
    """
    head = dict(result.head)
    telemetry = head.get("telemetry")
    head["telemetry"] = {**(telemetry if isinstance(telemetry, Mapping) else {}), **fields}
    # the new result keeps the facts of its head, not the head (read again if asked for)
    meta = {key: value for key, value in result.meta.items() if key != "head"}
    counts_at = result.meta.get("counts_at")
    if counts_at is None:  # no counts mapping: the head is the whole result
        marked = StoredResult(_dumps(head).encode(), meta)
    else:
        end = int(counts_at[1])
        marked = StoredResult(result.data[:end] + b"," + _dumps(head)[1:].encode(), meta)
    marked._facts = facts_of(head)
    return marked


def stored_result(data: bytes | str, meta: str) -> StoredResult:
    """A result as the database holds it: its JSON and its index's JSON text (every
    stored result has one: ``qmk admin migrate`` indexed those of older kernels).

    >>> from qmk.kernel.records.encoded import encode_result
    >>> stored = encode_result({"counts": {"1": 4}, "shots": 4})
    >>> import json; stored_result(stored.data, json.dumps(dict(stored.meta))) == stored
    True
    """
    if isinstance(data, str):
        data = data.encode()
    return StoredResult(data, json.loads(meta))


__all__ = [
    "RESULT_MARK_EVERY",
    "ResultFacts",
    "StoredResult",
    "TelemetryFacts",
    "compact_encoder",
    "digest_counts",
    "facts_of",
    "head_of",
    "stored_result",
    "with_telemetry",
]
