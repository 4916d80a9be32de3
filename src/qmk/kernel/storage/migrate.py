"""Bring a data directory an older kernel wrote forward: ``qmk admin migrate DATA_DIR``.

The kernel reads one format of its database (:data:`qmk.kernel.storage.store.SCHEMA_VERSION`)
and one form of ``attest`` line. It refuses an older database (``QK105
data-dir-outdated``) instead of keeping a reader for every format it once wrote. This
module is the one place that knows those older forms. It rewrites them once, with no
kernel holding the directory (it takes the data directory's lock):

- **columns** a kernel added to ``jobs``, ``attempts`` and ``checkpoints`` since the
  first format are added (null), with the indexes on them. So are a stored result's
  size (``result_bytes``) and index (``result_meta``) where an older kernel kept neither.
- **tables** added since are created empty (format 3: ``triggers`` and
  ``trigger_runs``, the workflow triggers of :mod:`qmk.kernel.running.triggers`).
- **graphs kept per job** (``job_graphs``, from before big graphs were kept once per
  tenant and text in ``graph_texts``) move under their digest, and that table is
  dropped. A graph kept apart as its text (formats 4 and before) is packed as format 5
  keeps it (:func:`~qmk.kernel.storage.store.pack_graph`).
- **indexes and tables written per job** (format 6): the index of every job's state
  (``jobs_state``) and of the usage rows' jobs (``usage_job``) are dropped, and the jobs
  not ended are indexed (``jobs_active``). ``meta`` is made again without rowids, its
  rows kept. The ``usage`` table is made again (format 7) with each row's job's sequence
  number (``job_seq``), keyed by it (``usage_of_job``) rather than by its ``usage_id``;
  its rows and rowids are kept.
- **results' indexes** (format 8): a stored result's index (``result_meta``) no longer
  repeats the result's head (:func:`~qmk.kernel.storage.store.meta_text`). Those an
  older kernel wrote with it read as they are (their seals cover them as written), so no
  row is rewritten. The format's number says that a kernel of format 7, which reads the
  head from the index, must not open the directory. The indexes this module writes (a
  result indexed or a device result rewritten) are of format 8. A tenant's jobs are
  indexed by their submission order (``jobs_tenant``), and the index of their states is
  dropped (``jobs_tenant_state``).
- **device jobs and policies of before targets** (format 1 and before): every stored
  policy had a ``device`` key (null, or ``"neutral-atom"`` for a device job) that a
  policy no longer has. A device job's stored program was ``{"job": wire job,
  "strict_timing": bool, "stream": spec}``. The key is dropped from each job's policy and
  run request. A device job becomes a job of the ``neutral-atom`` target as today's
  admission stores one. Its program is the wire job itself, ``strict_timing`` (when
  true) and ``stream`` are its ``target_options``, and its ``program_digest`` is that of
  the new text.
- **run requests**: a job stored before jobs kept theirs gets the request an older
  kernel ran it with. It is built from its graph, shots, seed and policy and, where the
  policy names none, the machine's physics (the ``[machine]`` of the kernel's config:
  ``--config``).
- **seals**: every stored result carries its seal (format 4). A result an older kernel
  stored without one is sealed, under the kernel secret. That is every result of a
  database written before results were sealed. In formats 2 and 3, it is those of the
  jobs before the first one whose result had to carry a seal (its ``result_seals_from``
  record, checked against its HMAC; the record is then dropped). A result after it
  without its seal lost it to an edit. It stays unsealed, and is served as ``QK308
  result-tampered``.
- **programs' seals** (format 9): every job's stored program carries its seal
  (:func:`~qmk.kernel.security.seals.program_seal`). A program stored without one is
  sealed under the kernel secret where its text is the one its run request names (its
  ``program_digest``). One that is not stays unsealed, and is refused as ``QK310
  program-tampered``.
- **device results of before targets**: a device job's result was the device's own
  (``Result.to_json``: ``device_id``, ``status``, its counts and telemetry at the top).
  A job of the ``neutral-atom`` target's is the one result every target returns
  (``RunResult.to_json``: ``engine``, ``events``, ``target``, the device's under
  ``device``). Each such result whose seal holds is rewritten in today's form
  (:func:`~qmk.devices.neutral_atom.target.stored_device_result`) and sealed again. An
  audit line (``migrate``, with the job and its ``stored_sha256``) records the new text,
  as a COMPLETED line records a result. One whose seal fails is left as it is
  (``QK308``). This step runs on a directory of any format, since a directory an earlier
  ``qmk admin migrate`` brought to format 4 still had them.
- **the audit head's offset**: a database that records the chain head without the byte
  offset of its line has it found (the log's lines counted) for the data directory's
  checks. It is written with the head this module commits.
- **attest lines** written before run requests hold a ``graph_sha256`` of the rewritten
  graph, where a run request has ``program_digest``, the digest of the graph as
  submitted. The audit log is append-only and hash-chained, so each such line stays as
  it is. A new ``attest`` line of the same job follows it, with the run request the old
  one records (``migrated_from``: the old line's ``seq``).
  :func:`~qmk.kernel.security.replay.find_attestation` finds the newest, and replay reads
  it like any other. When the stored graph is not the one the old line attests, the new
  line keeps the old digest, so replay says so. A line of a run request whose policy has
  the ``device`` key of before targets is followed the same way by one without it.

It ends with a ``migrate`` audit line, the chain head committed, and the format number
written. Running it again on a current directory changes nothing.
"""

