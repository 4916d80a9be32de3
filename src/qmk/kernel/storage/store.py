"""The kernel's durable state: one SQLite database (WAL mode) in the data directory.

Tables:

- ``jobs``: spec, policy, granted caps, state, timestamps, result and error JSON. A
  result is kept as the text a reply carries, with its index in ``result_meta`` and its
  size in ``result_bytes`` (:class:`~qmk.kernel.records.stored.StoredResult`). A big
  graph is kept apart, in ``graph_texts``, once per tenant and text (:data:`GRAPH_APART`);
- ``attempts`` (the outcomes of runs before a restore), ``checkpoints``, ``channels``;
- ``sessions`` (revoked session ids; a sign-in's is in the audit log), ``delegations`` (loans
  of capabilities between tenants, :mod:`qmk.kernel.security.delegations`);
- ``usage`` (one row per job end), ``outbox`` (its billing webhooks:
  :mod:`qmk.kernel.storage.billing`) and ``meta`` (the audit chain head).

Writes go into an open transaction; :meth:`Store.commit` ends it. The kernel groups
every write made in one event-loop turn into one commit and replies to ``q_submit`` only
after the commit that holds the job (see :mod:`qmk.kernel.storage.commit`).

With ``synchronous=NORMAL`` (the default) a committed transaction survives a crash or
``kill -9`` of the kernel process; ``synchronous=FULL`` also survives power loss.
"""

from __future__ import annotations

import contextlib
import hmac
import os
import sqlite3
import zlib
from collections.abc import Callable, Iterable, Iterator, Mapping
from operator import is_, itemgetter
from pathlib import Path
from typing import Any

import msgspec
from msgspec.structs import astuple

from qmk.execution.request import DIGEST_KEPT_FROM, Policy, program_digest
from qmk.kernel.datafiles import DB_FILE
from qmk.kernel.errors import DataDirError
from qmk.kernel.records.jobs import ACTIVE_STATES, FINAL_STATES, STATES, Job
from qmk.kernel.records.stored import StoredResult, compact_encoder
from qmk.kernel.records.usage import FIELDS as USAGE_FIELDS
from qmk.kernel.records.usage import Usage
from qmk.kernel.security.seals import (
    KeyedMac,
    program_seal,
    result_seal,
    sealed_result,
)
from qmk.kernel.storage.job_row import JOB_COLUMNS, JobRow, text_bytes
from qmk.kernel.storage.walcheck import WalCheckpoints
from qmk.memo import Memo

#: The keys of the ``meta`` table that hold the audit chain head a commit made durable:
#: its sequence number, hash, and the byte offset of its line in the audit log.
AUDIT_SEQ, AUDIT_HEAD, AUDIT_OFFSET = "audit_seq", "audit_head", "audit_offset"
#: The statement that writes the chain head with a commit (one statement, three rows).
_WRITE_HEAD = "INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?), (?, ?), (?, ?)"

#: A job not ended, in SQL: its state is one of the active ones (in :data:`STATES`'
#: order). The partial index of such jobs (``jobs_active``) and the query that reads them
#: at a start (:meth:`Store.active_jobs`) spell it alike, or SQLite does not take the
#: index. Comparisons joined by OR, not ``state IN (...)``: SQLite tests a list of three
#: or more by a table it builds for each statement, and an ``UPDATE`` of a job's row tests
#: the old row and the new one (two tables a job's end; ``docs/kernel.md`` counts them).
_ACTIVE = (
    "(" + " OR ".join(f"state = '{state}'" for state in STATES if state in ACTIVE_STATES) + ")"
)

