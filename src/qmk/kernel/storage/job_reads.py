"""A stored job read back, and the store's rarer reads: what a kernel asks of its database
at a restart, a status of a job no longer held, a list, a tenant's totals, a checkpoint or
a restored job's earlier outcomes, never on a job's submit or its status while held.

Loaded at first use (:class:`~qmk.kernel.storage.store.Store` calls these): a Bell job's
path never reads a row back. A row's program is checked against its seal, and its
result against its (``sealed``); one that fails reads as none, with its coded damage.
"""

from __future__ import annotations

import json
import zlib
from collections.abc import Callable, Mapping
from typing import Any

import msgspec

from qmk.execution.request import RunRequest, program_digest
from qmk.kernel.errors import JobError, error_json
from qmk.kernel.records.jobs import ACTIVE_STATES, STATES, Job
from qmk.kernel.records.stored import stored_result
from qmk.kernel.security.seals import KeyedMac, sealed_size
from qmk.kernel.storage.job_row import JOB_COLUMNS, JobRow, text_bytes

#: Whether a stored result is the one the kernel wrote (job id, its bytes, its index
#: text, its seal): :meth:`Store._sealed <qmk.kernel.storage.store.Store>`.
Sealed = Callable[[str, bytes, str, str | None], bool]

_REQUEST_DECODER = msgspec.json.Decoder(RunRequest)


#: The most bytes a packed text is unpacked to where no seal says its size (a reader
#: without the kernel's secret, ``qmk admin migrate`` of rows sealed by no kernel): far
#: past any program a kernel stores with the door's limits, and a bound on what a
#: decompression bomb written into the database takes.
UNSEALED_PROGRAM_BYTES = 256 * 2**20


def unpack_graph(data: bytes, limit: int = UNSEALED_PROGRAM_BYTES) -> str:
    """The text :func:`~qmk.kernel.storage.store.pack_graph` packed (its UTF-8, zlib-compressed),
    never inflated past ``limit`` bytes.

    Raises:
        ValueError: ``data`` is not a packed text of at most ``limit`` bytes of UTF-8.

    >>> packed = zlib.compress(b"x" * 1000)
    >>> len(unpack_graph(packed, 1000))
    1000
    >>> unpack_graph(packed, 999)
    Traceback (most recent call last):
    ...
    ValueError: a packed text past 999 bytes
    """
    inflate = zlib.decompressobj()
    try:
        data = inflate.decompress(data, limit + 1)
    except zlib.error as exc:
        raise ValueError(f"not a packed text: {exc}") from None
    if len(data) > limit or inflate.unconsumed_tail:
        raise ValueError(f"a packed text past {limit} bytes")
    if not inflate.eof:
        raise ValueError("a packed text cut short")
    return data.decode("utf-8")


def program_text(
    key: bytes | KeyedMac | None,
    row: tuple[str, str, str, str, bytes | None, str | None],
) -> str | None:
    """The program's text of a stored job, checked against its seal: ``row`` is its job
    id, tenant, run request's ``program_digest``, the text in its row (``''`` for one
    kept apart), the packed text kept apart (None for one in its row) and the row's
    ``program_seal``. None where the text is not the one the kernel sealed: no seal of
    that job, tenant and digest under ``key``, a packed text past the sealed size, or a
    text of another size or digest. Without ``key`` nothing is checked, and a packed
    text is unpacked up to :data:`UNSEALED_PROGRAM_BYTES` (None past it)."""
    job_id, tenant, digest, text, packed, seal = row
    size = UNSEALED_PROGRAM_BYTES
    if key is not None:
        sealed = sealed_size(key, job_id, tenant, digest, seal)
        if sealed is None:
            return None
        size = sealed
    if packed is not None:
        try:
            text = unpack_graph(packed, size)
        except ValueError:
            return None
    if key is not None and (text_bytes(text) != size or program_digest(text) != digest):
        return None
    return text


def tampered_program(job_id: str) -> dict[str, str]:
    """The coded error (``QK310 program-tampered``) of a job whose stored program is not
    the one the kernel sealed."""
    return error_json(
        JobError.of(
            "program-tampered",
            f"job {job_id}'s stored program does not match the seal the kernel wrote with it "
            "(edited or swapped in kernel.db); it is not run",
        )
    )