from __future__ import annotations

import hmac
import json
import sqlite3
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgspec

from qmk import defaults
from qmk.execution.request import Policy, Rewrite, RunRequest, program_digest
from qmk.execution.rewritten import rewritten
from qmk.kernel.datafiles import AUDIT_FILE, DB_FILE
from qmk.kernel.errors import DataDirError
from qmk.kernel.records.encoded import encode_result
from qmk.kernel.security.attest import ATTEST_EVENT, REQUEST_FIELDS
from qmk.kernel.security.seals import (
    KeyedMac,
    data_digest,
    derive,
    program_seal,
    result_seal,
    sealed_result,
)
from qmk.kernel.security.sessions import load_secret
from qmk.kernel.storage.audit import LINE_FORMATS, MIGRATE_EVENT, AuditLog
from qmk.kernel.storage.datadir import open_data_dir
from qmk.kernel.storage.job_reads import program_text
from qmk.kernel.storage.job_row import text_bytes
from qmk.kernel.storage.store import (
    AUDIT_HEAD,
    AUDIT_OFFSET,
    AUDIT_SEQ,
    GRAPH_APART,
    META_TABLE,
    PACKED_GRAPH,
    SCHEMA_KEY,
    SCHEMA_VERSION,
    USAGE_TABLE,
    check_version,
    compact_encoder,
    create_tables,
    meta_text,
    pack_graph,
    schema_version,
)
from qmk.qvm.graph import compact_text
from qmk.values import convert

#: The columns kernels added after the first (unnumbered) format: (table, column, type).
ADDED_COLUMNS = (
    ("checkpoints", "path", "TEXT"),
    ("checkpoints", "program_epoch", "INTEGER"),
    ("checkpoints", "physics", "TEXT"),
    ("jobs", "idempotency_key", "TEXT"),
    ("jobs", "result_meta", "TEXT"),
    ("jobs", "result_bytes", "INTEGER"),
    ("jobs", "result_expired_at", "REAL"),
    ("attempts", "result_meta", "TEXT"),
    ("attempts", "result_bytes", "INTEGER"),
    ("jobs", "request", "TEXT"),
    ("jobs", "cache_key", "TEXT"),
    ("jobs", "cached_from", "TEXT"),
    ("jobs", "result_seal", "TEXT"),
    ("attempts", "result_seal", "TEXT"),
    ("jobs", "graph_digest", "TEXT"),
    ("jobs", "program_seal", "TEXT"),
)

_dumps = compact_encoder(allow_nan=True)

#: The policy key of before targets (format 1 and before): null for a QVM job, and
#: :data:`_OLD_DEVICE_JOB` for a device job (submitted by that time's own device syscall).
_OLD_DEVICE_KEY, _OLD_DEVICE_JOB = "device", "neutral-atom"
#: The ``meta`` key of formats 2 and 3's first job whose result had to carry a seal (with
#: its HMAC): the jobs before it stored theirs unsealed, read unchecked until format 4.
_SEALS_FROM = "result_seals_from"
#: The keys of an audit line that are the log's own, not its event's fields.
_AUDIT_OWN = ("seq", "ts", "event", "prev", *LINE_FORMATS.values())