#: The ``meta`` table: a key's row is its primary key's b-tree entry itself (``WITHOUT
#: ROWID``), so the chain head every commit writes (:data:`_WRITE_HEAD`) changes one page,
#: where a rowid table and its key's index changed two (format 6).
META_TABLE = "meta (key TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    job_id TEXT PRIMARY KEY,
    tenant TEXT NOT NULL,
    seq INTEGER NOT NULL,
    state TEXT NOT NULL,
    graph TEXT NOT NULL,
    shots INTEGER NOT NULL,
    seed INTEGER NOT NULL,
    policy TEXT NOT NULL,
    caps TEXT NOT NULL,
    required_caps TEXT NOT NULL,
    physical_qubits INTEGER NOT NULL,
    qubits TEXT NOT NULL,
    created_at REAL NOT NULL,
    started_at REAL,
    finished_at REAL,
    result TEXT,
    error TEXT,
    attempts INTEGER NOT NULL DEFAULT 0,
    preemptions INTEGER NOT NULL DEFAULT 0,
    epoch INTEGER NOT NULL DEFAULT 0,
    checkpoint_id TEXT,
    logical_cycles REAL,
    injected_errors INTEGER,
    idempotency_key TEXT,
    result_meta TEXT,
    result_bytes INTEGER,
    result_expired_at REAL,
    request TEXT NOT NULL,
    cache_key TEXT,
    cached_from TEXT,
    result_seal TEXT,
    graph_digest TEXT,
    program_seal TEXT
);
-- a tenant's jobs in submission order (format 8): an entry made at the job's insert, at
-- its tenant's right end, and never moved (no update sets tenant or seq), where the index
-- of (tenant, state) before moved each job's entry at each change of its state
CREATE INDEX IF NOT EXISTS jobs_tenant ON jobs (tenant, seq);
CREATE TABLE IF NOT EXISTS graph_texts (
    tenant TEXT NOT NULL,
    digest TEXT NOT NULL,
    graph BLOB NOT NULL,
    PRIMARY KEY (tenant, digest)
);
-- the jobs not ended, in submission order: a job enters at its insert and leaves at its
-- end, so the index holds the few jobs queued or running (one page), not every job's
-- state (format 6; jobs_state, before, moved each job's entry at each change)
CREATE INDEX IF NOT EXISTS jobs_active ON jobs (seq) WHERE {ACTIVE};
CREATE INDEX IF NOT EXISTS jobs_result_end ON jobs (finished_at) WHERE result IS NOT NULL;
CREATE INDEX IF NOT EXISTS jobs_cache ON jobs (cache_key) WHERE cache_key IS NOT NULL;
CREATE UNIQUE INDEX IF NOT EXISTS jobs_idempotency ON jobs (tenant, idempotency_key)
    WHERE idempotency_key IS NOT NULL;
CREATE TABLE IF NOT EXISTS checkpoints (
    checkpoint_id TEXT PRIMARY KEY,
    job_id TEXT NOT NULL,
    tenant TEXT NOT NULL,
    epoch INTEGER NOT NULL,
    state TEXT NOT NULL,
    attempts INTEGER NOT NULL,
    created_at REAL NOT NULL,
    path TEXT,
    program_epoch INTEGER,
    physics TEXT
);
CREATE INDEX IF NOT EXISTS checkpoints_job ON checkpoints (job_id, created_at);
CREATE TABLE IF NOT EXISTS attempts (
    job_id TEXT NOT NULL,
    attempt INTEGER NOT NULL,
    state TEXT NOT NULL,
    finished_at REAL,
    result TEXT,
    error TEXT,
    result_meta TEXT,
    result_bytes INTEGER,
    result_seal TEXT
);
CREATE INDEX IF NOT EXISTS attempts_job ON attempts (job_id);
CREATE TABLE IF NOT EXISTS channels (
    channel_id TEXT PRIMARY KEY,
    proposer TEXT NOT NULL,
    peer TEXT NOT NULL,
    state TEXT NOT NULL,
    fidelity REAL NOT NULL,
    created_at REAL NOT NULL,
    opened_at REAL,
    closed_at REAL
);
CREATE TABLE IF NOT EXISTS sessions (
    sid TEXT PRIMARY KEY,
    tenant TEXT NOT NULL,
    caps TEXT NOT NULL,
    expires_at REAL NOT NULL,
    revoked INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS {META};
CREATE TABLE IF NOT EXISTS delegations (
    delegation_id TEXT PRIMARY KEY,
    from_tenant TEXT NOT NULL,
    to_tenant TEXT NOT NULL,
    caps TEXT NOT NULL,
    session TEXT NOT NULL,
    created_at REAL NOT NULL,
    expires_at REAL NOT NULL,
    revoked_at REAL,
    revoked_by TEXT
);
CREATE INDEX IF NOT EXISTS delegations_live ON delegations (expires_at) WHERE revoked_at IS NULL;
""".replace("{ACTIVE}", _ACTIVE).replace("{META}", META_TABLE)

#: The ``usage`` table: one row per job end (:mod:`qmk.kernel.records.usage`; its
#: quantities' columns are the fields of :class:`~qmk.kernel.records.usage.Usage`), with
#: the ended job's ``job_seq`` (its ``jobs.seq``). A job's rows are found by the index of
#: (``job_seq``, ``usage_id``), unique: jobs end about in the order they came, so each end
#: adds its entry at the index's right end, as the table its row, where an index of the
#: ``usage_id`` (``JOB_ID.N``: a random id first) wrote a leaf of its own, anywhere, at each
#: end (format 7; format 5 had an index of ``job_id`` besides it). ``usage_id`` stays each
#: row's id (``q_usage``, the webhooks' idempotency key): one per job and end.
USAGE_TABLE = """usage (
    usage_id TEXT NOT NULL,
    job_id TEXT NOT NULL,
    tenant TEXT NOT NULL,
    state TEXT NOT NULL,
    ended_at REAL NOT NULL,
    {QUANTITIES},
    job_seq INTEGER
)"""

#: The ``usage`` table and its indexes, and the ``outbox`` of billing webhooks
#: (:mod:`qmk.kernel.storage.billing`): PENDING, DELIVERED or DEAD.
_USAGE_SCHEMA = """
CREATE TABLE IF NOT EXISTS {USAGE};
CREATE INDEX IF NOT EXISTS usage_tenant_end ON usage (tenant, ended_at);
CREATE UNIQUE INDEX IF NOT EXISTS usage_of_job ON usage (job_seq, usage_id);
CREATE TABLE IF NOT EXISTS outbox (
    usage_id TEXT PRIMARY KEY,
    tenant TEXT NOT NULL,
    body BLOB NOT NULL,
    state TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    next_at REAL NOT NULL,
    created_at REAL NOT NULL,
    delivered_at REAL,
    last_error TEXT
);
CREATE INDEX IF NOT EXISTS outbox_due ON outbox (next_at) WHERE state = 'PENDING';
CREATE INDEX IF NOT EXISTS outbox_dead ON outbox (created_at) WHERE state = 'DEAD';
"""
#: The workflow triggers (:mod:`qmk.kernel.running.triggers`): each trigger's spec, workflow and
#: the capabilities its runs may use, with a schedule's next time; and their runs.
_TRIGGER_SCHEMA = """
CREATE TABLE IF NOT EXISTS triggers (
    trigger_id TEXT PRIMARY KEY,
    tenant TEXT NOT NULL,
    name TEXT NOT NULL,
    spec TEXT NOT NULL,
    workflow TEXT NOT NULL,
    caps TEXT NOT NULL,
    created_at REAL NOT NULL,
    next_at REAL
);
CREATE INDEX IF NOT EXISTS triggers_tenant ON triggers (tenant, created_at);
CREATE TABLE IF NOT EXISTS trigger_runs (
    run_id TEXT PRIMARY KEY,
    trigger_id TEXT NOT NULL,
    tenant TEXT NOT NULL,
    reason TEXT NOT NULL,
    detail TEXT NOT NULL,
    state TEXT NOT NULL,
    started_at REAL NOT NULL,
    finished_at REAL,
    jobs TEXT NOT NULL,
    summary TEXT,
    error TEXT
);
CREATE INDEX IF NOT EXISTS trigger_runs_of ON trigger_runs (trigger_id, started_at);
"""

USAGE_TABLE = USAGE_TABLE.replace(
    "{QUANTITIES}",
    ",\n    ".join(
        f"{f.name} {'INTEGER' if f.type is int else 'REAL'} NOT NULL"
        for f in msgspec.structs.fields(Usage)
    ),
)
_USAGE_SCHEMA = _USAGE_SCHEMA.replace("{USAGE}", USAGE_TABLE)
#: The ``usage`` table's columns as a job's end writes them and ``q_usage`` reads them.
USAGE_COLUMNS = "usage_id, job_id, tenant, state, ended_at, " + ", ".join(USAGE_FIELDS)
#: A job end's usage row (its quantities' values: ``astuple`` of its
#: :class:`~qmk.kernel.records.usage.Usage`, whose fields are :data:`USAGE_FIELDS`), and
#: the job's sequence number last.
_INSERT_USAGE = (
    f"INSERT INTO usage ({USAGE_COLUMNS}, job_seq) "
    f"VALUES ({', '.join('?' * (6 + len(USAGE_FIELDS)))})"
)


#: A graph this long (characters) is kept out of its job's row: every state change
#: rewrites the row, and SQLite rewrites a row whole, on the event loop. It is kept once
#: per tenant and text, in ``graph_texts`` under its SHA-256 (the row's
#: ``graph_digest``): a sweep of many seeds or shot counts over one big program stores
#: its text once. Per tenant, not across tenants: whether a text was stored already must
#: not tell one tenant what another ran.
GRAPH_APART = 16 * 1024

#: The zlib level of a graph kept apart: its UTF-8 JSON is repetitive, so level 1 packs it
#: well, and a higher level gains little for much more time (``docs/kernel.md``).
GRAPH_PACK_LEVEL = 1
#: A text from this long on has its packed form kept (:data:`_PACKED`): the kernel packs
#: such a program's text in the thread that reads it, so its row's insert on the event
#: loop writes far fewer pages and its task crosses to its worker packed. A shorter one
#: is packed where it is stored (quickly), and crosses as it is.
GRAPH_PACKED_AHEAD = DIGEST_KEPT_FROM
#: The packed forms of the big texts packed last, by the text object.
_PACKED: Memo[bytes] = Memo(4)


def pack_graph(text: str) -> bytes:
    """A graph text as ``graph_texts`` keeps it: its UTF-8, zlib-compressed; kept for the
    very same text object (a str never changes) for the next few big texts.

    >>> zlib.decompress(pack_graph('{"nodes": []}'))
    b'{"nodes": []}'
    """
    if len(text) < GRAPH_PACKED_AHEAD:
        return zlib.compress(text.encode("utf-8"), GRAPH_PACK_LEVEL)
    return _PACKED.get(
        id(text), text, lambda: zlib.compress(text.encode("utf-8"), GRAPH_PACK_LEVEL)
    )


#: The packed form of a job's graph kept apart from its row, found by its digest (None
#: for one in its row), in SQL.
PACKED_GRAPH = (
    "CASE WHEN graph = '' THEN (SELECT t.graph FROM graph_texts t WHERE t.tenant = jobs.tenant"
    " AND t.digest = jobs.graph_digest) END"
)
#: The job columns as read (a result's JSON as its bytes: see :func:`_result_columns`),
#: then :data:`PACKED_GRAPH`. :func:`~qmk.kernel.storage.job_reads.read_job` reads such a row.
_JOB_SELECT = JOB_COLUMNS.replace(" result,", " CAST(result AS BLOB),") + ", " + PACKED_GRAPH


def _taker(kept: list[int]) -> Callable[[tuple[Any, ...]], tuple[Any, ...]]:
    """What takes the values at ``kept`` out of a row, as a tuple.

    >>> _taker([0, 2])((1, 2, 3)), _taker([1])((1, 2, 3)), _taker([])((1, 2, 3))
    ((1, 3), (2,), ())
    """
    if len(kept) > 1:
        return itemgetter(*kept)
    if kept:
        index = kept[0]
        return lambda row: (row[index],)
    return lambda row: ()


class _Nulls:
    """A statement whose None parameters are written ``NULL`` in its text, not bound.

    The sqlite3 module binds an int, float or str as it is. It looks each None (and
    bytes) up among its adapters first, and a fresh job's row has a dozen. One text per
    pattern of NULLs is kept (a few in practice).

    Args:
        shape: the statement, with ``{}`` where each parameter goes.
        bound: the text of each parameter bound (``?``, or ``CAST(? AS TEXT)``).

    >>> sql, values = _Nulls("UPDATE t SET a={}, b={} WHERE id={}", ("?",) * 3).split(
    ...     (None, 2, "x"))
    >>> sql, values
    ('UPDATE t SET a=NULL, b=? WHERE id=?', (2, 'x'))
    """

    __slots__ = ("_bound", "_nones", "_shape", "_texts")

    def __init__(self, shape: str, bound: tuple[str, ...]) -> None:
        self._shape = shape
        self._bound = bound
        self._nones = (None,) * len(bound)
        #: per pattern of NULLs: its text, and what takes the values it binds out of a
        #: row (one ``itemgetter`` call, not a ``compress`` of a row per row)
        self._texts: dict[tuple[bool, ...], tuple[str, Callable[[tuple[Any, ...]], Any]]] = {}

    def split(self, values: tuple[Any, ...]) -> tuple[str, tuple[Any, ...]]:
        """The statement's text for ``values`` and the values it binds."""
        if len(values) != len(self._nones):
            raise sqlite3.ProgrammingError(
                f"{len(values)} values for a statement of {len(self._nones)}: {self._shape}"
            )
        nulls = tuple(map(is_, values, self._nones))
        made = self._texts.get(nulls)
        if made is None:
            if len(self._texts) >= 64:
                self._texts.clear()
            made = self._texts[nulls] = (
                self._shape.format(
                    *(
                        "NULL" if null else bound
                        for null, bound in zip(nulls, self._bound, strict=True)
                    )
                ),
                _taker([i for i, null in enumerate(nulls) if not null]),
            )
        return made[0], made[1](values)

    def split_many(self, rows: Iterable[tuple[Any, ...]]) -> dict[str, list[tuple[Any, ...]]]:
        """:meth:`split` of each row, the rows of one text together (for ``executemany``)."""
        texts: dict[str, list[tuple[Any, ...]]] = {}
        for row in rows:
            text, values = self.split(row)
            texts.setdefault(text, []).append(values)
        return texts


#: The columns a new job's row is written with: its row's (:class:`JobRow`), then
#: those only written here.
_INSERTED = (*JobRow.__struct_fields__, "result_bytes", "graph_digest", "idempotency_key")
_INSERT_JOB = _Nulls(
    f"INSERT INTO jobs ({', '.join(_INSERTED)}) VALUES ("
    + ", ".join("{}" for _ in _INSERTED)
    + ")",
    tuple("CAST(? AS TEXT)" if c == "result" else "?" for c in _INSERTED),
)
#: The columns of a job accepted now that hold nothing yet (it has not started, has no
#: result, error, checkpoint or cache key), its graph in its row, its submit without an
#: idempotency key: NULL in :data:`_INSERT_FRESH`.
_FRESH_NULLS = frozenset(
    {
        "started_at",
        "finished_at",
        "result",
        "error",
        "checkpoint_id",
        "result_meta",
        "result_expired_at",
        "cache_key",
        "cached_from",
        "result_seal",
        "graph_digest",
        "idempotency_key",
    }
)
#: :data:`_INSERT_JOB`'s text for such a job (:meth:`Store.insert_job`): its values are
#: the other columns', in order, bound as they are (no pattern of NULLs worked out a job).
_INSERT_FRESH = _INSERT_JOB.split(tuple(None if c in _FRESH_NULLS else 0 for c in _INSERTED))[0]

#: The ``meta`` key of the database's format, and the format this kernel writes and reads:
#: a database of another (an older kernel's: its rows, columns and tables) is brought
#: forward by ``qmk admin migrate`` (:mod:`qmk.kernel.storage.migrate`), never read as it is. A
#: change of the tables (a column, a table, what a column holds) raises the version and
#: adds the step that brings the last one forward to :mod:`qmk.kernel.storage.migrate` (its steps
#: run in order, each a no-op on rows already of today's form). Formats: 1, numbered;
#: 2, policies without ``device`` (device jobs are jobs of the neutral-atom target); 3,
#: the workflow triggers' tables (``triggers``, ``trigger_runs``); 4, every stored result
#: indexed and sealed (none read unchecked for its age); 5, a graph kept apart
#: (``graph_texts``) packed (:func:`pack_graph`); 6, fewer pages a job: ``meta`` without
#: rowids (:data:`META_TABLE`), no index of every job's state (``jobs_state``; the jobs
#: not ended have ``jobs_active``) nor of the usage rows' jobs (``usage_job``); 7, the
#: usage rows keyed by their job's sequence number (:data:`USAGE_TABLE`); 8, a result's
#: index (``result_meta``) without its head, which its text holds (:func:`meta_text`: a
#: small job's row fits a page, where it took an overflow page; indexes of format 7 and
#: before, with their head, read as they are), and a tenant's jobs indexed by their
#: submission order (``jobs_tenant``), not by their state (``jobs_tenant_state``); 9,
#: every job's program sealed (``program_seal``: none read unchecked, none unpacked past
#: its sealed size).
SCHEMA_KEY, SCHEMA_VERSION = "schema_version", 9


def _result_columns(
    result: StoredResult | None, job_id: str, key: bytes | KeyedMac | None
) -> tuple[bytes | None, str | None, int, str | None]:
    """``result``, ``result_meta``, ``result_bytes`` and ``result_seal`` of a stored
    result (its UTF-8 JSON is written as text, ``CAST(? AS TEXT)``, and read back as
    bytes, ``CAST(result AS BLOB)``: it is never decoded or encoded on the way); the seal
    (:func:`~qmk.kernel.security.seals.result_seal`) with ``key``, else None."""
    if result is None:
        return None, None, 0, None
    made = result.meta_text  # by its worker, with its digest
    meta, digest = (meta_text(result.meta), None) if made is None else made
    seal = None if key is None else result_seal(key, job_id, result.sha256, meta, digest)
    return result.data, meta, result.nbytes, seal


_dumps = compact_encoder(allow_nan=True)
_encode_meta = msgspec.json.Encoder().encode


def meta_text(meta: Mapping[str, Any]) -> str:
    """A stored result's index as its ``result_meta`` text: without its ``head``, which
    the result's own text holds after its counts. (The head, a small job's telemetry, is
    most of an index, and took the job's row past a page. A result read back parses it
    from its text, :attr:`~qmk.kernel.records.stored.StoredResult.head`.) It is written by
    msgspec, much faster than :func:`_dumps`. An
    index holds no NaN or infinity, which msgspec would write as null: it is counts,
    offsets and a digest. The text reads back as the same values (a float that needs an
    exponent is spelt otherwise than :mod:`json` spells it); the seal covers the text as
    written. What msgspec cannot write goes to :func:`_dumps`.

    >>> meta_text({"head": {"shots": 10}, "entries": 2, "marks": [0], "counts_sha256": "ab"})
    '{"entries":2,"marks":[0],"counts_sha256":"ab"}'
    """
    kept = {key: value for key, value in meta.items() if key != "head"}
    try:
        return _encode_meta(kept).decode()
    except (TypeError, OverflowError):
        return _dumps(kept)


#: The ``policy`` texts of the policies stored last, by the policy's MessagePack (a
#: kernel's jobs ask for a few policies: a text is made once, not per job).
_POLICY_TEXTS: Memo[str] = Memo(64)
_pack_policy = msgspec.msgpack.Encoder().encode


def _job_head(job: Job, graph: str) -> tuple[Any, ...]:
    """The first columns of a job's row, as both inserts write them (``graph``: its text,
    or ``""`` where the text is kept apart)."""
    return (
        job.job_id,
        job.tenant,
        job.seq,
        job.state,
        graph,
        job.shots,
        job.seed,
        _policy_text(job.policy),
        _names(tuple(job.caps)),
        _names(tuple(job.required_caps)),
        job.physical_qubits,
        _qubits_text(job.qubits),
        job.created_at,
    )


def _policy_text(policy: Policy) -> str:
    """A policy's ``policy`` column: :func:`_dumps` of its JSON. Kept by its MessagePack,
    which tells apart every two values the text does (a NaN from null, 1 from 1.0).

    >>> _policy_text(Policy(priority=3)) == _dumps(Policy(priority=3).to_json())
    True
    """
    last = _LAST_POLICY[0]
    if last[0] is policy:  # the jobs of one program and policy share that very object
        return last[1]
    text = _POLICY_TEXTS.get(_pack_policy(policy), None, lambda: _dumps(policy.to_json()))
    _LAST_POLICY[0] = (policy, text)
    return text


#: The policy :func:`_policy_text` wrote last and its text (a policy is frozen).
_LAST_POLICY: list[tuple[Policy | None, str]] = [(None, "")]


def _qubits_text(qubits: Mapping[str, int]) -> str:
    """A job's ``qubits`` column: :func:`_dumps` of its tenants' logical qubits.

    The text of the mapping written last is kept, with a copy of the mapping. The jobs
    of one program share one mapping (admission's). One changed since is written anew.

    >>> held = {"alice": 2}
    >>> _qubits_text(held), _qubits_text(held)
    ('{"alice":2}', '{"alice":2}')
    >>> held["bob"] = 1
    >>> _qubits_text(held)
    '{"alice":2,"bob":1}'
    """
    last, copy, text = _LAST_QUBITS[0]
    if last is qubits and copy == qubits:
        return text
    copy = dict(qubits)
    text = _dumps(copy)
    _LAST_QUBITS[0] = (qubits, copy, text)
    return text


#: The mapping :func:`_qubits_text` wrote last, a copy of it then, and its text.
_LAST_QUBITS: list[tuple[Mapping[str, int] | None, dict[str, int], str]] = [(None, {}, "")]


_NAMES_JSON: dict[tuple[str, ...], str] = {}


def _names(names: tuple[str, ...]) -> str:
    """JSON of a tuple of capability names (a handful of distinct tuples: cached)."""
    text = _NAMES_JSON.get(names)
    if text is None:
        if len(_NAMES_JSON) >= 256:
            _NAMES_JSON.clear()
        text = _NAMES_JSON[names] = _dumps(list(names))
    return text


_REQUEST_ENCODER = msgspec.json.Encoder()


def create_tables(db: Any) -> None:
    """The tables and indexes of this kernel's format, where missing."""
    db.executescript(_SCHEMA)
    db.executescript(_USAGE_SCHEMA)
    db.executescript(_TRIGGER_SCHEMA)


def _has_table(db: Any, name: str) -> bool:
    found = db.execute("SELECT 1 FROM sqlite_master WHERE type='table' AND name=?", (name,))
    return found.fetchone() is not None


def schema_version(db: Any) -> int | None:
    """The format of an open database (its ``meta`` :data:`SCHEMA_KEY`); None: a database
    written before formats were numbered."""
    if not _has_table(db, "meta"):
        return None
    row = db.execute("SELECT value FROM meta WHERE key=?", (SCHEMA_KEY,)).fetchone()
    return None if row is None or not str(row[0]).isdigit() else int(row[0])


def check_version(db: Any, data_dir: Path) -> None:
    """Refuse a database of another format than this kernel's (:data:`SCHEMA_VERSION`).

    Raises:
        DataDirError: ``QK105 data-dir-outdated`` for an older one (or a newer one).
    """
    version = schema_version(db)
    if version == SCHEMA_VERSION:
        return
    if version is not None and version > SCHEMA_VERSION:
        raise DataDirError.of(
            "data-dir-outdated",
            f"{data_dir}: its database is of format {version}, newer than this kernel's "
            f"({SCHEMA_VERSION}): run it with the kernel that wrote it, or a newer one",
        )
    raise DataDirError.of(
        "data-dir-outdated",
        f"{data_dir}: its database was written by an older kernel (format "
        f"{version or 'unnumbered'}, this kernel's is {SCHEMA_VERSION}); bring it forward "
        f"once with: qmk admin migrate {data_dir}",
    )


class _Connection:
    """The store's SQLite connection, with the job rows saved but not yet written.

    :meth:`Store.save_job` only notes the job. Its row is written before the next
    statement that names the ``jobs`` table, and before every commit, so a commit holds
    it. That is one ``UPDATE`` per job, however many transitions it made since. A read
    of the table sees the row. An ``INSERT INTO jobs`` of a new job touches no saved row
    and does not wait for them. A job that starts and ends with no such statement
    between has its row written once. The rows of several jobs go in one
    ``executemany``. A job
    whose run request changed since it was stored (:meth:`Store.save_request`: its
    machine schedule) has the request written in the same ``UPDATE``. SQLite writes a
    row's whole record again for any change of it, so one statement for both writes it
    once instead of twice. A row saved for its request alone (``held``: a queued job's
    schedule) waits over commits for the job's next save (its start, its end). It is
    written before any statement that names the ``jobs`` table and when the connection
    closes; a rollback keeps it (it was in no transaction). Everything else is the
    connection's own (``__getattr__``).
    """

    __slots__ = ("_conn", "_row_of", "held", "requests", "saved", "written")

    def __init__(self, conn: sqlite3.Connection, row_of: Callable[[Job], tuple[Any, ...]]):
        self._conn = conn
        self._row_of = row_of
        #: Jobs whose rows wait to be written, by id (the newest state of each is
        #: written), but the :attr:`held` ones.
        self.saved: dict[str, Job] = {}
        #: The ids (among :attr:`saved` and :attr:`held`) whose run request is written
        #: with their row.
        self.requests: set[str] = set()
        #: The jobs saved for their request alone (:meth:`Store.save_request` with no
        #: other save since their row was written), by id: a commit leaves them saved. Kept
        #: apart from :attr:`saved`, so a commit costs the rows it writes, not those held
        #: (a hundred queued jobs' schedules were taken out and put back at every commit).
        self.held: dict[str, Job] = {}
        #: The ids whose request went into the open transaction: a rollback asks for it
        #: again (with the job's next save), so a failed commit loses no schedule.
        self.written: set[str] = set()

    def write_saved(self, *, hold: bool = False) -> None:
        """Write the rows of the jobs saved since the last statement (``hold``: but the
        :attr:`held` ones, which stay saved)."""
        if hold or not self.held:
            if not self.saved:
                return
            jobs, self.saved = list(self.saved.values()), {}
        else:
            jobs = [*self.saved.values(), *self.held.values()]
            self.saved, self.held = {}, {}
        # the requests of the rows written now; the others' stay asked for (a held row's,
        # or, after a rollback, that of a job not saved since)
        requests = self.requests
        asked = [job for job in jobs if job.job_id in requests] if requests else []
        if asked:
            ids = {job.job_id for job in asked}
            self.requests -= ids
            self.written |= ids
            rows = _SAVE_JOB_REQUEST.split_many(
                (_REQUEST_ENCODER.encode(job.request).decode(), *self._row_of(job)) for job in asked
            )
            for text, values in rows.items():
                self._conn.executemany(text, values)
            jobs = [job for job in jobs if job.job_id not in ids]
        if jobs:
            for text, values in _SAVE_JOB.split_many(map(self._row_of, jobs)).items():
                self._conn.executemany(text, values)

    def execute(self, sql: str, parameters: Any = ()) -> sqlite3.Cursor:
        if (self.saved or self.held) and _names_jobs(sql):
            self.write_saved()
        return self._conn.execute(sql, parameters)

    def execute_of(self, job_id: str, sql: str, parameters: Any = ()) -> sqlite3.Cursor:
        """``sql``, a statement that reads ``job_id``'s row alone: the saved rows are
        written first only when that job's is among them (no other can change what it
        reads), so reading a finished job back does not write the held ones."""
        if job_id in self.saved or job_id in self.held:
            self.write_saved()
        return self._conn.execute(sql, parameters)

    def executemany(self, sql: str, parameters: Iterable[Any]) -> sqlite3.Cursor:
        if (self.saved or self.held) and _names_jobs(sql):
            self.write_saved()
        return self._conn.executemany(sql, parameters)

    def executescript(self, script: str) -> sqlite3.Cursor:
        if self.saved or self.held:
            self.write_saved()
        return self._conn.executescript(script)

    def commit(self) -> None:
        if self.saved:
            self.write_saved(hold=True)
        self._conn.commit()
        self.written.clear()

    def rollback(self) -> None:
        """Drop what was written since the last commit, the saved rows not yet written
        included (their jobs' next save writes them again, with the requests that were
        in it), but the :attr:`held` ones."""
        self.saved = {}
        self.requests |= self.written
        self.written = set()
        self._conn.rollback()

    def close(self) -> None:
        if self.saved or self.held:
            self.write_saved()
        self._conn.close()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._conn, name)


def _names_jobs(sql: str) -> bool:
    """Whether ``sql`` may read or change a saved job's row: it names the ``jobs`` table
    (an over-estimate, never an under-one: ``jobs`` in any identifier counts), and is
    not the insert of a new job.

    >>> _names_jobs("SELECT COUNT(*) FROM usage WHERE job_id=?")
    False
    >>> _names_jobs("SELECT job_id FROM jobs WHERE cache_key=?")
    True
    >>> _names_jobs("INSERT INTO jobs (job_id) VALUES (?)")
    False
    """
    return "jobs" in sql and not sql.startswith("INSERT INTO jobs ")


#: The channels table's columns, in order (``_SCHEMA``): a channel's dict keys.
_CHANNEL_KEYS = (
    "channel_id",
    "proposer",
    "peer",
    "state",
    "fidelity",
    "created_at",
    "opened_at",
    "closed_at",
)

#: The columns a job's row is written again with (:meth:`Store._saved_row`), in order.
_SAVED = [
    "state",
    "started_at",
    "finished_at",
    "result",
    "result_meta",
    "result_seal",
    "result_bytes",
    "result_expired_at",
    "error",
    "attempts",
    "preemptions",
    "epoch",
    "checkpoint_id",
    "logical_cycles",
    "injected_errors",
    "caps",
    "cache_key",
    "cached_from",
]


def _save_job(columns: list[str]) -> _Nulls:
    sets = ", ".join(f"{column}={{}}" for column in columns)
    bound = tuple("CAST(? AS TEXT)" if c == "result" else "?" for c in columns)
    return _Nulls(f"UPDATE jobs SET {sets} WHERE job_id={{}}", (*bound, "?"))


#: The statement that writes a job's mutable fields (:meth:`Store._saved_row`).
_SAVE_JOB = _save_job(_SAVED)
#: :data:`_SAVE_JOB` with the job's run request first (:meth:`Store.save_request`).
_SAVE_JOB_REQUEST = _save_job(["request", *_SAVED])


class Store:
    """The kernel database of one data directory.

    Every table is written through one SQLite connection inside one open
    transaction that the group commit ends (:meth:`commit`, ``dirty``); a split by table
    would share that connection and that flag, and a commit must hold all of them.

    Args:
        data_dir: the directory (created if missing, mode 0700).
        synchronous: "normal" or "full" (SQLite's ``synchronous`` pragma in WAL mode).
        seal_key: the key of results' seals (:func:`qmk.kernel.security.seals.derive` of the
            kernel secret, ``"result"``). Each stored result is written with its seal
            and checked when read. A mismatch reads as no result, with
            ``result_damage`` ``QK308``. None: neither (a reader without the secret).
        checkpoints_apart: the WAL's checkpoints made on a thread of their own
            (:class:`~qmk.kernel.storage.walcheck.WalCheckpoints`). The kernel asks for
            it, since its commits run on the event loop. False: SQLite's own, inside a
            commit.
        disk_reserve_bytes: the disk's reserve the log keeps clear of (with
            ``checkpoints_apart``; :mod:`qmk.kernel.storage.reserve`).
    """

    def __init__(
        self,
        data_dir: str | os.PathLike[str],
        *,
        synchronous: str = "normal",
        seal_key: bytes | None = None,
        checkpoints_apart: bool = False,
        disk_reserve_bytes: int = 0,
    ) -> None:
        root = Path(data_dir)
        root.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.path = root / DB_FILE
        # created 0600 before SQLite opens it: its journal files take the same mode
        os.close(os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600))
        self.db = _Connection(sqlite3.connect(self.path, check_same_thread=False), self._saved_row)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute(f"PRAGMA synchronous={'FULL' if synchronous == 'full' else 'NORMAL'}")
        # the log a crash left, copied back and its blocks given back before any write (a
        # full disk's room); where it cannot be, the first commit says why
        with contextlib.suppress(sqlite3.Error):
            self.db.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
        fresh = not _has_table(self.db, "jobs")
        if not fresh:
            check_version(self.db, root)
        create_tables(self.db)
        if fresh:
            self.db.execute(
                "INSERT INTO meta (key, value) VALUES (?, ?)", (SCHEMA_KEY, str(SCHEMA_VERSION))
            )
        self.db.commit()
        self.dirty = False
        #: "normal" or "full", as asked (a commit of "full" survives power loss).
        self.synchronous = "full" if synchronous == "full" else "normal"
        self.seal_key = seal_key
        #: ``seal_key`` keyed once (each result written and read back is sealed with it)
        self._sealer = None if seal_key is None else KeyedMac(seal_key)
        #: The thread that checkpoints the log (``checkpoints_apart``), else None.
        self.checkpoints: WalCheckpoints | None = (
            WalCheckpoints(self.db.execute, self.path, reserve_bytes=disk_reserve_bytes)
            if checkpoints_apart
            else None
        )

    def _sealed(self, job_id: str, data: bytes, meta: str, seal: str | None) -> bool:
        """Whether a stored result is the one the kernel wrote: its seal matches (every
        result carries one: ``qmk admin migrate`` sealed those of older kernels); True
        without the key."""
        return self._sealer is None or sealed_result(self._sealer, job_id, data, meta, seal)

    # ------------------------------------------------------------------ transactions

    def commit(self, audit_head: tuple[int, str, int] | None = None) -> None:
        """Commit everything written since the last commit, with the audit chain head
        (seq, hash, byte offset of its line)."""
        if audit_head is not None:
            seq, digest, offset = audit_head
            self.db.execute(
                _WRITE_HEAD, (AUDIT_SEQ, str(seq), AUDIT_HEAD, digest, AUDIT_OFFSET, str(offset))
            )
        self.db.commit()
        self.dirty = False
        if self.checkpoints is not None:
            if self.checkpoints.failed is None:
                self.checkpoints.poke()
            else:  # its thread stopped: SQLite's own checkpoints again, in the commits
                self.db.execute("PRAGMA wal_autocheckpoint=1000")
                self.checkpoints = None

    @property
    def written(self) -> bool:
        """Whether the open transaction holds a write: a statement's, or a job's row
        saved and not yet written (a row held for its request alone is not: a commit
        leaves it held). SQLite's own flag, so a write made through the connection
        without :attr:`dirty` counts too."""
        return bool(self.db.saved) or bool(self.db.in_transaction)

    def set_verified_head(self, head: tuple[int, str, int], key: bytes) -> None:
        """Record the audit line a start's check reached (see :data:`AUDIT_VERIFIED`);
        it is committed with the next commit."""
        seq, digest, offset = head
        value = f"{seq}:{digest}:{offset}:{_verified_mac(key, seq, digest, offset)}"
        self.db.execute(
            "INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", (AUDIT_VERIFIED, value)
        )
        self.dirty = True

    def rollback(self) -> None:
        """Drop everything written since the last commit (a commit that failed)."""
        self.db.rollback()
        self.dirty = False

    def close(self) -> None:
        """Commit and close (the last connection's close checkpoints the log)."""
        if self.checkpoints is not None:
            self.checkpoints.close()
        self.db.write_saved()  # the held rows too
        self.db.commit()
        self.db.close()

    # ------------------------------------------------------------------ jobs

    def has_triggers(self) -> bool:
        """Whether any workflow trigger is stored (the kernel loads their table then)."""
        return self.db.execute("SELECT 1 FROM triggers LIMIT 1").fetchone() is not None

    def has_delegations(self) -> bool:
        """Whether any delegation is stored, live or ended (the kernel makes the
        delegations' desk then: :mod:`~qmk.kernel.storage.delegation_rows`)."""
        return self.db.execute("SELECT 1 FROM delegations LIMIT 1").fetchone() is not None

    def next_seq(self) -> int:
        """One more than the highest job sequence number (submission order)."""
        row = self.db.execute("SELECT COALESCE(MAX(seq), 0) FROM jobs").fetchone()
        return int(row[0]) + 1

    def job_id_for_key(self, tenant: str, key: str) -> str | None:
        """The job ``tenant`` submitted with idempotency key ``key``, if any."""
        row = self.db.execute(
            "SELECT job_id FROM jobs WHERE tenant=? AND idempotency_key=?", (tenant, key)
        ).fetchone()
        return None if row is None else str(row[0])

    def insert_job(self, job: Job, *, idempotency_key: str | None = None) -> None:
        """Add a new job (with the submit's idempotency key, if it gave one, in the same
        row: one statement)."""
        apart = len(job.graph) >= GRAPH_APART
        if (
            idempotency_key is None
            and not apart
            and job.result is None
            and job.error is None
            and job.started_at is None
            and job.finished_at is None
            and job.checkpoint_id is None
            and job.result_expired_at is None
            and job.cache_key is None
            and job.cached_from is None
        ):  # a job accepted now: the columns of _FRESH_NULLS are NULL
            self.db.execute(
                _INSERT_FRESH,
                (
                    *_job_head(job, job.graph),
                    job.attempts,
                    job.preemptions,
                    job.epoch,
                    _REQUEST_ENCODER.encode(job.request).decode(),
                    self._program_seal(job),
                    0,  # result_bytes
                ),
            )
            self.dirty = True
            return
        result, meta, size, seal = _result_columns(job.result, job.job_id, self._sealer)
        # hashed here, not taken from the request's program_digest: the key a text is
        # stored (and found) under must be the digest of that very text
        digest = program_digest(job.graph) if apart else None
        if apart:  # kept once per tenant and text (GRAPH_APART)
            self.db.execute(
                "INSERT OR IGNORE INTO graph_texts (tenant, digest, graph) VALUES (?, ?, ?)",
                (job.tenant, digest, pack_graph(job.graph)),
            )
        self.db.execute(
            *_INSERT_JOB.split(
                (
                    *_job_head(job, "" if apart else job.graph),
                    job.started_at,
                    job.finished_at,
                    result,
                    None if job.error is None else _dumps(job.error),
                    job.attempts,
                    job.preemptions,
                    job.epoch,
                    job.checkpoint_id,
                    meta,
                    job.result_expired_at,
                    _REQUEST_ENCODER.encode(job.request).decode(),
                    job.cache_key,
                    job.cached_from,
                    seal,
                    self._program_seal(job),
                    size,
                    digest,
                    idempotency_key,
                )
            )
        )
        self.dirty = True

    def _program_seal(self, job: Job) -> str | None:
        """The seal of ``job``'s program (None without a key): bound to its run request's
        digest of the text (admission made both of the one text)."""
        if self._sealer is None:
            return None
        digest = job.request.program_digest
        return program_seal(self._sealer, job.job_id, job.tenant, digest, text_bytes(job.graph))

    def save_request(self, job: Job) -> None:
        """Write a job's run request again, with its row (:meth:`save_job`, in the same
        ``UPDATE``): the kernel's shared machine fixed its schedule (``request.machine``)
        after the job was stored. It is written with the job's next change, not on its
        own. That change is its start: a recovered job that had started keeps it. A commit
        before then leaves it out. A job recovered still queued is scheduled again, as one
        stored before its schedule was."""
        if job.job_id in self.db.saved:
            self.db.saved[job.job_id] = job
        else:
            self.db.held[job.job_id] = job
        self.db.requests.add(job.job_id)
        self.dirty = True

    def save_job(self, job: Job) -> None:
        """Write a job's mutable fields (state, times, result, error, counters): before
        the next statement or commit, with the job's fields as they are then (see
        :class:`_Connection`)."""
        self.db.saved[job.job_id] = job
        if self.db.held:
            self.db.held.pop(job.job_id, None)
        self.dirty = True

    def _saved_row(self, job: Job) -> tuple[Any, ...]:
        """The values of :data:`_SAVE_JOB` for ``job`` as it is now."""
        telemetry = None if job.result is None else job.result.facts.telemetry
        result, meta, size, seal = _result_columns(job.result, job.job_id, self._sealer)
        return (
            job.state,
            job.started_at,
            job.finished_at,
            result,
            meta,
            seal,
            size,
            job.result_expired_at,
            None if job.error is None else _dumps(job.error),
            job.attempts,
            job.preemptions,
            job.epoch,
            job.checkpoint_id,
            None if telemetry is None else telemetry.logical_cycles,
            None if telemetry is None else telemetry.injected_logical_errors,
            _names(tuple(job.caps)),
            job.cache_key,
            job.cached_from,
            job.job_id,
        )

    def cache_source(self, tenant: str, key: str, since: float) -> str | None:
        """The newest COMPLETED job of ``tenant`` whose run has cache key ``key``, whose
        result is stored and ended at or after ``since`` (within result retention); None
        when there is none. An index look-up (``jobs_cache``), never a scan (named: SQLite
        would take the tenant's jobs in order, ``jobs_tenant``, for the ``ORDER BY``)."""
        row = self.db.execute(
            "SELECT job_id FROM jobs INDEXED BY jobs_cache WHERE cache_key=? AND tenant=? "
            "AND state='COMPLETED' "
            "AND result IS NOT NULL AND finished_at >= ? ORDER BY seq DESC LIMIT 1",
            (key, tenant, since),
        ).fetchone()
        return None if row is None else str(row[0])

    def cache_keys(self) -> Iterator[str]:
        """The cache key of every COMPLETED job whose result is stored (what
        :meth:`cache_source` may find), read when the kernel opens."""
        rows = self.db.execute(
            "SELECT cache_key FROM jobs WHERE cache_key IS NOT NULL AND state='COMPLETED' "
            "AND result IS NOT NULL"
        )
        for (key,) in rows:
            yield str(key)

    def committed_job(self, job_id: str) -> bool:
        """Whether ``job_id``'s row is in the database as committed (asked right after a
        rollback: whether its acceptance outlived the commit that failed)."""
        row = self.db.execute_of(job_id, "SELECT 1 FROM jobs WHERE job_id=?", (job_id,))
        return row.fetchone() is not None

    def load_job(self, job_id: str, tenant: str) -> Job | None:
        """The job ``job_id`` of ``tenant``; None for an unknown id or another tenant's."""
        row = self.db.execute_of(
            job_id, f"SELECT {_JOB_SELECT} FROM jobs WHERE job_id=? AND tenant=?", (job_id, tenant)
        ).fetchone()
        if row is None:
            return None
        from qmk.kernel.storage.job_reads import read_job

        return read_job(row, self._sealed, self._sealer)

    def active_jobs(self) -> list[Job]:
        """Every job not in a final state, in submission order (``jobs_active``)."""
        rows = self.db.execute(
            f"SELECT {_JOB_SELECT} FROM jobs WHERE {_ACTIVE} ORDER BY seq"
        ).fetchall()
        if not rows:
            return []
        from qmk.kernel.storage.job_reads import read_job

        return [read_job(row, self._sealed, self._sealer) for row in rows]

    def list_jobs(self, tenant: str, state: str | None, limit: int) -> list[Job]:
        """The tenant's most recent jobs (:func:`~qmk.kernel.storage.job_reads.list_jobs`)."""
        from qmk.kernel.storage.job_reads import list_jobs

        return list_jobs(self.db, self._sealed, tenant, state, limit)

    def tenant_stats(self, tenant: str) -> dict[str, Any]:
        """A tenant's totals (:func:`~qmk.kernel.storage.job_reads.tenant_stats`)."""
        from qmk.kernel.storage.job_reads import tenant_stats

        return tenant_stats(self.db, tenant)

    # ------------------------------------------------------------------ checkpoints

    def insert_checkpoint(
        self,
        checkpoint_id: str,
        job: Job,
        epoch: int,
        created_at: float,
        *,
        path: str | None = None,
        program_epoch: int | None = None,
        physics: Mapping[str, Any] | None = None,
    ) -> None:
        """Record a checkpoint of ``job`` at kernel epoch ``epoch``
        (:func:`~qmk.kernel.storage.job_reads.insert_checkpoint`)."""
        from qmk.kernel.storage.job_reads import insert_checkpoint

        insert_checkpoint(
            self.db,
            checkpoint_id,
            job,
            epoch,
            created_at,
            path=path,
            program_epoch=program_epoch,
            physics=physics,
        )
        self.dirty = True

    def load_checkpoint(
        self, job_id: str, tenant: str, checkpoint_id: str | None
    ) -> dict[str, Any] | None:
        """A checkpoint of the job (the latest when ``checkpoint_id`` is None)."""
        from qmk.kernel.storage.job_reads import load_checkpoint

        return load_checkpoint(self.db, job_id, tenant, checkpoint_id)

    def saved_states(self, job_id: str) -> list[tuple[str, str]]:
        """``(checkpoint_id, path)`` of each saved execution state of ``job_id``, newest first."""
        from qmk.kernel.storage.job_reads import saved_states

        return saved_states(self.db, job_id)

    def ended_states(self, before: float) -> list[tuple[str, str, str, str]]:
        """``(checkpoint_id, job_id, tenant, path)`` of each execution state of a job that
        ended (a final state) before ``before``."""
        final = sorted(FINAL_STATES)
        marks = ", ".join("?" * len(final))
        rows = self.db.execute(
            "SELECT c.checkpoint_id, c.job_id, c.tenant, c.path FROM checkpoints c "
            "JOIN jobs j ON j.job_id = c.job_id "
            f"WHERE c.path IS NOT NULL AND j.state IN ({marks}) AND j.finished_at < ?",
            (*final, before),
        ).fetchall()
        return [(str(c), str(j), str(t), str(p)) for c, j, t, p in rows]

    def all_state_paths(self) -> set[str]:
        """The path of every execution state a checkpoint holds."""
        rows = self.db.execute("SELECT path FROM checkpoints WHERE path IS NOT NULL")
        return {str(path) for (path,) in rows}

    def delete_checkpoints(self, checkpoint_ids: Iterable[str]) -> None:
        """Forget these checkpoints (their state files are the caller's to delete)."""
        self.db.executemany(
            "DELETE FROM checkpoints WHERE checkpoint_id=?", [(c,) for c in checkpoint_ids]
        )
        self.dirty = True

    # ------------------------------------------------------------------ earlier outcomes

    def archive_outcome(self, job: Job) -> None:
        """Keep the outcome ``job`` ended with (its state, result, error) before it runs
        again (a restore of a finished job)."""
        result, meta, size, seal = _result_columns(job.result, job.job_id, self._sealer)
        self.db.execute(
            "INSERT INTO attempts (job_id, attempt, state, finished_at, result, error, "
            "result_meta, result_bytes, result_seal) "
            "VALUES (?, ?, ?, ?, CAST(? AS TEXT), ?, ?, ?, ?)",
            (
                job.job_id,
                job.attempts,
                job.state,
                job.finished_at,
                result,
                None if job.error is None else _dumps(job.error),
                meta,
                size,
                seal,
            ),
        )
        self.dirty = True

    def earlier_outcomes(self, job_id: str) -> list[dict[str, Any]]:
        """The outcomes ``job_id`` ended with before it was restored, oldest first."""
        from qmk.kernel.storage.job_reads import earlier_outcomes

        return earlier_outcomes(self.db, self._sealed, job_id)

    # ------------------------------------------------------------------ results

    def result_usage(self) -> dict[str, int]:
        """Bytes of stored results (of jobs and of their earlier outcomes) by tenant."""
        rows = self.db.execute(
            "SELECT tenant, SUM(size) FROM ("
            " SELECT tenant, result_bytes AS size FROM jobs WHERE result IS NOT NULL"
            " UNION ALL SELECT j.tenant, a.result_bytes FROM attempts a"
            " JOIN jobs j ON j.job_id = a.job_id WHERE a.result IS NOT NULL"
            ") GROUP BY tenant"
        ).fetchall()
        return {str(tenant): int(size or 0) for tenant, size in rows}

    def expire_results(
        self, before: float, now: float
    ) -> tuple[list[tuple[str, str, int]], list[tuple[str, str, int]]]:
        """Delete the results of jobs, and the earlier outcomes of restored jobs, that
        ended before ``before``; the jobs keep their records, marked
        ``result_expired_at = now``. Returns ``(job_id, tenant, bytes freed)`` of each
        job whose result went, and of each earlier outcome whose result went."""
        jobs = self.db.execute(
            "SELECT job_id, tenant, result_bytes FROM jobs "
            "WHERE result IS NOT NULL AND finished_at < ?",
            (before,),
        ).fetchall()
        earlier = self.db.execute(
            "SELECT a.job_id, j.tenant, a.result_bytes FROM attempts a "
            "JOIN jobs j ON j.job_id = a.job_id WHERE a.result IS NOT NULL AND a.finished_at < ?",
            (before,),
        ).fetchall()
        if jobs:
            self.db.execute(
                "UPDATE jobs SET result=NULL, result_meta=NULL, result_bytes=0, "
                "result_expired_at=? WHERE result IS NOT NULL AND finished_at < ?",
                (now, before),
            )
        if earlier:
            self.db.execute(
                "UPDATE attempts SET result=NULL, result_meta=NULL, result_bytes=0 "
                "WHERE result IS NOT NULL AND finished_at < ?",
                (before,),
            )
        self.dirty = self.dirty or bool(jobs or earlier)
        return (
            [(str(j), str(t), int(b or 0)) for j, t, b in jobs],
            [(str(j), str(t), int(b or 0)) for j, t, b in earlier],
        )

    # ------------------------------------------------------------------ channels

    def save_channel(self, channel: dict[str, Any]) -> None:
        """Insert or update a channel."""
        self.db.execute(
            "INSERT OR REPLACE INTO channels VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            tuple(channel[key] for key in _CHANNEL_KEYS),
        )
        self.dirty = True

    def load_channels(self) -> list[dict[str, Any]]:
        """Every channel not CLOSED."""
        rows = self.db.execute("SELECT * FROM channels WHERE state != 'CLOSED'").fetchall()
        return [dict(zip(_CHANNEL_KEYS, row, strict=True)) for row in rows]

    def load_channel(self, channel_id: str) -> dict[str, Any] | None:
        """One channel by id, in any state."""
        row = self.db.execute("SELECT * FROM channels WHERE channel_id=?", (channel_id,)).fetchone()
        return None if row is None else dict(zip(_CHANNEL_KEYS, row, strict=True))

    # ------------------------------------------------------------------ sessions

    def revoke_session(self, sid: str, tenant: str, caps: Iterable[str], expires_at: float) -> None:
        """Record a session revoked: its row is written now (a sign-in writes none; its
        audit line records the session it opened)."""
        self.db.execute(
            "INSERT OR REPLACE INTO sessions (sid, tenant, caps, expires_at, revoked) "
            "VALUES (?, ?, ?, ?, 1)",
            (sid, tenant, _dumps(list(caps)), expires_at),
        )
        self.dirty = True

    def revoked_sessions(self) -> list[str]:
        """Ids of revoked sessions."""
        return [row[0] for row in self.db.execute("SELECT sid FROM sessions WHERE revoked=1")]

    # ------------------------------------------------------------------ usage

    def insert_usage(
        self,
        job_id: str,
        tenant: str,
        state: str,
        ended_at: float,
        usage: Usage,
        *,
        seq: int,
        outbox: Callable[[str], bytes] | None = None,
        ended_before: int | None = None,
    ) -> str:
        """Record a job's end's usage (in the open transaction: it commits with the
        job's end state); with ``outbox`` also its webhook, the body
        ``outbox(usage_id)`` makes, due now. Returns the usage id
        (``JOB_ID.N``, N counting the job's ends: a restored job ends again).
        ``seq``: the job's sequence number (``jobs.seq``, the row's ``job_seq``).
        ``ended_before``: how many ends of the job have usage rows already, when the
        caller knows (None: they are counted)."""
        ends = ended_before
        if ends is None:
            (ends,) = self.db.execute(
                "SELECT COUNT(*) FROM usage WHERE job_seq=? AND job_id=?", (seq, job_id)
            ).fetchone()
        usage_id = f"{job_id}.{ends + 1}"
        self.db.execute(
            _INSERT_USAGE, (usage_id, job_id, tenant, state, ended_at, *astuple(usage), seq)
        )
        if outbox is not None:
            self.db.execute(
                "INSERT INTO outbox (usage_id, tenant, body, state, attempts, next_at, "
                "created_at) VALUES (?, ?, ?, 'PENDING', 0, ?, ?)",
                (usage_id, tenant, outbox(usage_id), ended_at, ended_at),
            )
        self.dirty = True
        return usage_id