def tampered_result(job_id: str) -> dict[str, str]:
    """The coded error (``QK308 result-tampered``) a job's edited result is served as."""
    return error_json(
        JobError.of(
            "result-tampered",
            f"job {job_id}'s stored result does not match the seal the kernel wrote with it "
            "(edited in kernel.db); it is not served",
        )
    )


def read_job(
    row: tuple[Any, ...],
    sealed: Sealed | None,
    key: KeyedMac | None,
) -> Job:
    """The job of a row the store selects (its columns, then its packed program), its
    program checked against its seal with ``key`` and unpacked when kept apart
    (:func:`program_text`): one that fails is read as none (``''``), with its
    ``program_damage``."""
    record = JobRow(*row[:-1])
    job = job_of_row(record, sealed)
    digest = job.request.program_digest
    text = program_text(
        key, (job.job_id, job.tenant, digest, job.graph, row[-1], record.program_seal)
    )
    if text is None:
        job.graph, job.program_damage = "", tampered_program(job.job_id)
    else:
        job.graph = text
    return job


def job_of_row(row: JobRow, sealed: Sealed | None = None) -> Job:
    """The job of a row (a result without its index, or whose seal ``sealed`` refuses, is
    read as none, with its ``result_damage``)."""
    result, meta, damage = row.result, row.result_meta, None
    if result is not None and (
        meta is None
        or (sealed is not None and not sealed(row.job_id, result, meta, row.result_seal))
    ):
        result, damage = None, tampered_result(row.job_id)
    job = Job(
        job_id=row.job_id,
        tenant=row.tenant,
        seq=row.seq,
        state=row.state,
        graph=row.graph,
        request=_REQUEST_DECODER.decode(row.request),
        caps=tuple(json.loads(row.caps)),
        required_caps=tuple(json.loads(row.required_caps)),
        physical_qubits=row.physical_qubits,
        qubits=json.loads(row.qubits),
        created_at=row.created_at,
        started_at=row.started_at,
        finished_at=row.finished_at,
        result=None if result is None or meta is None else stored_result(result, meta),
        error=None if row.error is None else json.loads(row.error),
        attempts=row.attempts,
        preemptions=row.preemptions,
        epoch=row.epoch,
        checkpoint_id=row.checkpoint_id,
        result_expired_at=row.result_expired_at,
        cache_key=row.cache_key,
        cached_from=row.cached_from,
    )
    job.result_damage = damage
    return job


def list_query(state: str | None, columns: str) -> str:
    """The query of a tenant's newest jobs (``tenant``, ``limit`` bound), of ``state``
    (None: any).

    It walks the tenant's jobs in submission order (``jobs_tenant``), newest first, as
    many as asked. A state not ended walks the jobs not ended (``jobs_active``, a few
    entries): SQLite takes that partial index for a state spelt in the text, one of
    :data:`STATES`. A state that is no state matches no job.

    >>> list_query("QUEUED", "job_id").split(" WHERE ")[0]
    'SELECT job_id FROM jobs INDEXED BY jobs_active'
    >>> list_query("FAILED", "job_id").split(" WHERE ")[0]
    'SELECT job_id FROM jobs INDEXED BY jobs_tenant'
    """
    if state is None:
        where = "tenant=?"
    elif state not in STATES:
        where = "0 AND tenant=?"
    else:
        where = f"state = '{state}' AND tenant=?"
    index = "jobs_active" if state in ACTIVE_STATES else "jobs_tenant"
    return f"SELECT {columns} FROM jobs INDEXED BY {index} WHERE {where} ORDER BY seq DESC LIMIT ?"


def list_jobs(db: Any, sealed: Sealed, tenant: str, state: str | None, limit: int) -> list[Job]:
    """The tenant's most recent jobs (newest first), optionally of one state, without
    their graphs and results (never read: a list stays cheap however big they are)."""
    columns = (
        JOB_COLUMNS.replace(" graph,", " '' AS graph,")
        .replace(" result,", " NULL AS result,")
        .replace(" result_meta,", " NULL AS result_meta,")
    )
    rows = db.execute(list_query(state, columns), (tenant, limit)).fetchall()
    return [job_of_row(JobRow(*row), sealed) for row in rows]