@dataclass(slots=True, kw_only=True)
class Migrated:
    """What :func:`migrate` changed."""

    data_dir: str
    #: The format found (None: unnumbered, an older kernel's; with no database yet,
    #: this kernel's: there is nothing to bring forward).
    version_from: int | None
    version_to: int = SCHEMA_VERSION
    columns_added: list[str] = field(default_factory=list)
    results_indexed: int = 0
    #: Results stored before seals, sealed now.
    results_sealed: int = 0
    graphs_moved: int = 0
    #: Graphs kept apart as their text, packed now (format 5).
    graphs_packed: int = 0
    #: Jobs' programs stored before seals, sealed now (format 9).
    programs_sealed: int = 0
    requests_built: int = 0
    #: Rows whose policy lost the ``device`` key of before targets.
    policies_updated: int = 0
    #: Device jobs of before targets, now jobs of the ``neutral-atom`` target.
    device_jobs: int = 0
    #: Their results (and earlier outcomes' results) stored in the device's own form,
    #: now in the form every target returns.
    device_results: int = 0
    attest_lines: int = 0

    @property
    def changed(self) -> bool:
        """Whether anything was brought forward."""
        return (
            self.version_from != self.version_to or self.attest_lines > 0 or self.device_results > 0
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "data_dir": self.data_dir,
            "version_from": self.version_from,
            "version_to": self.version_to,
            "changed": self.changed,
            "columns_added": list(self.columns_added),
            "results_indexed": self.results_indexed,
            "results_sealed": self.results_sealed,
            "graphs_moved": self.graphs_moved,
            "graphs_packed": self.graphs_packed,
            "programs_sealed": self.programs_sealed,
            "requests_built": self.requests_built,
            "policies_updated": self.policies_updated,
            "device_jobs": self.device_jobs,
            "device_results": self.device_results,
            "attest_lines": self.attest_lines,
        }


def migrate(data_dir: str | Path, *, machine: Any = None) -> Migrated:
    """Bring ``data_dir`` forward to this kernel's formats (see the module docstring).

    Args:
        data_dir: the kernel's data directory; no kernel may hold it.
        machine: the ``[machine]`` of the kernel's config (its ``qubit``, ``profile``,
            ``noise_model`` and ``calibration``) for jobs stored before run requests
            whose policy names none; None: QMK's defaults.

    Returns:
        What changed (:class:`Migrated`).

    Raises:
        DataDirError: ``QK102`` a kernel holds it, ``QK103`` it is damaged, ``QK104`` it
            cannot be read or written; ``QK105`` its database is newer than this kernel.
    """
    root = Path(data_dir)
    report = Migrated(data_dir=str(root), version_from=None)
    lock = open_data_dir(root, offset_of=_line_offset)
    try:
        if not (root / DB_FILE).exists():  # no kernel ran here: nothing is older
            report.version_from = SCHEMA_VERSION
            return report
        secret = load_secret(root)
        key = derive(secret, "result")
        db = sqlite3.connect(root / DB_FILE)
        try:
            _bring_forward(db, root, report, _physics(machine), key)
            rewritten = _device_results(db, key)
            report.device_results = len(rewritten)
            audit = AuditLog(root, secret)
            try:
                for job_id, tenant, digest in rewritten:
                    audit.append(MIGRATE_EVENT, job_id=job_id, tenant=tenant, stored_sha256=digest)
                report.attest_lines = _attest_lines(db, root, audit)
                if report.changed:
                    audit.append(MIGRATE_EVENT, **report.to_json())
                head = audit.flush()
            finally:
                audit.close()
            db.executemany(
                "INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)",
                ((AUDIT_SEQ, str(head[0])), (AUDIT_HEAD, head[1]), (AUDIT_OFFSET, str(head[2]))),
            )
            db.commit()
        finally:
            db.close()
    finally:
        lock.close()
    return report


def _line_offset(audit: Path, seq: int) -> int:
    """The byte offset of line ``seq`` of the audit log (its lines counted): where a
    database of an older format recorded the chain head without it. The head this module
    commits records it."""
    position = 0
    try:
        with open(audit, "rb") as handle:
            for _ in range(seq - 1):
                line = handle.readline()
                if not line:
                    break
                position += len(line)
    except FileNotFoundError:
        return 0  # the data directory's checks report the log missing
    return position


def _named(db: sqlite3.Connection, sql: str, args: tuple[Any, ...] = ()) -> sqlite3.Cursor:
    """``sql`` run on ``db``, its rows read by their columns' names (:class:`sqlite3.Row`)."""
    cursor = db.cursor()
    cursor.row_factory = sqlite3.Row
    return cursor.execute(sql, args)