#: The ``meta`` key of the audit line the last start's check reached (seq, hash, byte
#: offset of its line) with its HMAC: the next start checks the lines after it.
AUDIT_VERIFIED = "audit_verified"


def _verified_mac(key: bytes, seq: int, digest: str, offset: int) -> str:
    return result_seal(key, "", f"{seq}:{digest}:{offset}", "audit-verified")


def verified_audit_head(data_dir: Path, key: bytes) -> tuple[int, str, int] | None:
    """(seq, hash, byte offset) of the audit line the last start's check of ``data_dir``
    reached, read without opening the database for writing; None without one, or when
    its HMAC (``key``) fails: then the next check starts at the first line."""
    path = data_dir / DB_FILE
    if not path.exists():
        return None
    try:
        db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        try:
            row = db.execute("SELECT value FROM meta WHERE key=?", (AUDIT_VERIFIED,)).fetchone()
        finally:
            db.close()
    except sqlite3.Error:
        return None
    if row is None:
        return None
    seq, digest, offset, mac = [*str(row[0]).split(":"), "", "", "", ""][:4]
    if not (seq.isdigit() and offset.isdigit()):
        return None
    if not hmac.compare_digest(mac, _verified_mac(key, int(seq), digest, int(offset))):
        return None
    return int(seq), digest, int(offset)


def committed_audit_head(data_dir: Path) -> tuple[int, str, int | None] | None:
    """(seq, hash, byte offset of its line or None) of the audit chain head the database
    of ``data_dir`` committed, read without opening it for writing; None without a
    database or a committed head."""
    path = data_dir / DB_FILE
    if not path.exists():
        return None
    keys = (AUDIT_SEQ, AUDIT_HEAD, AUDIT_OFFSET)
    try:
        db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        try:
            rows = dict(db.execute("SELECT key, value FROM meta WHERE key IN (?, ?, ?)", keys))
        finally:
            db.close()
    except sqlite3.Error:
        return None
    if AUDIT_SEQ not in rows or int(rows[AUDIT_SEQ]) == 0:
        return None
    offset = rows.get(AUDIT_OFFSET)
    return int(rows[AUDIT_SEQ]), str(rows[AUDIT_HEAD]), None if offset is None else int(offset)


__all__ = [
    "AUDIT_HEAD",
    "AUDIT_OFFSET",
    "AUDIT_SEQ",
    "AUDIT_VERIFIED",
    "PACKED_GRAPH",
    "USAGE_COLUMNS",
    "Store",
    "committed_audit_head",
    "meta_text",
    "verified_audit_head",
]