def tenant_stats(db: Any, tenant: str) -> dict[str, Any]:
    """Aggregate telemetry of a tenant's jobs: counts by state, shots, cycles, errors."""
    by_state = dict(
        db.execute(
            "SELECT state, COUNT(*) FROM jobs WHERE tenant=? GROUP BY state", (tenant,)
        ).fetchall()
    )
    jobs, shots, cycles, errors = db.execute(
        "SELECT COUNT(*), COALESCE(SUM(shots), 0), COALESCE(SUM(logical_cycles), 0), "
        "COALESCE(SUM(injected_errors), 0) FROM jobs WHERE tenant=?",
        (tenant,),
    ).fetchone()
    done_shots = db.execute(
        "SELECT COALESCE(SUM(shots), 0) FROM jobs WHERE tenant=? AND state='COMPLETED'",
        (tenant,),
    ).fetchone()[0]
    return {
        "jobs": jobs,
        "jobs_by_state": by_state,
        "shots_submitted": shots,
        "shots_completed": done_shots,
        "logical_cycles": cycles,
        "injected_logical_errors": errors,
    }


def insert_checkpoint(
    db: Any,
    checkpoint_id: str,
    job: Job,
    epoch: int,
    created_at: float,
    *,
    path: str | None = None,
    program_epoch: int | None = None,
    physics: Mapping[str, Any] | None = None,
) -> None:
    """Record a checkpoint of ``job`` at kernel epoch ``epoch``: its execution state's
    file ``path``, saved at the program's fence ``program_epoch`` under ``physics``
    (:meth:`qmk.execution.request.RunRequest.physics`; None, None, None: the job's
    start)."""
    db.execute(
        "INSERT INTO checkpoints (checkpoint_id, job_id, tenant, epoch, state, attempts, "
        "created_at, path, program_epoch, physics) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (
            checkpoint_id,
            job.job_id,
            job.tenant,
            epoch,
            job.state,
            job.attempts,
            created_at,
            path,
            program_epoch,
            None if physics is None else json.dumps(dict(physics), sort_keys=True),
        ),
    )


def load_checkpoint(
    db: Any, job_id: str, tenant: str, checkpoint_id: str | None
) -> dict[str, Any] | None:
    """A checkpoint of the job (the latest when ``checkpoint_id`` is None)."""
    columns = (
        "checkpoint_id, job_id, epoch, state, attempts, created_at, path, program_epoch, physics"
    )
    if checkpoint_id is None:
        row = db.execute(
            f"SELECT {columns} FROM checkpoints WHERE job_id=? AND tenant=? "
            "ORDER BY created_at DESC, rowid DESC LIMIT 1",
            (job_id, tenant),
        ).fetchone()
    else:
        row = db.execute(
            f"SELECT {columns} FROM checkpoints WHERE checkpoint_id=? AND job_id=? AND tenant=?",
            (checkpoint_id, job_id, tenant),
        ).fetchone()
    if row is None:
        return None
    keys = (
        "checkpoint_id",
        "job_id",
        "epoch",
        "state",
        "attempts",
        "created_at",
        "path",
        "program_epoch",
        "physics",
    )
    checkpoint = dict(zip(keys, row, strict=True))
    if checkpoint["physics"] is not None:
        checkpoint["physics"] = json.loads(checkpoint["physics"])
    return checkpoint


def saved_states(db: Any, job_id: str) -> list[tuple[str, str]]:
    """``(checkpoint_id, path)`` of each checkpoint of ``job_id`` that holds an
    execution state, newest first."""
    rows = db.execute(
        "SELECT checkpoint_id, path FROM checkpoints WHERE job_id=? AND path IS NOT NULL "
        "ORDER BY created_at DESC, rowid DESC",
        (job_id,),
    ).fetchall()
    return [(str(c), str(p)) for c, p in rows]


def earlier_outcomes(db: Any, sealed: Sealed, job_id: str) -> list[dict[str, Any]]:
    """The outcomes ``job_id`` ended with before it was restored, oldest first (a
    result retention deleted is null)."""
    rows = db.execute(
        "SELECT attempt, state, finished_at, CAST(result AS BLOB), error, result_meta, "
        "result_seal FROM attempts WHERE job_id=? ORDER BY rowid",
        (job_id,),
    ).fetchall()
    outcomes = []
    for attempt, state, finished_at, result, error, meta, seal in rows:
        outcome = {
            "attempt": attempt,
            "state": state,
            "finished_at": finished_at,
            "result": None,
            "error": None if error is None else json.loads(error),
        }
        if result is not None and meta is not None and sealed(job_id, result, meta, seal):
            outcome["result"] = stored_result(result, meta)
        elif result is not None:  # without its index, or its seal refuses it
            outcome["result_error"] = tampered_result(job_id)
        outcomes.append(outcome)
    return outcomes