def _physics(machine: Any) -> dict[str, Any]:
    if machine is None:
        return {"qubit": defaults.QUBIT, "profile": defaults.PROFILE}
    return {
        "qubit": machine.qubit,
        "profile": machine.profile,
        "noise_model": machine.noise_model,
        "calibration": machine.calibration,
    }


def _bring_forward(
    db: sqlite3.Connection,
    root: Path,
    report: Migrated,
    physics: Mapping[str, Any],
    key: bytes,
) -> None:
    """The database's steps from its format to this kernel's."""
    version = schema_version(db)
    report.version_from = version
    if version is not None and version > SCHEMA_VERSION:
        check_version(db, root)  # QK105: newer than this kernel
    if version == SCHEMA_VERSION:
        return
    have = {
        (table, row["name"])
        for table in ("checkpoints", "jobs", "attempts")
        for row in _named(db, f"PRAGMA table_info({table})")
    }
    unsealed = ("jobs", "result_seal") not in have  # every result
    for table, column, kind in ADDED_COLUMNS:
        if (table, column) not in have:
            db.execute(f"ALTER TABLE {table} ADD COLUMN {column} {kind}")
            report.columns_added.append(f"{table}.{column}")
    _usage_by_job_seq(db)
    create_tables(db)
    _fewer_pages(db)
    report.results_indexed = _index_results(db)
    report.graphs_moved = _move_graphs(db)
    report.policies_updated, report.device_jobs = _before_targets(db)
    report.requests_built = _build_requests(db, physics)
    report.results_sealed = _seal_results(db, key, None if unsealed else _seals_from(db, key))
    report.graphs_packed = _pack_graphs(db)
    report.programs_sealed = _seal_programs(db, key)
    db.execute(
        "INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", (SCHEMA_KEY, str(SCHEMA_VERSION))
    )


#: The indexes formats 5 and before kept that format 6 does not: every job's state
#: (the jobs not ended have ``jobs_active`` now) and the usage rows' jobs (found by their
#: ids' index now); and that format 7 kept and format 8 does not: a tenant's jobs by
#: state (by their submission order now, ``jobs_tenant``).
_DROPPED_INDEXES = ("jobs_state", "usage_job", "jobs_tenant_state")


def _fewer_pages(db: sqlite3.Connection) -> None:
    """Format 6: the indexes it does not keep dropped, and ``meta`` made again without
    rowids (:data:`~qmk.kernel.storage.store.META_TABLE`), its rows as they were."""
    for index in _DROPPED_INDEXES:
        db.execute(f"DROP INDEX IF EXISTS {index}")
    (sql,) = db.execute(
        "SELECT sql FROM sqlite_master WHERE type='table' AND name='meta'"
    ).fetchone()
    if "WITHOUT ROWID" in sql.upper():
        return
    db.execute("DROP TABLE IF EXISTS meta_6")  # a migration cut short here before
    db.execute(f"CREATE TABLE {META_TABLE.replace('meta', 'meta_6', 1)}")
    db.execute("INSERT INTO meta_6 (key, value) SELECT key, value FROM meta")
    db.execute("DROP TABLE meta")
    db.execute("ALTER TABLE meta_6 RENAME TO meta")


def _usage_by_job_seq(db: sqlite3.Connection) -> None:
    """Format 7: the ``usage`` table made again (:data:`~qmk.kernel.storage.store.
    USAGE_TABLE`): no key of ``usage_id`` (its index is dropped with the old table), each
    row's ``job_seq`` its job's ``seq``, every row and rowid kept (``q_usage`` orders ties
    by rowid). Its indexes follow (``create_tables``). A database without the table
    (an older kernel's) gets it there."""
    if not db.execute("SELECT 1 FROM sqlite_master WHERE type='table' AND name='usage'").fetchone():
        return
    names = [row["name"] for row in _named(db, "PRAGMA table_info(usage)")]
    if "job_seq" in names:
        return
    columns = ", ".join(names)
    db.execute("DROP TABLE IF EXISTS usage_7")  # a migration cut short here before
    db.execute(f"CREATE TABLE {USAGE_TABLE.replace('usage', 'usage_7', 1)}")
    db.execute(
        f"INSERT INTO usage_7 (rowid, {columns}, job_seq) SELECT u.rowid, "
        + ", ".join(f"u.{column}" for column in columns.split(", "))
        + ", (SELECT j.seq FROM jobs j WHERE j.job_id = u.job_id) FROM usage u ORDER BY u.rowid"
    )
    db.execute("DROP TABLE usage")
    db.execute("ALTER TABLE usage_7 RENAME TO usage")


def _index_results(db: sqlite3.Connection) -> int:
    """Results an older kernel stored without their size or index: both, once."""
    done = 0
    for table, id_column in (("jobs", "job_id"), ("attempts", "rowid")):
        rows = db.execute(
            f"SELECT {id_column}, CAST(result AS BLOB) FROM {table} "
            "WHERE result IS NOT NULL AND (result_meta IS NULL OR result_bytes IS NULL)"
        ).fetchall()
        for ident, data in rows:
            stored = encode_result(json.loads(data))
            # an index without its head reads the head from the text after the counts:
            # where an older kernel's text is not the one the index was made for, the head
            # stays in the index (read from there, as format 7 read every head)
            same = stored.data == data
            meta = meta_text(stored.meta) if same else _dumps(dict(stored.meta))
            db.execute(
                f"UPDATE {table} SET result_meta=?, result_bytes=? WHERE {id_column}=?",
                (meta, len(data), ident),
            )
            done += 1
    return done


def _seals_from(db: sqlite3.Connection, key: bytes) -> int:
    """The first job sequence number whose result had to carry a seal, as a kernel of
    format 2 or 3 recorded it (``result_seals_from``: the number and its HMAC). The record
    is then dropped. 0 (none may be sealed here) without one, or when its HMAC fails."""
    row = _named(db, "SELECT value FROM meta WHERE key=?", (_SEALS_FROM,)).fetchone()
    db.execute("DELETE FROM meta WHERE key=?", (_SEALS_FROM,))
    first, _, mac = ("" if row is None else str(row["value"])).partition(":")
    good = first.isdigit() and hmac.compare_digest(mac, result_seal(key, "", first, "seals-from"))
    return int(first) if good else 0


def _seal_results(db: sqlite3.Connection, key: bytes, before: int | None) -> int:
    """Seal the results stored without one by a kernel that sealed none: of the jobs
    before sequence number ``before`` (None: all), and their earlier outcomes."""
    done = 0
    for table in ("jobs", "attempts"):
        rows = db.execute(
            f"SELECT t.rowid, t.job_id, CAST(t.result AS BLOB), t.result_meta FROM {table} t "
            "JOIN jobs j USING (job_id) "
            "WHERE t.result IS NOT NULL AND t.result_seal IS NULL AND (? IS NULL OR j.seq < ?)",
            (before, before),
        ).fetchall()
        for rowid, job_id, data, meta in rows:
            seal = result_seal(key, job_id, data_digest(data), meta)
            db.execute(f"UPDATE {table} SET result_seal=? WHERE rowid=?", (seal, rowid))
            done += 1
    return done


def _device_results(db: sqlite3.Connection, key: bytes) -> list[tuple[str, str, str]]:
    """Device results of before targets in today's form, sealed again (the module
    docstring): (job, tenant, SHA-256 of the new text) of each job whose result changed
    (an earlier outcome's changes too, with no audit line: none records it)."""
    from qmk.devices.neutral_atom.target import NAME

    rows = db.execute(
        "SELECT job_id, tenant, request FROM jobs WHERE request IS NOT NULL "
        "AND instr(request, ?) > 0",
        (json.dumps(NAME),),
    ).fetchall()
    rewritten = []
    for job_id, tenant, request_text in rows:
        request = json.loads(request_text)
        if request.get("target") != NAME:
            continue
        wire = json.loads(_graph_of(db, job_id) or "{}")
        for table in ("attempts", "jobs"):
            digest = _device_result(db, table, job_id, wire, request, key)
            if digest is not None and table == "jobs":
                rewritten.append((job_id, tenant, digest))
    return rewritten


def _device_result(
    db: sqlite3.Connection,
    table: str,
    job_id: str,
    wire: Mapping[str, Any],
    request: Mapping[str, Any],
    key: bytes,
) -> str | None:
    """Rewrite ``job_id``'s results in ``table`` that are a device's own in today's form,
    where their seal holds: the SHA-256 of the last new text, or None when none changed."""
    from qmk.devices.neutral_atom.target import stored_device_result

    digest = None
    rows = db.execute(
        f"SELECT rowid, CAST(result AS BLOB), result_meta, result_seal FROM {table} "
        "WHERE job_id=? AND result IS NOT NULL",
        (job_id,),
    ).fetchall()
    for rowid, data, meta, seal in rows:
        old = json.loads(data)
        if "device" in old or not {"device_id", "status"} <= old.keys():
            continue  # today's form already
        if meta is None or not sealed_result(key, job_id, data, meta, seal):
            continue  # edited since it was stored: served as QK308, never sealed anew
        new = stored_device_result(old, wire, noise=bool(request.get("noise", True)))
        new["telemetry"]["cache_hit"] = False  # as a worker's run says (it ran)
        stored = encode_result(new)
        new_meta = meta_text(stored.meta)
        db.execute(
            f"UPDATE {table} SET result=CAST(? AS TEXT), result_meta=?, result_bytes=?, "
            "result_seal=? WHERE rowid=?",
            (
                stored.data,
                new_meta,
                stored.nbytes,
                result_seal(key, job_id, stored.sha256, new_meta),
                rowid,
            ),
        )
        digest = stored.sha256
    return digest


def _move_graphs(db: sqlite3.Connection) -> int:
    """Graphs kept per job (``job_graphs``) moved under their digest (``graph_texts``)."""
    if db.execute("SELECT 1 FROM sqlite_master WHERE name='job_graphs'").fetchone() is None:
        return 0
    rows = db.execute(
        "SELECT g.job_id, j.tenant, g.graph FROM job_graphs g JOIN jobs j USING (job_id)"
    ).fetchall()
    for job_id, tenant, graph in rows:
        digest = program_digest(graph)
        db.execute(
            "INSERT OR IGNORE INTO graph_texts (tenant, digest, graph) VALUES (?, ?, ?)",
            (tenant, digest, pack_graph(graph)),
        )
        db.execute("UPDATE jobs SET graph='', graph_digest=? WHERE job_id=?", (digest, job_id))
    db.execute("DROP TABLE job_graphs")
    return len(rows)


def _pack_graphs(db: sqlite3.Connection) -> int:
    """Graphs kept apart as their text (formats 4 and before) packed (format 5)."""
    rows = db.execute(
        "SELECT rowid, graph FROM graph_texts WHERE typeof(graph) = 'text'"
    ).fetchall()
    db.executemany(
        "UPDATE graph_texts SET graph=? WHERE rowid=?",
        ((pack_graph(text), rowid) for rowid, text in rows),
    )
    return len(rows)


def _graph_of(db: sqlite3.Connection, job_id: str) -> str | None:
    """The stored graph text of a job (in its row, or kept apart under its digest);
    None for no such job, or a packed text that does not unpack within
    :data:`~qmk.kernel.storage.job_reads.UNSEALED_PROGRAM_BYTES`."""
    row = db.execute(f"SELECT graph, {PACKED_GRAPH} FROM jobs WHERE job_id=?", (job_id,)).fetchone()
    if row is None:
        return None
    # kept apart: packed from format 5 on, its text before (_pack_graphs packs it)
    text, kept = row
    if isinstance(kept, str):
        return kept
    return program_text(None, (job_id, "", "", text, kept, None))


def _seal_programs(db: sqlite3.Connection, key: bytes) -> int:
    """Format 9: the program of each job stored without its seal, sealed under the kernel
    secret where its text is the one its run request names (its ``program_digest``). A
    text that is not (edited before the migration), or does not unpack, stays unsealed
    and is refused as ``QK310 program-tampered``."""
    sealer = KeyedMac(key)
    ids = [
        str(job_id)
        for (job_id,) in db.execute("SELECT job_id FROM jobs WHERE program_seal IS NULL")
    ]
    done = 0
    for job_id in ids:
        tenant, digest = db.execute(
            "SELECT tenant, json_extract(request, '$.program_digest') FROM jobs WHERE job_id=?",
            (job_id,),
        ).fetchone()
        text = _graph_of(db, job_id)
        if text is None or not isinstance(digest, str) or program_digest(text) != digest:
            continue
        seal = program_seal(sealer, job_id, tenant, digest, text_bytes(text))
        db.execute("UPDATE jobs SET program_seal=? WHERE job_id=?", (seal, job_id))
        done += 1
    return done


def _before_targets(db: sqlite3.Connection) -> tuple[int, int]:
    """Policies and run requests of before targets without their ``device`` key, and
    device jobs as jobs of the neutral-atom target (the module docstring). Returns how
    many rows changed, and how many of them were device jobs.

    Raises:
        DataDirError: ``QK103`` a policy names a device no kernel wrote, or a device
            job's stored program is not the wrapped job an older kernel stored.
    """
    rows = db.execute(
        "SELECT job_id, shots, seed, policy, request FROM jobs "
        "WHERE instr(policy, ?) > 0 OR instr(request, ?) > 0",
        (f'"{_OLD_DEVICE_KEY}"', f'"{_OLD_DEVICE_KEY}"'),
    ).fetchall()
    updated = devices = 0
    for job_id, shots, seed, policy_text, request_text in rows:
        policy = json.loads(policy_text)
        request = None if request_text is None else json.loads(request_text)
        inner = {} if request is None else (request.get("policy") or {})
        if _OLD_DEVICE_KEY not in policy and _OLD_DEVICE_KEY not in inner:
            continue  # "device" was another key's value (a channel's name)
        device = policy.pop(_OLD_DEVICE_KEY, None) or inner.pop(_OLD_DEVICE_KEY, None)
        if device is not None:
            request = _device_request(db, job_id, shots, seed, policy, request, device)
            devices += 1
        db.execute(
            "UPDATE jobs SET policy=?, request=? WHERE job_id=?",
            (_dumps(policy), None if request is None else _dumps(request), job_id),
        )
        updated += 1
    return updated, devices


def _device_request(
    db: sqlite3.Connection,
    job_id: str,
    shots: int,
    seed: int,
    policy: Mapping[str, Any],
    request: dict[str, Any] | None,
    device: Any,
) -> dict[str, Any]:
    """The run request of an older kernel's device job, as today's admission makes one
    (its stored program rewritten to the wire job itself)."""
    from qmk.devices.neutral_atom.target import NAME

    stored = json.loads(_graph_of(db, job_id) or "null")
    if device != _OLD_DEVICE_JOB or not (
        isinstance(stored, dict) and isinstance(stored.get("job"), dict)
    ):
        raise DataDirError.of(
            "data-dir-damaged",
            f"job {job_id} is stored as a device job ({_OLD_DEVICE_KEY} {device!r}) but "
            "is not one an older kernel wrote: its policy names no known device, or its "
            'program is not {"job": ...}',
        )
    options: dict[str, Any] = {}
    if stored.get("strict_timing"):
        options["strict_timing"] = True
    if stored.get("stream") is not None:
        options["stream"] = stored["stream"]
    text = compact_text(stored["job"])
    _set_graph(db, job_id, text)
    digest = program_digest(text)
    if request is None:  # stored before run requests: as the device admission built it
        built = RunRequest.build(
            program_digest=digest,
            shots=shots,
            seed=seed,
            policy=convert(policy, Policy, where="policy"),
        )
        request = built.to_json()
    request.update(program_digest=digest, target=NAME, target_options=options, policy=policy)
    RunRequest.from_json(request)  # today's form, or the migration stops here
    return request


def _set_graph(db: sqlite3.Connection, job_id: str, text: str) -> None:
    """Store ``text`` as ``job_id``'s program, as the store keeps it (in the row, or apart
    under its digest past :data:`~qmk.kernel.storage.store.GRAPH_APART`); a text kept apart that
    no job names any more is dropped."""
    tenant, old = db.execute(
        "SELECT tenant, graph_digest FROM jobs WHERE job_id=?", (job_id,)
    ).fetchone()
    digest = program_digest(text) if len(text) >= GRAPH_APART else None
    if digest is not None:
        db.execute(
            "INSERT OR IGNORE INTO graph_texts (tenant, digest, graph) VALUES (?, ?, ?)",
            (tenant, digest, pack_graph(text)),
        )
    db.execute(
        "UPDATE jobs SET graph=?, graph_digest=? WHERE job_id=?",
        ("" if digest is not None else text, digest, job_id),
    )
    if old is not None and old != digest:
        db.execute(
            "DELETE FROM graph_texts WHERE tenant=? AND digest=? AND NOT EXISTS "
            "(SELECT 1 FROM jobs WHERE tenant=? AND graph_digest=?)",
            (tenant, old, tenant, old),
        )


def _build_requests(db: sqlite3.Connection, physics: Mapping[str, Any]) -> int:
    """The run request of each job stored without one, as the kernel that stored it ran
    it: its graph, shots, seed and policy, and the machine's ``physics`` where the policy
    names none."""
    rows = db.execute(
        "SELECT job_id, shots, seed, policy FROM jobs WHERE request IS NULL"
    ).fetchall()
    encode = msgspec.json.Encoder()
    for job_id, shots, seed, policy_text in rows:
        policy: Policy = convert(json.loads(policy_text), Policy, where="policy")
        request = RunRequest(
            program_digest=program_digest(_graph_of(db, job_id) or ""),
            shots=shots,
            seed=seed,
            engine=policy.engine,
            noise=policy.noise,
            qubit=policy.qubit or physics.get("qubit") or defaults.QUBIT,
            profile=policy.profile or physics.get("profile") or defaults.PROFILE,
            noise_model=physics.get("noise_model"),
            calibration=physics.get("calibration"),
            policy=policy,
        )
        db.execute(
            "UPDATE jobs SET request=? WHERE job_id=?", (encode.encode(request).decode(), job_id)
        )
    return len(rows)


def _attest_records(root: Path) -> Iterator[dict[str, Any]]:
    path = root / AUDIT_FILE
    if not path.exists():
        return
    with open(path, encoding="utf-8") as handle:
        for line in handle:
            if f'"event":"{ATTEST_EVENT}"' in line:
                yield json.loads(line)


def _attest_lines(db: sqlite3.Connection, root: Path, audit: AuditLog) -> int:
    """An attest line of today's form after each job's newest line of an older one."""
    newest: dict[str, dict[str, Any]] = {}
    for record in _attest_records(root):
        newest[str(record.get("job_id"))] = record
    written = 0
    for job_id, record in newest.items():
        if "program_digest" not in record:
            fields = _brought_forward(db, job_id, record)
        elif _OLD_DEVICE_KEY in (record.get("policy") or {}):
            fields = _without_device(record)
        else:
            continue
        audit.append(ATTEST_EVENT, **fields)
        written += 1
    return written


def _without_device(record: Mapping[str, Any]) -> dict[str, Any]:
    """The fields of an attest line whose run request's policy has the ``device`` key of
    before targets (null: device jobs were not attested), without it."""
    fields = {k: v for k, v in record.items() if k not in _AUDIT_OWN}
    policy = dict(fields["policy"])
    policy.pop(_OLD_DEVICE_KEY)
    fields.update(policy=policy, migrated_from=record.get("seq"))
    return fields


def _brought_forward(
    db: sqlite3.Connection, job_id: str, record: Mapping[str, Any]
) -> dict[str, Any]:
    """The fields of today's attest line for an older one: the run request it records,
    then what it ran and gave. (Its ``graph_sha256`` was of the rewritten graph; the
    request's ``program_digest`` is of the graph as submitted, the one stored.)"""
    from qmk.qec.values import Calibration, QubitParams

    qubit = record["qubit"]
    calibration = record.get("calibration")
    rewrite = Rewrite.from_json(record.get("rewrite")) if record.get("rewrite") else None
    graph = _graph_of(db, job_id)
    digest = record["graph_sha256"]
    if graph is not None and program_digest(rewritten(graph, rewrite)) == digest:
        digest = program_digest(graph)  # the stored graph is the one the old line attests
    policy = Policy()
    row = _named(db, "SELECT request FROM jobs WHERE job_id=?", (job_id,)).fetchone()
    if row is not None and row["request"] is not None:
        policy = RunRequest.from_json(json.loads(row["request"])).policy or policy
    request = RunRequest(
        program_digest=digest,
        shots=record["shots"],
        seed=record["seed"],
        engine=record.get("engine_requested"),
        noise=record["noise"],
        qubit=qubit if isinstance(qubit, str) else QubitParams.from_json(qubit).to_json(),
        profile=record["profile"],
        noise_model=record.get("noise_model"),
        calibration=None if calibration is None else Calibration.from_json(calibration).to_json(),
        rewrite=rewrite,
        policy=policy,
    )
    fields = {k: v for k, v in request.to_json().items() if k in REQUEST_FIELDS}
    return {
        "job_id": job_id,
        "tenant": record.get("tenant"),
        **fields,
        "engine": record.get("engine"),
        "epochs": record.get("epochs", []),
        "result_sha256": record["result_sha256"],
        "cache_hit": False,
        "migrated_from": record.get("seq"),
    }


__all__ = ["ADDED_COLUMNS", "Migrated", "migrate"]
